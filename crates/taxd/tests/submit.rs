//! Invoice submission: receipts, idempotency, integrity, chain, business rules, batches,
//! and two authorities on one database.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kaipiao_core::draft::{CreditContext, Draft};
use kaipiao_core::model::Envelope;
use kaipiao_core::sign::{seal_invoice, verify_object, DeviceKey, RECEIPT_DOMAIN};
use kaipiao_core::wire::{check_verdict, idempotency_header};
use kaipiao_testkit::authority::*;
use kaipiao_testkit::fixtures::{office_supplies as ordinary, one_line, seller};
use serde_json::{json, Value};

async fn ready(a: &Authority, secret: u8) -> Device {
    let mut d = a.enroll(secret).await;
    a.lease(&mut d).await;
    d
}

fn with_key(envelope_bytes: Vec<u8>, key: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/v1/invoices").header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("Idempotency-Key", k);
    }
    b.body(Body::from(envelope_bytes)).unwrap()
}

fn reasons(receipt: &Value) -> Vec<String> {
    receipt["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn accepted_receipt_is_signed_and_readable_by_its_device_only() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let env = d.issue(&ordinary("2", "10.5"));
    let r = a.submit(&env).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert!(r.headers.get("idempotent-replayed").is_none());
    let receipt = r.json();
    verify_object(
        &a.authority_key(),
        RECEIPT_DOMAIN,
        &receipt,
        "authority_signature",
    )
    .unwrap();
    assert_eq!(receipt["invoice_id"], env.invoice.id.as_str());
    assert_eq!(receipt["number"], env.invoice.number.as_str());
    assert_eq!(receipt["hash"], env.hash.as_str());
    assert_eq!(receipt["status"], "accepted");
    assert_eq!(receipt["reasons"], json!([]));
    let code = receipt["authority_code"].as_str().unwrap();
    assert!(
        code.len() == 20 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    let received = receipt["received_at"].as_str().unwrap();
    assert!(received.ends_with('Z') && received.len() == 20);
    let keys: Vec<&String> = receipt.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8);

    let head = a
        .call(d.signed(
            Method::GET,
            &format!("/v1/devices/{}/head", d.id),
            Vec::new(),
        ))
        .await
        .json();
    assert_eq!(head, json!({"seq": 1, "hash": env.hash}));

    let path = format!("/v1/invoices/{}", env.invoice.id);
    let r2 = a.call(d.signed(Method::GET, &path, Vec::new())).await;
    assert_eq!(r2.status, StatusCode::OK);
    assert_eq!(r2.body, r.body, "the receipt is stored byte for byte");

    let other = a.enroll(2).await;
    let r3 = a.call(other.signed(Method::GET, &path, Vec::new())).await;
    assert_eq!(
        (r3.status, r3.code()),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let missing = format!("/v1/invoices/{}", uuid::Uuid::now_v7());
    let r4 = a.call(d.signed(Method::GET, &missing, Vec::new())).await;
    assert_eq!(r4.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn replay_returns_the_same_bytes_however_the_json_is_written() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let env = d.issue(&ordinary("1", "99"));
    let first = a.submit(&env).await;
    assert_eq!(first.status, StatusCode::CREATED);

    let again = a.submit(&env).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    // Keys sorted (a different order from the struct's) and pretty-printed.
    let reordered = serde_json::to_string_pretty(&serde_json::to_value(&env).unwrap()).unwrap();
    assert_ne!(
        reordered.as_bytes(),
        serde_json::to_vec(&env).unwrap().as_slice()
    );
    let r = a
        .call(with_key(
            reordered.into_bytes(),
            Some(&idempotency_header(&env.invoice.id)),
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body, first.body);
    assert_eq!(r.headers["idempotent-replayed"], "true");

    // The same key for another envelope is refused.
    let mut changed = env.invoice.clone();
    changed.remarks = "改过".into();
    let reused = seal_invoice(&d.key, changed);
    let r = a.submit(&reused).await;
    assert_eq!(
        (r.status, r.code()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused".into()
        )
    );
}

#[tokio::test]
async fn key_and_shape_errors() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let env = d.issue(&ordinary("1", "5"));
    let bytes = serde_json::to_vec(&env).unwrap();
    let key = idempotency_header(&env.invoice.id);

    let r = a.call(with_key(bytes.clone(), None)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "idempotency_key_missing".into())
    );
    // A bare token is not an sf-string.
    let r = a.call(with_key(bytes.clone(), Some(&env.invoice.id))).await;
    assert_eq!(r.code(), "idempotency_key_missing");
    // Step 1 needs no body: a missing key wins over a broken body.
    let r = a.call(with_key(b"{oops".to_vec(), None)).await;
    assert_eq!(r.code(), "idempotency_key_missing");

    let other = idempotency_header(&uuid::Uuid::now_v7().to_string());
    let r = a.call(with_key(bytes.clone(), Some(&other))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "idempotency_key_mismatch".into())
    );

    // With a key, an unparsable body is a shape error (the key cannot be compared).
    let r = a.call(with_key(b"{oops".to_vec(), Some(&key))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let mut v = serde_json::to_value(&env).unwrap();
    v["invoice"]["extra"] = json!(1);
    let r = a
        .call(with_key(serde_json::to_vec(&v).unwrap(), Some(&key)))
        .await;
    assert_eq!(r.code(), "invalid_request");
    assert!(r.field().starts_with("invoice"), "{}", r.field());
    let mut v = serde_json::to_value(&env).unwrap();
    v["invoice"]["seq"] = json!("one");
    let r = a
        .call(with_key(serde_json::to_vec(&v).unwrap(), Some(&key)))
        .await;
    assert_eq!(
        (r.code(), r.field()),
        ("invalid_request".into(), "invoice.seq".into())
    );

    let huge = vec![b' '; 2 * 1024 * 1024 + 1];
    let r = a.call(with_key(huge, Some(&key))).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

    // None of that consumed the invoice.
    assert_eq!(a.submit(&env).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn integrity_failures() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let env = d.issue(&ordinary("3", "7"));

    // Signed by another key.
    let forger = DeviceKey::from_bytes(&[99; 32]);
    let forged = seal_invoice(&forger, env.invoice.clone());
    let r = a.submit(&forged).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "integrity".into(),
            "signature".into()
        )
    );

    // A hash that is not the invoice's.
    let mut bad_hash = env.clone();
    bad_hash.hash = "0".repeat(64);
    let r = a.submit(&bad_hash).await;
    assert_eq!((r.code(), r.field()), ("integrity".into(), "hash".into()));

    // An invoice changed after signing.
    let mut tampered = env.clone();
    tampered.invoice.total = "0.01".into();
    let r = a.submit(&tampered).await;
    assert_eq!(r.code(), "integrity");

    // Unknown device.
    let mut inv = env.invoice.clone();
    inv.device_id = uuid::Uuid::new_v4().to_string();
    let r = a.submit(&seal_invoice(&d.key, inv)).await;
    assert_eq!(
        (r.code(), r.field()),
        ("integrity".into(), "invoice.device_id".into())
    );

    // The real one still goes through: refusals leave the key free.
    let r = a.submit(&env).await;
    assert_eq!(r.status, StatusCode::CREATED);

    // seq already taken by another invoice.
    let mut again = d.build(&ordinary("1", "1"), None);
    again.seq = 1;
    again.prev_hash = kaipiao_core::ZERO_HASH.into();
    let r = a.submit(&seal_invoice(&d.key, again)).await;
    assert_eq!(
        (r.code(), r.field()),
        ("integrity".into(), "invoice.seq".into())
    );

    // Wrong prev_hash at head + 1.
    let mut wrong_prev = d.build(&ordinary("1", "1"), None);
    wrong_prev.prev_hash = "ab".repeat(32);
    let r = a.submit(&seal_invoice(&d.key, wrong_prev)).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "integrity".into(),
            "invoice.prev_hash".into()
        )
    );

    // A number outside every lease: beyond the range, and another device's prefix.
    let mut beyond = d.build(&ordinary("1", "1"), None);
    beyond.number = kaipiao_core::model::invoice_number(&d.leases[0].prefix, 5000);
    let r = a.submit(&seal_invoice(&d.key, beyond)).await;
    assert_eq!(
        (r.code(), r.field()),
        ("integrity".into(), "invoice.number".into())
    );
    let e = ready(&a, 2).await;
    let mut foreign = d.build(&ordinary("1", "1"), None);
    foreign.number = e.number(2);
    let r = a.submit(&seal_invoice(&d.key, foreign)).await;
    assert_eq!(
        (r.code(), r.field()),
        ("integrity".into(), "invoice.number".into())
    );

    // A number already used.
    let mut reused_number = d.build(&ordinary("1", "1"), None);
    reused_number.number = d.number(1);
    let r = a.submit(&seal_invoice(&d.key, reused_number)).await;
    assert_eq!(
        (r.code(), r.field()),
        ("integrity".into(), "invoice.number".into())
    );

    // After all that, the chain continues at seq 2.
    let next = d.issue(&ordinary("1", "1"));
    assert_eq!(next.invoice.seq, 2);
    assert_eq!(a.submit(&next).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn chain_gap_names_the_expected_seq() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let first = d.issue(&ordinary("1", "1"));
    let second = d.issue(&ordinary("1", "2"));
    let r = a.submit(&second).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "chain_gap".into())
    );
    assert_eq!(r.json()["error"]["expected_seq"], 1);
    // A stop verdict: signed by the authority about this very envelope (SPEC 10).
    let gap = check_verdict(
        &r.text(),
        &a.authority_key(),
        &second.invoice.id,
        &second.hash,
    )
    .expect("a signed chain_gap");
    assert_eq!(gap.error.expected_seq, Some(1));
    assert_eq!(a.submit(&first).await.status, StatusCode::CREATED);
    assert_eq!(a.submit(&second).await.status, StatusCode::CREATED);

    // 422 integrity (seq already taken) and idempotency_key_reused are signed too, and
    // about the envelope sent: not transferable to another invoice.
    let mut fork = d.build(&ordinary("1", "3"), None);
    fork.seq = 2;
    fork.prev_hash = first.hash.clone();
    let fork = d.seal(fork);
    let r = a.submit(&fork).await;
    assert_eq!(r.code(), "integrity");
    let verdict = check_verdict(&r.text(), &a.authority_key(), &fork.invoice.id, &fork.hash)
        .expect("a signed integrity verdict");
    assert_eq!(verdict.error.field, "invoice.seq");
    assert!(check_verdict(
        &r.text(),
        &a.authority_key(),
        &second.invoice.id,
        &fork.hash
    )
    .is_err());
    let mut reused = second.clone();
    reused.invoice.buyer.name = "另一家".into();
    let reused = d.seal(reused.invoice);
    let r = a.submit(&reused).await;
    assert_eq!(r.code(), "idempotency_key_reused");
    check_verdict(
        &r.text(),
        &a.authority_key(),
        &reused.invoice.id,
        &reused.hash,
    )
    .expect("a signed idempotency_key_reused");
    // Other refusals stay as SPEC 7 has them: no signature.
    let r = a
        .call(with_key(
            serde_json::to_vec(&first).unwrap(),
            Some("\"other\""),
        ))
        .await;
    assert_eq!(r.code(), "idempotency_key_mismatch");
    assert!(r.json().get("authority_signature").is_none());
}

