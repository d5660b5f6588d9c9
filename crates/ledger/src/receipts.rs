//! Receipts: the authority's answers, checked against the pinned authority key and the
//! stored invoice, then stored exactly as received with the invoice's final status, one
//! at a time or in groups whose commits do not make issuance wait for the disk.

use crate::{rows, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::rfc3339;
use kaipiao_core::wire::{Receipt, ReceiptProblem};
use kaipiao_core::PublicKey;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

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

/// While storing receipts, this connection checkpoints the WAL once it holds this many
/// pages (SQLite's default is 1000): a drain writes most of the WAL, so it also copies
/// it back, before an issuance's commit would cross the default and pay for it.
const WAL_CHECKPOINT_PAGES: i64 = 256;

/// A receipt that passed every check that needs no database (see `Ledger::check_receipt`).
pub(crate) struct CheckedReceipt<'a> {
    invoice_id: &'a str,
    /// Stored exactly as received.
    json: &'a str,
    value: serde_json::Value,
    receipt: Receipt,
    status: Status,
}

impl Ledger {
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
        let pinned = rows::require_device(&self.conn)?.pinned_key()?;
        let results = self.store_checked_group(Self::check_receipts(&pinned, receipts), now)?;
        if results.iter().any(Result::is_ok) {
            self.sync_wal()?;
        }
        Ok(results)
    }

    /// The receipts of a whole batch answer: checked together (one batch verification of
    /// their signatures, outside any transaction), then stored in groups of `group`, one
    /// short transaction each, committed without waiting for the disk, stopping after a
    /// group with a refused receipt. An issuance meeting the drain waits for one small
    /// group's writes at most. When this returns, what it stored is on disk:
    ///
    /// - while nobody else writes to the ledger, with one sync of the WAL at the end;
    /// - once another connection has committed during the call (a clerk issuing), with a
    ///   sync after each group from then on, so that the clerk's own sync finds little of
    ///   the drain's left to flush (one sync per batch under issuance was measured worse
    ///   for the clerk; one per group costs an idle drain a fifth of its time:
    ///   docs/BENCHMARKS.md).
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
        let pinned = rows::require_device(&self.conn)?.pinned_key()?;
        let mut checked = Self::check_receipts(&pinned, receipts).into_iter();
        let mut results = Vec::with_capacity(receipts.len());
        let start = self.data_version()?;
        let mut shared = false;
        let mut unsynced = false;
        loop {
            let chunk: Vec<_> = checked.by_ref().take(group.max(1)).collect();
            if chunk.is_empty() {
                break;
            }
            let stored = match self.store_checked_group(chunk, now) {
                Ok(stored) => stored,
                Err(e) => {
                    if unsynced {
                        self.sync_wal()?;
                    }
                    return Err(e);
                }
            };
            let refused = stored.iter().any(Result::is_err);
            unsynced |= stored.iter().any(Result::is_ok);
            shared = shared || self.data_version()? != start;
            if unsynced && shared {
                self.sync_wal()?;
                unsynced = false;
            }
            results.extend(stored);
            if refused {
                break;
            }
        }
        if unsynced {
            self.sync_wal()?;
        }
        Ok(results)
    }

    /// One group of checked receipts stored in one transaction committed without waiting
    /// for the disk: the caller syncs the WAL before it returns.
    fn store_checked_group(
        &self,
        checked: Vec<Result<CheckedReceipt<'_>>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Status>>> {
        if checked.iter().all(Result::is_err) {
            return Ok(checked.into_iter().map(|c| c.map(|c| c.status)).collect());
        }
        self.write_unsynced(|tx| {
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
        })
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
        open_for_sync(std::path::Path::new(&wal))?.sync_data()?;
        Ok(())
    }

    /// What needs no database: JSON, the authority signature against the pinned key,
    /// the receipt's shape, status, invoice id and authority code.
    pub(crate) fn check_receipt<'a>(
        pinned: &PublicKey,
        invoice_id: &'a str,
        receipt_json: &'a str,
    ) -> Result<CheckedReceipt<'a>> {
        let verified = Receipt::verify_json(receipt_json, pinned);
        Self::check_fields(invoice_id, receipt_json, verified)
    }

    /// [`Ledger::check_receipt`] of many receipts, one result per item, the same as
    /// checking each alone: their signatures go through one batch verification.
    pub(crate) fn check_receipts<'a>(
        pinned: &PublicKey,
        receipts: &[(&'a str, &'a str)],
    ) -> Vec<Result<CheckedReceipt<'a>>> {
        let texts: Vec<&str> = receipts.iter().map(|(_, json)| *json).collect();
        Receipt::verify_json_many(&texts, pinned)
            .into_iter()
            .zip(receipts)
            .map(|(verified, (id, json))| Self::check_fields(id, json, verified))
            .collect()
    }

    fn check_fields<'a>(
        invoice_id: &'a str,
        receipt_json: &'a str,
        verified: std::result::Result<(Receipt, serde_json::Value), ReceiptProblem>,
    ) -> Result<CheckedReceipt<'a>> {
        let bad = |w: String| LedgerError::BadReceipt(w);
        let (receipt, value) = verified.map_err(|p| bad(p.to_string()))?;
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
    pub(crate) fn store_checked_receipt(
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
        let Some((seq, number, hash, current, stored)) = invoice_and_receipt(tx, invoice_id)?
        else {
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
            "INSERT INTO receipts (seq, receipt, status, stored_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![seq, receipt_json, status.as_str(), rfc3339(now)])?;
        tx.prepare_cached("UPDATE invoices SET status = ?2 WHERE seq = ?1")?
            .execute(params![seq, status.as_str()])?;
        tx.prepare_cached("INSERT INTO history (seq, at, status, detail) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![seq, rfc3339(now), status.as_str(), detail])?;
        tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?
            .execute([seq])?;
        Ok(status)
    }
}

/// The invoice with this id (seq, number, hash, status) and the receipt stored for it, if
/// any: one statement when the id's seq is confirmed (always, for an id this ledger made).
#[allow(clippy::type_complexity)]
fn invoice_and_receipt(
    tx: &Transaction<'_>,
    invoice_id: &str,
) -> Result<Option<(u64, String, String, String, Option<String>)>> {
    const SQL: &str = "SELECT i.seq, i.number, i.hash, i.status, r.receipt FROM invoices i
         LEFT JOIN receipts r ON r.seq = i.seq WHERE i.seq = ?1 AND i.id = ?2";
    let read = |seq: u64| -> Result<Option<(u64, String, String, String, Option<String>)>> {
        Ok(tx
            .prepare_cached(SQL)?
            .query_row(params![seq, invoice_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?)
    };
    if let Some(seq) = crate::lookup::seq_in_id(invoice_id) {
        if let Some(row) = read(seq)? {
            return Ok(Some(row));
        }
    }
    match crate::lookup::seq_of_id(tx, invoice_id)? {
        Some(seq) => read(seq),
        None => Ok(None),
    }
}

/// Opens an existing file to flush it to disk: for writing, because Windows flushes a
/// file (`FlushFileBuffers`, behind `sync_data`) only through a handle with write access
/// and refuses a read-only one ("access denied"); never creating or truncating it.
fn open_for_sync(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(false)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_opened_for_writing_to_be_synced_and_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite3-wal");
        assert!(
            open_for_sync(&path).is_err(),
            "a missing file is not created"
        );
        assert!(!path.exists());
        std::fs::write(&path, b"frames").unwrap();
        let file = open_for_sync(&path).unwrap();
        file.sync_data().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"frames", "not truncated");
        // The access mode the file was opened with, as the kernel holds it.
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let info =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd())).unwrap();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
                .unwrap();
            const O_ACCMODE: u32 = 0o3;
            const O_RDWR: u32 = 0o2;
            assert_eq!(flags & O_ACCMODE, O_RDWR, "{info}");
        }
    }
}
