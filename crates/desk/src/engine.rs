//! The app's open shop: one data directory's ledger (a writer connection and a reader
//! connection), the unsealed device key, the settings, the background watcher and the
//! change feed. Each concern's methods live in their own file (`preview.rs`, `drafts.rs`,
//! `list.rs`, `detail.rs`, `status.rs`); this one opens, unlocks, sets up and issues.
//! Written without Tauri, so tests drive it on a temp data directory.

use crate::changes::ChangeFeed;
use crate::config::{self, EngineConfig};
use crate::dto::*;
use crate::error::{DeskError, DeskResult};
use crate::list::ListIndex;
use crate::settings;
use crate::watcher::{self, Notify, ProgressFn, SyncHandle, SyncShared};
use chrono::Utc;
use kaipiao_core::{Code, DeviceKey, Lang, Msg, Party};
use kaipiao_ledger::{Ledger, LedgerError, Protection};
use kaipiao_sync::SyncOptions;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

pub struct Engine {
    pub(crate) config: EngineConfig,
    ledger: Mutex<Ledger>,
    /// A second connection for the list and the detail view: a slow filter never holds
    /// up issuing (WAL readers do not block the writer). Its `PRAGMA data_version` tells
    /// when anyone else (the watcher, a `kaipiao` process) changed the ledger.
    pub(crate) reader: Mutex<Ledger>,
    secret: Mutex<Option<Zeroizing<[u8; 32]>>>,
    settings: Mutex<SettingsDto>,
    pub(crate) shared: Arc<SyncShared>,
    pub(crate) sync: SyncHandle,
    changes: ChangeFeed,
    pub(crate) notify: Arc<dyn Notify>,
    pub(crate) list_index: Mutex<Option<ListIndex>>,
    /// The catalogs as the type-ahead searches them (`catalog.rs`).
    pub(crate) catalog_index: Mutex<crate::catalog::CatalogIndex>,
    /// Why the last backup (scheduled or asked for) failed; None after one that worked.
    pub(crate) backup_error: Mutex<Option<String>>,
    /// Dropping it stops the backup scheduler (`backups.rs`).
    pub(crate) backup_stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// Dropping it stops the mail thread (`mail.rs`).
    pub(crate) mail_stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        lock(&self.backup_stop).take();
        lock(&self.mail_stop).take();
        self.changes.shutdown();
        self.sync.shutdown();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain data behind, never half a write
    // (SQLite transactions roll back): carry on with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Opens the ledger of `config.data_dir`, unseals the key where no one needs to type a
    /// passphrase (KAIPIAO_PASSPHRASE, OS keyring), starts the background watcher and the
    /// change feed.
    pub fn open(config: EngineConfig, notify: Arc<dyn Notify>) -> DeskResult<Arc<Engine>> {
        let settings = settings::read(&config.settings_file).settings;
        let lang = config::resolve_lang(&settings.language, &config.system_locale);
        let ledger = Ledger::open(&config.data_dir).map_err(|e| DeskError::ledger(&e, lang))?;
        let reader = Ledger::open(&config.data_dir).map_err(|e| DeskError::ledger(&e, lang))?;
        let shared = Arc::new(SyncShared::new(lang));
        let sync = watcher::start(config.data_dir.clone(), shared.clone(), notify.clone())
            .map_err(|e| DeskError::internal(format!("background sync thread: {e}")))?;
        let changes = ChangeFeed::start(&config.data_dir, notify.clone())
            .map_err(|e| DeskError::internal(format!("change feed thread: {e}")))?;
        let engine = Arc::new(Engine {
            config,
            ledger: Mutex::new(ledger),
            reader: Mutex::new(reader),
            secret: Mutex::new(None),
            settings: Mutex::new(settings),
            shared,
            sync,
            changes,
            notify,
            list_index: Mutex::new(None),
            catalog_index: Mutex::new(Default::default()),
            backup_error: Mutex::new(None),
            backup_stop: Mutex::new(None),
            mail_stop: Mutex::new(None),
        });
        engine.try_auto_unlock();
        crate::backups::attach(&engine);
        crate::mail::attach(&engine);
        Ok(engine)
    }

    pub fn lang(&self) -> Lang {
        self.shared.lang()
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    /// The reading connection (the list, the detail view, backups).
    pub(crate) fn reader(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.reader)
    }

    /// A ledger error in the clerk's language.
    pub(crate) fn ledger_error(&self, e: LedgerError) -> DeskError {
        DeskError::ledger(&e, self.lang())
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
        let keys = config::key_source(self.config.env_passphrase.as_deref());
        if let Ok(key) = ledger.unseal_key(&keys) {
            drop(ledger);
            self.set_key(&key);
        }
    }

