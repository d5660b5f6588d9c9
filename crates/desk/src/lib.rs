//! kaipiao-desk: the application layer under both front ends, the `kaipiao` CLI and the
//! desktop app. Everything a front end needs that is not presentation lives here, once:
//! opening a shop (data directory, language, passphrase or keyring, unlock), the app's
//! settings, the entry form's preview, drafts for a credit note or a reissue, list
//! queries and paging, the status composition, the change feed, and the background
//! watcher (health probe, connectivity, the recovery plan, "Sync now" sharing the
//! outbox lock). A CLI subcommand or a `#[tauri::command]` parses, calls this crate and
//! renders; nothing above it computes.
//!
//! It must never compute money or tax (kaipiao-core does), never write the ledger except
//! through kaipiao-ledger's transactions, never talk to the authority except through
//! kaipiao-sync, never depend on Tauri, and never print: messages come back in the
//! clerk's language for the front end to show.

pub mod backups;
pub mod batch;
pub mod catalog;
pub mod changes;
pub mod config;
pub mod detail;
pub mod drafts;
pub mod dto;
pub mod engine;
pub mod error;
pub mod export;
pub mod list;
pub mod mail;
pub mod preview;
pub mod print;
pub mod queue;
pub mod settings;
pub mod stats;
pub mod status;
pub mod watcher;

pub use config::EngineConfig;
pub use engine::Engine;
pub use error::{DeskError, DeskResult};
/// The codes a [`DeskError`] carries.
pub use kaipiao_core::{Code, Msg};

use kaipiao_core::DeviceKey;
use kaipiao_ledger::Ledger;
use kaipiao_sync::{EnrollOutcome, SyncError, SyncOptions};

/// A runtime for one blocking call into the sync engine (its futures borrow a `Ledger`,
/// which is not `Sync`, so they run on the calling thread).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Enrols the device with the authority at `servers` (primary first) and takes the
/// first lease, blocking until done. `trust` says what else is trusted: only an
/// authority with a given key fingerprint, plain `http://` beyond this machine
/// ([`kaipiao_sync::enroll_trusting`]).
pub fn enrol(
    ledger: &Ledger,
    key: &DeviceKey,
    servers: &[String],
    token: &str,
    trust: &kaipiao_sync::Trust<'_>,
    opts: &SyncOptions,
) -> Result<EnrollOutcome, SyncError> {
    let rt = runtime().map_err(|e| SyncError::Ledger(kaipiao_ledger::LedgerError::Io(e)))?;
    rt.block_on(kaipiao_sync::enroll_trusting(
        ledger, key, servers, token, trust, opts,
    ))
}
