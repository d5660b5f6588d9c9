//! Reconciliation against a real taxd (and a scripted server in front of it): every
//! invoice accounted for, receipts picked up for invoices pending here, a receipt whose
//! bytes differ, Retry-After, an authority restored from an older backup, and a ledger
//! that lacks what the authority holds.

mod common;

use common::Taxd;
use kaipiao_ledger::Status;
use kaipiao_sync::{
    reconcile, sync_now, Progress, ReconcileProgress, ReconcileReport, SeqRange, SyncOutcome,
};
use kaipiao_testkit::ledger::Device;
use kaipiao_testkit::relay::opts;
use kaipiao_testkit::scripted::*;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn no_progress(_: Progress) {}

/// Reconciles `dev`, collecting the progress events.
async fn reconciled(dev: &Device, give_up_secs: u64) -> (ReconcileReport, Vec<ReconcileProgress>) {
    let events: Arc<Mutex<Vec<ReconcileProgress>>> = Arc::default();
    let sink = {
        let events = events.clone();
        move |p: ReconcileProgress| events.lock().unwrap().push(p)
    };
    let report = reconcile(&dev.ledger, &dev.key, &opts(give_up_secs), &sink)
        .await
        .unwrap();
    let events = events.lock().unwrap().clone();
    (report, events)
}

async fn synced(dev: &Device) {
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
}

fn is_receipt_get(req: &Req) -> bool {
    req.method == "GET" && req.path.starts_with("/v1/invoices/")
}

/// Copies a taxd database with its WAL (taxd stopped).
fn copy_db(from: &Path, to_dir: &Path) -> std::path::PathBuf {
    let name = from.file_name().unwrap().to_str().unwrap().to_string();
    for suffix in ["", "-wal", "-shm"] {
        let f = from.with_file_name(format!("{name}{suffix}"));
        if f.exists() {
            std::fs::copy(&f, to_dir.join(format!("{name}{suffix}"))).unwrap();
        }
    }
    to_dir.join(name)
}

#[tokio::test]
async fn everything_filed_is_accounted_for_and_the_unfiled_is_named() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(3);
    synced(&dev).await;
    let unfiled = dev.issue(1);

    let (report, events) = reconciled(&dev, 10).await;
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(report.exit_code(), 0);
    assert_eq!(
        (report.total, report.checked, report.accounted_for),
        (4, 4, 3)
    );
    assert!(report.mismatched.is_empty() && report.refiled.is_empty());
    assert_eq!(report.missing_at_authority.len(), 1, "{report:?}");
    let m = &report.missing_at_authority[0];
    assert_eq!(
        (m.seq, m.number.as_str(), m.status, m.healed),
        (
            4,
            unfiled[0].envelope.invoice.number.as_str(),
            Status::Pending,
            false
        )
    );
    assert_eq!(report.missing_locally, None);
    assert_eq!((report.healed, report.received, report.pending), (0, 0, 1));
    assert_eq!(report.server_head.as_ref().map(|h| h.seq), Some(3));
    assert!(report.alerts.is_empty(), "{:?}", report.alerts);
    assert!(events.contains(&ReconcileProgress::Checked {
        checked: 4,
        total: 4
    }));
    // The report's JSON shape is what the CLI prints.
    let doc = serde_json::to_value(&report).unwrap();
    for field in [
        "checked",
        "total",
        "accounted_for",
        "mismatched",
        "missing_at_authority",
        "missing_locally",
        "healed",
        "received",
        "refiled",
        "pending",
        "server_head",
    ] {
        assert!(doc.get(field).is_some(), "{field} missing in {doc}");
    }
    assert_eq!(doc["missing_at_authority"][0]["status"], json!("pending"));
    // Nothing was sent but reads.
    assert_eq!(dev.pending(), 1);
}

#[tokio::test]
async fn receipts_the_authority_holds_for_invoices_pending_here_are_stored() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(3);
    // A copy of the ledger from before the sync: the authority has receipts it lacks.
    let copy = dev.copy();
    synced(&dev).await;
    assert_eq!(copy.pending(), 3);

    let (report, events) = reconciled(&copy, 10).await;
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(
        (report.checked, report.accounted_for, report.received),
        (3, 3, 3)
    );
    assert!(report.missing_at_authority.is_empty() && report.mismatched.is_empty());
    assert_eq!(report.pending, 0);
    let stored: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ReconcileProgress::Sync(Progress::Submitted { number, .. }) => Some(number.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 3, "{events:?}");
    for i in &issued {
        let here = copy.ledger.show(&i.envelope.invoice.id).unwrap();
        let there = dev.ledger.show(&i.envelope.invoice.id).unwrap();
        assert_eq!(here.status, Status::Accepted);
        assert!(here.outbox.is_none());
        assert_eq!(
            here.receipt, there.receipt,
            "the authority's receipt, as sync stored it"
        );
    }
    copy.ledger.verify().unwrap();
}

