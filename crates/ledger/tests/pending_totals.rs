//! The running pending totals (schema 4): what the offline limits are checked against,
//! kept by triggers through issuance, receipts one by one and in groups, migrated from a
//! version-3 ledger, and caught by `verify` when edited.

use kaipiao_core::Envelope;
use kaipiao_ledger::LedgerError;
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;

/// (kept count, kept cents, counted, summed) on the real file.
fn totals(s: &Setup) -> (i64, i64, i64, i64) {
    raw(s)
        .query_row(
            "SELECT (SELECT count FROM pending_totals), (SELECT cents FROM pending_totals),
                    COUNT(*), COALESCE(SUM(ABS(total_amount_cents)), 0)
             FROM invoices WHERE status = 'pending'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

fn assert_kept(s: &Setup, count: i64, cents: i64) {
    assert_eq!(totals(s), (count, cents, count, cents));
}

fn issue(s: &Setup, price: &str) -> Envelope {
    s.ledger
        .issue(&ordinary("1", price, "0.13"), &s.key, t0())
        .unwrap()
        .envelope
}

#[test]
fn issuance_receipts_and_groups_keep_the_totals() {
    let s = with_lease(&Terms {
        cap: "1000.00",
        ..Terms::default()
    });
    assert_kept(&s, 0, 0);
    // The cap counts amounts before tax: 100.00 each.
    let envs: Vec<Envelope> = (0..5).map(|_| issue(&s, "100")).collect();
    assert_kept(&s, 5, 5 * 10_000);

    // A refused issuance (over the cap) changes nothing.
    let e = s
        .ledger
        .issue(&ordinary("1", "500.01", "0.13"), &s.key, t0())
        .unwrap_err();
    assert_eq!(e.code(), "offline_amount_exceeded", "{e}");
    assert_kept(&s, 5, 5 * 10_000);

    let one = &envs[0];
    s.ledger
        .store_receipt(
            &one.invoice.id,
            &receipt(&s.authority, one, "accepted"),
            t0(),
        )
        .unwrap();
    assert_kept(&s, 4, 4 * 10_000);
    // A replayed receipt does not count twice.
    s.ledger
        .store_receipt(
            &one.invoice.id,
            &receipt(&s.authority, one, "accepted"),
            t0(),
        )
        .unwrap();
    assert_kept(&s, 4, 4 * 10_000);

    // Rejected is final too; a bad receipt in the group is not stored and keeps its
    // invoice pending.
    let bodies: Vec<String> = vec![
        receipt(&s.authority, &envs[1], "rejected"),
        receipt(&s.authority, &envs[2], "accepted"),
        receipt(&authority_impostor(), &envs[3], "accepted"),
    ];
    let ids: Vec<&str> = envs[1..4].iter().map(|e| e.invoice.id.as_str()).collect();
    let pairs: Vec<(&str, &str)> = ids
        .iter()
        .copied()
        .zip(bodies.iter().map(String::as_str))
        .collect();
    let results = s.ledger.store_receipt_groups(&pairs, 2, t0()).unwrap();
    assert!(results[2].is_err(), "{results:?}");
    assert_kept(&s, 2, 2 * 10_000);

    // What the clerk sees is counted from the same totals.
    let status = s.ledger.status(t0()).unwrap();
    assert_eq!(status.offline_amount_left.as_deref(), Some("800.00"));
    assert_eq!(s.ledger.verify().unwrap().invoices, 5);
}

fn authority_impostor() -> kaipiao_core::DeviceKey {
    kaipiao_core::DeviceKey::from_bytes(&[4u8; 32])
}

#[test]
fn a_version_3_ledger_gets_its_totals_from_its_invoices() {
    let s = with_lease(&Terms::default());
    let envs: Vec<Envelope> = ["100", "10", "1"].iter().map(|p| issue(&s, p)).collect();
    s.ledger
        .store_receipt(
            &envs[0].invoice.id,
            &receipt(&s.authority, &envs[0], "accepted"),
            t0(),
        )
        .unwrap();
    let Setup {
        dir,
        ledger,
        key,
        authority,
    } = s;
    drop(ledger);
    let db = dir.path().join(kaipiao_ledger::DB_FILE);
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "DROP TRIGGER pending_totals_on_issue; DROP TRIGGER pending_totals_on_final;
             DROP TRIGGER pending_totals_one_row; DROP TABLE pending_totals;
             DELETE FROM schema_version WHERE version > 3;",
        )
        .unwrap();
    }
    let ledger = kaipiao_ledger::Ledger::open(dir.path()).unwrap();
    let s = Setup {
        dir,
        ledger,
        key,
        authority,
    };
    assert!(s.dir.path().join("ledger.sqlite3.bak-v3").exists());
    assert_kept(&s, 2, 1_000 + 100);
    issue(&s, "1000");
    assert_kept(&s, 3, 1_000 + 100 + 100_000);
    assert_eq!(s.ledger.verify().unwrap().invoices, 4);
}

#[test]
fn edited_totals_fail_verify_and_a_missing_row_refuses_issuance() {
    let s = with_lease(&Terms::default());
    issue(&s, "100");
    issue(&s, "100");
    assert_eq!(s.ledger.verify().unwrap().invoices, 2);
    // Someone lowers what the offline cap is counted against.
    raw(&s)
        .execute("UPDATE pending_totals SET cents = 0", [])
        .unwrap();
    match s.ledger.verify() {
        Err(LedgerError::Integrity { what, .. }) => {
            assert!(what.contains("pending totals"), "{what}");
            assert!(what.contains("2 invoices, 200.00"), "{what}");
        }
        other => panic!("expected an integrity failure, got {other:?}"),
    }

    // Without the row (its guard dropped first) nothing is issued, and it says why.
    let c = raw(&s);
    c.execute_batch("DROP TRIGGER pending_totals_one_row; DELETE FROM pending_totals;")
        .unwrap();
    let e = s
        .ledger
        .issue(&ordinary("1", "1", "0.13"), &s.key, t0())
        .unwrap_err();
    assert!(e.to_string().contains("pending totals"), "{e}");
    let count: i64 = c
        .query_row("SELECT COUNT(*) FROM invoices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2);
}
