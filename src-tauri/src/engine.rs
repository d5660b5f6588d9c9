//! The app's engine wrapper: one data directory's ledger behind a mutex, the unsealed
//! device key, the UI settings, and the handle of the background sync thread. Every
//! command of `commands.rs` is one method here, written without Tauri so that the tests
//! drive it on a temp data directory.

use crate::background::{self, Notify, SyncHandle, SyncShared};
use crate::dto::*;
use crate::error::{ApiError, ApiResult};
use chrono::Utc;
use kaipiao_core::money::parse_money;
use kaipiao_core::words::amount_in_words;
use kaipiao_core::{DeviceKey, Lang, Party};
use kaipiao_ledger::{KeySource, Ledger, LedgerError, ListFilter, Protection, Status};
use kaipiao_sync::SyncOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

/// Where the engine's files are and where its preferences come from.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub data_dir_from_env: bool,
    /// `settings.json` (language, theme).
    pub settings_file: PathBuf,
    /// KAIPIAO_PASSPHRASE.
    pub env_passphrase: Option<String>,
    /// The OS locale (LC_ALL / LC_MESSAGES / LANG) for `language: "system"`.
    pub system_locale: String,
    pub dev_build: bool,
}

impl EngineConfig {
    /// From the environment: KAIPIAO_DATA else `default_data_dir`; settings beside the
    /// data when KAIPIAO_DATA pins it (so a test or a second shop keeps its own), else in
    /// `config_dir`.
    pub fn from_env(
        default_data_dir: Option<PathBuf>,
        config_dir: Option<PathBuf>,
        dev_build: bool,
    ) -> EngineConfig {
        let env_data = std::env::var_os("KAIPIAO_DATA")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let data_dir_from_env = env_data.is_some();
        let settings_file = match (&env_data, &config_dir) {
            (Some(d), _) => d.join("app-settings.json"),
            (None, Some(c)) => c.join("settings.json"),
            (None, None) => PathBuf::from("kaipiao-settings.json"),
        };
        let stored_dir = if data_dir_from_env {
            None
        } else {
            read_settings_file(&settings_file).1
        };
        let data_dir = env_data
            .or(stored_dir)
            .or(default_data_dir)
            .unwrap_or_else(|| PathBuf::from("kaipiao-data"));
        EngineConfig {
            data_dir,
            data_dir_from_env,
            settings_file,
            env_passphrase: std::env::var("KAIPIAO_PASSPHRASE")
                .ok()
                .filter(|p| !p.is_empty()),
            system_locale: system_locale(),
            dev_build,
        }
    }
}

pub fn system_locale() -> String {
    for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    String::new()
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct SettingsFile {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    theme: Option<String>,
    /// The data directory chosen with "open an existing data directory".
    #[serde(default)]
    data_dir: Option<PathBuf>,
}

fn read_settings_file(path: &Path) -> (SettingsDto, Option<PathBuf>) {
    let file: SettingsFile = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut s = SettingsDto::default();
    if let Some(l) = file
        .language
        .filter(|l| ["system", "zh", "en"].contains(&l.as_str()))
    {
        s.language = l;
    }
    if let Some(t) = file
        .theme
        .filter(|t| ["system", "light", "dark"].contains(&t.as_str()))
    {
        s.theme = t;
    }
    (s, file.data_dir)
}

fn write_settings_file(
    path: &Path,
    settings: &SettingsDto,
    data_dir: Option<&Path>,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = SettingsFile {
        language: Some(settings.language.clone()),
        theme: Some(settings.theme.clone()),
        data_dir: data_dir.map(Path::to_path_buf),
    };
    let tmp = path.with_extension("json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&file).unwrap_or_default())?;
    std::fs::rename(tmp, path)
}

fn resolve_lang(language: &str, locale: &str) -> Lang {
    match language {
        "zh" => Lang::Zh,
        "en" => Lang::En,
        _ => Lang::from_locale(locale),
    }
}

fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "zh",
        Lang::En => "en",
    }
}

/// status, search, buyer, from, to, trimmed.
type ListKey = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The seqs a filter matches, newest first, kept while nothing changes: finding them
/// scans the table, a page read by seq does not.
struct ListIndex {
    key: ListKey,
    version: u64,
    seqs: Arc<Vec<u64>>,
}

