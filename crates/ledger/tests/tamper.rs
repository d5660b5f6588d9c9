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

/// A connection as the sqlite3 shell opens one (foreign keys off, its default), with the
/// guard triggers dropped.
fn unguard(s: &Setup) -> rusqlite::Connection {
    let c = raw(s);
    c.pragma_update(None, "foreign_keys", "OFF").unwrap();
    c.execute_batch(
        "DROP TRIGGER invoices_immutable; DROP TRIGGER invoices_never_deleted;
         DROP TRIGGER receipts_immutable; DROP TRIGGER outbox_leaves_with_receipt;
         DROP TRIGGER invoices_status_final; DROP TRIGGER history_never_deleted;",
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
         WHERE seq = 2",
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
        "DELETE FROM outbox WHERE seq = 3; DELETE FROM history WHERE seq = 3;
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

/// The invoice at `seq`'s (id, number), read from the file.
fn id_and_number(c: &rusqlite::Connection, seq: u64) -> (String, String) {
    c.query_row(
        "SELECT id, number FROM invoices WHERE seq = ?1",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn a_moved_lease_anchor_is_caught_and_an_issuance_it_no_longer_covers_records_its_number() {
    // No index finds an invoice by number (schema 6): the lease's anchor does. Moved by
    // hand, it no longer leads to the invoices issued before, which verify names; the
    // next issuance, whose number the anchor no longer gives, records it as a key and is
    // found through that.
    let s = ledger_with_history();
    let c = raw(&s);
    c.execute_batch(
        "DROP TRIGGER leases_anchored_once;
         UPDATE leases SET anchor_seq = anchor_seq + 10;",
    )
    .unwrap();
    let (_, first_number) = id_and_number(&c, 1);
    assert!(matches!(
        s.ledger.show(&first_number),
        Err(LedgerError::NotFound(_))
    ));
    let (seq, what) = integrity(&s);
    assert_eq!(seq, 1);
    assert!(what.contains("does not lead back to it"), "{what}");
    assert!(what.contains(&first_number), "{what}");

    let fifth = s
        .ledger
        .issue(&ordinary("5", "100", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    let keys: Vec<(String, u64)> = c
        .prepare("SELECT key, seq FROM invoice_keys")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(keys, [(fifth.invoice.number.clone(), 5)]);
    assert_eq!(
        s.ledger.show(&fifth.invoice.number).unwrap().envelope,
        fifth
    );
}

#[test]
fn a_copied_id_or_number_is_caught_without_a_unique_index() {
    // Even re-signed with the device key, an invoice that takes another's id or number
    // is found: that id or number leads to the other invoice.
    for column in ["id", "number"] {
        let s = ledger_with_history();
        let c = unguard(&s);
        let (id, number) = id_and_number(&c, 2);
        let env: String = c
            .query_row("SELECT envelope FROM invoices WHERE seq = 3", [], |r| {
                r.get(0)
            })
            .unwrap();
        let mut env: kaipiao_core::Envelope = serde_json::from_str(&env).unwrap();
        if column == "id" {
            env.invoice.id = id;
        } else {
            env.invoice.number = number;
        }
        let forged = kaipiao_core::sign::seal_invoice(&s.key, env.invoice);
        c.execute(
            "UPDATE invoices SET envelope = ?1, hash = ?2, id = ?3, number = ?4 WHERE seq = 3",
            [
                serde_json::to_string(&forged).unwrap(),
                forged.hash.clone(),
                forged.invoice.id.clone(),
                forged.invoice.number.clone(),
            ],
        )
        .unwrap();
        let (seq, what) = integrity(&s);
        assert_eq!(seq, 3, "{column}: {what}");
        assert!(what.contains("does not lead back"), "{column}: {what}");
    }
}

#[test]
fn an_edited_prev_seq_is_caught() {
    // The gap guard is a constraint and a foreign key, which a shell can be told to ignore.
    let s = ledger_with_history();
    let c = unguard(&s);
    c.execute_batch(
        "PRAGMA ignore_check_constraints = ON; UPDATE invoices SET prev_seq = 1 WHERE seq = 3;",
    )
    .unwrap();
    let (seq, what) = integrity(&s);
    assert_eq!(seq, 3);
    assert!(what.contains("prev_seq"), "{what}");
}
