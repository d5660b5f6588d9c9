//! Overload and per-device rate limits: token buckets that refill at N tokens per second
//! and hold at most max(N, 1), so a quiet client may send a short burst. A refusal carries
//! the whole seconds until a token will be there, which clients honour as Retry-After.

use crate::error::ErrorAnswer;
use axum::http::StatusCode;
use kaipiao_core::Code;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn new(rate: f64, now: Instant) -> TokenBucket {
        let burst = rate.max(1.0);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // Saturates instead of panicking on a rate no flag lets through.
            Err(Duration::try_from_secs_f64((1.0 - self.tokens) / self.rate)
                .unwrap_or(Duration::MAX))
        }
    }
}

/// Retry-After in whole seconds, at least 1 (a client must never be told "now").
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// Buckets kept for devices before idle (full) ones are forgotten; the device id of a
/// request is unauthenticated, so the map must not grow without bound.
const MAX_DEVICE_BUCKETS: usize = 10_000;

pub(crate) struct Limits {
    capacity: Option<Mutex<TokenBucket>>,
    device_rate: Option<f64>,
    devices: Mutex<HashMap<String, TokenBucket>>,
    /// The public 查验 endpoint's rate per peer address (`--check-rate`).
    check_rate: f64,
    peers: Mutex<HashMap<String, TokenBucket>>,
}

impl Limits {
    pub fn new(capacity: Option<f64>, device_rate: Option<f64>, check_rate: f64) -> Limits {
        let now = Instant::now();
        Limits {
            capacity: capacity.map(|r| Mutex::new(TokenBucket::new(r, now))),
            device_rate,
            devices: Mutex::new(HashMap::new()),
            check_rate,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// One peer's rate on the public 查验 endpoint: 429 `rate_limited` with Retry-After.
    pub fn check_peer(&self, peer: &str) -> Result<(), ErrorAnswer> {
        take_keyed(&self.peers, peer, self.check_rate).map_err(|wait| {
            ErrorAnswer::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::RateLimited,
                "too many checks from this address; retry after the time in Retry-After",
                "",
            )
            .with_retry_after(whole_seconds(wait))
        })
    }

    /// The server-wide capacity: 503 `overloaded` with Retry-After when exhausted.
    pub fn check_capacity(&self) -> Result<(), ErrorAnswer> {
        let Some(bucket) = &self.capacity else {
            return Ok(());
        };
        let mut bucket = match bucket.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        bucket.take(Instant::now()).map_err(|wait| {
            ErrorAnswer::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Overloaded,
                "the authority is overloaded; retry after the time in Retry-After",
                "",
            )
            .with_retry_after(whole_seconds(wait))
        })
    }

    /// Whether a per-device rate is set (`--device-rate`).
    pub fn charges_devices(&self) -> bool {
        self.device_rate.is_some()
    }

    /// One device's rate: 429 `rate_limited` with Retry-After when exceeded.
    pub fn check_device(&self, device: &str) -> Result<(), ErrorAnswer> {
        let Some(rate) = self.device_rate else {
            return Ok(());
        };
        take_keyed(&self.devices, device, rate).map_err(|wait| {
            ErrorAnswer::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::RateLimited,
                "this device sends too many requests; retry after the time in Retry-After",
                "",
            )
            .with_retry_after(whole_seconds(wait))
        })
    }
}

/// Takes a token from `key`'s bucket in `map` (made at `rate` when new); the map is kept
/// under [`MAX_DEVICE_BUCKETS`] by forgetting full (idle) buckets, since the keys are
/// chosen by whoever sends the request.
fn take_keyed(
    map: &Mutex<HashMap<String, TokenBucket>>,
    key: &str,
    rate: f64,
) -> Result<(), Duration> {
    let now = Instant::now();
    let mut buckets = match map.lock() {
        Ok(d) => d,
        Err(poisoned) => poisoned.into_inner(),
    };
    if buckets.len() >= MAX_DEVICE_BUCKETS && !buckets.contains_key(key) {
        buckets.retain(|_, b| {
            b.refill(now);
            b.tokens < b.burst
        });
    }
    buckets
        .entry(key.to_string())
        .or_insert_with(|| TokenBucket::new(rate, now))
        .take(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_and_reports_wait() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, t0);
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9);
        assert_eq!(whole_seconds(wait), 1);
        assert!(b.take(t0 + Duration::from_millis(500)).is_ok());
        let mut slow = TokenBucket::new(0.25, t0);
        assert!(slow.take(t0).is_ok());
        assert_eq!(whole_seconds(slow.take(t0).unwrap_err()), 4);
    }

    #[test]
    fn devices_are_limited_separately() {
        let l = Limits::new(None, Some(1.0), 1.0);
        assert!(l.check_device("a").is_ok());
        let e = l.check_device("a").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(1));
        assert!(l.check_device("b").is_ok());
        assert!(Limits::new(None, None, 1.0).check_device("a").is_ok());
    }
}
