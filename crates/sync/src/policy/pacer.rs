//! The pacer: one client's whole sending policy towards one authority, put together from
//! the pieces of this module. The relay asks it before every request where and whether
//! to send, and tells it every outcome; the fleet simulator (crates/fleet) does exactly
//! the same on virtual time, so what is measured there is what ships.

use super::backoff::Backoff;
use super::breaker::{Breaker, BreakerParams, BreakerState};
use super::budget::{BudgetParams, RetryBudget};
use super::throttle::Throttle;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The policy's numbers. [`Params::default`] is what the client runs and what
/// `make fleet` measures; see docs/fleet.md for the measurements behind them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// SPEC 6: full jitter, base 0.5 s, cap 300 s.
    pub backoff: Backoff,
    pub budget: BudgetParams,
    /// SPEC 6: two minutes.
    pub throttle_window: Duration,
    /// SPEC 6: 2.
    pub throttle_k: f64,
    pub breaker: BreakerParams,
    /// After an outage the background loop spreads its backlog over at most this long
    /// ([`super::Recovery`]).
    pub start_spread: Duration,
}

/// Retry budget: ten tokens, a retry costs one, a success earns a tenth (so retries stay
/// within ~10% of successes once the first five are spent), and time earns one every
/// 10 s so that a queue whose every request failed still tries now and then. A slower
/// refill lowers a fleet's overload further (0.02/s: 1.2x instead of 1.4x after an
/// oversubscribed start, docs/fleet.md) but would leave "Sync now" against a flaky
/// authority waiting up to 50 s for a retry; 10 s fits inside a run.
pub const BUDGET: BudgetParams = BudgetParams {
    capacity: 10.0,
    per_retry: 1.0,
    per_success: 0.1,
    per_second: 0.1,
};

/// Breaker: SPEC 6's five consecutive failures; the first half-open probe 2.5-5 s later
/// (failover happens at the first failure, so this only decides how soon the primary is
/// tried again), doubling per failed probe up to 2.5-5 minutes.
pub const BREAKER: BreakerParams = BreakerParams {
    threshold: 5,
    cool_down: Duration::from_secs(5),
    cap: Duration::from_secs(300),
};

/// After an outage the background loop spreads its backlog over up to this long
/// ([`super::Recovery`]). The one knob that keeps a recovering authority out of
/// overload: a fleet spread over four minutes arrives at or below capacity when its
/// backlog takes the authority up to ~4 minutes to absorb (docs/fleet.md). No client can
/// know that figure; waiting costs nothing against a 72-hour offline window, and "Sync
/// now" sends everything at once.
pub const START_SPREAD: Duration = Duration::from_secs(240);

/// The start spread after an outage that lasted `outage`: a quarter of it, at most
/// [`START_SPREAD`]. A fleet's backlog grows with the outage, so a blip of a minute does
/// not make a shop wait four, while any outage of 16 minutes or more spreads the fleet
/// over the full four (what `make fleet` measures). A quarter is the drain time of a
/// backlog built at 20% of the authority's capacity; a busier authority refuses the
/// surplus with Retry-After, which every client honours.
pub fn start_spread_after(outage: Duration) -> Duration {
    (outage / 4).min(START_SPREAD)
}

impl Default for Params {
    fn default() -> Self {
        Params {
            backoff: Backoff::default(),
            budget: BUDGET,
            throttle_window: Duration::from_secs(120),
            throttle_k: 2.0,
            breaker: BREAKER,
            start_spread: START_SPREAD,
        }
    }
}

/// What came of a request, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The authority did the work: a 2xx, or an answer about the request itself (a
    /// rejection, a chain gap, a 4xx). Not overload.
    Accepted,
    /// The endpoint is up but said "not now": 429, or 409 `request_in_progress`.
    /// `everywhere`: the limit holds on every endpoint (a 429 is per device).
    Busy {
        retry_after: Option<Duration>,
        everywhere: bool,
    },
    /// Overloaded, failing, unreachable, too slow, or nonsense: a 5xx, a transport error,
    /// a timeout, an unreadable answer. `overload`: the authority said it will not do the
    /// work now (503 `overloaded`, [`crate::is_overload_refusal`]); only that feeds
    /// adaptive throttling, which is about the authority's overload. An endpoint that is
    /// down (any other 5xx) is the breaker's business.
    Failed {
        retry_after: Option<Duration>,
        overload: bool,
    },
    /// The endpoint does not accept this device (401 `unknown_device`,
    /// `bad_request_signature`): not used again by this pacer.
    Refused,
}

