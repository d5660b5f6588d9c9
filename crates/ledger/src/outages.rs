//! The outage record: from the first request to the authority that no endpoint answered
//! to the first answer that proves it serves again, and which invoices were issued
//! during it (RKSV marks receipts issued while its signing unit is down; so do we, in
//! `outage_invoices`, beside the invoice: its canonical bytes never change).
//!
//! The sync engine decides what counts as failed and as served (kaipiao-sync's `outage`
//! module); the ledger only keeps the record. What goes into an outage:
//!
//! - every invoice issued while it is current, marked in the issuance transaction;
//! - when it opens, the invoices still pending that were issued since the authority was
//!   last known to serve (the last sync that reached it, the end of the last outage, or
//!   the enrolment): the first failed attempt is only when the device noticed, and an
//!   invoice issued offline just before that was caught by the same outage.

use crate::{invalid, Ledger, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::{parse_rfc3339, rfc3339};
use kaipiao_core::{Code, Msg};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

/// Longest failure reason kept (characters); a server's error page is cut there.
const MAX_REASON_CHARS: usize = 500;

/// Requests to the authority that no endpoint answered, as the sync engine reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    /// When the (first) request failed.
    pub at: DateTime<Utc>,
    /// Where the (first) request went.
    pub endpoint: String,
    /// Why it failed ("could not connect: …", "HTTP 503 outage: …").
    pub reason: String,
    /// How many failed requests this stands for, at least 1: a round over the primary
    /// and its backups is reported at once, when the last endpoint has failed too.
    pub attempts: u32,
}

/// One outage of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outage {
    pub id: i64,
    /// The first failed attempt (RFC 3339 UTC).
    pub started_at: String,
    /// The first answer that proved the authority serves again; None while current.
    pub ended_at: Option<String>,
    /// Requests that no endpoint answered during the outage.
    pub failed_attempts: u64,
    /// Where the first failed attempt went, and why it failed.
    pub failed_endpoint: String,
    pub reason: String,
    /// The endpoint whose answer ended it; None while current.
    pub ended_by: Option<String>,
    /// Invoices issued during the outage, and the first and last of their numbers
    /// (in chain order); None when there were none.
    pub invoices_issued: u64,
    pub first_number: Option<String>,
    pub last_number: Option<String>,
}

impl Outage {
    pub fn is_current(&self) -> bool {
        self.ended_at.is_none()
    }

    /// Whole seconds from the start to the end, or to `now` while current; never negative
    /// (a clock set back does not make an outage shorter than nothing).
    pub fn duration_seconds(&self, now: DateTime<Utc>) -> i64 {
        let Some(start) = parse_rfc3339(&self.started_at) else {
            return 0;
        };
        let end = self
            .ended_at
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or(now);
        (end - start).num_seconds().max(0)
    }
}

/// The record's columns, in [`outage_row`]'s order.
const OUTAGE_COLUMNS: &str = "o.id, o.started_at, o.ended_at, o.failed_attempts, o.failed_endpoint, o.reason, o.ended_by,
    (SELECT COUNT(*) FROM outage_invoices x WHERE x.outage_id = o.id),
    (SELECT i.number FROM outage_invoices x JOIN invoices i ON i.seq = x.seq WHERE x.outage_id = o.id ORDER BY x.seq LIMIT 1),
    (SELECT i.number FROM outage_invoices x JOIN invoices i ON i.seq = x.seq WHERE x.outage_id = o.id ORDER BY x.seq DESC LIMIT 1)";

fn outage_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Outage> {
    Ok(Outage {
        id: r.get(0)?,
        started_at: r.get(1)?,
        ended_at: r.get(2)?,
        failed_attempts: r.get::<_, i64>(3)?.max(0) as u64,
        failed_endpoint: r.get(4)?,
        reason: r.get(5)?,
        ended_by: r.get(6)?,
        invoices_issued: r.get::<_, i64>(7)?.max(0) as u64,
        first_number: r.get(8)?,
        last_number: r.get(9)?,
    })
}

