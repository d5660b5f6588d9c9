//! kaipiao-fleet: what a fleet of Kaipiao clients does to a tax authority that comes back
//! from an outage, measured (issue 4, "The fleet, measured").
//!
//! A deterministic discrete-event simulation on virtual time: `clients` shops, each with
//! `backlog` invoices waiting, meet an authority of fixed capacity (a token bucket, as
//! `taxd --capacity` is: 503 with a Retry-After derived from the bucket when it is empty)
//! that recovers at t = 0. Each Kaipiao client runs the real sending policy,
//! [`kaipiao_sync::policy::Pacer`] with [`Params::default`], one request per invoice and
//! one request in flight, as the relay does by default; the naive client resends a
//! refused request after a fixed interval, without jitter or Retry-After. Everything
//! random (start times, network latency, the policy's jitter) comes from one seeded RNG,
//! so a run is a pure function of its [`Scenario`].
//!
//! It must stay a measurement: the policy is never re-implemented or tuned here, only
//! driven.

pub mod plot;
pub mod report;

use kaipiao_sync::policy::{Next, Outcome, Pacer, Params};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// What is simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub clients: u32,
    /// Invoices waiting in each client's outbox at t = 0.
    pub backlog: u32,
    /// Requests per second the authority serves (token bucket rate; the bucket holds one
    /// second of it, as taxd's does).
    pub capacity: f64,
    /// One-way network latency, drawn uniformly per message, milliseconds.
    pub latency_ms: (u64, u64),
    pub seed: u64,
    /// Stop here even if not drained.
    pub horizon: Duration,
    /// The load limit is judged after this.
    pub warm_up: Duration,
}

impl Scenario {
    /// The issue's fleet: 10,000 shops with 20 invoices each, an authority serving 1,000
    /// requests per second, 10-40 ms each way.
    pub fn issue4() -> Scenario {
        Scenario {
            clients: 10_000,
            backlog: 20,
            capacity: 1000.0,
            latency_ms: (10, 40),
            seed: 4,
            horizon: Duration::from_secs(3600),
            warm_up: Duration::from_secs(10),
        }
    }

    pub fn invoices(&self) -> u64 {
        u64::from(self.clients) * u64::from(self.backlog)
    }

    /// Seconds the drain takes at exactly the capacity: total / capacity.
    pub fn ideal_drain(&self) -> f64 {
        self.invoices() as f64 / self.capacity
    }
}

/// How the clients behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Kaipiao's policy, as shipped. The start delay after the outage applies.
    Kaipiao(Params),
    /// Resend a refused request `interval` later, no jitter, no Retry-After; the first
    /// send at a random phase of that interval (they were retrying during the outage).
    Naive { interval: Duration },
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Kaipiao(_) => "Kaipiao policy",
            Strategy::Naive { .. } => "naive client",
        }
    }
}

/// One second of the run, as the authority saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Second {
    /// Requests that reached the authority.
    pub offered: u32,
    /// Of those, served (the others got 503).
    pub accepted: u32,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub strategy: &'static str,
    pub scenario: Scenario,
    /// Per second from t = 0.
    pub seconds: Vec<Second>,
    /// Requests that reached the authority.
    pub requests: u64,
    /// Requests the Kaipiao clients rejected themselves (adaptive throttling): never sent.
    pub local_rejects: u64,
    pub accepted: u64,
    /// When the last invoice was accepted (seconds), None when the horizon came first.
    pub drained_at: Option<f64>,
}

impl Measured {
    /// Requests sent per invoice.
    pub fn amplification(&self) -> f64 {
        self.requests as f64 / self.scenario.invoices() as f64
    }

    /// The highest offered load in any whole second after the warm-up, per capacity.
    pub fn peak_after_warm_up(&self) -> f64 {
        let from = self.scenario.warm_up.as_secs() as usize;
        let peak = self
            .seconds
            .iter()
            .skip(from)
            .map(|s| s.offered)
            .max()
            .unwrap_or(0);
        f64::from(peak) / self.scenario.capacity
    }

    /// The highest offered load in the first seconds (the warm-up), per capacity.
    pub fn peak_in_warm_up(&self) -> f64 {
        let to = self.scenario.warm_up.as_secs() as usize;
        let peak = self
            .seconds
            .iter()
            .take(to)
            .map(|s| s.offered)
            .max()
            .unwrap_or(0);
        f64::from(peak) / self.scenario.capacity
    }

    /// Seconds after the warm-up (until drained) with more than `limit` x capacity offered.
    pub fn seconds_over(&self, limit: f64) -> usize {
        let from = self.scenario.warm_up.as_secs() as usize;
        self.seconds
            .iter()
            .skip(from)
            .filter(|s| f64::from(s.offered) > limit * self.scenario.capacity)
            .count()
    }

    /// Drain time over the ideal (None when not drained).
    pub fn drain_ratio(&self) -> Option<f64> {
        self.drained_at.map(|t| t / self.scenario.ideal_drain())
    }

    /// Share of the requests that reached the authority and were refused.
    pub fn refused_share(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        (self.requests - self.accepted) as f64 / self.requests as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The client may act (policy timer, or its answer arrived and it goes on).
    Wake,
    /// Its request reaches the authority.
    Arrive,
    /// The answer reaches the client: accepted, or 503 with Retry-After seconds.
    Answer { accepted: bool, retry_after: u32 },
}

/// The authority: a token bucket of `capacity` per second holding at most one second's
/// worth (taxd's `--capacity`), answering 503 with Retry-After = the whole seconds until a
/// token is there, at least 1 (taxd's `limits.rs`).
struct Authority {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: f64,
}

impl Authority {
    fn new(rate: f64) -> Authority {
        let burst = rate.max(1.0);
        Authority {
            rate,
            burst,
            tokens: burst,
            updated: 0.0,
        }
    }

