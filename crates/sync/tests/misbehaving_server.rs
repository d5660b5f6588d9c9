//! The sync engine against a scripted server that misbehaves in front of a real taxd:
//! forged receipts, garbage, timeouts, dropped answers, Retry-After, refusals. Every case
//! runs twice, one request per invoice (`single::`) and in batches (`batched::`, the
//! default), with the same expectations: a batch's items are handled exactly as if each
//! had been sent alone.

mod common;

use common::Taxd;
use kaipiao_core::sign::{sign_object, RECEIPT_DOMAIN};
use kaipiao_core::wire::{idempotency_header, seal_verdict, VerdictSubject, WireError};
use kaipiao_core::{Code, DeviceKey, Envelope};
use kaipiao_ledger::Status;
use kaipiao_sync::{sync_now, Progress, SyncOptions, SyncOutcome};
use kaipiao_testkit::fixtures::numbered_draft as draft;
use kaipiao_testkit::in_both_modes;
use kaipiao_testkit::ledger::Device;
use kaipiao_testkit::relay::*;
use kaipiao_testkit::scripted::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn no_progress(_: Progress) {}

/// Every wait of the run names `why`. (Whether there is a wait at all is up to the
/// jitter: a full-jitter draw close to zero resends at once.)
fn waits_say(events: &Events, why: &str) -> bool {
    events.all().iter().all(|p| match p {
        Progress::Retrying { reason, .. } => reason.contains(why),
        _ => true,
    })
}

/// A device enrolled with a real taxd, then pointed at `servers`.
async fn enrolled(taxd: &Taxd) -> Device {
    let dev = Device::new();
    dev.enroll(taxd).await;
    dev
}

in_both_modes!(
    a_receipt_that_does_not_verify_is_never_final,
    garbage_answers_are_retried_and_never_final,
    an_answer_lost_after_commit_is_recovered_by_resending_the_same_bytes,
    a_timeout_is_an_unknown_outcome_and_the_item_is_resent,
    retry_after_is_a_floor,
    a_retry_after_beyond_the_deadline_ends_the_run_at_once,
    an_unsigned_stop_verdict_is_ignored_and_the_run_fails_over,
    a_chain_gap_ahead_signed_by_another_key_is_ignored,
    a_signed_stop_from_the_authority_stops_the_queue,
    an_endpoint_that_does_not_know_the_device_is_skipped,
    a_head_that_differs_with_nothing_pending_is_reported,
);

/// A receipt for `envelope` (bytes as sent) signed by a key that is not the authority's.
fn forged(envelope: &[u8]) -> (u16, serde_json::Value) {
    let Ok(env) = serde_json::from_slice::<Envelope>(envelope) else {
        return (400, Act::error_body("invalid_request", json!({})));
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
        Ok(signed) => (201, signed),
        Err(_) => (500, json!({})),
    }
}

async fn a_receipt_that_does_not_verify_is_never_final(mode: Mode) {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    let issued = dev.issue(2);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                Act::each_item(req, forged)
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
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
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete);
    assert_eq!((report.accepted, report.pending), (2, 0));
}

async fn garbage_answers_are_retried_and_never_final(mode: Mode) {
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
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(3), &no_progress)
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
    let sent = vec![(
        issued[0].envelope.invoice.id.clone(),
        issued[0].envelope_json.as_bytes().to_vec(),
    )];
    for sub in fake.submissions() {
        assert_eq!(sub.items(), sent);
        if mode == Mode::Single {
            assert_eq!(
                sub.header("idempotency-key"),
                Some(idempotency_header(&issued[0].envelope.invoice.id).as_str())
            );
        }
        assert_eq!(sub.header("content-type"), Some("application/json"));
    }
}

async fn an_answer_lost_after_commit_is_recovered_by_resending_the_same_bytes(mode: Mode) {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    let issued = dev.issue(1);
    let first_submission = once_for(Req::is_submission);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            // The first submission is committed upstream, then the connection drops.
            let first = first_submission(req);
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
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(10), &sink)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.submitted, report.accepted), (1, 1));
    let subs = fake.submissions();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].body, subs[1].body);
    assert_eq!(
        subs[0].items(),
        [(
            issued[0].envelope.invoice.id.clone(),
            issued[0].envelope_json.as_bytes().to_vec()
        )]
    );
    assert_eq!(
        subs[0].header("idempotency-key"),
        subs[1].header("idempotency-key")
    );
    assert!(waits_say(&events, "outcome unknown"));
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
}

async fn a_timeout_is_an_unknown_outcome_and_the_item_is_resent(mode: Mode) {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(1);
    let first_submission = once_for(Req::is_submission);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            let first = first_submission(req);
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
        request_timeout: Duration::from_millis(500),
        ..mode.opts(10)
    };
    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &options, &sink)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(report.accepted, 1);
    assert!(waits_say(&events, "timed out"));
    assert_eq!(fake.submissions().len(), 2);
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

async fn retry_after_is_a_floor(mode: Mode) {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(1);
    let first_submission = once_for(Req::is_submission);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            let first = first_submission(req);
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
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(10), &sink)
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

