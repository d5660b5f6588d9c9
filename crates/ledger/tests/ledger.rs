//! The ledger's behaviour on real SQLite files: set-up, issuance of every kind, limits,
//! receipts, durability, locking and migrations.

use kaipiao_core::{Kind, Party, ZERO_HASH};
use kaipiao_ledger::{KeySource, Ledger, LedgerError, ListFilter, Protection, Status};
use kaipiao_testkit::fixtures::parse_draft as draft;
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::ids::buyer_tax_id;
use kaipiao_testkit::keys::PASSPHRASE as PASS;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;
use serde_json::json;

fn code(e: &LedgerError) -> String {
    e.code().to_string()
}

#[test]
fn ledger_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Ledger>();
}

#[test]
fn init_validates_and_refuses_a_second_device() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let mut bad = seller();
    bad.tax_id = "91330100MA2B3C4D5X".into();
    let e = ledger.init(&bad, "pc", &keys(), t0()).unwrap_err();
    assert_eq!(e.field(), "seller.tax_id", "{e}");
    let e = ledger.init(&seller(), "", &keys(), t0()).unwrap_err();
    assert_eq!(e.field(), "device_name");
    let e = ledger
        .init(&seller(), &"长".repeat(101), &keys(), t0())
        .unwrap_err();
    assert_eq!(e.field(), "device_name");
    assert!(ledger.device().unwrap().is_none());

    let dev = ledger.init(&seller(), "前台电脑", &keys(), t0()).unwrap();
    assert_eq!(dev.key_protection, Protection::PassphraseFile);
    assert_eq!(dev.device_id, None);
    assert!(dir
        .path()
        .join(kaipiao_ledger::keystore::SEALED_KEY_FILE)
        .exists());
    let e = ledger.init(&seller(), "again", &keys(), t0()).unwrap_err();
    assert!(matches!(e, LedgerError::AlreadyInitialized));
    assert_eq!(ledger.device().unwrap().unwrap(), dev);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let sub = dir.path().join("a/b");
        Ledger::open(&sub).unwrap();
        let mode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mode = std::fs::metadata(sub.join(kaipiao_ledger::DB_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn key_sealing_round_trip_wrong_passphrase_and_tampered_file() {
    let s = enrolled();
    let dev = s.ledger.device().unwrap().unwrap();
    assert_eq!(s.key.public().to_base64(), dev.public_key);

    let e = s
        .ledger
        .unseal_key(&KeySource::with_passphrase("wrong"))
        .unwrap_err();
    // A typed variant: no front end has to recognise it by its text.
    assert!(matches!(&e, LedgerError::WrongPassphrase), "{e}");
    assert_eq!(e.code(), "wrong_passphrase");
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    let e = s.ledger.unseal_key(&KeySource::default()).unwrap_err();
    assert!(
        matches!(&e, LedgerError::Key(m) if m.contains("KAIPIAO_PASSPHRASE")),
        "{e}"
    );

    let path = s.dir.path().join(kaipiao_ledger::keystore::SEALED_KEY_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(PASS));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let nonce = v["nonce"].as_str().unwrap().to_string();
    let flipped = match nonce.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &nonce[1..]),
    };
    v["nonce"] = json!(flipped);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    let e = s.ledger.unseal_key(&keys()).unwrap_err();
    assert!(
        matches!(&e, LedgerError::Key(m) if m.contains("tampered")),
        "{e}"
    );

    std::fs::write(&path, "{not json").unwrap();
    let e = s.ledger.unseal_key(&keys()).unwrap_err();
    assert!(
        matches!(&e, LedgerError::Key(m) if m.contains("damaged")),
        "{e}"
    );
    std::fs::remove_file(&path).unwrap();
    let e = s.ledger.unseal_key(&keys()).unwrap_err();
    assert!(
        matches!(&e, LedgerError::Key(m) if m.contains("missing")),
        "{e}"
    );
}