    /// Ok, or the Retry-After in seconds.
    fn take(&mut self, now: f64) -> Result<(), u32> {
        self.tokens = (self.tokens + (now - self.updated) * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err((wait.ceil() as u32).max(1))
        }
    }
}

enum Client {
    Kaipiao(Box<Pacer>),
    Naive,
}

const MICROS: f64 = 1_000_000.0;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs one scenario with one strategy.
pub fn simulate(scenario: &Scenario, strategy: Strategy) -> Measured {
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let n = scenario.clients as usize;
    let mut queue: BinaryHeap<Reverse<(u64, u64, u32, Event)>> = BinaryHeap::new();
    let mut order: u64 = 0;
    let mut push = |queue: &mut BinaryHeap<_>, at: u64, client: u32, event: Event| {
        order += 1;
        queue.push(Reverse((at, order, client, event)));
    };
    let mut left: Vec<u32> = vec![scenario.backlog; n];
    let mut clients: Vec<Client> = Vec::with_capacity(n);
    for i in 0..n {
        match strategy {
            Strategy::Kaipiao(params) => {
                let mut pacer = Pacer::new(params, 1, Duration::ZERO);
                pacer.delay_start(Duration::ZERO, &mut rng);
                clients.push(Client::Kaipiao(Box::new(pacer)));
                push(&mut queue, 0, i as u32, Event::Wake);
            }
            Strategy::Naive { interval } => {
                clients.push(Client::Naive);
                let phase = rng.gen_range(0..micros(interval).max(1));
                push(&mut queue, phase, i as u32, Event::Arrive);
            }
        }
    }
    let (lo, hi) = scenario.latency_ms;
    let (lo, hi) = (lo.min(hi) * 1000, lo.max(hi) * 1000);
    let latency = move |rng: &mut StdRng| rng.gen_range(lo..=hi);
    let mut authority = Authority::new(scenario.capacity);
    let horizon = micros(scenario.horizon);
    let mut seconds: Vec<Second> = Vec::new();
    let (mut requests, mut local_rejects, mut accepted) = (0u64, 0u64, 0u64);
    let mut remaining = scenario.invoices();
    let mut drained_at = None;
    // The naive client's first "send" is scheduled as its arrival minus nothing: its
    // phase already stands for when its request reaches the authority.
    while let Some(Reverse((at, _, client, event))) = queue.pop() {
        if at > horizon {
            break;
        }
        let now = Duration::from_micros(at);
        let id = client as usize;
        match event {
            Event::Wake => {
                let Client::Kaipiao(pacer) = &mut clients[id] else {
                    continue;
                };
                // Ask until the policy says send or names a later time: a local
                // rejection is a wait like any other.
                match pacer.next(now, &mut rng) {
                    Next::Send { .. } => {
                        push(&mut queue, at + latency(&mut rng), client, Event::Arrive)
                    }
                    Next::Wait { until, hold } => {
                        if hold == kaipiao_sync::policy::Hold::Throttle {
                            local_rejects += 1;
                        }
                        push(&mut queue, micros(until).max(at + 1), client, Event::Wake)
                    }
                    // One endpoint that never refuses the device: cannot happen.
                    Next::NoEndpoint => {}
                }
            }
            Event::Arrive => {
                let second = (at / 1_000_000) as usize;
                if seconds.len() <= second {
                    seconds.resize(second + 1, Second::default());
                }
                seconds[second].offered += 1;
                requests += 1;
                let answer = match authority.take(at as f64 / MICROS) {
                    Ok(()) => {
                        seconds[second].accepted += 1;
                        accepted += 1;
                        Event::Answer {
                            accepted: true,
                            retry_after: 0,
                        }
                    }
                    Err(retry_after) => Event::Answer {
                        accepted: false,
                        retry_after,
                    },
                };
                push(&mut queue, at + latency(&mut rng), client, answer);
            }
            Event::Answer {
                accepted: ok,
                retry_after,
            } => {
                if ok {
                    left[id] -= 1;
                    remaining -= 1;
                    if remaining == 0 {
                        drained_at = Some(at as f64 / MICROS);
                    }
                }
                match &mut clients[id] {
                    Client::Kaipiao(pacer) => {
                        let outcome = if ok {
                            Outcome::Accepted
                        } else {
                            Outcome::Failed {
                                retry_after: Some(Duration::from_secs(u64::from(retry_after))),
                                overload: true,
                            }
                        };
                        pacer.record(now, 0, outcome, &mut rng);
                        if left[id] > 0 {
                            push(&mut queue, at, client, Event::Wake);
                        }
                    }
                    Client::Naive => {
                        let Strategy::Naive { interval } = strategy else {
                            continue;
                        };
                        if left[id] > 0 {
                            let send = if ok { at } else { at + micros(interval) };
                            push(&mut queue, send + latency(&mut rng), client, Event::Arrive);
                        }
                    }
                }
            }
        }
        if remaining == 0 {
            break;
        }
    }
    Measured {
        strategy: strategy.name(),
        scenario: scenario.clone(),
        seconds,
        requests,
        local_rejects,
        accepted,
        drained_at,
    }
}
