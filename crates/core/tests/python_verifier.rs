//! Cross-check with the independent verifier of SPEC 2 and 4 (`verify_export.py`: Python,
//! rfc8785, cryptography, Decimal). A chain of invoices of every kind is built and sealed
//! with kaipiao-core, written as a SPEC 9 export and handed to the verifier, which must
//! accept it; a tampered copy must be refused, so the pass is not vacuous.
//!
//! Needs `python3` with `rfc8785` and `cryptography` (`make deps` installs them). Without
//! them the test fails and says so: it is never skipped silently.

use kaipiao_core::sign::seal_invoice;
use kaipiao_core::{build_invoice, CreditContext, DeviceKey, Draft, Envelope, Invoice};
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::money::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared verifier when this machine has it, and the copy vendored in the repository.
fn verifiers() -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(p) = std::env::var("KAIPIAO_VERIFY_EXPORT") {
        found.push(PathBuf::from(p));
    }
    let shared = PathBuf::from("/work/shared/tools/verify_export.py");
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_export.py");
    found.extend([shared, vendored].into_iter().filter(|p| p.is_file()));
    assert!(
        !found.is_empty(),
        "verify_export.py not found (tools/ of the repository or /work/shared/tools)"
    );
    found
}

fn run(verifier: &Path, export: &Path) -> (bool, String) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python).arg(verifier).arg(export).output().unwrap_or_else(|e| {
        panic!("cannot run {python} ({e}): this test needs Python 3 with `pip install rfc8785 cryptography`")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("ModuleNotFoundError"),
        "{python} lacks the verifier's modules; run `{python} -m pip install rfc8785 cryptography`:\n{text}"
    );
    (out.status.success(), text)
}

fn with_treatment(mut l: kaipiao_core::DraftLine, t: &str) -> kaipiao_core::DraftLine {
    l.treatment = t.into();
    l
}

struct Chain {
    key: DeviceKey,
    envelopes: Vec<Envelope>,
}

impl Chain {
    fn issue(&mut self, d: &Draft, credit: Option<&CreditContext>) -> Invoice {
        let seq = self.envelopes.len() as u64 + 1;
        let prev = self
            .envelopes
            .last()
            .map_or(kaipiao_core::ZERO_HASH.to_string(), |e| e.hash.clone());
        let inv = build_invoice(d, &issue_context(seq, &prev), credit)
            .unwrap_or_else(|e| panic!("seq {seq}: {e}"));
        assert!(kaipiao_core::rules::check_invoice(&inv, credit).is_empty());
        self.envelopes.push(seal_invoice(&self.key, inv.clone()));
        inv
    }

    fn export(&self) -> String {
        let device = json!({"device": {
            "id": DEVICE_ID,
            "public_key": self.key.public().to_base64(),
            "seller": seller(),
        }});
        let mut out = format!("{device}\n");
        for e in &self.envelopes {
            let record = json!({
                "invoice": e.invoice, "hash": e.hash, "signature": e.signature,
                "status": "pending", "receipt": null,
            });
            out.push_str(&format!("{record}\n"));
        }
        out
    }
}

