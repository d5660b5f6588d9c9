//! The sync engine against a scripted server that misbehaves in front of a real taxd:
//! forged receipts, garbage, timeouts, dropped answers, Retry-After, refusals.

mod common;

use common::*;
use kaipiao_core::sign::{sign_object, RECEIPT_DOMAIN};
use kaipiao_core::wire::idempotency_header;
use kaipiao_core::{DeviceKey, Envelope};
use kaipiao_ledger::Status;
use kaipiao_sync::{sync_now, Progress, SyncOptions, SyncOutcome};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn no_progress(_: Progress) {}

/// A device enrolled with a real taxd, then pointed at `servers`.
async fn enrolled(taxd: &Taxd) -> Device {
    let dev = Device::new();
    dev.enroll(taxd).await;
    dev
}

fn forged_receipt(req: &Req) -> Act {
    let Ok(env) = serde_json::from_slice::<Envelope>(&req.body) else {
        return Act::error(400, "invalid_request", json!({}));
    };
    let receipt = json!({
        "invoice_id": env.invoice.id,
        "number": env.invoice.number,
        "hash": env.hash,
        "status": "accepted",
        "reasons": [],
        "authority_code": "01234567890123456789",
        "received_at": "2026-01-01T00:00:00Z",
        "authority_signature": "",
    });
    let impostor = DeviceKey::from_bytes(&[9u8; 32]);
    match sign_object(&impostor, RECEIPT_DOMAIN, receipt, "authority_signature") {
        Ok(signed) => Act::json(201, signed),
        Err(_) => Act::Drop,
    }
}

#[tokio::test]
async fn a_receipt_that_does_not_verify_is_never_final() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    let issued = dev.issue(2);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                forged_receipt(req)
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    let SyncOutcome::Stopped(why) = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(why.contains(&issued[0].envelope.invoice.number), "{why}");
    assert_eq!(report.outcome.exit_code(), 4);
    assert_eq!((report.accepted, report.pending), (0, 2));
    assert_eq!(report.alerts.len(), 1, "{:?}", report.alerts);
    let rec = dev.ledger.show(&issued[0].envelope.invoice.id).unwrap();
    assert_eq!(rec.status, Status::Pending);
    assert!(rec.receipt.is_none());
    assert!(rec.outbox.is_some());
    // Not a chain problem: the queue is not stopped, the next run tries again.
    assert!(dev.ledger.queue_stopped().unwrap().is_none());

    dev.ledger
        .set_servers(std::slice::from_ref(&taxd.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete);
    assert_eq!((report.accepted, report.pending), (2, 0));
}

#[tokio::test]
async fn garbage_answers_are_retried_and_never_final() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    let issued = dev.issue(1);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, n| {
            if !req.is_submission() {
                return Act::Proxy;
            }
            match n % 5 {
                0 => Act::Reply {
                    status: 201,
                    headers: vec![],
                    body: "not json at all".into(),
                },
                1 => Act::json(201, json!({"invoice_id": 5, "status": ["accepted"]})),
                2 => Act::Reply {
                    status: 200,
                    headers: vec![("content-type".into(), "text/html".into())],
                    body: "<html>captive portal</html>".into(),
                },
                3 => Act::Reply {
                    status: 302,
                    headers: vec![("location".into(), "http://example.invalid/".into())],
                    body: String::new(),
                },
                _ => Act::Reply {
                    status: 500,
                    headers: vec![("retry-after".into(), "soon-ish".into())],
                    body: "\u{0}\u{1}".into(),
                },
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(3), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, SyncOutcome::Transient(_)),
        "{report:?}"
    );
    assert_eq!((report.accepted, report.pending), (0, 1));
    let rec = dev.ledger.show(&issued[0].envelope.invoice.id).unwrap();
    assert_eq!(rec.status, Status::Pending);
    let outbox = rec.outbox.unwrap();
    assert!(outbox.attempts >= 2, "{outbox:?}");
    assert!(fake.submissions().len() >= 2);
    // Every attempt carried the same key and the same stored bytes.
    for sub in fake.submissions() {
        assert_eq!(
            sub.header("idempotency-key"),
            Some(idempotency_header(&issued[0].envelope.invoice.id).as_str())
        );
        assert_eq!(sub.body, issued[0].envelope_json.as_bytes());
        assert_eq!(sub.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn an_answer_lost_after_commit_is_recovered_by_resending_the_same_bytes() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    let issued = dev.issue(1);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            // The first submission is committed upstream, then the connection drops.
            static FIRST: std::sync::Once = std::sync::Once::new();
            let mut first = false;
            if req.is_submission() {
                FIRST.call_once(|| first = true);
            }
            if first {
                Act::ProxyThenDrop
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &sink)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.submitted, report.accepted), (1, 1));
    let subs = fake.submissions();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].body, subs[1].body);
    assert_eq!(subs[0].body, issued[0].envelope_json.as_bytes());
    assert_eq!(
        subs[0].header("idempotency-key"),
        subs[1].header("idempotency-key")
    );
    assert!(events.all().iter().any(
        |p| matches!(p, Progress::Retrying { reason, .. } if reason.contains("outcome unknown"))
    ));
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
}

