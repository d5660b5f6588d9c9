//! An authority that fails (SPEC 6): 5xx answers make `sync` exit 3 with nothing lost and
//! without hammering the server; once it recovers everything goes through.

use kaipiao_tests::*;
use serde_json::json;

#[test]
fn server_errors_are_transient_and_not_hammered() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let drafts: Vec<_> = (1..=3)
        .map(|i| small_draft(&format!("重试{i}"), &format!("{i}")))
        .collect();
    shop.import(&drafts);
    taxd.set_faults(
        json!({"drop_after_commit": 0.0, "error_rate": 1.0, "delay_ms": null, "outage": false}),
    );
    let before = taxd.requests().len();
    let out = shop.sync();
    out.expect_code(3);
    let doc = out.json();
    assert_eq!(doc["pending"], json!(3), "{out}");
    assert_eq!(doc["accepted"], json!(0), "{out}");
    let during = taxd.requests().len() - before;
    // Exponential backoff with jitter and a retry budget: a handful of tries, not a flood.
    assert!(
        (1..=60).contains(&during),
        "{during} requests during one failing sync\n{out}"
    );
    eprintln!("failing sync: {during} requests");
    assert_eq!(shop.status()["pending"], json!(3));

    taxd.set_faults(
        json!({"drop_after_commit": 0.0, "error_rate": 0.0, "delay_ms": null, "outage": false}),
    );
    let doc = shop.sync_until_complete(3);
    assert_eq!(doc["accepted"], json!(3), "{doc}");
    assert_eq!(shop.status()["head"], doc["server_head"]);
}

#[test]
fn a_rate_limited_device_still_gets_through() {
    let taxd = Taxd::start(&["--device-rate", "3"]);
    let shop = Shop::new(&taxd);
    let drafts: Vec<_> = (1..=8)
        .map(|i| small_draft(&format!("限流{i}"), &format!("{i}")))
        .collect();
    shop.import(&drafts);
    let doc = shop.sync_until_complete(6);
    assert_eq!(doc["pending"], json!(0), "{doc}");
    assert_eq!(shop.list(Some("accepted")).len(), 8);
    assert_eq!(shop.status()["head"], doc["server_head"]);
    let log = taxd.requests();
    let limited = log.iter().filter(|r| r["status"] == json!(429)).count();
    eprintln!("rate limited: {limited} answers 429 of {}", log.len());
}
