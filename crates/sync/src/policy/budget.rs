//! The retry budget (SPEC 6): a token bucket that every retry draws from and that
//! successes and time refill; retries stop while it is under half full.
//!
//! This is gRPC's retry throttling (gRFC A6: a failure costs a token, a success earns
//! `token_ratio`, retries stop at or below half) with two changes for a queue that must
//! drain eventually: the cost is charged on the retry itself (a first attempt is free),
//! and the bucket also refills slowly with time, so a client whose every request failed
//! is not stuck forever. Over a long run, retries stay near `per_success` times the
//! successes plus `per_second` per second: a client never multiplies the load of a
//! struggling authority by much.
//!
//! Why not `governor`: its GCRA limiter has no "earn a token on success" and no "stop at
//! half"; it would be a rate limiter, not a budget.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetParams {
    /// Tokens when full; retries go out while at least half of this is left.
    pub capacity: f64,
    /// Tokens a retry costs.
    pub per_retry: f64,
    /// Tokens a success earns.
    pub per_success: f64,
    /// Tokens earned per second of time.
    pub per_second: f64,
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    params: BudgetParams,
    tokens: f64,
    /// The policy clock when `tokens` was last brought up to date.
    updated: Duration,
}

impl RetryBudget {
    /// A full bucket at `now`.
    pub fn new(params: BudgetParams, now: Duration) -> RetryBudget {
        RetryBudget {
            params,
            tokens: params.capacity.max(0.0),
            updated: now,
        }
    }

    /// A bucket restored from a saved token count (clamped to `[0, capacity]`).
    pub fn restore(params: BudgetParams, tokens: f64, at: Duration) -> RetryBudget {
        let tokens = if tokens.is_finite() {
            tokens.clamp(0.0, params.capacity.max(0.0))
        } else {
            params.capacity.max(0.0)
        };
        RetryBudget {
            params,
            tokens,
            updated: at,
        }
    }

    /// Tokens left at `now`.
    pub fn tokens(&mut self, now: Duration) -> f64 {
        self.refill(now);
        self.tokens
    }

    fn refill(&mut self, now: Duration) {
        // A clock that went backwards earns nothing and costs nothing.
        if now > self.updated {
            let earned = (now - self.updated).as_secs_f64() * self.params.per_second;
            self.tokens = (self.tokens + earned).min(self.params.capacity);
            self.updated = now;
        }
    }

    fn half(&self) -> f64 {
        self.params.capacity / 2.0
    }

    /// Half full, less a hair: ten successes at 0.1 must earn a whole token in floating
    /// point too.
    fn at_least_half(&self) -> bool {
        self.tokens >= self.half() - 1e-9
    }

    /// Whether a retry may go out at `now`.
    pub fn allows_retry(&mut self, now: Duration) -> bool {
        self.refill(now);
        self.at_least_half()
    }

    /// How long until a retry may go out (zero when it may now); None when the bucket
    /// never refills with time and is under half.
    pub fn wait(&mut self, now: Duration) -> Option<Duration> {
        self.refill(now);
        if self.at_least_half() {
            return Some(Duration::ZERO);
        }
        let missing = self.half() - self.tokens;
        if self.params.per_second <= 0.0 {
            return None;
        }
        Duration::try_from_secs_f64(missing / self.params.per_second).ok()
    }

    /// A retry went out.
    pub fn spend(&mut self, now: Duration) {
        self.refill(now);
        self.tokens = (self.tokens - self.params.per_retry).max(0.0);
    }

    /// A request succeeded.
    pub fn earn(&mut self, now: Duration) {
        self.refill(now);
        self.tokens = (self.tokens + self.params.per_success).min(self.params.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: BudgetParams = BudgetParams {
        capacity: 10.0,
        per_retry: 1.0,
        per_success: 0.1,
        per_second: 0.5,
    };

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn retries_stop_under_half_and_time_brings_them_back() {
        let mut b = RetryBudget::new(P, s(0.0));
        for _ in 0..5 {
            assert!(b.allows_retry(s(0.0)));
            b.spend(s(0.0));
        }
        // 10 -> 5: still half full, so one more.
        assert!(b.allows_retry(s(0.0)));
        b.spend(s(0.0));
        assert!(!b.allows_retry(s(0.0)));
        assert_eq!(b.wait(s(0.0)), Some(s(2.0)));
        assert!(!b.allows_retry(s(1.9)));
        assert!(b.allows_retry(s(2.0)));
        assert_eq!(b.wait(s(2.0)), Some(Duration::ZERO));
        // It never holds more than its capacity.
        assert_eq!(b.tokens(s(1000.0)), 10.0);
    }

    #[test]
    fn successes_pay_for_retries() {
        let mut b = RetryBudget::new(
            BudgetParams {
                per_second: 0.0,
                ..P
            },
            s(0.0),
        );
        for _ in 0..6 {
            b.spend(s(0.0));
        }
        assert!(!b.allows_retry(s(0.0)));
        assert_eq!(b.wait(s(0.0)), None);
        // Ten successes earn one retry: at most one retry per ten successes in the long run.
        for _ in 0..9 {
            b.earn(s(0.0));
        }
        assert!(!b.allows_retry(s(0.0)));
        b.earn(s(0.0));
        assert!(b.allows_retry(s(0.0)));
    }

    #[test]
    fn restored_and_odd_values_stay_in_range() {
        let mut b = RetryBudget::restore(P, 42.0, s(5.0));
        assert_eq!(b.tokens(s(5.0)), 10.0);
        let mut b = RetryBudget::restore(P, f64::NAN, s(5.0));
        assert_eq!(b.tokens(s(5.0)), 10.0);
        let mut b = RetryBudget::restore(P, -3.0, s(5.0));
        assert_eq!(b.tokens(s(5.0)), 0.0);
        // A clock that runs backwards neither refills nor panics.
        assert_eq!(b.tokens(s(1.0)), 0.0);
        for _ in 0..20 {
            b.spend(s(1.0));
        }
        assert_eq!(b.tokens(s(5.0)), 0.0);
        assert_eq!(b.tokens(s(7.0)), 1.0);
    }
}
