//! The paced recovery (issue 13) on virtual time: the authority decides with
//! [`kaipiao_core::admission::Board`], the very code taxd runs over its database, and
//! each shop follows the client's rule (crates/sync/src/relay/admission.rs): ask, wait for
//! the slot measured from the answer's server time, send the share under its ticket, ask
//! again; waiting, ask again when told. Live shops issue during the recovery and ask too
//! (they are granted from the live lane).
//!
//! A run is a pure function of its [`PacedScenario`] (one seeded RNG).

use kaipiao_core::admission::{Board, Decision, Params};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What is simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct PacedScenario {
    /// (shops, invoices each) per group of shops.
    pub groups: Vec<(u32, u32)>,
    /// Invoices per second the authority takes (`--admission-capacity`).
    pub capacity: u32,
    /// One-way latency, drawn uniformly per message, milliseconds.
    pub latency_ms: (u64, u64),
    pub seed: u64,
    /// Stop here even if not drained, seconds.
    pub horizon_s: u64,
    /// The load limit is judged after this many seconds.
    pub warm_up_s: u64,
    /// Share of the shops that never come back once given a slot.
    pub no_show: f64,
    /// Live issuing during the recovery, as a share of the capacity (invoices/s).
    pub live: f64,
    /// Each shop's offline window closes uniformly within these seconds from t = 0;
    /// None: far beyond the drain.
    pub deadlines: Option<(f64, f64)>,
    /// The shops come back (first ask) uniformly within this many ms (the app probes
    /// with jitter).
    pub return_ms: u64,
}

impl PacedScenario {
    pub fn backlog_invoices(&self) -> u64 {
        self.groups
            .iter()
            .map(|(n, b)| u64::from(*n) * u64::from(*b))
            .sum()
    }

    pub fn shops(&self) -> usize {
        self.groups.iter().map(|(n, _)| *n as usize).sum()
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PacedMeasured {
    /// Per second: invoices offered (arrived) and accepted, live included.
    pub offered: Vec<u64>,
    pub accepted: Vec<u64>,
    /// When the last backlog invoice of a shop that came back was accepted, seconds.
    pub drained_at: Option<f64>,
    /// Backlog invoices of the shops that came back.
    pub returning_invoices: u64,
    /// Invoice bodies refused or discarded (a ticket used late or for too many).
    pub wasted: u64,
    /// Invoices accepted, backlog and live.
    pub accepted_total: u64,
    /// Admission requests.
    pub asks: u64,
    /// Submissions (requests carrying invoices).
    pub submissions: u64,
    /// Seconds from issue to receipt of each live invoice.
    pub live_acks: Vec<f64>,
    /// Per shop: when its last invoice was accepted (None: never) and its deadline.
    pub finished: Vec<(Option<f64>, f64)>,
}

impl PacedMeasured {
    pub fn drain_x_ideal(&self, capacity: u32) -> Option<f64> {
        let ideal = self.returning_invoices as f64 / f64::from(capacity);
        self.drained_at.map(|t| t / ideal)
    }

    /// The highest offered load in a whole second after `warm_up_s` (until drained),
    /// per capacity.
    pub fn peak_after(&self, warm_up_s: u64, capacity: u32) -> f64 {
        let end = self.drained_at.map_or(self.offered.len(), |t| {
            (t.ceil() as usize).min(self.offered.len())
        });
        let peak = self
            .offered
            .iter()
            .take(end)
            .skip(warm_up_s as usize)
            .copied()
            .max()
            .unwrap_or(0);
        peak as f64 / f64::from(capacity)
    }

    pub fn wasted_fraction(&self) -> f64 {
        if self.accepted_total == 0 {
            return 0.0;
        }
        self.wasted as f64 / self.accepted_total as f64
    }

    pub fn live_ack_p99(&self) -> Option<f64> {
        percentile(&self.live_acks, 0.99)
    }
}

/// Nearest-rank percentile.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// Shops that ran out of window although an earliest-deadline-first schedule of the whole
/// backlog at `capacity` would have finished them in time.
pub fn out_of_window(finished: &[(Option<f64>, f64)], backlogs: &[u32], capacity: f64) -> usize {
    let mut order: Vec<usize> = (0..finished.len()).collect();
    order.sort_by(|a, b| finished[*a].1.total_cmp(&finished[*b].1));
    let mut done = 0.0;
    let mut could = vec![false; finished.len()];
    for i in order {
        done += f64::from(backlogs[i]) / capacity;
        could[i] = done <= finished[i].1;
    }
    finished
        .iter()
        .enumerate()
        .filter(|(i, (at, deadline))| could[*i] && at.is_none_or(|t| t > *deadline))
        .count()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The shop's admission request reaches the authority.
    Ask,
    /// The authority's answer reaches the shop; `arrived` is the authority's time.
    Answer { arrived: u64 },
    /// Its submission of `invoices` under a grant ending at `not_after` (ms) arrives.
    Submit { invoices: u32, not_after: u64 },
    /// The receipts reach the shop.
    Receipts { invoices: u32, ok: bool },
    /// A live shop issues an invoice.
    Issue,
}

struct Shop {
    left: u32,
    deadline: f64,
    no_show: bool,
    live: bool,
    /// When its oldest pending invoice was issued (ms; before the run for a backlog).
    issued_at: u64,
    /// The last decision answered, read at `Answer`.
    decision: Option<Decision>,
}

/// A window that never closes during a run, seconds.
const FAR: f64 = 1e9;

/// When each of `shops` shops' offline window closes, uniformly within `window` seconds
/// (never, without one): a draw of its own from `seed`, so that every policy of a sweep
/// meets the same windows.
pub fn window_deadlines(seed: u64, shops: usize, window: Option<(f64, f64)>) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x13);
    (0..shops)
        .map(|_| match window {
            Some((lo, hi)) => rng.gen_range(lo..=hi),
            None => FAR,
        })
        .collect()
}

