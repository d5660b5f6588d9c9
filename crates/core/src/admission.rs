//! Admission: how a recovering authority paces the backlog of a whole fleet (issue 13,
//! docs/PROTOCOL.md section 9.1). Pure: no clock, no storage. taxd keeps the same state
//! in its database, and the fleet simulator in a [`Board`]; both decide with
//! [`decide`], so what the simulation measures is what the authority does.
//!
//! The authority admits up to a budget of invoices per second: its admission capacity
//! less a reserve for live traffic ([`Params::budget`]). A device with a backlog asks for
//! admission and states its pending count and when its offline window closes; the
//! backlog is ordered by that deadline, then by arrival (earliest deadline first). A
//! device is admitted for one *share* in one second once everything ahead of it fits in
//! the seconds before: a grant names that second, and the moment within it to send
//! (spread across the second in proportion to what is planned before it), so the
//! planned load of every second stays within the budget. Grants are only given for the
//! next [`Params::horizon_s`] seconds; a device further back is told when its turn is
//! expected and when to ask again (a little before it), so asking costs a few requests
//! per device, not one per second. A grant that is not used by its end is void, and the
//! share goes back to the device's demand at its place in the order.

use std::collections::BTreeMap;

/// Send times are spread over the first this many ms of their second: a share sent at the
/// end of the spread still arrives within its second after a journey of up to 100 ms.
pub const SPREAD_MS: u64 = 900;

/// Live traffic is measured over this many whole seconds ([`Board::recent_live`]).
pub const RECENT_S: i64 = 10;

/// A waiting device's demand is forgotten this long after it was told to ask again (or
/// after its grant's end) without asking: it went away.
pub const DEMAND_EXPIRY_MS: i64 = 30_000;

/// The authority's admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Invoices per second the authority can take (taxd's `--admission-capacity`).
    pub capacity: u32,
    /// Percent of the capacity kept for live traffic at least (devices with little
    /// pending); more when more live traffic was seen ([`Params::reserve`]).
    pub reserve_pct: u32,
    /// Grants are given only for seconds up to this far ahead.
    pub horizon_s: i64,
    /// A waiting device asks again this long before its expected turn.
    pub lead_s: i64,
    /// A grant may still be used this long after its second ends (network delay).
    pub grace_s: i64,
    /// The largest share, in invoices (a batch request holds at most 500: SPEC 7).
    pub max_share: u32,
    /// A device with at most this many pending invoices, the oldest of them issued at most
    /// [`Params::live_age_s`] ago, is live traffic: never queued behind the backlog.
    pub live_max: u32,
    /// See [`Params::live_max`].
    pub live_age_s: i64,
}

impl Params {
    pub fn new(capacity: u32) -> Params {
        Params {
            capacity: capacity.max(1),
            reserve_pct: 10,
            horizon_s: 6,
            lead_s: 3,
            grace_s: 2,
            max_share: 500,
            live_max: 5,
            live_age_s: 120,
        }
    }

    /// Invoices per second kept for live traffic, given the live invoices per second
    /// seen lately: at least [`Params::reserve_pct`] of the capacity (and one invoice a
    /// second), else a quarter more than what was seen, at most half the capacity.
    pub fn reserve(&self, recent_live: f64) -> u32 {
        if self.capacity < 2 || self.reserve_pct == 0 {
            return 0;
        }
        let floor = (u64::from(self.capacity) * u64::from(self.reserve_pct.min(100))).div_ceil(100);
        let seen = (recent_live.max(0.0) * 1.25).ceil() as u64;
        floor.max(seen).max(1).min(u64::from(self.capacity / 2)) as u32
    }

    /// Invoices per second admitted from the backlog: the capacity less the reserve for
    /// the live traffic seen lately, at least one.
    pub fn budget_for(&self, recent_live: f64) -> u32 {
        self.capacity
            .saturating_sub(self.reserve(recent_live))
            .max(1)
    }

    /// The budget with no live traffic seen.
    pub fn budget(&self) -> u32 {
        self.budget_for(0.0)
    }

