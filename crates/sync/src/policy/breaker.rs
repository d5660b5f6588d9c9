//! A circuit breaker for one endpoint (SPEC 6): open after `threshold` consecutive
//! failures, a half-open probe after a cool-down, closed again on success.
//!
//! The cool-down is jittered (drawn in `[cool_down / 2, cool_down]`) so that a fleet whose
//! breakers opened together does not probe together, and doubles with every failed probe
//! up to `cap`, so a dead endpoint costs a client one probe per few minutes.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerParams {
    /// Consecutive failures that open the breaker.
    pub threshold: u32,
    /// First cool-down before the half-open probe.
    pub cool_down: Duration,
    /// Longest cool-down after repeated failed probes.
    pub cap: Duration,
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests go through; `failures` consecutive ones failed so far.
    Closed { failures: u32 },
    /// No requests until `until` (policy clock, milliseconds); `probes` failed probes
    /// since it first opened.
    Open { until_ms: u64, probes: u32 },
    /// The cool-down is over: the next request is the probe.
    HalfOpen { probes: u32 },
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    params: BreakerParams,
    state: BreakerState,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Breaker {
    pub fn new(params: BreakerParams) -> Breaker {
        Breaker {
            params,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    pub fn restore(params: BreakerParams, state: BreakerState) -> Breaker {
        Breaker { params, state }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, BreakerState::Closed { .. })
    }

    /// When a request may go (now when closed or half-open).
    pub fn ready_at(&self, now: Duration) -> Duration {
        match self.state {
            BreakerState::Open { until_ms, .. } => Duration::from_millis(until_ms).max(now),
            _ => now,
        }
    }

    /// Whether a request may go at `now`.
    pub fn admits(&self, now: Duration) -> bool {
        self.ready_at(now) <= now
    }

    /// A request goes out at `now`: after the cool-down it is the half-open probe.
    pub fn on_send(&mut self, now: Duration) {
        if let BreakerState::Open { until_ms, probes } = self.state {
            if millis(now) >= until_ms {
                self.state = BreakerState::HalfOpen { probes };
            }
        }
    }

    /// The endpoint answered as it should: closed, count reset.
    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// The endpoint failed a request at `now`.
    pub fn on_failure<R: Rng + ?Sized>(&mut self, now: Duration, rng: &mut R) {
        self.state = match self.state {
            BreakerState::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.params.threshold {
                    self.open(now, 0, rng)
                } else {
                    BreakerState::Closed { failures }
                }
            }
            BreakerState::HalfOpen { probes } => self.open(now, probes.saturating_add(1), rng),
            // A request that was in flight when it opened: the cool-down stands.
            open @ BreakerState::Open { .. } => open,
        };
    }

    /// Half-open at once (a person pressed "Sync now": attempt now, do not wait out the
    /// cool-down). Failing the probe reopens it with the longer cool-down.
    pub fn probe_now(&mut self) {
        if let BreakerState::Open { probes, .. } = self.state {
            self.state = BreakerState::HalfOpen { probes };
        }
    }

    fn open<R: Rng + ?Sized>(&self, now: Duration, probes: u32, rng: &mut R) -> BreakerState {
        let factor = 1u32.checked_shl(probes.min(31)).unwrap_or(u32::MAX);
        let full = self
            .params
            .cool_down
            .saturating_mul(factor)
            .min(self.params.cap);
        let unit: f64 = rng.gen_range(0.5..=1.0);
        let cool = Duration::try_from_secs_f64(full.as_secs_f64() * unit).unwrap_or(full);
        BreakerState::Open {
            until_ms: millis(now.saturating_add(cool)),
            probes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const P: BreakerParams = BreakerParams {
        threshold: 5,
        cool_down: Duration::from_secs(10),
        cap: Duration::from_secs(60),
    };

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn opens_after_five_consecutive_failures_only() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Breaker::new(P);
        for _ in 0..4 {
            b.on_failure(s(0), &mut rng);
            assert!(b.admits(s(0)));
        }
        // A success in between starts the count again.
        b.on_success();
        for _ in 0..4 {
            b.on_failure(s(0), &mut rng);
        }
        assert!(b.is_closed());
        b.on_failure(s(0), &mut rng);
        assert!(!b.admits(s(0)));
        let ready = b.ready_at(s(0));
        assert!(ready >= s(5) && ready <= s(10), "{ready:?}");
    }

    #[test]
    fn half_open_probe_closes_or_reopens_for_longer() {
        // StepRng(0, 0) draws the low end of every range: cool-downs are exactly half.
        let mut rng = StepRng::new(0, 0);
        let mut b = Breaker::new(P);
        for _ in 0..5 {
            b.on_failure(s(100), &mut rng);
        }
        assert_eq!(b.ready_at(s(100)), s(105));
        assert!(!b.admits(s(104)));
        assert!(b.admits(s(105)));
        b.on_send(s(105));
        assert_eq!(b.state(), BreakerState::HalfOpen { probes: 0 });
        // The probe fails: twice the cool-down.
        b.on_failure(s(105), &mut rng);
        assert_eq!(b.ready_at(s(105)), s(115));
        b.on_send(s(115));
        b.on_failure(s(115), &mut rng);
        assert_eq!(b.ready_at(s(115)), s(135));
        // ...up to the cap.
        for _ in 0..10 {
            let at = b.ready_at(s(0));
            b.on_send(at);
            b.on_failure(at, &mut rng);
        }
        let at = b.ready_at(s(0));
        b.on_send(at);
        b.on_failure(at, &mut rng);
        assert_eq!(b.ready_at(s(0)) - at, s(30));
        // A probe that succeeds closes it.
        b.on_send(b.ready_at(s(0)));
        b.on_success();
        assert!(b.is_closed());
        assert!(b.admits(s(0)));
    }

    #[test]
    fn sync_now_probes_at_once() {
        let mut rng = StepRng::new(0, 0);
        let mut b = Breaker::new(P);
        for _ in 0..5 {
            b.on_failure(s(0), &mut rng);
        }
        assert!(!b.admits(s(1)));
        b.probe_now();
        assert!(b.admits(s(1)));
        b.on_failure(s(1), &mut rng);
        assert_eq!(b.ready_at(s(1)), s(11));
    }

    #[test]
    fn a_send_before_the_cool_down_ends_does_not_half_open() {
        let mut rng = StepRng::new(0, 0);
        let mut b = Breaker::new(P);
        for _ in 0..5 {
            b.on_failure(s(0), &mut rng);
        }
        b.on_send(s(1));
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        // A late failure of a request sent before it opened keeps the cool-down.
        b.on_failure(s(2), &mut rng);
        assert_eq!(b.ready_at(s(2)), s(5));
    }
}
