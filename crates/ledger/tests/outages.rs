//! The outage record on real SQLite files: opening, counting and ending an outage, which
//! invoices it takes in (issued during it, or caught by it while pending), the guards that
//! keep it append-only, and the migration of a version 2 ledger.

use chrono::{DateTime, Utc};
use kaipiao_core::Envelope;
use kaipiao_ledger::{FailedAttempt, Ledger, LedgerError, Outage};
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;

const PRIMARY: &str = "http://127.0.0.1:8787";
const BACKUP: &str = "http://127.0.0.1:8788";

fn failed(at: DateTime<Utc>, attempts: u32) -> FailedAttempt {
    FailedAttempt {
        at,
        endpoint: PRIMARY.into(),
        reason: "HTTP 503 outage: the authority is unavailable".into(),
        attempts,
    }
}

fn issue_at(s: &Setup, hours: i64) -> Envelope {
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(hours))
        .unwrap()
        .envelope
}

fn outages(s: &Setup) -> Vec<Outage> {
    s.ledger.outages().unwrap()
}

#[test]
fn an_outage_opens_counts_takes_in_its_invoices_and_ends() {
    let s = with_lease(&Terms::default());
    assert_eq!(s.ledger.current_outage().unwrap(), None);
    assert!(outages(&s).is_empty());
    assert_eq!(s.ledger.record_served(PRIMARY, at_hours(0)).unwrap(), None);

    // A: issued, then a sync reached the authority (it stays pending: say a 429).
    let a = issue_at(&s, 1);
    s.ledger.set_last_sync(at_hours(2)).unwrap();
    // B: issued offline after that; nobody synced until the outage was noticed.
    let b = issue_at(&s, 3);

    let id = s
        .ledger
        .record_failed_attempt(&failed(at_hours(4), 1))
        .unwrap();
    let current = s.ledger.current_outage().unwrap().expect("current");
    assert_eq!(current.id, id);
    assert!(current.is_current());
    assert_eq!(current.started_at, "2026-03-01T13:00:00Z");
    assert_eq!(current.failed_endpoint, PRIMARY);
    assert_eq!(
        current.reason,
        "HTTP 503 outage: the authority is unavailable"
    );
    assert_eq!(
        (current.failed_attempts, current.ended_by.as_deref()),
        (1, None)
    );
    // B was caught by the outage; A was issued before the authority last served.
    assert_eq!(current.invoices_issued, 1);
    assert_eq!(
        current.first_number.as_deref(),
        Some(b.invoice.number.as_str())
    );
    assert_eq!(current.duration_seconds(at_hours(5)), 3600);

    // C is issued during it; more failures count, keeping the first reason.
    let c = issue_at(&s, 5);
    let more = FailedAttempt {
        endpoint: BACKUP.into(),
        reason: "could not connect".into(),
        ..failed(at_hours(5), 2)
    };
    assert_eq!(s.ledger.record_failed_attempt(&more).unwrap(), id);
    let current = s.ledger.current_outage().unwrap().expect("current");
    assert_eq!(current.failed_attempts, 3);
    assert_eq!(current.failed_endpoint, PRIMARY);
    assert_eq!(current.invoices_issued, 2);
    assert_eq!(
        (
            current.first_number.as_deref(),
            current.last_number.as_deref()
        ),
        (
            Some(b.invoice.number.as_str()),
            Some(c.invoice.number.as_str())
        )
    );

    // The first answer that proves the authority serves ends it.
    let ended = s
        .ledger
        .record_served(BACKUP, at_hours(6))
        .unwrap()
        .expect("ended");
    assert_eq!(ended.id, id);
    assert_eq!(ended.ended_at.as_deref(), Some("2026-03-01T15:00:00Z"));
    assert_eq!(ended.ended_by.as_deref(), Some(BACKUP));
    assert_eq!(ended.duration_seconds(at_hours(100)), 2 * 3600);
    assert_eq!(s.ledger.current_outage().unwrap(), None);
    assert_eq!(s.ledger.record_served(PRIMARY, at_hours(7)).unwrap(), None);

    // D, after it, is not marked.
    let d = issue_at(&s, 7);
    let all = outages(&s);
    assert_eq!(all, vec![ended.clone()]);
    let during = |e: &Envelope| {
        s.ledger
            .show(&e.invoice.number)
            .unwrap()
            .issued_during_outage
    };
    assert_eq!(
        [during(&a), during(&b), during(&c), during(&d)],
        [None, Some(id), Some(id), None]
    );

    // D gets its receipt; E stays pending. The next outage takes in only E: D is
    // acknowledged, and B and C belong to the first outage already.
    s.ledger
        .store_receipt(
            &d.invoice.id,
            &receipt(&s.authority, &d, "accepted"),
            at_hours(8),
        )
        .unwrap();
    let e = issue_at(&s, 8);
    let second = s
        .ledger
        .record_failed_attempt(&failed(at_hours(9), 1))
        .unwrap();
    assert_ne!(second, id);
    let all = outages(&s);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], ended, "an ended outage never changes");
    assert_eq!(all[1].id, second);
    assert!(all[1].is_current());
    assert_eq!(all[1].invoices_issued, 1);
    assert_eq!(
        all[1].first_number.as_deref(),
        Some(e.invoice.number.as_str())
    );
    assert_eq!(during(&d), None);

    // Everything survives a reopen, and the chain still verifies.
    let Setup { dir, ledger, .. } = s;
    drop(ledger);
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.outages().unwrap(), all);
    assert_eq!(ledger.verify().unwrap().invoices, 5);
}

