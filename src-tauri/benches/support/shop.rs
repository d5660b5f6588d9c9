//! A shop's ledger with many invoices, made directly through kaipiao-ledger (no taxd, no
//! window): the same `Ledger::issue` the app uses, then receipts signed with a local
//! "authority" key pinned at enrolment, so the ledger verifies like a real one.
//!
//! Statuses are mixed as a busy shop's would be after months of work: most accepted,
//! one in fifty rejected, the last ones pending. Buyers come from a pool of 500 firms;
//! invoices are five minutes apart, so 100,000 cover about a year.

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaipiao_core::{DeviceKey, Draft, Envelope, Lease, Party};
use kaipiao_ledger::{KeySource, Ledger};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

pub const DEVICE_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
pub const PASSPHRASE: &str = "bench passphrase";
pub const BUYERS: u64 = 500;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn uscc(first17: &str) -> String {
    let check = kaipiao_core::taxid::check_digit(first17).unwrap_or('0');
    format!("{first17}{check}")
}

pub fn seller() -> Party {
    Party {
        name: "杭州小店贸易有限公司".into(),
        tax_id: uscc("91330100MA2B3C4D5"),
        address: "杭州市西湖区文三路 1 号".into(),
        bank: "工商银行杭州分行 1202020209000000001".into(),
    }
}

/// Buyer `k` of the pool: a distinct name and a valid tax ID.
pub fn buyer(k: u64) -> Party {
    Party {
        name: format!("深圳市第{k:03}号科技有限公司"),
        tax_id: uscc(&format!("91440300MA5F{k:05}")),
        address: String::new(),
        bank: String::new(),
    }
}

pub fn authority() -> DeviceKey {
    kaipiao_testkit::keys::authority()
}

fn draft(i: u64) -> Draft {
    let b = buyer((i * 7919) % BUYERS);
    Draft::from_json(&json!({
        "kind": if i.is_multiple_of(5) { "special" } else { "ordinary" },
        "buyer": {"name": b.name, "tax_id": b.tax_id},
        "lines": [{"name": "*日用杂品*收纳盒", "unit": "个", "quantity": (i % 9 + 1).to_string(),
                   "unit_price": format!("{}.50", 10 + i % 90), "tax_rate": "0.13"}],
        "issuer": "李四"
    }))
    .expect("draft")
}

/// The authority's receipt for `env`, received when it was issued.
pub fn receipt(env: &Envelope, status: &str, seq: u64) -> String {
    let code = format!("{:020}", 10_000_000_000_000_000u64 + seq);
    let v = kaipiao_testkit::keys::receipt_received(
        &authority(),
        env,
        status,
        &code,
        &env.invoice.issued_at,
    );
    serde_json::to_string(&v).expect("json")
}

/// An enrolled ledger in `dir` (servers as given) with `n` invoices; the key is sealed
/// under [`PASSPHRASE`]. Returns how long issuing took.
pub fn populate(dir: &Path, n: u64, servers: &[String]) -> std::time::Duration {
    let keys = KeySource::with_passphrase(PASSPHRASE);
    let ledger = Ledger::open(dir).expect("open");
    ledger
        .init(&seller(), "前台收银 1", &keys, t0())
        .expect("init");
    ledger
        .record_enrollment(DEVICE_ID, &authority().public().to_base64(), servers, t0())
        .expect("enrol");
    let lease = Lease {
        lease_id: "bench".into(),
        device_id: DEVICE_ID.into(),
        prefix: "260330000001".into(),
        first: 1,
        last: 99_999_999,
        offline_hours: 100_000,
        offline_amount_cap: "999999999999999.00".into(),
        single_invoice_cap: "999999999999999.00".into(),
        granted_at: "2026-01-01T00:00:00Z".into(),
        signature: String::new(),
    }
    .signed(&authority());
    ledger.store_lease(&lease, t0()).expect("lease");
    let key = ledger.unseal_key(&keys).expect("unseal");
    let started = Instant::now();
    let pending_from = n - n / 200; // the last 0.5% wait for the authority
    for i in 0..n {
        let now = t0() + Duration::minutes(5 * i as i64);
        let env = ledger.issue(&draft(i), &key, now).expect("issue").envelope;
        if i < pending_from {
            let status = if i % 50 == 7 { "rejected" } else { "accepted" };
            ledger
                .store_receipt(
                    &env.invoice.id,
                    &receipt(&env, status, i),
                    now + Duration::seconds(2),
                )
                .expect("receipt");
        }
        if (i + 1) % 10_000 == 0 {
            eprintln!(
                "  populated {} of {n} ({:.0} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    started.elapsed()
}
