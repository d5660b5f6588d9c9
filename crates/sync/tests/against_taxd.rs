//! The sync engine against a real `taxd` process on loopback, with a real ledger.

mod common;

use common::Taxd;
use kaipiao_core::wire::Head;
use kaipiao_ledger::Status;
use kaipiao_sync::{sync_now, top_up_leases, Progress, SyncError, SyncOptions, SyncOutcome};
use kaipiao_testkit::ledger::Device;
use kaipiao_testkit::relay::{opts, signed_get, Events};
use kaipiao_testkit::taxd::{closed_port_url, TOKEN};
use std::time::{Duration, Instant};

fn no_progress(_: Progress) {}

#[tokio::test]
async fn enrol_pins_the_authority_key_and_takes_a_lease() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    let out = dev.enroll(&taxd).await;

    let local = dev.ledger.device().unwrap().unwrap();
    assert_eq!(local.device_id.as_deref(), Some(out.device_id.as_str()));
    assert_eq!(
        local.authority_public_key.as_deref(),
        Some(out.authority_public_key.as_str())
    );
    assert_eq!(local.servers, vec![taxd.url.clone()]);
    let authority: serde_json::Value = reqwest::get(format!("{}/v1/authority", taxd.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(authority["public_key"], out.authority_public_key.as_str());

    let leases = dev.ledger.leases().unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].lease, out.lease);
    assert_eq!(out.lease.device_id, out.device_id);

    // Plenty of numbers left: no top-up.
    assert!(
        top_up_leases(&dev.ledger, &dev.key, &SyncOptions::default())
            .await
            .unwrap()
            .is_none()
    );

    // Enrolling again is refused without touching the authority.
    let again = kaipiao_sync::enroll(
        &dev.ledger,
        &dev.key,
        std::slice::from_ref(&taxd.url),
        TOKEN,
        &SyncOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(again.code(), "already_enrolled");
    assert_eq!(again.exit_code(), 2);
}

#[tokio::test]
async fn a_wrong_enrolment_token_is_refused_and_nothing_is_recorded() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    let err = kaipiao_sync::enroll(
        &dev.ledger,
        &dev.key,
        std::slice::from_ref(&taxd.url),
        "not-the-token",
        &SyncOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SyncError::Authority { status: 403, code, .. } if code == "enrollment_token_invalid"),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 2);
    assert!(dev.ledger.device().unwrap().unwrap().device_id.is_none());
}

#[tokio::test]
async fn small_leases_are_topped_up() {
    let taxd = Taxd::start(&["--lease-size", "10"]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(8); // 2 of 10 left: not under 20% yet
    assert!(
        top_up_leases(&dev.ledger, &dev.key, &SyncOptions::default())
            .await
            .unwrap()
            .is_none()
    );
    dev.issue(1); // 1 of 10 left
    let lease = top_up_leases(&dev.ledger, &dev.key, &SyncOptions::default())
        .await
        .unwrap()
        .expect("a new lease");
    let leases = dev.ledger.leases().unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[1].lease, lease);

    // sync tops up by itself when numbers run short: 11 left, 10 issued.
    dev.issue(10);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete);
    assert_eq!(report.accepted, 19);
    assert_eq!(dev.ledger.leases().unwrap().len(), 3);
}

#[tokio::test]
async fn three_invoices_are_accepted_and_the_heads_match() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(3);
    assert_eq!(dev.pending(), 3);

    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &SyncOptions::default(), &sink)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(
        (
            report.submitted,
            report.accepted,
            report.rejected,
            report.pending
        ),
        (3, 3, 0, 0)
    );
    let local = dev.ledger.head().unwrap();
    assert_eq!(local.seq, 3);
    assert_eq!(report.server_head.as_ref(), Some(&local));
    assert!(report.head_mismatch.is_none());
    assert!(report.alerts.is_empty());
    assert!(dev
        .ledger
        .status(chrono::Utc::now())
        .unwrap()
        .last_sync_at
        .is_some());

    let submitted: Vec<(String, String)> = events
        .all()
        .into_iter()
        .filter_map(|p| match p {
            Progress::Submitted { number, status } => Some((number, status)),
            _ => None,
        })
        .collect();
    let numbers: Vec<(String, String)> = issued
        .iter()
        .map(|i| (i.envelope.invoice.number.clone(), "accepted".to_string()))
        .collect();
    assert_eq!(submitted, numbers);
    assert!(events
        .all()
        .iter()
        .any(|p| matches!(p, Progress::Connecting { endpoint } if *endpoint == taxd.url)));

    // Each stored receipt is the one the authority keeps for the invoice.
    for i in &issued {
        let rec = dev.ledger.show(&i.envelope.invoice.id).unwrap();
        assert_eq!(rec.status, Status::Accepted);
        let (status, body) = signed_get(
            &taxd.url,
            &format!("/v1/invoices/{}", i.envelope.invoice.id),
            &dev,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let server: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(rec.receipt.as_ref(), Some(&server));
    }

    // Nothing left: a second run is a no-op that still compares heads.
    let again = sync_now(&dev.ledger, &dev.key, &SyncOptions::default(), &no_progress)
        .await
        .unwrap();
    assert_eq!(again.outcome, SyncOutcome::Complete);
    assert_eq!((again.submitted, again.pending), (0, 0));
    assert_eq!(again.server_head, Some(local));

    // The report prints as SPEC 9 asks.
    let json = serde_json::to_value(&again).unwrap();
    assert_eq!(json["server_head"]["seq"], 3);
    assert!(json.get("outcome").is_none());
}

