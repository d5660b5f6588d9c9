//! What needs a human: the alerts raised for one (integrity, key reuse, a bad receipt
//! signature, auth), until dismissed, and the stopped queue that sync will not drain
//! until a person clears it.

use crate::{rows, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::rfc3339;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub at: String,
    pub code: String,
    pub message: String,
    pub invoice_id: Option<String>,
    /// The number of the invoice `invoice_id` names, when it is in this ledger.
    pub number: Option<String>,
}

impl Ledger {
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
            params![rfc3339(now), code, message, invoice_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn alerts_in(conn: &rusqlite::Connection) -> Result<Vec<Alert>> {
        let mut alerts = conn
            .prepare_cached("SELECT id, at, code, message, invoice_id FROM alerts WHERE dismissed_at IS NULL ORDER BY id")?
            .query_map([], |r| {
                Ok(Alert {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    code: r.get(2)?,
                    message: r.get(3)?,
                    invoice_id: r.get(4)?,
                    number: None,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for a in &mut alerts {
            let Some(id) = a.invoice_id.as_deref() else {
                continue;
            };
            if let Some(seq) = crate::lookup::seq_of_id(conn, id)? {
                a.number = conn
                    .prepare_cached("SELECT number FROM invoices WHERE seq = ?1")?
                    .query_row([seq], |r| r.get(0))
                    .optional()?;
            }
        }
        Ok(alerts)
    }

    /// Alerts not yet dismissed, oldest first (also in [`LedgerStatus::alerts`](crate::LedgerStatus::alerts)).
    pub fn alerts(&self) -> Result<Vec<Alert>> {
        Self::alerts_in(&self.conn)
    }

    /// A human has read the alert: it leaves the status but stays in the file.
    pub fn dismiss_alert(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE alerts SET dismissed_at = ?2 WHERE id = ?1 AND dismissed_at IS NULL",
            params![id, rfc3339(now)],
        )?;
        if n == 0 {
            return Err(LedgerError::AlertNotFound(id));
        }
        tx.commit()?;
        Ok(())
    }

    /// Stops the queue (SPEC 6: integrity / idempotency_key_reused); sync refuses to run
    /// until a human clears it.
    pub fn stop_queue(&self, reason: &str, now: DateTime<Utc>) -> Result<()> {
        self.update_device(
            "UPDATE device SET queue_stopped = ?1, queue_stopped_at = ?2 WHERE id = 1",
            params![reason, rfc3339(now)],
        )
    }

    /// Stops the queue, raises its alert and, when the invoice is still in the outbox
    /// (`attempted`), records the attempt on it: in one transaction, so that no crash or
    /// failure leaves a stopped queue without the alert that says why, or the reverse.
    pub fn stop_queue_with_alert(
        &self,
        code: &str,
        reason: &str,
        invoice_id: Option<&str>,
        attempted: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute(
            "UPDATE device SET queue_stopped = ?1, queue_stopped_at = ?2 WHERE id = 1",
            params![reason, rfc3339(now)],
        )? == 0
        {
            return Err(LedgerError::NotInitialized);
        }
        tx.execute(
            "INSERT INTO alerts (at, code, message, invoice_id) VALUES (?1, ?2, ?3, ?4)",
            params![rfc3339(now), code, reason, invoice_id],
        )?;
        if let (true, Some(id)) = (attempted, invoice_id) {
            Self::attempt_in(&tx, id, reason, None)?;
        }
        tx.commit()?;
        Ok(())
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
}
