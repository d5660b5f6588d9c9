//! The queue's state for a person (`kaipiao queue`, the app's panel): whether it is
//! stopped, since when and why, the alert that says so, and what the ledger and the
//! authority each hold; and its resumption, which a reconciliation must justify first
//! (that is the sync crate's: here the stop is only lifted, with its alert, in one
//! transaction).
//!
//! What the authority holds is the last head it told this ledger (`authority_head`,
//! schema 7): read at the end of every sync run that reached it, or the seq a `chain_gap`
//! ahead of ours named. Reading it needs no key, so `kaipiao queue` never unseals one.

use crate::{rows, Ledger, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::rfc3339;
use kaipiao_core::wire::Head;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// The authority's head for this device as last heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorityHead {
    pub seq: u64,
    /// None when only the seq is known (a `chain_gap` names the next seq it expects).
    pub hash: Option<String>,
    /// When the authority said so (RFC 3339).
    pub read_at: String,
}

/// What `kaipiao queue --json` reports (with the advice, which is the caller's words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueState {
    pub stopped: bool,
    pub reason: Option<String>,
    pub since: Option<String>,
    /// The alert raised with the stop, while it is not dismissed.
    pub alert_id: Option<i64>,
    /// That alert's code: what kind of stop it is.
    pub code: Option<String>,
    pub local_head: Head,
    pub authority_head: Option<AuthorityHead>,
}

impl Ledger {
    /// Records the authority's head for this device as it just said (`hash` None when
    /// only the seq is known).
    pub fn note_authority_head(
        &self,
        seq: u64,
        hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO authority_head (id, seq, hash, read_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET seq = ?1, hash = ?2, read_at = ?3",
            params![seq as i64, hash, rfc3339(now)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The authority's head as last heard, if ever.
    pub fn authority_head(&self) -> Result<Option<AuthorityHead>> {
        Self::authority_head_in(&self.conn)
    }

    fn authority_head_in(conn: &rusqlite::Connection) -> Result<Option<AuthorityHead>> {
        Ok(conn
            .prepare_cached("SELECT seq, hash, read_at FROM authority_head WHERE id = 1")?
            .query_row([], |r| {
                Ok(AuthorityHead {
                    seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    hash: r.get(1)?,
                    read_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// The queue's state, from one snapshot of the ledger.
    pub fn queue_state(&self) -> Result<QueueState> {
        let tx = self.read_tx()?;
        let device = rows::require_device(&tx)?;
        let since: Option<String> = tx
            .prepare_cached("SELECT queue_stopped_at FROM device WHERE id = 1")?
            .query_row([], |r| r.get(0))?;
        let alert = match &device.queue_stopped {
            Some(reason) => Self::stop_alert(&tx, reason)?,
            None => None,
        };
        let local_head = Self::head_in(&tx)?;
        let authority_head = Self::authority_head_in(&tx)?;
        Ok(QueueState {
            stopped: device.queue_stopped.is_some(),
            reason: device.queue_stopped,
            since,
            alert_id: alert.as_ref().map(|(id, _)| *id),
            code: alert.map(|(_, code)| code),
            local_head,
            authority_head,
        })
    }

    /// The alert [`Ledger::stop_queue_with_alert`] raised with the stop whose reason is
    /// `reason` (the newest, while not dismissed): its id and code.
    fn stop_alert(conn: &rusqlite::Connection, reason: &str) -> Result<Option<(i64, String)>> {
        Ok(conn
            .prepare_cached(
                "SELECT id, code FROM alerts WHERE message = ?1 AND dismissed_at IS NULL
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([reason], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Lifts the stop and dismisses its alert, in one transaction; the caller has
    /// reconciled first. False when the queue was not stopped (nothing changes).
    pub fn resume_queue(&self, now: DateTime<Utc>) -> Result<bool> {
        let tx = self.write_tx()?;
        let Some(reason) = rows::require_device(&tx)?.queue_stopped else {
            return Ok(false);
        };
        if let Some((id, _)) = Self::stop_alert(&tx, &reason)? {
            tx.execute(
                "UPDATE alerts SET dismissed_at = ?2 WHERE id = ?1",
                params![id, rfc3339(now)],
            )?;
        }
        tx.execute(
            "UPDATE device SET queue_stopped = NULL, queue_stopped_at = NULL WHERE id = 1",
            [],
        )?;
        tx.commit()?;
        Ok(true)
    }
}
