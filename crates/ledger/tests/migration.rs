//! Migrations 5 and 6 on real version-4 and version-5 ledgers: the same invoices written
//! by the older program (version 4: outbox keyed by invoice id, an "issued" history entry
//! per invoice, the pending totals kept by triggers, leases without an issued amount;
//! version 5: receipts, history and credit notes naming invoices by id, unique indexes on
//! id and number) are opened by this one, backed up, migrated, and read back exactly as
//! the ledger they were copied from.

use chrono::{DateTime, Utc};
use kaipiao_core::Envelope;
use kaipiao_ledger::{FailedAttempt, Ledger, ListFilter, Status};
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;
use serde_json::json;

const PRIMARY: &str = "http://127.0.0.1:8787";

fn issue(s: &Setup, price: &str, hours: i64) -> Envelope {
    s.ledger
        .issue(&ordinary("10", price, "0.13"), &s.key, at_hours(hours))
        .unwrap()
        .envelope
}

fn store(s: &Setup, env: &Envelope, status: &str, hours: i64) {
    s.ledger
        .store_receipt(
            &env.invoice.id,
            &receipt(&s.authority, env, status),
            at_hours(hours),
        )
        .unwrap();
}

fn export(ledger: &Ledger) -> String {
    let mut out = Vec::new();
    ledger.export(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn filters() -> Vec<(&'static str, ListFilter)> {
    let with = |status| ListFilter {
        status: Some(status),
        ..ListFilter::default()
    };
    vec![
        ("all", ListFilter::default()),
        ("pending", with(Status::Pending)),
        ("accepted", with(Status::Accepted)),
        ("rejected", with(Status::Rejected)),
    ]
}

fn names(c: &rusqlite::Connection, kind: &str) -> Vec<String> {
    c.prepare("SELECT name FROM sqlite_master WHERE type = ?1 ORDER BY name")
        .unwrap()
        .query_map([kind], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<String>>>()
        .unwrap()
}

fn pair(c: &rusqlite::Connection, sql: &str) -> (i64, i64) {
    c.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
}

/// The ledger the version-4 copy is made from: three leases (two on one prefix, with
/// disjoint ranges, so each lease's issued amount is told apart by range as well as by
/// prefix), invoices accepted, rejected and pending, a credit note, a failed attempt on a
/// pending one, receipts one by one and in a group, and an outage that took in invoices.
fn mixed() -> (Setup, Vec<Envelope>) {
    let s = enrolled();
    let lease_at = |id: &str, prefix: &str, first: u64, last: u64| {
        let terms = Terms {
            first,
            last,
            ..Terms::default()
        };
        s.ledger
            .store_lease(&lease(id, prefix, &terms), t0())
            .unwrap();
    };
    lease_at("lease-1", PREFIX, 1, 3);
    lease_at("lease-2", "260330000002", 1, 2);
    lease_at("lease-3", PREFIX, 4, 1000);

    let mut envs = Vec::new();
    envs.push(issue(&s, "100", 0)); // 1: accepted
    envs.push(issue(&s, "20", 0)); // 2: rejected
    envs.push(issue(&s, "3.33", 1)); // 3: accepted in a group
    store(&s, &envs[0], "accepted", 1);
    store(&s, &envs[1], "rejected", 1);
    // 4: a credit note for 3 of the 10 of invoice 1, left pending.
    let credit = kaipiao_core::Draft::from_json(&json!({
        "kind": "credit",
        "original": envs[0].invoice.number,
        "buyer": {"name": "张三"},
        "lines": [{"name": "办公用品", "unit": "件", "quantity": "-3", "tax_rate": "0.13"}]
    }))
    .unwrap();
    envs.push(
        s.ledger
            .issue(&credit, &s.key, at_hours(2))
            .unwrap()
            .envelope,
    );
    envs.push(issue(&s, "7", 2)); // 5: accepted in a group (4 and 5 are lease-2's)
    let bodies = [
        receipt(&s.authority, &envs[2], "accepted"),
        receipt(&s.authority, &envs[4], "accepted"),
    ];
    let pairs = [
        (envs[2].invoice.id.as_str(), bodies[0].as_str()),
        (envs[4].invoice.id.as_str(), bodies[1].as_str()),
    ];
    let results = s
        .ledger
        .store_receipt_groups(&pairs, 2, at_hours(3))
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // 6: pending, with a failed attempt and a retry time on its outbox row.
    envs.push(issue(&s, "50", 3));
    s.ledger
        .record_attempt(
            &envs[5].invoice.id,
            "HTTP 503 outage: the authority is unavailable",
            Some(at_hours(4)),
        )
        .unwrap();
    // An outage: 6 (lease-3's first) is caught by it, 7 and 8 are issued during it; it ends,
    // and 8 is accepted afterwards.
    s.ledger
        .record_failed_attempt(&FailedAttempt {
            at: at_hours(4),
            endpoint: PRIMARY.into(),
            reason: "HTTP 503 outage: the authority is unavailable".into(),
            attempts: 2,
        })
        .unwrap();
    envs.push(issue(&s, "12.34", 5));
    envs.push(issue(&s, "1", 5));
    s.ledger.record_served(PRIMARY, at_hours(6)).unwrap();
    store(&s, &envs[7], "accepted", 6);

    let status = s.ledger.status(at_hours(6)).unwrap();
    assert_eq!(status.pending, 3, "{status:?}");
    assert_eq!(s.ledger.verify().unwrap().invoices, 8);
    (s, envs)
}

#[test]
fn a_version_4_ledger_migrates_through_version_5_and_reads_back_the_same() {
    let (s, envs) = mixed();
    let now: DateTime<Utc> = at_hours(7);
    let dir = copy_at_version(&s, 4);
    let db = dir.path().join(kaipiao_ledger::DB_FILE);

    // The copy is a version-4 ledger: its shapes, its pending totals kept by its triggers.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let v: i64 = c
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4);
        let pending = pair(&c, "SELECT count, cents FROM pending_totals");
        let counted = pair(
            &c,
            "SELECT COUNT(*), SUM(ABS(total_amount_cents)) FROM invoices WHERE status = 'pending'",
        );
        assert_eq!(pending, counted);
        assert_eq!(pending.0, 3);
        let issued: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM history WHERE status = 'issued'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(issued, 8);
        let outbox_by_id: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM outbox o JOIN invoices i ON i.id = o.invoice_id AND i.seq = o.seq",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(outbox_by_id, 3);
    }

    let migrated = Ledger::open(dir.path()).unwrap();
    let key = migrated.unseal_key(&keys()).unwrap();

    // Backed up first, as version 4.
    let backup = dir.path().join("ledger.sqlite3.bak-v4");
    assert!(backup.exists());
    let b = rusqlite::Connection::open(&backup).unwrap();
    let v: i64 = b
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 4);
    assert!(names(&b, "table").contains(&"pending_totals".to_string()));
    drop(b);

    // The shape of version 5 (migration 6 runs after it and keeps all of this).
    let c = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = c
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, kaipiao_ledger::SCHEMA_VERSION);
    let tables = names(&c, "table");
    assert!(
        !tables.contains(&"pending_totals".to_string()),
        "{tables:?}"
    );
    assert!(!tables.contains(&"outbox_by_seq".to_string()), "{tables:?}");
    assert!(tables.contains(&"settled_totals".to_string()), "{tables:?}");
    let indexes = names(&c, "index");
    for gone in ["invoices_pending", "invoices_status_seq"] {
        assert!(!indexes.contains(&gone.to_string()), "{indexes:?}");
    }
    assert!(
        indexes.contains(&"invoices_rejected".to_string()),
        "{indexes:?}"
    );
    let triggers = names(&c, "trigger");
    for gone in [
        "pending_totals_on_issue",
        "pending_totals_on_final",
        "pending_totals_one_row",
    ] {
        assert!(!triggers.contains(&gone.to_string()), "{triggers:?}");
    }
    for kept in [
        "outbox_leaves_with_receipt",
        "leases_only_advance",
        "settled_totals_on_final",
        "settled_totals_one_row",
    ] {
        assert!(triggers.contains(&kept.to_string()), "{triggers:?}");
    }
    let outbox_columns: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('outbox') ORDER BY cid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        outbox_columns,
        ["seq", "attempts", "next_attempt_ms", "last_error"]
    );
    let issued_rows: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM history WHERE status = 'issued'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(issued_rows, 0);

    // The running totals rebuilt from the invoices are the ones the original kept.
    let o = raw(&s);
    let per_lease = "SELECT group_concat(lease_id || '=' || issued_cents, ' ') FROM (SELECT lease_id, issued_cents FROM leases ORDER BY position)";
    let lease_totals =
        |c: &rusqlite::Connection| -> String { c.query_row(per_lease, [], |r| r.get(0)).unwrap() };
    assert_eq!(lease_totals(&c), lease_totals(&o));
    assert_eq!(
        pair(&c, "SELECT count, cents FROM settled_totals"),
        pair(&o, "SELECT count, cents FROM settled_totals")
    );
    // Each lease holds what was issued under it: lease-2 invoices 4 and 5, lease-3 6 to 8.
    let cents = |i: usize| -> i64 {
        let mut a = rust_decimal::Decimal::from_str_exact(&envs[i].invoice.total_amount).unwrap();
        a.rescale(2);
        i64::try_from(a.mantissa()).unwrap().abs()
    };
    assert_eq!(
        lease_totals(&c),
        format!(
            "lease-1={} lease-2={} lease-3={}",
            cents(0) + cents(1) + cents(2),
            cents(3) + cents(4),
            cents(5) + cents(6) + cents(7)
        )
    );

    // Everything the clerk and an auditor read is what the original ledger says.
    let report = migrated.verify().unwrap();
    assert_eq!(report, s.ledger.verify().unwrap());
    assert_eq!(report.invoices, 8);
    assert_eq!(report.receipts, 5);
    assert_eq!(export(&migrated), export(&s.ledger));
    let (was, is) = (s.ledger.status(now).unwrap(), migrated.status(now).unwrap());
    assert_eq!(is.pending, was.pending);
    assert_eq!(is.pending, 3);
    assert_eq!(is.offline_amount_left, was.offline_amount_left);
    assert_eq!(is.oldest_pending_at, was.oldest_pending_at);
    assert_eq!(is, was);
    for env in &envs {
        let (was, is) = (
            s.ledger.show(&env.invoice.number).unwrap(),
            migrated.show(&env.invoice.number).unwrap(),
        );
        let statuses: Vec<&str> = is.history.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(statuses[0], "issued", "{statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| **s == "issued").count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(is.history[0].at, env.invoice.issued_at);
        assert_eq!(
            is.history[0].detail,
            format!("number {}", env.invoice.number)
        );
        assert_eq!(is.history, was.history);
        assert_eq!(is.outbox, was.outbox);
        assert_eq!(is, was);
    }
    let attempted = migrated.show(&envs[5].invoice.number).unwrap();
    let item = attempted.outbox.expect("pending");
    assert_eq!(item.attempts, 1);
    assert_eq!(
        item.last_error.as_deref(),
        Some("HTTP 503 outage: the authority is unavailable")
    );
    assert!(item.next_attempt_at.is_some());
    assert_eq!(
        migrated.outbox(None, 100).unwrap(),
        s.ledger.outbox(None, 100).unwrap()
    );
    for (name, filter) in filters() {
        assert_eq!(
            migrated.list_seqs(&filter).unwrap(),
            s.ledger.list_seqs(&filter).unwrap(),
            "{name}"
        );
        assert_eq!(
            migrated.list(&filter).unwrap(),
            s.ledger.list(&filter).unwrap(),
            "{name}"
        );
    }
    assert_eq!(
        migrated
            .list_seqs(&ListFilter {
                status: Some(Status::Pending),
                ..ListFilter::default()
            })
            .unwrap(),
        [4, 6, 7]
    );
    assert_eq!(migrated.outages().unwrap(), s.ledger.outages().unwrap());

    // The migrated ledger issues and settles, and its totals follow.
    let before = migrated.status(now).unwrap();
    let next = migrated
        .issue(&ordinary("10", "10", "0.13"), &key, now)
        .unwrap()
        .envelope;
    assert_eq!(next.invoice.seq, 9);
    let after = migrated.status(now).unwrap();
    assert_eq!(after.pending, before.pending + 1);
    let left = |st: &kaipiao_ledger::LedgerStatus| {
        rust_decimal::Decimal::from_str_exact(st.offline_amount_left.as_deref().unwrap()).unwrap()
    };
    assert_eq!(
        left(&before) - left(&after),
        rust_decimal::Decimal::from_str_exact("100.00").unwrap()
    );
    // A receipt takes the credit note out of the new-shaped outbox.
    migrated
        .store_receipt(
            &envs[3].invoice.id,
            &receipt(&s.authority, &envs[3], "accepted"),
            now,
        )
        .unwrap();
    let settled = migrated.status(now).unwrap();
    assert_eq!(settled.pending, after.pending - 1);
    assert_eq!(
        left(&settled) - left(&after),
        rust_decimal::Decimal::from_str_exact(&envs[3].invoice.total_amount)
            .unwrap()
            .abs()
    );
    let credit = migrated.show(&envs[3].invoice.number).unwrap();
    assert_eq!(credit.outbox, None);
    let statuses: Vec<&str> = credit.history.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["issued", "accepted"]);
    assert_eq!(migrated.verify().unwrap().invoices, 9);
    assert_eq!(
        pair(&c, "SELECT count, cents FROM settled_totals").0,
        pair(&o, "SELECT count, cents FROM settled_totals").0 + 1
    );
}

fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn a_version_5_ledger_migrates_to_version_6_and_finds_every_invoice_without_an_index() {
    let (s, envs) = mixed();
    let now: DateTime<Utc> = at_hours(7);
    let dir = copy_at_version(&s, 5);
    let db = dir.path().join(kaipiao_ledger::DB_FILE);
    {
        // The copy is a version-5 ledger: unique indexes on id and number, receipts and
        // history by invoice id, the credit note's original by id.
        let c = rusqlite::Connection::open(&db).unwrap();
        assert_eq!(count(&c, "SELECT MAX(version) FROM schema_version"), 5);
        assert_eq!(
            count(&c, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invoices' AND name LIKE 'sqlite_autoindex%'"),
            2
        );
        assert_eq!(
            count(
                &c,
                "SELECT COUNT(*) FROM receipts r JOIN invoices i ON i.id = r.invoice_id"
            ),
            5
        );
        assert_eq!(
            count(
                &c,
                "SELECT COUNT(*) FROM invoices WHERE original_id IS NOT NULL"
            ),
            1
        );
    }

    let migrated = Ledger::open(dir.path()).unwrap();
    let key = migrated.unseal_key(&keys()).unwrap();
    assert!(dir.path().join("ledger.sqlite3.bak-v5").exists());

    // The shape of version 6: no index on the invoice's id or number, everything else
    // keyed by seq, the invoices issued before in invoice_keys, no lease anchored yet.
    let c = rusqlite::Connection::open(&db).unwrap();
    // Migrated through 6 to the current version (7 adds the authority's head as last
    // heard and when the clock offset was measured: `kaipiao queue`, the clock rules).
    assert_eq!(
        count(&c, "SELECT MAX(version) FROM schema_version"),
        kaipiao_ledger::SCHEMA_VERSION
    );
    assert_eq!(count(&c, "SELECT COUNT(*) FROM authority_head"), 0);
    assert_eq!(
        count(
            &c,
            "SELECT COUNT(*) FROM pragma_table_info('device') WHERE name = 'clock_offset_at'"
        ),
        1
    );
    let invoice_indexes: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invoices' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(invoice_indexes, ["invoices_original", "invoices_rejected"]);
    for (table, columns) in [
        ("receipts", "seq receipt status stored_at"),
        ("history", "id seq at status detail"),
        ("invoice_keys", "key seq"),
    ] {
        let got: String = c
            .query_row(
                "SELECT group_concat(name, ' ') FROM (SELECT name FROM pragma_table_info(?1) ORDER BY cid)",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(got, columns, "{table}");
    }
    let triggers = names(&c, "trigger");
    for gone in [
        "leases_numbers_never_reused",
        "leases_issued_only_grows",
        "invoices_seq_follows_head",
    ] {
        assert!(!triggers.contains(&gone.to_string()), "{triggers:?}");
    }
    for guard in [
        "leases_only_advance",
        "leases_anchored_once",
        "history_never_deleted",
        "invoice_keys_immutable",
        "outbox_leaves_with_receipt",
    ] {
        assert!(triggers.contains(&guard.to_string()), "{triggers:?}");
    }
    assert_eq!(count(&c, "SELECT COUNT(*) FROM invoice_keys"), 16);
    assert_eq!(
        count(
            &c,
            "SELECT original_seq FROM invoices WHERE kind = 'credit'"
        ),
        1
    );
    assert_eq!(
        count(
            &c,
            "SELECT COUNT(*) FROM leases WHERE anchor_seq IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM pragma_foreign_key_check"),
        0
    );

    // Every read is the original's; every invoice is found by id and by number.
    assert_eq!(migrated.verify().unwrap(), s.ledger.verify().unwrap());
    assert_eq!(export(&migrated), export(&s.ledger));
    assert_eq!(migrated.status(now).unwrap(), s.ledger.status(now).unwrap());
    for env in &envs {
        let by_number = migrated.show(&env.invoice.number).unwrap();
        assert_eq!(by_number, s.ledger.show(&env.invoice.number).unwrap());
        assert_eq!(migrated.show(&env.invoice.id).unwrap(), by_number);
        assert_eq!(
            migrated.show(&env.invoice.id.to_uppercase()).unwrap(),
            by_number
        );
    }
    assert_eq!(
        migrated.outbox(None, 100).unwrap(),
        s.ledger.outbox(None, 100).unwrap()
    );
    for (name, filter) in filters() {
        assert_eq!(
            migrated.list(&filter).unwrap(),
            s.ledger.list(&filter).unwrap(),
            "{name}"
        );
    }
    assert_eq!(migrated.outages().unwrap(), s.ledger.outages().unwrap());

    // Issuing goes on from lease-3, which was half used: the first new invoice anchors
    // it, and neither it nor the next writes a key.
    let next: Vec<Envelope> = (0..2)
        .map(|_| {
            migrated
                .issue(&ordinary("1", "10", "0.13"), &key, now)
                .unwrap()
                .envelope
        })
        .collect();
    assert_eq!(next[0].invoice.seq, 9);
    assert_eq!(
        pair(
            &c,
            "SELECT anchor_seq, anchor_number FROM leases WHERE lease_id = 'lease-3'"
        ),
        (9, 7)
    );
    assert_eq!(count(&c, "SELECT COUNT(*) FROM invoice_keys"), 16);
    for env in &next {
        assert_eq!(migrated.show(&env.invoice.number).unwrap().envelope, *env);
        assert_eq!(migrated.show(&env.invoice.id).unwrap().envelope, *env);
    }
    // A receipt by id, an attempt by id, and a credit note against an invoice issued
    // before the migration (found through its key) and one issued after.
    migrated
        .store_receipt(
            &envs[5].invoice.id,
            &receipt(&s.authority, &envs[5], "accepted"),
            now,
        )
        .unwrap();
    migrated
        .record_attempt(&next[1].invoice.id, "HTTP 503", None)
        .unwrap();
    assert_eq!(
        migrated
            .show(&next[1].invoice.number)
            .unwrap()
            .outbox
            .unwrap()
            .attempts,
        1
    );
    let credit = |original: &str, quantity: &str| {
        kaipiao_core::Draft::from_json(&json!({
            "kind": "credit",
            "original": original,
            "buyer": {"name": "张三"},
            "lines": [{"name": "办公用品", "unit": "件", "quantity": quantity, "tax_rate": "0.13"}]
        }))
        .unwrap()
    };
    // Invoice 1 already has a pending credit of 3 of its 10: 7 are left.
    let over = migrated.issue(&credit(&envs[0].invoice.number, "-8"), &key, now);
    assert!(over.is_err(), "{over:?}");
    let c1 = migrated
        .issue(&credit(&envs[0].invoice.number, "-7"), &key, now)
        .unwrap()
        .envelope;
    let c2 = migrated
        .issue(&credit(&next[0].invoice.number, "-1"), &key, now)
        .unwrap()
        .envelope;
    assert_eq!(c1.invoice.original.as_ref().unwrap().id, envs[0].invoice.id);
    assert_eq!(c2.invoice.original.as_ref().unwrap().id, next[0].invoice.id);
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM invoices WHERE original_seq = 1"),
        2
    );
    assert_eq!(migrated.verify().unwrap().invoices, 12);
}

#[test]
fn a_migration_that_cannot_copy_every_row_leaves_the_ledger_as_it_was() {
    let (s, _) = mixed();
    let dir = copy_at_version(&s, 5);
    let db = dir.path().join(kaipiao_ledger::DB_FILE);
    // A version-5 ledger with a history entry naming no invoice (written with foreign
    // keys off): migration 6 would drop it, so it refuses instead.
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "foreign_keys", "OFF").unwrap();
        c.execute(
            "INSERT INTO history (invoice_id, at, status, detail) VALUES ('0190c0de-0000-7000-8000-000000000000', '2026-03-01T00:00:00Z', 'accepted', '')",
            [],
        )
        .unwrap();
    }
    for _ in 0..2 {
        match Ledger::open(dir.path()) {
            Err(kaipiao_ledger::LedgerError::Integrity { what, .. }) => {
                assert!(what.contains("keep 5 of its 6 history entries"), "{what}");
                assert!(what.contains("was not changed"), "{what}");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("the migration must refuse"),
        }
        let c = rusqlite::Connection::open(&db).unwrap();
        assert_eq!(count(&c, "SELECT MAX(version) FROM schema_version"), 5);
        assert_eq!(count(&c, "SELECT COUNT(*) FROM history"), 6);
        assert_eq!(
            count(
                &c,
                "SELECT COUNT(*) FROM receipts WHERE invoice_id IS NOT NULL"
            ),
            5
        );
        assert_eq!(
            count(&c, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invoices' AND name LIKE 'sqlite_autoindex%'"),
            2
        );
        assert_eq!(
            count(
                &c,
                "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v6'"
            ),
            0
        );
    }
    assert!(dir.path().join("ledger.sqlite3.bak-v5").exists());
}
