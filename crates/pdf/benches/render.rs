//! What rendering an invoice costs (issue 11: "a few milliseconds"), next to sealing the
//! same invoice (RFC 8785 bytes, SHA-256, Ed25519) in the same process as the baseline.
//!
//! Run: `cargo bench -p kaipiao-pdf --bench render` (`make bench` runs it). It measures a
//! 1-line and a 2,000-line invoice, each rendered whole (font subset, QR, proof embedded,
//! PDF/A-3b written), and prints each as a ratio to sealing that invoice.

use chrono::{TimeZone, Utc};
use criterion::{black_box, Criterion};
use kaipiao_core::draft::IssueContext;
use kaipiao_core::{DeviceKey, Draft, Envelope, Invoice, Party};
use kaipiao_pdf::{PaperStatus, Printable};
use serde_json::json;
use std::time::{Duration, Instant};

fn invoice(lines: usize) -> Invoice {
    let first17 = "91330100MA2B3C4D5";
    let check = kaipiao_core::taxid::check_digit(first17).unwrap_or('0');
    let seller = Party {
        name: "杭州小店贸易有限公司".into(),
        tax_id: format!("{first17}{check}"),
        address: "杭州市西湖区文三路 100 号 0571-88886666".into(),
        bank: "招商银行杭州分行 571900000000001".into(),
    };
    let lines: Vec<_> = (0..lines)
        .map(|i| {
            json!({"name": format!("*计算机配套产品*键盘 K-{i}"), "spec": "K-104", "unit": "台",
                   "quantity": "2", "unit_price": "120", "tax_rate": "0.13"})
        })
        .collect();
    let draft = Draft::from_json(&json!({
        "kind": "ordinary", "buyer": {"name": "王小明", "tax_id": ""},
        "lines": lines, "remarks": "合同号 HT-2026-118", "issuer": "李四"
    }))
    .expect("a valid draft");
    let ctx = IssueContext {
        id: "019b8d7d-f1c0-73a1-8c4e-5f60718293a4".into(),
        device_id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        seq: 1,
        prev_hash: kaipiao_core::ZERO_HASH.into(),
        number: "26000000000100000001".into(),
        issued_at: Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .expect("a time"),
        seller,
    };
    kaipiao_core::build_invoice(&draft, &ctx, None).expect("an invoice")
}

fn render(envelope: &Envelope) -> Vec<u8> {
    kaipiao_pdf::render(&Printable {
        envelope,
        status: PaperStatus::Pending,
        receipt_json: None,
        credited_kind: None,
        outage: None,
        sandbox: true,
        authority_public_key: None,
        device_public_key: None,
    })
    .expect("a PDF")
}

/// Median of `rounds` timings of `f`.
fn median(rounds: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let key = DeviceKey::from_bytes(&[7; 32]);
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let mut c = Criterion::default().configure_from_args();
    for lines in [1usize, 2000] {
        let inv = invoice(lines);
        let envelope = kaipiao_core::sign::seal_invoice(&key, inv.clone());
        let rounds = if quick {
            1
        } else if lines == 1 {
            200
        } else {
            10
        };
        let seal = median(rounds, || {
            black_box(kaipiao_core::sign::seal_invoice(&key, inv.clone()));
        });
        let pdf = median(rounds, || {
            black_box(render(&envelope));
        });
        let bytes = render(&envelope).len();
        println!(
            "render {lines} line(s): {:.2} ms ({bytes} bytes); seal {:.3} ms; ratio {:.0}x",
            pdf.as_secs_f64() * 1e3,
            seal.as_secs_f64() * 1e3,
            pdf.as_secs_f64() / seal.as_secs_f64().max(1e-9)
        );
        if !quick {
            c.bench_function(&format!("render_{lines}_lines"), |b| {
                b.iter(|| black_box(render(&envelope)))
            });
        }
    }
    c.final_summary();
}