#[test]
fn without_a_passphrase_and_without_a_keyring_init_says_what_to_do() {
    // Only meaningful where no Secret Service can answer (this CI machine); elsewhere the
    // key would really be stored in the developer's keyring.
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        eprintln!("skipped: a D-Bus session exists here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let e = ledger
        .init(&seller(), "pc", &KeySource::default(), t0())
        .unwrap_err();
    assert!(
        matches!(&e, LedgerError::Key(m) if m == kaipiao_ledger::keystore::NO_KEYRING),
        "{e}"
    );
    assert!(ledger.device().unwrap().is_none(), "nothing half written");
}

#[test]
fn enrolment_pins_the_device_id_and_authority_key() {
    let s = enrolled();
    let dev = s.ledger.device().unwrap().unwrap();
    assert_eq!(dev.device_id.as_deref(), Some(DEVICE_ID));
    assert_eq!(
        dev.authority_public_key,
        Some(authority().public().to_base64())
    );
    assert_eq!(dev.servers, vec!["http://127.0.0.1:8787".to_string()]);
    // Same answer again (retry of enroll): fine.
    s.ledger
        .record_enrollment(
            DEVICE_ID,
            &authority().public().to_base64(),
            &["https://a.example".into()],
            t0(),
        )
        .unwrap();
    let e = s
        .ledger
        .record_enrollment(
            "0190a1b2-c3d4-7e5f-8a9b-000000000000",
            &authority().public().to_base64(),
            &[],
            t0(),
        )
        .unwrap_err();
    assert_eq!(e.field(), "device_id");
    let other = kaipiao_core::DeviceKey::from_bytes(&[3u8; 32])
        .public()
        .to_base64();
    let e = s
        .ledger
        .record_enrollment(DEVICE_ID, &other, &[], t0())
        .unwrap_err();
    assert_eq!(e.field(), "authority_public_key");
    let e = s
        .ledger
        .record_enrollment("NOT-A-UUID", &other, &[], t0())
        .unwrap_err();
    assert_eq!(e.field(), "device_id");
    let e = s.ledger.set_servers(&["ftp://x".into()]).unwrap_err();
    assert_eq!(e.field(), "servers[0]");
    s.ledger
        .set_servers(&["https://a.example/".into(), "https://b.example".into()])
        .unwrap();
    assert_eq!(
        s.ledger.device().unwrap().unwrap().servers,
        vec![
            "https://a.example".to_string(),
            "https://b.example".to_string()
        ]
    );
    // Plain http:// only to this machine, or to an endpoint allowed at enrolment.
    let e = s
        .ledger
        .set_servers(&["https://a.example".into(), "http://b.example".into()])
        .unwrap_err();
    assert_eq!(e.code(), "invalid_server");
    assert_eq!(e.field(), "servers[1]");
    assert!(e.to_string().contains("https://"), "{e}");
    s.ledger
        .set_servers(&["http://localhost:8787".into(), "http://[::1]:8787".into()])
        .unwrap();
    s.ledger
        .record_enrollment_allowing(
            DEVICE_ID,
            &authority().public().to_base64(),
            &["http://10.0.0.5:8787".into()],
            &["http://10.0.0.5:8787/".into()],
            t0(),
        )
        .unwrap();
    let dev = s.ledger.device().unwrap().unwrap();
    assert_eq!(
        dev.insecure_servers,
        vec!["http://10.0.0.5:8787".to_string()]
    );
    s.ledger
        .set_servers(&["http://10.0.0.5:8787".into(), "https://c.example".into()])
        .unwrap();
    assert!(s
        .ledger
        .set_servers(&["http://10.0.0.6:8787".into()])
        .is_err());
}

#[test]
fn leases_are_verified_stored_once_and_used_in_order() {
    let s = enrolled();
    let terms = Terms::default();
    let good = lease("lease-1", "260330000001", &terms);
    let mut forged = good.clone();
    forged.last = 5000;
    assert_eq!(
        code(&s.ledger.store_lease(&forged, t0()).unwrap_err()),
        "lease_signature_invalid"
    );
    let mut other_device = lease("lease-x", "260330000001", &terms);
    other_device.device_id = "0190a1b2-c3d4-7e5f-8a9b-ffffffffffff".into();
    let other_device = other_device.signed(&authority());
    assert_eq!(
        s.ledger
            .store_lease(&other_device, t0())
            .unwrap_err()
            .field(),
        "lease.device_id"
    );
    let by_other_authority = lease("lease-y", "260330000001", &terms)
        .signed(&kaipiao_core::DeviceKey::from_bytes(&[5u8; 32]));
    assert!(s.ledger.store_lease(&by_other_authority, t0()).is_err());

    s.ledger.store_lease(&good, t0()).unwrap();
    s.ledger.store_lease(&good, t0()).unwrap(); // idempotent
    let overlapping = lease(
        "lease-2",
        "260330000001",
        &Terms {
            first: 1000,
            last: 2000,
            ..Terms::default()
        },
    );
    assert_eq!(
        code(&s.ledger.store_lease(&overlapping, t0()).unwrap_err()),
        "lease_overlap"
    );
    let second = lease(
        "lease-2",
        "260330000002",
        &Terms {
            first: 1,
            last: 10,
            ..Terms::default()
        },
    );
    s.ledger.store_lease(&second, t0()).unwrap();
    let leases = s.ledger.leases().unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0].lease, good);
    assert_eq!(leases[0].numbers_left, 1000);
    assert_eq!(leases[1].next, Some(1));

    // Not enrolled: no lease can be checked.
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    l.init(&seller(), "pc", &keys(), t0()).unwrap();
    assert!(matches!(
        l.store_lease(&good, t0()),
        Err(LedgerError::NotEnrolled)
    ));
}

#[test]
fn issue_requires_enrolment_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    assert!(matches!(
        l.issue(&ordinary("1", "1", "0.13"), &authority(), t0()),
        Err(LedgerError::NotInitialized)
    ));
    l.init(&seller(), "pc", &keys(), t0()).unwrap();
    let key = l.unseal_key(&keys()).unwrap();
    assert!(matches!(
        l.issue(&ordinary("1", "1", "0.13"), &key, t0()),
        Err(LedgerError::NotEnrolled)
    ));
    let s = enrolled();
    assert!(matches!(
        s.ledger.issue(&ordinary("1", "1", "0.13"), &s.key, t0()),
        Err(LedgerError::NoNumbers)
    ));
    // A foreign key is refused before anything is signed.
    s.ledger
        .store_lease(&lease("lease-1", "260330000001", &Terms::default()), t0())
        .unwrap();
    let e = s
        .ledger
        .issue(&ordinary("1", "1", "0.13"), &authority(), t0())
        .unwrap_err();
    assert!(matches!(e, LedgerError::Key(_)), "{e}");
}