#[tokio::test]
async fn batches_are_handled_item_by_item() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(7);
    let options = SyncOptions {
        batch_size: 3,
        ..SyncOptions::default()
    };
    let report = sync_now(&dev.ledger, &dev.key, &options, &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(
        (report.submitted, report.accepted, report.pending),
        (7, 7, 0)
    );
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
}

/// One share of a recovery plan per run (`max_items`, what the app's background loop
/// does after an outage): exactly that many go, in seq order, the run ends complete as
/// far as it was asked without reading the head, and the next run goes on from there.
#[tokio::test]
async fn a_run_limited_to_a_share_sends_exactly_that_share() {
    for batch_size in [0, 3, kaipiao_sync::DEFAULT_BATCH_SIZE] {
        let taxd = Taxd::start(&[]);
        let dev = Device::new();
        dev.enroll(&taxd).await;
        let issued = dev.issue(12);
        let share = |n: usize| SyncOptions {
            batch_size,
            background: true,
            max_items: Some(n),
            ..SyncOptions::default()
        };
        let first = sync_now(&dev.ledger, &dev.key, &share(5), &no_progress)
            .await
            .unwrap();
        assert_eq!(first.outcome, SyncOutcome::Complete, "{first:?}");
        assert_eq!(
            (first.submitted, first.pending),
            (5, 7),
            "batch {batch_size}"
        );
        assert_eq!(first.server_head, None, "a share leaves the heads alone");
        assert!(first.head_mismatch.is_none() && first.alerts.is_empty());
        // The five oldest went, nothing else.
        for (i, inv) in issued.iter().enumerate() {
            let status = dev.ledger.show(&inv.envelope.invoice.id).unwrap().status;
            let want = if i < 5 {
                Status::Accepted
            } else {
                Status::Pending
            };
            assert_eq!(status, want, "seq {} with batch {batch_size}", i + 1);
        }
        let second = sync_now(&dev.ledger, &dev.key, &share(5), &no_progress)
            .await
            .unwrap();
        assert_eq!((second.submitted, second.pending), (5, 2));
        // A share larger than what is left: everything, and then the heads are compared.
        let last = sync_now(&dev.ledger, &dev.key, &share(50), &no_progress)
            .await
            .unwrap();
        assert_eq!((last.submitted, last.pending), (2, 0));
        assert_eq!(last.outcome, SyncOutcome::Complete);
        assert_eq!(last.server_head, Some(dev.ledger.head().unwrap()));
    }
}

/// A share that the authority refuses for overload ends there: its caller's recovery
/// plan slows down rather than the run retrying into the overload.
#[tokio::test]
async fn a_share_refused_for_overload_ends_the_run_and_says_so() {
    // One request per second: the first batch goes through, the next is refused.
    let taxd = Taxd::start(&["--capacity", "1"]);
    let dev = Device::new();
    enroll_eventually(&dev, &taxd).await;
    dev.issue(9);
    let share = SyncOptions {
        batch_size: 3,
        background: true,
        max_items: Some(9),
        ..SyncOptions::default()
    };
    let report = sync_now(&dev.ledger, &dev.key, &share, &no_progress)
        .await
        .unwrap();
    assert!(report.overloaded, "{report:?}");
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("overload")),
        "{report:?}"
    );
    assert!(report.submitted < 9, "{report:?}");
    assert_eq!(report.pending, 9 - report.submitted);
    // Without a share limit the run waits out Retry-After and finishes the drain.
    let rest = sync_now(&dev.ledger, &dev.key, &opts(60), &no_progress)
        .await
        .unwrap();
    assert_eq!(rest.outcome, SyncOutcome::Complete, "{rest:?}");
    assert_eq!(rest.pending, 0);
}

