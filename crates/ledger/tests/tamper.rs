//! `verify` against a tampered file: each test edits the SQLite file as someone with the
//! sqlite3 shell would (dropping the guard triggers first) and expects the first bad seq.

use kaipiao_ledger::{LedgerError, Status};
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;

/// Four invoices, the first two with receipts.
fn ledger_with_history() -> Setup {
    let s = with_lease(&Terms::default());
    let mut envs = Vec::new();
    for i in 1..=4 {
        envs.push(
            s.ledger
                .issue(&ordinary(&i.to_string(), "100", "0.13"), &s.key, t0())
                .unwrap()
                .envelope,
        );
    }
    for e in &envs[..2] {
        s.ledger
            .store_receipt(&e.invoice.id, &receipt(&s.authority, e, "accepted"), t0())
            .unwrap();
    }
    assert_eq!(s.ledger.verify().unwrap().invoices, 4);
    s
}

fn unguard(s: &Setup) -> rusqlite::Connection {
    let c = raw(s);
    c.execute_batch(
        "DROP TRIGGER invoices_immutable; DROP TRIGGER invoices_never_deleted;
         DROP TRIGGER receipts_immutable; DROP TRIGGER outbox_leaves_with_receipt;
         DROP TRIGGER invoices_status_final;",
    )
    .unwrap();
    c
}

fn integrity(s: &Setup) -> (u64, String) {
    match s.ledger.verify() {
        Err(LedgerError::Integrity { seq, what }) => (seq, what),
        other => panic!("expected an integrity failure, got {other:?}"),
    }
}

#[test]
fn one_edited_byte_in_an_envelope() {
    let s = ledger_with_history();
    let c = unguard(&s);
    let env: String = c
        .query_row("SELECT envelope FROM invoices WHERE seq = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    let edited = env.replacen("\"issuer\":\"clerk1\"", "\"issuer\":\"clerk2\"", 1);
    assert_eq!(edited.len(), env.len());
    assert_ne!(edited, env);
    c.execute("UPDATE invoices SET envelope = ?1 WHERE seq = 3", [&edited])
        .unwrap();
    let (seq, what) = integrity(&s);
    assert_eq!(seq, 3);
    assert!(what.contains("hash does not match the invoice"), "{what}");
    // Export still works (it is how the damage is shown to someone), verify does not pass.
    let mut out = Vec::new();
    s.ledger.export(&mut out).unwrap();
}

#[test]
fn an_edited_amount_column() {
    let s = ledger_with_history();
    let c = unguard(&s);
    c.execute("UPDATE invoices SET total = '1.00' WHERE seq = 2", [])
        .unwrap();
    let (seq, what) = integrity(&s);
    assert_eq!(seq, 2);
    assert!(what.contains("total"), "{what}");
}

#[test]
fn a_deleted_receipt_signature() {
    let s = ledger_with_history();
    let c = unguard(&s);
    c.execute(
        "UPDATE receipts SET receipt = json_remove(receipt, '$.authority_signature')
         WHERE invoice_id = (SELECT id FROM invoices WHERE seq = 2)",
        [],
    )
    .unwrap();
    let (seq, what) = integrity(&s);
    assert_eq!(seq, 2);
    assert!(what.contains("authority signature"), "{what}");
}

