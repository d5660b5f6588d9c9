//! Responses lost after commit (SPEC 6 "outcome unknown"): the authority stores the
//! receipt and then drops the connection half the time. Repeated syncs must converge with
//! every invoice accepted exactly once and never trip `idempotency_key_reused` (which
//! would mean the client changed the bytes behind a key).

use kaipiao_tests::*;
use serde_json::json;

#[test]
fn responses_dropped_after_commit_still_end_in_exactly_one_receipt_each() {
    let taxd = Taxd::start(&["--fault-drop-after-commit", "0.5"]);
    let faults = taxd.faults();
    assert_eq!(
        faults["drop_after_commit"],
        json!(0.5),
        "the flag shows in /admin/faults: {faults}"
    );
    // Enrol on a healthy connection, then put the fault back (through the admin API).
    taxd.set_faults(
        json!({"drop_after_commit": 0.0, "error_rate": 0.0, "delay_ms": null, "outage": false}),
    );
    let shop = Shop::new(&taxd);
    taxd.set_faults(
        json!({"drop_after_commit": 0.5, "error_rate": 0.0, "delay_ms": null, "outage": false}),
    );
    assert_eq!(taxd.faults()["drop_after_commit"], json!(0.5));

    let drafts: Vec<_> = (1..=10)
        .map(|i| small_draft(&format!("买方{i}"), &format!("{i}0")))
        .collect();
    let imported = shop.import(&drafts);
    assert!(
        imported["first_number"].is_string() && imported["last_number"].is_string(),
        "{imported}"
    );

    let doc = shop.sync_until_complete(12);
    assert_eq!(doc["pending"], json!(0), "{doc}");
    assert_eq!(shop.list(Some("accepted")).len(), 10);
    assert_eq!(shop.status()["pending"], json!(0));
    let local_head = shop.status()["head"].clone();
    assert_eq!(u(&local_head, "/seq"), 10);
    assert_eq!(
        doc["server_head"], local_head,
        "server head (from sync) == local head"
    );
    shop.kaipiao(&["verify"]).expect_code(0);

    // Now look at the authority's side with a healthy connection.
    taxd.set_faults(
        json!({"drop_after_commit": 0.0, "error_rate": 0.0, "delay_ms": null, "outage": false}),
    );
    let key = shop.device_key();
    let head = taxd.device_get(
        &shop.device_id,
        &key,
        &format!("/v1/devices/{}/head", shop.device_id),
    );
    assert_eq!(head.status, 200, "{}", head.text());
    assert_eq!(head.json(), local_head, "server head seq 10 == local head");

    let (file, records) = shop.export();
    assert_eq!(records.len(), 11);
    for rec in &records[1..] {
        let id = s(rec, "/invoice/id");
        assert_eq!(rec["status"], json!("accepted"));
        let r = taxd.device_get(&shop.device_id, &key, &format!("/v1/invoices/{id}"));
        assert_eq!(r.status, 200, "GET /v1/invoices/{id}: {}", r.text());
        assert_eq!(
            r.json(),
            rec["receipt"],
            "the server's one receipt is the one the client stored"
        );
    }
    assert_eq!(verify_export(&file, &taxd.authority_key()), (10, 10));

    let log = taxd.requests();
    assert!(!log.is_empty(), "the request log is written");
    let submissions: Vec<_> = log
        .iter()
        .filter(|r| r["method"] == json!("POST") && s(r, "/path").starts_with("/v1/invoices"))
        .collect();
    // Invoices go out in batches (POST /v1/invoices:batch) or one by one; either way every
    // submission request is logged, and exactly-once is what the receipts above prove.
    assert!(
        !submissions.is_empty(),
        "every submission is logged: {log:?}"
    );
    // Each answer lost after commit makes the client resend the same bytes (a replay).
    eprintln!(
        "lost responses: {} submission requests for 10 invoices",
        submissions.len()
    );
    let bad: Vec<_> = log.iter().filter(|r| r["status"] == json!(422)).collect();
    assert!(bad.is_empty(), "no request may end in 422: {bad:?}");
}
