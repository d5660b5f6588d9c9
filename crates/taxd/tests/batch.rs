//! The batch path: every item answered exactly as a lone submission would be, with one
//! transaction per batch — replays, bad signatures found among good ones, gaps, rejected
//! receipts that advance the chain, markers of other requests, server errors that keep
//! nothing, and two authorities on one database.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kaipiao_core::model::Envelope;
use kaipiao_core::sign::{seal_invoice, DeviceKey};
use kaipiao_testkit::authority::*;
use kaipiao_testkit::fixtures::office_supplies as ordinary;
use serde_json::{json, Value};

async fn ready(a: &Authority, secret: u8) -> Device {
    let mut d = a.enroll(secret).await;
    a.lease(&mut d).await;
    d
}

/// One item as a client sends it: the key and the envelope's bytes as they are.
struct Item {
    key: String,
    bytes: Vec<u8>,
}

fn item(e: &Envelope) -> Item {
    Item {
        key: e.invoice.id.clone(),
        bytes: serde_json::to_vec(e).unwrap(),
    }
}

fn keyed(key: &str, e: &Envelope) -> Item {
    Item {
        key: key.to_string(),
        bytes: serde_json::to_vec(e).unwrap(),
    }
}

/// The batch body with each envelope embedded byte for byte.
fn batch_request(items: &[Item]) -> Request<Body> {
    let mut body = b"{\"items\":[".to_vec();
    for (n, i) in items.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(
            format!(
                "{{\"idempotency_key\":{},\"envelope\":",
                serde_json::to_string(&i.key).unwrap()
            )
            .as_bytes(),
        );
        body.extend_from_slice(&i.bytes);
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    Request::post("/v1/invoices:batch")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn lone_request(i: &Item) -> Request<Body> {
    Request::post("/v1/invoices")
        .header("content-type", "application/json")
        .header(
            "Idempotency-Key",
            kaipiao_core::wire::idempotency_header(&i.key),
        )
        .body(Body::from(i.bytes.clone()))
        .unwrap()
}

/// `(status, body)` per item of a batch answer.
fn results(r: &Reply) -> Vec<(u64, Value)> {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["status"].as_u64().unwrap(), x["body"].clone()))
        .collect()
}

fn statuses(r: &Reply) -> Vec<u64> {
    results(r).into_iter().map(|(s, _)| s).collect()
}

/// A receipt without what is drawn afresh for each invoice (time, code, signature).
fn comparable(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        for k in ["received_at", "authority_code", "authority_signature"] {
            o.remove(k);
        }
    }
    b
}

/// An error body without what depends on the moment it was made: a signed verdict's
/// `decided_at` and the signature over it.
fn undated(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("authority_signature");
        if let Some(v) = o.get_mut("verdict").and_then(Value::as_object_mut) {
            v.remove("decided_at");
        }
    }
    b
}

async fn head(a: &Authority, d: &Device) -> Value {
    a.call(d.signed(
        Method::GET,
        &format!("/v1/devices/{}/head", d.id),
        Vec::new(),
    ))
    .await
    .json()
}