async fn a_retry_after_beyond_the_deadline_ends_the_run_at_once(mode: Mode) {
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
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(30), &no_progress)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("overloaded")),
        "{report:?}"
    );
    assert_eq!(fake.submissions().len(), 1);
}

/// An endpoint that answers 422 `idempotency_key_reused` without the authority's
/// signature (SPEC 10: stop verdicts are signed) is a misbehaving endpoint, not the
/// authority: an alert, the run fails over to the next endpoint, and the queue is not
/// stopped. Alone, it ends the run for a transient reason (exit 3), nothing stopped or
/// dropped.
async fn an_unsigned_stop_verdict_is_ignored_and_the_run_fails_over(mode: Mode) {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    let issued = dev.issue(2);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                Act::each_item(req, |_| {
                    (422, Act::error_body("idempotency_key_reused", json!({})))
                })
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(&[fake.url.clone(), taxd.url.clone()])
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.accepted, report.pending), (2, 0));
    assert!(dev.ledger.queue_stopped().unwrap().is_none());
    let number = &issued[0].envelope.invoice.number;
    let alerts = dev.ledger.alerts().unwrap();
    assert!(
        alerts.iter().any(|a| a.code == "unsigned_verdict"
            && a.message.contains(&fake.url)
            && a.number.as_deref() == Some(number.as_str())),
        "{alerts:?}"
    );
    // Only the first was sent there: the endpoint is not used again in this run.
    assert_eq!(fake.submissions().len(), 1);

    // Alone, it cannot stop the shop either: exit 3, the queue runs, nothing dropped.
    dev.issue(1);
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("idempotency_key_reused")),
        "{report:?}"
    );
    assert_eq!(report.exit_code(), 3);
    assert_eq!(report.pending, 1);
    assert!(dev.ledger.queue_stopped().unwrap().is_none());
}

/// A `chain_gap` ahead of ours signed by a key that is not the pinned authority key, or
/// a genuine signed verdict about another invoice replayed, is no stop either.
async fn a_chain_gap_ahead_signed_by_another_key_is_ignored(mode: Mode) {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(1);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                Act::each_item(req, |envelope| {
                    let env: Envelope = serde_json::from_slice(envelope).unwrap();
                    let mut error = WireError::new(Code::ChainGap, "scripted gap", "invoice.seq");
                    error.error.expected_seq = Some(42);
                    let subject = VerdictSubject {
                        invoice_id: env.invoice.id.clone(),
                        hash: env.hash.clone(),
                        decided_at: "2026-12-02T10:00:00+00:00".into(),
                    };
                    let impostor = DeviceKey::from_bytes(&[9u8; 32]);
                    (409, seal_verdict(&impostor, &error, &subject).unwrap())
                })
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("does not verify")),
        "{report:?}"
    );
    assert!(dev.ledger.queue_stopped().unwrap().is_none());
    assert_eq!(dev.ledger.queue_state().unwrap().authority_head, None);
    assert!(dev
        .ledger
        .alerts()
        .unwrap()
        .iter()
        .any(|a| a.code == "unsigned_verdict"));
}

/// A genuine stop: an old copy of the ledger issues its own seq 1 after the real one was
/// filed, and taxd's signed 422 `integrity` about it checks out: the queue stops, with
/// its alert, and `queue_state` says so.
async fn a_signed_stop_from_the_authority_stops_the_queue(mode: Mode) {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    let old = dev.copy();
    dev.issue(2);
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.accepted, 2);
    old.issue(1);
    let report = sync_now(&old.ledger, &old.key, &mode.opts(5), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, SyncOutcome::Stopped(_)),
        "{report:?}"
    );
    assert!(old.ledger.queue_stopped().unwrap().is_some());
    let state = old.ledger.queue_state().unwrap();
    assert!(state.stopped && state.alert_id.is_some(), "{state:?}");
    assert_eq!(state.code.as_deref(), Some("integrity"));
}

async fn an_endpoint_that_does_not_know_the_device_is_skipped(mode: Mode) {
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
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
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
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, SyncOutcome::Stopped(why) if why.contains("unknown_device") || why.contains("bad_request_signature")),
        "{report:?}"
    );
    assert_eq!(report.pending, 1);
    assert!(dev.ledger.queue_stopped().unwrap().is_none());
}

async fn a_head_that_differs_with_nothing_pending_is_reported(mode: Mode) {
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
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(5), &no_progress)
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

/// A batch answer rewritten by `edit(results)` the first time, proxied as it is after.
fn edit_first_batch(edit: impl Fn(&mut Vec<serde_json::Value>) + Send + Sync + 'static) -> Script {
    let edit = Arc::new(edit);
    let first_batch = once_for(Req::is_batch);
    Arc::new(move |req: &Req, _| {
        if !first_batch(req) {
            return Act::Proxy;
        }
        let edit = edit.clone();
        Act::ProxyThen(Box::new(move |status, body| {
            let mut doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(results) = doc["results"].as_array_mut() {
                edit(results);
            }
            (status, doc.to_string())
        }))
    })
}

