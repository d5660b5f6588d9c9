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

// One module per table or concern, each adding its own `impl Ledger` block; this file
// keeps only opening the file and what every module shares.
mod alerts;
mod audit;
mod backup;
mod catalog;
mod clock;
mod device;
mod error;
mod issuance;
pub mod keystore;
mod leases;
mod lookup;
mod mail;
mod outages;
mod outbox;
mod queries;
mod queue;
mod receipts;
mod restore;
mod rows;
mod schema;
mod till;

pub use alerts::Alert;
pub use audit::VerifyReport;
pub use backup::{BackupKey, BackupReport};
pub use catalog::{check_buyer, check_item, draft_treatment, CatalogBuyer, CatalogItem, Saved};
pub use device::LocalDevice;
pub use error::LedgerError;
pub use issuance::{GroupItem, GroupOutcome, Issued};
pub use keystore::{KeySource, Protection};
pub use leases::LeaseState;
pub use mail::{Delivery, DeliveryStatus, MailSecurity, MailSettings, MAX_ATTEMPTS};
pub use outages::{FailedAttempt, Outage};
pub use outbox::{OutboxItem, OutboxLock, OUTBOX_LOCK_FILE};
pub use queries::{
    FilteredInvoice, InvoiceRecord, InvoiceSummary, LedgerStatus, ListFilter, MonthInvoices,
    StatusEvent,
};
pub use queue::{AuthorityHead, QueueState};
pub use receipts::Status;
pub use restore::{read_backup, Adopted, BackupInfo, HeldItem, NumberRange};
#[doc(hidden)]
pub use schema::create_schema_at;
pub use schema::SCHEMA_VERSION;
pub use till::TillDefaults;

use kaipiao_core::{Code, FieldError, Msg};
use rusqlite::{Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, LedgerError>;

/// File name of the ledger inside the data directory.
pub const DB_FILE: &str = "ledger.sqlite3";

/// The ledger of one data directory.
///
/// Methods take `&self`: SQLite serialises writers itself (IMMEDIATE transactions and
/// the busy timeout), so the struct needs no interior lock. It is `Send`, not `Sync`:
/// move it to the thread that uses it, or open one per thread.
pub struct Ledger {
    dir: PathBuf,
    conn: rusqlite::Connection,
    /// Parsed JSON that issuance reads every time, reused while its text is unchanged.
    parsed: std::cell::RefCell<rows::Parsed>,
}

/// A refusal of `field` saying `msg` (an id of `crates/core/locales` and its arguments).
fn invalid(code: Code, field: &str, msg: Msg) -> LedgerError {
    LedgerError::Invalid(FieldError::msg(code, field, msg))
}

fn json_error(e: serde_json::Error) -> LedgerError {
    LedgerError::Io(e.into())
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
            parsed: Default::default(),
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