#[tokio::test]
async fn a_timeout_is_an_unknown_outcome_and_the_item_is_resent() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(1);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            static FIRST: std::sync::Once = std::sync::Once::new();
            let mut first = false;
            if req.is_submission() {
                FIRST.call_once(|| first = true);
            }
            if first {
                // Arrives upstream long after the client gave up on it.
                Act::ProxyAfter(Duration::from_millis(1500))
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let options = SyncOptions {
        give_up_after: Duration::from_secs(10),
        request_timeout: Duration::from_millis(500),
        ..SyncOptions::default()
    };
    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &options, &sink)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(report.accepted, 1);
    assert!(events
        .all()
        .iter()
        .any(|p| matches!(p, Progress::Retrying { reason, .. } if reason.contains("timed out"))));
    // The late copy reaches the authority after the receipt: it is a replay, not a second invoice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = signed_get(
        &taxd.url,
        &format!("/v1/devices/{}/head", dev.device_id()),
        &dev,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<kaipiao_core::wire::Head>(&body).unwrap(),
        dev.ledger.head().unwrap()
    );
}

#[tokio::test]
async fn retry_after_is_a_floor() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(1);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            static FIRST: std::sync::Once = std::sync::Once::new();
            let mut first = false;
            if req.is_submission() {
                FIRST.call_once(|| first = true);
            }
            if first {
                let mut act = Act::error(429, "rate_limited", json!({}));
                if let Act::Reply { headers, .. } = &mut act {
                    headers.push(("retry-after".into(), "2".into()));
                }
                act
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &sink)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    let subs = fake.submissions();
    assert_eq!(subs.len(), 2);
    let gap = subs[1].at.duration_since(subs[0].at);
    assert!(gap >= Duration::from_millis(1900), "resent after {gap:?}");
    assert!(events.all().iter().any(
        |p| matches!(p, Progress::Retrying { after, .. } if *after >= Duration::from_millis(1900))
    ));
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_ends_the_run_at_once() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(1);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                let mut act = Act::error(503, "overloaded", json!({}));
                if let Act::Reply { headers, .. } = &mut act {
                    headers.push(("retry-after".into(), "99999999999999999999".into()));
                }
                act
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let started = std::time::Instant::now();
    let report = sync_now(&dev.ledger, &dev.key, &opts(30), &no_progress)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("overloaded")),
        "{report:?}"
    );
    assert_eq!(fake.submissions().len(), 1);
}

#[tokio::test]
async fn key_reuse_stops_the_queue_with_diagnostics() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    let issued = dev.issue(2);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                Act::error(422, "idempotency_key_reused", json!({}))
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    let SyncOutcome::Stopped(why) = &report.outcome else {
        panic!("{report:?}")
    };
    let number = &issued[0].envelope.invoice.number;
    assert!(
        why.contains(number.as_str()) && why.contains("seq 1"),
        "{why}"
    );
    assert!(why.contains("idempotency_key_reused"), "{why}");
    assert_eq!(report.pending, 2);
    let stopped = dev.ledger.queue_stopped().unwrap().unwrap();
    assert!(stopped.contains(number.as_str()));
    // Only the first was tried: the chain is never skipped.
    assert_eq!(fake.submissions().len(), 1);
}

#[tokio::test]
async fn a_chain_gap_ahead_of_ours_is_an_integrity_stop() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(1);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                Act::error(409, "chain_gap", json!({"expected_seq": 42}))
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, SyncOutcome::Stopped(why) if why.contains("42")),
        "{report:?}"
    );
    assert!(dev.ledger.queue_stopped().unwrap().is_some());
}

#[tokio::test]
async fn an_endpoint_that_does_not_know_the_device_is_skipped() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(2);
    let stranger = Scripted::start(
        None,
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                Act::error(401, "unknown_device", json!({}))
            } else {
                Act::error(401, "bad_request_signature", json!({}))
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(&[stranger.url.clone(), taxd.url.clone()])
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(report.accepted, 2);
    assert!(!report.alerts.is_empty());

    // With no other endpoint the run stops for a human; nothing is dropped.
    dev.issue(1);
    dev.ledger
        .set_servers(std::slice::from_ref(&stranger.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, SyncOutcome::Stopped(why) if why.contains("unknown_device") || why.contains("bad_request_signature")),
        "{report:?}"
    );
    assert_eq!(report.pending, 1);
    assert!(dev.ledger.queue_stopped().unwrap().is_none());
}

#[tokio::test]
async fn a_head_that_differs_with_nothing_pending_is_reported() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(1);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.method == "GET" && req.path.ends_with("/head") {
                Act::json(200, json!({"seq": 7, "hash": "ab".repeat(32)}))
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    assert_eq!((report.accepted, report.pending), (1, 0));
    let mismatch = report.head_mismatch.clone().expect("head mismatch");
    assert!(
        mismatch.contains("seq 7") && mismatch.contains("seq 1"),
        "{mismatch}"
    );
    assert!(
        matches!(report.outcome, SyncOutcome::Stopped(_)),
        "{report:?}"
    );
    assert_eq!(report.alerts.len(), 1);
    assert_eq!(report.server_head.map(|h| h.seq), Some(7));
}
