//! `kaipiao restore FILE` (issue 10, item 6): a data directory made again from a backup,
//! with nothing the authority holds lost and no number ever used twice.
//!
//! 1. The backup is staged in a directory of its own beside the data directory
//!    (`.NAME.restoring`): its pages, its sealed key, the schema brought up to date. Its
//!    chain must verify.
//! 2. From the authority, with the restored key: the leases it granted this device (each
//!    checked and stored), then its copy of every invoice after the last one the backup
//!    knows as received (each checked against the device key, the chain and the pinned
//!    authority key), taken in: receipts for the backup's pending invoices, the invoices
//!    the backup lacks entered with theirs.
//! 3. Every lease is used up locally; the numbers that were still left from the lease of
//!    the last invoice on are reported: the lost copy may have used them after the backup
//!    and never filed them, so those invoices are lost with it, and the numbers are never
//!    used again.
//! 4. A fresh block is requested with `supersede` (the authority gives up the old leases
//!    too and grants a block past them all), and the chain is verified again.
//! 5. Only then is the staged directory moved into place; the directory it replaces is
//!    kept beside it as `NAME.replaced-TIMESTAMP`, never deleted. A ledger there that
//!    still holds pending invoices is not replaced unless the caller says so.
//!
//! Anything that fails before step 5 leaves the data directory as it was (the authority
//! unreachable: exit 3, run it again later). A crash between the two renames of step 5
//! leaves the staged directory marked complete and no ledger in the data directory:
//! running `restore` again finishes it.

use crate::error::SyncError;
use crate::{fetch_held, SyncOptions};
use chrono::{DateTime, Utc};
use kaipiao_core::wire::Head;
use kaipiao_core::{Code, FieldError, Msg};
use kaipiao_ledger::{
    read_backup, Adopted, BackupKey, HeldItem, KeySource, Ledger, LedgerError, NumberRange,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file in a staged directory that says it is complete: the report, as JSON.
const DONE_MARKER: &str = "restore-complete.json";

/// The fresh block a restored device issues from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreshLease {
    pub lease_id: String,
    pub first: String,
    pub last: String,
}

/// What `kaipiao restore` reports. Field names are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub data_dir: PathBuf,
    pub backup_created_at: String,
    /// The chain head the backup held.
    pub backup_head: Head,
    /// What was brought back from the authority, the numbers the lost copy may have used
    /// (never used again) and the fresh block: its fields sit at the top level of the
    /// report.
    #[serde(flatten)]
    pub caught_up: CaughtUp,
    /// The chain head of the restored ledger.
    pub head: Head,
    /// Invoices of the restored ledger the authority has not received (the next sync files them).
    pub pending: u64,
    /// Which passphrase opens the restored key from now on.
    pub key: BackupKey,
    /// Where the data directory that was replaced was kept (None when there was none).
    pub replaced: Option<PathBuf>,
    /// True when this run only finished an earlier restore interrupted while moving its
    /// staged directory into place.
    pub finished_earlier: bool,
}

/// What the caller asks.
pub struct RestoreRequest<'a> {
    pub file: &'a Path,
    pub data_dir: &'a Path,
    /// Replace a ledger that still holds invoices the authority has not received.
    pub replace_pending: bool,
}

/// `dir`'s sibling named `.{name}{suffix}` (hidden) or `{name}{suffix}`.
fn sibling(dir: &Path, hidden: bool, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kaipiao".into());
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(format!("{}{name}{suffix}", if hidden { "." } else { "" }))
}

/// Where the data directory it replaces is kept: a name not taken yet (`-2`, `-3`, …
/// after the time when two restores fall in the same second).
fn aside_path(dir: &Path, now: DateTime<Utc>) -> PathBuf {
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut path = sibling(dir, false, &format!(".replaced-{stamp}"));
    let mut n = 2;
    while path.exists() {
        path = sibling(dir, false, &format!(".replaced-{stamp}-{n}"));
        n += 1;
    }
    path
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Whether `dir` holds anything.
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Refuses to replace a ledger with pending invoices (or one that cannot be read) unless
/// told to, and holds its outbox lock (no sync runs on it meanwhile) until dropped.
fn check_replaced(
    req: &RestoreRequest<'_>,
    aside: &Path,
) -> Result<Option<kaipiao_ledger::OutboxLock>, SyncError> {
    if !req.data_dir.join(kaipiao_ledger::DB_FILE).exists() {
        return Ok(None);
    }
    let refuse = |count: String| {
        SyncError::Ledger(LedgerError::Invalid(FieldError::msg(
            Code::PendingInvoices,
            "replace_pending",
            Msg::new("pending_invoices")
                .arg("path", req.data_dir.display().to_string())
                .arg("count", count)
                .arg("aside", aside.display().to_string()),
        )))
    };
    let ledger = match Ledger::open(req.data_dir) {
        Ok(l) => l,
        Err(_) if req.replace_pending => return Ok(None),
        Err(e) => return Err(refuse(format!("? ({e})"))),
    };
    let lock = ledger.lock_outbox()?;
    match ledger.pending_count() {
        Ok(0) => {}
        Ok(_) if req.replace_pending => {}
        Ok(n) => return Err(refuse(n.to_string())),
        Err(_) if req.replace_pending => {}
        Err(e) => return Err(refuse(format!("? ({e})"))),
    }
    Ok(Some(lock))
}

/// Moves the staged directory into place, the replaced one aside.
fn swap_in(stage: &Path, dir: &Path, aside: &Path) -> Result<Option<PathBuf>, SyncError> {
    let replaced = if dir.exists() {
        if has_entries(dir) {
            std::fs::rename(dir, aside).map_err(LedgerError::Io)?;
            Some(aside.to_path_buf())
        } else {
            std::fs::remove_dir(dir).map_err(LedgerError::Io)?;
            None
        }
    } else {
        None
    };
    std::fs::rename(stage, dir).map_err(LedgerError::Io)?;
    let _ = std::fs::remove_file(dir.join(DONE_MARKER));
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent);
    }
    Ok(replaced)
}