#[tokio::test]
async fn an_unreachable_authority_is_transient_and_quick() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(2);
    dev.ledger.set_servers(&[closed_port_url()]).unwrap();

    let started = Instant::now();
    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &opts(2), &sink)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("connect")),
        "{report:?}"
    );
    assert_eq!(report.outcome.exit_code(), 3);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        (report.submitted, report.accepted, report.pending),
        (0, 0, 2)
    );
    assert!(report.server_head.is_none());
    // Backed off in between, and every failed attempt is on the item.
    assert!(events
        .all()
        .iter()
        .any(|p| matches!(p, Progress::Retrying { .. })));
    assert!(events
        .all()
        .iter()
        .any(|p| matches!(p, Progress::Endpoint { up: false, .. })));
    let rec = dev.ledger.show(&issued[0].envelope.invoice.id).unwrap();
    let outbox = rec.outbox.expect("still in the outbox");
    assert!(outbox.attempts >= 1);
    assert!(outbox.last_error.is_some());
    assert_eq!(outbox.envelope_json, issued[0].envelope_json);
    assert!(dev
        .ledger
        .status(chrono::Utc::now())
        .unwrap()
        .last_sync_at
        .is_none());

    // Back online: everything goes, with the same bytes and keys.
    dev.ledger
        .set_servers(std::slice::from_ref(&taxd.url))
        .unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete);
    assert_eq!((report.accepted, report.pending), (2, 0));
}

#[tokio::test]
async fn a_backup_endpoint_takes_over() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(3);
    let dead = closed_port_url();
    dev.ledger
        .set_servers(&[dead.clone(), taxd.url.clone()])
        .unwrap();
    let events = Events::default();
    let sink = events.sink();
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &sink)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(report.accepted, 3);
    let all = events.all();
    assert!(all
        .iter()
        .any(|p| matches!(p, Progress::Endpoint { endpoint, up: false } if *endpoint == dead)));
    assert!(all
        .iter()
        .any(|p| matches!(p, Progress::Endpoint { endpoint, up: true } if *endpoint == taxd.url)));
}

#[tokio::test]
async fn an_outage_is_waited_out_then_drained() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(2);
    taxd.faults(serde_json::json!({"outage": true})).await;
    let report = sync_now(&dev.ledger, &dev.key, &opts(2), &no_progress)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, SyncOutcome::Transient(why) if why.contains("503")),
        "{report:?}"
    );
    assert_eq!(report.pending, 2);

    taxd.faults(serde_json::json!({"outage": false})).await;
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete);
    assert_eq!((report.accepted, report.pending), (2, 0));
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
}

#[tokio::test]
async fn half_the_requests_failing_still_gets_everything_accepted() {
    let taxd = Taxd::start(&["--fault-error-rate", "0.5"]);
    let dev = Device::new();
    enroll_eventually(&dev, &taxd).await;
    dev.issue(6);
    // A run gives up when a backoff wait would end more than 30 s after the last
    // receipt (a few consecutive 503s can draw such a wait), so "eventually" may take
    // more than one run; no run may stop or lose anything.
    let total = sync_until_complete(&dev, &SyncOptions::default(), 5).await;
    assert_eq!((total.submitted, total.accepted, total.pending), (6, 6, 0));
    // The head request itself may have met a 503; when it answered it must match.
    if let Some(head) = &total.server_head {
        assert_eq!(*head, dev.ledger.head().unwrap());
    }
}

/// Enrols through injected 503s: a run can give up, a later one finishes.
async fn enroll_eventually(dev: &Device, taxd: &Taxd) {
    for _ in 0..5 {
        match kaipiao_sync::enroll(
            &dev.ledger,
            &dev.key,
            std::slice::from_ref(&taxd.url),
            TOKEN,
            &SyncOptions::default(),
        )
        .await
        {
            Ok(_) => return,
            Err(e) => assert_eq!(e.exit_code(), 3, "{e:?}"),
        }
    }
    panic!("enrolment did not complete in 5 tries");
}