#[test]
fn issuance_of_every_kind_links_the_chain() {
    let s = with_lease(&Terms::default());
    assert_eq!(
        s.ledger.head().unwrap(),
        kaipiao_core::wire::Head {
            seq: 0,
            hash: ZERO_HASH.into()
        }
    );

    let a = s
        .ledger
        .issue(&ordinary("2", "50", "0.13"), &s.key, t0())
        .unwrap();
    let inv = &a.envelope.invoice;
    assert_eq!((inv.seq, inv.kind), (1, Kind::Ordinary));
    assert_eq!(inv.prev_hash, ZERO_HASH);
    assert_eq!(inv.number, "26033000000100000001");
    assert_eq!(
        (
            inv.total_amount.as_str(),
            inv.total_tax.as_str(),
            inv.total.as_str()
        ),
        ("100.00", "13.00", "113.00")
    );
    assert_eq!(inv.issued_at, "2026-03-01T09:00:00Z");
    assert_eq!(inv.seller, seller());
    let id = uuid::Uuid::parse_str(&inv.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(inv.id, id.hyphenated().to_string());
    assert_eq!(a.envelope_json, serde_json::to_string(&a.envelope).unwrap());
    assert!(a.warnings.is_empty());

    let special = draft(json!({
        "kind": "special",
        "buyer": {"name": "北京采购有限公司", "tax_id": buyer_tax_id().to_lowercase(), "address": "北京", "bank": "建行"},
        "lines": [
            {"name": "咨询服务", "tax_code": "3040201000000000000", "quantity": "1", "unit_price": "1000", "tax_rate": "0.06"},
            {"name": "出口货物", "quantity": "3", "unit_price": "10", "tax_rate": "0", "treatment": "zero_rated"}
        ]
    }));
    let b = s.ledger.issue(&special, &s.key, at_hours(1)).unwrap();
    assert_eq!(b.envelope.invoice.kind, Kind::Special);
    assert_eq!(b.envelope.invoice.prev_hash, a.envelope.hash);
    assert_eq!(b.envelope.invoice.buyer.tax_id, buyer_tax_id());
    assert_eq!(b.envelope.invoice.total, "1090.00");

    let inclusive = draft(json!({
        "buyer": {"name": "李四"},
        "price_includes_tax": true,
        "lines": [{"name": "餐饮", "quantity": "1", "unit_price": "113", "tax_rate": "0.13"},
                  {"name": "图书", "quantity": "3", "unit_price": "10", "tax_rate": "0.09"},
                  {"name": "蔬菜", "quantity": "1", "unit_price": "8.8", "tax_rate": "0", "treatment": "exempt"}]
    }));
    let c = s.ledger.issue(&inclusive, &s.key, at_hours(2)).unwrap();
    let l = &c.envelope.invoice.lines;
    assert_eq!(
        (
            l[0].amount.as_str(),
            l[0].tax.as_str(),
            l[0].unit_price.as_str()
        ),
        ("100.00", "13.00", "100")
    );
    assert_eq!((l[1].amount.as_str(), l[1].tax.as_str()), ("27.52", "2.48"));
    assert_eq!((l[2].amount.as_str(), l[2].tax.as_str()), ("8.80", "0.00"));
    assert_eq!(c.envelope.invoice.total, "151.80");

    let head = s.ledger.head().unwrap();
    assert_eq!(
        (head.seq, head.hash.as_str()),
        (3, c.envelope.hash.as_str())
    );
    let listed = s.ledger.list(&ListFilter::default()).unwrap();
    assert_eq!(
        listed.iter().map(|i| i.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(listed.iter().all(|i| i.status == Status::Pending));
    let outbox = s.ledger.outbox(None, 10).unwrap();
    assert_eq!(outbox.len(), 3);
    assert_eq!(outbox[1].envelope_json, b.envelope_json);
    assert_eq!(
        s.ledger.envelope_at(2).unwrap(),
        Some((b.envelope.invoice.id.clone(), b.envelope_json.clone()))
    );
    assert_eq!(s.ledger.envelope_at(9).unwrap(), None);
    let shown = s.ledger.show(&b.envelope.invoice.number).unwrap();
    assert_eq!(shown.envelope, b.envelope);
    assert_eq!(shown.history.len(), 1);
    assert_eq!(shown.history[0].status, "issued");
    assert!(shown.outbox.is_some());
    assert_eq!(
        s.ledger
            .show(&b.envelope.invoice.id.to_uppercase())
            .unwrap()
            .envelope,
        b.envelope
    );
    assert!(matches!(
        s.ledger.show("nope"),
        Err(LedgerError::NotFound(_))
    ));
    assert_eq!(s.ledger.leases().unwrap()[0].next, Some(4));
    assert_eq!(s.ledger.verify().unwrap().invoices, 3);
}

#[test]
fn credit_notes_partial_full_over_and_against_rejected() {
    let s = with_lease(&Terms::default());
    let original = s
        .ledger
        .issue(&ordinary("10", "100", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    let number = original.invoice.number.clone();
    let credit = |qty: &str| {
        draft(json!({
            "kind": "credit",
            "original": number,
            "buyer": {"name": "张三"},
            "lines": [{"name": "办公用品", "unit": "件", "quantity": qty, "tax_rate": "0.13"}]
        }))
    };
    let preview = s.ledger.preview(&credit("-3")).unwrap();
    assert_eq!(preview.total, "-339.00");
    let partial = s
        .ledger
        .issue(&credit("-3"), &s.key, t0())
        .unwrap()
        .envelope;
    assert_eq!(partial.invoice.kind, Kind::Credit);
    assert_eq!(
        partial.invoice.original.as_ref().map(|o| o.id.as_str()),
        Some(original.invoice.id.as_str())
    );
    assert_eq!(
        (
            partial.invoice.total_amount.as_str(),
            partial.invoice.total_tax.as_str()
        ),
        ("-300.00", "-39.00")
    );

    let e = s.ledger.issue(&credit("-8"), &s.key, t0()).unwrap_err();
    assert_eq!(code(&e), "credit_exceeds_original", "{e}");
    assert_eq!(e.field(), "lines[0].quantity");
    let rest = s
        .ledger
        .issue(&credit("-7"), &s.key, t0())
        .unwrap()
        .envelope;
    assert_eq!(
        (
            rest.invoice.total_amount.as_str(),
            rest.invoice.total_tax.as_str()
        ),
        ("-700.00", "-91.00")
    );
    assert_eq!(
        code(&s.ledger.issue(&credit("-0.5"), &s.key, t0()).unwrap_err()),
        "credit_exceeds_original"
    );

    // A credit of a credit, of an unknown number, and without a number.
    let mut of_credit = credit("-1");
    of_credit.original = Some(partial.invoice.number.clone());
    assert_eq!(
        code(&s.ledger.issue(&of_credit, &s.key, t0()).unwrap_err()),
        "original_is_credit"
    );
    let mut unknown = credit("-1");
    unknown.original = Some("26033000000199999999".into());
    let e = s.ledger.issue(&unknown, &s.key, t0()).unwrap_err();
    assert_eq!(
        (code(&e).as_str(), e.field()),
        ("original_unknown", "original")
    );
    let mut missing = credit("-1");
    missing.original = None;
    assert_eq!(
        s.ledger.issue(&missing, &s.key, t0()).unwrap_err().field(),
        "original"
    );

    // The authority rejected an invoice: it needs no credit note.
    let other = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    s.ledger
        .store_receipt(
            &other.invoice.id,
            &receipt(&s.authority, &other, "rejected"),
            t0(),
        )
        .unwrap();
    let mut against_rejected = credit("-1");
    against_rejected.original = Some(other.invoice.number.clone());
    assert_eq!(
        code(&s.ledger.issue(&against_rejected, &s.key, t0()).unwrap_err()),
        "original_rejected"
    );

    // A rejected credit note frees what it credited.
    s.ledger
        .store_receipt(
            &rest.invoice.id,
            &receipt(&s.authority, &rest, "rejected"),
            t0(),
        )
        .unwrap();
    let again = s
        .ledger
        .issue(&credit("-7"), &s.key, t0())
        .unwrap()
        .envelope;
    assert_eq!(again.invoice.total, "-791.00");
    assert_eq!(s.ledger.verify().unwrap().invoices, 5);
}

/// Everything a refused draft could have touched.
fn snapshot(
    s: &Setup,
) -> (
    kaipiao_core::wire::Head,
    Vec<kaipiao_ledger::LeaseState>,
    usize,
    usize,
) {
    let raw = raw(s);
    let history: i64 = raw
        .query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))
        .unwrap();
    (
        s.ledger.head().unwrap(),
        s.ledger.leases().unwrap(),
        s.ledger.outbox(None, 1000).unwrap().len(),
        history as usize,
    )
}

#[test]
fn a_refused_draft_changes_nothing() {
    let s = with_lease(&Terms::default());
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap();
    let before = snapshot(&s);
    let bad_rate = ordinary("1", "10", "0.17");
    let e = s.ledger.issue(&bad_rate, &s.key, t0()).unwrap_err();
    assert_eq!(e.field(), "lines[0].tax_rate");
    let e = s
        .ledger
        .issue(&ordinary("-1", "10", "0.13"), &s.key, t0())
        .unwrap_err();
    assert_eq!(e.field(), "lines[0].quantity");
    let special_without_buyer_id = draft(json!({"kind": "special", "buyer": {"name": "x"},
        "lines": [{"name": "a", "quantity": "1", "unit_price": "1", "tax_rate": "0.13"}]}));
    assert_eq!(
        s.ledger
            .issue(&special_without_buyer_id, &s.key, t0())
            .unwrap_err()
            .field(),
        "buyer.tax_id"
    );
    let e = s
        .ledger
        .issue(&ordinary("1", "200000", "0.13"), &s.key, t0())
        .unwrap_err();
    assert_eq!(code(&e), "single_invoice_cap");
    assert_eq!(snapshot(&s), before);
    // And the next good one takes the next number, without a gap.
    let next = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap();
    assert_eq!(next.envelope.invoice.number, "26033000000100000002");
}

#[test]
fn no_numbers_when_leases_run_out_then_a_new_lease_continues() {
    let s = with_lease(&Terms {
        first: 5,
        last: 7,
        ..Terms::default()
    });
    for n in 5..=7 {
        let e = s
            .ledger
            .issue(&ordinary("1", "1", "0.13"), &s.key, t0())
            .unwrap()
            .envelope;
        assert_eq!(e.invoice.number, format!("2603300000010000000{n}"));
    }
    let before = snapshot(&s);
    assert!(matches!(
        s.ledger.issue(&ordinary("1", "1", "0.13"), &s.key, t0()),
        Err(LedgerError::NoNumbers)
    ));
    assert_eq!(snapshot(&s), before);
    let st = s.ledger.status(t0()).unwrap();
    assert_eq!(st.numbers_left, 0);
    assert_eq!(s.ledger.leases().unwrap()[0].next, None);

    s.ledger
        .store_lease(
            &lease(
                "lease-2",
                "260330000009",
                &Terms {
                    first: 1,
                    last: 2,
                    ..Terms::default()
                },
            ),
            t0(),
        )
        .unwrap();
    let e = s
        .ledger
        .issue(&ordinary("1", "1", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    assert_eq!(
        (e.invoice.number.as_str(), e.invoice.seq),
        ("26033000000900000001", 4)
    );
    assert_eq!(s.ledger.status(t0()).unwrap().numbers_left, 1);
    assert_eq!(s.ledger.verify().unwrap().invoices, 4);
}

#[test]
fn offline_window_refuses_and_warns() {
    let s = with_lease(&Terms {
        hours: 72,
        ..Terms::default()
    });
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap();
    assert!(s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(10))
        .unwrap()
        .warnings
        .is_empty());
    let w = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(55))
        .unwrap()
        .warnings;
    assert_eq!((w[0].limit, w[0].threshold), ("offline_hours", 75));
    let w = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(66))
        .unwrap()
        .warnings;
    assert_eq!(w[0].threshold, 90);
    let st = s.ledger.status(at_hours(70)).unwrap();
    assert_eq!(st.offline_hours_left.as_deref(), Some("2.00"));
    assert_eq!(st.pending, 4);
    assert_eq!(
        st.oldest_pending_at.as_deref(),
        Some("2026-03-01T09:00:00Z")
    );
    assert_eq!(st.warnings[0].threshold, 90);

    let before = snapshot(&s);
    let e = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(73))
        .unwrap_err();
    assert_eq!(code(&e), "offline_hours_exceeded", "{e}");
    assert!(e.to_string().contains("sync"), "{e}");
    assert_eq!(snapshot(&s), before);
    let st = s.ledger.status(at_hours(73)).unwrap();
    assert_eq!(st.offline_hours_left.as_deref(), Some("0.00"));
    assert_eq!(st.warnings[0].threshold, 100);

    // The oldest one is acknowledged: the window counts from the next pending invoice.
    let first = s.ledger.show("26033000000100000001").unwrap().envelope;
    s.ledger
        .store_receipt(
            &first.invoice.id,
            &receipt(&s.authority, &first, "accepted"),
            at_hours(73),
        )
        .unwrap();
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(73))
        .unwrap();
}

