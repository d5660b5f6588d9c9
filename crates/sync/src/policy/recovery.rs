//! The recovery plan: how a client's backlog goes out after an outage.
//!
//! A fleet whose shops each send their whole backlog at one random moment of the start
//! spread arrives as a Poisson stream of lumps: with 10,000 shops of 20 invoices over four
//! minutes that is about 42 lumps a second, and the load in any one second is off its
//! mean by ±15% (one standard deviation). Over four minutes some seconds reach 1.16x an
//! authority's capacity even when the mean is 0.83x (docs/fleet.md), and no choice of
//! spread fixes that: a wider one lowers the peaks only by stretching the drain.
//!
//! So the background loop spreads each backlog across the window instead: after a random
//! phase, an even share of what is left every `interval`, the last share before the window
//! ends. The fleet's load is then the sum of many small, evenly spaced shares and its
//! per-second noise shrinks with their number; the authority sees the same invoices in
//! more, smaller requests (at least [`MIN_SHARE`] invoices each, at most one share per
//! [`MIN_INTERVAL`] per client). A shop's last invoice goes out near the end of the
//! window rather than at a random point of it; against a 72-hour offline window that
//! costs nothing, and "Sync now" sends everything at once whenever someone asks.
//!
//! The spread only fits a backlog the authority can absorb in about that time. Where it
//! cannot, a share it refuses for overload stretches the rest of that client's plan
//! ([`Recovery::stretch`]) and one that goes through relaxes it again
//! ([`Recovery::relax`]), so the fleet slows down by about as much as it was refused.
//! Whoever follows a plan (a background sync run, the app's loop, the fleet simulator)
//! takes that step and finds the next turn the same way, with [`Recovery::first_turn`]
//! and [`Recovery::after_share`].
//!
//! Pure like the rest of the policy: time is a `Duration` since the caller's origin.

use super::pacer::START_SPREAD;
use rand::Rng;
use std::time::Duration;

/// A share carries at least this many invoices (fewer only when fewer are left), so a
/// small backlog is not cut into one request per invoice.
pub const MIN_SHARE: u64 = 5;

/// One client's shares are at least this far apart.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// A refused share stretches the rest of a plan to at most this long from then on.
pub const MAX_STRETCH: Duration = Duration::from_secs(START_SPREAD.as_secs() * 4);

/// A turn of a recovery plan: when the next share goes and how many invoices it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// The share's time (the caller's clock).
    pub at: Duration,
    /// Invoices in the share (see [`Recovery::share`]), at least one.
    pub share: u64,
}

/// One client's plan: shares `interval` apart from `first`, the last before `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The turn of share 0 (the plan's first, or the one a stretch started from).
    first: Duration,
    interval: Duration,
    end: Duration,
    /// The interval the plan started with: relaxing never goes below it.
    base: Duration,
}

impl Recovery {
    /// The plan for `backlog` invoices over `spread` (at most [`START_SPREAD`]) from
    /// `now`. A spread of zero (or an empty backlog) is a plan whose only share is
    /// everything, now.
    pub fn plan<R: Rng + ?Sized>(
        now: Duration,
        spread: Duration,
        backlog: u64,
        rng: &mut R,
    ) -> Recovery {
        let spread = spread.min(START_SPREAD);
        if spread.is_zero() || backlog == 0 {
            return Recovery {
                first: now,
                interval: Duration::ZERO,
                end: now,
                base: Duration::ZERO,
            };
        }
        // As many shares as the backlog allows at MIN_SHARE each, no closer than
        // MIN_INTERVAL, at least one.
        let shares = (backlog / MIN_SHARE).max(1);
        let interval = (spread / u32::try_from(shares).unwrap_or(u32::MAX))
            .max(MIN_INTERVAL)
            .min(spread);
        // The first share at a random phase of one interval (SPEC 6's random delay).
        let unit: f64 = rng.gen_range(0.0..1.0);
        let phase = Duration::try_from_secs_f64(interval.as_secs_f64() * unit)
            .unwrap_or(Duration::ZERO)
            .min(interval);
        Recovery {
            first: now.saturating_add(phase),
            interval,
            end: now.saturating_add(spread),
            base: interval,
        }
    }

    /// When the first share goes.
    pub fn first(&self) -> Duration {
        self.first
    }

    /// The end of the window: from then on, everything left goes at once.
    pub fn end(&self) -> Duration {
        self.end
    }

    /// Shares in the whole window.
    fn slots(&self) -> u64 {
        if self.interval.is_zero() {
            return 1;
        }
        let room = self.end.saturating_sub(self.first).as_secs_f64();
        ((room / self.interval.as_secs_f64()).ceil() as u64).max(1)
    }

    /// The index of the share whose turn `now` is in (0 before the first).
    fn slot_at(&self, now: Duration) -> u64 {
        if self.interval.is_zero() {
            return 0;
        }
        let into = now.saturating_sub(self.first).as_secs_f64();
        (into / self.interval.as_secs_f64()).floor() as u64
    }

