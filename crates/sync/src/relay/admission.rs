//! Following the authority's schedule (issue 13, docs/PROTOCOL.md section 9.1). An
//! authority that paces recovery says so in `/v1/health` (`admission`); a run then asks
//! `POST /v1/admission` before each share of a backlog larger than `live_max` and sends
//! the share under its ticket at its slot. Waiting for a turn: the background run waits
//! (and asks again when told); a run a person started ("Sync now", `kaipiao sync`) ends
//! at once with the turn in its report, never going ahead of the schedule. Against an
//! authority without admission (no `admission` in health, 404 or 405 from the endpoint)
//! the run does what it did before: the recovery plan of [`crate::policy::Recovery`].

use super::{Run, Step};
use crate::error::SyncError;
use crate::route::{clock, Call, Signer};
use crate::{Progress, SyncOutcome};
use chrono::{DateTime, Utc};
use kaipiao_core::time::parse_rfc3339;
use kaipiao_core::wire::{AdmissionAnswer, AdmissionRequest};
use reqwest::Method;
use std::time::Duration;

/// Whether and how this run follows the authority's schedule.
#[derive(Debug, Clone, Default)]
pub(super) enum Pacing {
    /// Not known yet, or the authority does not pace: the run's own policy.
    #[default]
    Own,
    /// The authority paces. While it is not `recovering`, a device with at most
    /// `live_max` pending sends without asking; otherwise it asks first.
    Authority { live_max: u32, recovering: bool },
}

/// The time `at` (the authority's clock, RFC 3339) as a moment of the policy clock,
/// measured from the answer's `server_time` so that the two clocks never need to agree.
/// Measured from when the answer arrived (later than `server_time` by the answer's
/// journey), so the moment reached is never before `at` on the authority's clock.
fn local_moment(answer: &AdmissionAnswer, at: &str) -> Option<Duration> {
    let server = parse_rfc3339(&answer.server_time)?;
    Some(clock() + millis_until(parse_rfc3339(at)?, server))
}

/// How long after `server` (the answer's time) `at` is; zero when it is not after.
fn millis_until(at: DateTime<Utc>, server: DateTime<Utc>) -> Duration {
    (at - server).to_std().unwrap_or(Duration::ZERO)
}