#[test]
fn a_re_signed_envelope_with_a_broken_link() {
    // Even with the device key, an invoice cannot be slipped into the chain.
    let s = ledger_with_history();
    let c = unguard(&s);
    let env: String = c
        .query_row("SELECT envelope FROM invoices WHERE seq = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut env: kaipiao_core::Envelope = serde_json::from_str(&env).unwrap();
    env.invoice.prev_hash = "f".repeat(64);
    let forged = kaipiao_core::sign::seal_invoice(&s.key, env.invoice);
    c.execute(
        "UPDATE invoices SET envelope = ?1, hash = ?2 WHERE seq = 3",
        [serde_json::to_string(&forged).unwrap(), forged.hash.clone()],
    )
    .unwrap();
    let (seq, what) = integrity(&s);
    assert_eq!(seq, 3);
    assert!(what.contains("prev_hash does not link"), "{what}");
}

#[test]
fn a_deleted_invoice_leaves_a_gap() {
    let s = ledger_with_history();
    let c = unguard(&s);
    c.execute_batch(
        "DELETE FROM outbox WHERE seq = 3; DELETE FROM history WHERE invoice_id = (SELECT id FROM invoices WHERE seq = 3);
         DELETE FROM invoices WHERE seq = 3;",
    )
    .unwrap();
    let (seq, what) = integrity(&s);
    assert_eq!(seq, 3);
    assert!(what.contains("missing"), "{what}");
}

#[test]
fn a_status_flipped_without_a_receipt() {
    let s = ledger_with_history();
    let c = unguard(&s);
    c.execute_batch(
        "DELETE FROM outbox WHERE seq = 4; UPDATE invoices SET status = 'accepted' WHERE seq = 4;",
    )
    .unwrap();
    let (seq, what) = integrity(&s);
    assert_eq!(seq, 4);
    assert!(what.contains("without a stored receipt"), "{what}");
}

#[test]
fn garbage_in_the_file_is_an_error_not_a_panic() {
    let s = ledger_with_history();
    let c = unguard(&s);
    c.execute_batch(
        "UPDATE invoices SET envelope = 'not json' WHERE seq = 1;
         DROP TRIGGER leases_immutable;
         UPDATE leases SET lease_json = '{';
         UPDATE device SET seller = '[';",
    )
    .unwrap();
    assert!(matches!(
        s.ledger.verify(),
        Err(LedgerError::Integrity { .. })
    ));
    assert!(matches!(
        s.ledger.status(t0()),
        Err(LedgerError::Integrity { .. })
    ));
    assert!(s.ledger.show("26033000000100000001").is_err());
    assert!(s
        .ledger
        .issue(&ordinary("1", "1", "0.13"), &s.key, t0())
        .is_err());
    let mut out = Vec::new();
    assert!(s.ledger.export(&mut out).is_err());
}

#[test]
fn an_edited_pinned_authority_key_is_named_as_such() {
    let s = ledger_with_history();
    let (id, text) = s.ledger.envelope_at(3).unwrap().expect("seq 3 is stored");
    let env: kaipiao_core::Envelope = serde_json::from_str(&text).unwrap();
    // The device row has no guard trigger: valid base64, but 9 bytes instead of a key.
    raw(&s)
        .execute(
            "UPDATE device SET authority_public_key = 'bm90IGEga2V5' WHERE id = 1",
            [],
        )
        .unwrap();
    let e = s.ledger.verify().unwrap_err();
    assert!(matches!(&e, LedgerError::PinnedKeyUnreadable(_)), "{e:?}");
    assert_eq!(e.code(), "pinned_key_unreadable");
    // Damaged stored data, as before the variant had its own name: the exit code stays.
    assert_eq!(e.exit_code(), 4);
    assert!(
        e.to_string().contains("authority key pinned at enrolment"),
        "{e}"
    );
    assert!(!e.to_string().contains("seq 0"), "{e}");
    assert!(
        e.message(kaipiao_core::Lang::Zh)
            .contains("固定的税务机关公钥"),
        "{e}"
    );
    // A receipt or a lease is checked against the same key: refused alike, nothing stored.
    let r = s
        .ledger
        .store_receipt(&id, &receipt(&s.authority, &env, "accepted"), t0());
    assert!(
        matches!(r, Err(LedgerError::PinnedKeyUnreadable(_))),
        "{r:?}"
    );
    let r = s
        .ledger
        .store_lease(&lease("lease-2", "260330000002", &Terms::default()), t0());
    assert!(
        matches!(r, Err(LedgerError::PinnedKeyUnreadable(_))),
        "{r:?}"
    );
    assert_eq!(s.ledger.show(&id).unwrap().status, Status::Pending);
    assert_eq!(s.ledger.leases().unwrap().len(), 1);
}