/// Why the pacer says wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The recovery plan after an outage: waiting for this client's next share.
    Start,
    /// Exponential backoff with full jitter after a failure.
    Backoff,
    /// The server's Retry-After.
    RetryAfter,
    /// Every usable endpoint's circuit breaker is open.
    Breaker,
    /// The retry budget is under half.
    Budget,
    /// Rejected locally by adaptive throttling.
    Throttle,
}

impl Hold {
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::Start => "spreading the backlog after an outage",
            Hold::Backoff => "backoff",
            Hold::RetryAfter => "Retry-After",
            Hold::Breaker => "circuit breaker open",
            Hold::Budget => "retry budget under half",
            Hold::Throttle => "client-side throttling",
        }
    }
}

/// The pacer's answer to "may I send now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send to this endpoint; `retry` when the last request failed.
    Send { endpoint: usize, retry: bool },
    /// Ask again at `until` (policy clock).
    Wait { until: Duration, hold: Hold },
    /// Every endpoint refused this device: a human must look.
    NoEndpoint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    breaker: Breaker,
    /// Retry-After from this endpoint (policy clock).
    not_before: Duration,
    refused: bool,
}

/// A pacer's lasting state, to carry it from one sync run (or process) to the next. Times
/// are policy-clock milliseconds. The backoff timer is not kept: "Sync now" ignores it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacerState {
    pub at_ms: u64,
    pub budget_tokens: f64,
    pub retrying: bool,
    /// Live seconds of the throttling window: `(second, requests, accepts)`.
    pub throttle: Vec<(u64, u32, u32)>,
    /// Per endpoint, in the pacer's order; None for one that has nothing to keep.
    pub endpoints: Vec<Option<EndpointState>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    pub breaker: BreakerState,
    pub not_before_ms: u64,
}

/// Saved times further ahead than this are a clock that was set back, not a server's
/// wish: they are cut to this.
const MAX_SAVED_WAIT: Duration = Duration::from_secs(3600);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// See the module documentation. Time is a `Duration` since any fixed origin (the real
/// client uses the Unix epoch so the state survives the process; the simulator its own
/// virtual clock); randomness comes from the caller's `Rng`.
#[derive(Debug, Clone)]
pub struct Pacer {
    params: Params,
    budget: RetryBudget,
    throttle: Throttle,
    endpoints: Vec<Endpoint>,
    /// Consecutive failed attempts: the backoff exponent.
    failures: u32,
    /// The last request failed: the next one is a retry.
    retrying: bool,
    /// No request before this (backoff or start delay).
    ready_at: Duration,
    ready_hold: Hold,
    /// The endpoint that just failed: the retry goes elsewhere if it can (failover).
    avoid: Option<usize>,
    /// A person asked for this run ("Sync now"): not throttled locally.
    manual: bool,
}

impl Pacer {
    /// A fresh pacer for `endpoints` endpoints (primary first) at `now`.
    pub fn new(params: Params, endpoints: usize, now: Duration) -> Pacer {
        Pacer {
            params,
            budget: RetryBudget::new(params.budget, now),
            throttle: Throttle::new(params.throttle_window, params.throttle_k),
            endpoints: (0..endpoints)
                .map(|_| Endpoint {
                    breaker: Breaker::new(params.breaker),
                    not_before: Duration::ZERO,
                    refused: false,
                })
                .collect(),
            failures: 0,
            retrying: false,
            ready_at: now,
            ready_hold: Hold::Backoff,
            avoid: None,
            manual: false,
        }
    }

