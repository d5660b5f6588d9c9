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

#[test]
fn requests_a_forger_cannot_sign_do_not_spend_a_devices_rate() {
    // Anyone can send a device's id. Only what that device signed is charged to its rate;
    // before, forged requests emptied the bucket and the shop's own sync got 429.
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let env = shop.issue(&small_draft("限流", "10"));
    // One request in 1,000 s for each device: one token, for the shop's own submission.
    taxd.restart_with(&["--device-rate", "0.001"]);
    let device = shop.device_id.clone();
    for _ in 0..3 {
        // A device-signed request with a signature that does not verify.
        let forged = taxd.post_raw(
            "/v1/leases",
            &[
                ("Kaipiao-Device", device.as_str()),
                (
                    "Kaipiao-Timestamp",
                    &chrono::Utc::now().timestamp().to_string(),
                ),
                ("Kaipiao-Signature", "AAAA"),
            ],
            b"{}".to_vec(),
        );
        forged.expect_error(401, "bad_request_signature");
        // The shop's pending envelope, its signature replaced.
        let mut bad = env.clone();
        bad["signature"] = json!(bad["signature"]
            .as_str()
            .expect("signature")
            .chars()
            .rev()
            .collect::<String>());
        let sent = taxd.submit(
            Some(env["invoice"]["id"].as_str().expect("id")),
            &bad.to_string(),
        );
        sent.expect_error(422, "integrity");
    }
    let out = shop.sync();
    let doc = out.json();
    assert_eq!(
        doc["accepted"],
        json!(1),
        "the shop's own submission went through\n{out}"
    );
    assert_eq!(taxd.receipts_of(&device).len(), 1);
}
