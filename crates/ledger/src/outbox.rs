//! The outbox: issued invoices waiting for the authority's receipt, the failed attempts
//! recorded on them, and the advisory lock that lets one process at a time drain them.

use crate::{Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Transaction};
use serde::Serialize;

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

/// Held while one process drains the outbox (an advisory lock file in the data dir).
pub struct OutboxLock {
    _file: std::fs::File,
}

/// File name of the advisory outbox lock inside the data directory.
pub const OUTBOX_LOCK_FILE: &str = "outbox.lock";

/// Millisecond RFC 3339 for retry times: backoff starts at 0.5 s, whole seconds are too coarse.
pub(crate) fn millis_string(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl Ledger {
    /// Pending items in seq order (all of them when `due_before` is None, else those whose
    /// next_attempt_at is unset or not after it), at most `limit`.
    pub fn outbox(
        &self,
        due_before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        let due = due_before.map(|t| t.timestamp_millis());
        self.outbox_rows(
            "WHERE ?1 IS NULL OR o.next_attempt_ms IS NULL OR o.next_attempt_ms <= ?1",
            due,
            limit,
        )
    }

    /// Pending items from seq `from` on, in seq order, at most `limit`: what a drain
    /// reads next while the receipts of the items before `from` are still being stored.
    pub fn outbox_from(&self, from: u64, limit: usize) -> Result<Vec<OutboxItem>> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        self.outbox_rows("WHERE o.seq >= ?1", Some(from), limit)
    }

    /// Outbox rows matching `filter` (with `?1` bound to `arg`), in seq order.
    fn outbox_rows(&self, filter: &str, arg: Option<i64>, limit: usize) -> Result<Vec<OutboxItem>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT i.id, o.seq, i.number, i.envelope, o.attempts, o.next_attempt_ms, o.last_error
             FROM outbox o JOIN invoices i ON i.seq = o.seq
             {filter}
             ORDER BY o.seq LIMIT ?2"
        ))?;
        let items = stmt
            .query_map(params![arg, limit], |r| {
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

    pub(crate) fn attempt_in(
        tx: &Transaction<'_>,
        invoice_id: &str,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let Some(seq) = crate::lookup::seq_of_id(tx, invoice_id)? else {
            return Ok(());
        };
        tx.prepare_cached(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3
             WHERE seq = ?1",
        )?
        .execute(params![
            seq,
            error,
            next_attempt_at.map(|t| t.timestamp_millis())
        ])?;
        Ok(())
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