    /// The share a device with `pending` invoices is admitted for at once: all of it, at
    /// most one second of `budget` and [`Params::max_share`].
    /// Whether a device with `pending` invoices, the oldest issued at `oldest_s` (unix
    /// seconds), asking at `now_ms`, is live traffic.
    pub fn is_live(&self, pending: u64, oldest_s: i64, now_ms: i64) -> bool {
        pending <= u64::from(self.live_max) && now_ms.div_euclid(1000) - oldest_s <= self.live_age_s
    }

    /// The share for a device with `pending` invoices: all of them, at most one second of
    /// `budget` and [`Params::max_share`]; a device new to the order (`first`) gets at
    /// most [`Params::first_share`] (a device that never comes back after its first slot
    /// then wastes little of a second).
    pub fn share(&self, pending: u64, budget: u32, first: bool) -> u32 {
        let mut cap = u64::from(budget).min(u64::from(self.max_share));
        if first {
            cap = cap.min(u64::from(self.first_share(budget)));
        }
        pending.min(cap).max(1) as u32
    }

    /// The most a device new to the order is given at once: 20 invoices, or 2% of the
    /// budget where that is more.
    pub fn first_share(&self, budget: u32) -> u32 {
        (budget / 50).max(20)
    }
}

/// Where a device stands in the backlog: earlier deadlines first, then earlier arrival,
/// then the device id (a total order, so two authorities on one database agree).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// When its offline window closes, unix seconds.
    pub deadline: i64,
    /// When it first asked in this recovery, unix milliseconds.
    pub arrived_ms: i64,
    pub device: String,
}

/// What the authority answers a device that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No ticket needed: nothing to pace (nothing pending).
    Open,
    /// Send `invoices` in second `second`: not before `not_before_ms`, not after
    /// `not_after_ms` (unix milliseconds).
    Admitted {
        second: i64,
        not_before_ms: i64,
        not_after_ms: i64,
        invoices: u32,
    },
    /// Not yet: the turn is expected at `turn_at_ms`; ask again at `ask_again_at_ms`.
    Waiting {
        turn_at_ms: i64,
        ask_again_at_ms: i64,
        /// Invoices ahead of this device in the order.
        ahead: u64,
    },
}

/// What the authority has given out for the seconds from now on: `planned[k]` backlog
/// invoices and `live[k]` live ones in second `now_s + k` (missing: none), and the budget
/// of backlog invoices a second.
#[derive(Debug, Clone, Copy)]
pub struct Seconds<'a> {
    pub planned: &'a [u32],
    pub live: &'a [u32],
    pub budget: u32,
}

impl Seconds<'_> {
    fn at(&self, k: i64) -> (u64, u64) {
        let get = |v: &[u32]| u64::from(v.get(k as usize).copied().unwrap_or(0));
        (get(self.planned), get(self.live))
    }
}

/// The decision for a device asking at `now_ms` for a share of `share` invoices, with
/// `ahead` invoices of other devices before it in the order (not granted yet).
///
/// The invoices ahead are placed first, second by second, in the room left: the budget
/// less what is planned, and never more than the capacity less what is planned and given
/// to live traffic (in the current second only the part of it still to come); the share
/// goes in the first second after them with room for all of it. Within the horizon that
/// is a grant; beyond it, the expected turn at the budget's pace.
pub fn decide(
    params: &Params,
    now_ms: i64,
    share: u32,
    ahead: u64,
    seconds: Seconds<'_>,
) -> Decision {
    let budget = u64::from(seconds.budget.max(1));
    let capacity = u64::from(params.capacity);
    let share64 = u64::from(share).clamp(1, budget);
    let now_s = now_ms.div_euclid(1000);
    let into = now_ms.rem_euclid(1000) as u64;
    let mut left = ahead;
    for k in 0..=params.horizon_s {
        let second = now_s + k;
        let (used, live) = seconds.at(k);
        // In the current second only what is still to come of its budget.
        let cap = if k == 0 {
            budget * (1000 - into) / 1000
        } else {
            budget
        };
        let before = used.saturating_add(budget - cap);
        let mut free = budget
            .saturating_sub(before)
            .min(capacity.saturating_sub(used + live));
        let take = left.min(free);
        left -= take;
        free -= take;
        // The share, or the part of it this second still has room for (the device asks
        // again for the rest, and is still first): the seconds are filled without gaps,
        // as the invoices ahead were placed.
        if left == 0 && free > 0 {
            let at = budget.saturating_sub(free);
            let start = second * 1000 + (at * SPREAD_MS / budget) as i64;
            return Decision::Admitted {
                second,
                not_before_ms: start.max(now_ms),
                not_after_ms: (second + 1 + params.grace_s) * 1000,
                invoices: share64.min(free) as u32,
            };
        }
    }
    // Beyond the horizon: the rest of those ahead at the budget's pace, then this one.
    let after = params.horizon_s + 1;
    let seconds = (left as f64 / budget as f64).ceil() as i64;
    let turn_at_ms = (now_s + after + seconds) * 1000;
    Decision::Waiting {
        turn_at_ms,
        ask_again_at_ms: (turn_at_ms - params.lead_s * 1000).max(now_ms + 1000),
        ahead,
    }
}

