//! `Ledger::store_receipts`: the receipts of one batch answer, each checked as
//! `store_receipt` checks one, the good ones stored in one transaction.

use kaipiao_core::{DeviceKey, Envelope};
use kaipiao_ledger::{LedgerError, Status};
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;

fn issue(s: &Setup, n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|i| {
            s.ledger
                .issue(&ordinary(&(i + 1).to_string(), "10", "0.13"), &s.key, t0())
                .unwrap()
                .envelope
        })
        .collect()
}

fn pending(s: &Setup) -> Vec<u64> {
    s.ledger
        .outbox(None, 100)
        .unwrap()
        .iter()
        .map(|o| o.seq)
        .collect()
}

fn stored_receipts(s: &Setup) -> i64 {
    raw(s)
        .query_row("SELECT count(*) FROM receipts", [], |r| r.get(0))
        .unwrap()
}

fn is_bad(r: &Result<Status, LedgerError>, says: &str) -> bool {
    matches!(r, Err(LedgerError::BadReceipt(m)) if m.contains(says))
}

#[test]
fn mixed_good_and_bad_receipts_are_judged_one_by_one() {
    let s = with_lease(&Terms::default());
    let e = issue(&s, 5);
    let good0 = receipt(&s.authority, &e[0], "accepted");
    let forged1 = receipt(&DeviceKey::from_bytes(&[4u8; 32]), &e[1], "accepted");
    let rejected2 = receipt(&s.authority, &e[2], "rejected");
    let mut other_bytes = e[3].clone();
    other_bytes.hash = e[4].hash.clone();
    let wrong_hash3 = receipt(&s.authority, &other_bytes, "accepted");
    let good4 = receipt(&s.authority, &e[4], "accepted");
    let unknown = {
        let mut stranger = e[0].clone();
        stranger.invoice.id = "0190a1b2-0000-7000-8000-000000000000".into();
        receipt(&s.authority, &stranger, "accepted")
    };
    let id = |i: usize| e[i].invoice.id.as_str();

    let results = s
        .ledger
        .store_receipts(
            &[
                (id(0), &good0),
                (id(1), &forged1),
                (id(2), &rejected2),
                (id(3), &wrong_hash3),
                (id(4), "{not json"),
                (id(4), &good0), // another invoice's receipt
                (id(4), &good4),
                ("0190a1b2-0000-7000-8000-000000000000", &unknown),
                (id(0), &good0), // the same receipt twice in one call
            ],
            at_hours(1),
        )
        .unwrap();
    assert_eq!(results.len(), 9);
    assert_eq!(results[0].as_ref().ok(), Some(&Status::Accepted));
    assert!(is_bad(&results[1], "signature"), "{:?}", results[1]);
    assert_eq!(results[2].as_ref().ok(), Some(&Status::Rejected));
    assert!(is_bad(&results[3], "hash"), "{:?}", results[3]);
    assert!(is_bad(&results[4], "not JSON"), "{:?}", results[4]);
    assert!(is_bad(&results[5], "for invoice"), "{:?}", results[5]);
    assert_eq!(results[6].as_ref().ok(), Some(&Status::Accepted));
    assert!(is_bad(&results[7], "no invoice"), "{:?}", results[7]);
    assert_eq!(results[8].as_ref().ok(), Some(&Status::Accepted));

    // The bad ones stay pending with their outbox rows; the good ones are final, each
    // stored once, byte for byte, with one history entry.
    assert_eq!(pending(&s), [2, 4]);
    assert_eq!(stored_receipts(&s), 3);
    for (i, status, text) in [
        (0, Status::Accepted, &good0),
        (2, Status::Rejected, &rejected2),
        (4, Status::Accepted, &good4),
    ] {
        let rec = s.ledger.show(id(i)).unwrap();
        assert_eq!(rec.status, status);
        assert!(rec.outbox.is_none());
        assert_eq!(rec.history.len(), 2, "{:?}", rec.history);
        let stored: String = raw(&s)
            .query_row(
                "SELECT receipt FROM receipts WHERE seq = (SELECT seq FROM invoices WHERE id = ?1)",
                [id(i)],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(&stored, text);
    }
    for i in [1, 3] {
        assert_eq!(s.ledger.show(id(i)).unwrap().status, Status::Pending);
    }

    // Repeats are idempotent (the first receipt stays); a different receipt for a final
    // invoice is refused; the rest of the group still goes in.
    let good1 = receipt(&s.authority, &e[1], "accepted");
    let other0 = serde_json::to_string(&receipt_value(
        &s.authority,
        &e[0],
        "accepted",
        "99999999999999999999",
    ))
    .unwrap();
    let results = s
        .ledger
        .store_receipts(
            &[
                (id(0), &good0),
                (id(0), &other0),
                (id(1), &good1),
                (id(2), &rejected2),
            ],
            at_hours(2),
        )
        .unwrap();
    assert_eq!(results[0].as_ref().ok(), Some(&Status::Accepted));
    assert!(
        is_bad(&results[1], "already has a different receipt"),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().ok(), Some(&Status::Accepted));
    assert_eq!(results[3].as_ref().ok(), Some(&Status::Rejected));
    assert_eq!(pending(&s), [4]);
    assert_eq!(stored_receipts(&s), 4);
    assert_eq!(s.ledger.show(id(0)).unwrap().history.len(), 2);

    // Nothing to do, and nothing good: no transaction is needed for either.
    assert!(s.ledger.store_receipts(&[], t0()).unwrap().is_empty());
    let results = s
        .ledger
        .store_receipts(&[(id(3), &wrong_hash3)], t0())
        .unwrap();
    assert!(is_bad(&results[0], "hash"));
    assert_eq!(pending(&s), [4]);
    s.ledger.verify().unwrap();
}

#[test]
fn a_database_failure_stores_nothing_of_the_group() {
    let s = with_lease(&Terms::default());
    let e = issue(&s, 3);
    let texts: Vec<String> = e
        .iter()
        .map(|env| receipt(&s.authority, env, "accepted"))
        .collect();
    let group: Vec<(&str, &str)> = e
        .iter()
        .zip(&texts)
        .map(|(env, t)| (env.invoice.id.as_str(), t.as_str()))
        .collect();
    // The disk fails on the second receipt's row (after the first one was written).
    let conn = raw(&s);
    conn.execute_batch(&format!(
        "CREATE TRIGGER disk_on_fire BEFORE INSERT ON receipts WHEN NEW.seq = (SELECT seq FROM invoices WHERE id = '{}')
         BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        e[1].invoice.id
    ))
    .unwrap();
    let err = s.ledger.store_receipts(&group, t0()).unwrap_err();
    assert!(matches!(err, LedgerError::Sqlite(_)), "{err}");
    assert_eq!(stored_receipts(&s), 0, "all or nothing");
    assert_eq!(pending(&s), [1, 2, 3]);
    for env in &e {
        assert_eq!(s.ledger.show(&env.invoice.id).unwrap().history.len(), 1);
    }

    conn.execute_batch("DROP TRIGGER disk_on_fire").unwrap();
    let results = s.ledger.store_receipts(&group, t0()).unwrap();
    assert!(results.iter().all(|r| matches!(r, Ok(Status::Accepted))));
    assert_eq!(stored_receipts(&s), 3);
    assert!(pending(&s).is_empty());
    // The single-receipt path agrees with what the group stored.
    assert_eq!(
        s.ledger
            .store_receipt(group[1].0, group[1].1, at_hours(1))
            .unwrap(),
        Status::Accepted
    );
    s.ledger.verify().unwrap();
}

/// `store_receipt_groups`: a batch answer stored group by group; a group with a refused
/// receipt is the last one stored, and the rest stay pending for the next run.
#[test]
fn groups_are_stored_in_order_and_stop_after_a_refused_receipt() {
    let s = with_lease(&Terms::default());
    let e = issue(&s, 7);
    let good: Vec<String> = e
        .iter()
        .map(|env| receipt(&s.authority, env, "accepted"))
        .collect();
    let forged = receipt(&DeviceKey::from_bytes(&[4u8; 32]), &e[3], "accepted");
    let mut pairs: Vec<(&str, &str)> = e
        .iter()
        .zip(&good)
        .map(|(env, r)| (env.invoice.id.as_str(), r.as_str()))
        .collect();
    pairs[3].1 = &forged;

    // Groups of 2: [0 1] [2 3] [4 5] [6]. The forged receipt is in the second group.
    let results = s
        .ledger
        .store_receipt_groups(&pairs, 2, at_hours(1))
        .unwrap();
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(results[..3]
        .iter()
        .all(|r| r.as_ref().ok() == Some(&Status::Accepted)));
    assert!(is_bad(&results[3], "signature"), "{:?}", results[3]);
    assert_eq!(stored_receipts(&s), 3);
    assert_eq!(pending(&s), vec![4, 5, 6, 7]);

    // The rest, in one group bigger than what is left: all stored, repeats included.
    let results = s
        .ledger
        .store_receipt_groups(
            &e.iter()
                .zip(&good)
                .map(|(env, r)| (env.invoice.id.as_str(), r.as_str()))
                .collect::<Vec<_>>(),
            100,
            at_hours(2),
        )
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(stored_receipts(&s), 7);
    assert!(pending(&s).is_empty());
    s.ledger.verify().unwrap();
}