/// Runs sync until it completes (at most `runs` times); sums the counts.
async fn sync_until_complete(
    dev: &Device,
    options: &SyncOptions,
    runs: usize,
) -> kaipiao_sync::SyncReport {
    let mut total: Option<kaipiao_sync::SyncReport> = None;
    for _ in 0..runs {
        let report = sync_now(&dev.ledger, &dev.key, options, &no_progress)
            .await
            .unwrap();
        assert!(
            !matches!(report.outcome, SyncOutcome::Stopped(_)),
            "{report:?}"
        );
        let done = report.outcome == SyncOutcome::Complete;
        total = Some(match total {
            None => report,
            Some(mut t) => {
                t.submitted += report.submitted;
                t.accepted += report.accepted;
                t.rejected += report.rejected;
                t.pending = report.pending;
                t.server_head = report.server_head;
                t.outcome = report.outcome;
                t
            }
        });
        if done {
            break;
        }
    }
    let total = total.unwrap();
    assert_eq!(total.outcome, SyncOutcome::Complete, "{total:?}");
    total
}

#[tokio::test]
async fn dropped_answers_after_commit_are_accepted_exactly_once() {
    let taxd = Taxd::start(&["--fault-drop-after-commit", "0.5"]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(6);
    let report = sync_until_complete(&dev, &SyncOptions::default(), 5).await;
    assert_eq!(
        (report.submitted, report.accepted, report.pending),
        (6, 6, 0)
    );

    // Exactly once: the authority's chain for the device is our chain, seq for seq.
    let (status, body) = signed_get(
        &taxd.url,
        &format!("/v1/devices/{}/head", dev.device_id()),
        &dev,
    )
    .await;
    assert_eq!(status, 200);
    let head: Head = serde_json::from_str(&body).unwrap();
    assert_eq!(head, dev.ledger.head().unwrap());
    for i in &issued {
        let (status, body) = signed_get(
            &taxd.url,
            &format!("/v1/invoices/{}", i.envelope.invoice.id),
            &dev,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let server: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rec = dev.ledger.show(&i.envelope.invoice.id).unwrap();
        assert_eq!(rec.receipt.as_ref(), Some(&server));
    }
}

#[tokio::test]
async fn a_batch_survives_dropped_answers_too() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    taxd.faults(serde_json::json!({"drop_after_commit": 0.5, "error_rate": 0.2}))
        .await;
    dev.issue(9);
    let options = SyncOptions {
        batch_size: 4,
        ..SyncOptions::default()
    };
    let report = sync_until_complete(&dev, &options, 5).await;
    assert_eq!((report.accepted, report.pending), (9, 0));
}

#[tokio::test]
async fn a_forked_chain_stops_the_queue_with_diagnostics() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(2);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.accepted, 2);

    // An old copy of the ledger (restored from a backup) issues its own seq 3 after the
    // real one did: the authority sees a fork.
    let old = dev.copy();
    dev.issue(1);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.accepted, 1);

    let forked = old.issue(1);
    let report = sync_now(&old.ledger, &old.key, &opts(10), &no_progress)
        .await
        .unwrap();
    let SyncOutcome::Stopped(why) = &report.outcome else {
        panic!("{report:?}")
    };
    assert_eq!(report.outcome.exit_code(), 4);
    let number = &forked[0].envelope.invoice.number;
    assert!(
        why.contains(number.as_str()) && why.contains("seq 3"),
        "{why}"
    );
    assert_eq!(report.pending, 1);
    assert!(!report.alerts.is_empty());
    let stopped = old.ledger.queue_stopped().unwrap().expect("queue stopped");
    assert!(stopped.contains(number.as_str()), "{stopped}");
    let status = old.ledger.status(chrono::Utc::now()).unwrap();
    assert!(!status.alerts.is_empty());

    // The stop holds until a human clears it; nothing is dropped meanwhile.
    let report = sync_now(&old.ledger, &old.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert!(matches!(report.outcome, SyncOutcome::Stopped(_)));
    assert_eq!((report.submitted, report.pending), (0, 1));
}

#[tokio::test]
async fn an_authority_restored_from_a_backup_gets_the_lost_invoices_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("taxd.db");
    let mut taxd = Taxd::start_on(&db, &[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(2);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.accepted, 2);

    // Back up the authority's database (with its WAL) while it holds seq 1..2.
    taxd.stop();
    let backup = dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = dir.path().join(format!("taxd.db{suffix}"));
        if from.exists() {
            std::fs::copy(&from, backup.join(format!("taxd.db{suffix}"))).unwrap();
        }
    }
    let taxd = Taxd::start_on(&db, &[]);
    dev.ledger
        .set_servers(std::slice::from_ref(&taxd.url))
        .unwrap();
    dev.issue(2);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.accepted, 2);
    drop(taxd);

    // The authority comes back from the backup: it lost seq 3 and 4. A new invoice (5)
    // meets chain_gap; 3 and 4 are resubmitted from the ledger, then 5 goes through.
    let restored = Taxd::start_on(&backup.join("taxd.db"), &[]);
    dev.ledger
        .set_servers(std::slice::from_ref(&restored.url))
        .unwrap();
    dev.issue(1);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(
        (report.submitted, report.accepted, report.pending),
        (1, 1, 0)
    );
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
    assert_eq!(dev.ledger.head().unwrap().seq, 5);
}