async fn batched_device(
    taxd: &Taxd,
    n: usize,
    script: Script,
) -> (Device, Vec<kaipiao_ledger::Issued>, Scripted) {
    let dev = enrolled(taxd).await;
    let issued = dev.issue(n);
    let fake = Scripted::start(Some(taxd.url.clone()), script).await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    (dev, issued, fake)
}

fn keys_of(req: &Req) -> Vec<String> {
    req.items().into_iter().map(|(k, _)| k).collect()
}

#[tokio::test]
async fn a_forged_receipt_inside_a_batch_is_refused_on_its_own_item() {
    let taxd = Taxd::start(&[]);
    let (dev, issued, fake) = batched_device(
        &taxd,
        4,
        edit_first_batch(|results| {
            // taxd's receipt for seq 2, re-signed with an impostor's key.
            let impostor = DeviceKey::from_bytes(&[9u8; 32]);
            let receipt = results[1]["body"].take();
            if let Ok(signed) =
                sign_object(&impostor, RECEIPT_DOMAIN, receipt, "authority_signature")
            {
                results[1]["body"] = signed;
            }
        }),
    )
    .await;
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    let SyncOutcome::Stopped(why) = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(why.contains(&issued[1].envelope.invoice.number), "{why}");
    assert_eq!(report.alerts.len(), 1, "{:?}", report.alerts);
    // Only that item stays pending; the genuine receipts of the batch are final.
    let status = |k: usize| dev.ledger.show(&issued[k].envelope.invoice.id).unwrap();
    assert_eq!(status(1).status, Status::Pending);
    assert!(status(1).receipt.is_none() && status(1).outbox.is_some());
    for k in [0, 2, 3] {
        assert_eq!(status(k).status, Status::Accepted, "seq {}", k + 1);
    }
    assert_eq!((report.accepted, report.pending), (3, 1));
    assert!(dev.ledger.queue_stopped().unwrap().is_none());
    assert_eq!(fake.submissions().len(), 1);

    // The authority holds seq 2: the next run gets its real receipt as a replay.
    let report = sync_now(&dev.ledger, &dev.key, &opts(5), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.accepted, report.pending), (1, 0));
    assert_eq!(
        keys_of(&fake.submissions()[1]),
        [issued[1].envelope.invoice.id.clone()]
    );
}

#[tokio::test]
async fn an_item_in_flight_elsewhere_is_sent_again_from_where_it_stands() {
    let taxd = Taxd::start(&[]);
    let (dev, issued, fake) = batched_device(
        &taxd,
        4,
        edit_first_batch(|results| {
            for r in results.iter_mut().skip(1) {
                r["status"] = json!(409);
                r["body"] = Act::error_body("request_in_progress", json!({}));
            }
        }),
    )
    .await;
    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &sink)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.accepted, report.pending), (4, 0));
    let subs = fake.submissions();
    assert_eq!(subs.len(), 2);
    let ids: Vec<String> = issued
        .iter()
        .map(|i| i.envelope.invoice.id.clone())
        .collect();
    assert_eq!(keys_of(&subs[0]), ids);
    // In seq order from the first item that had no receipt, after the policy's wait.
    assert_eq!(keys_of(&subs[1]), ids[1..]);
    assert!(waits_say(&events, "request_in_progress"));
}

#[tokio::test]
async fn batch_results_are_matched_by_key_and_a_missing_one_is_sent_again() {
    let taxd = Taxd::start(&[]);
    let (dev, issued, fake) = batched_device(
        &taxd,
        5,
        edit_first_batch(|results| {
            results.pop();
            results.reverse();
        }),
    )
    .await;
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.accepted, report.pending), (5, 0));
    let subs = fake.submissions();
    assert_eq!(subs.len(), 2);
    assert_eq!(keys_of(&subs[1]), [issued[4].envelope.invoice.id.clone()]);
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
}

/// The clerk issues while the run ends (here: while the authority's head is being read).
/// The new invoice is pending, not an invoice the authority lost: no head mismatch, no
/// resubmission, and the next run sends it.
#[tokio::test]
async fn an_invoice_issued_while_the_run_ends_is_left_for_the_next_run() {
    let taxd = Taxd::start(&[]);
    let dev = enrolled(&taxd).await;
    dev.issue(3);
    let clerk = std::sync::Mutex::new((
        kaipiao_ledger::Ledger::open(dev.dir.path()).unwrap(),
        DeviceKey::from_bytes(&dev.key.secret_bytes()),
    ));
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            if req.method == "GET" && req.path.ends_with("/head") {
                let (ledger, key) = &*clerk.lock().unwrap();
                ledger.issue(&draft(9), key, chrono::Utc::now()).unwrap();
            }
            Act::Proxy
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert!(report.head_mismatch.is_none() && report.alerts.is_empty());
    assert_eq!((report.accepted, report.pending), (3, 1));
    assert_eq!(fake.submissions().len(), 1, "no resubmission");

    dev.ledger
        .set_servers(std::slice::from_ref(&taxd.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.accepted, report.pending), (1, 0));
}