/// The decision for live traffic asking at `now_ms`: a device with at most
/// [`Params::live_max`] pending, `invoices` of them. Live traffic is never queued behind
/// the backlog: it may take whatever of a second the backlog has not been given (at least
/// the reserve), first come first served, so it is granted in the first second with room
/// (at most the reserve per grant), else told the turn after the horizon.
pub fn decide_live(params: &Params, now_ms: i64, invoices: u32, seconds: Seconds<'_>) -> Decision {
    let capacity = u64::from(params.capacity);
    let per_grant = u64::from(params.capacity.saturating_sub(seconds.budget).max(1));
    let n = u64::from(invoices).clamp(1, per_grant);
    let now_s = now_ms.div_euclid(1000);
    for k in 0..=params.horizon_s {
        let (planned, live) = seconds.at(k);
        if planned + live + n <= capacity {
            let second = now_s + k;
            let start = second * 1000 + ((planned + live) * SPREAD_MS / capacity.max(1)) as i64;
            return Decision::Admitted {
                second,
                not_before_ms: start.max(now_ms),
                not_after_ms: (second + 1 + params.grace_s) * 1000,
                invoices: n as u32,
            };
        }
    }
    let turn_at_ms = (now_s + params.horizon_s + 1) * 1000;
    Decision::Waiting {
        turn_at_ms,
        ask_again_at_ms: (turn_at_ms - params.lead_s * 1000).max(now_ms + 1000),
        ahead: 0,
    }
}

/// A grant given and not yet used or void.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub device: String,
    pub second: i64,
    pub invoices: u32,
    pub not_after_ms: i64,
}

/// The authority's admission state in memory (the fleet simulator's; taxd keeps the same
/// in its database): each waiting device's place and pending invoices not granted yet,
/// the grants outstanding, and the invoices planned per second.
#[derive(Debug, Default, Clone)]
pub struct Board {
    /// Waiting devices in order, with their pending invoices not granted yet.
    demand: BTreeMap<Place, u64>,
    places: std::collections::HashMap<String, Place>,
    /// When each waiting device's demand is forgotten (it stopped asking).
    expires: std::collections::HashMap<String, i64>,
    grants: Vec<Grant>,
    planned: BTreeMap<i64, u32>,
    /// Invoices of the live reserve granted per second.
    live: BTreeMap<i64, u32>,
}

impl Board {
    pub fn new() -> Board {
        Board::default()
    }

    /// Whether the backlog is being paced: someone waits or holds a grant.
    pub fn recovering(&self) -> bool {
        !self.demand.is_empty() || !self.grants.is_empty()
    }

    /// Invoices planned in `second`.
    pub fn planned(&self, second: i64) -> u32 {
        self.planned.get(&second).copied().unwrap_or(0)
    }