impl Run<'_> {
    /// Reads the authority's health when there is a backlog (more than
    /// [`kaipiao_core::admission::Params`]'s default `live_max` pending): does it pace
    /// recovery? Best effort: an endpoint that does not answer leaves the run to its own
    /// policy (it will meet the outage anyway).
    pub(super) async fn probe_pacing(&mut self) -> Result<(), SyncError> {
        let live_max = kaipiao_core::admission::Params::new(1).live_max;
        if self.ledger.status(Utc::now())?.pending <= u64::from(live_max) {
            return Ok(());
        }
        let Some(endpoint) = self.route.client.endpoints().first().cloned() else {
            return Ok(());
        };
        if let Ok(health) = self.route.client.health(&endpoint).await {
            if let Some(admission) = health.admission {
                self.pacing = Pacing::Authority {
                    live_max: admission.live_max,
                    recovering: admission.recovering,
                };
            }
        }
        Ok(())
    }

    /// Before a share under the authority's schedule: asks for admission and waits for
    /// the slot (setting the ticket and the share), or, waiting for a turn, waits for it
    /// in the background and ends a run a person started with the turn in its report.
    /// `Some(outcome)` ends the run.
    pub(super) async fn admit(&mut self) -> Result<Option<SyncOutcome>, SyncError> {
        loop {
            let Pacing::Authority {
                live_max,
                recovering,
            } = self.pacing
            else {
                return Ok(None);
            };
            self.ticket = None;
            let status = self.ledger.status(Utc::now())?;
            if status.pending == 0 || (!recovering && status.pending <= u64::from(live_max)) {
                // Nothing to pace, or live traffic while nothing is paced: sent without
                // asking (during a recovery live traffic asks too, and is granted from
                // the authority's reserve, never behind the backlog).
                self.share_until = None;
                return Ok(None);
            }
            let request = AdmissionRequest {
                pending: status.pending,
                oldest_pending_at: status
                    .oldest_pending_at
                    .clone()
                    .unwrap_or_else(|| kaipiao_core::time::rfc3339(Utc::now())),
                offline_hours: status
                    .lease_in_force
                    .as_ref()
                    .map_or(0, |l| l.offline_hours),
            };
            // From here on this run's rest is paced too, however small it gets: it was
            // part of a backlog (health's `recovering` was read before anyone asked).
            self.pacing = Pacing::Authority {
                live_max,
                recovering: true,
            };
            let body = serde_json::to_vec(&request).unwrap_or_default();
            let answer = match self.ask_admission(&body).await? {
                Some(answer) => answer,
                None => {
                    // No admission after all: the run's own policy from here.
                    self.pacing = Pacing::Own;
                    self.share_until = None;
                    if let Some(spread) = self.start_spread {
                        self.start_plan(spread).await?;
                    }
                    return Ok(None);
                }
            };
            match answer.decision.as_str() {
                "open" => {
                    self.share_until = None;
                    return Ok(None);
                }
                "admitted" => {
                    let (Some(ticket), Some(invoices)) = (answer.ticket.clone(), answer.invoices)
                    else {
                        return Ok(Some(SyncOutcome::Transient(
                            "the authority's admission answer has no ticket".into(),
                        )));
                    };
                    let at = answer
                        .not_before
                        .as_deref()
                        .and_then(|t| local_moment(&answer, t))
                        .unwrap_or_else(clock);
                    self.route.wait_for_turn(at).await;
                    self.ticket = Some(ticket);
                    let share = usize::try_from(invoices).unwrap_or(usize::MAX);
                    self.share_until = Some(self.taken.len().saturating_add(share));
                    return Ok(None);
                }
                "waiting" => {
                    let server = parse_rfc3339(&answer.server_time).unwrap_or_else(Utc::now);
                    let turn = answer
                        .turn_at
                        .as_deref()
                        .and_then(parse_rfc3339)
                        .unwrap_or(server);
                    let reason = answer.reason.clone().unwrap_or_else(|| {
                        "the authority is pacing its recovery from an outage".into()
                    });
                    // The turn on this device's clock, for a person and for the report.
                    let local_turn = Utc::now()
                        + chrono::Duration::from_std(millis_until(turn, server))
                            .unwrap_or_default();
                    self.report.turn_at = Some(kaipiao_core::time::rfc3339(local_turn));
                    self.route.emit(Progress::Turn {
                        after: millis_until(turn, server),
                        turn_at: kaipiao_core::time::rfc3339(local_turn),
                        ahead: answer.ahead_invoices.unwrap_or(0),
                        reason: reason.clone(),
                    });
                    if !self.background {
                        // Not this shop's turn: the heads are left for the run that drains.
                        self.ended_at_share = true;
                        self.report.ask_again_after = Some(
                            answer
                                .ask_again_at
                                .as_deref()
                                .and_then(parse_rfc3339)
                                .map_or(Duration::from_secs(1), |t| millis_until(t, server)),
                        );
                        return Ok(Some(SyncOutcome::Transient(format!(
                            "not this shop's turn yet: {reason}; its turn is expected at {}",
                            kaipiao_core::time::rfc3339(local_turn)
                        ))));
                    }
                    let again = answer
                        .ask_again_at
                        .as_deref()
                        .and_then(|t| local_moment(&answer, t))
                        .unwrap_or_else(|| clock() + Duration::from_secs(1));
                    self.route.wait_for_turn(again).await;
                }
                other => {
                    return Ok(Some(SyncOutcome::Transient(format!(
                    "the authority's admission answer is {other:?}, not open, admitted or waiting"
                ))))
                }
            }
        }
    }

    /// `POST /v1/admission`, with the route's retry policy; None when the endpoint is not
    /// there (404 or 405: an authority that does not pace).
    async fn ask_admission(&mut self, body: &[u8]) -> Result<Option<AdmissionAnswer>, SyncError> {
        let signer = Signer {
            ledger: self.ledger,
            key: self.key,
            device_id: &self.device_id,
        };
        let call = Call {
            method: Method::POST,
            path: "/v1/admission",
            body: Some(body),
            success: 200,
            patient: true,
        };
        let result = self
            .route
            .call(call, Some(&signer), |b| {
                serde_json::from_str::<AdmissionAnswer>(b).map_err(|e| e.to_string())
            })
            .await;
        match result {
            Ok(answer) => Ok(Some(answer)),
            Err(SyncError::Authority { status, .. }) if status == 404 || status == 405 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The current share under the authority's schedule is sent (or refused): flush, then
    /// ask again.
    pub(super) async fn next_admitted_share(&mut self) -> Result<Step, SyncError> {
        if let Step::End(outcome) = self.flush().await? {
            return Ok(Step::End(outcome));
        }
        match self.admit().await? {
            Some(outcome) => Ok(Step::End(outcome)),
            None => Ok(Step::Again),
        }
    }
}