fn build_chain() -> Chain {
    let mut chain = Chain {
        key: DeviceKey::from_bytes(&[42u8; 32]),
        envelopes: Vec::new(),
    };

    // 1. Ordinary, every non-zero rate, text that needs escaping and text that must not be.
    let mut d = draft(
        "ordinary",
        vec![
            line("打印纸 A4 \"70g\"", "10", "25.5", "0.13"),
            line("交通运输服务", "1", "1000", "0.09"),
            line("信息技术服务\\咨询", "3", "333.33333333", "0.06"),
            line("不动产租赁", "0.5", "12000", "0.05"),
            line("小规模纳税人销售", "7", "13.7", "0.03"),
            line("二手车", "1", "88888.88", "0.015"),
            line("减按 1% 征收", "2.25", "40", "0.01"),
        ],
    );
    d.lines[0].tax_code = "1060201070000000000".into();
    d.lines[0].spec = "500张/包".into();
    d.lines[0].unit = "包".into();
    d.remarks = "合同号 HT-2026/001 😀 𠀀 </script> 'quoted' \u{a0}é".into();
    d.issuer = "张三".into();
    let first = chain.issue(&d, None);

    // 2. Special: buyer tax ID, a zero-rated line.
    let d = draft(
        "special",
        vec![
            line("钢材", "12.345", "4321.5", "0.13"),
            with_treatment(line("出口货物", "100", "9.99", "0"), "zero_rated"),
        ],
    );
    chain.issue(&d, None);

    // 3. Tax-inclusive prices (SPEC 2 example first).
    let mut d = draft(
        "ordinary",
        vec![
            line("服务费", "3", "11.3", "0.13"),
            line("餐饮服务", "7", "9.99", "0.06"),
            line("农产品", "1.5", "3.33", "0.09"),
        ],
    );
    d.price_includes_tax = true;
    let inclusive = chain.issue(&d, None);

    // 4. Rate 0 with each treatment, to a private person (no buyer tax ID).
    let mut d = draft(
        "ordinary",
        vec![
            with_treatment(line("出口服务", "1", "500", "0"), "zero_rated"),
            with_treatment(line("图书", "4", "29.8", "0"), "exempt"),
            with_treatment(line("预付卡销售", "1", "1000", "0"), "non_taxable"),
        ],
    );
    d.buyer = kaipiao_core::Party {
        name: "李四".into(),
        ..Default::default()
    };
    chain.issue(&d, None);

    // 5-6. A partial credit of invoice 1, then the rest of it.
    let ctx = credit_context(&first, &[]);
    let partial = credit_draft(
        &first,
        vec![
            credit_line_for(&first.lines[0], &Fixed::parse("3"), true),
            credit_line_for(&first.lines[2], &Fixed::parse("1.5"), false),
        ],
    );
    let credit1 = chain.issue(&partial, Some(&ctx));
    let ctx = credit_context(&first, std::slice::from_ref(&credit1));
    let rest: Vec<_> = first
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let taken = match i {
                0 => Fixed::parse("3"),
                2 => Fixed::parse("1.5"),
                _ => Fixed::new(0, 0),
            };
            credit_line_for(l, &Fixed::parse(&l.quantity).sub(taken), false)
        })
        .collect();
    chain.issue(&credit_draft(&first, rest), Some(&ctx));

    // 7. The tax-inclusive invoice credited in full.
    let ctx = credit_context(&inclusive, &[]);
    let all = inclusive
        .lines
        .iter()
        .map(|l| credit_line_for(l, &Fixed::parse(&l.quantity), true))
        .collect();
    chain.issue(&credit_draft(&inclusive, all), Some(&ctx));
    chain
}

fn export_file(name: &str, content: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("verify_export");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.jsonl", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn independent_python_verifier_accepts_an_export_of_every_kind() {
    let chain = build_chain();
    assert_eq!(chain.envelopes.len(), 7);
    let path = export_file("chain", &chain.export());
    for verifier in verifiers() {
        let (ok, text) = run(&verifier, &path);
        assert!(
            ok,
            "{} refused the export {}:\n{text}",
            verifier.display(),
            path.display()
        );
        assert!(text.contains("verified 7 invoices"), "{text}");
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn independent_python_verifier_refuses_a_tampered_export() {
    let chain = build_chain();
    let good = chain.export();
    let verifier = &verifiers()[0];

    // A changed amount: the stored hash no longer matches.
    let tampered = good.replacen("\"amount\":\"255.00\"", "\"amount\":\"255.01\"", 1);
    assert_ne!(tampered, good);
    let path = export_file("tampered-amount", &tampered);
    let (ok, text) = run(verifier, &path);
    assert!(
        !ok && text.contains("seq 1") && text.contains("hash"),
        "{text}"
    );
    let _ = std::fs::remove_file(path);

    // A changed remark with the hash recomputed: the signature no longer verifies.
    let mut envelopes = chain.envelopes.clone();
    envelopes[1].invoice.remarks = "altered".into();
    envelopes[1].hash =
        kaipiao_core::sha256_hex(&kaipiao_core::canonical_bytes(&envelopes[1].invoice));
    let resealed = Chain {
        key: DeviceKey::from_bytes(&[42u8; 32]),
        envelopes,
    };
    let path = export_file("tampered-remark", &resealed.export());
    let (ok, text) = run(verifier, &path);
    assert!(
        !ok && text.contains("seq 2") && text.contains("signature"),
        "{text}"
    );
    let _ = std::fs::remove_file(path);
}