    /// Grants not used by their end are void, and their devices count for nothing ahead
    /// of others until they ask again (at their places). Devices that stopped asking
    /// leave the order.
    pub fn reclaim(&mut self, now_ms: i64) {
        let (void, kept): (Vec<Grant>, Vec<Grant>) = std::mem::take(&mut self.grants)
            .into_iter()
            .partition(|g| g.not_after_ms <= now_ms);
        self.grants = kept;
        for g in void {
            // Its device did not come: nothing of it is counted ahead of others any more
            // (no room is kept for a device that went away); it keeps its place, and
            // states what it has when it asks again.
            if let Some(place) = self.places.get(&g.device) {
                self.demand.remove(place);
            }
        }
        let gone: Vec<String> = self
            .expires
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(d, _)| d.clone())
            .collect();
        for device in gone {
            self.forget(&device);
        }
        let now_s = now_ms.div_euclid(1000);
        self.planned = self.planned.split_off(&(now_s - 1));
        self.live = self.live.split_off(&(now_s - RECENT_S - 1));
    }

    /// Invoices of the reserve granted in `second` (and, in a simulation, live invoices
    /// taken without a ticket).
    pub fn live(&self, second: i64) -> u32 {
        self.live.get(&second).copied().unwrap_or(0)
    }

    /// Counts `n` live invoices taken in `second` without a grant.
    pub fn took_live(&mut self, second: i64, n: u32) {
        *self.live.entry(second).or_insert(0) += n;
    }

    /// Live invoices per second over the last [`RECENT_S`] whole seconds.
    pub fn recent_live(&self, now_ms: i64) -> f64 {
        let now_s = now_ms.div_euclid(1000);
        let sum: u64 = self
            .live
            .range(now_s - RECENT_S..now_s)
            .map(|(_, n)| u64::from(*n))
            .sum();
        sum as f64 / RECENT_S as f64
    }

    /// Device `device` asks at `now_ms` with `pending` invoices, the oldest issued at
    /// `oldest_s` and its window closing at `deadline` (unix seconds).
    #[allow(clippy::too_many_arguments)]
    pub fn ask(
        &mut self,
        params: &Params,
        device: &str,
        pending: u64,
        oldest_s: i64,
        deadline: i64,
        now_ms: i64,
    ) -> Decision {
        self.reclaim(now_ms);
        // Its grant outstanding, if it holds one, is the answer again (an answer lost on
        // the way); a grant for more than it now has is given up and decided anew.
        if let Some(at) = self.grants.iter().position(|g| g.device == device) {
            let g = &self.grants[at];
            if u64::from(g.invoices) <= pending {
                return Decision::Admitted {
                    second: g.second,
                    not_before_ms: (g.second * 1000).max(now_ms),
                    not_after_ms: g.not_after_ms,
                    invoices: g.invoices,
                };
            }
            let g = self.grants.swap_remove(at);
            if let Some(n) = self.planned.get_mut(&g.second) {
                *n = n.saturating_sub(g.invoices);
            }
        }
        let first = !self.places.contains_key(device);
        let place = match self.places.get(device) {
            Some(p) => {
                let old = p.clone();
                self.demand.remove(&old);
                Place { deadline, ..old }
            }
            None => Place {
                deadline,
                arrived_ms: now_ms,
                device: device.to_string(),
            },
        };
        if pending == 0 {
            self.forget(device);
            return Decision::Open;
        }
        let now_s = now_ms.div_euclid(1000);
        let planned: Vec<u32> = (0..=params.horizon_s)
            .map(|k| self.planned(now_s + k))
            .collect();
        let live: Vec<u32> = (0..=params.horizon_s)
            .map(|k| self.live(now_s + k))
            .collect();
        let seconds = Seconds {
            planned: &planned,
            live: &live,
            budget: params.budget_for(self.recent_live(now_ms)),
        };
        if params.is_live(pending, oldest_s, now_ms) {
            // Live traffic: never behind the backlog.
            self.forget(device);
            let decision = decide_live(params, now_ms, pending as u32, seconds);
            if let Decision::Admitted {
                second,
                invoices,
                not_after_ms,
                ..
            } = &decision
            {
                *self.live.entry(*second).or_insert(0) += invoices;
                self.grants.push(Grant {
                    device: device.to_string(),
                    second: *second,
                    invoices: *invoices,
                    not_after_ms: *not_after_ms,
                });
            }
            return decision;
        }
        self.places.insert(device.to_string(), place.clone());
        let ahead: u64 = self.demand.range(..place.clone()).map(|(_, n)| *n).sum();
        let decision = decide(
            params,
            now_ms,
            params.share(pending, seconds.budget, first),
            ahead,
            seconds,
        );
        match &decision {
            Decision::Admitted {
                second,
                invoices,
                not_after_ms,
                ..
            } => {
                *self.planned.entry(*second).or_insert(0) += invoices;
                self.grants.push(Grant {
                    device: device.to_string(),
                    second: *second,
                    invoices: *invoices,
                    not_after_ms: *not_after_ms,
                });
                let rest = pending.saturating_sub(u64::from(*invoices));
                if rest > 0 {
                    self.demand.insert(place, rest);
                    self.expires
                        .insert(device.to_string(), not_after_ms + DEMAND_EXPIRY_MS);
                } else {
                    self.forget(device);
                }
            }
            Decision::Waiting {
                ask_again_at_ms, ..
            } => {
                self.demand.insert(place, pending);
                self.expires
                    .insert(device.to_string(), ask_again_at_ms + DEMAND_EXPIRY_MS);
            }
            Decision::Open => {}
        }
        decision
    }

    /// Device `device` used its grant (sent its share): the grant is done. A device that
    /// has nothing left leaves the order.
    pub fn used(&mut self, device: &str, left: u64) {
        self.grants.retain(|g| g.device != device);
        if left == 0 {
            self.forget(device);
        }
    }

    /// A device that stopped asking (its demand expired), or has nothing left: it leaves
    /// the order.
    pub fn forget(&mut self, device: &str) {
        if let Some(place) = self.places.remove(device) {
            self.demand.remove(&place);
        }
        self.expires.remove(device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(capacity: u32) -> Params {
        Params::new(capacity)
    }

    #[test]
    fn the_budget_leaves_the_reserve_and_a_share_fits_one_second() {
        let p = params(1000);
        assert_eq!(p.budget(), 900);
        // Live traffic seen lately widens the reserve: a quarter more than seen.
        assert_eq!(p.budget_for(100.0), 875);
        assert_eq!(p.budget_for(10_000.0), 500, "at most half");
        // At least one a second stays for live traffic.
        assert_eq!(params(2).budget(), 1);
        assert_eq!(p.share(20, p.budget(), false), 20);
        assert_eq!(p.share(5000, p.budget(), false), 500);
        assert_eq!(params(250).share(5000, 237, false), 237);
        // A device new to the order: at most 20, or 2% of the budget.
        assert_eq!(params(250).share(5000, 225, true), 20);
        assert_eq!(params(4000).share(5000, 3600, true), 72);
        assert_eq!(params(1).budget(), 1);
    }

    #[test]
    fn an_empty_authority_admits_at_once_and_a_full_one_names_the_turn() {
        let p = params(100);
        let none = Seconds {
            planned: &[],
            live: &[],
            budget: 90,
        };
        // 9,000 ahead at 90 a second: 100 seconds away.
        match decide(&p, 10_000, 20, 0, none) {
            Decision::Admitted {
                second,
                not_before_ms,
                ..
            } => {
                assert_eq!(second, 10);
                assert_eq!(not_before_ms, 10_000);
            }
            other => panic!("{other:?}"),
        }
        // 90 a second: 9,000 ahead is 100 seconds away, beyond the 6-second horizon.
        match decide(&p, 10_000, 20, 9_000, none) {
            Decision::Waiting {
                turn_at_ms,
                ask_again_at_ms,
                ahead,
            } => {
                assert_eq!(ahead, 9_000);
                assert!(turn_at_ms >= 10_000 + 99_000, "{turn_at_ms}");
                assert_eq!(ask_again_at_ms, turn_at_ms - p.lead_s * 1000);
            }
            other => panic!("{other:?}"),
        }
    }
}