#[test]
fn amount_cap_refuses_and_warns() {
    let s = with_lease(&Terms {
        cap: "1000.00",
        single: "500.00",
        ..Terms::default()
    });
    assert!(s
        .ledger
        .issue(&ordinary("1", "500", "0.13"), &s.key, t0())
        .unwrap()
        .warnings
        .is_empty());
    let w = s
        .ledger
        .issue(&ordinary("1", "300", "0.13"), &s.key, t0())
        .unwrap()
        .warnings;
    assert_eq!((w[0].limit, w[0].threshold), ("offline_amount", 75));
    let st = s.ledger.status(t0()).unwrap();
    assert_eq!(st.offline_amount_left.as_deref(), Some("200.00"));
    let before = snapshot(&s);
    let e = s
        .ledger
        .issue(&ordinary("1", "200.01", "0.13"), &s.key, t0())
        .unwrap_err();
    assert_eq!(code(&e), "offline_amount_exceeded", "{e}");
    assert!(e.to_string().contains("over by 0.01"), "{e}");
    let e = s
        .ledger
        .issue(&ordinary("1", "500.01", "0.13"), &s.key, t0())
        .unwrap_err();
    assert_eq!(code(&e), "single_invoice_cap");
    assert!(s.ledger.preview(&ordinary("1", "500.01", "0.13")).is_err());
    assert_eq!(snapshot(&s), before);
    let w = s
        .ledger
        .issue(&ordinary("1", "150", "0.13"), &s.key, t0())
        .unwrap()
        .warnings;
    assert_eq!(w[0].threshold, 90);
}