pub struct Engine {
    config: EngineConfig,
    ledger: Mutex<Ledger>,
    /// A second connection for the list and the detail view: a slow filter never holds
    /// up issuing (WAL readers do not block the writer).
    reader: Mutex<Ledger>,
    secret: Mutex<Option<Zeroizing<[u8; 32]>>>,
    settings: Mutex<SettingsDto>,
    shared: Arc<SyncShared>,
    sync: SyncHandle,
    notify: Arc<dyn Notify>,
    list_index: Mutex<Option<ListIndex>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.sync.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain data behind, never half a write
    // (SQLite transactions roll back): carry on with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Opens the ledger of `config.data_dir`, unseals the key where no one needs to type a
    /// passphrase (KAIPIAO_PASSPHRASE, OS keyring) and starts the background sync.
    pub fn open(config: EngineConfig, notify: Arc<dyn Notify>) -> ApiResult<Arc<Engine>> {
        let (settings, _) = read_settings_file(&config.settings_file);
        let lang = resolve_lang(&settings.language, &config.system_locale);
        let ledger = Ledger::open(&config.data_dir).map_err(|e| ApiError::ledger(&e, lang))?;
        let reader = Ledger::open(&config.data_dir).map_err(|e| ApiError::ledger(&e, lang))?;
        let shared = Arc::new(SyncShared::new(lang));
        let sync = background::start(config.data_dir.clone(), shared.clone(), notify.clone())
            .map_err(|e| ApiError::internal(format!("background sync thread: {e}")))?;
        let engine = Arc::new(Engine {
            config,
            ledger: Mutex::new(ledger),
            reader: Mutex::new(reader),
            secret: Mutex::new(None),
            settings: Mutex::new(settings),
            shared,
            sync,
            notify,
            list_index: Mutex::new(None),
        });
        engine.try_auto_unlock();
        Ok(engine)
    }