#[tokio::test]
async fn an_authority_behind_with_nothing_pending_is_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("taxd.db");
    let mut taxd = Taxd::start_on(&db, &[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(1);
    sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    taxd.stop();
    let backup = dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = dir.path().join(format!("taxd.db{suffix}"));
        if from.exists() {
            std::fs::copy(&from, backup.join(format!("taxd.db{suffix}"))).unwrap();
        }
    }
    let taxd = Taxd::start_on(&db, &[]);
    dev.ledger
        .set_servers(std::slice::from_ref(&taxd.url))
        .unwrap();
    dev.issue(2);
    sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    drop(taxd);

    let restored = Taxd::start_on(&backup.join("taxd.db"), &[]);
    dev.ledger
        .set_servers(std::slice::from_ref(&restored.url))
        .unwrap();
    assert_eq!(dev.pending(), 0);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
    assert!(report.head_mismatch.is_none());
}

#[tokio::test]
async fn a_skewed_clock_is_corrected_from_the_authority() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    dev.issue(1);
    dev.ledger.set_clock_offset(-3600).unwrap();
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
    assert!(dev.ledger.clock_offset().unwrap().abs() <= 5);
}

#[tokio::test]
async fn a_second_sync_of_the_same_directory_is_refused_while_one_runs() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let _held = dev.ledger.lock_outbox().unwrap();
    let other = kaipiao_ledger::Ledger::open(dev.dir.path()).unwrap();
    let err = sync_now(&other, &dev.key, &opts(2), &no_progress)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "busy");
}

/// What the authority holds of this device, read back and checked against the device's
/// own key, the chain and the pinned authority key (for restore): exactly the envelopes
/// and receipts the ledger holds, from any seq on.
#[tokio::test]
async fn the_authority_gives_a_device_its_own_invoices_back_checked() {
    let taxd = Taxd::start(&[]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    let issued = dev.issue(5);
    let report = sync_now(&dev.ledger, &dev.key, &opts(10), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.accepted, 5);
    let after = &issued[1].envelope;
    let (held, head) = kaipiao_sync::fetch_held(&dev.ledger, &dev.key, &opts(10), 2, &after.hash)
        .await
        .unwrap();
    assert_eq!(head.seq, 5);
    let seqs: Vec<u64> = held.iter().map(|h| h.envelope.invoice.seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
    for (h, mine) in held.iter().zip(&issued[2..]) {
        assert_eq!(h.envelope, mine.envelope);
        let stored = dev.ledger.show(&mine.envelope.invoice.number).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&h.receipt_json).unwrap(),
            stored.receipt.unwrap()
        );
    }
    // A link that is not this chain's is refused, naming the seq.
    let e = kaipiao_sync::fetch_held(&dev.ledger, &dev.key, &opts(10), 2, &"0".repeat(64))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("seq 3"), "{e}");
}

/// A drain longer than the outbox rows read at a time reads on from the item after the
/// last receipt taken, while that batch's receipts are still being stored: every invoice
/// goes exactly once, every receipt is stored, and the heads agree.
#[tokio::test]
async fn a_long_drain_reads_the_outbox_on_while_receipts_are_stored() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("requests.jsonl");
    let taxd = Taxd::start(&["--request-log", log.to_str().unwrap()]);
    let dev = Device::new();
    dev.enroll(&taxd).await;
    // Batches of 10 read 100 outbox rows at a time: 130 invoices need two more reads.
    dev.issue(130);
    let options = SyncOptions {
        batch_size: 10,
        ..SyncOptions::default()
    };
    let report = sync_now(&dev.ledger, &dev.key, &options, &no_progress)
        .await
        .unwrap();
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
    assert_eq!(
        (report.submitted, report.accepted, report.pending),
        (130, 130, 0)
    );
    assert_eq!(report.server_head, Some(dev.ledger.head().unwrap()));
    let text = std::fs::read_to_string(&log).unwrap();
    let batches: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["path"] == "/v1/invoices:batch")
        .collect();
    assert!(batches.iter().all(|l| l["status"] == 200), "{text}");
    let sent: u64 = batches
        .iter()
        .map(|l| l["invoices"].as_u64().unwrap())
        .sum();
    assert_eq!(
        (batches.len(), sent),
        (13, 130),
        "each invoice once: {text}"
    );
}