/// SPEC 10: an invoice rejected as issued_in_future sets no reference for the next one,
/// so the device is not stuck behind it once its clock is right.
#[tokio::test]
async fn an_invoice_rejected_as_issued_in_future_holds_nothing_back() {
    let a = Authority::new();
    let mut d = ready(&a, 44).await;
    let mut future = d.build(&ordinary("1", "1"), None);
    future.issued_at = kaipiao_core::time::rfc3339(chrono::Utc::now() + chrono::Duration::hours(2));
    let r = a.submit(&d.seal(future)).await.json();
    assert_eq!(reasons(&r), ["issued_in_future"]);
    let r = a.submit(&d.issue(&ordinary("1", "1"))).await.json();
    assert_eq!(r["status"], "accepted", "{r}");
    // The reference is the accepted one now: going back before it is still refused.
    let mut back = d.build(&ordinary("1", "1"), None);
    back.issued_at =
        kaipiao_core::time::rfc3339(chrono::Utc::now() - chrono::Duration::seconds(120));
    let r = a.submit(&d.seal(back)).await.json();
    assert_eq!(reasons(&r), ["issued_at_backwards"], "{r}");
}

#[tokio::test]
async fn business_rules_reject_but_the_chain_advances() {
    let a = Authority::with(|c| c.single_invoice_cap = rust_decimal::Decimal::new(10_000, 2));
    let d = &mut ready(&a, 1).await;
    assert_eq!(d.leases[0].single_invoice_cap, "100.00");

    let over = d.issue(&ordinary("1", "100.01"));
    let r = a.submit(&over).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let receipt = r.json();
    verify_object(
        &a.authority_key(),
        RECEIPT_DOMAIN,
        &receipt,
        "authority_signature",
    )
    .unwrap();
    assert_eq!(receipt["status"], "rejected");
    assert_eq!(reasons(&receipt), ["single_invoice_cap"]);
    let reason = &receipt["reasons"][0];
    assert_eq!(reason["field"], "total_amount");
    assert!(reason["message"].as_str().unwrap().contains("0.01"));
    let code = receipt["authority_code"].as_str().unwrap();
    assert_eq!(code.len(), 20);

    let head = a
        .call(d.signed(
            Method::GET,
            &format!("/v1/devices/{}/head", d.id),
            Vec::new(),
        ))
        .await
        .json();
    assert_eq!(head["seq"], 1);

    // issued_at before the previous invoice's (an hour back is also before the lease
    // of its number was granted: both facts are reasons).
    let mut backwards = d.build(&ordinary("1", "1"), None);
    backwards.issued_at =
        kaipiao_core::time::rfc3339(chrono::Utc::now() - chrono::Duration::hours(1));
    let r = a.submit(&d.seal(backwards)).await;
    assert_eq!(
        reasons(&r.json()),
        ["issued_at_backwards", "issued_before_lease"]
    );

    // A seller other than the enrolled one.
    d.seller.name = "另一家公司".into();
    let r = a.submit(&d.issue(&ordinary("1", "1"))).await;
    assert_eq!(reasons(&r.json()), ["seller_mismatch"]);
    d.seller = seller();

    // A line whose tax is off (kaipiao-core's rules).
    let mut bad_tax = d.build(&ordinary("1", "10"), None);
    bad_tax.lines[0].tax = "5.00".into();
    let r = a.submit(&d.seal(bad_tax)).await;
    assert_eq!(r.json()["status"], "rejected");
    assert!(!reasons(&r.json()).is_empty());

    let ok = d.issue(&ordinary("1", "1"));
    assert_eq!(ok.invoice.seq, 5);
    let r = a.submit(&ok).await;
    assert_eq!(r.json()["status"], "accepted");

    // issued_at too far in the future (last: every later invoice would be behind it).
    let mut future = d.build(&ordinary("1", "1"), None);
    future.issued_at =
        kaipiao_core::time::rfc3339(chrono::Utc::now() + chrono::Duration::seconds(900));
    let r = a.submit(&d.seal(future)).await;
    assert_eq!(reasons(&r.json()), ["issued_in_future"]);
}