    pub fn lang(&self) -> Lang {
        self.shared.lang()
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    fn lerr(&self, e: LedgerError) -> ApiError {
        ApiError::ledger(&e, self.lang())
    }

    fn env_keys(&self) -> KeySource {
        match &self.config.env_passphrase {
            Some(p) => KeySource::with_passphrase(p),
            None => KeySource::default(),
        }
    }

    fn try_auto_unlock(&self) {
        let ledger = self.ledger();
        let Ok(Some(device)) = ledger.device() else {
            return;
        };
        if self.config.env_passphrase.is_none()
            && device.key_protection == Protection::PassphraseFile
        {
            return;
        }
        if let Ok(key) = ledger.unseal_key(&self.env_keys()) {
            drop(ledger);
            self.set_key(&key);
        }
    }

    fn set_key(&self, key: &DeviceKey) {
        let secret = Zeroizing::new(key.secret_bytes());
        *lock(&self.secret) = Some(secret.clone());
        self.sync.send_key(secret);
    }

    fn key(&self) -> ApiResult<DeviceKey> {
        match lock(&self.secret).as_ref() {
            Some(s) => Ok(DeviceKey::from_bytes(s)),
            None => Err(ApiError::say(
                "locked",
                "passphrase",
                self.lang(),
                "设备密钥尚未解锁，请输入口令",
                "The device key is locked; type its passphrase",
            )),
        }
    }

    fn bump(&self) {
        self.shared.data_version.fetch_add(1, Ordering::SeqCst);
    }

    // ---------------------------------------------------------------------------------
    // State, settings
    // ---------------------------------------------------------------------------------

    pub fn state(&self) -> ApiResult<AppStateDto> {
        let ledger = self.ledger();
        let device = ledger.device().map_err(|e| self.lerr(e))?;
        let leases = ledger.leases().map_err(|e| self.lerr(e))?;
        drop(ledger);
        let unlocked = lock(&self.secret).is_some();
        let phase = match &device {
            None => Phase::Setup,
            Some(d) if d.device_id.is_none() || leases.is_empty() => Phase::Enrol,
            Some(_) if !unlocked => Phase::Locked,
            Some(_) => Phase::Ready,
        };
        let settings = lock(&self.settings).clone();
        Ok(AppStateDto {
            phase,
            data_dir: self.config.data_dir.display().to_string(),
            data_dir_from_env: self.config.data_dir_from_env,
            passphrase_from_env: self.config.env_passphrase.is_some(),
            device: device.as_ref().map(DeviceDto::from),
            leases: leases.iter().map(LeaseDto::from).collect(),
            lang: lang_code(self.lang()).to_string(),
            settings,
            dev_build: self.config.dev_build,
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    pub fn set_settings(&self, settings: SettingsDto) -> ApiResult<AppStateDto> {
        let lang = self.lang();
        if !["system", "zh", "en"].contains(&settings.language.as_str()) {
            return Err(ApiError::say(
                "invalid_language",
                "language",
                lang,
                "语言应为 system、zh 或 en",
                "language must be system, zh or en",
            ));
        }
        if !["system", "light", "dark"].contains(&settings.theme.as_str()) {
            return Err(ApiError::say(
                "invalid_theme",
                "theme",
                lang,
                "主题应为 system、light 或 dark",
                "theme must be system, light or dark",
            ));
        }
        let stored_dir = if self.config.data_dir_from_env {
            None
        } else {
            read_settings_file(&self.config.settings_file).1
        };
        write_settings_file(&self.config.settings_file, &settings, stored_dir.as_deref()).map_err(
            |e| {
                ApiError::new(
                    "io",
                    "",
                    format!("{}: {e}", self.config.settings_file.display()),
                )
            },
        )?;
        self.shared
            .set_lang(resolve_lang(&settings.language, &self.config.system_locale));
        *lock(&self.settings) = settings;
        self.state()
    }

    /// Remembers `dir` as the data directory to open from now on (the caller reopens).
    pub fn remember_data_dir(&self, dir: &Path) -> ApiResult<()> {
        let settings = lock(&self.settings).clone();
        write_settings_file(&self.config.settings_file, &settings, Some(dir)).map_err(|e| {
            ApiError::new(
                "io",
                "",
                format!("{}: {e}", self.config.settings_file.display()),
            )
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Replaces the endpoint list (primary first).
    pub fn set_servers(&self, servers: Vec<String>) -> ApiResult<AppStateDto> {
        let lang = self.lang();
        let servers =
            kaipiao_sync::normalize_servers(&servers).map_err(|e| ApiError::sync(&e, lang))?;
        self.ledger()
            .set_servers(&servers)
            .map_err(|e| self.lerr(e))?;
        self.sync.reconfigure();
        self.state()
    }

    // ---------------------------------------------------------------------------------
    // First run, unlock
    // ---------------------------------------------------------------------------------

    pub fn check_tax_id(&self, input: &str) -> TaxIdCheckDto {
        let normalized = kaipiao_core::taxid::normalize_tax_id(input);
        match kaipiao_core::taxid::check_tax_id(input) {
            Ok(n) => TaxIdCheckDto {
                input: input.to_string(),
                normalized: n,
                valid: true,
                message: String::new(),
            },
            Err(p) => TaxIdCheckDto {
                input: input.to_string(),
                normalized,
                valid: false,
                message: if input.trim().is_empty() {
                    String::new()
                } else {
                    p.message(self.lang() == Lang::Zh)
                },
            },
        }
    }

    /// First run: creates and seals the key (unless the device exists already), enrols
    /// the device and takes the first lease. Blocks on the network (up to ~20 s).
    pub fn setup(&self, req: SetupRequest) -> ApiResult<SetupResult> {
        let lang = self.lang();
        let keys = match &self.config.env_passphrase {
            Some(p) => KeySource::with_passphrase(p),
            None => {
                let p = req.passphrase.clone().unwrap_or_default();
                if p.chars().count() < 8 {
                    return Err(ApiError::say(
                        "weak_passphrase",
                        "passphrase",
                        lang,
                        "口令至少 8 个字符：它保护本机的设备密钥，请妥善保管",
                        "The passphrase needs at least 8 characters: it protects this device's key; keep it safe",
                    ));
                }
                KeySource::with_passphrase(&p)
            }
        };
        let servers: Vec<String> = req
            .servers
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let servers =
            kaipiao_sync::normalize_servers(&servers).map_err(|e| ApiError::sync(&e, lang))?;
        if req.token.trim().is_empty() {
            return Err(ApiError::say(
                "missing_field",
                "token",
                lang,
                "请填写税务机关提供的登记令牌",
                "Type the enrolment token the tax authority gave you",
            ));
        }
        let ledger = self.ledger();
        let existing = ledger.device().map_err(|e| self.lerr(e))?;
        if existing.is_none() {
            let seller = Party {
                name: req.seller_name.clone(),
                tax_id: req.seller_tax_id.clone(),
                address: req.seller_address.clone(),
                bank: req.seller_bank.clone(),
            };
            ledger
                .init(&seller, &req.device_name, &keys, Utc::now())
                .map_err(|e| self.lerr(e))?;
        }
        let key = ledger.unseal_key(&keys).map_err(|e| self.lerr(e))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ApiError::internal)?;
        let opts = SyncOptions {
            give_up_after: std::time::Duration::from_secs(15),
            ..SyncOptions::default()
        };
        let outcome = rt
            .block_on(kaipiao_sync::enroll(
                &ledger,
                &key,
                &servers,
                req.token.trim(),
                &opts,
            ))
            .map_err(|e| ApiError::sync(&e, lang))?;
        let device = ledger
            .device()
            .map_err(|e| self.lerr(e))?
            .ok_or_else(|| self.lerr(LedgerError::NotInitialized))?;
        let leases = ledger.leases().map_err(|e| self.lerr(e))?;
        drop(ledger);
        self.set_key(&key);
        self.bump();
        let lease = leases
            .iter()
            .find(|l| l.lease.lease_id == outcome.lease.lease_id)
            .map(LeaseDto::from)
            .ok_or_else(|| ApiError::internal("the first lease was not stored"))?;
        Ok(SetupResult {
            device: DeviceDto::from(&device),
            lease,
        })
    }

    pub fn unlock(&self, passphrase: &str) -> ApiResult<AppStateDto> {
        let key = self
            .ledger()
            .unseal_key(&KeySource::with_passphrase(passphrase))
            .map_err(|e| self.lerr(e))?;
        self.set_key(&key);
        self.state()
    }

    // ---------------------------------------------------------------------------------
    // Issuing
    // ---------------------------------------------------------------------------------

    /// Lines, totals and 大写 for what the clerk has typed so far. Totals are computed
    /// even while the buyer or a line name is still missing (placeholders stand in for
    /// text that does not change money); `problem` says what would stop issuance.
    pub fn preview(&self, draft: &DraftDto) -> PreviewDto {
        let lang = self.lang();
        let ledger = self.ledger();
        let problem = ledger
            .preview(&draft.to_draft())
            .err()
            .map(|e| ApiError::ledger(&e, lang));
        // Best effort: text that does not change money is filled in, blank lines skipped.
        let mut relaxed = draft.clone();
        if relaxed.buyer.name.trim().is_empty() {
            relaxed.buyer.name = "-".into();
        }
        if relaxed.kind != "credit" {
            if kaipiao_core::taxid::check_tax_id(&relaxed.buyer.tax_id).is_err() {
                relaxed.buyer.tax_id.clear();
            }
            relaxed.kind = "ordinary".into();
        }
        relaxed.remarks.clear();
        relaxed.issuer.clear();
        let mut lines: Vec<Option<LineDto>> = vec![None; draft.lines.len()];
        let mut computed_lines: Vec<kaipiao_core::DraftLine> = Vec::new();
        let mut index: Vec<usize> = Vec::new();
        let mut complete = true;
        for (i, l) in relaxed.lines.iter().enumerate() {
            let blank = l.quantity.trim().is_empty() && l.unit_price.trim().is_empty();
            let mut single = relaxed.clone();
            let mut line = l.clone();
            if line.name.trim().is_empty() {
                line.name = "-".into();
            }
            line.tax_code = if line.tax_code.trim().len() == 19 {
                line.tax_code
            } else {
                String::new()
            };
            single.lines = vec![line.clone()];
            let d = single.to_draft();
            match ledger.preview(&d) {
                Ok(c) => {
                    if let Some(first) = c.lines.first() {
                        lines[i] = Some(LineDto::from(first));
                    }
                    computed_lines.push(d.lines[0].clone());
                    index.push(i);
                }
                Err(_) => {
                    if !blank {
                        complete = false;
                    }
                }
            }
        }
        let mut total_amount = String::from("0.00");
        let mut total_tax = String::from("0.00");
        let mut total = String::from("0.00");
        if !computed_lines.is_empty() {
            let mut d = relaxed.to_draft();
            d.lines = computed_lines;
            match ledger.preview(&d) {
                Ok(c) => {
                    // Whole-invoice computation (tolerances, caps) agrees with the lines.
                    for (k, l) in c.lines.iter().enumerate() {
                        if let Some(&i) = index.get(k) {
                            lines[i] = Some(LineDto::from(l));
                        }
                    }
                    total_amount = c.total_amount;
                    total_tax = c.total_tax;
                    total = c.total;
                }
                Err(_) => {
                    // e.g. over a lease cap: the lines are right, the sum is shown.
                    let sum = |f: fn(&LineDto) -> &str| {
                        lines
                            .iter()
                            .flatten()
                            .filter_map(|l| parse_money(f(l)))
                            .fold(rust_decimal::Decimal::ZERO, |a, b| a + b)
                    };
                    let a = sum(|l| &l.amount);
                    let t = sum(|l| &l.tax);
                    total_amount = kaipiao_core::money::money_string(a);
                    total_tax = kaipiao_core::money::money_string(t);
                    total = kaipiao_core::money::money_string(a + t);
                }
            }
        }
        let total_in_words = parse_money(&total).map(amount_in_words).unwrap_or_default();
        PreviewDto {
            lines,
            total_amount,
            total_tax,
            total,
            total_in_words,
            totals_complete: complete,
            problem,
        }
    }

    pub fn issue(&self, draft: &DraftDto) -> ApiResult<IssuedDto> {
        let lang = self.lang();
        let key = self.key()?;
        let issued = self
            .ledger()
            .issue(&draft.to_draft(), &key, Utc::now())
            .map_err(|e| self.lerr(e))?;
        self.bump();
        let inv = &issued.envelope.invoice;
        let pending = self.pending_count();
        self.notify.outbox(&OutboxChanged { pending });
        self.sync.wake();
        Ok(IssuedDto {
            number: inv.number.clone(),
            id: inv.id.clone(),
            kind: inv.kind.as_str().to_string(),
            status: "pending".into(),
            total: inv.total.clone(),
            total_in_words: parse_money(&inv.total)
                .map(amount_in_words)
                .unwrap_or_default(),
            warnings: issued.warnings.iter().map(|w| warning(w, lang)).collect(),
        })
    }

    fn pending_count(&self) -> u32 {
        self.ledger()
            .status(Utc::now())
            .map(|s| u32::try_from(s.pending).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }

    // ---------------------------------------------------------------------------------
    // Status bar, sync
    // ---------------------------------------------------------------------------------

    pub fn status(&self) -> ApiResult<StatusDto> {
        let lang = self.lang();
        let now = Utc::now();
        let ledger = self.ledger();
        let st = ledger.status(now).map_err(|e| self.lerr(e))?;
        let leases = ledger.leases().map_err(|e| self.lerr(e))?;
        drop(ledger);
        let in_force = leases.iter().find(|l| l.numbers_left > 0).or(leases.last());
        let warnings: Vec<WarningDto> = st.warnings.iter().map(|w| warning(w, lang)).collect();
        Ok(StatusDto {
            pending: u32::try_from(st.pending).unwrap_or(u32::MAX),
            oldest_pending_at: st.oldest_pending_at,
            offline_hours_left: st.offline_hours_left,
            offline_hours: in_force.map(|l| l.lease.offline_hours),
            offline_amount_left: st.offline_amount_left,
            offline_amount_cap: in_force.map(|l| l.lease.offline_amount_cap.clone()),
            warning_level: warnings.iter().map(|w| w.threshold).max().unwrap_or(0),
            warnings,
            numbers_left: st.numbers_left,
            last_sync_at: st.last_sync_at,
            queue_stopped: st.queue_stopped,
            alerts: st
                .alerts
                .iter()
                .map(|a| AlertDto {
                    id: a.id,
                    at: a.at.clone(),
                    code: a.code.clone(),
                    message: a.message.clone(),
                    invoice_id: a.invoice_id.clone(),
                })
                .collect(),
            connectivity: self.shared.connectivity(),
            syncing: self.shared.syncing.load(Ordering::SeqCst),
            now: kaipiao_core::draft::timestamp(now),
        })
    }

    /// "Sync now": runs on the background thread (which owns the outbox), reporting
    /// through `progress`; the receiver gets the summary.
    pub fn sync_now(
        &self,
        progress: background::ProgressFn,
    ) -> ApiResult<tokio::sync::oneshot::Receiver<ApiResult<SyncSummaryDto>>> {
        self.key()?;
        Ok(self.sync.sync_now(progress))
    }

    // ---------------------------------------------------------------------------------
    // Invoices
    // ---------------------------------------------------------------------------------

    /// One page of the filtered list, newest first, for the virtualized list. A filter
    /// change reads the matching seqs once (8 bytes an invoice, kept until the data
    /// changes); each page then reads its rows by seq, so scrolling anywhere in 100k
    /// invoices costs the same as the first page.
    pub fn list(&self, q: &ListQuery) -> ApiResult<InvoicePage> {
        let lang = self.lang();
        let norm = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let key = (
            norm(&q.status),
            norm(&q.search),
            norm(&q.buyer),
            norm(&q.from),
            norm(&q.to),
        );
        let version = self.shared.data_version.load(Ordering::SeqCst);
        let reader = lock(&self.reader);
        let cached = lock(&self.list_index)
            .as_ref()
            .filter(|c| c.key == key && c.version == version)
            .map(|c| c.seqs.clone());
        let seqs = match cached {
            Some(seqs) => seqs,
            None => {
                let status = match key.0.as_deref() {
                    None => None,
                    Some(s) => Some(Status::parse(s).ok_or_else(|| {
                        ApiError::say(
                            "invalid_status",
                            "status",
                            lang,
                            "状态应为 pending、accepted 或 rejected",
                            "status must be pending, accepted or rejected",
                        )
                    })?),
                };
                let filter = ListFilter {
                    status,
                    search: key.1.clone(),
                    buyer: key.2.clone(),
                    from: key.3.clone(),
                    to: key.4.clone(),
                    newest_first: true,
                    ..ListFilter::default()
                };
                let seqs = Arc::new(reader.list_seqs(&filter).map_err(|e| self.lerr(e))?);
                *lock(&self.list_index) = Some(ListIndex {
                    key,
                    version,
                    seqs: seqs.clone(),
                });
                seqs
            }
        };
        let start = (q.offset as usize).min(seqs.len());
        let end = start
            .saturating_add(q.limit.min(1000) as usize)
            .min(seqs.len());
        let rows = reader
            .summaries(&seqs[start..end])
            .map_err(|e| self.lerr(e))?;
        drop(reader);
        Ok(InvoicePage {
            total: u32::try_from(seqs.len()).unwrap_or(u32::MAX),
            offset: start as u32,
            rows: rows.iter().map(InvoiceRowDto::from).collect(),
        })
    }

    pub fn show(&self, number_or_id: &str) -> ApiResult<InvoiceDetailDto> {
        let rec = lock(&self.reader)
            .show(number_or_id)
            .map_err(|e| self.lerr(e))?;
        let inv = &rec.envelope.invoice;
        let receipt = rec.receipt.as_ref().map(|r| {
            let text = |k: &str| {
                r.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            ReceiptDto {
                status: text("status"),
                authority_code: text("authority_code"),
                received_at: text("received_at"),
                reasons: r
                    .get("reasons")
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .map(|x| ReasonDto {
                                code: x
                                    .get("code")
                                    .and_then(|v| v.as_str())
                                    .unwrap_or_default()
                                    .to_string(),
                                message: x
                                    .get("message")
                                    .and_then(|v| v.as_str())
                                    .unwrap_or_default()
                                    .to_string(),
                                field: x
                                    .get("field")
                                    .and_then(|v| v.as_str())
                                    .unwrap_or_default()
                                    .to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                authority_signature: text("authority_signature"),
                json: serde_json::to_string_pretty(r).unwrap_or_default(),
            }
        });
        let history = rec
            .history
            .iter()
            .map(|e| {
                // The receipt holds what an answer's entry says; the number is the invoice's.
                let answer = receipt
                    .as_ref()
                    .filter(|_| matches!(e.status.as_str(), "accepted" | "rejected"));
                HistoryDto {
                    at: e.at.clone(),
                    status: e.status.clone(),
                    detail: e.detail.clone(),
                    number: (e.status == "issued").then(|| inv.number.clone()),
                    authority_code: answer
                        .map(|r| r.authority_code.clone())
                        .filter(|c| !c.is_empty()),
                    reasons: answer
                        .filter(|_| e.status == "rejected")
                        .map(|r| r.reasons.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        Ok(InvoiceDetailDto {
            invoice: InvoiceDto::from(inv),
            hash: rec.envelope.hash.clone(),
            signature: rec.envelope.signature.clone(),
            status: rec.status.as_str().to_string(),
            total_in_words: parse_money(&inv.total)
                .map(amount_in_words)
                .unwrap_or_default(),
            receipt,
            history,
            outbox: rec.outbox.as_ref().map(|o| OutboxDto {
                attempts: o.attempts,
                next_attempt_at: o.next_attempt_at.clone(),
                last_error: o.last_error.clone(),
            }),
            can_credit: inv.kind != kaipiao_core::Kind::Credit && rec.status != Status::Rejected,
            issued_during_outage: rec.issued_during_outage,
        })
    }

    /// A credit note (红字发票) against `number`, pre-filled: every line with its whole
    /// quantity negated at the original's stored tax-exclusive price. The clerk may
    /// reduce quantities for a partial credit; the engine checks what was credited before.
    pub fn credit_draft(&self, number: &str) -> ApiResult<DraftDto> {
        let lang = self.lang();
        let detail = self.show(number)?;
        if !detail.can_credit {
            return Err(ApiError::say(
                "not_creditable",
                "original",
                lang,
                "红字发票只能针对未被拒绝的蓝字发票开具",
                "A credit note can only be issued against an invoice that is not itself a credit note and was not rejected",
            ));
        }
        let inv = detail.invoice;
        Ok(DraftDto {
            kind: "credit".into(),
            buyer: inv.buyer.clone(),
            lines: inv
                .lines
                .iter()
                .map(|l| DraftLineDto {
                    name: l.name.clone(),
                    tax_code: l.tax_code.clone(),
                    spec: l.spec.clone(),
                    unit: l.unit.clone(),
                    quantity: negate(&l.quantity),
                    unit_price: l.unit_price.clone(),
                    tax_rate: l.tax_rate.clone(),
                    treatment: if l.treatment == "standard" {
                        String::new()
                    } else {
                        l.treatment.clone()
                    },
                })
                .collect(),
            price_includes_tax: false,
            original: Some(inv.number.clone()),
            remarks: String::new(),
            issuer: inv.issuer.clone(),
        })
    }

    /// A new invoice pre-filled from a rejected one, to correct and issue again.
    pub fn reissue_draft(&self, number: &str) -> ApiResult<DraftDto> {
        let inv = self.show(number)?.invoice;
        Ok(DraftDto {
            kind: inv.kind.clone(),
            buyer: inv.buyer.clone(),
            lines: inv
                .lines
                .iter()
                .map(|l| DraftLineDto {
                    name: l.name.clone(),
                    tax_code: l.tax_code.clone(),
                    spec: l.spec.clone(),
                    unit: l.unit.clone(),
                    quantity: l.quantity.clone(),
                    unit_price: l.unit_price.clone(),
                    tax_rate: l.tax_rate.clone(),
                    treatment: if l.treatment == "standard" {
                        String::new()
                    } else {
                        l.treatment.clone()
                    },
                })
                .collect(),
            price_includes_tax: false,
            original: inv.original.map(|o| o.number),
            remarks: inv.remarks.clone(),
            issuer: inv.issuer.clone(),
        })
    }
}

fn negate(q: &str) -> String {
    match q.strip_prefix('-') {
        Some(rest) => rest.to_string(),
        None => format!("-{q}"),
    }
}

fn warning(w: &kaipiao_core::LimitWarning, lang: Lang) -> WarningDto {
    WarningDto {
        limit: w.limit.to_string(),
        threshold: w.threshold,
        message: lang.pick(&w.zh, &w.en).to_string(),
    }
}
