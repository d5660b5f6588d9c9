//! Shared set-up for the ledger tests: a real ledger in a temp dir, enrolled with a test
//! authority whose key signs the leases and receipts.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaipiao_core::sign::{sign_object, RECEIPT_DOMAIN};
use kaipiao_core::{DeviceKey, Draft, Envelope, Lease, Party};
use kaipiao_ledger::{KeySource, Ledger};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const PASS: &str = "correct horse battery staple";
pub const DEVICE_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
        .single()
        .expect("valid time")
}

pub fn at_hours(h: i64) -> DateTime<Utc> {
    t0() + Duration::hours(h)
}

pub fn keys() -> KeySource {
    KeySource::with_passphrase(PASS)
}

pub fn authority() -> DeviceKey {
    DeviceKey::from_bytes(&[9u8; 32])
}

/// A valid unified social credit code from 17 characters.
pub fn uscc(first17: &str) -> String {
    let c = kaipiao_core::taxid::check_digit(first17).expect("alphabet");
    format!("{first17}{c}")
}

pub fn seller() -> Party {
    Party {
        name: "杭州开票测试有限公司".into(),
        tax_id: uscc("91330100MA2B3C4D5"),
        address: "杭州市西湖区文三路 1 号 0571-88888888".into(),
        bank: "工商银行杭州分行 1202020209000000001".into(),
    }
}

pub fn buyer_tax_id() -> String {
    uscc("91110000100000000")
}

pub struct Setup {
    pub dir: TempDir,
    pub ledger: Ledger,
    pub key: DeviceKey,
    pub authority: DeviceKey,
}

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

/// Initialised and enrolled, without a lease.
pub fn enrolled() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    ledger
        .init(&seller(), "前台电脑", &keys(), t0())
        .expect("init");
    ledger
        .record_enrollment(
            DEVICE_ID,
            &authority().public().to_base64(),
            &["http://127.0.0.1:8787".to_string()],
            t0(),
        )
        .expect("enrol");
    let key = ledger.unseal_key(&keys()).expect("unseal");
    Setup {
        dir,
        ledger,
        key,
        authority: authority(),
    }
}

/// Enrolled, with one lease of these terms.
pub fn with_lease(terms: &Terms) -> Setup {
    let s = enrolled();
    s.ledger
        .store_lease(&lease("lease-1", "260330000001", terms), t0())
        .expect("lease");
    s
}

pub fn draft(v: Value) -> Draft {
    Draft::from_json(&v).expect("draft parses")
}

/// One line, tax-exclusive: quantity x price at `rate`.
pub fn ordinary(qty: &str, price: &str, rate: &str) -> Draft {
    draft(json!({
        "kind": "ordinary",
        "buyer": {"name": "张三"},
        "lines": [{"name": "办公用品", "unit": "件", "quantity": qty, "unit_price": price, "tax_rate": rate}],
        "issuer": "clerk1"
    }))
}

/// A receipt as the authority signs it.
pub fn receipt_value(authority: &DeviceKey, env: &Envelope, status: &str, code: &str) -> Value {
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
            "received_at": "2026-03-01T10:00:00Z",
            "authority_signature": ""
        }),
        "authority_signature",
    )
    .expect("object")
}

pub fn receipt(authority: &DeviceKey, env: &Envelope, status: &str) -> String {
    serde_json::to_string(&receipt_value(
        authority,
        env,
        status,
        "12345678901234567890",
    ))
    .expect("json")
}

/// A raw connection to the ledger file, as a tamperer (or the sqlite3 shell) would open it.
pub fn raw(s: &Setup) -> rusqlite::Connection {
    let c =
        rusqlite::Connection::open(s.dir.path().join(kaipiao_ledger::DB_FILE)).expect("raw open");
    c.busy_timeout(std::time::Duration::from_secs(5))
        .expect("timeout");
    c
}