/// The failure checked: endpoint named, reason trimmed and bounded, attempts at least 1.
fn checked(failed: &FailedAttempt) -> Result<(String, String, i64)> {
    let endpoint = failed.endpoint.trim();
    if endpoint.is_empty() {
        return Err(invalid(
            Code::MissingField,
            "endpoint",
            Msg::new("missing_field-attempt-endpoint"),
        ));
    }
    if failed.attempts == 0 {
        return Err(invalid(
            Code::InvalidAttempts,
            "attempts",
            Msg::new("invalid_attempts"),
        ));
    }
    let reason = failed.reason.trim();
    let reason = if reason.chars().count() > MAX_REASON_CHARS {
        let mut cut: String = reason.chars().take(MAX_REASON_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        reason.to_string()
    };
    Ok((endpoint.to_string(), reason, i64::from(failed.attempts)))
}

impl Ledger {
    /// Records requests that no endpoint answered: they open an outage, starting at
    /// `failed.at`, when none is current (which then also takes in the invoices caught by
    /// it, see the module doc), else they count towards the current one. Returns the
    /// outage's id.
    pub fn record_failed_attempt(&self, failed: &FailedAttempt) -> Result<i64> {
        let checked = checked(failed)?;
        let tx = self.write_tx()?;
        let id = Self::failed_in(&tx, failed.at, &checked)?;
        tx.commit()?;
        Ok(id)
    }

    /// [`Ledger::record_attempt`] for a submission that no endpoint answered, with the
    /// outage record, in one transaction.
    pub fn record_unanswered_attempt(
        &self,
        invoice_id: &str,
        error: &str,
        next_attempt_at: Option<DateTime<Utc>>,
        failed: &FailedAttempt,
    ) -> Result<i64> {
        let checked = checked(failed)?;
        let tx = self.write_tx()?;
        Self::attempt_in(&tx, invoice_id, error, next_attempt_at)?;
        let id = Self::failed_in(&tx, failed.at, &checked)?;
        tx.commit()?;
        Ok(id)
    }

    fn failed_in(
        tx: &Transaction<'_>,
        at: DateTime<Utc>,
        (endpoint, reason, attempts): &(String, String, i64),
    ) -> Result<i64> {
        let current: Option<i64> = tx
            .prepare_cached("SELECT id FROM outages WHERE ended_at IS NULL")?
            .query_row([], |r| r.get(0))
            .optional()?;
        if let Some(id) = current {
            tx.prepare_cached(
                "UPDATE outages SET failed_attempts = failed_attempts + ?2 WHERE id = ?1",
            )?
            .execute(params![id, attempts])?;
            return Ok(id);
        }
        // The last moment the authority was known to serve this device: invoices issued
        // since, still without a receipt, were caught by this outage. Timestamps are all
        // RFC 3339 UTC with whole seconds, so they compare as text.
        let since: String = tx
            .prepare_cached(
                "SELECT MAX(COALESCE(d.last_sync_at, ''), COALESCE(d.enrolled_at, ''),
                            COALESCE((SELECT MAX(ended_at) FROM outages), ''))
                 FROM device d WHERE d.id = 1",
            )?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or_default();
        tx.prepare_cached(
            "INSERT INTO outages (started_at, failed_endpoint, reason, failed_attempts) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![rfc3339(at), endpoint, reason, attempts])?;
        let id = tx.last_insert_rowid();
        tx.prepare_cached(
            "INSERT INTO outage_invoices (seq, outage_id)
             SELECT i.seq, ?1 FROM outbox o JOIN invoices i ON i.seq = o.seq
             WHERE i.issued_at >= ?2
               AND NOT EXISTS (SELECT 1 FROM outage_invoices x WHERE x.seq = i.seq)",
        )?
        .execute(params![id, since])?;
        Ok(id)
    }

    /// The authority served (`endpoint` gave an answer that proves it): ends the current
    /// outage at `at` and returns it; `None`, without a write, when none is current.
    pub fn record_served(&self, endpoint: &str, at: DateTime<Utc>) -> Result<Option<Outage>> {
        let endpoint = endpoint.trim();
        if endpoint.is_empty() {
            return Err(invalid(
                Code::MissingField,
                "endpoint",
                Msg::new("missing_field-outage-endpoint"),
            ));
        }
        // Read first: a drain answers many times, and an outage is rare.
        if self.current_outage_id()?.is_none() {
            return Ok(None);
        }
        let tx = self.write_tx()?;
        let current: Option<i64> = tx
            .prepare_cached("SELECT id FROM outages WHERE ended_at IS NULL")?
            .query_row([], |r| r.get(0))
            .optional()?;
        let Some(id) = current else {
            // Another process ended it meanwhile.
            return Ok(None);
        };
        // A clock set back since the start ends it where it started, not before.
        tx.prepare_cached(
            "UPDATE outages SET ended_at = MAX(started_at, ?2), ended_by = ?3 WHERE id = ?1",
        )?
        .execute(params![id, rfc3339(at), endpoint])?;
        let ended = Self::outage_in(&tx, id)?;
        tx.commit()?;
        Ok(ended)
    }

    fn current_outage_id(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM outages WHERE ended_at IS NULL")?
            .query_row([], |r| r.get(0))
            .optional()?)
    }

    fn outage_in(conn: &rusqlite::Connection, id: i64) -> Result<Option<Outage>> {
        let sql = format!("SELECT {OUTAGE_COLUMNS} FROM outages o WHERE o.id = ?1");
        Ok(conn
            .prepare_cached(&sql)?
            .query_row([id], outage_row)
            .optional()?)
    }

    /// The current outage, if the authority is down as far as this device knows.
    pub fn current_outage(&self) -> Result<Option<Outage>> {
        let tx = self.read_tx()?;
        let sql = format!("SELECT {OUTAGE_COLUMNS} FROM outages o WHERE o.ended_at IS NULL");
        let current = tx
            .prepare_cached(&sql)?
            .query_row([], outage_row)
            .optional()?;
        Ok(current)
    }

    /// Every outage of the record, oldest first, the current one (if any) last.
    pub fn outages(&self) -> Result<Vec<Outage>> {
        let tx = self.read_tx()?;
        let sql = format!("SELECT {OUTAGE_COLUMNS} FROM outages o ORDER BY o.id");
        let all = tx
            .prepare_cached(&sql)?
            .query_map([], outage_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(all)
    }

    /// The outage the invoice at `seq` was issued during, if any.
    pub(crate) fn outage_of(conn: &rusqlite::Connection, seq: u64) -> Result<Option<i64>> {
        Ok(conn
            .prepare_cached("SELECT outage_id FROM outage_invoices WHERE seq = ?1")?
            .query_row([seq], |r| r.get(0))
            .optional()?)
    }

    /// Marks the invoice just inserted at `seq` as issued during `outage`, the one in
    /// progress (inside the issuance transaction).
    pub(crate) fn mark_in_outage(tx: &Transaction<'_>, seq: u64, outage: i64) -> Result<()> {
        tx.prepare_cached("INSERT INTO outage_invoices (seq, outage_id) VALUES (?1, ?2)")?
            .execute(params![seq, outage])?;
        Ok(())
    }
}
