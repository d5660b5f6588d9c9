//! Failover between two real taxd processes on one `--db` (two endpoints of one
//! authority): the primary dies, the backup takes over within seconds, the primary comes
//! back and traffic returns to it after its breaker's half-open probe. Nothing is lost or
//! duplicated, and each server's `--request-log` shows who got what. Run one request per
//! invoice and in batches (the default).

mod common;

use common::Taxd;
use kaipiao_core::wire::Head;
use kaipiao_ledger::Status;
use kaipiao_sync::{sync_now, Progress, SyncOutcome};
use kaipiao_testkit::in_both_modes;
use kaipiao_testkit::ledger::Device;
use kaipiao_testkit::relay::{signed_get, Mode};
use std::path::Path;
use std::time::{Duration, Instant};

fn no_progress(_: Progress) {}

/// Invoice submissions in a request log, as (status) per line.
fn submissions(log: &Path) -> Vec<u16> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["method"] == "POST"
                && (v["path"] == "/v1/invoices" || v["path"] == "/v1/invoices:batch")
        })
        .map(|v| v["status"].as_u64().unwrap_or(0) as u16)
        .collect()
}

in_both_modes!(primary_down_backup_takes_over_then_traffic_returns_to_the_primary);

/// What the log shows for `n` invoices that all went through: n answers 201 one by one,
/// or one 200 for the batch.
fn answered(mode: Mode, n: usize) -> Vec<u16> {
    match mode {
        Mode::Single => vec![201; n],
        Mode::Batched => vec![200],
    }
}

async fn primary_down_backup_takes_over_then_traffic_returns_to_the_primary(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("authority.db");
    let (primary_log, backup_log) = (
        dir.path().join("primary.log"),
        dir.path().join("backup.log"),
    );
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let (p_log, b_log) = (arg(&primary_log), arg(&backup_log));
    let mut primary = Taxd::start_at(&db, "127.0.0.1:0", &["--request-log", &p_log]);
    let backup = Taxd::start_at(&db, "127.0.0.1:0", &["--request-log", &b_log]);
    let dev = Device::new();
    dev.enroll(&primary).await;
    dev.ledger
        .set_servers(&[primary.url.clone(), backup.url.clone()])
        .unwrap();

    // Both up: everything goes to the primary.
    dev.issue(3);
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(submissions(&primary_log), answered(mode, 3));
    assert!(submissions(&backup_log).is_empty());

    // The primary dies: the backup takes over within seconds.
    primary.stop();
    dev.issue(6);
    let started = Instant::now();
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(10), &no_progress)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!((report.accepted, report.pending), (6, 0));
    assert!(took < Duration::from_secs(5), "failover took {took:?}");
    assert_eq!(submissions(&backup_log), answered(mode, 6));

    // The primary comes back where it was. Its breaker opened (five failures in a row),
    // so the next run still uses the backup; after the cool-down (at most 5 s) the
    // half-open probe finds the primary up and traffic returns to it.
    let listen = primary.url.trim_start_matches("http://").to_string();
    let primary = Taxd::start_at(&db, &listen, &["--request-log", &p_log]);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    dev.issue(2);
    let report = sync_now(&dev.ledger, &dev.key, &mode.opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    let mut primary_saw = answered(mode, 3);
    primary_saw.extend(answered(mode, 2));
    assert_eq!(
        submissions(&primary_log),
        primary_saw,
        "back on the primary"
    );
    assert_eq!(submissions(&backup_log), answered(mode, 6));

    // Nothing lost, nothing duplicated: every invoice is final with the one receipt the
    // authority holds for it, and the authority's chain is exactly ours.
    let head = dev.ledger.head().unwrap();
    assert_eq!(head.seq, 11);
    for server in [&primary, &backup] {
        let (status, body) = signed_get(
            &server.url,
            &format!("/v1/devices/{}/head", dev.device_id()),
            &dev,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_str::<Head>(&body).unwrap(), head);
    }
    for seq in 1..=11u64 {
        let (a, b) = dev.ledger.envelope_at(seq).unwrap().unwrap();
        let id = if a.starts_with('{') { b } else { a };
        let record = dev.ledger.show(&id).unwrap();
        assert_eq!(record.status, Status::Accepted);
        let (status, body) = signed_get(&backup.url, &format!("/v1/invoices/{id}"), &dev).await;
        assert_eq!(status, 200, "{body}");
        let theirs: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(record.receipt, Some(theirs), "one receipt per invoice");
    }
}