#[tokio::test]
async fn a_receipt_whose_bytes_differ_is_a_mismatch_with_an_alert() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(3);
    synced(&dev).await;
    let target = format!("/v1/invoices/{}", issued[1].envelope.invoice.id);
    let before = dev.ledger.show(&issued[1].envelope.invoice.id).unwrap();
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            if req.method == "GET" && req.path == target {
                Act::ProxyThen(Box::new(|status, body| {
                    let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    v["authority_code"] = json!("12345678901234567890");
                    (status, v.to_string())
                }))
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();

    let (report, _) = reconciled(&dev, 10).await;
    let SyncOutcome::Stopped(why) = &report.outcome else {
        panic!("{report:?}")
    };
    assert_eq!(report.exit_code(), 4);
    assert!(why.contains(&issued[1].envelope.invoice.number), "{why}");
    assert_eq!((report.checked, report.accounted_for), (3, 2));
    assert_eq!(report.mismatched.len(), 1, "{report:?}");
    let m = &report.mismatched[0];
    assert_eq!((m.seq, &m.number), (2, &issued[1].envelope.invoice.number));
    assert!(m.reason.contains("signature"), "{}", m.reason);
    // An alert for a human, naming the invoice; the stored receipt is untouched.
    assert_eq!(report.alerts.len(), 1, "{:?}", report.alerts);
    let alerts = dev.ledger.alerts().unwrap();
    assert!(
        alerts.iter().any(|a| a.code == "receipt_mismatch"
            && a.message.contains(&issued[1].envelope.invoice.number)),
        "{alerts:?}"
    );
    let after = dev.ledger.show(&issued[1].envelope.invoice.id).unwrap();
    assert_eq!(after.receipt, before.receipt);
    assert_eq!(after.status, Status::Accepted);
}

#[tokio::test]
async fn a_bad_receipt_for_an_invoice_pending_here_is_never_stored() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(2);
    let copy = dev.copy();
    synced(&dev).await;
    let target = format!("/v1/invoices/{}", issued[0].envelope.invoice.id);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            if req.method == "GET" && req.path == target {
                Act::ProxyThen(Box::new(|status, body| {
                    let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    v["status"] = json!("rejected");
                    (status, v.to_string())
                }))
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    copy.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();

    let (report, _) = reconciled(&copy, 10).await;
    assert_eq!(report.exit_code(), 4, "{report:?}");
    assert_eq!((report.received, report.pending), (1, 1));
    assert_eq!(report.mismatched.len(), 1);
    assert_eq!(report.mismatched[0].seq, 1);
    let rec = copy.ledger.show(&issued[0].envelope.invoice.id).unwrap();
    assert_eq!(rec.status, Status::Pending);
    assert!(rec.receipt.is_none());
    assert!(rec.outbox.unwrap().last_error.is_some());
    assert!(copy
        .ledger
        .alerts()
        .unwrap()
        .iter()
        .any(|a| a.code == "bad_receipt"));
}

#[tokio::test]
async fn a_503_with_retry_after_is_waited_out() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(3);
    synced(&dev).await;
    let target = format!("/v1/invoices/{}", issued[1].envelope.invoice.id);
    let refused = AtomicBool::new(false);
    let path = target.clone();
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            if req.method == "GET" && req.path == path && !refused.swap(true, Ordering::SeqCst) {
                let mut act = Act::error(503, "overloaded", json!({}));
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

    let (report, events) = reconciled(&dev, 10).await;
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.checked, report.accounted_for), (3, 3));
    let asks: Vec<Instant> = fake
        .requests()
        .iter()
        .filter(|r| r.path == target)
        .map(|r| r.at)
        .collect();
    assert_eq!(asks.len(), 2, "asked once, refused, asked again");
    let gap = asks[1].duration_since(asks[0]);
    assert!(
        gap >= Duration::from_millis(1900),
        "asked again after {gap:?}"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        ReconcileProgress::Sync(Progress::Retrying { after, .. }) if *after >= Duration::from_millis(1500)
    )));
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_is_transient_with_what_was_checked() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(3);
    synced(&dev).await;
    let target = format!("/v1/invoices/{}", issued[2].envelope.invoice.id);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            if req.method == "GET" && req.path == target {
                let mut act = Act::error(503, "overloaded", json!({}));
                if let Act::Reply { headers, .. } = &mut act {
                    headers.push(("retry-after".into(), "600".into()));
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

    let started = Instant::now();
    let (report, _) = reconciled(&dev, 30).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("overloaded")),
        "{report:?}"
    );
    assert_eq!(report.exit_code(), 3);
    assert_eq!(
        (report.total, report.checked, report.accounted_for),
        (3, 2, 2)
    );

    // Each invoice asked about once: the refused one waits for its Retry-After.
    let asked = fake.requests().iter().filter(|r| is_receipt_get(r)).count();
    assert_eq!(asked, 3);

    // The Retry-After is kept in the data directory: a second run sends nothing.
    let seen = fake.requests().len();
    let (again, _) = reconciled(&dev, 30).await;
    assert!(
        matches!(again.outcome, SyncOutcome::Transient(_)),
        "{again:?}"
    );
    assert_eq!(again.checked, 0);
    assert_eq!(fake.requests().len(), seen);
    assert!(dev.dir.path().join("sync-policy.json").exists());
}

