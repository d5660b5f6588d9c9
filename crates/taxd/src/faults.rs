//! Injected faults, set by flags at start and changed at run time through the admin API.
//!
//! They live in this process's memory, not in `--db`: they describe how this server
//! misbehaves, not what the authority knows, and a test that points two processes at one
//! database may well want only one of them to fail.

use crate::config::{Config, DelayRange};
use crate::error::Failure;
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::RwLock;

/// The faults in force. `GET /admin/faults` answers with this shape, and
/// `PUT /admin/faults` takes any subset of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Faults {
    /// Probability that a submission is committed and its connection then dropped.
    pub drop_after_commit: f64,
    /// Probability of a 503 before doing anything.
    pub error_rate: f64,
    /// `[min, max]` milliseconds of random delay before handling, or null.
    pub delay_ms: Option<[u64; 2]>,
    /// Every /v1 request answers 503 `outage`.
    pub outage: bool,
}

impl Faults {
    pub fn from_config(config: &Config) -> Faults {
        Faults {
            drop_after_commit: config.fault_drop_after_commit,
            error_rate: config.fault_error_rate,
            delay_ms: config
                .fault_delay_ms
                .map(|DelayRange { min_ms, max_ms }| [min_ms, max_ms]),
            outage: false,
        }
    }

    /// Applies a partial update `{drop_after_commit?, error_rate?, delay_ms?, outage?}`.
    /// Nothing changes unless every field given is valid.
    pub(crate) fn updated(self, update: &Value) -> Result<Faults, Failure> {
        let Some(map) = update.as_object() else {
            return Err(Failure::bad_request(
                "invalid_request",
                "expected a JSON object such as {\"outage\": true}",
                "",
            ));
        };
        let mut next = self;
        for key in map.keys() {
            if !["drop_after_commit", "error_rate", "delay_ms", "outage"].contains(&key.as_str()) {
                return Err(Failure::bad_request(
                    "invalid_request",
                    "unknown field; allowed: drop_after_commit, error_rate, delay_ms, outage",
                    key.clone(),
                ));
            }
        }
        if let Some(p) = probability(map, "drop_after_commit")? {
            next.drop_after_commit = p;
        }
        if let Some(p) = probability(map, "error_rate")? {
            next.error_rate = p;
        }
        match map.get("delay_ms") {
            None => {}
            Some(Value::Null) => next.delay_ms = None,
            Some(v) => next.delay_ms = Some(delay(v)?),
        }
        match map.get("outage") {
            None => {}
            Some(Value::Bool(b)) => next.outage = *b,
            Some(_) => {
                return Err(Failure::bad_request(
                    "invalid_request",
                    "expected true or false",
                    "outage",
                ))
            }
        }
        Ok(next)
    }
}

fn probability(map: &Map<String, Value>, field: &str) -> Result<Option<f64>, Failure> {
    match map.get(field) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(p) if (0.0..=1.0).contains(&p) => Ok(Some(p)),
            _ => Err(Failure::bad_request(
                "invalid_request",
                "expected a probability from 0 to 1",
                field,
            )),
        },
    }
}

fn delay(v: &Value) -> Result<[u64; 2], Failure> {
    let bad = || {
        Failure::bad_request(
            "invalid_request",
            "expected [min, max] milliseconds with min <= max <= 3600000, or null",
            "delay_ms",
        )
    };
    let arr = v.as_array().ok_or_else(bad)?;
    let [min, max] = arr.as_slice() else {
        return Err(bad());
    };
    let (Some(min), Some(max)) = (min.as_u64(), max.as_u64()) else {
        return Err(bad());
    };
    if min > max || max > 3_600_000 {
        return Err(bad());
    }
    Ok([min, max])
}

/// The shared, changeable fault settings.
pub(crate) struct FaultSwitch(RwLock<Faults>);

impl FaultSwitch {
    pub fn new(faults: Faults) -> FaultSwitch {
        FaultSwitch(RwLock::new(faults))
    }

    pub fn get(&self) -> Faults {
        match self.0.read() {
            Ok(f) => *f,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    pub fn set(&self, faults: Faults) {
        match self.0.write() {
            Ok(mut f) => *f = faults,
            Err(poisoned) => *poisoned.into_inner() = faults,
        }
    }
}

/// True with probability `p`.
pub(crate) fn roll(p: f64) -> bool {
    p > 0.0 && rand::thread_rng().gen::<f64>() < p
}

/// A delay drawn uniformly from `[min, max]` milliseconds.
pub(crate) fn draw_delay([min, max]: [u64; 2]) -> std::time::Duration {
    let ms = if min >= max {
        min
    } else {
        rand::thread_rng().gen_range(min..=max)
    };
    std::time::Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_updates() {
        let f = Faults {
            drop_after_commit: 0.0,
            error_rate: 0.0,
            delay_ms: Some([1, 2]),
            outage: false,
        };
        let g = f.updated(&json!({"outage": true})).unwrap();
        assert!(g.outage);
        assert_eq!(g.delay_ms, Some([1, 2]));
        let g = g
            .updated(&json!({"delay_ms": null, "error_rate": 0.5}))
            .unwrap();
        assert_eq!(g.delay_ms, None);
        assert_eq!(g.error_rate, 0.5);
        assert!(g.updated(&json!({"error_rate": 2})).is_err());
        assert!(g.updated(&json!({"delay_ms": [5, 1]})).is_err());
        assert!(g.updated(&json!({"nope": 1})).is_err());
        assert!(!roll(0.0));
        assert!(roll(1.0));
    }
}
