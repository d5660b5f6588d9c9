//! kaipiao-fleet: what a fleet of Kaipiao clients does to a tax authority that comes back
//! from an outage, measured (issue 4, "The fleet, measured").
//!
//! A deterministic discrete-event simulation on virtual time: `clients` shops, each with
//! `backlog` invoices waiting, meet an authority of fixed capacity that recovers at t = 0:
//! a token bucket of invoices per second (the work a request carries: a batch of 20
//! costs 20), answering 503 `overloaded` with a Retry-After derived from the bucket when
//! it cannot take a request. Each Kaipiao client runs the real sending policy: the
//! recovery plan the background loop follows after an outage
//! ([`kaipiao_sync::policy::Recovery`] over the shipped spread: its backlog in even
//! shares, each turn from [`Recovery::after_share`] as the relay and the app take it)
//! and [`kaipiao_sync::policy::Pacer`] with [`Params::default`] for every request, one
//! request in flight, each share in batches of up to `batch` as the relay sends them
//! ([`kaipiao_sync::DEFAULT_BATCH_SIZE`]; `batch` 1 is one request per invoice); the naive
//! client sends the same batches and resends a refused one after a fixed interval, without
//! jitter or Retry-After. (taxd's `--capacity` counts requests, as SPEC 7 says, so there
//! a batch costs one token: the simulation models an authority whose limit is its work.) Everything
//! random (start times, network latency, the policy's jitter) comes from one seeded RNG,
//! so a run is a pure function of its [`Scenario`].
//!
//! It must stay a measurement: the policy is never re-implemented or tuned here, only
//! driven.

pub mod paced;
pub mod plot;
pub mod report;

use kaipiao_sync::policy::{Next, Outcome, Pacer, Params, Recovery, Turn};
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
    /// Invoices per second the authority processes (token bucket rate; the bucket holds
    /// one second of it, as taxd's does).
    pub capacity: f64,
    /// Invoices per request: the client's batch size.
    pub batch: u32,
    /// One-way network latency, drawn uniformly per message, milliseconds.
    pub latency_ms: (u64, u64),
    pub seed: u64,
    /// Stop here even if not drained.
    pub horizon: Duration,
    /// The load limit is judged after this.
    pub warm_up: Duration,
    /// A second mix: the last of the `clients` have this many invoices instead
    /// (count, invoices).
    pub large: Option<(u32, u32)>,
}

impl Scenario {
    /// The issue's fleet: 10,000 shops with 20 invoices each, an authority serving 1,000
    /// requests per second, 10-40 ms each way.
    pub fn issue4() -> Scenario {
        Scenario {
            clients: 10_000,
            backlog: 20,
            capacity: 1000.0,
            batch: kaipiao_sync::DEFAULT_BATCH_SIZE as u32,
            latency_ms: (10, 40),
            seed: 4,
            horizon: Duration::from_secs(3600),
            warm_up: Duration::from_secs(10),
            large: None,
        }
    }

    /// Client `i`'s backlog.
    pub fn backlog_of(&self, i: usize) -> u32 {
        match self.large {
            Some((count, backlog)) if i >= self.clients.saturating_sub(count) as usize => backlog,
            _ => self.backlog,
        }
    }

    pub fn invoices(&self) -> u64 {
        (0..self.clients as usize)
            .map(|i| u64::from(self.backlog_of(i)))
            .sum()
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

/// One second of the run, as the authority saw it: load in invoices (the work the
/// requests carried), refused ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Second {
    /// Invoices in the requests that reached the authority.
    pub offered: u32,
    /// Of those, served (the others' requests got 503).
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
    /// Of those, served.
    pub accepted_requests: u64,
    /// Requests the Kaipiao clients rejected themselves (adaptive throttling): never sent.
    pub local_rejects: u64,
    /// Invoices accepted.
    pub accepted: u64,
    /// When the last invoice was accepted (seconds), None when the horizon came first.
    pub drained_at: Option<f64>,
    /// Per client: when its last invoice was accepted (None: never).
    pub finished: Vec<Option<f64>>,
}

impl Measured {
    /// Retry amplification: requests that reached the authority per request it served
    /// (1.0: nothing was sent twice).
    pub fn amplification(&self) -> f64 {
        if self.accepted_requests == 0 {
            return f64::INFINITY;
        }
        self.requests as f64 / self.accepted_requests as f64
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
        (self.requests - self.accepted_requests) as f64 / self.requests as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The client may act (policy timer, or its answer arrived and it goes on).
    Wake,
    /// Its request, carrying this many invoices, reaches the authority.
    Arrive { invoices: u32 },
    /// The answer reaches the client: accepted, or 503 with Retry-After seconds.
    Answer {
        invoices: u32,
        accepted: bool,
        retry_after: u32,
    },
}

/// The authority: a token bucket of `capacity` invoices per second holding at most one
/// second's worth (as taxd's `--capacity` bucket does), answering 503 with Retry-After =
/// the whole seconds until the request's tokens are there, at least 1 (taxd's `limits.rs`).
struct Authority {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: f64,
}

impl Authority {
    fn new(rate: f64, batch: u32) -> Authority {
        // A request of a full batch must fit in the bucket.
        let burst = rate.max(f64::from(batch.max(1)));
        Authority {
            rate,
            burst,
            tokens: burst,
            updated: 0.0,
        }
    }