/// Issue 10, item 4: the authority checks the lease terms it can see. A device whose
/// clock is set back an hour issues its first invoice "before" its number's lease was
/// granted: rejected, naming the rule; within the allowed skew of 300 s it is accepted.
#[tokio::test]
async fn an_invoice_dated_before_its_lease_was_granted_is_rejected() {
    let a = Authority::new();
    let mut d = ready(&a, 41).await;
    let mut early = d.build(&ordinary("1", "1"), None);
    early.issued_at = kaipiao_core::time::rfc3339(chrono::Utc::now() - chrono::Duration::hours(1));
    let r = a.submit(&d.seal(early)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let receipt = r.json();
    assert_eq!(receipt["status"], "rejected");
    assert_eq!(reasons(&receipt), ["issued_before_lease"]);
    assert_eq!(receipt["reasons"][0]["field"], "issued_at");
    let message = receipt["reasons"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("granted") && message.contains("300"),
        "{message}"
    );

    let mut skewed = d.build(&ordinary("1", "1"), None);
    skewed.issued_at =
        kaipiao_core::time::rfc3339(chrono::Utc::now() - chrono::Duration::seconds(200));
    // 200 s before the grant is within the allowed skew (and after seq 1's issued_at).
    let r = a.submit(&d.seal(skewed)).await;
    assert_eq!(r.json()["status"], "accepted", "{}", r.json());
}

/// Issue 10, item 4: the offline window, recomputed at the authority. With a window of 0
/// hours, seq 2 issued while seq 1 (issued 10 s before it) had not reached the authority
/// is past the window; seq 3, issued after seq 2 was received, is fine.
#[tokio::test]
async fn the_offline_window_is_recomputed_from_the_chain_and_receipt_times() {
    let a = Authority::with(|c| c.offline_hours = 0);
    let mut d = ready(&a, 42).await;
    let now = chrono::Utc::now();
    let mut first = d.build(&ordinary("1", "1"), None);
    first.issued_at = kaipiao_core::time::rfc3339(now - chrono::Duration::seconds(15));
    let first = d.seal(first);
    let mut second = d.build(&ordinary("1", "1"), None);
    second.issued_at = kaipiao_core::time::rfc3339(now - chrono::Duration::seconds(5));
    let second = d.seal(second);
    assert_eq!(a.submit(&first).await.json()["status"], "accepted");
    let r = a.submit(&second).await.json();
    assert_eq!(reasons(&r), ["offline_hours_exceeded"], "{r}");
    assert_eq!(r["reasons"][0]["field"], "issued_at");
    let message = r["reasons"][0]["message"].as_str().unwrap();
    assert!(message.contains("seq 1"), "{message}");
    // Issued now: everything before it was received; the device was online.
    let r = a.submit(&d.issue(&ordinary("1", "1"))).await.json();
    assert_eq!(r["status"], "accepted", "{r}");
}

/// The offline amount cap, recomputed at the authority: two invoices of 10.00 issued
/// before either reached it total 20.00 against a cap of 15.00; the second is rejected.
/// Once they are received, the next one starts afresh.
#[tokio::test]
async fn the_offline_amount_cap_is_recomputed_from_the_chain() {
    let a = Authority::with(|c| c.offline_amount_cap = "15.00".parse().unwrap());
    let mut d = ready(&a, 43).await;
    let now = chrono::Utc::now();
    let mut first = d.build(&ordinary("1", "10"), None);
    first.issued_at = kaipiao_core::time::rfc3339(now - chrono::Duration::seconds(15));
    let first = d.seal(first);
    let mut second = d.build(&ordinary("1", "10"), None);
    second.issued_at = kaipiao_core::time::rfc3339(now - chrono::Duration::seconds(5));
    let second = d.seal(second);
    assert_eq!(a.submit(&first).await.json()["status"], "accepted");
    let r = a.submit(&second).await.json();
    assert_eq!(reasons(&r), ["offline_amount_exceeded"], "{r}");
    assert_eq!(r["reasons"][0]["field"], "total_amount");
    let message = r["reasons"][0]["message"].as_str().unwrap();
    // |total_amount| (before tax, as the issuer counts it): 2 x 10.00, over by 5.00.
    assert!(
        message.contains("20.00") && message.contains("5.00"),
        "{message}"
    );
    let r = a.submit(&d.issue(&ordinary("1", "10"))).await.json();
    assert_eq!(r["status"], "accepted", "{r}");
}

fn credit_draft(original_number: &str, quantity: &str) -> Draft {
    let mut line = one_line(quantity, "");
    line.unit_price = String::new();
    Draft {
        kind: "credit".into(),
        original: Some(original_number.into()),
        lines: vec![line],
        ..ordinary("1", "1")
    }
}

fn credit_of(original: &Envelope, prior: Vec<kaipiao_core::model::Invoice>) -> CreditContext {
    CreditContext {
        original: original.invoice.clone(),
        original_status: "pending".into(),
        prior_credits: prior,
    }
}

#[tokio::test]
async fn credit_notes_are_checked_against_the_original() {
    let a = Authority::with(|c| c.single_invoice_cap = rust_decimal::Decimal::new(100_000, 2));
    let d = &mut ready(&a, 1).await;

    // An accepted original can be credited, once.
    let original = d.issue(&ordinary("2", "10"));
    assert_eq!(a.submit(&original).await.json()["status"], "accepted");
    let ctx = credit_of(&original, vec![]);
    let credit = d.build(&credit_draft(&original.invoice.number, "-1"), Some(&ctx));
    let credit = d.seal(credit);
    let r = a.submit(&credit).await;
    assert_eq!(r.json()["status"], "accepted", "{:?}", r.json());
    // A credit of the whole quantity, built by a client that forgot the first credit:
    // the authority counts it.
    let again = d.build(&credit_draft(&original.invoice.number, "-2"), Some(&ctx));
    let r = a.submit(&d.seal(again)).await;
    assert_eq!(r.json()["status"], "rejected");
    assert!(
        reasons(&r.json()).contains(&"credit_exceeds_original".to_string()),
        "{:?}",
        r.json()
    );

    // A rejected original (over the cap) cannot be credited.
    let rejected = d.issue(&ordinary("1", "2000"));
    assert_eq!(a.submit(&rejected).await.json()["status"], "rejected");
    let ctx = credit_of(&rejected, vec![]);
    let credit = d.build(&credit_draft(&rejected.invoice.number, "-1"), Some(&ctx));
    let r = a.submit(&d.seal(credit)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["status"], "rejected");
    assert!(
        reasons(&r.json()).contains(&"original_rejected".to_string()),
        "{:?}",
        r.json()
    );

    // An original the authority has never seen (another device's) is unknown.
    let e = &mut ready(&a, 2).await;
    let theirs = e.issue(&ordinary("1", "10"));
    assert_eq!(a.submit(&theirs).await.status, StatusCode::CREATED);
    let ctx = credit_of(&theirs, vec![]);
    let credit = d.build(&credit_draft(&theirs.invoice.number, "-1"), Some(&ctx));
    let r = a.submit(&d.seal(credit)).await;
    assert_eq!(reasons(&r.json()), ["original_unknown"]);
}

#[tokio::test]
async fn batch_items_answer_as_if_sent_alone() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let e1 = d.issue(&ordinary("1", "1"));
    let e2 = d.issue(&ordinary("1", "2"));
    let e3 = d.issue(&ordinary("1", "3"));
    let e4 = d.issue(&ordinary("1", "4"));
    let item = |key: &str, env: &Envelope| json!({"idempotency_key": key, "envelope": env});
    let body = json!({"items": [
        item(&e1.invoice.id, &e1),
        item(&e1.invoice.id, &e1),
        item(&uuid::Uuid::now_v7().to_string(), &e2),
        item(&e2.invoice.id, &e2),
        item(&e4.invoice.id, &e4),
        {"idempotency_key": e3.invoice.id, "envelope": {"invoice": 1}},
        item("", &e3),
    ]});
    let r = a.post_json("/v1/invoices:batch", &body).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let results = v["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 400, 201, 409, 400, 400]);
    assert_eq!(results[0]["idempotency_key"], e1.invoice.id.as_str());
    assert_eq!(results[0]["body"], results[1]["body"]);
    assert_eq!(results[0]["body"]["status"], "accepted");
    verify_object(
        &a.authority_key(),
        RECEIPT_DOMAIN,
        &results[3]["body"],
        "authority_signature",
    )
    .unwrap();
    assert_eq!(
        results[2]["body"]["error"]["code"],
        "idempotency_key_mismatch"
    );
    assert_eq!(results[4]["body"]["error"]["code"], "chain_gap");
    assert_eq!(results[4]["body"]["error"]["expected_seq"], 3);
    assert_eq!(results[5]["body"]["error"]["code"], "invalid_request");
    assert_eq!(
        results[6]["body"]["error"]["code"],
        "idempotency_key_missing"
    );

    // Byte for byte what a lone submission gets.
    let alone = a.submit(&e1).await;
    assert_eq!(alone.headers["idempotent-replayed"], "true");
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(text.contains(std::str::from_utf8(&alone.body).unwrap()));

    let r = a
        .post_json("/v1/invoices:batch", &json!({"items": []}))
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::BAD_REQUEST,
            "invalid_request".into(),
            "items".into()
        )
    );
    let many: Vec<Value> = (0..501)
        .map(|_| json!({"idempotency_key": "x", "envelope": {}}))
        .collect();
    let r = a
        .post_json("/v1/invoices:batch", &json!({"items": many}))
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, "items".into())
    );
    let r = a
        .post_json("/v1/invoices:batch", &json!({"things": []}))
        .await;
    assert_eq!(r.code(), "invalid_request");

    // The batch limit is 16 MiB, not the 2 MiB of a single submission.
    let mut padded = serde_json::to_vec(&json!({"items": [item(&e3.invoice.id, &e3)]})).unwrap();
    let close = padded.pop().unwrap();
    padded.extend(std::iter::repeat_n(b' ', 3 * 1024 * 1024));
    padded.push(close);
    let r = a
        .call(
            Request::post("/v1/invoices:batch")
                .body(Body::from(padded))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["results"][0]["status"], 201);
    let r = a
        .call(
            Request::post("/v1/invoices:batch")
                .body(Body::from(vec![b' '; 16 * 1024 * 1024 + 1]))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
}

