//! What counts as an outage of the authority, and telling the ledger's outage record
//! ([`kaipiao_ledger::Outage`]).
//!
//! - A **failed attempt** is a request that no endpoint answered as the authority: a
//!   transport error, a timeout, a 5xx that is not a refusal for overload (503 `outage`
//!   and `unavailable`, 500, 502...: the authority failing to serve), or an answer that
//!   is not the authority's (an HTML error page, a 2xx whose body does not parse). These
//!   are the answers that move the next attempt to the next endpoint, but for 503
//!   `overloaded`.
//! - An **answer** that is not a success — a refusal for overload
//!   ([`crate::is_overload_refusal`]: 429 `rate_limited`, 503 `overloaded`), 409
//!   (`request_in_progress`, `chain_gap`), 401, 4xx — shows that the authority is there
//!   and talking to this device: it neither opens nor counts towards an outage. It does
//!   not end one either. An overloaded authority is slowed down by the sending policy
//!   (Retry-After, throttling, the recovery plan), not recorded as down.
//! - A **success** (the 2xx a request expects: health, lease, submission, head) proves the
//!   authority serves: it ends the current outage.
//!
//! Failover is not an outage: a failure on the primary followed by an answer from a backup
//! records nothing. Failures are held until every endpoint that still accepts this device
//! has failed in turn; then they open the outage, starting at the first of them. A run
//! that ends before it could try every endpoint (a primary that hung until the give-up
//! deadline) records nothing. Writes to the record are best effort (see [`OutageWatch`]).
//! While an outage is current every failed attempt counts.

use crate::client::{read_answer, verdict_error, Client, Verdict};
use crate::error::SyncError;
use crate::SyncOptions;
use chrono::Utc;
use kaipiao_core::wire::Health;
use kaipiao_ledger::{FailedAttempt, Ledger, Outage};
use reqwest::Method;

/// One run's (or one probe's) view of the outage record.
///
/// Its writes are best effort: the record is for the clerk and the auditor, and a ledger
/// that cannot take it right now (busy, disk full) must not cost a run the receipts the
/// authority already sent. Failures not recorded are kept and tried again with the next
/// write; the first error is kept for the run's report ([`OutageWatch::write_error`]).
pub(crate) struct OutageWatch<'l> {
    ledger: &'l Ledger,
    /// An outage is current in the ledger, as far as this run knows.
    open: bool,
    /// Failed attempts since the last answer that are not recorded yet.
    streak: Option<FailedAttempt>,
    /// Why a write of the record failed, the first time it did.
    write_error: Option<String>,
}

impl<'l> OutageWatch<'l> {
    pub fn new(ledger: &'l Ledger) -> Result<OutageWatch<'l>, SyncError> {
        Ok(OutageWatch {
            ledger,
            open: ledger.current_outage()?.is_some(),
            streak: None,
            write_error: None,
        })
    }

    /// Why the outage record could not be written during this run, if it could not.
    pub fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }

    fn write_failed(&mut self, e: &kaipiao_ledger::LedgerError) {
        if self.write_error.is_none() {
            self.write_error = Some(e.to_string());
        }
    }

    /// A request to `endpoint` that no endpoint answered, for `reason`.
    pub fn failed(&mut self, endpoint: &str, reason: &str) {
        match &mut self.streak {
            Some(streak) => streak.attempts = streak.attempts.saturating_add(1),
            None => {
                self.streak = Some(FailedAttempt {
                    at: Utc::now(),
                    endpoint: endpoint.to_string(),
                    reason: reason.to_string(),
                    attempts: 1,
                })
            }
        }
    }

    /// An answer that is not a success: the failures before it were a failover, not an
    /// outage. During an outage they still count (it ends only with a success).
    pub fn answered(&mut self) {
        if !self.open {
            self.streak = None;
        }
    }

    /// A success from `endpoint`: the failures before it are recorded if an outage is
    /// current (else they were a failover), and the current outage ends. Returns it.
    pub fn served(&mut self, endpoint: &str) -> Result<Option<Outage>, SyncError> {
        let streak = self.streak.take();
        if self.open {
            if let Some(streak) = streak {
                if let Err(e) = self.ledger.record_failed_attempt(&streak) {
                    self.write_failed(&e);
                }
            }
        }
        // Asked even when this run knows of no outage: another process (the app, a
        // cron job) may have opened one. It is a read unless one is current.
        match self.ledger.record_served(endpoint, Utc::now()) {
            Ok(ended) => {
                self.open = false;
                Ok(ended)
            }
            // Still open in the ledger: the next success tries again.
            Err(e) => {
                self.write_failed(&e);
                Ok(None)
            }
        }
    }