#[test]
fn an_unanswered_submission_is_one_write_for_the_outbox_and_the_record() {
    let s = with_lease(&Terms::default());
    let a = issue_at(&s, 1);
    let next = at_hours(1) + chrono::Duration::seconds(2);
    let id = s
        .ledger
        .record_unanswered_attempt(
            &a.invoice.id,
            "HTTP 503 outage",
            Some(next),
            &failed(at_hours(1), 1),
        )
        .unwrap();
    let item = &s.ledger.outbox(None, 10).unwrap()[0];
    assert_eq!(
        (item.attempts, item.last_error.as_deref()),
        (1, Some("HTTP 503 outage"))
    );
    let current = s.ledger.current_outage().unwrap().expect("current");
    assert_eq!(
        (current.id, current.failed_attempts, current.invoices_issued),
        (id, 1, 1)
    );

    // Bad input names the field and writes nothing, neither the attempt nor the record.
    for (bad, field) in [
        (
            FailedAttempt {
                endpoint: "  ".into(),
                ..failed(at_hours(2), 1)
            },
            "endpoint",
        ),
        (failed(at_hours(2), 0), "attempts"),
    ] {
        let e = s
            .ledger
            .record_unanswered_attempt(&a.invoice.id, "again", None, &bad)
            .unwrap_err();
        assert!(matches!(e, LedgerError::Invalid(_)), "{e}");
        assert_eq!(e.field(), field);
        assert_eq!(e.exit_code(), 2);
        let e = s.ledger.record_failed_attempt(&bad).unwrap_err();
        assert_eq!(e.field(), field);
    }
    let item = &s.ledger.outbox(None, 10).unwrap()[0];
    assert_eq!(item.attempts, 1);
    assert_eq!(
        s.ledger
            .current_outage()
            .unwrap()
            .expect("current")
            .failed_attempts,
        1
    );
    assert_eq!(
        s.ledger.record_served("", at_hours(3)).unwrap_err().field(),
        "endpoint"
    );

    // A very long reason (a server's HTML error page) is kept, cut short.
    let long = FailedAttempt {
        reason: "x".repeat(5000),
        ..failed(at_hours(2), 1)
    };
    s.ledger.record_failed_attempt(&long).unwrap();
    s.ledger.record_served(PRIMARY, at_hours(3)).unwrap();
    s.ledger.record_failed_attempt(&long).unwrap();
    let all = outages(&s);
    assert_eq!(all[1].reason.chars().count(), 500);
    assert!(all[1].reason.ends_with('…'));
}

#[test]
fn a_clock_set_back_ends_an_outage_where_it_started() {
    let s = with_lease(&Terms::default());
    s.ledger
        .record_failed_attempt(&failed(at_hours(5), 1))
        .unwrap();
    let ended = s
        .ledger
        .record_served(PRIMARY, at_hours(4))
        .unwrap()
        .expect("ended");
    assert_eq!(ended.ended_at.as_deref(), Some(ended.started_at.as_str()));
    assert_eq!(ended.duration_seconds(at_hours(9)), 0);
}