/// See the module documentation. `keys` opens the backup's key (the device passphrase,
/// or the backup passphrase for a key that was in the OS keyring: [`read_backup`] says
/// which).
pub async fn restore(
    req: &RestoreRequest<'_>,
    keys: &KeySource,
    opts: &SyncOptions,
) -> Result<RestoreReport, SyncError> {
    let now = Utc::now();
    let stage = sibling(req.data_dir, true, ".restoring");
    let aside = aside_path(req.data_dir, now);
    // Interrupted between the two renames: the data directory was moved aside, the staged
    // one is complete. (A complete stage beside a data directory that still has its
    // ledger was interrupted before the first rename: that ledger may have moved on since,
    // so the stage is discarded below and the restore made again.)
    if !req.data_dir.join(kaipiao_ledger::DB_FILE).exists() {
        if let Ok(text) = std::fs::read_to_string(stage.join(DONE_MARKER)) {
            if let Ok(mut report) = serde_json::from_str::<RestoreReport>(&text) {
                report.replaced = swap_in(&stage, req.data_dir, &aside)?;
                report.finished_earlier = true;
                return Ok(report);
            }
        }
    }
    let info = read_backup(req.file)?;
    let lock = check_replaced(req, &aside)?;
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(LedgerError::Io)?;
    }
    let staged = stage_and_restore(req, keys, opts, &stage, &info).await;
    let mut report = match staged {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            return Err(e);
        }
    };
    let text = serde_json::to_string(&report)
        .map_err(|e| SyncError::InvalidResponse(format!("the restore report: {e}")))?;
    carry_over(req.data_dir, &stage)?;
    write_synced(&stage.join(DONE_MARKER), text.as_bytes())?;
    sync_dir(&stage);
    drop(lock);
    report.replaced = swap_in(&stage, req.data_dir, &aside)?;
    Ok(report)
}

/// Whether a file of a data directory belongs to its ledger (the database and its
/// journal files, the sealed key, the outbox lock, the copies kept before a migration):
/// those come from the backup; any other file (the app's settings, the sync policy) is
/// the machine's and is carried over into the restored directory.
fn is_ledger_file(name: &str) -> bool {
    name.starts_with(kaipiao_ledger::DB_FILE)
        || name.starts_with(kaipiao_ledger::keystore::SEALED_KEY_FILE)
        || name == kaipiao_ledger::OUTBOX_LOCK_FILE
        || name == DONE_MARKER
}

/// Copies the replaced directory's own files (not the ledger's) into the staged one.
fn carry_over(dir: &Path, stage: &Path) -> Result<(), SyncError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(LedgerError::Io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map_err(LedgerError::Io)?.is_file();
        if is_file && !is_ledger_file(&name) && !stage.join(&name).exists() {
            std::fs::copy(entry.path(), stage.join(&name)).map_err(LedgerError::Io)?;
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(LedgerError::Io)?;
    f.write_all(bytes).map_err(LedgerError::Io)?;
    f.sync_all().map_err(LedgerError::Io)?;
    Ok(())
}

/// Steps 1 to 4 in `stage`.
async fn stage_and_restore(
    req: &RestoreRequest<'_>,
    keys: &KeySource,
    opts: &SyncOptions,
    stage: &Path,
    info: &kaipiao_ledger::BackupInfo,
) -> Result<RestoreReport, SyncError> {
    let (ledger, _) = Ledger::stage_restore(req.file, stage)?;
    ledger.verify()?;
    let key = ledger.unseal_key(keys)?;
    let caught_up = catch_up(&ledger, &key, opts).await?;
    let status = ledger.status(Utc::now())?;
    Ok(RestoreReport {
        data_dir: req.data_dir.to_path_buf(),
        backup_created_at: info.created_at.clone(),
        backup_head: info.head.clone(),
        caught_up,
        head: status.head,
        pending: status.pending,
        key: info.key,
        replaced: None,
        finished_earlier: false,
    })
}

/// What [`catch_up`] did. Field names are stable (`restore` and `queue resume` report it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaughtUp {
    /// The authority's head for this device when it was read.
    pub authority_head: Head,
    /// Receipts brought back for invoices the ledger held as pending.
    pub receipts_brought_back: u64,
    /// Invoices the ledger lacked, brought back with their receipts.
    pub invoices_brought_back: u64,
    /// Numbers a newer copy of the device may have used and never filed: never used again.
    pub numbers_possibly_used: Vec<NumberRange>,
    pub numbers_possibly_used_count: u64,
    pub fresh_lease: FreshLease,
}