    /// Ok, or the Retry-After in seconds, for a request of `cost` invoices.
    fn take(&mut self, now: f64, cost: u32) -> Result<(), u32> {
        let cost = f64::from(cost.max(1));
        self.tokens = (self.tokens + (now - self.updated) * self.rate).min(self.burst);
        self.updated = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            let wait = (cost - self.tokens) / self.rate;
            Err((wait.ceil() as u32).max(1))
        }
    }
}

enum Client {
    Kaipiao(Box<Kaipiao>),
    Naive,
}

/// A Kaipiao client: the policy's pacer and its recovery plan, the size of the share
/// whose turn it waits for, and what is left of the current share.
struct Kaipiao {
    pacer: Pacer,
    plan: Recovery,
    next_share: u64,
    share_left: u32,
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
    let mut left: Vec<u32> = (0..n).map(|i| scenario.backlog_of(i)).collect();
    let mut finished: Vec<Option<f64>> = vec![None; n];
    let batch = scenario.batch.max(1);
    let next_batch = |left: u32| left.min(batch);
    let mut clients: Vec<Client> = Vec::with_capacity(n);
    for i in 0..n {
        match strategy {
            Strategy::Kaipiao(params) => {
                let pacer = Pacer::new(params, 1, Duration::ZERO);
                let plan = Recovery::plan(
                    Duration::ZERO,
                    params.start_spread,
                    u64::from(left[i]),
                    &mut rng,
                );
                let turn = plan.first_turn(u64::from(left[i]));
                clients.push(Client::Kaipiao(Box::new(Kaipiao {
                    pacer,
                    plan,
                    next_share: turn.map_or(0, |t| t.share),
                    share_left: 0,
                })));
                if let Some(turn) = turn {
                    push(&mut queue, micros(turn.at), i as u32, Event::Wake);
                }
            }
            Strategy::Naive { interval } => {
                clients.push(Client::Naive);
                let phase = rng.gen_range(0..micros(interval).max(1));
                let invoices = next_batch(left[i]);
                push(&mut queue, phase, i as u32, Event::Arrive { invoices });
            }
        }
    }
    let (lo, hi) = scenario.latency_ms;
    let (lo, hi) = (lo.min(hi) * 1000, lo.max(hi) * 1000);
    let latency = move |rng: &mut StdRng| rng.gen_range(lo..=hi);
    let mut authority = Authority::new(scenario.capacity, batch);
    let horizon = micros(scenario.horizon);
    let mut seconds: Vec<Second> = Vec::new();
    let (mut requests, mut local_rejects, mut accepted) = (0u64, 0u64, 0u64);
    let mut accepted_requests = 0u64;
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
                let Client::Kaipiao(k) = &mut clients[id] else {
                    continue;
                };
                // A new share at its turn in the recovery plan.
                if k.share_left == 0 {
                    k.share_left = u32::try_from(k.next_share).unwrap_or(u32::MAX);
                }
                // Ask until the policy says send or names a later time: a local
                // rejection is a wait like any other.
                match k.pacer.next(now, &mut rng) {
                    Next::Send { .. } => {
                        let invoices = next_batch(k.share_left.min(left[id]));
                        push(
                            &mut queue,
                            at + latency(&mut rng),
                            client,
                            Event::Arrive { invoices },
                        )
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
            Event::Arrive { invoices } => {
                let second = (at / 1_000_000) as usize;
                if seconds.len() <= second {
                    seconds.resize(second + 1, Second::default());
                }
                seconds[second].offered += invoices;
                requests += 1;
                let answer = match authority.take(at as f64 / MICROS, invoices) {
                    Ok(()) => {
                        seconds[second].accepted += invoices;
                        accepted += u64::from(invoices);
                        accepted_requests += 1;
                        Event::Answer {
                            invoices,
                            accepted: true,
                            retry_after: 0,
                        }
                    }
                    Err(retry_after) => Event::Answer {
                        invoices,
                        accepted: false,
                        retry_after,
                    },
                };
                push(&mut queue, at + latency(&mut rng), client, answer);
            }
            Event::Answer {
                invoices,
                accepted: ok,
                retry_after,
            } => {
                if ok {
                    left[id] -= invoices;
                    if left[id] == 0 {
                        finished[id] = Some(at as f64 / MICROS);
                    }
                    remaining -= u64::from(invoices);
                    if remaining == 0 {
                        drained_at = Some(at as f64 / MICROS);
                    }
                }
                match &mut clients[id] {
                    Client::Kaipiao(k) => {
                        let outcome = if ok {
                            Outcome::Accepted
                        } else {
                            Outcome::Failed {
                                retry_after: Some(Duration::from_secs(u64::from(retry_after))),
                                overload: true,
                            }
                        };
                        k.pacer.record(now, 0, outcome, &mut rng);
                        // Refused: the rest of the share waits for the next turn.
                        k.share_left = if ok {
                            k.share_left.saturating_sub(invoices)
                        } else {
                            0
                        };
                        if k.share_left > 0 {
                            // The rest of this share now (the pacer says when).
                            push(&mut queue, at, client, Event::Wake);
                        } else {
                            let next = k.plan.after_share(now, !ok, u64::from(left[id]));
                            if left[id] > 0 {
                                // The next share at its turn; once the plan is over,
                                // everything left at once.
                                let turn = next.unwrap_or(Turn {
                                    at: now,
                                    share: u64::from(left[id]),
                                });
                                k.next_share = turn.share;
                                push(&mut queue, micros(turn.at).max(at), client, Event::Wake);
                            }
                        }
                    }
                    Client::Naive => {
                        let Strategy::Naive { interval } = strategy else {
                            continue;
                        };
                        if left[id] > 0 {
                            let send = if ok { at } else { at + micros(interval) };
                            let invoices = next_batch(left[id]);
                            push(
                                &mut queue,
                                send + latency(&mut rng),
                                client,
                                Event::Arrive { invoices },
                            );
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
        accepted_requests,
        local_rejects,
        accepted,
        drained_at,
        finished,
    }
}
