//! Properties of what gets hashed and signed (SPEC 4):
//! - canonical bytes do not depend on key order, whitespace or how strings are escaped in
//!   the JSON text an invoice arrives as, and equal an independent RFC 8785 rendering;
//! - seal/verify round-trips for random invoices and keys, and agrees with ed25519-dalek
//!   and sha2 used directly;
//! - any change to any field of the invoice breaks verification, a hash field made
//!   consistent with changed content breaks the signature, and so does another key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use kaipiao_core::sign::{
    seal_invoice, sign_object, verify_envelope, verify_object, SignatureError, INVOICE_DOMAIN,
    LEASE_DOMAIN, RECEIPT_DOMAIN,
};
use kaipiao_core::{
    canonical_bytes, sha256_hex, DeviceKey, Envelope, Invoice, Kind, Line, OriginalRef, Party,
    PublicKey, Treatment,
};
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::strategies::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------
// Random invoices: every string may hold anything (controls, quotes, backslashes, CJK,
// U+2028, astral characters), because the bytes must be canonical whatever the content.

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,12}",
        1 => prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        1 => prop::sample::select(vec!["", "\"", "\\", "\u{2028}\u{2029}", "\u{7f}\u{0}\u{1f}", "😀𠀀", "a\r\n\tb", "</script>"])
            .prop_map(str::to_string),
    ]
}

fn treatment() -> impl Strategy<Value = Treatment> {
    prop::sample::select(vec![
        Treatment::Standard,
        Treatment::ZeroRated,
        Treatment::Exempt,
        Treatment::NonTaxable,
    ])
}

fn party() -> impl Strategy<Value = Party> {
    (text(), text(), text(), text()).prop_map(|(name, tax_id, address, bank)| Party {
        name,
        tax_id,
        address,
        bank,
    })
}

fn gen_line_value() -> impl Strategy<Value = Line> {
    (
        (text(), text(), text(), text()),
        (text(), text(), text(), text(), treatment(), text()),
    )
        .prop_map(
            |(
                (name, tax_code, spec, unit),
                (quantity, unit_price, amount, tax_rate, treatment, tax),
            )| Line {
                name,
                tax_code,
                spec,
                unit,
                quantity,
                unit_price,
                amount,
                tax_rate,
                treatment,
                tax,
            },
        )
}

fn invoice() -> impl Strategy<Value = Invoice> {
    (
        (
            0u32..3,
            text(),
            text(),
            0u64..(1 << 53),
            "[0-9a-f]{64}",
            "[0-9]{20}",
        ),
        (
            prop::sample::select(vec![Kind::Ordinary, Kind::Special, Kind::Credit]),
            text(),
            text(),
            party(),
            party(),
        ),
        prop::collection::vec(gen_line_value(), 1..4),
        (
            text(),
            text(),
            text(),
            prop::option::of((text(), text())),
            text(),
            text(),
        ),
    )
        .prop_map(|(a, b, lines, c)| Invoice {
            version: a.0,
            id: a.1,
            device_id: a.2,
            seq: a.3,
            prev_hash: a.4,
            number: a.5,
            kind: b.0,
            issued_at: b.1,
            currency: b.2,
            seller: b.3,
            buyer: b.4,
            lines,
            total_amount: c.0,
            total_tax: c.1,
            total: c.2,
            original: c.3.map(|(id, number)| OriginalRef { id, number }),
            remarks: c.4,
            issuer: c.5,
        })
}

/// Realistic invoices too: the ones the issuer builds.
fn built_invoice() -> impl Strategy<Value = Invoice> {
    gen_draft(10, DISTINCT_NAMES).prop_filter_map("outside tolerance", |g| build(&g.draft()).ok())
}

fn any_invoice() -> impl Strategy<Value = Invoice> {
    prop_oneof![invoice(), built_invoice()]
}

// ---------------------------------------------------------------------------------------
// An independent RFC 8785 rendering for the values an invoice holds (objects with ASCII
// keys, strings, integers below 2^53, null): keys sorted by UTF-16 code units, which for
// ASCII is byte order; strings escaped as ECMAScript's JSON.stringify does.