fn count(a: &Authority, sql: &str) -> i64 {
    rusqlite::Connection::open(a.db_path())
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// The same items sent one by one to an authority and as one batch to a copy of it
/// (same key, same devices, same leases) get the same answers, item for item.
#[tokio::test]
async fn a_batch_answers_every_item_as_a_lone_submission_would() {
    let adjust =
        |c: &mut taxd::Config| c.single_invoice_cap = rust_decimal::Decimal::new(10_000, 2);
    let a = Authority::with(adjust);
    let d = &mut ready(&a, 1).await;
    let e0 = d.issue(&ordinary("1", "1"));
    assert_eq!(a.submit(&e0).await.status, StatusCode::CREATED);
    // The copy: everything up to here, the authority key included.
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(a.db_path())
        .unwrap()
        .backup(
            rusqlite::DatabaseName::Main,
            dir.path().join("taxd.db"),
            None,
        )
        .unwrap();
    let mut config = taxd::Config::new(dir.path().join("taxd.db"));
    adjust(&mut config);
    let b = Authority::open_in(dir, config);
    assert_eq!(
        b.state.authority_public_key(),
        a.state.authority_public_key()
    );

    let e1 = d.issue(&ordinary("1", "2"));
    let e2 = d.issue(&ordinary("1", "3"));
    let over_cap = d.issue(&ordinary("1", "100.01"));
    let e4 = d.issue(&ordinary("1", "5"));
    let e5 = d.issue(&ordinary("1", "6"));
    let e6 = d.issue(&ordinary("1", "7"));
    let forged = seal_invoice(&DeviceKey::from_bytes(&[77; 32]), e2.invoice.clone());
    let mut bad_hash = e6.clone();
    bad_hash.hash = "0".repeat(64);
    let mut stranger = e6.invoice.clone();
    stranger.device_id = uuid::Uuid::new_v4().to_string();
    let stranger = seal_invoice(&d.key, stranger);
    let mut unreadable = e6.clone();
    unreadable.signature = "not base64!".into();
    let mut shape = item(&e6);
    shape.bytes = br#"{"invoice": {"id": 1}, "hash": "", "signature": ""}"#.to_vec();
    let items = vec![
        item(&e0),                      // replay of a receipt stored before
        item(&e1),                      // good
        item(&e1),                      // replay within the batch
        keyed(&e2.invoice.id, &forged), // another key's signature
        item(&e2),                      // good
        item(&over_cap),                // business rule: rejected, chain advances
        item(&e5),                      // ahead of the chain: gap
        item(&e4),                      // fills it
        item(&e5),                      // now in order
        item(&bad_hash),                // hash not the invoice's
        keyed(&e5.invoice.id, &e6),     // key is not invoice.id
        item(&stranger),                // unknown device
        item(&unreadable),              // signature not base64
        shape,                          // not an envelope
        keyed("", &e6),                 // no key
        item(&e6),                      // good
    ];

    let mut lone = Vec::new();
    for i in &items {
        let r = a.call(lone_request(i)).await;
        lone.push((r.status.as_u16() as u64, r.json()));
    }
    let together = results(&b.call(batch_request(&items)).await);
    assert_eq!(
        together.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [201, 201, 201, 422, 201, 201, 409, 201, 201, 422, 400, 422, 422, 400, 400, 201]
    );
    for (n, ((ls, lb), (bs, bb))) in lone.iter().zip(&together).enumerate() {
        assert_eq!(ls, bs, "item {n}: {lb} / {bb}");
        if *ls == 201 {
            assert_eq!(comparable(lb), comparable(bb), "item {n}");
        } else if n == 14 {
            // A missing key is named where it is missing: the header, or the item's field.
            assert_eq!(lb["error"]["code"], "idempotency_key_missing");
            assert_eq!(bb["error"]["code"], "idempotency_key_missing");
            assert_eq!(bb["error"]["field"], "idempotency_key");
        } else {
            // Word for word, but for when it was decided: a signed verdict carries its
            // decision time (and a signature over it), and the two calls may straddle a
            // second.
            assert_eq!(
                lb.get("authority_signature").is_some(),
                bb.get("authority_signature").is_some(),
                "item {n}: both signed or neither"
            );
            assert_eq!(
                undated(lb),
                undated(bb),
                "item {n}: the same error, word for word"
            );
        }
    }
    // The replay of a receipt stored before the copy is the very same receipt.
    assert_eq!(lone[0].1, together[0].1);
    // The replay inside the batch is the receipt the batch just made.
    assert_eq!(together[1].1, together[2].1);
    assert_eq!(together[5].1["status"], "rejected");
    assert_eq!(together[6].1["error"]["code"], "chain_gap");
    assert_eq!(together[6].1["error"]["expected_seq"], 5);
    assert_eq!(together[3].1["error"]["field"], "signature");
    assert_eq!(together[9].1["error"]["field"], "hash");
    assert_eq!(together[11].1["error"]["field"], "invoice.device_id");
    assert_eq!(head(&a, d).await, head(&b, d).await);
    assert_eq!(head(&b, d).await, json!({"seq": 7, "hash": e6.hash}));
    assert_eq!(count(&b, "SELECT count(*) FROM receipts"), 7);
    assert_eq!(count(&b, "SELECT count(*) FROM in_flight"), 0);

    // Lone submissions after the batch see what it stored.
    let again = b.submit(&e4).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.json(), together[7].1);
}

