//! What every issuance and every submission pays in kaipiao-core: computing a draft's
//! lines, the canonical bytes and hash of the invoice, sealing it and verifying it.
//! `make bench` runs this with `--warm-up-time 1 --measurement-time 3`; the figures go to
//! docs/BENCHMARKS.md.

use chrono::{TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use kaipiao_core::sign::{seal_invoice, verify_envelope};
use kaipiao_core::{
    build_invoice, canonical_bytes, compute_lines, rules, sha256_hex, DeviceKey, Draft, DraftLine,
    Invoice, IssueContext, Party, ZERO_HASH,
};

/// A realistic 10-line draft: Chinese names, mixed rates, fractional quantities.
fn ten_line_draft() -> Draft {
    let items = [
        ("打印纸 A4 70g", "10", "25.5", "0.13", ""),
        ("交通运输服务", "1", "1000", "0.09", ""),
        ("信息技术服务", "3", "333.33333333", "0.06", ""),
        ("不动产租赁", "0.5", "12000", "0.05", ""),
        ("小规模纳税人销售", "7", "13.7", "0.03", ""),
        ("二手车", "1", "88888.88", "0.015", ""),
        ("农产品", "2.25", "40", "0.01", ""),
        ("出口货物", "100", "9.99", "0", "zero_rated"),
        ("图书", "4", "29.8", "0", "exempt"),
        ("钢材", "12.345", "4321.5", "0.13", ""),
    ];
    Draft {
        kind: "ordinary".into(),
        buyer: Party {
            name: "北京采购有限公司".into(),
            tax_id: "91110108551385082Q".into(),
            address: "北京市海淀区中关村大街 1 号".into(),
            bank: String::new(),
        },
        lines: items
            .iter()
            .map(
                |&(name, quantity, unit_price, tax_rate, treatment)| DraftLine {
                    name: name.into(),
                    tax_code: "1060201070000000000".into(),
                    spec: "标准".into(),
                    unit: "件".into(),
                    quantity: quantity.into(),
                    unit_price: unit_price.into(),
                    tax_rate: tax_rate.into(),
                    treatment: treatment.into(),
                },
            )
            .collect(),
        price_includes_tax: false,
        original: None,
        remarks: "合同号 HT-2026/001".into(),
        issuer: "张三".into(),
        credit_reason: None,
    }
}

fn ten_line_invoice(d: &Draft) -> Invoice {
    let ctx = IssueContext {
        id: "0190a0b4-7c00-7000-8000-000000000001".into(),
        device_id: "0190a0b4-7c00-4000-8000-000000000001".into(),
        seq: 1,
        prev_hash: ZERO_HASH.into(),
        number: "26000000000100000001".into(),
        issued_at: Utc.with_ymd_and_hms(2026, 1, 1, 9, 30, 0).unwrap(),
        seller: Party {
            name: "福州开票测试有限公司".into(),
            tax_id: "91350100M000100Y43".into(),
            address: "福州市鼓楼区五四路 1 号".into(),
            bank: "中国工商银行福州分行 1402020009000000000".into(),
        },
    };
    match build_invoice(d, &ctx, None) {
        Ok(inv) => inv,
        Err(e) => panic!("the benchmark draft must be valid: {e}"),
    }
}

fn core(c: &mut Criterion) {
    let draft = ten_line_draft();
    let invoice = ten_line_invoice(&draft);
    let key = DeviceKey::from_bytes(&[7u8; 32]);
    let public = key.public();
    let envelope = seal_invoice(&key, invoice.clone());

    c.bench_function("compute_lines, 10-line draft", |b| {
        b.iter(|| compute_lines(black_box(&draft), None))
    });
    c.bench_function("canonical bytes + SHA-256, 10-line invoice", |b| {
        b.iter(|| sha256_hex(&canonical_bytes(black_box(&invoice))))
    });
    c.bench_function("sign envelope (hash + Ed25519), 10-line invoice", |b| {
        b.iter_batched(
            || invoice.clone(),
            |inv| seal_invoice(&key, inv),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("verify envelope (rehash + Ed25519), 10-line invoice", |b| {
        b.iter(|| verify_envelope(&public, black_box(&envelope)))
    });
    c.bench_function("audit (rules::check_invoice), 10-line invoice", |b| {
        b.iter(|| rules::check_invoice(black_box(&invoice), None))
    });
}

criterion_group!(benches, core);
criterion_main!(benches);