#[test]
fn the_record_is_append_only() {
    let s = with_lease(&Terms::default());
    issue_at(&s, 1);
    s.ledger
        .record_failed_attempt(&failed(at_hours(2), 1))
        .unwrap();
    issue_at(&s, 2);
    let c = raw(&s);
    let refused = |sql: &str, why: &str| match c.execute(sql, []) {
        Ok(_) => panic!("allowed: {sql}"),
        Err(e) => assert!(e.to_string().contains(why), "{sql}: {e}"),
    };
    refused(
        "INSERT INTO outages (started_at, failed_endpoint, reason, failed_attempts) VALUES ('2026-03-01T12:00:00Z', 'x', 'y', 1)",
        "UNIQUE",
    );
    refused(
        "UPDATE outages SET started_at = '2020-01-01T00:00:00Z'",
        "never changed",
    );
    refused("UPDATE outages SET failed_attempts = 0", "only grow");
    refused("DELETE FROM outages", "never deleted");
    refused("DELETE FROM outage_invoices", "never deleted");
    refused("UPDATE outage_invoices SET outage_id = 7", "never changed");
    s.ledger.record_served(PRIMARY, at_hours(3)).unwrap();
    refused(
        "UPDATE outages SET ended_at = NULL, ended_by = NULL",
        "never changed",
    );
    refused("UPDATE outages SET failed_attempts = 9", "never changed");
    assert_eq!(outages(&s)[0].invoices_issued, 2);
}

#[test]
fn a_version_2_ledger_is_backed_up_and_migrated_without_touching_its_invoices() {
    let s = with_lease(&Terms::default());
    let a = issue_at(&s, 1);
    s.ledger
        .store_receipt(
            &a.invoice.id,
            &receipt(&s.authority, &a, "accepted"),
            at_hours(1),
        )
        .unwrap();
    issue_at(&s, 2);
    let mut before = Vec::new();
    s.ledger.export(&mut before).unwrap();
    // Exactly what version 2 wrote for these invoices, in a copy of the data directory:
    // its tables and guards, no outage record, the outbox keyed by invoice id, an
    // "issued" history entry per invoice.
    let dir = copy_at_version(&s, 2);
    drop(s);
    let db = dir.path().join(kaipiao_ledger::DB_FILE);

    let ledger = Ledger::open(dir.path()).unwrap();
    let backup = rusqlite::Connection::open(dir.path().join("ledger.sqlite3.bak-v2")).unwrap();
    let v: i64 = backup
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    let c = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = c
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, kaipiao_ledger::SCHEMA_VERSION);
    let index = |name: &str| -> i64 {
        c.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    };
    // The status filter's index of version 3 is replaced by version 5's partial one.
    assert_eq!(index("invoices_rejected"), 1);
    assert_eq!(index("invoices_status_seq"), 0);

    // The invoices, their bytes and the export are exactly as before; nothing is marked
    // retroactively (the record starts with the migration).
    let mut after = Vec::new();
    ledger.export(&mut after).unwrap();
    assert_eq!(
        String::from_utf8(after).unwrap(),
        String::from_utf8(before).unwrap()
    );
    assert_eq!(ledger.verify().unwrap().invoices, 2);
    assert!(ledger.outages().unwrap().is_empty());

    // The migrated ledger records outages like a new one; the pending invoice issued
    // since enrolment is caught by it, the accepted one is not.
    ledger
        .record_failed_attempt(&failed(at_hours(3), 1))
        .unwrap();
    let key = ledger.unseal_key(&keys()).unwrap();
    ledger
        .issue(&ordinary("1", "10", "0.13"), &key, at_hours(3))
        .unwrap();
    let current = ledger.current_outage().unwrap().expect("current");
    assert_eq!(current.invoices_issued, 2);
    assert_eq!(
        ledger.show(&a.invoice.number).unwrap().issued_during_outage,
        None
    );

    // Applied again to a restored copy (schema_version rolled back), it is a no-op.
    drop(ledger);
    // Every migration since version 2 is applied again (version 3 alone would not be:
    // the later ones stay recorded).
    c.execute("DELETE FROM schema_version WHERE version > 2", [])
        .unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let v: i64 = c
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, kaipiao_ledger::SCHEMA_VERSION);
    assert_eq!(index("invoices_rejected"), 1);
    assert_eq!(index("invoices_status_seq"), 0);
    assert_eq!(ledger.verify().unwrap().invoices, 3);
    assert_eq!(ledger.status(at_hours(3)).unwrap().pending, 2);
    assert_eq!(
        ledger
            .current_outage()
            .unwrap()
            .expect("kept")
            .invoices_issued,
        2
    );
}
