//! The SPEC 9 export, checked by the independent Python verifier that the authority side
//! also trusts (shared/tools/verify_export.py).

use kaipiao_testkit::fixtures::parse_draft as draft;
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::ids::buyer_tax_id;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

fn verifier() -> Option<PathBuf> {
    // crates/ledger -> the work tree -> its parent holds shared/.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("KAIPIAO_VERIFY_EXPORT").map(PathBuf::from),
        manifest
            .ancestors()
            .nth(3)
            .map(|p| p.join("shared/tools/verify_export.py")),
        manifest
            .ancestors()
            .nth(2)
            .map(|p| p.join("shared/tools/verify_export.py")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

/// Ordinary, special, tax-inclusive, zero-rated, exempt and credit invoices; accepted,
/// rejected and pending; one receipt stored pretty-printed, exactly as received.
fn mixed_ledger() -> Setup {
    let s = with_lease(&Terms::default());
    let l = &s.ledger;
    let a = l
        .issue(&ordinary("10", "99.99", "0.13"), &s.key, t0())
        .unwrap()
        .envelope;
    let special = draft(json!({
        "kind": "special",
        "buyer": {"name": "北京采购有限公司", "tax_id": buyer_tax_id(), "address": "北京市海淀区", "bank": "建设银行"},
        "lines": [
            {"name": "技术服务", "tax_code": "3040201000000000000", "quantity": "1.5", "unit_price": "333.33", "tax_rate": "0.06"},
            {"name": "出口商品", "spec": "A-1", "unit": "台", "quantity": "2", "unit_price": "1200", "tax_rate": "0", "treatment": "zero_rated"}
        ],
        "remarks": "合同 2026-001",
        "issuer": "王会计"
    }));
    let b = l.issue(&special, &s.key, at_hours(1)).unwrap().envelope;
    let inclusive = draft(json!({
        "buyer": {"name": "个人"},
        "price_includes_tax": true,
        "lines": [
            {"name": "餐饮服务", "quantity": "3", "unit_price": "33.33", "tax_rate": "0.06"},
            {"name": "农产品", "quantity": "7", "unit_price": "1.99", "tax_rate": "0", "treatment": "exempt"},
            {"name": "小规模", "quantity": "0.333", "unit_price": "10", "tax_rate": "0.015"}
        ]
    }));
    let c = l.issue(&inclusive, &s.key, at_hours(2)).unwrap().envelope;
    let credit = draft(json!({
        "kind": "credit",
        "original": a.invoice.number,
        "buyer": {"name": "张三"},
        "lines": [{"name": "办公用品", "unit": "件", "quantity": "-4", "unit_price": "99.99", "tax_rate": "0.13"}]
    }));
    let d = l.issue(&credit, &s.key, at_hours(3)).unwrap().envelope;
    let zero = draft(json!({
        "buyer": {"name": "海外客户"},
        "lines": [{"name": "跨境服务", "quantity": "1", "unit_price": "5000", "tax_rate": "0", "treatment": "non_taxable"}]
    }));
    l.issue(&zero, &s.key, at_hours(4)).unwrap();

    let pretty = serde_json::to_string_pretty(&receipt_value(
        &s.authority,
        &a,
        "accepted",
        "00000000000000000001",
    ))
    .unwrap();
    l.store_receipt(&a.invoice.id, &pretty, at_hours(5))
        .unwrap();
    // The authority's text may hold characters that some readers take for line breaks.
    let mut rejected = receipt_value(&s.authority, &b, "rejected", "20000000000000000002");
    rejected["reasons"][0]["message"] = json!("第一行\u{2028}第二行\u{85}第三行");
    let rejected = kaipiao_core::sign::sign_object(
        &s.authority,
        kaipiao_core::sign::RECEIPT_DOMAIN,
        rejected,
        "authority_signature",
    )
    .unwrap();
    let rejected = serde_json::to_string_pretty(&rejected).unwrap();
    assert!(rejected.contains('\u{2028}'));
    l.store_receipt(&b.invoice.id, &rejected, at_hours(5))
        .unwrap();
    l.store_receipt(
        &d.invoice.id,
        &receipt(&s.authority, &d, "accepted"),
        at_hours(5),
    )
    .unwrap();
    let _ = c;
    s
}

#[test]
fn export_shape_and_exact_bytes() {
    let s = mixed_ledger();
    let mut out = Vec::new();
    assert_eq!(s.ledger.export(&mut out).unwrap(), 5);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    let head: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(head["device"]["id"], DEVICE_ID);
    assert_eq!(
        head["device"]["seller"],
        serde_json::to_value(seller()).unwrap()
    );
    assert_eq!(head["device"]["public_key"], s.key.public().to_base64());
    let first: Value = serde_json::from_str(lines[1]).unwrap();
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5);
    for k in ["invoice", "hash", "signature", "status", "receipt"] {
        assert!(keys.contains(&k));
    }
    // The invoice object is the stored bytes, verbatim.
    let (_, stored) = s.ledger.envelope_at(1).unwrap().unwrap();
    let stored_invoice =
        &stored[stored.find("{\"version\"").unwrap()..stored.find(",\"hash\"").unwrap()];
    assert!(
        lines[1].starts_with(&format!("{{\"invoice\":{stored_invoice},")),
        "{}",
        lines[1]
    );
    assert_eq!(first["status"], "accepted");
    assert_eq!(first["receipt"]["authority_code"], "00000000000000000001");
    let pending: Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(
        (pending["status"].as_str(), pending["receipt"].is_null()),
        (Some("pending"), true)
    );
}

#[test]
fn export_passes_the_independent_verifier() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3 on this machine");
        return;
    }
    let Some(script) = verifier() else {
        eprintln!("skipped: shared/tools/verify_export.py is not beside this work tree");
        return;
    };
    // python3 is here: the modules must be too (the Makefile installs them), so a missing
    // module fails the test instead of hiding it.
    let modules = Command::new("python3")
        .args(["-c", "import rfc8785, cryptography"])
        .output()
        .expect("python3 runs");
    assert!(
        modules.status.success(),
        "python3 lacks rfc8785/cryptography (pip install rfc8785 cryptography): {}",
        String::from_utf8_lossy(&modules.stderr)
    );
    let s = mixed_ledger();
    let file = s.dir.path().join("export.jsonl");
    let mut f = std::fs::File::create(&file).unwrap();
    s.ledger.export(&mut f).unwrap();
    drop(f);
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .arg("--authority-key")
        .arg(s.authority.public().to_base64())
        .output()
        .expect("verifier runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verifier: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("verified 5 invoices, 3 receipts"),
        "{stdout}"
    );
}