#[tokio::test]
async fn an_authority_restored_from_an_older_backup_is_healed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("taxd.db");
    let mut taxd = Taxd::start_on(&db, &[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(2);
    synced(&dev).await;
    taxd.stop();
    let backup = dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    let backup_db = copy_db(&db, &backup);
    let taxd = Taxd::start_on(&db, &[]);
    dev.ledger
        .set_servers(std::slice::from_ref(&taxd.url))
        .unwrap();
    dev.issue(3);
    synced(&dev).await;
    drop(taxd);

    let restored = Taxd::start_on(&backup_db, &[]);
    dev.ledger
        .set_servers(std::slice::from_ref(&restored.url))
        .unwrap();
    let (report, _) = reconciled(&dev, 10).await;
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    let missing: Vec<(u64, Status, bool)> = report
        .missing_at_authority
        .iter()
        .map(|m| (m.seq, m.status, m.healed))
        .collect();
    assert_eq!(
        missing,
        vec![
            (3, Status::Accepted, true),
            (4, Status::Accepted, true),
            (5, Status::Accepted, true)
        ]
    );
    assert_eq!(
        (report.checked, report.accounted_for, report.healed),
        (5, 5, 3)
    );
    assert!(report.mismatched.is_empty());
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
    // Filed again: the authority's codes are new, the stored receipts stay.
    assert_eq!(
        report.refiled.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );

    let (again, _) = reconciled(&dev, 10).await;
    assert_eq!(again.outcome, SyncOutcome::Complete, "{again:?}");
    assert_eq!(
        (again.checked, again.accounted_for, again.healed),
        (5, 5, 0)
    );
    assert!(again.missing_at_authority.is_empty() && again.mismatched.is_empty());
    assert_eq!(again.refiled.len(), 3);
    dev.ledger.verify().unwrap();
}

#[tokio::test]
async fn invoices_the_authority_holds_that_this_ledger_lacks_are_reported() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(2);
    synced(&dev).await;
    // An old copy of the ledger, restored from a backup, then the original files two more.
    let old = dev.copy();
    dev.issue(2);
    synced(&dev).await;

    let (report, _) = reconciled(&old, 10).await;
    assert_eq!(report.exit_code(), 4, "{report:?}");
    assert_eq!(
        report.missing_locally,
        Some(SeqRange {
            from_seq: 3,
            to_seq: 4
        })
    );
    assert_eq!((report.checked, report.accounted_for), (2, 2));
    assert!(old
        .ledger
        .alerts()
        .unwrap()
        .iter()
        .any(|a| a.code == "head_mismatch"));
    // Nothing was resubmitted or changed at the authority.
    assert_eq!(report.server_head.map(|h| h.seq), Some(4));
}

/// A lookup answered with something no receipt lookup should get (here a proxy's 403)
/// does not end the reconciliation: that invoice is a mismatch, the others are checked.
#[tokio::test]
async fn an_unexpected_answer_to_one_lookup_is_a_mismatch_and_the_rest_go_on() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(3);
    synced(&dev).await;
    let target = format!("/v1/invoices/{}", issued[0].envelope.invoice.id);
    let fake = Scripted::start(
        Some(taxd.url.clone()),
        Arc::new(move |req: &Req, _| {
            if req.method == "GET" && req.path == target {
                Act::error(403, "forbidden", json!({}))
            } else {
                Act::Proxy
            }
        }),
    )
    .await;
    dev.ledger
        .set_servers(std::slice::from_ref(&fake.url))
        .unwrap();

    let (report, _) = reconciled(&dev, 10).await;
    assert_eq!(report.exit_code(), 4, "{report:?}");
    assert_eq!((report.checked, report.accounted_for), (3, 2), "{report:?}");
    assert_eq!(report.mismatched.len(), 1, "{report:?}");
    let m = &report.mismatched[0];
    assert_eq!((m.seq, &m.number), (1, &issued[0].envelope.invoice.number));
    assert!(m.reason.contains("forbidden"), "{}", m.reason);
    assert_eq!(dev.ledger.status(chrono::Utc::now()).unwrap().pending, 0);
}
