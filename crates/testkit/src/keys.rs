//! Keys: the passphrase every test device key is sealed with, and the test authority's key
//! with the leases and receipts it signs (for tests that play the authority themselves).

use crate::fixtures::DEVICE_ID;
use kaipiao_core::sign::{sign_object, RECEIPT_DOMAIN};
use kaipiao_core::{DeviceKey, Envelope, Lease};
use kaipiao_ledger::KeySource;
use serde_json::{json, Value};

/// The passphrase every test device key is sealed with.
pub const PASSPHRASE: &str = "correct horse battery staple 开票";

/// The key source of every test device: [`PASSPHRASE`].
pub fn keys() -> KeySource {
    KeySource::with_passphrase(PASSPHRASE)
}

/// The test authority's signing key.
pub fn authority() -> DeviceKey {
    DeviceKey::from_bytes(&[9u8; 32])
}

/// The terms of a test lease.
pub struct Terms {
    pub first: u64,
    pub last: u64,
    pub hours: u64,
    pub cap: &'static str,
    pub single: &'static str,
}

impl Default for Terms {
    fn default() -> Self {
        Terms {
            first: 1,
            last: 1000,
            hours: 72,
            cap: "1000000.00",
            single: "100000.00",
        }
    }
}

/// A lease for the test device, granted 2026-03-01T08:00:00Z and signed by [`authority`].
pub fn lease(id: &str, prefix: &str, terms: &Terms) -> Lease {
    Lease {
        lease_id: id.into(),
        device_id: DEVICE_ID.into(),
        prefix: prefix.into(),
        first: terms.first,
        last: terms.last,
        offline_hours: terms.hours,
        offline_amount_cap: terms.cap.into(),
        single_invoice_cap: terms.single.into(),
        granted_at: "2026-03-01T08:00:00Z".into(),
        signature: String::new(),
    }
    .signed(&authority())
}

/// A receipt for `env` as the authority signs it; a rejection gives one reason.
pub fn receipt_value(authority: &DeviceKey, env: &Envelope, status: &str, code: &str) -> Value {
    receipt_received(authority, env, status, code, "2026-03-01T10:00:00Z")
}

/// [`receipt_value`] received at `received_at`.
pub fn receipt_received(
    authority: &DeviceKey,
    env: &Envelope,
    status: &str,
    code: &str,
    received_at: &str,
) -> Value {
    let reasons = if status == "rejected" {
        json!([{"code": "buyer_unknown", "message": "the buyer is not registered", "field": "buyer.tax_id"}])
    } else {
        json!([])
    };
    sign_object(
        authority,
        RECEIPT_DOMAIN,
        json!({
            "invoice_id": env.invoice.id,
            "number": env.invoice.number,
            "hash": env.hash,
            "status": status,
            "reasons": reasons,
            "authority_code": code,
            "received_at": received_at,
            "authority_signature": ""
        }),
        "authority_signature",
    )
    .expect("object")
}

/// [`receipt_value`] with a fixed authority code, as the text a server would send.
pub fn receipt(authority: &DeviceKey, env: &Envelope, status: &str) -> String {
    serde_json::to_string(&receipt_value(
        authority,
        env,
        status,
        "12345678901234567890",
    ))
    .expect("json")
}
