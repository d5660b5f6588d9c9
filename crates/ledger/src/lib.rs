//! kaipiao-ledger: the device's SQLite ledger — the single source of truth on the
//! clerk's machine (SPEC 3, 5, 8).
//!
//! It holds the device identity (with the private key sealed, never in plain text), the
//! leases granted by the authority, the hash-chained signed invoices, the outbox, the
//! authority's receipts, the status history and the record of outages (when the
//! authority could not be reached, and which invoices were issued meanwhile). Every
//! write is one IMMEDIATE transaction; the database runs in WAL mode with
//! synchronous=FULL so a call that returned has persisted. [`Ledger::issue`] is the
//! only code that writes invoices, and invoices are never updated or deleted: a
//! correction is a credit note.
//!
//! It must never talk to the network (that is kaipiao-sync), never log or print key
//! material, and never leave a half-written invoice, receipt or lease.

mod audit;
mod error;
pub mod keystore;
mod outages;
mod rows;
mod schema;

pub use error::LedgerError;
pub use keystore::{KeySource, Protection};
pub use outages::{FailedAttempt, Outage};
pub use schema::SCHEMA_VERSION;

use chrono::{DateTime, Utc};
use kaipiao_core::draft::{timestamp, Computed, IssueContext};
use kaipiao_core::lease::{check_limits, headroom, OfflineExposure};
use kaipiao_core::money::{money_string, parse_money};
use kaipiao_core::sign::{verify_object, RECEIPT_DOMAIN};
use kaipiao_core::wire::{Head, Receipt};
use kaipiao_core::{
    DeviceKey, Draft, Envelope, FieldError, Kind, Lease, LimitWarning, Party, PublicKey,
};
use rows::corrupt;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, LedgerError>;

/// File name of the ledger inside the data directory.
pub const DB_FILE: &str = "ledger.sqlite3";

/// The local device as set up by `init` and `enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalDevice {
    /// Assigned by the authority at enrolment; None before.
    pub device_id: Option<String>,
    pub device_name: String,
    pub seller: Party,
    /// Standard base64 of the device's Ed25519 public key.
    pub public_key: String,
    /// Pinned at enrolment; receipts and leases must verify against it.
    pub authority_public_key: Option<String>,
    /// Primary first, then backups.
    pub servers: Vec<String>,
    pub created_at: String,
    pub enrolled_at: Option<String>,
    /// How the private key is sealed: a CLI prompts for a passphrase only for
    /// [`Protection::PassphraseFile`].
    pub key_protection: Protection,
}

/// A stored lease and how much of it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseState {
    pub lease: Lease,
    /// Next unused sequence number of the block, or None when used up.
    pub next: Option<u64>,
    pub numbers_left: u64,
}

/// What `issue` returns: the signed envelope and the limit warnings to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issued {
    pub envelope: Envelope,
    /// The exact stored JSON bytes of the envelope (what is submitted and exported).
    pub envelope_json: String,
    pub warnings: Vec<LimitWarning>,
}

/// One outbox row, in seq order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxItem {
    pub invoice_id: String,
    pub seq: u64,
    pub number: String,
    /// The exact bytes stored at issuance; submitted as they are.
    pub envelope_json: String,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
}

/// Final status written with a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Accepted,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "accepted" => Some(Status::Accepted),
            "rejected" => Some(Status::Rejected),
            _ => None,
        }
    }
}

/// `kaipiao status` (SPEC 9), plus what a status bar shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerStatus {
    pub device_id: Option<String>,
    pub pending: u64,
    pub oldest_pending_at: Option<String>,
    /// Hours left in the offline window (2 decimals as a string, e.g. "71.50"); None without a lease.
    pub offline_hours_left: Option<String>,
    /// Money string; None without a lease.
    pub offline_amount_left: Option<String>,
    pub numbers_left: u64,
    pub head: Head,
    pub last_sync_at: Option<String>,
    /// Warnings at 75% / 90% of a limit.
    pub warnings: Vec<LimitWarning>,
    /// Set when the queue was stopped (integrity / key reuse) — needs a human.
    pub queue_stopped: Option<String>,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub at: String,
    pub code: String,
    pub message: String,
    pub invoice_id: Option<String>,
}

/// A row of `kaipiao list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceSummary {
    pub seq: u64,
    pub number: String,
    pub id: String,
    pub kind: String,
    pub issued_at: String,
    pub buyer_name: String,
    pub buyer_tax_id: String,
    pub total: String,
    pub status: Status,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    /// Case-insensitive substring of number or buyer name / tax ID.
    pub search: Option<String>,
    /// RFC 3339 bounds on issued_at, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// Case-insensitive substring of the buyer name or tax ID (not the number).
    pub buyer: Option<String>,
    /// Newest (highest seq) first instead of oldest first; limit and offset count from
    /// that end.
    pub newest_first: bool,
}

/// One entry of an invoice's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusEvent {
    pub at: String,
    pub status: String,
    pub detail: String,
}

/// Everything about one invoice (`kaipiao show`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvoiceRecord {
    pub envelope: Envelope,
    pub status: Status,
    /// The receipt exactly as received (parsed), None while pending.
    pub receipt: Option<serde_json::Value>,
    pub history: Vec<StatusEvent>,
    pub outbox: Option<OutboxItem>,
    /// The id of the outage the invoice was issued during (see [`Outage`]), if any.
    pub issued_during_outage: Option<i64>,
}

/// Result of `verify`: Ok with the count, or the first bad seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub invoices: u64,
    pub receipts: u64,
}

/// Held while one process drains the outbox (an advisory lock file in the data dir).
pub struct OutboxLock {
    _file: std::fs::File,
}

/// The ledger of one data directory.
///
/// Methods take `&self`: SQLite serialises writers itself (IMMEDIATE transactions and
/// the busy timeout), so the struct needs no interior lock. It is `Send`, not `Sync`:
/// move it to the thread that uses it, or open one per thread.
pub struct Ledger {
    dir: PathBuf,
    conn: rusqlite::Connection,
}

/// File name of the advisory outbox lock inside the data directory.
pub const OUTBOX_LOCK_FILE: &str = "outbox.lock";

fn invalid(code: &str, field: &str, en: impl Into<String>, zh: impl Into<String>) -> LedgerError {
    LedgerError::Invalid(FieldError::new(code, field, en, zh))
}

