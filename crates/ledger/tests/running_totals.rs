//! The running totals the offline limits are checked against (schema 5: the amount issued
//! under each lease, and the settled totals of the invoices that left pending; pending =
//! issued - settled): kept through issuance, receipts one by one and in groups, rebuilt
//! from the invoices when an older ledger is migrated, and caught by `verify` when edited.

use kaipiao_core::Envelope;
use kaipiao_ledger::LedgerError;
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;

/// What the kept totals say is pending, as the offline limits read them (chain head -
/// settled count, leases' issued amounts - settled amount), and what the invoices say.
#[derive(Debug, PartialEq, Eq)]
struct Totals {
    kept_pending: (i64, i64),
    counted_pending: (i64, i64),
    kept_settled: (i64, i64),
    counted_settled: (i64, i64),
    kept_issued_cents: i64,
    counted_issued_cents: i64,
}

/// The totals on the real file.
fn totals(s: &Setup) -> Totals {
    let c = raw(s);
    let pair = |sql: &str| -> (i64, i64) {
        c.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    };
    let one = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    Totals {
        kept_pending: pair(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM invoices) - count,
                    (SELECT COALESCE(SUM(issued_cents), 0) FROM leases) - cents
             FROM settled_totals WHERE id = 1",
        ),
        counted_pending: pair(
            "SELECT COUNT(*), COALESCE(SUM(ABS(total_amount_cents)), 0)
             FROM invoices WHERE status = 'pending'",
        ),
        kept_settled: pair("SELECT count, cents FROM settled_totals WHERE id = 1"),
        counted_settled: pair(
            "SELECT COUNT(*), COALESCE(SUM(ABS(total_amount_cents)), 0)
             FROM invoices WHERE status != 'pending'",
        ),
        kept_issued_cents: one("SELECT COALESCE(SUM(issued_cents), 0) FROM leases"),
        counted_issued_cents: one("SELECT COALESCE(SUM(ABS(total_amount_cents)), 0) FROM invoices"),
    }
}

/// The kept totals agree with the invoices, and `count` invoices of `cents` are pending
/// (also as the clerk's status shows them).
fn assert_kept(s: &Setup, count: i64, cents: i64) {
    let t = totals(s);
    assert_eq!(t.kept_pending, (count, cents), "{t:?}");
    assert_eq!(t.counted_pending, (count, cents), "{t:?}");
    assert_eq!(t.kept_settled, t.counted_settled, "{t:?}");
    assert_eq!(t.kept_issued_cents, t.counted_issued_cents, "{t:?}");
    assert_eq!(s.ledger.status(t0()).unwrap().pending, count as u64);
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
    // The same invoices as version 3 wrote them: no running totals of any kind.
    let dir = copy_at_version(&s, 3);
    let Setup { key, authority, .. } = s;
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

fn integrity_failure(s: &Setup) -> String {
    match s.ledger.verify() {
        Err(LedgerError::Integrity { what, .. }) => what,
        other => panic!("expected an integrity failure, got {other:?}"),
    }
}

#[test]
fn edited_totals_fail_verify_and_a_missing_row_refuses_issuance() {
    let s = with_lease(&Terms::default());
    issue(&s, "100");
    issue(&s, "100");
    assert_eq!(s.ledger.verify().unwrap().invoices, 2);
    let c = raw(&s);

    // Someone lowers what the offline cap is counted against by settling what is not.
    c.execute("UPDATE settled_totals SET count = 2, cents = 20000", [])
        .unwrap();
    assert_eq!(s.ledger.status(t0()).unwrap().pending, 0);
    let what = integrity_failure(&s);
    assert!(
        what.contains("settled totals (2 invoices, 200.00)"),
        "{what}"
    );
    assert!(
        what.contains("accepted and rejected invoices (0 invoices, 0.00)"),
        "{what}"
    );
    c.execute("UPDATE settled_totals SET count = 0, cents = 0", [])
        .unwrap();
    assert_eq!(s.ledger.verify().unwrap().invoices, 2);

    // Or by lowering the amount issued under the lease: refused by its guard, and when
    // the guard is dropped first, caught by verify.
    let e = c
        .execute("UPDATE leases SET issued_cents = 0", [])
        .unwrap_err();
    assert!(e.to_string().contains("only grows"), "{e}");
    c.execute_batch("DROP TRIGGER leases_only_advance; UPDATE leases SET issued_cents = 0;")
        .unwrap();
    let what = integrity_failure(&s);
    assert!(
        what.contains("issued under lease lease-1 (0.00) differs from its invoices (200.00)"),
        "{what}"
    );
    c.execute("UPDATE leases SET issued_cents = 20000", [])
        .unwrap();
    assert_eq!(s.ledger.verify().unwrap().invoices, 2);

    // Without the settled totals row (its guard dropped first) nothing is issued, and it
    // says why, as an integrity failure: the limits are not lifted.
    c.execute_batch("DROP TRIGGER settled_totals_one_row; DELETE FROM settled_totals;")
        .unwrap();
    let e = s
        .ledger
        .issue(&ordinary("1", "1", "0.13"), &s.key, t0())
        .unwrap_err();
    assert_eq!(e.code(), "integrity", "{e}");
    assert!(e.to_string().contains("settled totals"), "{e}");
    let count: i64 = c
        .query_row("SELECT COUNT(*) FROM invoices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2);
    let what = integrity_failure(&s);
    assert!(what.contains("settled totals (missing)"), "{what}");
}
