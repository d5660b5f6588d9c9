//! The route of one run's requests to the authority ([`Route`]): which endpoint each
//! request goes to and when (the sending policy, [`Pacer`], asked before every request
//! and told every outcome; failover between endpoints), until when (the give-up
//! deadline), and what came of it (endpoint events, the outage record, alerts).
//!
//! The pacer's lasting state (Retry-After, breakers, budget, throttling window) is kept
//! between runs in a small file in the data directory, so a second `kaipiao sync` or a
//! "Sync now" right after a 503 honours the Retry-After and the budget the first run
//! was given. The backoff timer is not kept: "Sync now" ignores it (SPEC 6).

use crate::client::{read_answer, verdict_error, Client, Verdict};
use crate::error::SyncError;
use crate::outage::OutageWatch;
use crate::policy::{Hold, Next, Outcome, Pacer, PacerState, Params};
use crate::{Progress, SyncOptions};
use chrono::Utc;
use kaipiao_core::{Code, DeviceKey};
use kaipiao_ledger::Ledger;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The pacer's state between runs, in the data directory (no secrets in it).
const POLICY_FILE: &str = "sync-policy.json";

/// The policy clock of the real client: the wall clock since the Unix epoch, so that
/// saved Retry-After and cool-down times mean the same thing to the next process. A
/// clock set back is handled by the policy (saved times are capped).
pub(crate) fn clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// What [`POLICY_FILE`] holds: the pacer's state with its endpoints named, so a changed
/// server list keeps what it can.
#[derive(Debug, Serialize, Deserialize)]
struct SavedPolicy {
    endpoints: Vec<String>,
    state: PacerState,
}

/// Why [`Route::slot`] ends a run instead of naming an endpoint.
pub(crate) enum Ended {
    /// Every endpoint refused this device.
    NoEndpoint(String),
    /// The policy's wait would end past the give-up deadline (or the call is not patient).
    GaveUp(String),
}

/// What a device-signed request is signed with.
pub(crate) struct Signer<'s> {
    pub ledger: &'s Ledger,
    pub key: &'s DeviceKey,
    pub device_id: &'s str,
}

/// One request of [`Route::call`].
pub(crate) struct Call<'c> {
    pub method: Method,
    pub path: &'c str,
    pub body: Option<&'c [u8]>,
    pub success: u16,
    /// Retry with backoff until the give-up deadline; otherwise one try per endpoint.
    pub patient: bool,
}

impl<'c> Call<'c> {
    /// A device-signed read that waits out failures until the give-up deadline.
    pub fn get(path: &'c str) -> Call<'c> {
        Call {
            method: Method::GET,
            path,
            body: None,
            success: 200,
            patient: true,
        }
    }
}

/// `now + d`, saturating at a far future instead of overflowing on absurd durations
/// (a Retry-After of 10^19 seconds must not panic).
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

struct EndpointState {
    url: String,
    /// Set after a 401 `unknown_device` / `bad_request_signature`, or an unsigned stop
    /// verdict: not used again this run.
    unusable: bool,
    /// Sent an answer that would stop the queue without the authority's signature.
    misbehaved: bool,
    announced: bool,
    up: Option<bool>,
}

/// One run's route to the authority: its endpoints and their state, the pacer, the
/// give-up deadline, and what the run has met on the way (see the module documentation).
pub(crate) struct Route<'a> {
    pub client: Client,
    opts: &'a SyncOptions,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
    endpoints: Vec<EndpointState>,
    pacer: Pacer,
    deadline: Instant,
    /// The authority answered during this run: an HTTP answer that is not a failed
    /// attempt in the outage record's sense (a refusal for overload is an answer).
    pub answered: bool,
    pub last_reason: String,
    /// Messages of the alerts raised during this run.
    pub alerts: Vec<String>,
    /// Requests refused for overload during this run ([`crate::is_overload_refusal`]).
    pub overloads: u64,
    /// The ledger's outage record, kept when the run has a ledger to keep it in.
    outages: Option<OutageWatch<'a>>,
}