    /// A pacer that goes on from a saved state. Endpoints beyond the saved ones start fresh.
    pub fn restore(params: Params, endpoints: usize, saved: &PacerState, now: Duration) -> Pacer {
        let mut pacer = Pacer::new(params, endpoints, now);
        let latest = now.saturating_add(MAX_SAVED_WAIT);
        let at = Duration::from_millis(saved.at_ms).min(now);
        pacer.budget = RetryBudget::restore(params.budget, saved.budget_tokens, at);
        pacer.throttle.restore(&saved.throttle, now);
        pacer.retrying = saved.retrying;
        for (endpoint, state) in pacer.endpoints.iter_mut().zip(&saved.endpoints) {
            let Some(state) = state else { continue };
            endpoint.not_before = Duration::from_millis(state.not_before_ms).min(latest);
            let breaker = match state.breaker {
                BreakerState::Open { until_ms, probes } => BreakerState::Open {
                    until_ms: until_ms.min(millis(now.saturating_add(params.breaker.cap))),
                    probes,
                },
                other => other,
            };
            endpoint.breaker = Breaker::restore(params.breaker, breaker);
        }
        pacer
    }

    /// What to keep for the next run.
    pub fn save(&mut self, now: Duration) -> PacerState {
        PacerState {
            at_ms: millis(now),
            budget_tokens: self.budget.tokens(now),
            retrying: self.retrying,
            throttle: self.throttle.seconds(now),
            endpoints: self
                .endpoints
                .iter()
                .map(|e| {
                    let fresh = e.breaker.state() == BreakerState::Closed { failures: 0 }
                        && e.not_before <= now;
                    (!fresh).then(|| EndpointState {
                        breaker: e.breaker.state(),
                        not_before_ms: millis(e.not_before),
                    })
                })
                .collect(),
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// "Sync now": attempt at once. Forgets the backoff timer, lets open breakers probe
    /// now and does not throttle locally (a person is waiting, and SPEC 6 keeps only
    /// Retry-After and the budget for "Sync now"); the throttling window still counts.
    pub fn sync_now(&mut self, now: Duration) {
        self.manual = true;
        self.ready_at = now;
        self.failures = 0;
        let all_open = self
            .endpoints
            .iter()
            .filter(|e| !e.refused)
            .all(|e| !e.breaker.is_closed());
        // With a closed breaker somewhere there is something to attempt at once; only
        // when every one is open is waiting out a cool-down a delay the person would see.
        if all_open {
            for e in &mut self.endpoints {
                e.breaker.probe_now();
            }
        }
    }

    fn hold_until(&mut self, until: Duration, hold: Hold) {
        if until > self.ready_at {
            self.ready_at = until;
            self.ready_hold = hold;
        }
    }

    /// Whether endpoint `i` may take a request at `now`.
    fn available(&self, i: usize, now: Duration) -> bool {
        let e = &self.endpoints[i];
        !e.refused && e.not_before <= now && e.breaker.admits(now)
    }

    /// When the first usable endpoint will take requests, and why it does not now.
    fn soonest(&self, now: Duration) -> Option<(Duration, Hold)> {
        self.endpoints
            .iter()
            .filter(|e| !e.refused)
            .map(|e| {
                let breaker = e.breaker.ready_at(now);
                if e.not_before >= breaker {
                    (e.not_before, Hold::RetryAfter)
                } else {
                    (breaker, Hold::Breaker)
                }
            })
            .min_by_key(|(t, _)| *t)
    }

    /// May a request go now, and where? A `Send` is a commitment: it is counted (budget,
    /// throttling window, half-open probe), so the caller must send it and then
    /// [`Pacer::record`] what came of it.
    pub fn next<R: Rng + ?Sized>(&mut self, now: Duration, rng: &mut R) -> Next {
        if self.endpoints.iter().all(|e| e.refused) {
            return Next::NoEndpoint;
        }
        // Every constraint at once, so the caller waits once for the latest of them: the
        // backoff timer, then an endpoint that takes requests (Retry-After, breakers),
        // then the retry budget.
        let mut at = now.max(self.ready_at);
        let mut hold = self.ready_hold;
        // Primary first; the endpoint that just failed only when no other one can take it.
        let order = (0..self.endpoints.len())
            .filter(|&i| Some(i) != self.avoid)
            .chain(self.avoid);
        let mut chosen = None;
        for i in order {
            if self.available(i, at) {
                chosen = Some(i);
                break;
            }
        }
        if chosen.is_none() {
            match self.soonest(at) {
                Some((until, why)) => {
                    at = until;
                    hold = why;
                }
                None => return Next::NoEndpoint,
            }
        }
        if self.retrying {
            let wait = self.budget.wait(now).unwrap_or(MAX_SAVED_WAIT);
            let ready = now.saturating_add(wait);
            if ready > at {
                at = ready;
                hold = Hold::Budget;
            }
        }
        let Some(endpoint) = chosen.filter(|_| at <= now) else {
            return Next::Wait { until: at, hold };
        };
        let p = self.throttle.reject_probability(now);
        if !self.manual && p > 0.0 && rng.gen::<f64>() < p {
            // Counted as a request (SRE): a client that is never answered throttles
            // itself harder the longer it tries. And counted as a failed attempt, so the
            // next try backs off further: retried at a sub-second cadence, local
            // rejections would fill the window and lock the client out for minutes after
            // the overload ended (measured in crates/fleet: a 7x longer drain).
            self.throttle.record_request(now);
            let delay = self.params.backoff.delay(self.failures, None, rng);
            self.failures = self.failures.saturating_add(1);
            let until = now.saturating_add(delay);
            self.hold_until(until, Hold::Throttle);
            return Next::Wait {
                until,
                hold: Hold::Throttle,
            };
        }
        self.throttle.record_request(now);
        if self.retrying {
            self.budget.spend(now);
        }
        self.endpoints[endpoint].breaker.on_send(now);
        Next::Send {
            endpoint,
            retry: self.retrying,
        }
    }

    /// What came of the request [`Pacer::next`] allowed to `endpoint`, at `now`.
    pub fn record<R: Rng + ?Sized>(
        &mut self,
        now: Duration,
        endpoint: usize,
        outcome: Outcome,
        rng: &mut R,
    ) {
        let Some(e) = self.endpoints.get_mut(endpoint) else {
            return;
        };
        match outcome {
            Outcome::Accepted => {
                e.breaker.on_success();
                self.throttle.record_accept(now);
                self.budget.earn(now);
                self.failures = 0;
                self.retrying = false;
                self.avoid = None;
                self.ready_at = now;
            }
            // A refusal for overload (429 is a device's overload) as far as throttling
            // goes: no accept.
            Outcome::Busy {
                retry_after,
                everywhere,
            } => {
                // It answered: the endpoint is up, only this device must wait.
                e.breaker.on_success();
                if let Some(ra) = retry_after {
                    let until = now.saturating_add(ra);
                    if everywhere {
                        for e in &mut self.endpoints {
                            e.not_before = e.not_before.max(until);
                        }
                    } else {
                        e.not_before = e.not_before.max(until);
                    }
                }
                self.failed(now, None, rng);
            }
            Outcome::Failed {
                retry_after,
                overload,
            } => {
                e.breaker.on_failure(now, rng);
                if !overload {
                    // Not a refusal for overload: neutral for throttling.
                    self.throttle.record_accept(now);
                }
                if let Some(ra) = retry_after {
                    e.not_before = e.not_before.max(now.saturating_add(ra));
                }
                self.failed(now, Some(endpoint), rng);
            }
            Outcome::Refused => {
                e.refused = true;
                // A refusal of the device, not overload: neutral for throttling.
                self.throttle.record_accept(now);
                // Not the authority's overload: the same request goes elsewhere at once.
                self.avoid = Some(endpoint);
            }
        }
    }

    fn failed<R: Rng + ?Sized>(&mut self, now: Duration, endpoint: Option<usize>, rng: &mut R) {
        let delay = self.params.backoff.delay(self.failures, None, rng);
        self.failures = self.failures.saturating_add(1);
        self.retrying = true;
        self.avoid = endpoint;
        self.ready_at = now.saturating_add(delay);
        self.ready_hold = Hold::Backoff;
    }

    /// When the backoff timer (or start delay) lets the next request go.
    pub fn ready_at(&self) -> Duration {
        self.ready_at
    }

    /// Consecutive failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether endpoint `i`'s breaker is closed (false for an unknown index).
    pub fn closed(&self, i: usize) -> bool {
        self.endpoints.get(i).is_some_and(|e| e.breaker.is_closed())
    }

    pub fn breaker(&self, i: usize) -> Option<BreakerState> {
        self.endpoints.get(i).map(|e| e.breaker.state())
    }

    /// The throttling window's reject probability at `now` (for reports).
    pub fn reject_probability(&self, now: Duration) -> f64 {
        self.throttle.reject_probability(now)
    }

    /// Retry budget tokens at `now` (for reports).
    pub fn budget_tokens(&mut self, now: Duration) -> f64 {
        self.budget.tokens(now)
    }
}