    fn set_key(&self, key: &DeviceKey) {
        let secret = Zeroizing::new(key.secret_bytes());
        *lock(&self.secret) = Some(secret.clone());
        self.sync.send_key(secret);
    }

    pub(crate) fn unlocked(&self) -> bool {
        lock(&self.secret).is_some()
    }

    pub(crate) fn key(&self) -> DeskResult<DeviceKey> {
        match lock(&self.secret).as_ref() {
            Some(s) => Ok(DeviceKey::from_bytes(s)),
            None => Err(DeskError::locked(self.lang())),
        }
    }

    // ---------------------------------------------------------------------------------
    // State, settings
    // ---------------------------------------------------------------------------------

    pub fn state(&self) -> DeskResult<AppStateDto> {
        let ledger = self.ledger();
        let device = ledger.device().map_err(|e| self.ledger_error(e))?;
        let leases = ledger.leases().map_err(|e| self.ledger_error(e))?;
        let till = ledger.till_defaults().map_err(|e| self.ledger_error(e))?;
        drop(ledger);
        let phase = match &device {
            None => Phase::Setup,
            Some(d) if d.device_id.is_none() || leases.is_empty() => Phase::Enrol,
            Some(_) if !self.unlocked() => Phase::Locked,
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
            lang: config::lang_code(self.lang()).to_string(),
            settings,
            till: TillDefaultsDto {
                issuer: till.issuer,
                kind: till.kind,
            },
            dev_build: self.config.dev_build,
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    pub fn set_settings(&self, settings: SettingsDto) -> DeskResult<AppStateDto> {
        settings::check(&settings, self.lang())?;
        let stored_dir = if self.config.data_dir_from_env {
            None
        } else {
            settings::read(&self.config.settings_file).data_dir
        };
        settings::write(&self.config.settings_file, &settings, stored_dir.as_deref())?;
        self.shared.set_lang(config::resolve_lang(
            &settings.language,
            &self.config.system_locale,
        ));
        *lock(&self.settings) = settings;
        self.state()
    }

    /// Sets this till's defaults (issuer, kind of a new invoice) in the ledger.
    pub fn set_till_defaults(&self, till: TillDefaultsDto) -> DeskResult<AppStateDto> {
        self.ledger()
            .set_till_defaults(
                &kaipiao_ledger::TillDefaults {
                    issuer: till.issuer,
                    kind: till.kind,
                },
                Utc::now(),
            )
            .map_err(|e| self.ledger_error(e))?;
        self.state()
    }

    /// Remembers `dir` as the data directory to open from now on (the caller reopens).
    pub fn remember_data_dir(&self, dir: &Path) -> DeskResult<()> {
        let settings = lock(&self.settings).clone();
        settings::write(&self.config.settings_file, &settings, Some(dir))
    }

    /// The configuration to open `path` with instead of this data directory: refused
    /// when KAIPIAO_DATA pins the directory or the path is not absolute.
    pub fn config_for_data_dir(&self, path: &str) -> DeskResult<EngineConfig> {
        let lang = self.lang();
        if self.config.data_dir_from_env {
            return Err(DeskError::say(
                Code::DataDirPinned,
                "data_dir",
                lang,
                Msg::new("data_dir_pinned"),
            ));
        }
        let dir = std::path::PathBuf::from(path.trim());
        if path.trim().is_empty() || !dir.is_absolute() {
            return Err(DeskError::say(
                Code::InvalidPath,
                "data_dir",
                lang,
                Msg::new("invalid_path"),
            ));
        }
        let mut config = self.config.clone();
        config.data_dir = dir;
        Ok(config)
    }

    /// Replaces the endpoint list (primary first).
    pub fn set_servers(&self, servers: Vec<String>) -> DeskResult<AppStateDto> {
        let lang = self.lang();
        let servers =
            kaipiao_sync::normalize_servers(&servers).map_err(|e| DeskError::sync(&e, lang))?;
        self.ledger()
            .set_servers(&servers)
            .map_err(|e| self.ledger_error(e))?;
        self.sync.reconfigure();
        self.state()
    }

    // ---------------------------------------------------------------------------------
    // First run, unlock
    // ---------------------------------------------------------------------------------

    pub fn check_tax_id(&self, input: &str) -> TaxIdCheckDto {
        TaxIdCheckDto::check(input, self.lang())
    }

    /// First run: creates and seals the key (unless the device exists already), enrols
    /// the device and takes the first lease. Blocks on the network (up to ~20 s).
    pub fn setup(&self, req: SetupRequest) -> DeskResult<SetupResult> {
        let lang = self.lang();
        let keys = match &self.config.env_passphrase {
            Some(p) => config::key_source(Some(p)),
            None => {
                let p = req.passphrase.clone().unwrap_or_default();
                if p.chars().count() < 8 {
                    return Err(DeskError::say(
                        Code::WeakPassphrase,
                        "passphrase",
                        lang,
                        Msg::new("weak_passphrase"),
                    ));
                }
                config::key_source(Some(&p))
            }
        };
        let servers: Vec<String> = req
            .servers
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let servers =
            kaipiao_sync::normalize_servers(&servers).map_err(|e| DeskError::sync(&e, lang))?;
        if req.token.trim().is_empty() {
            return Err(DeskError::say(
                Code::MissingField,
                "token",
                lang,
                Msg::new("missing_field-token"),
            ));
        }
        let fingerprint = match req.authority_key.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(typed) => Some(
                kaipiao_core::PublicKey::parse_fingerprint(typed).ok_or_else(|| {
                    DeskError::say(
                        Code::InvalidPublicKey,
                        "authority_key",
                        lang,
                        Msg::new("invalid_public_key-fingerprint"),
                    )
                })?,
            ),
        };
        let ledger = self.ledger();
        let existing = ledger.device().map_err(|e| self.ledger_error(e))?;
        if existing.is_none() {
            let seller = Party {
                name: req.seller_name.clone(),
                tax_id: req.seller_tax_id.clone(),
                address: req.seller_address.clone(),
                bank: req.seller_bank.clone(),
            };
            ledger
                .init(&seller, &req.device_name, &keys, Utc::now())
                .map_err(|e| self.ledger_error(e))?;
        }
        let key = ledger.unseal_key(&keys).map_err(|e| self.ledger_error(e))?;
        let opts = SyncOptions {
            give_up_after: std::time::Duration::from_secs(15),
            ..SyncOptions::default()
        };
        let trust = kaipiao_sync::Trust {
            fingerprint: fingerprint.as_deref(),
            allow_insecure_http: false,
        };
        let outcome = crate::enrol(&ledger, &key, &servers, req.token.trim(), &trust, &opts)
            .map_err(|e| DeskError::sync(&e, lang))?;
        let device = ledger
            .device()
            .map_err(|e| self.ledger_error(e))?
            .ok_or_else(|| self.ledger_error(LedgerError::NotInitialized))?;
        let leases = ledger.leases().map_err(|e| self.ledger_error(e))?;
        drop(ledger);
        self.set_key(&key);
        let lease = leases
            .iter()
            .find(|l| l.lease.lease_id == outcome.lease.lease_id)
            .map(LeaseDto::from)
            .ok_or_else(|| DeskError::internal("the first lease was not stored"))?;
        Ok(SetupResult {
            device: DeviceDto::from(&device),
            lease,
        })
    }

    pub fn unlock(&self, passphrase: &str) -> DeskResult<AppStateDto> {
        let key = self
            .ledger()
            .unseal_key(&config::key_source(Some(passphrase)))
            .map_err(|e| self.ledger_error(e))?;
        self.set_key(&key);
        self.state()
    }

    // ---------------------------------------------------------------------------------
    // Issuing, sync
    // ---------------------------------------------------------------------------------

    pub fn issue(&self, draft: &DraftDto) -> DeskResult<IssuedDto> {
        let lang = self.lang();
        let key = self.key()?;
        let issued = self
            .ledger()
            .issue_with_clock(&draft.to_draft(), &key, Utc::now)
            .map_err(|e| self.ledger_error(e))?;
        let pending = self.pending_count();
        self.notify.outbox(&OutboxChanged { pending });
        self.sync.wake();
        Ok(IssuedDto {
            new_to_catalog: self.new_to_catalog(&issued.envelope.invoice),
            ..IssuedDto::of(&issued, lang)
        })
    }

    pub(crate) fn pending_count(&self) -> u32 {
        crate::status::pending_count(&self.ledger())
    }

    /// "Sync now": runs on the background thread (which owns the outbox), reporting
    /// through `progress`; the receiver gets the summary.
    pub fn sync_now(
        &self,
        progress: ProgressFn,
    ) -> DeskResult<tokio::sync::oneshot::Receiver<DeskResult<SyncSummaryDto>>> {
        self.key()?;
        Ok(self.sync.sync_now(progress))
    }
}
