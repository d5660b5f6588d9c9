//! The outage record kept by sync runs and health probes against a real taxd: an outage
//! opens at the first request no endpoint answered and ends at the first success; a
//! refusal for overload (429, 503 `overloaded`) is an answer, not an outage, while any
//! other 5xx counts; failing over to a backup that answers is not an outage.

mod common;

use common::Taxd;
use kaipiao_sync::{probe_health, sync_now, Progress, SyncOutcome};
use kaipiao_testkit::in_both_modes;
use kaipiao_testkit::ledger::Device;
use kaipiao_testkit::relay::{opts, Events, Mode};
use kaipiao_testkit::scripted::*;
use kaipiao_testkit::taxd::closed_port_url;
use serde_json::json;
use std::sync::Arc;

fn no_progress(_: Progress) {}

in_both_modes!(an_outage_runs_from_the_first_unanswered_request_to_the_first_success);

async fn an_outage_runs_from_the_first_unanswered_request_to_the_first_success(mode: Mode) {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let before = dev.issue(1);
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert!(dev.ledger.outages().unwrap().is_empty());

    taxd.faults(json!({"outage": true})).await;
    let caught = dev.issue(2);
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(2), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, SyncOutcome::Transient(_)),
        "{report:?}"
    );
    let current = dev.ledger.current_outage().unwrap().expect("an outage");
    assert_eq!(current.failed_endpoint, taxd.url);
    assert!(current.reason.contains("503 outage"), "{}", current.reason);
    assert!(current.failed_attempts >= 1);
    // Issued offline before the failure was noticed: caught by the outage.
    assert_eq!(current.invoices_issued, 2);
    assert_eq!(
        current.first_number.as_deref(),
        Some(caught[0].envelope.invoice.number.as_str())
    );
    let attempts_after_first_run = current.failed_attempts;

    // Issued during it: marked at issuance. Another failed run counts.
    let during = dev.issue(1);
    sync_now(&dev.ledger, &dev.key, &mode.opts(1), &no_progress)
        .await
        .unwrap();
    let current = dev.ledger.current_outage().unwrap().expect("still current");
    assert!(current.failed_attempts > attempts_after_first_run);
    assert_eq!(current.invoices_issued, 3);
    assert_eq!(
        current.last_number.as_deref(),
        Some(during[0].envelope.invoice.number.as_str())
    );

    // Back: the first success ends it.
    taxd.faults(json!({"outage": false})).await;
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(dev.ledger.current_outage().unwrap(), None);
    let after = dev.issue(1);
    let all = dev.ledger.outages().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].ended_by.as_deref(), Some(taxd.url.as_str()));
    assert!(all[0].ended_at.as_deref() >= Some(all[0].started_at.as_str()));
    assert_eq!(all[0].invoices_issued, 3);
    let marked = |n: &str| dev.ledger.show(n).unwrap().issued_during_outage;
    assert_eq!(marked(&before[0].envelope.invoice.number), None);
    assert_eq!(marked(&caught[1].envelope.invoice.number), Some(all[0].id));
    assert_eq!(marked(&after[0].envelope.invoice.number), None);
}

#[tokio::test]
async fn a_refusal_for_overload_is_an_answer_but_any_other_503_is_an_outage() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(2);
    let limited = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|req: &Req, _| {
            if req.is_submission() {
                Act::Reply {
                    status: 429,
                    headers: vec![("retry-after".into(), "1".into())],
                    body: Act::error_body("rate_limited", json!({})).to_string(),
                }
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&limited.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(2), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, SyncOutcome::Transient(_)),
        "{report:?}"
    );
    assert!(report.overloaded, "{report:?}");
    assert!(!limited.submissions().is_empty());
    assert!(
        dev.ledger.outages().unwrap().is_empty(),
        "a 429 is the authority answering"
    );

    // Every request refused with 503 overloaded, the head's too.
    let overloaded = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|_: &Req, _| Act::error(503, "overloaded", json!({}))),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&overloaded.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(2), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("503 overloaded")),
        "{report:?}"
    );
    assert!(report.overloaded, "{report:?}");
    assert!(!overloaded.submissions().is_empty());
    assert!(
        dev.ledger.outages().unwrap().is_empty(),
        "a 503 overloaded is the authority answering"
    );
    // A health probe refused for overload says so, and records nothing either.
    let answers = probe_health(&dev.ledger, std::slice::from_ref(&overloaded.url), &opts(2))
        .await
        .unwrap();
    assert!(
        matches!(answers.as_slice(), [(_, Err(e))] if e.is_overload_refusal()),
        "{answers:?}"
    );
    assert!(dev.ledger.outages().unwrap().is_empty());

    // Any other 503 is the authority failing to serve: an outage. (Asked by a probe: the
    // retry budget of this device is spent by now, so a run would wait without asking.)
    let unavailable = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|_: &Req, _| Act::error(503, "unavailable", json!({}))),
    )
    .await;
    let answers = probe_health(
        &dev.ledger,
        std::slice::from_ref(&unavailable.url),
        &opts(2),
    )
    .await
    .unwrap();
    assert!(
        matches!(answers.as_slice(), [(_, Err(e))] if !e.is_overload_refusal()),
        "{answers:?}"
    );
    let current = dev.ledger.current_outage().unwrap().expect("an outage");
    assert_eq!(current.failed_endpoint, unavailable.url);
    assert!(
        current.reason.contains("503 unavailable"),
        "{}",
        current.reason
    );
    // Both invoices were issued before the authority last answered (the refusals for
    // overload): not caught by this outage. What is issued now is.
    assert_eq!(current.invoices_issued, 0);
    dev.issue(1);
    let current = dev.ledger.current_outage().unwrap().expect("an outage");
    assert_eq!(current.invoices_issued, 1);
}