    /// How many of the `pending` invoices go in the share at `now`: an even part of what
    /// is left over the shares left (this one included), at least [`MIN_SHARE`]; all of
    /// them once the window has ended.
    pub fn share(&self, now: Duration, pending: u64) -> u64 {
        if now >= self.end {
            return pending;
        }
        let left = self.slots().saturating_sub(self.slot_at(now)).max(1);
        pending.div_ceil(left).max(MIN_SHARE).min(pending)
    }

    /// When the next share goes after the one at `now`; None when the window has ended
    /// (what is left then goes at once).
    pub fn next_after(&self, now: Duration) -> Option<Duration> {
        if now >= self.end || self.interval.is_zero() {
            return None;
        }
        if now < self.first {
            return Some(self.first);
        }
        let k = self.slot_at(now) + 1;
        if k >= self.slots() {
            return None;
        }
        let at = self.first.saturating_add(
            self.interval
                .saturating_mul(u32::try_from(k).unwrap_or(u32::MAX)),
        );
        (at < self.end).then_some(at)
    }

    /// The plan's first turn for a backlog of `pending` invoices: [`Recovery::first`] and
    /// the share then. None when nothing is pending.
    pub fn first_turn(&self, pending: u64) -> Option<Turn> {
        (pending > 0).then(|| Turn {
            at: self.first,
            share: self.share(self.first, pending),
        })
    }

    /// The step every follower of a plan takes when a share has ended at `now` (sent, or
    /// cut short by a refusal): the plan slows down where the authority refused part of
    /// the share for overload ([`Recovery::stretch`]) and eases back where it did not
    /// ([`Recovery::relax`]); then the next turn for the `pending` invoices left, its
    /// time and size. None when the plan is over: nothing is left, or the share that
    /// ended was the last of the window, and whatever is pending goes at once, without
    /// a share limit.
    ///
    /// The share is sized for what is pending now: invoices issued while the caller
    /// waits for the turn join the shares after it.
    pub fn after_share(
        &mut self,
        now: Duration,
        refused_for_overload: bool,
        pending: u64,
    ) -> Option<Turn> {
        if refused_for_overload {
            self.stretch(now);
        } else {
            self.relax(now);
        }
        if pending == 0 {
            return None;
        }
        let at = self.next_after(now)?;
        Some(Turn {
            at,
            share: self.share(at, pending),
        })
    }

    /// The authority refused part of the share sent at `now` for overload (429, 503
    /// `overloaded`: [`crate::is_overload_refusal`]): the shares left keep their number
    /// but go twice as far apart (the window at most [`MAX_STRETCH`] from `now`). With [`Recovery::relax`] after a share that went
    /// through, a fleet that met an authority with less capacity than its spread assumed
    /// slows down where it was refused and no further; nothing changes while nothing is
    /// refused.
    pub fn stretch(&mut self, now: Duration) {
        self.respace(now, self.interval.saturating_mul(2));
    }

    /// The share sent at `now` went through: the shares left move a quarter closer
    /// together again, never closer than the plan started with.
    pub fn relax(&mut self, now: Duration) {
        self.respace(now, self.interval.mul_f64(0.75).max(self.base));
    }

