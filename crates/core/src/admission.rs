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

/// The authority's admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Invoices per second the authority can take (taxd's `--admission-capacity`).
    pub capacity: u32,
    /// Percent of the capacity kept for live traffic (devices with little or nothing
    /// pending, which send without asking).
    pub reserve_pct: u32,
    /// Grants are given only for seconds up to this far ahead.
    pub horizon_s: i64,
    /// A waiting device asks again this long before its expected turn.
    pub lead_s: i64,
    /// A grant may still be used this long after its second ends (network delay).
    pub grace_s: i64,
    /// The largest share, in invoices (a batch request holds at most 500: SPEC 7).
    pub max_share: u32,
    /// A device with at most this many pending invoices is live traffic: it sends without
    /// asking, within the reserve.
    pub live_max: u32,
}

impl Params {
    pub fn new(capacity: u32) -> Params {
        Params {
            capacity: capacity.max(1),
            reserve_pct: 10,
            horizon_s: 20,
            lead_s: 5,
            grace_s: 2,
            max_share: 500,
            live_max: 5,
        }
    }

    /// Invoices per second admitted from the backlog: the capacity less the reserve, at
    /// least one.
    pub fn budget(&self) -> u32 {
        let mut reserve = u64::from(self.capacity) * u64::from(self.reserve_pct.min(100)) / 100;
        if self.capacity >= 2 && self.reserve_pct > 0 {
            // At least one invoice a second for live traffic.
            reserve = reserve.max(1);
        }
        (u64::from(self.capacity) - reserve).max(1) as u32
    }

    /// Invoices per second for live traffic: the reserve, at least one.
    pub fn live_rate(&self) -> u32 {
        self.capacity.saturating_sub(self.budget()).max(1)
    }

