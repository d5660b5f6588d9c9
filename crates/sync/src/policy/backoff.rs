//! Exponential backoff with full jitter (SPEC 6: base 0.5 s, cap 300 s), never sooner
//! than the server's `Retry-After`, and the reading of that header.

use chrono::{DateTime, Utc};
use rand::Rng;
use std::time::Duration;

/// First backoff ceiling: 0.5 s.
pub const BASE: Duration = Duration::from_millis(500);
/// Largest backoff ceiling: 300 s.
pub const CAP: Duration = Duration::from_secs(300);

/// Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
/// Jitter"): the n-th consecutive failure waits a uniformly random time in
/// `[0, min(cap, base * 2^n)]`, and never less than the server asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: BASE,
            cap: CAP,
        }
    }
}

impl Backoff {
    /// `min(cap, base * 2^attempt)`; `attempt` counts consecutive failures from 0.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        // 2^32 * 0.5 s is far past any cap; saturate instead of overflowing.
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait before the next try: `unit` (in `[0, 1]`) scales the ceiling (full
    /// jitter); the result is at least `retry_after`.
    pub fn delay_with(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let ceiling = self.ceiling(attempt);
        // try_from: a caller-made Backoff with a huge cap must not panic on rounding.
        let jittered = Duration::try_from_secs_f64(ceiling.as_secs_f64() * unit).unwrap_or(ceiling);
        match retry_after {
            Some(floor) => jittered.max(floor),
            None => jittered,
        }
    }

    /// [`Backoff::delay_with`] drawing the jitter from `rng`.
    pub fn delay<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let unit: f64 = rng.gen_range(0.0..=1.0);
        self.delay_with(attempt, retry_after, unit)
    }
}

/// Reads a `Retry-After` header (RFC 9110 10.2.3): whole seconds or an HTTP-date. A date
/// in the past means "now" (zero). Anything else is ignored (None) rather than trusted.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long values saturate; the caller's deadline decides what to do with them.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::rngs::mock::StepRng;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_from_half_a_second_up_to_five_minutes() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(500));
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(9), Duration::from_secs(256));
        assert_eq!(b.ceiling(10), CAP);
        assert_eq!(b.ceiling(31), CAP);
        assert_eq!(b.ceiling(u32::MAX), CAP);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(3, None, 0.0), Duration::ZERO);
        assert_eq!(b.delay_with(3, None, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay_with(3, None, 0.5), Duration::from_secs(2));
        // Out-of-range or broken random values never widen the window.
        assert_eq!(b.delay_with(3, None, 7.0), Duration::from_secs(4));
        assert_eq!(b.delay_with(3, None, -1.0), Duration::ZERO);
        assert_eq!(b.delay_with(3, None, f64::NAN), Duration::from_secs(4));
        let huge = Backoff {
            base: Duration::MAX,
            cap: Duration::MAX,
        };
        assert_eq!(huge.delay_with(40, None, 1.0), Duration::MAX);
        assert!(huge.delay_with(40, None, 0.5) > Duration::from_secs(1 << 62));
    }

    #[test]
    fn never_sooner_than_retry_after() {
        let b = Backoff::default();
        let ra = Some(Duration::from_secs(7));
        assert_eq!(b.delay_with(0, ra, 0.0), Duration::from_secs(7));
        assert_eq!(b.delay_with(0, ra, 1.0), Duration::from_secs(7));
        // A longer jittered wait wins over a shorter Retry-After.
        assert_eq!(
            b.delay_with(5, Some(Duration::from_secs(1)), 1.0),
            Duration::from_secs(16)
        );
        // Retry-After may exceed the cap: the server's word is a floor.
        assert_eq!(
            b.delay_with(20, Some(Duration::from_secs(900)), 1.0),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn random_source_draws_stay_inside_the_window() {
        let b = Backoff::default();
        let mut rng = StdRng::seed_from_u64(42);
        for attempt in 0..40 {
            for _ in 0..50 {
                let d = b.delay(attempt, None, &mut rng);
                assert!(d <= b.ceiling(attempt), "{attempt}: {d:?}");
            }
        }
        let mut zero = StepRng::new(0, 0);
        assert_eq!(b.delay(4, None, &mut zero), Duration::ZERO);
        let mut seeded = StdRng::seed_from_u64(7);
        let draws: Vec<Duration> = (0..100).map(|_| b.delay(2, None, &mut seeded)).collect();
        // Full jitter spreads clients out: the draws are not all the same.
        assert!(draws.iter().any(|d| *d != draws[0]));
        assert!(draws.iter().any(|d| *d < Duration::from_secs(1)));
        assert!(draws.iter().any(|d| *d > Duration::from_secs(1)));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 08:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }
}
