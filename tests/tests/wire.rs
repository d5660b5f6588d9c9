//! The submission protocol of SPEC 7 against a real taxd, byte by byte: idempotent
//! replays, key misuse, forged envelopes and chain gaps — and afterwards the CLI still
//! drains its outbox with every invoice accepted exactly once.

use kaipiao_core::sign::{verify_object, RECEIPT_DOMAIN};
use kaipiao_core::PublicKey;
use kaipiao_tests::*;
use serde_json::{json, Value};

fn compact(v: &Value) -> String {
    serde_json::to_string(v).expect("json")
}

#[test]
fn submission_protocol_over_raw_http() {
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    taxd.stop();
    // Issued while the authority is down, so all three are still pending locally.
    let e1 = shop.issue(&small_draft("甲", "10"));
    let e2 = shop.issue(&small_draft("乙", "20"));
    let e3 = shop.issue(&small_draft("丙", "30"));
    taxd.restart();
    let authority = PublicKey::from_base64(&taxd.authority_key()).expect("authority key");
    let id1 = s(&e1, "/invoice/id").to_string();
    let id2 = s(&e2, "/invoice/id").to_string();
    let id3 = s(&e3, "/invoice/id").to_string();

    // A first submission: 201 with a signed receipt.
    let first = taxd.submit(Some(&id1), &compact(&e1));
    assert_eq!(first.status, 201, "first submission: {}", first.text());
    assert_ne!(
        first.header("Idempotent-Replayed").as_deref(),
        Some("true"),
        "a first answer is no replay"
    );
    let receipt = first.json();
    assert_eq!(receipt["invoice_id"], json!(id1));
    assert_eq!(receipt["number"], e1["invoice"]["number"]);
    assert_eq!(receipt["hash"], e1["hash"]);
    assert_eq!(receipt["status"], json!("accepted"), "receipt: {receipt}");
    assert_eq!(receipt["reasons"], json!([]));
    let code = s(&receipt, "/authority_code");
    assert!(
        code.len() == 20 && code.bytes().all(|b| b.is_ascii_digit()),
        "authority_code {code:?}"
    );
    verify_object(&authority, RECEIPT_DOMAIN, &receipt, "authority_signature")
        .expect("the receipt's authority signature verifies");

    // The same envelope, re-spaced and re-ordered: the same status and body, flagged.
    let again = taxd.submit(Some(&id1), &respaced_reordered(&e1));
    assert_eq!(again.status, 201, "replay: {}", again.text());
    assert_eq!(
        again.body, first.body,
        "a replay returns the original body byte for byte"
    );
    assert_eq!(again.header("Idempotent-Replayed").as_deref(), Some("true"));

    // Same key, another envelope (a line amount changed): the key is not reusable.
    let mut other = e1.clone();
    other["invoice"]["lines"][0]["amount"] = json!("11.00");
    taxd.submit(Some(&id1), &compact(&other))
        .expect_error(422, "idempotency_key_reused");

    // Key problems come first.
    taxd.submit(None, &compact(&e2))
        .expect_error(400, "idempotency_key_missing");
    taxd.post_raw(
        "/v1/invoices",
        &[("Idempotency-Key", id2.as_str())],
        compact(&e2).into_bytes(),
    )
    .expect_error(400, "idempotency_key_missing"); // a bare token is not an sf-string
    taxd.submit(Some(&id3), &compact(&e2))
        .expect_error(400, "idempotency_key_mismatch");
    taxd.submit(Some(&id2), "{\"invoice\": ")
        .expect_error(400, "invalid_request");

    // Forgeries are integrity failures.
    let mut forged_sig = e2.clone();
    let sig = s(&e2, "/signature").to_string();
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    forged_sig["signature"] = json!(flipped);
    taxd.submit(Some(&id2), &compact(&forged_sig))
        .expect_error(422, "integrity");
    let mut forged_amount = e2.clone();
    forged_amount["invoice"]["lines"][0]["amount"] = json!("2.00");
    taxd.submit(Some(&id2), &compact(&forged_amount))
        .expect_error(422, "integrity");

    // Seq 3 while the head is at 1: a gap, with where to resume.
    let gap = taxd
        .submit(Some(&id3), &compact(&e3))
        .expect_error(409, "chain_gap");
    assert_eq!(
        gap["error"]["expected_seq"],
        json!(2),
        "chain_gap body: {gap}"
    );

    // The device's own view of the server head.
    let key = shop.device_key();
    let head = taxd.device_get(
        &shop.device_id,
        &key,
        &format!("/v1/devices/{}/head", shop.device_id),
    );
    assert_eq!(head.status, 200, "head: {}", head.text());
    assert_eq!(head.json(), json!({"seq": 1, "hash": s(&e1, "/hash")}));

    // The CLI drains its outbox: the rejected forgeries did not poison invoice 2's key,
    // and invoice 1 is taken from its replay, not accepted twice.
    let doc = shop.sync_until_complete(3);
    assert_eq!(doc["pending"], json!(0), "sync: {doc}");
    assert_eq!(doc["rejected"], json!(0), "sync: {doc}");
    assert_eq!(
        doc["server_head"],
        json!({"seq": 3, "hash": s(&e3, "/hash")}),
        "sync: {doc}"
    );
    assert_eq!(shop.status()["head"], doc["server_head"]);
    assert_eq!(shop.list(Some("accepted")).len(), 3);

    let (file, records) = shop.export();
    assert_eq!(records.len(), 4);
    assert_eq!(
        records[1]["receipt"], receipt,
        "the stored receipt is the one first issued"
    );
    assert_eq!(verify_export(&file, &taxd.authority_key()), (3, 3));

    // Exactly one receipt per invoice on the server, the same the client stored.
    for (i, id) in [&id1, &id2, &id3].iter().enumerate() {
        let r = taxd.device_get(&shop.device_id, &key, &format!("/v1/invoices/{id}"));
        assert_eq!(r.status, 200, "GET invoice {id}: {}", r.text());
        assert_eq!(
            r.json(),
            records[i + 1]["receipt"],
            "server receipt of seq {}",
            i + 1
        );
    }

    // A batch answers each item exactly as if sent alone.
    let batch = json!({"items": [
        {"idempotency_key": id1, "envelope": e1},
        {"idempotency_key": id2, "envelope": e2},
    ]});
    let r = taxd.post_raw("/v1/invoices:batch", &[], compact(&batch).into_bytes());
    assert_eq!(r.status, 200, "batch: {}", r.text());
    let results = r.json()["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "batch: {}", r.text());
    for (i, res) in results.iter().enumerate() {
        assert_eq!(res["status"], json!(201), "batch item {i}: {res}");
        assert_eq!(
            res["body"],
            records[i + 1]["receipt"],
            "batch item {i} body"
        );
    }
    let unknown = taxd.device_get(
        &shop.device_id,
        &key,
        &format!("/v1/invoices/{}", "0190a000-0000-7000-8000-000000000000"),
    );
    unknown.expect_error(404, "not_found");
    assert_eq!(s(&taxd.get("/v1/health").json(), "/status"), "ok");
}

#[test]
fn a_replayed_lease_request_is_refused() {
    // Every device-signed request carries a fresh Kaipiao-Nonce, signed as a sixth line;
    // the authority keeps the signatures it saw within the skew window and refuses a
    // repeat, so a captured lease request cannot be sent again for more numbers.
    let taxd = Taxd::start(&[]);
    let key = kaipiao_core::DeviceKey::from_bytes(&[42; 32]);
    let enrolled = taxd.post_raw(
        "/v1/devices",
        &[],
        json!({
            "enrollment_token": TOKEN,
            "seller": {"name": "重放测试店", "tax_id": seller_tax_id(), "address": "", "bank": ""},
            "device_name": "前台",
            "public_key": key.public().to_base64(),
        })
        .to_string()
        .into_bytes(),
    );
    assert_eq!(enrolled.status, 201, "{}", enrolled.text());
    let device = enrolled.json()["device_id"]
        .as_str()
        .expect("id")
        .to_string();
    let ts = chrono::Utc::now().timestamp();
    let signed = |nonce: &str| {
        let sig = kaipiao_core::sign::sign_request_with_nonce(
            &key,
            "POST",
            "/v1/leases",
            ts,
            b"{}",
            Some(nonce),
        );
        let ts = ts.to_string();
        let nonce = nonce.to_string();
        let device = device.clone();
        move |taxd: &Taxd| {
            taxd.post_raw(
                "/v1/leases",
                &[
                    ("Kaipiao-Device", device.as_str()),
                    ("Kaipiao-Timestamp", ts.as_str()),
                    ("Kaipiao-Nonce", nonce.as_str()),
                    ("Kaipiao-Signature", sig.as_str()),
                ],
                b"{}".to_vec(),
            )
        }
    };
    let request = signed("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b");
    let first = request(&taxd);
    assert_eq!(first.status, 201, "{}", first.text());
    let replay = request(&taxd);
    replay.expect_error(401, "replayed_request");
    // A new request (a new nonce) is answered as usual.
    let next = signed("0b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d")(&taxd);
    assert_eq!(next.status, 201, "{}", next.text());
    assert_ne!(next.json()["lease_id"], first.json()["lease_id"]);
}
