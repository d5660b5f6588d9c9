//! Injected faults, set by flags at start and changed at run time through the admin API.
//!
//! They live in this process's memory, not in `--db`: they describe how this server
//! misbehaves, not what the authority knows, and a test that points two processes at one
//! database may well want only one of them to fail. For the same reason the receipt
//! faults (`wrong_signing_key`, `malformed_receipt`) change only the bytes on the wire:
//! the receipt stored in `--db` stays the authority's, correctly signed, so once the
//! fault is off a replay of the same submission returns the good receipt.
//!
//! Here: the switch and its admin updates, what a receipt looks like on the way out, the
//! dropped connection after a commit, and the dice. Where each fault strikes is up to its
//! caller: the gate (outage, error rate, delay), the submission handlers (drop after
//! commit, receipt faults) and the receipt look-up (receipt faults).

use crate::config::{Config, DelayRange};
use crate::error::ErrorAnswer;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use kaipiao_core::sign::{sign_object, DeviceKey, RECEIPT_DOMAIN};
use kaipiao_core::Code;
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
    /// Receipts are sent signed with a key that is not the published authority key.
    pub wrong_signing_key: bool,
    /// Probability that a receipt is sent as broken (truncated) JSON.
    pub malformed_receipt: f64,
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
            wrong_signing_key: config.fault_wrong_signing_key,
            malformed_receipt: config.fault_malformed_receipt,
        }
    }

    /// Applies a partial update of any of the fields of [`Faults`]. Nothing changes unless
    /// every field given is valid; a refusal names the field.
    pub(crate) fn updated(self, update: &Value) -> Result<Faults, ErrorAnswer> {
        let Some(map) = update.as_object() else {
            return Err(ErrorAnswer::bad_request(
                Code::InvalidRequest,
                "expected a JSON object such as {\"outage\": true}",
                "",
            ));
        };
        let mut next = self;
        for key in map.keys() {
            if !FIELDS.contains(&key.as_str()) {
                return Err(ErrorAnswer::bad_request(
                    Code::InvalidRequest,
                    format!("unknown field; allowed: {}", FIELDS.join(", ")),
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
        if let Some(b) = flag(map, "outage")? {
            next.outage = b;
        }
        if let Some(b) = flag(map, "wrong_signing_key")? {
            next.wrong_signing_key = b;
        }
        if let Some(p) = probability(map, "malformed_receipt")? {
            next.malformed_receipt = p;
        }
        Ok(next)
    }
}

/// The fields of [`Faults`], as `GET /admin/faults` names them.
const FIELDS: [&str; 6] = [
    "drop_after_commit",
    "error_rate",
    "delay_ms",
    "outage",
    "wrong_signing_key",
    "malformed_receipt",
];

fn flag(map: &Map<String, Value>, field: &str) -> Result<Option<bool>, ErrorAnswer> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ErrorAnswer::bad_request(
            Code::InvalidRequest,
            "expected true or false",
            field,
        )),
    }
}

fn probability(map: &Map<String, Value>, field: &str) -> Result<Option<f64>, ErrorAnswer> {
    match map.get(field) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(p) if (0.0..=1.0).contains(&p) => Ok(Some(p)),
            _ => Err(ErrorAnswer::bad_request(
                Code::InvalidRequest,
                "expected a probability from 0 to 1",
                field,
            )),
        },
    }
}