/// Steps 2 to 4 on `ledger` (a staged backup, or with `queue resume` a ledger found
/// behind the authority): the leases and the invoices the authority holds beyond it
/// brought back and checked, every lease used up locally and the numbers a newer copy may
/// have used reported, a fresh block taken with `supersede`, the chain verified. The
/// invoices come in one transaction; a run interrupted after it is simply run again
/// (nothing is brought back twice; the leases are given up again).
pub(crate) async fn catch_up(
    ledger: &Ledger,
    key: &kaipiao_core::DeviceKey,
    opts: &SyncOptions,
) -> Result<CaughtUp, SyncError> {
    for lease in crate::readback::fetch_leases(ledger, key, opts).await? {
        ledger.store_lease(&lease, Utc::now())?;
    }
    let (after_seq, after_hash) = ledger.restore_point()?;
    let (held, authority_head) = fetch_held(ledger, key, opts, after_seq, &after_hash).await?;
    let items: Vec<HeldItem<'_>> = held
        .iter()
        .map(|h| HeldItem {
            envelope: &h.envelope,
            receipt_json: &h.receipt_json,
        })
        .collect();
    let Adopted { receipts, invoices } = ledger.adopt_held(&items, Utc::now())?;
    ledger.note_authority_head(authority_head.seq, Some(&authority_head.hash), Utc::now())?;
    let lost = ledger.retire_leases()?;
    let fresh = take_fresh_lease(ledger, key, opts).await?;
    if !lost.is_empty() {
        // The gap in the numbering, explained in the ledger itself (`kaipiao alerts`), for
        // whoever audits it later.
        let ranges = lost
            .iter()
            .map(|r| format!("{}-{}", r.first, r.last))
            .collect::<Vec<_>>()
            .join(", ");
        let text = kaipiao_core::Msg::new("numbers_given_up")
            .arg("ranges", ranges)
            .arg("why", format!("fresh block {}-{}", fresh.first, fresh.last))
            .text(kaipiao_core::Lang::En);
        ledger.raise_alert(Code::NumbersGivenUp.as_str(), &text, None, Utc::now())?;
    }
    ledger.verify()?;
    Ok(CaughtUp {
        authority_head,
        receipts_brought_back: receipts,
        invoices_brought_back: invoices,
        numbers_possibly_used_count: lost.iter().map(|r| r.count).sum(),
        numbers_possibly_used: lost,
        fresh_lease: fresh,
    })
}

/// Step 4: a block past every lease known, requested with `supersede`. An authority that
/// answers with a lease granted before (one that ignores `supersede`) is refused: the
/// restored device would issue numbers the lost copy may have used.
async fn take_fresh_lease(
    ledger: &Ledger,
    key: &kaipiao_core::DeviceKey,
    opts: &SyncOptions,
) -> Result<FreshLease, SyncError> {
    let known_last = ledger
        .leases()?
        .iter()
        .map(|l| l.lease.last)
        .max()
        .unwrap_or(0);
    let (device, device_id, _) = crate::relay::enrolled(ledger, key)?;
    let client = crate::client::Client::new(&device.servers, opts)?;
    let no_progress = |_: crate::Progress| {};
    let mut route = crate::route::Route::new(client, opts, &no_progress);
    let lease =
        crate::enrol::request_lease(&mut route, ledger, key, &device_id, true, true).await?;
    if lease.first <= known_last {
        return Err(SyncError::InvalidResponse(format!(
            "the authority answered the request for a fresh block with lease {} (numbers {}..{}), which does not lie past every earlier lease (..{known_last}): it may not support superseding leases; the data directory was not changed",
            lease.lease_id, lease.first, lease.last
        )));
    }
    Ok(FreshLease {
        first: kaipiao_core::model::invoice_number(&lease.prefix, lease.first),
        last: kaipiao_core::model::invoice_number(&lease.prefix, lease.last),
        lease_id: lease.lease_id,
    })
}
