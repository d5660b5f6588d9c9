//! One run's view of the authority: which endpoint to use next, which are down or
//! unusable, how long to back off, and when to give up for lack of progress.

use crate::client::{classify, verdict_error, Client, Verdict};
use crate::error::SyncError;
use crate::policy::Backoff;
use crate::{Progress, SyncOptions};
use chrono::Utc;
use kaipiao_core::DeviceKey;
use kaipiao_ledger::Ledger;
use reqwest::Method;
use std::time::Duration;
use tokio::time::Instant;

/// What a device-signed request is signed with.
pub(crate) struct Signer<'s> {
    pub ledger: &'s Ledger,
    pub key: &'s DeviceKey,
    pub device_id: &'s str,
}

/// One request of [`Link::call`].
pub(crate) struct Call<'c> {
    pub method: Method,
    pub path: &'c str,
    pub body: Option<&'c [u8]>,
    pub success: u16,
    /// Retry with backoff until the give-up deadline; otherwise one try per endpoint.
    pub patient: bool,
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
    /// Set after a 401 `unknown_device` / `bad_request_signature`: not used again this run.
    unusable: bool,
    announced: bool,
    up: Option<bool>,
    /// Retry-After from this endpoint.
    not_before: Option<Instant>,
}

pub(crate) struct Link<'a> {
    pub client: Client,
    opts: &'a SyncOptions,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
    endpoints: Vec<EndpointState>,
    current: usize,
    backoff: Backoff,
    /// Consecutive failed attempts since the last progress.
    failures: u32,
    deadline: Instant,
    /// Some endpoint gave an HTTP answer during this run.
    pub answered: bool,
    pub last_reason: String,
    /// Messages of the alerts raised during this run.
    pub alerts: Vec<String>,
}

impl<'a> Link<'a> {
    pub fn new(
        client: Client,
        opts: &'a SyncOptions,
        progress: &'a (dyn Fn(Progress) + Send + Sync),
    ) -> Link<'a> {
        let endpoints = client
            .endpoints()
            .iter()
            .map(|url| EndpointState {
                url: url.clone(),
                unusable: false,
                announced: false,
                up: None,
                not_before: None,
            })
            .collect();
        Link {
            client,
            opts,
            progress,
            endpoints,
            current: 0,
            backoff: Backoff::default(),
            failures: 0,
            deadline: later(opts.give_up_after),
            answered: false,
            last_reason: String::new(),
            alerts: Vec::new(),
        }
    }

    pub fn emit(&self, event: Progress) {
        (self.progress)(event);
    }

    /// The endpoint to use next (index and URL), None when every one is unusable.
    pub fn endpoint(&mut self) -> Option<(usize, String)> {
        let n = self.endpoints.len();
        let i = (0..n)
            .map(|k| (self.current + k) % n)
            .find(|&i| !self.endpoints[i].unusable)?;
        self.current = i;
        let state = &mut self.endpoints[i];
        if !state.announced {
            state.announced = true;
            let endpoint = state.url.clone();
            self.emit(Progress::Connecting { endpoint });
        }
        Some((i, self.endpoints[i].url.clone()))
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

    /// A failed attempt: remember Retry-After, and move to the next endpoint on transport
    /// errors and 5xx (simple failover).
    pub fn mark_failed(&mut self, i: usize, retry_after: Option<Duration>, failover: bool) {
        if let (Some(state), Some(ra)) = (self.endpoints.get_mut(i), retry_after) {
            state.not_before = Some(later(ra));
        }
        if failover {
            self.set_up(i, false);
            if self.endpoints.len() > 1 {
                self.current = (i + 1) % self.endpoints.len();
            }
        } else {
            // It answered (429, 409 in progress): reachable, just not now.
            self.mark_answered(i);
        }
    }

    /// The endpoint refused this device (401): not used again this run.
    pub fn mark_unusable(&mut self, i: usize) {
        if let Some(state) = self.endpoints.get_mut(i) {
            state.unusable = true;
        }
        self.answered = true;
        self.set_up(i, false);
        if self.endpoints.len() > 1 {
            self.current = (i + 1) % self.endpoints.len();
        }
    }

    /// A stored receipt (or an advance of the authority's chain): reset the backoff and
    /// the give-up clock.
    pub fn progressed(&mut self) {
        self.failures = 0;
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

    /// The wait before the next attempt: full-jitter backoff, at least the current
    /// endpoint's Retry-After. Counts the failure.
    pub fn next_delay(&mut self) -> Duration {
        let now = Instant::now();
        let floor = self
            .endpoints
            .get(self.current)
            .and_then(|e| e.not_before)
            .map(|t| t.saturating_duration_since(now));
        let delay = self
            .backoff
            .delay(self.failures, floor, &mut rand::thread_rng());
        self.failures = self.failures.saturating_add(1);
        delay
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

impl Link<'_> {
    /// Updates the endpoint's state from a verdict about it.
    pub fn note(&mut self, i: usize, verdict: &Verdict) {
        match verdict {
            Verdict::Retry {
                retry_after,
                failover,
                ..
            } => self.mark_failed(i, *retry_after, *failover),
            Verdict::Unauthorized { .. } => self.mark_unusable(i),
            Verdict::Success(_)
            | Verdict::ChainGap { .. }
            | Verdict::ClockSkew { .. }
            | Verdict::Stop { .. }
            | Verdict::Refused { .. } => self.mark_answered(i),
        }
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
        self.alerts.push(format!("{code}: {message}"));
        Ok(())
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
            match classify(result, call.success) {
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
        let mut tries = 0usize;
        loop {
            let Some((i, endpoint)) = self.endpoint() else {
                return Err(SyncError::Authority {
                    status: 401,
                    code: "no_usable_endpoint".into(),
                    message: format!("no endpoint accepts this device: {}", self.last_reason),
                    field: String::new(),
                });
            };
            let Some(timeout) = self.request_timeout() else {
                return Err(SyncError::Http(self.give_up_reason()));
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
                    classify(result, call.success)
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
            self.note(i, &verdict);
            if let Some(value) = parsed {
                return Ok(value);
            }
            match verdict {
                Verdict::Retry { reason, .. } => {
                    let reason = format!("{endpoint}: {reason}");
                    self.last_reason = reason.clone();
                    tries += 1;
                    if call.patient {
                        let delay = self.next_delay();
                        if !self.wait(delay, &reason).await {
                            return Err(SyncError::Http(reason));
                        }
                    } else if tries >= self.endpoints.len() {
                        return Err(SyncError::Http(reason));
                    }
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