fn json_error(e: serde_json::Error) -> LedgerError {
    LedgerError::Io(e.into())
}

/// Millisecond RFC 3339 for retry times: backoff starts at 0.5 s, whole seconds are too coarse.
fn millis_string(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Endpoints must be http(s) URLs; anything else would only fail later, at sync time.
fn check_servers(servers: &[String]) -> Result<Vec<String>> {
    servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.trim();
            let ok = (s.starts_with("https://") || s.starts_with("http://"))
                && s.len() > "http://".len()
                && !s.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok {
                Ok(s.trim_end_matches('/').to_string())
            } else {
                Err(invalid(
                    "invalid_server",
                    &format!("servers[{i}]"),
                    format!("{s:?} is not a server address; write it as https://host[:port]"),
                    format!("{s:?} 不是有效的服务器地址，应为 https://主机[:端口]"),
                ))
            }
        })
        .collect()
}

/// UUID v7 from the issuance time: ids sort like the chain and say when they were made.
fn invoice_id(now: DateTime<Utc>) -> Result<String> {
    let secs = u64::try_from(now.timestamp()).map_err(|_| {
        invalid(
            "clock_invalid",
            "issued_at",
            "this computer's clock is set before 1970; set the correct date and time",
            "本机时钟早于 1970 年，请校正日期和时间",
        )
    })?;
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, now.timestamp_subsec_nanos());
    Ok(uuid::Uuid::new_v7(ts).hyphenated().to_string())
}

/// Integer cents of a money string, for summing pending amounts in SQL.
fn cents(amount: rust_decimal::Decimal) -> Result<i64> {
    let mut a = amount;
    a.rescale(2);
    i64::try_from(a.mantissa()).map_err(|_| {
        invalid(
            "out_of_range",
            "lines",
            "the invoice amount is too large to record",
            "发票金额过大，无法记录",
        )
    })
}

/// Parses a list bound: RFC 3339, or a date (the whole day, UTC).
fn list_bound(field: &str, text: &str, end_of_day: bool) -> Result<String> {
    let t = text.trim();
    if let Some(ts) = kaipiao_core::draft::parse_timestamp(t) {
        return Ok(timestamp(ts));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let time = if end_of_day {
            chrono::NaiveTime::from_hms_opt(23, 59, 59)
        } else {
            chrono::NaiveTime::from_hms_opt(0, 0, 0)
        };
        if let Some(time) = time {
            return Ok(timestamp(d.and_time(time).and_utc()));
        }
    }
    Err(invalid(
        "invalid_date",
        field,
        format!("{t:?} is not a date (2026-01-31) or an RFC 3339 time (2026-01-31T08:00:00Z)"),
        format!("{t:?} 不是日期（2026-01-31）或 RFC 3339 时间（2026-01-31T08:00:00Z）"),
    ))
}

/// A row of `SELECT seq, number, id, kind, issued_at, buyer_name, buyer_tax_id, total,
/// status`, the status still as text.
fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(InvoiceSummary, String)> {
    Ok((
        InvoiceSummary {
            seq: r.get(0)?,
            number: r.get(1)?,
            id: r.get(2)?,
            kind: r.get(3)?,
            issued_at: r.get(4)?,
            buyer_name: r.get(5)?,
            buyer_tax_id: r.get(6)?,
            total: r.get(7)?,
            status: Status::Pending,
        },
        r.get(8)?,
    ))
}

fn with_status((mut s, status): (InvoiceSummary, String)) -> Result<InvoiceSummary> {
    s.status = Status::parse(&status)
        .ok_or_else(|| corrupt(s.seq, format!("unknown status {status:?}")))?;
    Ok(s)
}