fn jcs_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn jcs(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let i = n
                .as_u64()
                .expect("only non-negative integers in an invoice");
            assert!(i < 1 << 53);
            out.push_str(&i.to_string());
        }
        Value::String(s) => jcs_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                jcs(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                jcs_string(k, out);
                out.push(':');
                jcs(&map[k], out);
            }
            out.push('}');
        }
    }
}

// ---------------------------------------------------------------------------------------
// Any JSON text for a value: keys in random order, random whitespace, strings escaped in
// random ways (\uXXXX for any character, surrogate pairs for astral ones, "\/").

fn ws(rng: &mut StdRng, out: &mut String) {
    for _ in 0..rng.gen_range(0..3) {
        out.push(*[' ', '\n', '\t', '\r'].choose(rng).unwrap());
    }
}

fn any_string(s: &str, rng: &mut StdRng, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let must = c == '"' || c == '\\' || (c as u32) < 0x20;
        if must || rng.gen_bool(0.2) {
            if c == '/' && rng.gen_bool(0.5) {
                out.push_str("\\/");
                continue;
            }
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&if rng.gen_bool(0.5) {
                    format!("\\u{u:04x}")
                } else {
                    format!("\\u{u:04X}")
                });
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

fn any_json(v: &Value, rng: &mut StdRng, out: &mut String) {
    ws(rng, out);
    match v {
        Value::String(s) => any_string(s, rng, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                any_json(item, rng, out);
            }
            ws(rng, out);
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.shuffle(rng);
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                any_string(k, rng, out);
                ws(rng, out);
                out.push(':');
                any_json(&map[k], rng, out);
            }
            ws(rng, out);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
    ws(rng, out);
}

fn key(seed: [u8; 32]) -> DeviceKey {
    DeviceKey::from_bytes(&seed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_bytes_ignore_order_whitespace_and_escaping(inv in any_invoice(), seed in any::<u64>()) {
        let bytes = canonical_bytes(&inv);
        let value = serde_json::to_value(&inv).unwrap();
        let mut independent = String::new();
        jcs(&value, &mut independent);
        prop_assert_eq!(String::from_utf8(bytes.clone()).unwrap(), independent);
        prop_assert_eq!(&canonical_bytes(&value), &bytes);

        let mut rng = StdRng::seed_from_u64(seed);
        let mut text = String::new();
        any_json(&value, &mut rng, &mut text);
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        for t in [&text, &pretty] {
            let reparsed: Invoice = serde_json::from_str(t).unwrap();
            prop_assert_eq!(&reparsed, &inv);
            prop_assert_eq!(&canonical_bytes(&reparsed), &bytes);
            let as_value: Value = serde_json::from_str(t).unwrap();
            prop_assert_eq!(&canonical_bytes(&as_value), &bytes);
            prop_assert_eq!(sha256_hex(&canonical_bytes(&as_value)), sha256_hex(&bytes));
        }
    }

    #[test]
    fn seal_and_verify_round_trip(inv in any_invoice(), secret in any::<[u8; 32]>(), seed in any::<u64>()) {
        let k = key(secret);
        let public = k.public();
        let b64 = public.to_base64();
        prop_assert_eq!(b64.len(), 44);
        prop_assert_eq!(PublicKey::from_base64(&b64), Ok(public));

        let env = seal_invoice(&k, inv.clone());
        prop_assert_eq!(&env.invoice, &inv);
        prop_assert_eq!(verify_envelope(&public, &env), Ok(()));

        // Cross-check with sha2 and ed25519-dalek used directly.
        let bytes = canonical_bytes(&inv);
        prop_assert_eq!(&env.hash, &hex::encode(Sha256::digest(&bytes)));
        let vk = VerifyingKey::from_bytes(&B64.decode(&b64).unwrap().try_into().unwrap()).unwrap();
        let sig = Signature::from_bytes(&B64.decode(&env.signature).unwrap().try_into().unwrap());
        let mut msg = INVOICE_DOMAIN.to_vec();
        msg.extend_from_slice(&bytes);
        prop_assert!(vk.verify_strict(&msg, &sig).is_ok());

        // The envelope as received in any JSON form still verifies.
        let mut rng = StdRng::seed_from_u64(seed);
        let mut text = String::new();
        any_json(&serde_json::to_value(&env).unwrap(), &mut rng, &mut text);
        let received: Envelope = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(verify_envelope(&public, &received), Ok(()));
    }

    #[test]
    fn any_changed_field_breaks_verification(
        inv in any_invoice(),
        secret in any::<[u8; 32]>(),
        other in any::<[u8; 32]>(),
        seed in any::<u64>(),
    ) {
        let k = key(secret);
        let env = seal_invoice(&k, inv.clone());
        let mut rng = StdRng::seed_from_u64(seed);
        for (field, mutate) in mutators() {
            let mut changed = inv.clone();
            mutate(&mut changed, &mut rng);
            if changed == inv {
                continue; // e.g. swapping the lines of a one-line invoice
            }
            let tampered = Envelope { invoice: changed.clone(), ..env.clone() };
            prop_assert_eq!(verify_envelope(&k.public(), &tampered), Err(SignatureError::HashMismatch), "{}", field);
            // The hash field made consistent with the new content: the signature catches it.
            let rehashed = Envelope { hash: sha256_hex(&canonical_bytes(&changed)), ..tampered };
            prop_assert_eq!(verify_envelope(&k.public(), &rehashed), Err(SignatureError::Mismatch), "{}", field);
        }

        // A changed hash field alone.
        let mut hash = env.hash.clone().into_bytes();
        let i = rng.gen_range(0..hash.len());
        hash[i] = if hash[i] == b'0' { b'1' } else { b'0' };
        let bad = Envelope { hash: String::from_utf8(hash).unwrap(), ..env.clone() };
        prop_assert_eq!(verify_envelope(&k.public(), &bad), Err(SignatureError::HashMismatch));
        let upper = Envelope { hash: env.hash.to_uppercase(), ..env.clone() };
        if upper.hash != env.hash {
            prop_assert_eq!(verify_envelope(&k.public(), &upper), Err(SignatureError::HashMismatch));
        }

        // Signed by another key; signed for another purpose; signed without the prefix.
        if other != secret {
            let forged = seal_invoice(&key(other), inv.clone());
            prop_assert_eq!(verify_envelope(&k.public(), &forged), Err(SignatureError::Mismatch));
        }
        let bytes = canonical_bytes(&inv);
        for domain in [LEASE_DOMAIN, RECEIPT_DOMAIN, b"".as_slice()] {
            let wrong = Envelope { signature: k.sign(domain, &bytes), ..env.clone() };
            prop_assert_eq!(verify_envelope(&k.public(), &wrong), Err(SignatureError::Mismatch));
        }
        let garbled = Envelope { signature: "not base64!".into(), ..env.clone() };
        prop_assert_eq!(verify_envelope(&k.public(), &garbled), Err(SignatureError::BadSignatureEncoding));
    }

    /// Receipts and leases are verified "exactly as received": any JSON form of the same
    /// object verifies, a changed field does not.
    #[test]
    fn signed_objects_verify_in_any_form_and_not_when_changed(
        fields in prop::collection::btree_map("[a-z_]{1,12}", text(), 1..8),
        secret in any::<[u8; 32]>(),
        seed in any::<u64>(),
    ) {
        let k = key(secret);
        let object: serde_json::Map<String, Value> =
            fields.into_iter().map(|(name, v)| (name, Value::String(v))).collect();
        let signed = sign_object(&k, RECEIPT_DOMAIN, Value::Object(object.clone()), "authority_signature").unwrap();
        prop_assert_eq!(verify_object(&k.public(), RECEIPT_DOMAIN, &signed, "authority_signature"), Ok(()));
        prop_assert_eq!(verify_object(&k.public(), LEASE_DOMAIN, &signed, "authority_signature"), Err(SignatureError::Mismatch));

        let mut rng = StdRng::seed_from_u64(seed);
        let mut text = String::new();
        any_json(&signed, &mut rng, &mut text);
        let received: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(verify_object(&k.public(), RECEIPT_DOMAIN, &received, "authority_signature"), Ok(()));

        let name = object.keys().nth(rng.gen_range(0..object.len())).unwrap().clone();
        let mut changed = signed.clone();
        let slot = changed.get_mut(&name).unwrap();
        *slot = Value::String(format!("{}x", slot.as_str().unwrap()));
        prop_assert_eq!(verify_object(&k.public(), RECEIPT_DOMAIN, &changed, "authority_signature"), Err(SignatureError::Mismatch));
    }
}

// ---------------------------------------------------------------------------------------
// One mutator per field of the invoice (nested ones included), plus changes to the line
// list itself. `mutators_cover_every_field` keeps the list complete when a field is added.

type Mutate = fn(&mut Invoice, &mut StdRng);

/// Changes `s` into a different string: a character replaced, inserted or removed.
fn change(s: &mut String, rng: &mut StdRng) {
    let before = s.clone();
    while *s == before {
        let mut chars: Vec<char> = s.chars().collect();
        let pick = [' ', '0', '1', 'a', 'Z', '"', '\\', '\n', '零', '😀'];
        match rng.gen_range(0..3) {
            0 if !chars.is_empty() => {
                let i = rng.gen_range(0..chars.len());
                chars[i] = *pick.choose(rng).unwrap();
            }
            1 if !chars.is_empty() => {
                chars.remove(rng.gen_range(0..chars.len()));
            }
            _ => {
                let i = rng.gen_range(0..=chars.len());
                chars.insert(i, *pick.choose(rng).unwrap());
            }
        }
        *s = chars.into_iter().collect();
    }
}

fn other_treatment(t: Treatment, rng: &mut StdRng) -> Treatment {
    let all = [
        Treatment::Standard,
        Treatment::ZeroRated,
        Treatment::Exempt,
        Treatment::NonTaxable,
    ];
    *all.iter()
        .filter(|&&x| x != t)
        .collect::<Vec<_>>()
        .choose(rng)
        .unwrap()
        .to_owned()
}

fn some_line(inv: &mut Invoice, rng: &mut StdRng) -> usize {
    rng.gen_range(0..inv.lines.len())
}

macro_rules! text_field {
    ($name:literal, $($path:tt)+) => {
        ($name, (|inv: &mut Invoice, rng: &mut StdRng| change(&mut inv.$($path)+, rng)) as Mutate)
    };
}

macro_rules! line_field {
    ($name:literal, $field:ident) => {
        (
            $name,
            (|inv: &mut Invoice, rng: &mut StdRng| {
                let i = some_line(inv, rng);
                change(&mut inv.lines[i].$field, rng)
            }) as Mutate,
        )
    };
}

fn ensure_original(inv: &mut Invoice) -> &mut OriginalRef {
    inv.original.get_or_insert_with(|| OriginalRef {
        id: String::new(),
        number: String::new(),
    })
}

fn mutators() -> Vec<(&'static str, Mutate)> {
    vec![
        ("version", |inv, rng| {
            inv.version = inv.version.wrapping_add(rng.gen_range(1..3))
        }),
        text_field!("id", id),
        text_field!("device_id", device_id),
        ("seq", |inv, rng| {
            inv.seq = if inv.seq == 0 {
                1
            } else {
                inv.seq - rng.gen_range(1..=inv.seq.min(2))
            }
        }),
        text_field!("prev_hash", prev_hash),
        text_field!("number", number),
        ("kind", |inv, rng| {
            let all = [Kind::Ordinary, Kind::Special, Kind::Credit];
            let others: Vec<Kind> = all.into_iter().filter(|&k| k != inv.kind).collect();
            inv.kind = *others.choose(rng).unwrap();
        }),
        text_field!("issued_at", issued_at),
        text_field!("currency", currency),
        text_field!("seller.name", seller.name),
        text_field!("seller.tax_id", seller.tax_id),
        text_field!("seller.address", seller.address),
        text_field!("seller.bank", seller.bank),
        text_field!("buyer.name", buyer.name),
        text_field!("buyer.tax_id", buyer.tax_id),
        text_field!("buyer.address", buyer.address),
        text_field!("buyer.bank", buyer.bank),
        line_field!("lines[].name", name),
        line_field!("lines[].tax_code", tax_code),
        line_field!("lines[].spec", spec),
        line_field!("lines[].unit", unit),
        line_field!("lines[].quantity", quantity),
        line_field!("lines[].unit_price", unit_price),
        line_field!("lines[].amount", amount),
        line_field!("lines[].tax_rate", tax_rate),
        ("lines[].treatment", |inv, rng| {
            let i = some_line(inv, rng);
            inv.lines[i].treatment = other_treatment(inv.lines[i].treatment, rng);
        }),
        line_field!("lines[].tax", tax),
        ("lines (one removed)", |inv, rng| {
            let i = some_line(inv, rng);
            inv.lines.remove(i);
        }),
        ("lines (one repeated)", |inv, rng| {
            let i = some_line(inv, rng);
            let l = inv.lines[i].clone();
            inv.lines.insert(i, l);
        }),
        ("lines (two swapped)", |inv, rng| {
            let (i, j) = (some_line(inv, rng), some_line(inv, rng));
            inv.lines.swap(i, j);
        }),
        text_field!("total_amount", total_amount),
        text_field!("total_tax", total_tax),
        text_field!("total", total),
        ("original", |inv, _| {
            inv.original = match inv.original.take() {
                Some(_) => None,
                None => Some(OriginalRef {
                    id: String::new(),
                    number: String::new(),
                }),
            }
        }),
        ("original.id", |inv, rng| {
            change(&mut ensure_original(inv).id, rng)
        }),
        ("original.number", |inv, rng| {
            change(&mut ensure_original(inv).number, rng)
        }),
        text_field!("remarks", remarks),
        text_field!("issuer", issuer),
    ]
}

fn field_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                field_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                field_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn mutators_cover_every_field() {
    let mut inv = build(&draft("ordinary", vec![line("纸", "1", "1", "0.13")])).unwrap();
    inv.original = Some(OriginalRef {
        id: "i".into(),
        number: "n".into(),
    });
    let mut paths = BTreeSet::new();
    field_paths(&serde_json::to_value(&inv).unwrap(), "", &mut paths);
    let covered: BTreeSet<String> = mutators()
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !covered.contains(*p) && !matches!(p.as_str(), "seller" | "buyer" | "lines"))
        .collect();
    assert!(missing.is_empty(), "fields without a mutator: {missing:?}");
    assert_eq!(
        paths.len(),
        18 + 4 + 4 + 10 + 2,
        "the invoice has the fields of SPEC 4"
    );
}

// ---------------------------------------------------------------------------------------
// Receipts checked together (a batch answer's) are judged exactly as each alone would be.

/// A signed receipt for invoice `i`, as JSON text.
fn receipt_text(key: &DeviceKey, i: usize) -> String {
    let receipt = serde_json::json!({
        "invoice_id": format!("id-{i}"),
        "number": format!("{:020}", i),
        "hash": sha256_hex(i.to_string().as_bytes()),
        "status": "accepted",
        "reasons": [],
        "authority_code": "12345678901234567890",
        "received_at": "2026-01-05T09:30:00Z",
    });
    sign_object(key, RECEIPT_DOMAIN, receipt, "authority_signature")
        .unwrap()
        .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn receipts_checked_together_are_judged_as_each_alone(
        n in 0usize..24,
        damage in prop::collection::vec((0usize..24, 0u8..5), 0..4),
        seed in any::<[u8; 32]>(),
    ) {
        let authority = DeviceKey::from_bytes(&seed);
        let other = DeviceKey::from_bytes(&[7; 32]);
        let pinned = authority.public();
        let mut texts: Vec<String> = (0..n).map(|i| receipt_text(&authority, i)).collect();
        for (at, how) in damage {
            let Some(text) = texts.get_mut(at) else { continue };
            *text = match how {
                // Another key signed it.
                0 => receipt_text(&other, at),
                // A signed field changed after signing.
                1 => text.replace("accepted", "rejected"),
                // Not JSON.
                2 => text[..text.len() / 2].to_string(),
                // No signature (of a receipt still whole).
                3 => {
                    let Ok(mut v) = serde_json::from_str::<Value>(text) else { continue };
                    v.as_object_mut().unwrap().remove("authority_signature");
                    v.to_string()
                }
                // A signature that is not 64 bytes of base64.
                _ => {
                    let Ok(mut v) = serde_json::from_str::<Value>(text) else { continue };
                    v["authority_signature"] = Value::String("AAAA".into());
                    v.to_string()
                }
            };
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let together = kaipiao_core::wire::Receipt::verify_json_many(&refs, &pinned);
        prop_assert_eq!(together.len(), n);
        for (text, got) in refs.iter().zip(together) {
            let alone = kaipiao_core::wire::Receipt::verify_json(text, &pinned);
            prop_assert_eq!(got, alone);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Signatures checked together (`verify_many`, one batch equation with the terms of each
// key added up) are judged exactly as each alone, whatever the mix of keys and damage.

/// The group order ℓ, little-endian: `s + ℓ` is the same scalar written non-canonically.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s + ℓ` over the signature's 32 bytes of `s` (it fits: s < ℓ < 2^253).
fn non_canonical(sig: &mut [u8; 64]) {
    let mut carry = 0u16;
    for (b, l) in sig[32..].iter_mut().zip(ELL) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = sum as u8;
        carry = sum >> 8;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn signatures_checked_together_are_judged_as_each_alone(
        n in 0usize..40,
        owners in prop::collection::vec(0usize..3, 40),
        damage in prop::collection::vec((0usize..40, 0u8..6), 0..4),
        seed in any::<[u8; 32]>(),
    ) {
        // Up to three keys, as a batch from a few devices; mostly one, as in a drain.
        let keys: Vec<DeviceKey> = (0..3u8)
            .map(|k| {
                let mut secret = seed;
                secret[0] ^= k;
                DeviceKey::from_bytes(&secret)
            })
            .collect();
        let publics: Vec<PublicKey> = keys.iter().map(DeviceKey::public).collect();
        let messages: Vec<Vec<u8>> = (0..n).map(|i| format!("message {i} {seed:?}").into_bytes()).collect();
        let owner = |i: usize| owners[i] % if i.is_multiple_of(2) { 1 } else { 3 };
        let mut signatures: Vec<String> = (0..n)
            .map(|i| keys[owner(i)].sign(INVOICE_DOMAIN, &messages[i]))
            .collect();
        let mut domains: Vec<&[u8]> = vec![INVOICE_DOMAIN; n];
        for (at, how) in damage {
            let Some(sig) = signatures.get_mut(at) else { continue };
            let mut raw: [u8; 64] = B64.decode(&*sig).unwrap().try_into().unwrap();
            match how {
                // A bit of s flipped.
                0 => raw[40] ^= 1,
                // A bit of R flipped (a point that may not decompress, or the wrong one).
                1 => raw[3] ^= 0x10,
                // The same s written as s + ℓ: refused alone, so refused together.
                2 => non_canonical(&mut raw),
                // Signed by another key than the one it is checked under.
                3 => raw = B64.decode(keys[(owner(at) + 1) % 3].sign(INVOICE_DOMAIN, &messages[at])).unwrap().try_into().unwrap(),
                // Signed for another purpose (domain).
                4 => domains[at] = RECEIPT_DOMAIN,
                // Another message's signature under the same key.
                _ => raw = B64.decode(keys[owner(at)].sign(INVOICE_DOMAIN, b"something else")).unwrap().try_into().unwrap(),
            }
            *sig = B64.encode(raw);
        }
        let items: Vec<kaipiao_core::sign::Signed<'_>> = (0..n)
            .map(|i| kaipiao_core::sign::Signed {
                key: &publics[owner(i)],
                domain: domains[i],
                message: &messages[i],
                signature: &signatures[i],
            })
            .collect();
        let together = kaipiao_core::sign::verify_many(&items);
        prop_assert_eq!(together.len(), n);
        for (item, got) in items.iter().zip(together) {
            let alone = item.key.verify(item.domain, item.message, item.signature);
            prop_assert_eq!(got, alone);
        }
    }
}