fn delay(v: &Value) -> Result<[u64; 2], ErrorAnswer> {
    let bad = || {
        ErrorAnswer::bad_request(
            Code::InvalidRequest,
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

/// A receipt as it leaves this process under the receipt faults.
#[derive(Debug, PartialEq)]
pub(crate) enum Outgoing {
    /// A receipt object (signed by the wrong key under `wrong_signing_key`).
    Receipt(Vec<u8>),
    /// `malformed_receipt` struck: the first half of the receipt's bytes, which is never
    /// JSON (an object is not complete before its last byte). Sent as the whole body of a
    /// lone answer; a batch, whose answer must stay JSON, carries it as a JSON string in
    /// the item's `body`, which is just as unreadable as a receipt.
    Broken(Vec<u8>),
}

/// What is sent for the stored receipt `body` under `faults`. The stored bytes are not
/// touched: a replay after the fault is switched off sends them as they are.
pub(crate) fn outgoing_receipt(faults: &Faults, impostor: &DeviceKey, body: Vec<u8>) -> Outgoing {
    let body = if faults.wrong_signing_key {
        signed_by(impostor, &body).unwrap_or(body)
    } else {
        body
    };
    if roll(faults.malformed_receipt) {
        Outgoing::Broken(truncated(body))
    } else {
        Outgoing::Receipt(body)
    }
}

/// The receipt signed again by `key`; None if it is not a JSON object (never for the
/// receipts taxd stores, and then the fault sends it as it is).
fn signed_by(key: &DeviceKey, receipt: &[u8]) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(receipt).ok()?;
    let signed = sign_object(key, RECEIPT_DOMAIN, value, "authority_signature").ok()?;
    serde_json::to_vec(&signed).ok()
}

/// The first half of `body`, cut on a character boundary so that it stays text.
fn truncated(mut body: Vec<u8>) -> Vec<u8> {
    let mut cut = body.len() / 2;
    if let Ok(text) = std::str::from_utf8(&body) {
        while cut > 0 && !text.is_char_boundary(cut) {
            cut -= 1;
        }
    }
    body.truncate(cut);
    body
}

/// The drop-after-commit fault: the receipt is stored, but the response body fails at
/// once, so hyper aborts the connection before even the status line is flushed and the
/// client sees a transport error — the "outcome unknown" case a retry must settle.
pub(crate) fn dropped_connection(status: StatusCode) -> Response {
    let failing = futures_util::stream::iter([Err::<Bytes, std::io::Error>(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "taxd fault: connection dropped after commit",
    ))]);
    let mut response = Response::new(Body::from_stream(failing));
    *response.status_mut() = status;
    response
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
            wrong_signing_key: false,
            malformed_receipt: 0.0,
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

        let h = g
            .updated(&json!({"wrong_signing_key": true, "malformed_receipt": 0.25}))
            .unwrap();
        assert!(h.wrong_signing_key);
        assert_eq!(h.malformed_receipt, 0.25);
        assert_eq!(h.error_rate, 0.5, "fields not given are kept");
        // A bad value refuses the whole update, naming its field.
        for (update, field) in [
            (
                json!({"wrong_signing_key": 1, "outage": true}),
                "wrong_signing_key",
            ),
            (json!({"malformed_receipt": -0.1}), "malformed_receipt"),
            (json!({"malformed_receipt": "half"}), "malformed_receipt"),
            (json!({"outage": "yes"}), "outage"),
        ] {
            let err = h.updated(&update).unwrap_err();
            assert_eq!(err.body.error.field, field, "{update}");
        }
        let err = h.updated(&json!({"signing_key": true})).unwrap_err();
        assert_eq!(err.body.error.field, "signing_key");
        for name in FIELDS {
            assert!(
                err.body.error.message.contains(name),
                "{}",
                err.body.error.message
            );
        }
        assert!(
            !h.updated(&json!({"wrong_signing_key": false}))
                .unwrap()
                .wrong_signing_key
        );
    }

    fn receipt(authority: &DeviceKey) -> Vec<u8> {
        let unsigned = json!({
            "invoice_id": "0190a0b0-0000-7000-8000-000000000001",
            "number": "26000000000100000001",
            "hash": "ab".repeat(32),
            "status": "rejected",
            "reasons": [{"code": "seller_mismatch", "message": "销售方不符", "field": "seller"}],
            "authority_code": "01234567890123456789",
            "received_at": "2026-01-01T00:00:00Z",
            "authority_signature": "",
        });
        let signed =
            sign_object(authority, RECEIPT_DOMAIN, unsigned, "authority_signature").unwrap();
        serde_json::to_vec(&signed).unwrap()
    }

    #[test]
    fn receipt_faults_change_only_what_is_sent() {
        use kaipiao_core::sign::verify_object;
        let authority = DeviceKey::from_bytes(&[1u8; 32]);
        let impostor = DeviceKey::from_bytes(&[2u8; 32]);
        let stored = receipt(&authority);
        let none = Faults::from_config(&Config::new("x.db"));
        assert_eq!(
            outgoing_receipt(&none, &impostor, stored.clone()),
            Outgoing::Receipt(stored.clone())
        );

        let wrong = Faults {
            wrong_signing_key: true,
            ..none
        };
        let Outgoing::Receipt(sent) = outgoing_receipt(&wrong, &impostor, stored.clone()) else {
            panic!("no malformed_receipt: a receipt is sent");
        };
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        let original: Value = serde_json::from_slice(&stored).unwrap();
        assert!(verify_object(
            &authority.public(),
            RECEIPT_DOMAIN,
            &sent,
            "authority_signature"
        )
        .is_err());
        assert!(verify_object(
            &impostor.public(),
            RECEIPT_DOMAIN,
            &sent,
            "authority_signature"
        )
        .is_ok());
        assert_ne!(sent["authority_signature"], original["authority_signature"]);
        let strip = |mut v: Value| {
            v.as_object_mut().unwrap().remove("authority_signature");
            v
        };
        assert_eq!(strip(sent), strip(original), "only the signature differs");

        for faults in [
            Faults {
                malformed_receipt: 1.0,
                ..none
            },
            Faults {
                malformed_receipt: 1.0,
                ..wrong
            },
        ] {
            let Outgoing::Broken(sent) = outgoing_receipt(&faults, &impostor, stored.clone())
            else {
                panic!("malformed_receipt 1: always broken");
            };
            assert!(!sent.is_empty() && sent.len() < stored.len());
            assert!(serde_json::from_slice::<Value>(&sent).is_err());
            assert!(
                std::str::from_utf8(&sent).is_ok(),
                "cut on a character boundary"
            );
        }
    }
}