/// `select` with the WHERE clause of `filter` (no order, limit or offset) and its arguments.
fn list_query(select: &str, filter: &ListFilter) -> Result<(String, Vec<rusqlite::types::Value>)> {
    let mut sql = format!("{select} WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let like = |text: &str| {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    };
    let text = |t: &Option<String>| {
        t.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(status) = filter.status {
        args.push(status.as_str().to_string().into());
        sql.push_str(&format!(" AND status = ?{}", args.len()));
    }
    if let Some(search) = text(&filter.search) {
        args.push(like(&search).into());
        let n = args.len();
        sql.push_str(&format!(
            " AND (number LIKE ?{n} ESCAPE '\\' OR buyer_name LIKE ?{n} ESCAPE '\\' OR buyer_tax_id LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some(buyer) = text(&filter.buyer) {
        args.push(like(&buyer).into());
        let n = args.len();
        sql.push_str(&format!(
            " AND (buyer_name LIKE ?{n} ESCAPE '\\' OR buyer_tax_id LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some(from) = &filter.from {
        args.push(list_bound("from", from, false)?.into());
        sql.push_str(&format!(" AND issued_at >= ?{}", args.len()));
    }
    if let Some(to) = &filter.to {
        args.push(list_bound("to", to, true)?.into());
        sql.push_str(&format!(" AND issued_at <= ?{}", args.len()));
    }
    Ok((sql, args))
}

/// While storing receipts, this connection checkpoints the WAL once it holds this many
/// pages (SQLite's default is 1000): a drain writes most of the WAL, so it also copies
/// it back, before an issuance's commit would cross the default and pay for it.
const WAL_CHECKPOINT_PAGES: i64 = 256;

/// A receipt that passed every check that needs no database (see `Ledger::check_receipt`).
struct CheckedReceipt<'a> {
    invoice_id: &'a str,
    /// Stored exactly as received.
    json: &'a str,
    value: serde_json::Value,
    receipt: Receipt,
    status: Status,
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `dir`, backing up and migrating an older
    /// database, refusing a newer one.
    pub fn open(dir: &Path) -> Result<Ledger> {
        create_private_dir(dir)?;
        let path = dir.join(DB_FILE);
        create_private_file(&path)?;
        let conn = rusqlite::Connection::open(&path)?;
        schema::configure(&conn)?;
        schema::migrate(&conn, &path)?;
        Ok(Ledger {
            dir: dir.to_path_buf(),
            conn,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// An IMMEDIATE transaction: takes the write lock up front, so the busy timeout applies
    /// (a deferred one that upgrades later fails with SQLITE_BUSY at once).
    fn write_tx(&self) -> Result<Transaction<'_>> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// A read transaction: one consistent snapshot for multi-query reads (WAL).
    fn read_tx(&self) -> Result<Transaction<'_>> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Deferred,
        )?)
    }

    /// Sets up the device: validates the seller, creates and seals the key. Refused when
    /// the directory already holds a device.
    pub fn init(
        &self,
        seller: &Party,
        device_name: &str,
        keys: &KeySource,
        now: DateTime<Utc>,
    ) -> Result<LocalDevice> {
        let seller = kaipiao_core::draft::validate_seller(seller)?;
        let name = device_name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > 100 || name.chars().any(char::is_control) {
            return Err(invalid(
                if chars == 0 {
                    "missing_field"
                } else {
                    "invalid_text"
                },
                "device_name",
                format!("needs 1 to 100 characters without line breaks (got {chars})"),
                format!("应为 1 至 100 个字符且不含换行（当前 {chars} 个）"),
            ));
        }
        // The write lock is held while the key is sealed, so two concurrent inits cannot
        // both believe they created the device.
        let tx = self.write_tx()?;
        if rows::load_device(&tx)?.is_some() {
            return Err(LedgerError::AlreadyInitialized);
        }
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, secret.as_mut());
        let public_key = DeviceKey::from_bytes(&secret).public().to_base64();
        let key_id = format!("device-key-{}", uuid::Uuid::new_v4().hyphenated());
        let protection = keystore::seal(&self.dir, &key_id, &secret, &public_key, keys)?;
        let seller_json = serde_json::to_string(&seller).map_err(json_error)?;
        tx.execute(
            "INSERT INTO device (id, key_id, key_protection, device_name, seller, public_key, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
            params![key_id, protection.as_str(), name, seller_json, public_key, timestamp(now)],
        )?;
        tx.commit()?;
        Ok(LocalDevice {
            device_id: None,
            device_name: name.to_string(),
            seller,
            public_key,
            authority_public_key: None,
            servers: Vec::new(),
            created_at: timestamp(now),
            enrolled_at: None,
            key_protection: protection,
        })
    }

    pub fn device(&self) -> Result<Option<LocalDevice>> {
        Ok(rows::load_device(&self.conn)?.map(|d| d.public()))
    }

    /// Unseals the device key (only issue, import, enroll and sync need it).
    pub fn unseal_key(&self, keys: &KeySource) -> Result<DeviceKey> {
        let dev = rows::require_device(&self.conn)?;
        let secret = keystore::unseal(
            &self.dir,
            &dev.key_id,
            dev.protection,
            &dev.public_key,
            keys,
        )?;
        Ok(DeviceKey::from_bytes(&secret))
    }

    /// Records the authority's answer to enrolment; pins its key.
    pub fn record_enrollment(
        &self,
        device_id: &str,
        authority_public_key: &str,
        servers: &[String],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let device_id = device_id.trim();
        let canonical = uuid::Uuid::parse_str(device_id).map(|u| u.hyphenated().to_string());
        if canonical.as_deref() != Ok(device_id) {
            return Err(invalid(
                "invalid_device_id",
                "device_id",
                format!("{device_id:?} is not a lowercase hyphenated UUID"),
                format!("{device_id:?} 不是小写带连字符的 UUID"),
            ));
        }
        let authority_public_key = authority_public_key.trim();
        if PublicKey::from_base64(authority_public_key).is_err() {
            return Err(invalid(
                "invalid_public_key",
                "authority_public_key",
                "is not 32 bytes of standard base64",
                "不是 32 字节的标准 base64 公钥",
            ));
        }
        let servers = check_servers(servers)?;
        let servers_json = serde_json::to_string(&servers).map_err(json_error)?;
        let tx = self.write_tx()?;
        let dev = rows::require_device(&tx)?;
        if let Some(existing) = &dev.device_id {
            if existing != device_id {
                return Err(invalid(
                    "device_id_changed",
                    "device_id",
                    format!("this data directory is already enrolled as device {existing}; the authority answered {device_id}. Use a new data directory for a new device"),
                    format!("此数据目录已登记为设备 {existing}，税务机关返回 {device_id}；新设备请使用新的数据目录"),
                ));
            }
        }
        if let Some(pinned) = &dev.authority_public_key {
            if pinned != authority_public_key {
                return Err(invalid(
                    "authority_key_changed",
                    "authority_public_key",
                    "differs from the authority key pinned at enrolment; receipts signed with it would not be trusted. Check that the server is the real authority",
                    "与登记时固定的税务机关公钥不同，其签名的回执不可信；请确认服务器确为税务机关",
                ));
            }
        }
        tx.execute(
            "UPDATE device SET device_id = ?1, authority_public_key = ?2, servers = ?3,
                    enrolled_at = COALESCE(enrolled_at, ?4)
             WHERE id = 1",
            params![
                device_id,
                authority_public_key,
                servers_json,
                timestamp(now)
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces the endpoint list (primary first).
    pub fn set_servers(&self, servers: &[String]) -> Result<()> {
        let servers = check_servers(servers)?;
        let json = serde_json::to_string(&servers).map_err(json_error)?;
        let tx = self.write_tx()?;
        rows::require_device(&tx)?;
        tx.execute("UPDATE device SET servers = ?1 WHERE id = 1", [json])?;
        tx.commit()?;
        Ok(())
    }

    /// Verifies a lease against the pinned authority key and the device id, and stores it.
    /// Storing the same lease again is a no-op; leases are used in the order stored.
    pub fn store_lease(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
        let tx = self.write_tx()?;
        let dev = rows::require_device(&tx)?;
        let device_id = dev.device_id.clone().ok_or(LedgerError::NotEnrolled)?;
        let pinned = dev.pinned_key()?;
        if lease.verify(&pinned).is_err() {
            return Err(invalid(
                "lease_signature_invalid",
                "lease.signature",
                "does not verify against the authority key pinned at enrolment; the lease is not stored",
                "无法用登记时固定的税务机关公钥验证，号码段未保存",
            ));
        }
        if lease.device_id != device_id {
            return Err(invalid(
                "lease_wrong_device",
                "lease.device_id",
                format!(
                    "the lease is for device {}, this is {device_id}",
                    lease.device_id
                ),
                format!("号码段属于设备 {}，本设备为 {device_id}", lease.device_id),
            ));
        }
        lease.terms()?;
        let json = serde_json::to_string(lease).map_err(json_error)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT lease_json FROM leases WHERE lease_id = ?1",
                [&lease.lease_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(stored) = existing {
            let same = serde_json::from_str::<Lease>(&stored).is_ok_and(|l| &l == lease);
            if same {
                return Ok(());
            }
            return Err(invalid(
                "lease_conflict",
                "lease.lease_id",
                format!(
                    "lease {} is already stored with other terms",
                    lease.lease_id
                ),
                format!("号码段 {} 已以不同内容保存", lease.lease_id),
            ));
        }
        let overlapping: Option<String> = tx
            .query_row(
                "SELECT lease_id FROM leases WHERE prefix = ?1 AND first <= ?3 AND last >= ?2 LIMIT 1",
                params![lease.prefix, lease.first, lease.last],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(other) = overlapping {
            return Err(invalid(
                "lease_overlap",
                "lease.first",
                format!("numbers {}..{} of prefix {} overlap lease {other}; a number is never used twice", lease.first, lease.last, lease.prefix),
                format!("前缀 {} 的号码 {}..{} 与号码段 {other} 重叠；发票号码不得重复使用", lease.prefix, lease.first, lease.last),
            ));
        }
        tx.execute(
            "INSERT INTO leases (lease_id, position, lease_json, prefix, first, last, next, stored_at)
             VALUES (?1, (SELECT COALESCE(MAX(position), 0) + 1 FROM leases), ?2, ?3, ?4, ?5, ?4, ?6)",
            params![lease.lease_id, json, lease.prefix, lease.first, lease.last, timestamp(now)],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn leases(&self) -> Result<Vec<LeaseState>> {
        Ok(rows::leases(&self.conn)?
            .into_iter()
            .map(|l| LeaseState {
                next: (l.next <= l.lease.last).then_some(l.next),
                numbers_left: l.numbers_left(),
                lease: l.lease,
            })
            .collect())
    }

    /// Resolves `draft.original` for a credit note: the original and the credits already
    /// issued against it that were not rejected.
    fn credit_context(
        conn: &rusqlite::Connection,
        draft: &Draft,
        kind: Kind,
    ) -> Result<Option<kaipiao_core::CreditContext>> {
        if kind != Kind::Credit {
            return Ok(None);
        }
        // A missing number is reported by build_invoice / compute_lines, naming `original`.
        let Some(number) = draft
            .original
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            return Ok(None);
        };
        let Some((_, original, status)) = rows::invoice_by_number(conn, number)? else {
            return Err(invalid(
                "original_unknown",
                "original",
                format!("{number} is not an invoice of this device; check the 20-digit number (kaipiao list)"),
                format!("{number} 不是本设备开具的发票，请核对 20 位发票号码（kaipiao list）"),
            ));
        };
        let prior_credits = rows::prior_credits(conn, &original.id, None)?;
        Ok(Some(kaipiao_core::CreditContext {
            original,
            original_status: status,
            prior_credits,
        }))
    }

    /// The one issuance transaction: validate -> limits -> take a number -> build, hash,
    /// sign, link -> insert invoice, outbox row and history -> commit.
    pub fn issue(&self, draft: &Draft, key: &DeviceKey, now: DateTime<Utc>) -> Result<Issued> {
        let tx = self.write_tx()?;
        let dev = rows::require_device(&tx)?;
        let device_id = dev.device_id.clone().ok_or(LedgerError::NotEnrolled)?;
        if key.public().to_base64() != dev.public_key {
            return Err(LedgerError::Key(
                "this key is not the device's key (its public key differs from the ledger's)"
                    .into(),
            ));
        }
        let kind = draft.kind()?;
        let credit = Self::credit_context(&tx, draft, kind)?;
        let last = rows::last_invoice(&tx)?;
        kaipiao_core::draft::check_clock(last.as_ref().map(|(_, _, at)| at.as_str()), now)?;
        let (seq, prev_hash) = match &last {
            Some((seq, hash, _)) => (seq + 1, hash.clone()),
            None => (1, kaipiao_core::ZERO_HASH.to_string()),
        };
        let lease = rows::current_lease(&tx)?;
        let ctx = IssueContext {
            id: invoice_id(now)?,
            device_id,
            seq,
            prev_hash,
            // Without a lease the draft is still validated first, so the clerk fixes the
            // draft and gets numbers in one trip instead of two.
            number: lease
                .as_ref()
                .map(|l| kaipiao_core::model::invoice_number(&l.lease.prefix, l.next))
                .unwrap_or_default(),
            issued_at: now,
            seller: dev.seller.clone(),
        };
        let invoice = kaipiao_core::build_invoice(draft, &ctx, credit.as_ref())?;
        let Some(lease) = lease else {
            return Err(LedgerError::NoNumbers);
        };
        let terms = lease.lease.terms()?;
        let total_amount = parse_money(&invoice.total_amount)
            .ok_or_else(|| corrupt(seq, "the computed total is not money"))?;
        let amount_cents = cents(total_amount)?;
        let (exposure, _, _) = rows::exposure(&tx)?;
        let warnings = check_limits(&terms, &exposure, total_amount, now)?;

        let envelope = kaipiao_core::sign::seal_invoice(key, invoice);
        let envelope_json = serde_json::to_string(&envelope).map_err(json_error)?;
        let inv = &envelope.invoice;
        let original_id = inv.original.as_ref().map(|o| o.id.as_str());
        tx.prepare_cached(
            "INSERT INTO invoices (seq, id, number, kind, issued_at, buyer_name, buyer_tax_id, total,
                                   total_amount, total_amount_cents, hash, envelope, status, original_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending', ?13)",
        )?
        .execute(params![
            inv.seq,
            inv.id,
            inv.number,
            inv.kind.as_str(),
            inv.issued_at,
            inv.buyer.name,
            inv.buyer.tax_id,
            inv.total,
            inv.total_amount,
            amount_cents,
            envelope.hash,
            envelope_json,
            original_id,
        ])?;
        tx.prepare_cached("INSERT INTO outbox (invoice_id, seq) VALUES (?1, ?2)")?
            .execute(params![inv.id, inv.seq])?;
        Self::mark_if_in_outage(&tx, inv.seq)?;
        tx.prepare_cached(
            "INSERT INTO history (invoice_id, at, status, detail) VALUES (?1, ?2, 'issued', ?3)",
        )?
        .execute(params![
            inv.id,
            inv.issued_at,
            format!("number {}", inv.number)
        ])?;
        let advanced = tx
            .prepare_cached("UPDATE leases SET next = next + 1 WHERE lease_id = ?1 AND next = ?2")?
            .execute(params![lease.lease.lease_id, lease.next])?;
        if advanced != 1 {
            return Err(corrupt(
                seq,
                format!("lease {} moved during issuance", lease.lease.lease_id),
            ));
        }
        tx.commit()?;
        Ok(Issued {
            envelope,
            envelope_json,
            warnings,
        })
    }

    /// Lines, totals and capitals for a draft, without issuing (no key needed).
    /// Runs the same validation as `issue` (credit notes against the stored original) and
    /// refuses what the current lease's single-invoice or amount cap would certainly refuse.
    pub fn preview(&self, draft: &Draft) -> Result<Computed> {
        let tx = self.read_tx()?;
        let seller = rows::load_device(&tx)?
            .map(|d| d.seller)
            .unwrap_or_default();
        let kind = draft.kind()?;
        let credit = Self::credit_context(&tx, draft, kind)?;
        let ctx = IssueContext {
            id: String::new(),
            device_id: String::new(),
            seq: 0,
            prev_hash: kaipiao_core::ZERO_HASH.to_string(),
            number: String::new(),
            issued_at: DateTime::<Utc>::UNIX_EPOCH,
            seller,
        };
        let invoice = kaipiao_core::build_invoice(draft, &ctx, credit.as_ref())?;
        if let Some(lease) = rows::lease_in_force(&tx)? {
            let terms = lease.lease.terms()?;
            let total = parse_money(&invoice.total_amount).unwrap_or_default();
            let (exposure, _, _) = rows::exposure(&tx)?;
            // The window depends on the issuing time, which a preview does not have.
            let no_window = OfflineExposure {
                oldest_pending_at: None,
                ..exposure
            };
            check_limits(&terms, &no_window, total, DateTime::<Utc>::UNIX_EPOCH)?;
        }
        Ok(Computed {
            lines: invoice.lines,
            total_amount: invoice.total_amount,
            total_tax: invoice.total_tax,
            total: invoice.total,
        })
    }

    /// Pending items in seq order (all of them when `due_before` is None, else those whose
    /// next_attempt_at is unset or not after it), at most `limit`.
    pub fn outbox(
        &self,
        due_before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        let due = due_before.map(|t| t.timestamp_millis());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT o.invoice_id, o.seq, i.number, i.envelope, o.attempts, o.next_attempt_ms, o.last_error
             FROM outbox o JOIN invoices i ON i.id = o.invoice_id
             WHERE ?1 IS NULL OR o.next_attempt_ms IS NULL OR o.next_attempt_ms <= ?1
             ORDER BY o.seq LIMIT ?2",
        )?;
        let items = stmt
            .query_map(params![due, limit], |r| {
                Ok(OutboxItem {
                    invoice_id: r.get(0)?,
                    seq: r.get(1)?,
                    number: r.get(2)?,
                    envelope_json: r.get(3)?,
                    attempts: r.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
                    next_attempt_at: r.get::<_, Option<i64>>(5)?.and_then(millis_string),
                    last_error: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(items)
    }

    /// Records a failed attempt on an outbox item (kept, with its key and bytes). A no-op
    /// when the item already left the outbox (its receipt arrived meanwhile).
    pub fn record_attempt(
        &self,
        invoice_id: &str,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        Self::attempt_in(&tx, invoice_id, error, next_attempt_at)?;
        tx.commit()?;
        Ok(())
    }

    fn attempt_in(
        tx: &Transaction<'_>,
        invoice_id: &str,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        tx.prepare_cached(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 WHERE invoice_id = ?1",
        )?
        .execute(params![invoice_id, error, next_attempt_at.map(|t| t.timestamp_millis())])?;
        Ok(())
    }

    /// Verifies the receipt against the pinned authority key and the stored invoice
    /// (id, number, hash), then in one transaction stores it exactly as received, sets
    /// the final status, appends history and deletes the outbox row. Idempotent for the
    /// same receipt.
    pub fn store_receipt(
        &self,
        invoice_id: &str,
        receipt_json: &str,
        now: DateTime<Utc>,
    ) -> Result<Status> {
        let pinned = rows::require_device(&self.conn)?.pinned_key()?;
        let checked = Self::check_receipt(&pinned, invoice_id, receipt_json)?;
        let tx = self.write_tx()?;
        let status = Self::store_checked_receipt(&tx, &checked, now)?;
        tx.commit()?;
        Ok(status)
    }

    /// Many receipts at once (the answer to a batch): each is checked exactly as
    /// [`Ledger::store_receipt`] checks one, its signature outside any transaction, and all
    /// that pass are stored in ONE short IMMEDIATE transaction — one commit for the group
    /// instead of one per invoice, so a drain neither costs an fsync per receipt nor holds
    /// issuance back for longer than one short write.
    ///
    /// The results are per item, in order: the final status (also for a repeat of a
    /// receipt already stored), or [`LedgerError::BadReceipt`] for a receipt that was
    /// refused and not stored; a bad receipt never keeps the good ones out. The outer
    /// `Err` is a database failure, and then nothing of this call is stored.
    pub fn store_receipts(
        &self,
        receipts: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Status>>> {
        let results = self.store_group_unsynced(receipts, now)?;
        if results.iter().any(Result::is_ok) {
            self.sync_wal()?;
        }
        Ok(results)
    }

    /// The receipts of a whole batch answer: stored in groups of `group`, each group as
    /// [`Ledger::store_receipts`] stores it (one short transaction, synced to disk after
    /// the write lock is released), stopping after a group with a refused receipt. An
    /// issuance meeting the drain waits for one small group's writes at most, and its own
    /// sync of the WAL finds little of the drain's left to flush (one sync per batch
    /// instead was measured worse for the clerk: docs/BENCHMARKS.md). When this returns,
    /// what it stored is on disk.
    ///
    /// Results are per item for the groups that were attempted. The outer `Err` is a
    /// database failure: the groups before the failing one are stored (and synced), the
    /// failing one not.
    pub fn store_receipt_groups(
        &self,
        receipts: &[(&str, &str)],
        group: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Status>>> {
        let mut results = Vec::with_capacity(receipts.len());
        let mut outcome = Ok(());
        for chunk in receipts.chunks(group.max(1)) {
            match self.store_group_unsynced(chunk, now) {
                Ok(stored) => {
                    let refused = stored.iter().any(Result::is_err);
                    if stored.iter().any(Result::is_ok) {
                        self.sync_wal()?;
                    }
                    results.extend(stored);
                    if refused {
                        break;
                    }
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        outcome.map(|()| results)
    }

    /// One group of [`Ledger::store_receipts`], committed without waiting for the disk:
    /// the caller syncs the WAL before it returns.
    fn store_group_unsynced(
        &self,
        receipts: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Status>>> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let pinned = rows::require_device(&self.conn)?.pinned_key()?;
        let checked: Vec<Result<CheckedReceipt<'_>>> = receipts
            .iter()
            .map(|(id, json)| Self::check_receipt(&pinned, id, json))
            .collect();
        if checked.iter().all(Result::is_err) {
            return Ok(checked.into_iter().map(|c| c.map(|c| c.status)).collect());
        }
        let results = self.write_unsynced(|tx| {
            let mut results = Vec::with_capacity(checked.len());
            for item in checked {
                results.push(match item {
                    Ok(c) => match Self::store_checked_receipt(tx, &c, now) {
                        Ok(status) => Ok(status),
                        // Refused before anything of it was written: the others go on.
                        Err(bad @ LedgerError::BadReceipt(_)) => Err(bad),
                        // The transaction is rolled back: nothing of the group is kept.
                        Err(e) => return Err(e),
                    },
                    Err(bad) => Err(bad),
                });
            }
            Ok(results)
        })?;
        Ok(results)
    }

    /// `work` in one IMMEDIATE transaction whose commit does not wait for the disk while it
    /// holds the write lock: the commit runs with synchronous=NORMAL (the WAL frames are
    /// written, not yet synced). The caller makes it durable with [`Ledger::sync_wal`]
    /// after the lock is released and before it returns, so it still returns only once
    /// its data is on disk, as with synchronous=FULL, but an issuance waiting for the lock
    /// waits for the writes only, not for the fsync.
    fn write_unsynced<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        // The safety level cannot change inside a transaction: set around it, always restored.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn
            .pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        let done = self.write_tx().and_then(|tx| {
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        });
        let restored = self
            .conn
            .pragma_update(None, "synchronous", "FULL")
            .and_then(|()| self.conn.pragma_update(None, "wal_autocheckpoint", 1000));
        let value = done?;
        restored?;
        Ok(value)
    }

    /// Syncs the WAL file: what [`Ledger::write_unsynced`] committed is on disk. A failed
    /// sync is an `Io` error although the transactions committed (the next durable commit
    /// of the ledger covers them).
    fn sync_wal(&self) -> Result<()> {
        let mut wal = self.db_path().into_os_string();
        wal.push("-wal");
        std::fs::File::open(&wal)?.sync_data()?;
        Ok(())
    }

    /// What needs no database: JSON, the authority signature against the pinned key,
    /// the receipt's shape, status, invoice id and authority code.
    fn check_receipt<'a>(
        pinned: &PublicKey,
        invoice_id: &'a str,
        receipt_json: &'a str,
    ) -> Result<CheckedReceipt<'a>> {
        let bad = |w: String| LedgerError::BadReceipt(w);
        let value: serde_json::Value =
            serde_json::from_str(receipt_json).map_err(|e| bad(format!("not JSON ({e})")))?;
        verify_object(pinned, RECEIPT_DOMAIN, &value, "authority_signature").map_err(|e| {
            bad(format!(
                "the authority signature does not verify against the key pinned at enrolment ({e})"
            ))
        })?;
        let receipt: Receipt = serde_json::from_value(value.clone())
            .map_err(|e| bad(format!("not a receipt ({e})")))?;
        let status = match receipt.status.as_str() {
            "accepted" => Status::Accepted,
            "rejected" => Status::Rejected,
            other => {
                return Err(bad(format!(
                    "status {other:?} is neither accepted nor rejected"
                )))
            }
        };
        if receipt.invoice_id != invoice_id {
            return Err(bad(format!(
                "it is for invoice {}, not {invoice_id}",
                receipt.invoice_id
            )));
        }
        if receipt.authority_code.len() != 20
            || !receipt.authority_code.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad(format!(
                "authority_code {:?} is not 20 digits",
                receipt.authority_code
            )));
        }
        Ok(CheckedReceipt {
            invoice_id,
            json: receipt_json,
            value,
            receipt,
            status,
        })
    }

    /// Matches a checked receipt with its invoice (number, hash) and stores it in `tx`:
    /// receipt, final status, history, outbox row gone. Every refusal (`BadReceipt`)
    /// comes before the first write.
    fn store_checked_receipt(
        tx: &Transaction<'_>,
        checked: &CheckedReceipt<'_>,
        now: DateTime<Utc>,
    ) -> Result<Status> {
        let bad = |w: String| LedgerError::BadReceipt(w);
        let CheckedReceipt {
            invoice_id,
            json: receipt_json,
            value,
            receipt,
            status,
        } = checked;
        let (invoice_id, status) = (*invoice_id, *status);
        let row: Option<(String, String, String)> = tx
            .prepare_cached("SELECT number, hash, status FROM invoices WHERE id = ?1")?
            .query_row([invoice_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((number, hash, current)) = row else {
            return Err(bad(format!("no invoice {invoice_id} in this ledger")));
        };
        if receipt.number != number {
            return Err(bad(format!(
                "number {} does not match the invoice's {number}",
                receipt.number
            )));
        }
        if receipt.hash != hash {
            return Err(bad(format!(
                "hash {} does not match the invoice's {hash}: the authority received other bytes",
                receipt.hash
            )));
        }
        let stored: Option<String> = tx
            .prepare_cached("SELECT receipt FROM receipts WHERE invoice_id = ?1")?
            .query_row([invoice_id], |r| r.get(0))
            .optional()?;
        if let Some(stored) = stored {
            let same =
                serde_json::from_str::<serde_json::Value>(&stored).is_ok_and(|v| v == *value);
            if same {
                return Ok(Status::parse(&current).unwrap_or(status));
            }
            return Err(bad(format!(
                "invoice {number} already has a different receipt ({current}); the new one is not stored"
            )));
        }
        let detail = match status {
            Status::Rejected => receipt
                .reasons
                .iter()
                .map(|r| {
                    if r.field.is_empty() {
                        format!("{}: {}", r.code, r.message)
                    } else {
                        format!("{} ({}): {}", r.code, r.field, r.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => format!("authority code {}", receipt.authority_code),
        };
        tx.prepare_cached(
            "INSERT INTO receipts (invoice_id, receipt, status, stored_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            invoice_id,
            receipt_json,
            status.as_str(),
            timestamp(now)
        ])?;
        tx.prepare_cached("UPDATE invoices SET status = ?2 WHERE id = ?1")?
            .execute(params![invoice_id, status.as_str()])?;
        tx.prepare_cached(
            "INSERT INTO history (invoice_id, at, status, detail) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![invoice_id, timestamp(now), status.as_str(), detail])?;
        tx.prepare_cached("DELETE FROM outbox WHERE invoice_id = ?1")?
            .execute([invoice_id])?;
        Ok(status)
    }

    pub fn status(&self, now: DateTime<Utc>) -> Result<LedgerStatus> {
        let tx = self.read_tx()?;
        let dev = rows::require_device(&tx)?;
        let (exposure, pending, oldest) = rows::exposure(&tx)?;
        let leases = rows::leases(&tx)?;
        let numbers_left = leases
            .iter()
            .map(|l| l.numbers_left())
            .fold(0u64, u64::saturating_add);
        let in_force = leases
            .iter()
            .find(|l| l.numbers_left() > 0)
            .or(leases.last());
        let (mut hours_left, mut amount_left, mut warnings) = (None, None, Vec::new());
        if let Some(lease) = in_force {
            let terms = lease.lease.terms()?;
            let room = headroom(&terms, &exposure, now);
            hours_left = Some(money_string(room.hours_left));
            amount_left = Some(money_string(room.amount_left));
            warnings = match check_limits(&terms, &exposure, rust_decimal::Decimal::ZERO, now) {
                Ok(w) => w,
                // Used up: shown as a 100% warning, since nothing more can be issued offline.
                Err(e) => vec![LimitWarning {
                    limit: if e.code == "offline_hours_exceeded" {
                        "offline_hours"
                    } else {
                        "offline_amount"
                    },
                    threshold: 100,
                    en: e.en,
                    zh: e.zh,
                }],
            };
        }
        let head = Self::head_in(&tx)?;
        let alerts = Self::alerts_in(&tx)?;
        Ok(LedgerStatus {
            device_id: dev.device_id,
            pending,
            oldest_pending_at: oldest,
            offline_hours_left: hours_left,
            offline_amount_left: amount_left,
            numbers_left,
            head,
            last_sync_at: dev.last_sync_at,
            warnings,
            queue_stopped: dev.queue_stopped,
            alerts,
        })
    }

    /// The stored envelope bytes of the invoice at `seq` (any status), for resubmitting
    /// to an authority whose head is behind ours (chain_gap / restored backup).
    /// Returns `(invoice_id, envelope_json)`.
    pub fn envelope_at(&self, seq: u64) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, envelope FROM invoices WHERE seq = ?1")?
            .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn head_in(conn: &rusqlite::Connection) -> Result<Head> {
        Ok(match rows::last_invoice(conn)? {
            Some((seq, hash, _)) => Head { seq, hash },
            None => Head {
                seq: 0,
                hash: kaipiao_core::ZERO_HASH.to_string(),
            },
        })
    }

    pub fn head(&self) -> Result<Head> {
        Self::head_in(&self.conn)
    }

    pub fn list(&self, filter: &ListFilter) -> Result<Vec<InvoiceSummary>> {
        let (mut sql, mut args) = list_query(
            "SELECT seq, number, id, kind, issued_at, buyer_name, buyer_tax_id, total, status FROM invoices",
            filter,
        )?;
        sql.push_str(if filter.newest_first {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq"
        });
        let limit = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = filter
            .offset
            .map_or(0, |o| i64::try_from(o).unwrap_or(i64::MAX));
        args.push(limit.into());
        sql.push_str(&format!(" LIMIT ?{}", args.len()));
        args.push(offset.into());
        sql.push_str(&format!(" OFFSET ?{}", args.len()));
        let mut stmt = self.conn.prepare(&sql)?;
        let raw = stmt
            .query_map(rusqlite::params_from_iter(args), summary_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raw.into_iter().map(with_status).collect()
    }

    /// The seqs of what `list` returns for `filter`, in the same order and window, read
    /// without the rows: the index of a virtualized list (8 bytes an invoice), whose pages
    /// [`Ledger::summaries`] then reads by seq.
    pub fn list_seqs(&self, filter: &ListFilter) -> Result<Vec<u64>> {
        // No ORDER BY: without conditions SQLite can then count through a narrow index
        // instead of the table, whose rows carry the whole envelope.
        let (sql, args) = list_query("SELECT seq FROM invoices", filter)?;
        let mut seqs = self
            .conn
            .prepare(&sql)?
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, u64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        seqs.sort_unstable();
        if filter.newest_first {
            seqs.reverse();
        }
        let offset = usize::try_from(filter.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = filter
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(seqs.into_iter().skip(offset).take(limit).collect())
    }

    /// The list rows of `seqs`, in the order given; a seq the ledger does not hold is
    /// skipped.
    pub fn summaries(&self, seqs: &[u64]) -> Result<Vec<InvoiceSummary>> {
        let tx = self.read_tx()?;
        let mut stmt = tx.prepare_cached(
            "SELECT seq, number, id, kind, issued_at, buyer_name, buyer_tax_id, total, status FROM invoices WHERE seq = ?1",
        )?;
        let mut rows = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(raw) = stmt.query_row([seq], summary_row).optional()? {
                rows.push(with_status(raw)?);
            }
        }
        Ok(rows)
    }

    /// By 20-digit number or invoice id.
    pub fn show(&self, number_or_id: &str) -> Result<InvoiceRecord> {
        let key = number_or_id.trim();
        let tx = self.read_tx()?;
        let row: Option<(u64, String, String, String)> = tx
            .prepare_cached("SELECT seq, id, envelope, status FROM invoices WHERE number = ?1 OR id = lower(?1)")?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let Some((seq, id, text, status)) = row else {
            return Err(LedgerError::NotFound(key.to_string()));
        };
        let envelope = rows::parse_envelope(seq, &text)?;
        let status = Status::parse(&status)
            .ok_or_else(|| corrupt(seq, format!("unknown status {status:?}")))?;
        let receipt: Option<String> = tx
            .prepare_cached("SELECT receipt FROM receipts WHERE invoice_id = ?1")?
            .query_row([&id], |r| r.get(0))
            .optional()?;
        let receipt = receipt
            .map(|t| {
                serde_json::from_str(&t).map_err(|_| corrupt(seq, "the stored receipt is not JSON"))
            })
            .transpose()?;
        let history = tx
            .prepare_cached(
                "SELECT at, status, detail FROM history WHERE invoice_id = ?1 ORDER BY id",
            )?
            .query_map([&id], |r| {
                Ok(StatusEvent {
                    at: r.get(0)?,
                    status: r.get(1)?,
                    detail: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let outbox = tx
            .prepare_cached("SELECT seq, attempts, next_attempt_ms, last_error FROM outbox WHERE invoice_id = ?1")?
            .query_row([&id], |r| {
                Ok(OutboxItem {
                    invoice_id: id.clone(),
                    seq: r.get(0)?,
                    number: envelope.invoice.number.clone(),
                    envelope_json: text.clone(),
                    attempts: r.get::<_, i64>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
                    next_attempt_at: r.get::<_, Option<i64>>(2)?.and_then(millis_string),
                    last_error: r.get(3)?,
                })
            })
            .optional()?;
        let issued_during_outage = Self::outage_of(&tx, seq)?;
        Ok(InvoiceRecord {
            envelope,
            status,
            receipt,
            history,
            outbox,
            issued_during_outage,
        })
    }

    /// Recomputes every hash, signature, link and receipt signature.
    /// Err(LedgerError::Integrity { seq, .. }) names the first bad seq.
    pub fn verify(&self) -> Result<VerifyReport> {
        let tx = self.read_tx()?;
        audit::verify(&tx)
    }

    /// Writes the SPEC 9 export (JSON Lines). Returns the number of invoices.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<u64> {
        let tx = self.read_tx()?;
        audit::export(&tx, out)
    }

    pub fn set_last_sync(&self, now: DateTime<Utc>) -> Result<()> {
        self.update_device(
            "UPDATE device SET last_sync_at = ?1 WHERE id = 1",
            params![timestamp(now)],
        )
    }

    fn update_device(&self, sql: &str, args: impl rusqlite::Params) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute(sql, args)? == 0 {
            return Err(LedgerError::NotInitialized);
        }
        tx.commit()?;
        Ok(())
    }

    /// Raises an alert for a human (integrity, key reuse, bad receipt signature, auth).
    pub fn raise_alert(
        &self,
        code: &str,
        message: &str,
        invoice_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO alerts (at, code, message, invoice_id) VALUES (?1, ?2, ?3, ?4)",
            params![timestamp(now), code, message, invoice_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn alerts_in(conn: &rusqlite::Connection) -> Result<Vec<Alert>> {
        Ok(conn
            .prepare_cached("SELECT id, at, code, message, invoice_id FROM alerts WHERE dismissed_at IS NULL ORDER BY id")?
            .query_map([], |r| {
                Ok(Alert {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    code: r.get(2)?,
                    message: r.get(3)?,
                    invoice_id: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Alerts not yet dismissed, oldest first (also in [`LedgerStatus::alerts`]).
    pub fn alerts(&self) -> Result<Vec<Alert>> {
        Self::alerts_in(&self.conn)
    }

    /// A human has read the alert: it leaves the status but stays in the file.
    pub fn dismiss_alert(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE alerts SET dismissed_at = ?2 WHERE id = ?1 AND dismissed_at IS NULL",
            params![id, timestamp(now)],
        )?;
        if n == 0 {
            return Err(LedgerError::NotFound(format!("alert {id}")));
        }
        tx.commit()?;
        Ok(())
    }

    /// Stops the queue (SPEC 6: integrity / idempotency_key_reused); sync refuses to run
    /// until a human clears it.
    pub fn stop_queue(&self, reason: &str, now: DateTime<Utc>) -> Result<()> {
        self.update_device(
            "UPDATE device SET queue_stopped = ?1, queue_stopped_at = ?2 WHERE id = 1",
            params![reason, timestamp(now)],
        )
    }

    pub fn queue_stopped(&self) -> Result<Option<String>> {
        Ok(rows::require_device(&self.conn)?.queue_stopped)
    }

    pub fn clear_queue_stop(&self) -> Result<()> {
        self.update_device(
            "UPDATE device SET queue_stopped = NULL, queue_stopped_at = NULL WHERE id = 1",
            [],
        )
    }

    /// Seconds to add to the local clock for device-signed requests (401 clock_skew).
    pub fn clock_offset(&self) -> Result<i64> {
        Ok(rows::require_device(&self.conn)?.clock_offset)
    }

    pub fn set_clock_offset(&self, secs: i64) -> Result<()> {
        self.update_device("UPDATE device SET clock_offset = ?1 WHERE id = 1", [secs])
    }

    /// Takes the advisory outbox lock; Err(LedgerError::Busy) when another process holds it.
    /// The lock is released when the [`OutboxLock`] drops (or the process dies).
    pub fn lock_outbox(&self) -> Result<OutboxLock> {
        let path = self.dir.join(OUTBOX_LOCK_FILE);
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(OutboxLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Busy),
            Err(std::fs::TryLockError::Error(e)) => Err(LedgerError::Io(e)),
        }
    }
}

/// The data directory holds business records: owner-only on unix.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    Ok(())
}

/// Creates the database file owner-only before SQLite does (SQLite gives its WAL and
/// shared-memory files the same permissions).
fn create_private_file(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(LedgerError::Io(e)),
    }
}