    /// The shares left (the one at `now` included) from `now` on, `interval` apart.
    fn respace(&mut self, now: Duration, interval: Duration) {
        if self.interval.is_zero() || now >= self.end || interval == self.interval {
            return;
        }
        let left = self.slots().saturating_sub(self.slot_at(now)).max(1);
        let left = u32::try_from(left).unwrap_or(u32::MAX);
        let interval = interval.min(MAX_STRETCH / left);
        self.first = now;
        self.interval = interval;
        self.end = now.saturating_add(interval.saturating_mul(left));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Sends every share of a plan for `backlog` and returns (time, count) per share.
    fn run(plan: &Recovery, backlog: u64) -> Vec<(Duration, u64)> {
        let mut pending = backlog;
        let mut now = plan.first();
        let mut out = Vec::new();
        loop {
            let n = plan.share(now, pending);
            out.push((now, n));
            pending -= n;
            match plan.next_after(now) {
                Some(t) if pending > 0 => now = t,
                _ => break,
            }
        }
        assert_eq!(pending, 0, "{out:?}");
        out
    }

    #[test]
    fn twenty_invoices_over_four_minutes_go_in_four_shares_of_five() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let plan = Recovery::plan(secs(1000), secs(240), 20, &mut rng);
            assert!(plan.first() >= secs(1000) && plan.first() < secs(1060));
            let shares = run(&plan, 20);
            assert_eq!(
                shares.iter().map(|s| s.1).collect::<Vec<_>>(),
                vec![5, 5, 5, 5]
            );
            for w in shares.windows(2) {
                assert_eq!(w[1].0 - w[0].0, secs(60));
            }
            assert!(shares.last().unwrap().0 < plan.end());
        }
    }

    #[test]
    fn a_large_backlog_goes_every_ten_seconds_and_ends_inside_the_window() {
        let mut rng = StdRng::seed_from_u64(2);
        let plan = Recovery::plan(secs(0), secs(240), 10_000, &mut rng);
        let shares = run(&plan, 10_000);
        assert!(shares.len() == 24 || shares.len() == 23, "{}", shares.len());
        let most = shares.iter().map(|s| s.1).max().unwrap();
        let least = shares.iter().map(|s| s.1).min().unwrap();
        assert!(most - least <= 1, "{shares:?}");
        assert!(shares.iter().all(|s| s.0 < secs(240)));
    }

    #[test]
    fn small_backlogs_short_spreads_and_none_at_all() {
        let mut rng = StdRng::seed_from_u64(3);
        // Fewer than MIN_SHARE: one share.
        let plan = Recovery::plan(secs(0), secs(240), 3, &mut rng);
        assert_eq!(run(&plan, 3).len(), 1);
        // A spread shorter than MIN_INTERVAL: one share within it.
        let plan = Recovery::plan(secs(0), secs(4), 100, &mut rng);
        let shares = run(&plan, 100);
        assert_eq!(shares, vec![(plan.first(), 100)]);
        assert!(plan.first() < secs(4));
        // No spread: everything now.
        let plan = Recovery::plan(secs(7), Duration::ZERO, 100, &mut rng);
        assert_eq!(run(&plan, 100), vec![(secs(7), 100)]);
        // Nothing pending.
        let plan = Recovery::plan(secs(7), secs(60), 0, &mut rng);
        assert_eq!(plan.share(secs(7), 0), 0);
        assert_eq!(plan.next_after(secs(7)), None);
    }

    #[test]
    fn late_turns_and_new_invoices_are_absorbed_and_the_end_takes_the_rest() {
        let mut rng = StdRng::seed_from_u64(4);
        let plan = Recovery::plan(secs(100), secs(240), 20, &mut rng);
        // Asked early: the first share's time.
        assert_eq!(plan.next_after(secs(99)), Some(plan.first()));
        // A share sent late (a Retry-After held it) still leaves the later ones on time.
        let late = plan.first() + secs(70);
        assert_eq!(plan.share(late, 15), 5);
        assert_eq!(plan.next_after(late), Some(plan.first() + secs(120)));
        // Invoices issued meanwhile are spread over what is left.
        assert_eq!(plan.share(plan.first() + secs(180), 12), 12);
        // After the window: everything, and no next share.
        assert_eq!(plan.share(secs(340), 37), 37);
        assert_eq!(plan.next_after(secs(340)), None);
    }

    #[test]
    fn a_refused_share_stretches_the_rest_and_shares_that_go_through_relax_it() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut plan = Recovery::plan(secs(0), secs(240), 20, &mut rng);
        let first = plan.first();
        // The first share (5 of 20) was refused: the three shares left keep their number
        // and go two minutes apart, each taking a third of what is left.
        plan.stretch(first);
        assert_eq!(plan.next_after(first), Some(first + secs(120)));
        assert_eq!(plan.end(), first + secs(480));
        let t = first + secs(120);
        assert_eq!(plan.share(t, 20), 7);
        // Refused again at its next turn: four minutes apart.
        plan.stretch(t);
        assert_eq!(plan.next_after(t), Some(t + secs(240)));
        // Went through: a quarter closer again...
        let t = t + secs(240);
        plan.relax(t);
        assert_eq!(plan.next_after(t), Some(t + secs(180)));
        // ...but never closer than the plan began with.
        for _ in 0..10 {
            plan.relax(t);
        }
        assert_eq!(plan.next_after(t), Some(t + secs(60)));
        // Nothing refused, nothing changes: relaxing an unstretched plan is a no-op.
        let fresh = Recovery::plan(secs(0), secs(240), 20, &mut StdRng::seed_from_u64(6));
        let mut relaxed = fresh;
        relaxed.relax(fresh.first());
        assert_eq!(relaxed, fresh);
    }

    #[test]
    fn stretching_is_bounded_and_ends_with_the_window() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut plan = Recovery::plan(secs(0), secs(240), 10_000, &mut rng);
        let mut now = plan.first();
        for _ in 0..20 {
            plan.stretch(now);
            assert!(plan.end() <= now + MAX_STRETCH, "{plan:?}");
            now = plan.next_after(now).unwrap_or(now);
        }
        // After its window a plan sends everything and stretches no more.
        let end = plan.end();
        plan.stretch(end);
        assert_eq!(plan.share(end, 123), 123);
        assert_eq!(plan.next_after(end), None);
        // A plan of one share (no spread) has nothing to stretch.
        let mut one = Recovery::plan(secs(5), Duration::ZERO, 50, &mut rng);
        one.stretch(secs(5));
        assert_eq!(
            (one.share(secs(5), 50), one.next_after(secs(5))),
            (50, None)
        );
    }
}
