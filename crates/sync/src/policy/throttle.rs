//! Client-side adaptive throttling (Google SRE book, "Handling Overload"; SPEC 6): the
//! client counts, over a sliding window, the requests it wanted to send and those the
//! authority accepted, and rejects a new request locally with probability
//! `max(0, (requests - K * accepts) / (requests + 1))`.
//!
//! Locally rejected requests count as requests, so a client whose requests keep failing
//! sends less and less, while the `+ 1` still lets an occasional one through to notice the
//! recovery. "Accepted" means the authority did the work (any answer but overload, an
//! outage or a failure to answer): a 4xx about the request itself is not overload.

use std::time::Duration;

/// One second of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    /// The second (of the policy clock) this slot counts; slots of older seconds are stale.
    second: u64,
    requests: u32,
    accepts: u32,
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    /// `K`: 2 in SPEC 6. Larger lets more through.
    k: f64,
    /// One slot per second of the window (ring buffer indexed by second).
    slots: Vec<Slot>,
}

impl Throttle {
    /// A window of `window` (whole seconds, at least one) and multiplier `k`.
    pub fn new(window: Duration, k: f64) -> Throttle {
        let secs = usize::try_from(window.as_secs().max(1))
            .unwrap_or(1)
            .min(3600);
        Throttle {
            k,
            slots: vec![Slot::default(); secs],
        }
    }

    fn window(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Whether slot `s` counts at second `now`: inside the window and not from the future
    /// (a clock that went backwards forgets what it cannot place).
    fn live(&self, s: &Slot, now: u64) -> bool {
        (s.requests > 0 || s.accepts > 0) && s.second <= now && now - s.second < self.window()
    }

    fn slot(&mut self, now: Duration) -> &mut Slot {
        let second = now.as_secs();
        let window = self.window();
        let i = (second % window) as usize;
        let slot = &mut self.slots[i];
        if slot.second != second {
            *slot = Slot {
                second,
                requests: 0,
                accepts: 0,
            };
        }
        slot
    }

    /// Requests and accepts inside the window at `now`.
    pub fn counts(&self, now: Duration) -> (u64, u64) {
        let second = now.as_secs();
        self.slots
            .iter()
            .filter(|s| self.live(s, second))
            .fold((0, 0), |(r, a), s| {
                (r + u64::from(s.requests), a + u64::from(s.accepts))
            })
    }

    /// The probability of rejecting the next request locally.
    pub fn reject_probability(&self, now: Duration) -> f64 {
        let (requests, accepts) = self.counts(now);
        let (requests, accepts) = (requests as f64, accepts as f64);
        ((requests - self.k * accepts) / (requests + 1.0)).max(0.0)
    }

    /// A request was wanted (sent, or rejected locally).
    pub fn record_request(&mut self, now: Duration) {
        let slot = self.slot(now);
        slot.requests = slot.requests.saturating_add(1);
    }

    /// The authority accepted a request.
    pub fn record_accept(&mut self, now: Duration) {
        let slot = self.slot(now);
        slot.accepts = slot.accepts.saturating_add(1);
    }

    /// The live seconds as `(second, requests, accepts)`, for saving.
    pub fn seconds(&self, now: Duration) -> Vec<(u64, u32, u32)> {
        let second = now.as_secs();
        let mut out: Vec<(u64, u32, u32)> = self
            .slots
            .iter()
            .filter(|s| self.live(s, second))
            .map(|s| (s.second, s.requests, s.accepts))
            .collect();
        out.sort_unstable();
        out
    }

    /// Adds saved seconds back (those outside the window at `now` are ignored).
    pub fn restore(&mut self, seconds: &[(u64, u32, u32)], now: Duration) {
        let current = now.as_secs();
        for &(second, requests, accepts) in seconds {
            if second > current || current - second >= self.window() {
                continue;
            }
            let slot = self.slot(Duration::from_secs(second));
            slot.requests = slot.requests.saturating_add(requests);
            slot.accepts = slot.accepts.saturating_add(accepts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_sre_formula() {
        let mut t = Throttle::new(s(120), 2.0);
        assert_eq!(t.reject_probability(s(0)), 0.0);
        // 10 requests, 10 accepted: nothing rejected.
        for _ in 0..10 {
            t.record_request(s(0));
            t.record_accept(s(0));
        }
        assert_eq!(t.reject_probability(s(0)), 0.0);
        // 30 more that all failed: (40 - 2*10) / 41.
        for _ in 0..30 {
            t.record_request(s(1));
        }
        assert_eq!(t.counts(s(1)), (40, 10));
        assert!((t.reject_probability(s(1)) - 20.0 / 41.0).abs() < 1e-12);
        // Half accepted is exactly the K = 2 break-even.
        let mut half = Throttle::new(s(120), 2.0);
        for i in 0..20 {
            half.record_request(s(3));
            if i % 2 == 0 {
                half.record_accept(s(3));
            }
        }
        assert_eq!(half.reject_probability(s(3)), 0.0);
    }

    #[test]
    fn an_unanswered_client_still_gets_the_odd_request_through() {
        let mut t = Throttle::new(s(120), 2.0);
        t.record_request(s(0));
        assert_eq!(t.reject_probability(s(0)), 0.5);
        for _ in 0..98 {
            t.record_request(s(0));
        }
        assert!((t.reject_probability(s(0)) - 0.99).abs() < 1e-12);
    }

    #[test]
    fn the_window_slides() {
        let mut t = Throttle::new(s(120), 2.0);
        for _ in 0..10 {
            t.record_request(s(100));
        }
        for _ in 0..10 {
            t.record_request(s(150));
        }
        assert_eq!(t.counts(s(219)), (20, 0));
        assert_eq!(t.counts(s(220)), (10, 0));
        assert_eq!(t.counts(s(269)), (10, 0));
        assert_eq!(t.counts(s(270)), (0, 0));
        assert_eq!(t.reject_probability(s(270)), 0.0);
        // A slot reused a window later starts from zero.
        t.record_request(s(340));
        assert_eq!(t.counts(s(340)), (1, 0));
    }

    #[test]
    fn saved_seconds_come_back_and_the_future_is_ignored() {
        let mut t = Throttle::new(s(120), 2.0);
        t.record_request(s(1000));
        t.record_accept(s(1000));
        t.record_request(s(1010));
        let saved = t.seconds(s(1010));
        assert_eq!(saved, vec![(1000, 1, 1), (1010, 1, 0)]);
        let mut u = Throttle::new(s(120), 2.0);
        u.restore(&saved, s(1050));
        assert_eq!(u.counts(s(1050)), (2, 1));
        let mut v = Throttle::new(s(120), 2.0);
        v.restore(&saved, s(1005));
        assert_eq!(v.counts(s(1005)), (1, 1));
        // A clock set back does not count seconds it has not reached.
        assert_eq!(t.counts(s(990)), (0, 0));
        let mut w = Throttle::new(s(120), 2.0);
        w.restore(&saved, s(5000));
        assert_eq!(w.counts(s(5000)), (0, 0));
    }
}
