//! kaipiao-ledger: the device's SQLite ledger — the single source of truth on the
//! clerk's machine (SPEC 3, 5, 8).
//!
//! It holds the device identity (with the private key sealed, never in plain text), the
//! leases granted by the authority, the hash-chained signed invoices, the outbox, the
//! authority's receipts and the status history. Every write is one IMMEDIATE transaction;
//! the database runs in WAL mode with synchronous=FULL so a call that returned has
//! persisted. [`Ledger::issue`] is the only code that writes invoices, and invoices are
//! never updated or deleted: a correction is a credit note.
//!
//! It must never talk to the network (that is kaipiao-sync), never log or print key
//! material, and never leave a half-written invoice, receipt or lease.

mod error;
pub mod keystore;

pub use error::LedgerError;
pub use keystore::KeySource;

use chrono::{DateTime, Utc};
use kaipiao_core::draft::Computed;
use kaipiao_core::wire::Head;
use kaipiao_core::{DeviceKey, Draft, Envelope, Lease, LimitWarning, Party};
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
pub struct Ledger {
    dir: PathBuf,
    conn: rusqlite::Connection,
}

#[allow(unused_variables)]
impl Ledger {
    /// Opens (creating if needed) the ledger in `dir`, backing up and migrating an older
    /// database, refusing a newer one.
    pub fn open(dir: &Path) -> Result<Ledger> {
        todo!()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets up the device: validates the seller, creates and seals the key. Refused when
    /// the directory already holds a device.
    pub fn init(&self, seller: &Party, device_name: &str, keys: &KeySource, now: DateTime<Utc>) -> Result<LocalDevice> {
        todo!()
    }

    pub fn device(&self) -> Result<Option<LocalDevice>> {
        todo!()
    }

    /// Unseals the device key (only issue, import, enroll and sync need it).
    pub fn unseal_key(&self, keys: &KeySource) -> Result<DeviceKey> {
        todo!()
    }

    /// Records the authority's answer to enrolment; pins its key.
    pub fn record_enrollment(&self, device_id: &str, authority_public_key: &str, servers: &[String], now: DateTime<Utc>) -> Result<()> {
        todo!()
    }

    /// Replaces the endpoint list (primary first).
    pub fn set_servers(&self, servers: &[String]) -> Result<()> {
        todo!()
    }

    /// Verifies a lease against the pinned authority key and the device id, and stores it.
    pub fn store_lease(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
        todo!()
    }

    pub fn leases(&self) -> Result<Vec<LeaseState>> {
        todo!()
    }

    /// The one issuance transaction: validate -> limits -> take a number -> build, hash,
    /// sign, link -> insert invoice, outbox row and history -> commit.
    pub fn issue(&self, draft: &Draft, key: &DeviceKey, now: DateTime<Utc>) -> Result<Issued> {
        todo!()
    }

    /// Lines, totals and capitals for a draft, without issuing (no key needed).
    pub fn preview(&self, draft: &Draft) -> Result<Computed> {
        todo!()
    }

    /// Pending items in seq order (all of them when `due_before` is None, else those whose
    /// next_attempt_at is unset or not after it), at most `limit`.
    pub fn outbox(&self, due_before: Option<DateTime<Utc>>, limit: usize) -> Result<Vec<OutboxItem>> {
        todo!()
    }

    /// Records a failed attempt on an outbox item (kept, with its key and bytes).
    pub fn record_attempt(&self, invoice_id: &str, error: &str, next_attempt_at: Option<DateTime<Utc>>) -> Result<()> {
        todo!()
    }

    /// Verifies the receipt against the pinned authority key and the stored invoice
    /// (id, number, hash), then in one transaction stores it exactly as received, sets
    /// the final status, appends history and deletes the outbox row. Idempotent for the
    /// same receipt.
    pub fn store_receipt(&self, invoice_id: &str, receipt_json: &str, now: DateTime<Utc>) -> Result<Status> {
        todo!()
    }

    pub fn status(&self, now: DateTime<Utc>) -> Result<LedgerStatus> {
        todo!()
    }

    /// The stored envelope bytes of the invoice at `seq` (any status), for resubmitting
    /// to an authority whose head is behind ours (chain_gap / restored backup).
    pub fn envelope_at(&self, seq: u64) -> Result<Option<(String, String)>> {
        todo!()
    }

    pub fn head(&self) -> Result<Head> {
        todo!()
    }

    pub fn list(&self, filter: &ListFilter) -> Result<Vec<InvoiceSummary>> {
        todo!()
    }

    /// By 20-digit number or invoice id.
    pub fn show(&self, number_or_id: &str) -> Result<InvoiceRecord> {
        todo!()
    }

    /// Recomputes every hash, signature, link and receipt signature.
    /// Err(LedgerError::Integrity { seq, .. }) names the first bad seq.
    pub fn verify(&self) -> Result<VerifyReport> {
        todo!()
    }

    /// Writes the SPEC 9 export (JSON Lines). Returns the number of invoices.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<u64> {
        todo!()
    }

    pub fn set_last_sync(&self, now: DateTime<Utc>) -> Result<()> {
        todo!()
    }

    /// Raises an alert for a human (integrity, key reuse, bad receipt signature, auth).
    pub fn raise_alert(&self, code: &str, message: &str, invoice_id: Option<&str>, now: DateTime<Utc>) -> Result<()> {
        todo!()
    }

    /// Stops the queue (SPEC 6: integrity / idempotency_key_reused); sync refuses to run
    /// until a human clears it.
    pub fn stop_queue(&self, reason: &str, now: DateTime<Utc>) -> Result<()> {
        todo!()
    }

    pub fn queue_stopped(&self) -> Result<Option<String>> {
        todo!()
    }

    pub fn clear_queue_stop(&self) -> Result<()> {
        todo!()
    }

    /// Seconds to add to the local clock for device-signed requests (401 clock_skew).
    pub fn clock_offset(&self) -> Result<i64> {
        todo!()
    }

    pub fn set_clock_offset(&self, secs: i64) -> Result<()> {
        todo!()
    }

    /// Takes the advisory outbox lock; Err(LedgerError::Busy) when another process holds it.
    pub fn lock_outbox(&self) -> Result<OutboxLock> {
        todo!()
    }
}