    /// The share a device with `pending` invoices is admitted for at once: all of it, at
    /// most one second of the budget and [`Params::max_share`].
    pub fn share(&self, pending: u64) -> u32 {
        pending
            .min(u64::from(self.budget()))
            .min(u64::from(self.max_share))
            .max(1) as u32
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

/// The decision for a device asking at `now_ms` for a share of `share` invoices, with
/// `ahead` invoices of other devices before it in the order (not granted yet), when
/// `planned[k]` invoices are already granted in second `now_s + k` (missing: none).
///
/// The invoices ahead are placed first, second by second, in the room the budget leaves
/// (in the current second only the part of it still to come); the share goes in the
/// first second after them with room for all of it. Within the horizon that is a grant;
/// beyond it, the expected turn at the budget's pace.
pub fn decide(params: &Params, now_ms: i64, share: u32, ahead: u64, planned: &[u32]) -> Decision {
    let budget = u64::from(params.budget());
    let share64 = u64::from(share.min(params.budget()).max(1));
    let now_s = now_ms.div_euclid(1000);
    let into = now_ms.rem_euclid(1000) as u64;
    let mut left = ahead;
    for k in 0..=params.horizon_s {
        let second = now_s + k;
        let used = u64::from(planned.get(k as usize).copied().unwrap_or(0));
        // In the current second only what is still to come of its budget.
        let cap = if k == 0 {
            budget * (1000 - into) / 1000
        } else {
            budget
        };
        let before = used.saturating_add(if k == 0 { budget - cap } else { 0 });
        let mut free = budget.saturating_sub(before);
        let take = left.min(free);
        left -= take;
        free -= take;
        if left == 0 && free >= share64 {
            let at = budget - free;
            let start = second * 1000 + (at * 1000 / budget) as i64;
            return Decision::Admitted {
                second,
                not_before_ms: start.max(now_ms),
                not_after_ms: (second + 1 + params.grace_s) * 1000,
                invoices: share64 as u32,
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
/// [`Params::live_max`] pending, `invoices` of them, when `live[k]` invoices of the reserve
/// are already granted in second `now_s + k`. Live traffic has its own lane, the reserve,
/// first come first served, so it is never queued behind the backlog: a grant in the
/// first second whose reserve has room (at most the reserve per grant), else the turn
/// after the horizon.
pub fn decide_live(params: &Params, now_ms: i64, invoices: u32, live: &[u32]) -> Decision {
    let room = params.live_rate();
    let n = invoices.clamp(1, room);
    let now_s = now_ms.div_euclid(1000);
    for k in 0..=params.horizon_s {
        let used = live.get(k as usize).copied().unwrap_or(0);
        if used + n <= room {
            let second = now_s + k;
            let start = second * 1000 + i64::from(used) * 1000 / i64::from(room);
            return Decision::Admitted {
                second,
                not_before_ms: start.max(now_ms),
                not_after_ms: (second + 1 + params.grace_s) * 1000,
                invoices: n,
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

    /// Grants not used by their end are void: their invoices go back to their devices'
    /// demand, at their places.
    pub fn reclaim(&mut self, now_ms: i64) {
        let (void, kept): (Vec<Grant>, Vec<Grant>) = std::mem::take(&mut self.grants)
            .into_iter()
            .partition(|g| g.not_after_ms <= now_ms);
        self.grants = kept;
        for g in void {
            if let Some(place) = self.places.get(&g.device) {
                *self.demand.entry(place.clone()).or_insert(0) += u64::from(g.invoices);
            }
        }
        let now_s = now_ms.div_euclid(1000);
        self.planned = self.planned.split_off(&(now_s - 1));
        self.live = self.live.split_off(&(now_s - 1));
    }

    /// Invoices of the live reserve granted in `second`.
    pub fn live(&self, second: i64) -> u32 {
        self.live.get(&second).copied().unwrap_or(0)
    }

    /// Device `device` asks at `now_ms` with `pending` invoices and its window closing at
    /// `deadline` (unix seconds).
    pub fn ask(
        &mut self,
        params: &Params,
        device: &str,
        pending: u64,
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
            self.places.remove(device);
            return Decision::Open;
        }
        if pending <= u64::from(params.live_max) {
            // Live traffic: the reserve's lane, not the backlog's order.
            if let Some(place) = self.places.remove(device) {
                self.demand.remove(&place);
            }
            let now_s = now_ms.div_euclid(1000);
            let live: Vec<u32> = (0..=params.horizon_s)
                .map(|k| self.live(now_s + k))
                .collect();
            let decision = decide_live(params, now_ms, pending as u32, &live);
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
        let now_s = now_ms.div_euclid(1000);
        let planned: Vec<u32> = (0..=params.horizon_s)
            .map(|k| self.planned(now_s + k))
            .collect();
        let decision = decide(params, now_ms, params.share(pending), ahead, &planned);
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
                }
            }
            Decision::Waiting { .. } => {
                self.demand.insert(place, pending);
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
            if let Some(place) = self.places.remove(device) {
                self.demand.remove(&place);
            }
        }
    }

    /// A device that stopped asking (its demand expired): it leaves the order.
    pub fn forget(&mut self, device: &str) {
        if let Some(place) = self.places.remove(device) {
            self.demand.remove(&place);
        }
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
        assert_eq!(p.live_rate(), 100);
        // At least one a second stays for live traffic.
        assert_eq!(params(2).budget(), 1);
        assert_eq!(params(2).live_rate(), 1);
        assert_eq!(p.share(20), 20);
        assert_eq!(p.share(5000), 500);
        assert_eq!(params(250).share(5000), 225);
        assert_eq!(params(1).budget(), 1);
    }

    #[test]
    fn an_empty_authority_admits_at_once_and_a_full_one_names_the_turn() {
        let p = params(100);
        match decide(&p, 10_000, 20, 0, &[]) {
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
        // 90 a second: 9,000 ahead is 100 seconds away, beyond the 20-second horizon.
        match decide(&p, 10_000, 20, 9_000, &[]) {
            Decision::Waiting {
                turn_at_ms,
                ask_again_at_ms,
                ahead,
            } => {
                assert_eq!(ahead, 9_000);
                assert!(turn_at_ms >= 10_000 + 99_000, "{turn_at_ms}");
                assert_eq!(ask_again_at_ms, turn_at_ms - 5_000);
            }
            other => panic!("{other:?}"),
        }
    }
}