/// Runs one paced scenario.
pub fn simulate_paced(s: &PacedScenario) -> PacedMeasured {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let params = Params::new(s.capacity);
    let mut board = Board::new();
    let mut shops: Vec<Shop> = Vec::new();
    let mut deadlines = window_deadlines(s.seed, s.shops(), s.deadlines).into_iter();
    for (n, backlog) in &s.groups {
        for _ in 0..*n {
            shops.push(Shop {
                left: *backlog,
                deadline: deadlines.next().unwrap_or(FAR),
                no_show: rng.gen_bool(s.no_show.clamp(0.0, 1.0)),
                live: false,
                issued_at: 0,
                decision: None,
            });
        }
    }
    let backlog_shops = shops.len();
    let mut queue: BinaryHeap<Reverse<(u64, u64, usize, Event)>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut push = |q: &mut BinaryHeap<_>, at: u64, shop: usize, e: Event| {
        order += 1;
        q.push(Reverse((at, order, shop, e)));
    };
    let (lo, hi) = (
        s.latency_ms.0.min(s.latency_ms.1),
        s.latency_ms.0.max(s.latency_ms.1),
    );
    let lat = |rng: &mut StdRng| rng.gen_range(lo..=hi);
    // Times are ms; the authority's clock starts at an epoch far from zero so that
    // seconds are positive and whole.
    const EPOCH: i64 = 1_000_000_000;
    for i in 0..backlog_shops {
        let at = rng.gen_range(0..=s.return_ms) + lat(&mut rng);
        push(&mut queue, at, i, Event::Ask);
    }
    // Live issuing: a Poisson stream of new invoices, each from a shop with nothing else
    // pending, over the whole horizon.
    let live_rate = s.live * f64::from(s.capacity);
    if live_rate > 0.0 {
        let mut t = 0.0f64;
        loop {
            t += -(1.0 - rng.gen::<f64>()).ln() / live_rate;
            if t > s.horizon_s as f64 {
                break;
            }
            shops.push(Shop {
                left: 1,
                deadline: FAR,
                no_show: false,
                live: true,
                issued_at: (t * 1000.0) as u64,
                decision: None,
            });
            let i = shops.len() - 1;
            push(&mut queue, (t * 1000.0) as u64, i, Event::Issue);
        }
    }
    let returning: u64 = shops
        .iter()
        .filter(|sh| !sh.live && !sh.no_show)
        .map(|sh| u64::from(sh.left))
        .sum();
    let mut m = PacedMeasured {
        returning_invoices: returning,
        ..PacedMeasured::default()
    };
    let mut remaining = returning;
    let horizon_ms = s.horizon_s * 1000;
    let mut finished: Vec<Option<f64>> = vec![None; shops.len()];
    let second_of = |at: u64| (at / 1000) as usize;
    let bump = |v: &mut Vec<u64>, at: u64, n: u64| {
        let k = second_of(at);
        if v.len() <= k {
            v.resize(k + 1, 0);
        }
        v[k] += n;
    };
    while let Some(Reverse((at, _, i, event))) = queue.pop() {
        let after_drain = m.drained_at.is_some_and(|t| at as f64 / 1000.0 > t + 30.0);
        if at > horizon_ms || (remaining == 0 && (live_rate == 0.0 || after_drain)) {
            break;
        }
        let now = EPOCH + at as i64;
        match event {
            Event::Issue => {
                let l = lat(&mut rng);
                push(&mut queue, at + l, i, Event::Ask);
            }
            Event::Ask => {
                m.asks += 1;
                let shop = &mut shops[i];
                // A backlog's oldest invoice dates from the outage, an hour before.
                let oldest = if shop.live {
                    (EPOCH + shop.issued_at as i64) / 1000
                } else {
                    EPOCH / 1000 - 3600
                };
                let decision = board.ask(
                    &params,
                    &format!("s{i}"),
                    u64::from(shop.left),
                    oldest,
                    EPOCH / 1000 + shop.deadline as i64,
                    now,
                );
                shop.decision = Some(decision);
                let l = lat(&mut rng);
                push(&mut queue, at + l, i, Event::Answer { arrived: at });
            }
            Event::Answer { arrived } => {
                let shop = &mut shops[i];
                let server = EPOCH + arrived as i64;
                match shop.decision.take() {
                    Some(Decision::Admitted {
                        not_before_ms,
                        not_after_ms,
                        invoices,
                        ..
                    }) => {
                        if shop.no_show {
                            // Given a slot, never seen again.
                            continue;
                        }
                        let wait = (not_before_ms - server).max(0) as u64;
                        let l = lat(&mut rng);
                        push(
                            &mut queue,
                            at + wait + l,
                            i,
                            Event::Submit {
                                invoices,
                                not_after: (not_after_ms - EPOCH).max(0) as u64,
                            },
                        );
                    }
                    Some(Decision::Waiting {
                        ask_again_at_ms, ..
                    }) => {
                        let wait = (ask_again_at_ms - server).max(0) as u64;
                        let l = lat(&mut rng);
                        push(&mut queue, at + wait + l, i, Event::Ask);
                    }
                    Some(Decision::Open) | None => {}
                }
            }
            Event::Submit {
                invoices,
                not_after,
            } => {
                m.submissions += 1;
                bump(&mut m.offered, at, u64::from(invoices));
                let ok = at < not_after;
                if ok {
                    bump(&mut m.accepted, at, u64::from(invoices));
                    m.accepted_total += u64::from(invoices);
                    let shop = &shops[i];
                    board.used(
                        &format!("s{i}"),
                        u64::from(shop.left.saturating_sub(invoices)),
                    );
                } else {
                    m.wasted += u64::from(invoices);
                }
                let l = lat(&mut rng);
                push(&mut queue, at + l, i, Event::Receipts { invoices, ok });
            }
            Event::Receipts { invoices, ok } => {
                let shop = &mut shops[i];
                if ok {
                    shop.left = shop.left.saturating_sub(invoices);
                    if shop.live {
                        m.live_acks
                            .push((at.saturating_sub(shop.issued_at)) as f64 / 1000.0);
                    } else {
                        remaining = remaining.saturating_sub(u64::from(invoices));
                        if remaining == 0 {
                            m.drained_at = Some(at as f64 / 1000.0);
                        }
                    }
                    if shop.left == 0 {
                        finished[i] = Some(at as f64 / 1000.0);
                        continue;
                    }
                }
                let l = lat(&mut rng);
                push(&mut queue, at + l, i, Event::Ask);
            }
        }
    }
    m.finished = shops
        .iter()
        .zip(&finished)
        .take(backlog_shops)
        .filter(|(sh, _)| !sh.no_show)
        .map(|(sh, f)| (*f, sh.deadline))
        .collect();
    m
}