#[test]
fn a_clock_behind_the_chain_is_refused() {
    let s = with_lease(&Terms::default());
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(1))
        .unwrap();
    let before = snapshot(&s);
    let e = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), e.field()),
        ("clock_behind", "issued_at")
    );
    assert_eq!(snapshot(&s), before);
    // The same second is fine (issued_at has whole seconds).
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(1))
        .unwrap();
}

#[test]
fn receipts_good_bad_mismatched_and_idempotent() {
    let s = with_lease(&Terms::default());
    let a = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    let b = s
        .ledger
        .issue(&ordinary("2", "10", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    let id = a.invoice.id.as_str();

    let forged = receipt(
        &kaipiao_core::DeviceKey::from_bytes(&[4u8; 32]),
        &a,
        "accepted",
    );
    assert!(matches!(
        s.ledger.store_receipt(id, &forged, t0()),
        Err(LedgerError::BadReceipt(_))
    ));
    let mut wrong_hash = a.clone();
    wrong_hash.hash = b.hash.clone();
    let e = s
        .ledger
        .store_receipt(id, &receipt(&s.authority, &wrong_hash, "accepted"), t0())
        .unwrap_err();
    assert!(
        matches!(&e, LedgerError::BadReceipt(m) if m.contains("hash")),
        "{e}"
    );
    let e = s
        .ledger
        .store_receipt(&b.invoice.id, &receipt(&s.authority, &a, "accepted"), t0())
        .unwrap_err();
    assert!(matches!(e, LedgerError::BadReceipt(_)));
    let bad_code =
        serde_json::to_string(&receipt_value(&s.authority, &a, "accepted", "123")).unwrap();
    assert!(matches!(
        s.ledger.store_receipt(id, &bad_code, t0()),
        Err(LedgerError::BadReceipt(_))
    ));
    let odd_status = serde_json::to_string(&receipt_value(
        &s.authority,
        &a,
        "maybe",
        "12345678901234567890",
    ))
    .unwrap();
    assert!(matches!(
        s.ledger.store_receipt(id, &odd_status, t0()),
        Err(LedgerError::BadReceipt(_))
    ));
    assert!(matches!(
        s.ledger.store_receipt(id, "{", t0()),
        Err(LedgerError::BadReceipt(_))
    ));
    assert_eq!(s.ledger.show(id).unwrap().status, Status::Pending);
    assert_eq!(s.ledger.outbox(None, 10).unwrap().len(), 2);

    // Exactly as received, whatever its spacing.
    let good = serde_json::to_string_pretty(&receipt_value(
        &s.authority,
        &a,
        "accepted",
        "12345678901234567890",
    ))
    .unwrap();
    assert_eq!(
        s.ledger.store_receipt(id, &good, at_hours(1)).unwrap(),
        Status::Accepted
    );
    assert_eq!(
        s.ledger.store_receipt(id, &good, at_hours(2)).unwrap(),
        Status::Accepted
    );
    let compact = receipt(&s.authority, &a, "accepted");
    assert_eq!(
        s.ledger.store_receipt(id, &compact, at_hours(2)).unwrap(),
        Status::Accepted
    );
    let other_code = serde_json::to_string(&receipt_value(
        &s.authority,
        &a,
        "accepted",
        "99999999999999999999",
    ))
    .unwrap();
    assert!(matches!(
        s.ledger.store_receipt(id, &other_code, t0()),
        Err(LedgerError::BadReceipt(_))
    ));
    let rejected = receipt(&s.authority, &a, "rejected");
    assert!(matches!(
        s.ledger.store_receipt(id, &rejected, t0()),
        Err(LedgerError::BadReceipt(_))
    ));

    let rec = s.ledger.show(id).unwrap();
    assert_eq!(rec.status, Status::Accepted);
    assert!(rec.outbox.is_none());
    assert_eq!(
        rec.history
            .iter()
            .map(|h| h.status.as_str())
            .collect::<Vec<_>>(),
        vec!["issued", "accepted"]
    );
    let stored: String = raw(&s)
        .query_row(
            "SELECT receipt FROM receipts WHERE seq = (SELECT seq FROM invoices WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, good, "stored byte for byte");

    assert_eq!(
        s.ledger
            .store_receipt(&b.invoice.id, &receipt(&s.authority, &b, "rejected"), t0())
            .unwrap(),
        Status::Rejected
    );
    let rec = s.ledger.show(&b.invoice.id).unwrap();
    assert!(
        rec.history[1].detail.contains("buyer_unknown"),
        "{:?}",
        rec.history
    );
    assert_eq!(
        s.ledger
            .list(&ListFilter {
                status: Some(Status::Rejected),
                ..Default::default()
            })
            .unwrap()
            .len(),
        1
    );
    assert!(s.ledger.outbox(None, 10).unwrap().is_empty());
    assert_eq!(s.ledger.verify().unwrap().receipts, 2);
}

#[test]
fn outbox_attempts_and_due_times() {
    let s = with_lease(&Terms::default());
    let a = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap();
    let later = t0() + chrono::Duration::milliseconds(1500);
    s.ledger
        .record_attempt(&a.invoice.id, "timeout", Some(later))
        .unwrap();
    let due_now = s.ledger.outbox(Some(t0()), 10).unwrap();
    assert_eq!(due_now.len(), 1);
    assert_eq!(due_now[0].seq, 2);
    let all = s.ledger.outbox(None, 10).unwrap();
    assert_eq!(
        (all[0].attempts, all[0].last_error.as_deref()),
        (1, Some("timeout"))
    );
    assert_eq!(
        all[0].next_attempt_at.as_deref(),
        Some("2026-03-01T09:00:01.500Z")
    );
    assert_eq!(s.ledger.outbox(Some(later), 10).unwrap().len(), 2);
    assert_eq!(s.ledger.outbox(None, 1).unwrap().len(), 1);
    // After the receipt the attempt is a no-op, never an error.
    s.ledger
        .store_receipt(&a.invoice.id, &receipt(&s.authority, &a, "accepted"), t0())
        .unwrap();
    s.ledger
        .record_attempt(&a.invoice.id, "late", None)
        .unwrap();
}

#[test]
fn list_filters() {
    let s = with_lease(&Terms::default());
    let mut d = ordinary("1", "10", "0.13");
    d.buyer.name = "Acme_100%".into();
    s.ledger.issue(&d, &s.key, t0()).unwrap();
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, at_hours(30))
        .unwrap();
    let search = |q: &str| {
        s.ledger
            .list(&ListFilter {
                search: Some(q.into()),
                ..Default::default()
            })
            .unwrap()
            .len()
    };
    assert_eq!(search("acme"), 1);
    assert_eq!(search("_100%"), 1);
    assert_eq!(search("%"), 1);
    assert_eq!(search("00000002"), 1);
    let by_day = s
        .ledger
        .list(&ListFilter {
            from: Some("2026-03-02".into()),
            to: Some("2026-03-02".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_day.len(), 1);
    assert_eq!(by_day[0].seq, 2);
    // A day is the shop's day, China time: 23:30 UTC on 3 March is 07:30 on 4 March in
    // Beijing, and is listed on the 4th, not on the 3rd.
    let early = chrono::DateTime::parse_from_rfc3339("2026-03-03T23:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let seq = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, early)
        .unwrap()
        .envelope
        .invoice
        .seq;
    let day = |d: &str| {
        s.ledger
            .list(&ListFilter {
                from: Some(d.into()),
                to: Some(d.into()),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(day("2026-03-04"), [seq]);
    assert!(day("2026-03-03").is_empty());
    let page = s
        .ledger
        .list(&ListFilter {
            limit: Some(1),
            offset: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page[0].seq, 2);
    assert_eq!(
        s.ledger
            .list(&ListFilter {
                from: Some("yesterday".into()),
                ..Default::default()
            })
            .unwrap_err()
            .field(),
        "from"
    );
}

#[test]
fn list_pages_newest_first_and_by_seq() {
    let s = with_lease(&Terms::default());
    for i in 0..7 {
        let mut d = ordinary("1", "10", "0.13");
        d.buyer.name = if i % 2 == 0 {
            "Acme 100".into()
        } else {
            "Globex".into()
        };
        s.ledger.issue(&d, &s.key, t0()).unwrap();
    }
    let listed = |f: &ListFilter| {
        s.ledger
            .list(f)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };
    let seqs = |f: &ListFilter| s.ledger.list_seqs(f).unwrap();
    let newest = ListFilter {
        newest_first: true,
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(listed(&newest), [7, 6, 5]);
    let last = ListFilter {
        offset: Some(6),
        ..newest.clone()
    };
    assert_eq!(listed(&last), [1]);
    // list_seqs returns what list returns, in the same order and window.
    for f in [&newest, &last, &ListFilter::default()] {
        assert_eq!(seqs(f), listed(f), "{f:?}");
    }
    let acme = ListFilter {
        buyer: Some(" acme ".into()),
        newest_first: true,
        ..Default::default()
    };
    assert_eq!(seqs(&acme), [7, 5, 3, 1]);
    // The rows of a page, by seq, in the order asked; unknown seqs are skipped.
    let page = s.ledger.summaries(&[5, 99, 3]).unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [5, 3]);
    assert_eq!(
        page,
        s.ledger
            .list(&ListFilter {
                offset: Some(1),
                limit: Some(2),
                ..acme.clone()
            })
            .unwrap()
    );
    // The buyer filter never matches a number; the search does.
    let by_number = |f: fn(String) -> ListFilter| seqs(&f("00000002".into())).len();
    assert_eq!(
        by_number(|q| ListFilter {
            buyer: Some(q),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        by_number(|q| ListFilter {
            search: Some(q),
            ..Default::default()
        }),
        1
    );
    // Together they narrow.
    let both = ListFilter {
        search: Some("0000000".into()),
        buyer: Some("globex".into()),
        status: Some(Status::Pending),
        ..Default::default()
    };
    assert_eq!(seqs(&both), [2, 4, 6]);
    assert_eq!(listed(&both), [2, 4, 6]);
    assert!(seqs(&ListFilter {
        status: Some(Status::Accepted),
        ..Default::default()
    })
    .is_empty());
    assert_eq!(
        s.ledger
            .list_seqs(&ListFilter {
                to: Some("not a date".into()),
                ..Default::default()
            })
            .unwrap_err()
            .field(),
        "to"
    );
}

#[test]
fn alerts_queue_stop_clock_offset_and_last_sync() {
    let s = enrolled();
    s.ledger
        .raise_alert("integrity", "422 integrity on seq 3", Some("x"), t0())
        .unwrap();
    s.ledger.stop_queue("422 integrity on seq 3", t0()).unwrap();
    s.ledger.set_clock_offset(-42).unwrap();
    s.ledger.set_last_sync(at_hours(1)).unwrap();
    let st = s.ledger.status(t0()).unwrap();
    assert_eq!(st.queue_stopped.as_deref(), Some("422 integrity on seq 3"));
    assert_eq!(st.alerts.len(), 1);
    assert_eq!(st.alerts[0].code, "integrity");
    assert_eq!(st.last_sync_at.as_deref(), Some("2026-03-01T10:00:00Z"));
    assert_eq!(st.offline_hours_left, None);
    assert_eq!(s.ledger.clock_offset().unwrap(), -42);
    s.ledger.clear_queue_stop().unwrap();
    assert_eq!(s.ledger.queue_stopped().unwrap(), None);
    s.ledger.dismiss_alert(st.alerts[0].id, t0()).unwrap();
    assert!(s.ledger.alerts().unwrap().is_empty());
    assert!(s.ledger.dismiss_alert(st.alerts[0].id, t0()).is_err());
}

#[test]
fn dismissing_a_missing_alert_names_the_alert_not_an_invoice() {
    let s = enrolled();
    s.ledger
        .raise_alert("auth", "401 device_unknown", None, t0())
        .unwrap();
    let id = s.ledger.alerts().unwrap()[0].id;
    s.ledger.dismiss_alert(id, t0()).unwrap();
    // Already dismissed, or never raised: either way there is no such alert to dismiss.
    for missing in [id, id + 41] {
        let e = s.ledger.dismiss_alert(missing, t0()).unwrap_err();
        assert!(
            matches!(e, LedgerError::AlertNotFound(n) if n == missing),
            "{e:?}"
        );
        assert_eq!(e.to_string(), format!("no alert {missing}"));
        assert_eq!(
            e.message(kaipiao_core::Lang::Zh),
            format!("没有编号为 {missing} 的警报")
        );
        assert_eq!(e.code(), "not_found");
        assert_eq!(e.exit_code(), 2);
    }
}

#[test]
fn reopening_keeps_everything() {
    let s = with_lease(&Terms::default());
    let a = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    s.ledger
        .issue(&ordinary("2", "10", "0.13"), &s.key, t0())
        .unwrap();
    s.ledger
        .store_receipt(&a.invoice.id, &receipt(&s.authority, &a, "accepted"), t0())
        .unwrap();
    let head = s.ledger.head().unwrap();
    let list = s.ledger.list(&ListFilter::default()).unwrap();
    let Setup {
        dir, ledger, key, ..
    } = s;
    drop(ledger);
    let again = Ledger::open(dir.path()).unwrap();
    assert_eq!(again.head().unwrap(), head);
    assert_eq!(again.list(&ListFilter::default()).unwrap(), list);
    assert_eq!(again.unseal_key(&keys()).unwrap().public(), key.public());
    assert_eq!(again.verify().unwrap().invoices, 2);
    let next = again
        .issue(&ordinary("1", "1", "0.13"), &key, t0())
        .unwrap();
    assert_eq!(next.envelope.invoice.seq, 3);
}

#[test]
fn a_second_outbox_lock_is_busy() {
    let s = enrolled();
    let first = s.ledger.lock_outbox().unwrap();
    assert!(matches!(s.ledger.lock_outbox(), Err(LedgerError::Busy)));
    let other = Ledger::open(s.dir.path()).unwrap();
    assert!(matches!(other.lock_outbox(), Err(LedgerError::Busy)));
    drop(first);
    let _again = other.lock_outbox().unwrap();
}

#[test]
fn the_immutability_triggers_hold() {
    let s = with_lease(&Terms {
        first: 1,
        last: 3,
        ..Terms::default()
    });
    let a = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap();
    s.ledger
        .store_receipt(&a.invoice.id, &receipt(&s.authority, &a, "accepted"), t0())
        .unwrap();
    let raw = raw(&s);
    let refused = |sql: &str, why: &str| {
        let e = raw.execute_batch(sql).unwrap_err().to_string();
        assert!(e.contains(why), "{sql}: {e}");
    };
    refused(
        "UPDATE invoices SET envelope = envelope || ' ' WHERE seq = 1",
        "never edited",
    );
    refused(
        "UPDATE invoices SET hash = 'x' WHERE seq = 2",
        "never edited",
    );
    refused(
        "UPDATE invoices SET number = 'x' WHERE seq = 2",
        "never edited",
    );
    refused("UPDATE invoices SET seq = 9 WHERE seq = 2", "never edited");
    refused("UPDATE invoices SET id = 'x' WHERE seq = 2", "never edited");
    refused("DELETE FROM invoices WHERE seq = 2", "never deleted");
    refused(
        "UPDATE invoices SET status = 'pending' WHERE seq = 1",
        "changes once",
    );
    refused(
        "UPDATE invoices SET status = 'rejected' WHERE seq = 1",
        "changes once",
    );
    refused("UPDATE receipts SET receipt = '{}'", "never changed");
    refused("DELETE FROM receipts", "never deleted");
    refused("DELETE FROM outbox WHERE seq = 2", "only with the receipt");
    refused("UPDATE leases SET next = 1", "never reused");
    refused("UPDATE leases SET last = 99", "never changed");
    refused("DELETE FROM leases", "never deleted");
    let env: String = raw
        .query_row("SELECT envelope FROM invoices WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    let insert = |seq: u64, prev: &str| {
        format!(
            "INSERT INTO invoices (seq, id, number, kind, issued_at, buyer_name, buyer_tax_id, total, total_amount, total_amount_cents, hash, envelope, status, prev_seq) VALUES ({seq}, 'z', 'z', 'ordinary', '', '', '', '', '', 0, '', '{}', 'pending', {prev})",
            env.replace('\'', "''")
        )
    };
    // A gap: a seq after the head that names no predecessor, or one that is missing.
    refused(&insert(5, "NULL"), "seq_follows_head");
    refused(&insert(5, "3"), "seq_follows_head");
    refused(&insert(5, "4"), "FOREIGN KEY");
    assert_eq!(s.ledger.verify().unwrap().invoices, 2);
}

#[test]
fn an_older_schema_is_backed_up_then_migrated_and_a_newer_one_refused() {
    let s = with_lease(&Terms::default());
    s.ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap();
    // The same ledger as the first release (schema 1: the tables, no guards) wrote it.
    let dir = kaipiao_testkit::ledger::copy_at_version(&s, 1);
    drop(s);
    let db = dir.path().join(kaipiao_ledger::DB_FILE);
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let triggers: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(triggers, 0, "schema 1 had no guards");
    }
    let ledger = Ledger::open(dir.path()).unwrap();
    let backup = dir.path().join("ledger.sqlite3.bak-v1");
    assert!(backup.exists());
    let b = rusqlite::Connection::open(&backup).unwrap();
    let v: i64 = b
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 1);
    let n: i64 = b
        .query_row("SELECT COUNT(*) FROM invoices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let c = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = c
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, kaipiao_ledger::SCHEMA_VERSION);
    assert!(
        c.execute("DELETE FROM invoices", []).is_err(),
        "the guard is back"
    );
    assert_eq!(ledger.verify().unwrap().invoices, 1);
    drop(ledger);

    c.execute(
        "INSERT INTO schema_version (version, applied_at) VALUES (99, 'future')",
        [],
    )
    .unwrap();
    match Ledger::open(dir.path()) {
        Err(LedgerError::TooNew { found: 99, known }) => {
            assert_eq!(known, kaipiao_ledger::SCHEMA_VERSION)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[test]
fn status_of_a_fresh_device() {
    let s = with_lease(&Terms::default());
    let st = s.ledger.status(t0()).unwrap();
    assert_eq!(st.device_id.as_deref(), Some(DEVICE_ID));
    assert_eq!(st.pending, 0);
    assert_eq!(st.numbers_left, 1000);
    assert_eq!(st.offline_hours_left.as_deref(), Some("72.00"));
    assert_eq!(st.offline_amount_left.as_deref(), Some("1000000.00"));
    assert_eq!(st.head.seq, 0);
    assert!(st.warnings.is_empty());
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["head"]["hash"], ZERO_HASH);
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Ledger::open(dir.path()).unwrap().status(t0()),
        Err(LedgerError::NotInitialized)
    ));
}

#[test]
fn party_json_matches_the_invoice_shape() {
    let p = Party::default();
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        json!({"name": "", "tax_id": "", "address": "", "bank": ""})
    );
}

#[test]
fn an_invoice_too_big_for_the_wire_is_refused_by_preview_and_issue() {
    let s = with_lease(&Terms::default());
    let wide = "𠀀".repeat(100);
    let lines = (0..2000)
        .map(|i| kaipiao_core::draft::DraftLine {
            spec: wide.clone(),
            unit: wide.clone(),
            ..line(&format!("{i}{}", &wide[16..]), "1", "1", "0.13")
        })
        .collect();
    let huge = kaipiao_testkit::fixtures::draft("ordinary", lines);
    for e in [
        s.ledger.preview(&huge).unwrap_err(),
        s.ledger.issue(&huge, &s.key, t0()).unwrap_err(),
    ] {
        assert_eq!(code(&e), "payload_too_large", "{e}");
        let LedgerError::Invalid(f) = &e else {
            panic!("{e}")
        };
        assert_eq!(f.field, "lines");
        assert!(e.to_string().contains("2097152"), "{e}");
    }
    assert!(s.ledger.outbox(None, 10).unwrap().is_empty());
    // Half of it fits, and is issued.
    let half = kaipiao_testkit::fixtures::draft(
        "ordinary",
        (0..1000)
            .map(|i| kaipiao_core::draft::DraftLine {
                spec: wide.clone(),
                unit: wide.clone(),
                ..line(&format!("{i}{}", &wide[16..]), "1", "1", "0.13")
            })
            .collect(),
    );
    s.ledger.preview(&half).unwrap();
    let issued = s.ledger.issue(&half, &s.key, t0()).unwrap();
    assert!(issued.envelope_json.len() > 1_000_000);
    assert!(issued.envelope_json.len() <= kaipiao_core::wire::MAX_INVOICE_BODY);
}

#[test]
fn the_stop_its_alert_and_the_attempt_are_one_transaction() {
    let s = with_lease(&Terms::default());
    let env = s
        .ledger
        .issue(&ordinary("1", "10", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    let id = env.invoice.id.as_str();
    // The disk fails on the alert's row, after the queue's stop was written.
    raw(&s)
        .execute_batch(
            "CREATE TRIGGER disk_on_fire BEFORE INSERT ON alerts
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .unwrap();
    let e = s
        .ledger
        .stop_queue_with_alert(
            "integrity",
            "the chain forks at seq 1",
            Some(id),
            true,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(e, LedgerError::Sqlite(_)), "{e}");
    // Nothing of it stayed: the queue runs, no alert, no attempt.
    assert_eq!(s.ledger.queue_stopped().unwrap(), None);
    assert!(s.ledger.alerts().unwrap().is_empty());
    assert_eq!(s.ledger.outbox(None, 10).unwrap()[0].attempts, 0);

    raw(&s).execute_batch("DROP TRIGGER disk_on_fire").unwrap();
    s.ledger
        .stop_queue_with_alert(
            "integrity",
            "the chain forks at seq 1",
            Some(id),
            true,
            t0(),
        )
        .unwrap();
    assert_eq!(
        s.ledger.queue_stopped().unwrap().as_deref(),
        Some("the chain forks at seq 1")
    );
    let alerts = s.ledger.alerts().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].code, "integrity");
    assert_eq!(
        alerts[0].number.as_deref(),
        Some(env.invoice.number.as_str())
    );
    let item = &s.ledger.outbox(None, 10).unwrap()[0];
    assert_eq!(item.attempts, 1);
    assert_eq!(item.last_error.as_deref(), Some("the chain forks at seq 1"));
}