#[tokio::test]
async fn failing_over_to_a_backup_is_not_an_outage_but_losing_both_is() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let dead = closed_port_url();
    dev.ledger
        .set_servers(&[dead.clone(), taxd.url.clone()])
        .unwrap();
    dev.issue(2);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert!(dev.ledger.outages().unwrap().is_empty());

    let also_dead = closed_port_url();
    dev.ledger
        .set_servers(&[dead.clone(), also_dead.clone()])
        .unwrap();
    dev.issue(1);
    let report = sync_now(&dev.ledger, &dev.key, &opts(2), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, SyncOutcome::Transient(_)),
        "{report:?}"
    );
    let current = dev.ledger.current_outage().unwrap().expect("an outage");
    // It started with the first failure, on the primary, and counts both endpoints'.
    assert_eq!(current.failed_endpoint, dead);
    assert!(current.failed_attempts >= 2, "{current:?}");
    assert!(
        current.reason.contains("could not connect"),
        "{}",
        current.reason
    );
    assert_eq!(current.invoices_issued, 1);
}

#[tokio::test]
async fn a_primary_refusing_for_overload_beside_a_dead_backup_is_no_outage() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let busy = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(|_: &Req, _| Act::error(503, "overloaded", json!({}))),
    )
    .await;
    let dead = closed_port_url();
    dev.ledger
        .set_servers(&[busy.url.clone(), dead.clone()])
        .unwrap();
    dev.issue(1);
    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &opts(2), &sink)
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, SyncOutcome::Transient(_)),
        "{report:?}"
    );
    assert!(!busy.submissions().is_empty());
    // The backup failed, but the authority answered on the primary: no outage, and the
    // primary is up (busy), the backup down.
    assert!(dev.ledger.outages().unwrap().is_empty());
    let all = events.all();
    assert!(all
        .iter()
        .any(|p| matches!(p, Progress::Endpoint { endpoint, up: true } if *endpoint == busy.url)));
    assert!(!all
        .iter()
        .any(|p| matches!(p, Progress::Endpoint { endpoint, up: false } if *endpoint == busy.url)));
    assert!(all
        .iter()
        .any(|p| matches!(p, Progress::Endpoint { endpoint, up: false } if *endpoint == dead)));
}

#[tokio::test]
async fn health_probes_open_count_and_end_an_outage() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let servers = vec![taxd.url.clone()];

    let answers = probe_health(&dev.ledger, &servers, &opts(5)).await.unwrap();
    assert!(matches!(answers.as_slice(), [(_, Ok(_))]), "{answers:?}");
    assert!(dev.ledger.outages().unwrap().is_empty());

    taxd.faults(json!({"outage": true})).await;
    for _ in 0..2 {
        let answers = probe_health(&dev.ledger, &servers, &opts(5)).await.unwrap();
        assert!(matches!(answers.as_slice(), [(_, Err(_))]), "{answers:?}");
    }
    let current = dev.ledger.current_outage().unwrap().expect("an outage");
    assert_eq!(current.failed_attempts, 2);
    assert_eq!(current.failed_endpoint, taxd.url);
    // What the app issues meanwhile is marked.
    dev.issue(1);

    taxd.faults(json!({"outage": false})).await;
    let answers = probe_health(&dev.ledger, &servers, &opts(5)).await.unwrap();
    assert!(matches!(answers.as_slice(), [(_, Ok(_))]), "{answers:?}");
    let all = dev.ledger.outages().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].ended_by.as_deref(), Some(taxd.url.as_str()));
    assert_eq!(all[0].invoices_issued, 1);

    // Servers that are not addresses are refused before anything is recorded.
    let bad = probe_health(&dev.ledger, &["ftp://x".to_string()], &opts(5)).await;
    assert!(bad.is_err());
    assert_eq!(dev.ledger.outages().unwrap().len(), 1);
}