#[tokio::test]
async fn a_bad_signature_among_many_is_found_and_only_it_is_refused() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let other = &mut ready(&a, 2).await;
    let mine: Vec<Envelope> = (1..=10)
        .map(|i| d.issue(&ordinary("1", &i.to_string())))
        .collect();
    let theirs: Vec<Envelope> = (1..=3)
        .map(|i| other.issue(&ordinary("2", &i.to_string())))
        .collect();
    // Seq 4 carries a well-formed signature by the wrong key, so the batch check fails
    // and every item is checked alone.
    let forged = seal_invoice(&DeviceKey::from_bytes(&[66; 32]), mine[3].invoice.clone());
    let mut items: Vec<Item> = mine.iter().map(item).collect();
    items[3] = item(&forged);
    // Another device's invoices in the same batch stand on their own chain.
    items.extend(theirs.iter().map(item));
    let r = a.call(batch_request(&items)).await;
    let got = results(&r);
    assert_eq!(
        statuses(&r),
        [201, 201, 201, 422, 409, 409, 409, 409, 409, 409, 201, 201, 201]
    );
    assert_eq!(got[3].1["error"]["field"], "signature");
    for (_, body) in &got[4..10] {
        assert_eq!(body["error"]["code"], "chain_gap");
        assert_eq!(body["error"]["expected_seq"], 4);
    }
    assert_eq!(head(&a, d).await["seq"], 3);
    assert_eq!(head(&a, other).await["seq"], 3);

    // The real seq 4 and the rest: all good, checked together.
    let rest: Vec<Item> = mine.iter().map(item).collect();
    let r = a.call(batch_request(&rest)).await;
    assert_eq!(statuses(&r), [201; 10]);
    assert_eq!(head(&a, d).await, json!({"seq": 10, "hash": mine[9].hash}));
    assert_eq!(count(&a, "SELECT count(*) FROM receipts"), 13);
}

#[tokio::test]
async fn a_key_in_flight_elsewhere_holds_only_its_own_item() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let e: Vec<Envelope> = (1..=3)
        .map(|i| d.issue(&ordinary("1", &i.to_string())))
        .collect();
    let conn = rusqlite::Connection::open(a.db_path()).unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    conn.execute(
        "INSERT INTO in_flight (idempotency_key, owner, started_at_ms) VALUES (?1, 'other', ?2)",
        rusqlite::params![e[1].invoice.id, now_ms],
    )
    .unwrap();
    let items: Vec<Item> = e.iter().map(item).collect();
    let r = a.call(batch_request(&items)).await;
    let got = results(&r);
    assert_eq!(statuses(&r), [201, 409, 409]);
    assert_eq!(got[1].1["error"]["code"], "request_in_progress");
    assert_eq!(got[2].1["error"]["code"], "chain_gap");
    // The other request died: its marker goes stale and the batch takes the key over.
    conn.execute("UPDATE in_flight SET started_at_ms = ?1", [now_ms - 61_000])
        .unwrap();
    let r = a.call(batch_request(&items)).await;
    assert_eq!(statuses(&r), [201, 201, 201]);
    assert_eq!(count(&a, "SELECT count(*) FROM in_flight"), 0);
}

#[tokio::test]
async fn a_server_error_on_one_item_keeps_nothing_of_the_batch() {
    let a = Authority::new();
    let d = &mut ready(&a, 1).await;
    let e: Vec<Envelope> = (1..=3)
        .map(|i| d.issue(&ordinary("1", &i.to_string())))
        .collect();
    let conn = rusqlite::Connection::open(a.db_path()).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER disk_on_fire BEFORE INSERT ON receipts WHEN NEW.invoice_id = '{}'
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        e[1].invoice.id
    ))
    .unwrap();
    let items: Vec<Item> = e.iter().map(item).collect();
    let r = a.call(batch_request(&items)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::INTERNAL_SERVER_ERROR, "internal".into())
    );
    assert_eq!(head(&a, d).await["seq"], 0);
    assert_eq!(count(&a, "SELECT count(*) FROM receipts"), 0);

    conn.execute_batch("DROP TRIGGER disk_on_fire").unwrap();
    let r = a.call(batch_request(&items)).await;
    assert_eq!(statuses(&r), [201, 201, 201]);
    assert_eq!(head(&a, d).await["seq"], 3);
}

