//! The receipt faults: `wrong_signing_key` and `malformed_receipt` change the receipts
//! sent (lone answers and their replays, batch items, GET /v1/invoices/{id}), never the
//! receipt stored, so once they are off a replay returns the good receipt.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kaipiao_core::model::Envelope;
use kaipiao_core::sign::{verify_object, RECEIPT_DOMAIN};
use kaipiao_testkit::authority::*;
use kaipiao_testkit::fixtures::office_supplies as ordinary;
use serde_json::{json, Value};
use taxd::Faults;

async fn ready(a: &Authority, secret: u8) -> Device {
    let mut d = a.enroll(secret).await;
    a.lease(&mut d).await;
    d
}

fn verifies(a: &Authority, receipt: &Value) -> bool {
    verify_object(
        &a.authority_key(),
        RECEIPT_DOMAIN,
        receipt,
        "authority_signature",
    )
    .is_ok()
}

fn set(a: &Authority, wrong_signing_key: bool, malformed_receipt: f64) {
    a.state.set_faults(Faults {
        wrong_signing_key,
        malformed_receipt,
        ..a.state.faults()
    });
}

async fn stored(a: &Authority, d: &Device, env: &Envelope) -> Reply {
    a.call(d.signed(
        Method::GET,
        &format!("/v1/invoices/{}", env.invoice.id),
        Vec::new(),
    ))
    .await
}

async fn head_seq(a: &Authority, d: &Device) -> u64 {
    let r = a
        .call(d.signed(
            Method::GET,
            &format!("/v1/devices/{}/head", d.id),
            Vec::new(),
        ))
        .await;
    r.json()["seq"].as_u64().unwrap()
}

fn batch(envs: &[&Envelope]) -> Request<Body> {
    let items: Vec<Value> = envs
        .iter()
        .map(|e| json!({"idempotency_key": e.invoice.id, "envelope": e}))
        .collect();
    Request::post("/v1/invoices:batch")
        .header("content-type", "application/json")
        .body(Body::from(json!({ "items": items }).to_string()))
        .unwrap()
}

/// Every item of a batch answer: (status, body).
fn items(r: &Reply) -> Vec<(u64, Value)> {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["status"].as_u64().unwrap(), x["body"].clone()))
        .collect()
}

#[tokio::test]
async fn flags_set_the_receipt_faults() {
    let a = Authority::with(|c| {
        c.fault_wrong_signing_key = true;
        c.fault_malformed_receipt = 0.25;
    });
    let f = a.get("/admin/faults").await.json();
    assert_eq!(f["wrong_signing_key"], true, "{f}");
    assert_eq!(f["malformed_receipt"], 0.25, "{f}");
}

#[tokio::test]
async fn a_wrong_signing_key_is_only_on_the_wire() {
    let a = Authority::with(|c| c.fault_wrong_signing_key = true);
    let d = &mut ready(&a, 1).await;
    let env = d.issue(&ordinary("1", "10"));

    let first = a.submit(&env).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let sent = first.json();
    assert!(!verifies(&a, &sent), "signed by another key: {sent}");
    assert_eq!(sent["invoice_id"], env.invoice.id.as_str());
    assert_eq!(sent["hash"], env.hash.as_str());
    assert_eq!(sent["status"], "accepted");
    assert_eq!(head_seq(&a, d).await, 1, "committed all the same");
    // The replay and the look-up are signed wrongly too, with the same key each time.
    let again = a.submit(&env).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert!(!verifies(&a, &again.json()));
    assert_eq!(again.json(), sent);
    let looked_up = stored(&a, d, &env).await;
    assert_eq!(looked_up.status, StatusCode::OK);
    assert_eq!(looked_up.json(), sent);
    // A batch item too.
    let env2 = d.issue(&ordinary("1", "20"));
    let r = a.call(batch(&[&env, &env2])).await;
    for (status, body) in items(&r) {
        assert_eq!(status, 201);
        assert!(body.is_object() && !verifies(&a, &body), "{body}");
    }
    // Leases are not receipts: still the authority's signature.
    let lease = a.lease(d).await;
    assert!(lease.verify(&a.authority_key()).is_ok());

    // Off: the stored receipts were good all along, and are what a replay sends.
    set(&a, false, 0.0);
    let good = a.submit(&env).await;
    assert_eq!(good.headers["idempotent-replayed"], "true");
    let good = good.json();
    assert!(verifies(&a, &good), "{good}");
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("authority_signature");
        v
    };
    assert_eq!(strip(&good), strip(&sent), "only the signature differed");
    assert_eq!(stored(&a, d, &env).await.json(), good);
    let r = a.call(batch(&[&env, &env2])).await;
    for (status, body) in items(&r) {
        assert_eq!(status, 201);
        assert!(verifies(&a, &body), "{body}");
    }
    assert_eq!(head_seq(&a, d).await, 2);
}

#[tokio::test]
async fn a_malformed_receipt_is_only_on_the_wire() {
    let a = Authority::with(|c| c.fault_malformed_receipt = 1.0);
    let d = &mut ready(&a, 1).await;
    let env = d.issue(&ordinary("1", "10"));

    let first = a.submit(&env).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(
        serde_json::from_slice::<Value>(&first.body).is_err(),
        "broken JSON: {:?}",
        String::from_utf8_lossy(&first.body)
    );
    assert!(!first.body.is_empty());
    assert_eq!(
        head_seq(&a, d).await,
        1,
        "committed before the body was broken"
    );
    // A replay cannot slip past it.
    let again = a.submit(&env).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert!(serde_json::from_slice::<Value>(&again.body).is_err());
    assert!(serde_json::from_slice::<Value>(&stored(&a, d, &env).await.body).is_err());

    // In a batch the answer stays JSON; the item's body is a string, not a receipt.
    let env2 = d.issue(&ordinary("1", "20"));
    let r = a.call(batch(&[&env, &env2])).await;
    for (status, body) in items(&r) {
        assert_eq!(status, 201);
        let text = body.as_str().unwrap_or_else(|| panic!("a string: {body}"));
        assert!(text.starts_with('{'), "{text}");
        assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
    }
    assert_eq!(head_seq(&a, d).await, 2);
    // Refusals are not receipts: they are sent as they are.
    let _held_back = d.issue(&ordinary("1", "1"));
    let r = a.submit(&d.issue(&ordinary("1", "2"))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "seq 4 before 3: a gap");
    assert_eq!(r.code(), "chain_gap");

    set(&a, false, 0.0);
    let good = a.submit(&env).await;
    assert_eq!(good.headers["idempotent-replayed"], "true");
    assert!(verifies(&a, &good.json()));
    assert_eq!(stored(&a, d, &env).await.body, good.body);
    let r = a.call(batch(&[&env, &env2])).await;
    for (status, body) in items(&r) {
        assert_eq!(status, 201);
        assert!(verifies(&a, &body), "{body}");
    }
}