impl<'a> Route<'a> {
    pub fn new(
        client: Client,
        opts: &'a SyncOptions,
        progress: &'a (dyn Fn(Progress) + Send + Sync),
    ) -> Route<'a> {
        let endpoints = client
            .endpoints()
            .iter()
            .map(|url| EndpointState {
                url: url.clone(),
                unusable: false,
                misbehaved: false,
                announced: false,
                up: None,
            })
            .collect::<Vec<_>>();
        let pacer = Pacer::new(Params::default(), endpoints.len(), clock());
        Route {
            client,
            opts,
            progress,
            endpoints,
            pacer,
            deadline: later(opts.give_up_after),
            answered: false,
            last_reason: String::new(),
            alerts: Vec::new(),
            overloads: 0,
            outages: None,
        }
    }

    /// Keeps `ledger`'s outage record from now on (crate::outage says what counts).
    pub fn watch_outages(&mut self, ledger: &'a Ledger) -> Result<(), SyncError> {
        self.outages = Some(OutageWatch::new(ledger)?);
        Ok(())
    }

    /// Every endpoint that still accepts this device failed its last request.
    fn all_down(&self) -> bool {
        self.endpoints
            .iter()
            .filter(|e| !e.unusable)
            .all(|e| e.up == Some(false))
    }

    /// The failed attempts not recorded yet, when they are an outage (or add to the
    /// current one), for the caller to record with its own write.
    pub fn due_outage(&mut self) -> Option<kaipiao_ledger::FailedAttempt> {
        let all_down = self.all_down();
        self.outages.as_mut()?.take_due(all_down)
    }

    /// Records the failed attempts that are an outage (see [`Route::due_outage`]).
    pub fn record_outage(&mut self) -> Result<(), SyncError> {
        let all_down = self.all_down();
        match self.outages.as_mut() {
            Some(watch) => watch.record_due(all_down),
            None => Ok(()),
        }
    }

    /// Endpoint `i` answered a request with a success as a whole (a batch's 200) even if
    /// a part of it failed: the current outage ends, and failures not yet recorded were
    /// no outage.
    pub fn served(&mut self, i: usize) -> Result<(), SyncError> {
        let endpoint = self.url(i).to_string();
        if let Some(watch) = self.outages.as_mut() {
            watch.served(&endpoint)?;
        }
        Ok(())
    }

    /// The end of the run: failed attempts that no answer followed are an outage.
    pub fn finish_outage(&mut self) -> Result<(), SyncError> {
        let all_down = self.all_down();
        let Some(watch) = self.outages.as_mut() else {
            return Ok(());
        };
        watch.finish(all_down)?;
        if let Some(e) = watch.write_error() {
            self.alerts
                .push(format!("the outage record could not be written: {e}"));
        }
        Ok(())
    }

    pub fn emit(&self, event: Progress) {
        (self.progress)(event);
    }

    /// Takes over the pacer state the last run left in `dir` (best effort: a missing or
    /// unreadable file is a fresh start). Backoff timers are not kept; Retry-After,
    /// breakers, the budget and the throttling window are. Unless the run is the
    /// background loop's, it then acts as "Sync now" (attempts at once, no local throttling).
    pub fn resume(&mut self, dir: &Path) {
        let now = clock();
        let saved = std::fs::read(dir.join(POLICY_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<SavedPolicy>(&bytes).ok());
        if let Some(saved) = saved {
            let mut state = saved.state.clone();
            // In this run's endpoint order, matched by address.
            state.endpoints = self
                .endpoints
                .iter()
                .map(|e| {
                    saved
                        .endpoints
                        .iter()
                        .position(|u| *u == e.url)
                        .and_then(|k| saved.state.endpoints.get(k).copied().flatten())
                })
                .collect();
            self.pacer = Pacer::restore(Params::default(), self.endpoints.len(), &state, now);
        }
        if !self.opts.background {
            // A person is waiting: attempt at once (SPEC 6).
            self.pacer.sync_now(now);
        }
    }

    /// Keeps the pacer state for the next run (best effort, atomically replaced).
    pub fn persist(&mut self, dir: &Path) {
        let saved = SavedPolicy {
            endpoints: self.endpoints.iter().map(|e| e.url.clone()).collect(),
            state: self.pacer.save(clock()),
        };
        let Ok(bytes) = serde_json::to_vec_pretty(&saved) else {
            return;
        };
        let tmp = dir.join(format!("{POLICY_FILE}.tmp"));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join(POLICY_FILE));
        }
    }

    /// The recovery plan after an outage ([`crate::policy::Recovery`]): waits until
    /// `at` (policy clock), the turn of the next share, then starts the give-up clock
    /// afresh (waiting for a turn is not a failure to progress).
    pub async fn wait_for_turn(&mut self, at: Duration) {
        let wait = at.saturating_sub(clock());
        if !wait.is_zero() {
            self.emit(Progress::Waiting {
                after: wait,
                reason: Hold::Start.as_str().to_string(),
            });
            tokio::time::sleep(wait).await;
        }
        self.progressed();
    }

    /// Announces the first use of an endpoint.
    fn announce(&mut self, i: usize) {
        if let Some(state) = self.endpoints.get_mut(i) {
            if !state.announced {
                state.announced = true;
                let endpoint = state.url.clone();
                self.emit(Progress::Connecting { endpoint });
            }
        }
    }

    /// Waits until the policy lets a request go, and says where: the endpoint's index
    /// and URL and the timeout for the request. `Err` with the reason when the run must
    /// end instead: every endpoint refused this device (`Ok(None)` from the outer
    /// layer's view), or the wait would end past the give-up deadline (`patient` false:
    /// any wait at all).
    pub async fn slot(&mut self, patient: bool) -> Result<(usize, String, Duration), Ended> {
        loop {
            let now = clock();
            match self.pacer.next(now, &mut rand::thread_rng()) {
                Next::Send { endpoint, .. } => {
                    let Some(timeout) = self.request_timeout() else {
                        return Err(Ended::GaveUp(self.give_up_reason()));
                    };
                    self.announce(endpoint);
                    return Ok((endpoint, self.url(endpoint).to_string(), timeout));
                }
                Next::Wait { until, hold } => {
                    let delay = until.saturating_sub(now);
                    let cause = std::mem::take(&mut self.last_reason);
                    let reason = if cause.is_empty() {
                        hold.as_str().to_string()
                    } else {
                        format!("{cause} ({})", hold.as_str())
                    };
                    let waited = patient && self.wait(delay, &reason).await;
                    // The failure stays the reason; the hold is only how it is waited out.
                    self.last_reason = cause;
                    if !waited {
                        return Err(Ended::GaveUp(reason));
                    }
                }
                // An endpoint that misbehaved says nothing about this device: work
                // remains for a transient reason, and the queue is not stopped.
                Next::NoEndpoint if self.endpoints.iter().any(|e| e.misbehaved) => {
                    return Err(Ended::GaveUp(format!(
                        "no endpoint is left to try in this run: {}",
                        self.last_reason
                    )))
                }
                Next::NoEndpoint => {
                    return Err(Ended::NoEndpoint(format!(
                        "no endpoint accepts this device: {}",
                        self.last_reason
                    )))
                }
            }
        }
    }

    /// When the pacer will let the next request go, on the wall clock (for the outbox's
    /// next_attempt_at).
    pub fn next_attempt_at(&self) -> Option<chrono::DateTime<Utc>> {
        let wait = self.pacer.ready_at().saturating_sub(clock());
        chrono::Duration::from_std(wait)
            .ok()
            .and_then(|d| Utc::now().checked_add_signed(d))
    }

    pub fn url(&self, i: usize) -> &str {
        self.endpoints.get(i).map(|e| e.url.as_str()).unwrap_or("")
    }

    fn set_up(&mut self, i: usize, up: bool) {
        let Some(state) = self.endpoints.get_mut(i) else {
            return;
        };
        if state.up != Some(up) {
            state.up = Some(up);
            let endpoint = state.url.clone();
            self.emit(Progress::Endpoint { endpoint, up });
        }
    }

    /// The endpoint gave a well-formed HTTP answer.
    pub fn mark_answered(&mut self, i: usize) {
        self.answered = true;
        self.set_up(i, true);
    }

    /// The endpoint refused this device (401): not used again this run.
    fn mark_unusable(&mut self, i: usize) {
        if let Some(state) = self.endpoints.get_mut(i) {
            state.unusable = true;
        }
        self.answered = true;
        self.set_up(i, false);
    }

    /// A stored receipt (or an advance of the authority's chain): reset the give-up
    /// clock. (The pacer resets its own backoff on every accepted request.)
    pub fn progressed(&mut self) {
        self.deadline = later(self.opts.give_up_after);
    }

    /// The timeout for the next request: the request timeout, cut short by the give-up
    /// deadline. None when the deadline has passed.
    pub fn request_timeout(&self) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        Some(self.opts.request_timeout.min(left))
    }

    /// Sleeps `delay`, unless it would end past the give-up deadline: then returns false
    /// at once (the run ends with the last reason).
    pub async fn wait(&mut self, delay: Duration, reason: &str) -> bool {
        self.last_reason = reason.to_string();
        let Some(until) = Instant::now().checked_add(delay) else {
            return false;
        };
        if until > self.deadline {
            return false;
        }
        self.emit(Progress::Retrying {
            after: delay,
            reason: reason.to_string(),
        });
        tokio::time::sleep_until(until).await;
        true
    }
}