    /// The failures not recorded yet, when they are an outage: one is current, or
    /// `all_down` (every usable endpoint's last request failed). The caller records them,
    /// with its own write ([`Ledger::record_unanswered_attempt`]).
    pub fn take_due(&mut self, all_down: bool) -> Option<FailedAttempt> {
        self.streak.as_ref()?;
        if self.open && !all_down {
            // Known at the start of the run (which may have waited minutes since): a
            // probe of the app may have ended it meanwhile, and then one failover is
            // not an outage.
            self.open = matches!(self.ledger.current_outage(), Ok(Some(_)));
        }
        if !(self.open || all_down) {
            return None;
        }
        let streak = self.streak.take()?;
        self.open = true;
        Some(streak)
    }

    /// Records the failures that are due (see [`OutageWatch::take_due`]) on their own.
    pub fn record_due(&mut self, all_down: bool) -> Result<(), SyncError> {
        let was_open = self.open;
        if let Some(streak) = self.take_due(all_down) {
            if let Err(e) = self.ledger.record_failed_attempt(&streak) {
                self.write_failed(&e);
                // Kept for the next write.
                self.streak = Some(streak);
                self.open = was_open;
            }
        }
        Ok(())
    }

    /// The end of a run or probe: failures that no answer followed are an outage when
    /// every endpoint asked failed (`all_down`); a run that ended before it could try a
    /// backup does not make one endpoint's failure the authority's outage.
    pub fn finish(&mut self, all_down: bool) -> Result<(), SyncError> {
        self.record_due(all_down)
    }
}

/// What one endpoint answered to a health probe.
pub type HealthAnswer = (String, Result<Health, SyncError>);

/// `GET /v1/health` on each endpoint of `servers` in order until one serves, for a loop
/// that watches for the authority (the app's background loop between syncs): the
/// endpoints asked, in order, each with its health or why it failed (the last one `Ok`
/// when one served; an endpoint that refused for overload with an error for which
/// [`SyncError::is_overload_refusal`] holds). The answers are recorded in the ledger's
/// outage record like any request of a sync run: failures from every endpoint open an
/// outage (or count towards the current one), a refusal for overload does neither, a
/// health answer ends it. `Err` when `servers` are not usable or the ledger cannot be
/// written.
pub async fn probe_health(
    ledger: &Ledger,
    servers: &[String],
    opts: &SyncOptions,
) -> Result<Vec<HealthAnswer>, SyncError> {
    let client = Client::new(servers, opts)?;
    let mut watch = OutageWatch::new(ledger)?;
    let mut answers = Vec::new();
    for endpoint in client.endpoints() {
        let result = client
            .send(
                Method::GET,
                endpoint,
                "/v1/health",
                None,
                &[],
                opts.request_timeout,
            )
            .await;
        let error = match read_answer(result, 200) {
            Verdict::Success(answer) => match serde_json::from_str::<Health>(&answer.body) {
                Ok(health) => {
                    watch.served(endpoint)?;
                    answers.push((endpoint.clone(), Ok(health)));
                    return Ok(answers);
                }
                // Not the authority's answer (a captive portal, a proxy's page).
                Err(e) => {
                    let why = format!("GET /v1/health on {endpoint}: {e}");
                    watch.failed(endpoint, &why);
                    SyncError::InvalidResponse(why)
                }
            },
            verdict => {
                match &verdict {
                    Verdict::Retry {
                        failover: true,
                        reason,
                        ..
                    } if !verdict.is_overload_refusal() => watch.failed(endpoint, reason),
                    _ => watch.answered(),
                }
                // A refusal for overload comes back as the authority's answer
                // (SyncError::is_overload_refusal), anything else failed as unreachable.
                verdict_error(verdict)
            }
        };
        answers.push((endpoint.clone(), Err(error)));
    }
    // Every endpoint was asked and none served.
    watch.finish(true)?;
    Ok(answers)
}