#[tokio::test]
async fn two_authorities_on_one_database_are_one_authority() {
    let a = Authority::new();
    let (b_state, b) = a.sibling();
    assert_eq!(
        b_state.authority_public_key(),
        a.state.authority_public_key()
    );
    let d = &mut ready(&a, 1).await;
    let e1 = d.issue(&ordinary("1", "1"));
    let e2 = d.issue(&ordinary("1", "2"));
    let first = a.submit(&e1).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let replay = call(&b, submission(&e1)).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(call(&b, submission(&e2)).await.status, StatusCode::CREATED);
    let head = a
        .call(d.signed(
            Method::GET,
            &format!("/v1/devices/{}/head", d.id),
            Vec::new(),
        ))
        .await
        .json();
    assert_eq!(head, json!({"seq": 2, "hash": e2.hash}));
}

#[tokio::test]
async fn a_key_in_flight_elsewhere_is_request_in_progress() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let env = d.issue(&ordinary("1", "1"));
    // Another process holds the key (its marker is in the shared database).
    let conn = rusqlite::Connection::open(a.db_path()).unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    conn.execute(
        "INSERT INTO in_flight (idempotency_key, owner, started_at_ms) VALUES (?1, 'other', ?2)",
        rusqlite::params![env.invoice.id, now_ms],
    )
    .unwrap();
    let r = a.submit(&env).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "request_in_progress".into())
    );
    // That process died: after 60 s its marker is stale and the key is taken over.
    conn.execute("UPDATE in_flight SET started_at_ms = ?1", [now_ms - 61_000])
        .unwrap();
    let r = a.submit(&env).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM in_flight", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_store_one_receipt() {
    let a = Authority::new();
    let (_, b) = a.sibling();
    let d = &mut ready(&a, 1).await;
    let env = d.issue(&ordinary("1", "1"));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = if i % 2 == 0 { a.app.clone() } else { b.clone() };
        let env = env.clone();
        tasks.push(tokio::spawn(
            async move { call(&app, submission(&env)).await },
        ));
    }
    let mut fresh = 0;
    let mut bodies = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                if r.headers.get("idempotent-replayed").is_none() {
                    fresh += 1;
                }
                bodies.insert(r.body.clone());
            }
            StatusCode::CONFLICT => assert_eq!(r.code(), "request_in_progress"),
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert_eq!(fresh, 1);
    assert_eq!(bodies.len(), 1);
}