/// Two taxd on one database take overlapping batches at the same time: every invoice
/// gets exactly one receipt, and every answer for a key is that receipt or a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authorities_on_one_database_take_overlapping_batches() {
    let a = Authority::new();
    let (_, b) = a.sibling();
    let d = &mut ready(&a, 1).await;
    let all: Vec<Envelope> = (1..=60)
        .map(|i| d.issue(&ordinary("1", &i.to_string())))
        .collect();
    let mut tasks = Vec::new();
    for round in 0..6 {
        for (n, app) in [a.app.clone(), b.clone()].into_iter().enumerate() {
            // a: seq 1-40, b: seq 21-60, then wider and wider windows.
            let from = if n == 0 { 0 } else { 20 };
            let to = (from + 20 + round * 4).min(60);
            let items: Vec<Item> = all[from..to].iter().map(item).collect();
            tasks.push(tokio::spawn(async move {
                let r = call(&app, batch_request(&items)).await;
                (items, r)
            }));
        }
    }
    let mut receipts: std::collections::HashMap<String, Value> = Default::default();
    for t in tasks {
        let (items, r) = t.await.unwrap();
        for (i, (status, body)) in items.iter().zip(results(&r)) {
            match status {
                201 => {
                    let first = receipts.entry(i.key.clone()).or_insert(body.clone());
                    assert_eq!(*first, body, "one receipt per key");
                }
                409 => assert_eq!(body["error"]["code"], "chain_gap", "{body}"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    // Whatever is left goes through now, on either.
    let items: Vec<Item> = all.iter().map(item).collect();
    let r = call(&b, batch_request(&items)).await;
    assert_eq!(statuses(&r), [201; 60]);
    for (i, (_, body)) in items.iter().zip(results(&r)) {
        if let Some(first) = receipts.get(&i.key) {
            assert_eq!(*first, body);
        }
    }
    assert_eq!(count(&a, "SELECT count(*) FROM receipts"), 60);
    assert_eq!(count(&a, "SELECT count(DISTINCT number) FROM receipts"), 60);
    assert_eq!(head(&a, d).await, json!({"seq": 60, "hash": all[59].hash}));
}

/// A batch whose keys are all different has its receipts signed together once every item
/// is recorded (`receipt::sign_later`): each receipt verifies against the authority key,
/// each is stored as it was sent (the batch sent again replays the same bytes), none is
/// left unsigned in the database, and a rejected receipt in the middle is read by the
/// next items' rules before it is signed (their clock reference) without harm.
#[tokio::test]
async fn a_batch_signs_its_receipts_together_and_stores_them_as_sent() {
    let a = Authority::with(|c: &mut taxd::Config| {
        c.single_invoice_cap = rust_decimal::Decimal::new(10_000, 2)
    });
    let d = &mut ready(&a, 1).await;
    let over_cap = |n: usize| n % 7 == 3;
    let envelopes: Vec<Envelope> = (0..40)
        .map(|n| d.issue(&ordinary("1", if over_cap(n) { "100.01" } else { "2" })))
        .collect();
    let items: Vec<Item> = envelopes.iter().map(item).collect();
    let reply = a.call(batch_request(&items)).await;
    let first = results(&reply);
    let pinned = kaipiao_core::PublicKey::from_base64(&a.state.authority_public_key()).unwrap();
    for (n, (status, body)) in first.iter().enumerate() {
        assert_eq!(*status, 201, "item {n}: {body}");
        let (receipt, _) =
            kaipiao_core::wire::Receipt::verify_json(&body.to_string(), &pinned).unwrap();
        assert_eq!(receipt.invoice_id, envelopes[n].invoice.id);
        let want = if over_cap(n) { "rejected" } else { "accepted" };
        assert_eq!(receipt.status, want, "item {n}");
    }
    // Sent again: every item is a replay of the very receipt the batch made.
    let again = results(&a.call(batch_request(&items)).await);
    assert_eq!(again, first);
    // The stored bytes are the bytes that were sent.
    let sent: Value = reply.json();
    let stored: Vec<Vec<u8>> = {
        let conn = rusqlite::Connection::open(a.db_path()).unwrap();
        let mut stmt = conn
            .prepare("SELECT body FROM receipts ORDER BY seq")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(stored.len(), 40);
    let text = reply.text();
    for (n, bytes) in stored.iter().enumerate() {
        let raw: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(raw, sent["results"][n]["body"], "item {n}");
        assert!(
            text.contains(std::str::from_utf8(bytes).unwrap()),
            "item {n}: byte for byte"
        );
    }
    assert_eq!(
        count(
            &a,
            "SELECT count(*) FROM receipts WHERE CAST(body AS TEXT) LIKE '%\"authority_signature\":\"\"%'"
        ),
        0
    );
    assert_eq!(
        head(&a, d).await,
        json!({"seq": 40, "hash": envelopes[39].hash})
    );
}