impl Route<'_> {
    /// Tells the policy what came of a request to endpoint `i`, updates the endpoint's
    /// state for the events, and keeps the outage record: a success ends the current
    /// outage at once (`Err` when the ledger cannot be written); a failure is held until
    /// [`Route::due_outage`] / [`Route::record_outage`] (or the end of the run) records
    /// it. A refusal for overload ([`crate::is_overload_refusal`]) is the authority
    /// answering: it slows the policy down but is no failure of the endpoint.
    pub fn note(&mut self, i: usize, verdict: &Verdict) -> Result<(), SyncError> {
        let overload = verdict.is_overload_refusal();
        let outcome = match verdict {
            Verdict::Success(_)
            | Verdict::ChainGap { .. }
            | Verdict::ClockSkew { .. }
            | Verdict::Stop { .. }
            | Verdict::Refused { .. } => Outcome::Accepted,
            // 5xx, transport errors, timeouts, nonsense: this endpoint failed, and the
            // next attempt tries another; a 503 `overloaded` is the authority declining
            // the work, which alone feeds adaptive throttling.
            Verdict::Retry {
                retry_after,
                failover: true,
                ..
            } => Outcome::Failed {
                retry_after: *retry_after,
                overload,
            },
            // 429 (per device) and 409 in progress (the key is in flight at the
            // authority, whichever endpoint): the same on every endpoint.
            Verdict::Retry {
                retry_after,
                failover: false,
                ..
            } => Outcome::Busy {
                retry_after: *retry_after,
                everywhere: true,
            },
            // This endpoint refuses the device, or misbehaves: not used again this run.
            Verdict::Unauthorized { .. } | Verdict::Forged { .. } => Outcome::Refused,
        };
        self.pacer
            .record(clock(), i, outcome, &mut rand::thread_rng());
        if overload {
            self.overloads += 1;
        }
        if let Verdict::Forged { .. } = verdict {
            if let Some(state) = self.endpoints.get_mut(i) {
                state.misbehaved = true;
            }
        }
        match outcome {
            Outcome::Failed { .. } if !overload => self.set_up(i, false),
            Outcome::Refused => self.mark_unusable(i),
            Outcome::Failed { .. } | Outcome::Accepted | Outcome::Busy { .. } => {
                self.mark_answered(i)
            }
        }
        let endpoint = self.url(i).to_string();
        let Some(watch) = self.outages.as_mut() else {
            return Ok(());
        };
        match verdict {
            Verdict::Success(_) => {
                watch.served(&endpoint)?;
            }
            // The answers that fail over (Outcome::Failed) but a refusal for overload.
            Verdict::Retry {
                failover: true,
                reason,
                ..
            } if !overload => watch.failed(&endpoint, reason),
            _ => watch.answered(),
        }
        Ok(())
    }

    /// Raises an alert for a human in the ledger and remembers it for the report.
    pub fn alert(
        &mut self,
        ledger: &Ledger,
        code: &str,
        message: &str,
        invoice_id: Option<&str>,
    ) -> Result<(), SyncError> {
        ledger.raise_alert(code, message, invoice_id, Utc::now())?;
        self.noted_alert(code, message);
        Ok(())
    }

    /// Remembers for the report an alert already stored in the ledger.
    pub fn noted_alert(&mut self, code: &str, message: &str) {
        self.alerts.push(format!("{code}: {message}"));
    }

    /// A device-signed request to endpoint `i`. A 401 `clock_skew` stores the offset to
    /// the authority's clock and retries once (SPEC 6).
    pub async fn signed_send(
        &mut self,
        signer: &Signer<'_>,
        i: usize,
        call: &Call<'_>,
        timeout: Duration,
    ) -> Result<Verdict, SyncError> {
        let endpoint = self.url(i).to_string();
        let mut corrected = false;
        loop {
            let timestamp = Utc::now()
                .timestamp()
                .saturating_add(signer.ledger.clock_offset()?);
            let result = self
                .client
                .send_signed(
                    call.method.clone(),
                    &endpoint,
                    call.path,
                    call.body.map(<[u8]>::to_vec),
                    signer.key,
                    signer.device_id,
                    timestamp,
                    timeout,
                )
                .await;
            match read_answer(result, call.success) {
                Verdict::ClockSkew { server_time } if !corrected => {
                    corrected = true;
                    let offset = server_time.timestamp() - Utc::now().timestamp();
                    signer.ledger.set_clock_offset(offset)?;
                }
                Verdict::ClockSkew { server_time } => {
                    return Ok(Verdict::retry(
                        format!(
                            "{endpoint} still reports clock skew after correcting the clock offset (its time: {server_time})"
                        ),
                        true,
                    ))
                }
                verdict => return Ok(verdict),
            }
        }
    }

    /// A request with the retry policy: backoff with full jitter and failover when
    /// `patient`, else one try per endpoint. `parse` turns the success body into the
    /// result; a body it refuses is a failed attempt, like a 5xx. A 401 makes that
    /// endpoint unusable for the run and raises an alert (device-signed calls only).
    pub async fn call<T>(
        &mut self,
        call: Call<'_>,
        signer: Option<&Signer<'_>>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, SyncError> {
        loop {
            let (i, endpoint, timeout) = match self.slot(call.patient).await {
                Ok(slot) => slot,
                Err(Ended::NoEndpoint(message)) => {
                    return Err(SyncError::authority(
                        401,
                        Code::NoUsableEndpoint,
                        message,
                        "",
                    ))
                }
                Err(Ended::GaveUp(reason)) => return Err(SyncError::Http(reason)),
            };
            let verdict = match signer {
                Some(signer) => self.signed_send(signer, i, &call, timeout).await?,
                None => {
                    let result = self
                        .client
                        .send(
                            call.method.clone(),
                            &endpoint,
                            call.path,
                            call.body.map(<[u8]>::to_vec),
                            &[],
                            timeout,
                        )
                        .await;
                    read_answer(result, call.success)
                }
            };
            let (verdict, parsed) = match verdict {
                Verdict::Success(answer) => match parse(&answer.body) {
                    Ok(value) => (Verdict::Success(answer), Some(value)),
                    Err(why) => (
                        Verdict::retry(
                            format!(
                                "unexpected answer to {} {} from {endpoint}: {why}",
                                call.method, call.path
                            ),
                            true,
                        ),
                        None,
                    ),
                },
                other => (other, None),
            };
            self.note(i, &verdict)?;
            if let Some(value) = parsed {
                return Ok(value);
            }
            match verdict {
                Verdict::Retry { reason, .. } => {
                    self.record_outage()?;
                    // The next slot waits as the policy says (or ends a call that is
                    // not patient).
                    self.last_reason = format!("{endpoint}: {reason}");
                }
                Verdict::Unauthorized { code, message } if signer.is_some() => {
                    let text = format!(
                        "{endpoint} refused this device ({code}: {message}); it is not used again in this run"
                    );
                    self.last_reason = text.clone();
                    if let Some(signer) = signer {
                        self.alert(signer.ledger, &code, &text, None)?;
                    }
                }
                other => return Err(verdict_error(other)),
            }
        }
    }

    /// Why the run gives up: the last failure, or the deadline itself.
    pub fn give_up_reason(&self) -> String {
        if self.last_reason.is_empty() {
            format!(
                "no progress for {} s",
                self.opts.give_up_after.as_secs_f64()
            )
        } else {
            self.last_reason.clone()
        }
    }
}