#[tokio::test]
async fn submissions_are_rate_limited_by_the_envelope_device() {
    let a = Authority::with(|c| c.device_rate = Some(1.0));
    let d = &mut ready(&a, 1).await;
    // The lease request above used this device's token; wait for it to refill.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let env = d.issue(&ordinary("1", "1"));
    assert_eq!(a.submit(&env).await.status, StatusCode::CREATED);
    let r = a.submit(&env).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    assert!(r.headers.contains_key("retry-after"));
}

/// Issue 10 (for restore): a device reads back its own envelopes, exactly as it signed
/// them, with their receipts, page by page in chain order, and its leases; another device
/// is refused, and a bad query names its parameter.
#[tokio::test]
async fn a_device_reads_back_its_own_envelopes_and_leases() {
    let a = Authority::new();
    let d = &mut ready(&a, 45).await;
    let mut sent = Vec::new();
    for price in ["1", "2", "3"] {
        let env = d.issue(&ordinary("1", price));
        assert_eq!(a.submit(&env).await.status, StatusCode::CREATED);
        sent.push(env);
    }
    let path = format!("/v1/devices/{}/invoices?after_seq=1&limit=1", d.id);
    let page = a.call(d.signed(Method::GET, &path, Vec::new())).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let page = page.json();
    assert_eq!(page["head"]["seq"], 3);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["seq"], 2);
    let envelope: Envelope = serde_json::from_value(items[0]["envelope"].clone()).unwrap();
    assert_eq!(envelope, sent[1]);
    kaipiao_core::sign::verify_envelope(&d.key.public(), &envelope).unwrap();
    verify_object(
        &a.authority_key(),
        RECEIPT_DOMAIN,
        &items[0]["receipt"],
        "authority_signature",
    )
    .unwrap();
    assert_eq!(
        items[0]["receipt"]["invoice_id"],
        sent[1].invoice.id.as_str()
    );
    let all = format!("/v1/devices/{}/invoices", d.id);
    let all = a.call(d.signed(Method::GET, &all, Vec::new())).await.json();
    assert_eq!(all["items"].as_array().unwrap().len(), 3);

    let leases = format!("/v1/devices/{}/leases", d.id);
    let leases = a
        .call(d.signed(Method::GET, &leases, Vec::new()))
        .await
        .json();
    let leases = leases["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 1);
    let lease: kaipiao_core::Lease = serde_json::from_value(leases[0].clone()).unwrap();
    lease.verify(&a.authority_key()).unwrap();

    let bad = format!("/v1/devices/{}/invoices?limit=9999", d.id);
    let r = a.call(d.signed(Method::GET, &bad, Vec::new())).await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::BAD_REQUEST,
            "invalid_request".into(),
            "limit".into()
        )
    );
    let other = &mut ready(&a, 46).await;
    let theirs = format!("/v1/devices/{}/invoices", d.id);
    let r = a.call(other.signed(Method::GET, &theirs, Vec::new())).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
}
