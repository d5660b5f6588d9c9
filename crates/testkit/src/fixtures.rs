//! Typed fixtures: the test seller and buyer, a fixed clock, draft lines and drafts, and
//! the issue context of an invoice on the test device.

use crate::ids::{BUYER_TAX_ID, SELLER_TAX_ID};
use crate::money::Fixed;
use chrono::{DateTime, Duration, TimeZone, Utc};
use kaipiao_core::{
    build_invoice, CreditContext, Draft, DraftLine, FieldError, Invoice, IssueContext, Party,
    ZERO_HASH,
};
use serde_json::{json, Value};

/// The test device, as the test authority enrolled it.
pub const DEVICE_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
/// The name every test device is initialised with.
pub const DEVICE_NAME: &str = "前台电脑";
/// The invoice-number prefix of the test lease.
pub const PREFIX: &str = "260330000001";

/// The seller of every test shop (the CLI's `init` is given these very fields).
pub fn seller() -> Party {
    Party {
        name: "福州测试商贸有限公司".into(),
        tax_id: SELLER_TAX_ID.into(),
        address: "福州市鼓楼区测试路 1 号 0591-12345678".into(),
        bank: "测试银行福州分行 1234567890".into(),
    }
}

/// A company buyer with a valid tax ID, so special invoices can go to it.
pub fn buyer() -> Party {
    Party {
        name: "北京采购有限公司".into(),
        tax_id: BUYER_TAX_ID.into(),
        address: String::new(),
        bank: String::new(),
    }
}

/// 2026-01-01T00:00:00Z + `secs`: the clock of invoices built without a ledger.
pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap()
}

/// 2026-03-01T09:00:00Z: a ledger's "now", an hour after the test lease was granted.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
        .single()
        .expect("valid time")
}

/// [`t0`] + `h` hours.
pub fn at_hours(h: i64) -> DateTime<Utc> {
    t0() + Duration::hours(h)
}

/// A UUID v7 (lowercase, hyphenated) that depends only on `n`.
pub fn uuid7(n: u64) -> String {
    let millis = 1_767_225_600_000 + n;
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&n.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The context of invoice `seq` on the test device, after `prev_hash`.
pub fn issue_context(seq: u64, prev_hash: &str) -> IssueContext {
    IssueContext {
        id: uuid7(seq),
        device_id: DEVICE_ID.into(),
        seq,
        prev_hash: prev_hash.into(),
        number: kaipiao_core::model::invoice_number(PREFIX, seq),
        issued_at: at(seq as i64 * 60),
        seller: seller(),
    }
}

/// The context of the device's first invoice.
pub fn first_context() -> IssueContext {
    issue_context(1, ZERO_HASH)
}

/// A draft line; every other field empty.
pub fn line(name: &str, quantity: &str, unit_price: &str, tax_rate: &str) -> DraftLine {
    DraftLine {
        name: name.into(),
        quantity: quantity.into(),
        unit_price: unit_price.into(),
        tax_rate: tax_rate.into(),
        ..DraftLine::default()
    }
}

/// A draft of `kind` to [`buyer`].
pub fn draft(kind: &str, lines: Vec<DraftLine>) -> Draft {
    Draft {
        kind: kind.into(),
        buyer: buyer(),
        lines,
        ..Draft::default()
    }
}

/// The draft built as the device's first invoice.
pub fn build(d: &Draft) -> Result<Invoice, FieldError> {
    build_invoice(d, &first_context(), None)
}

/// What a credit note against a still pending `original` is checked with.
pub fn credit_context(original: &Invoice, prior: &[Invoice]) -> CreditContext {
    CreditContext {
        original: original.clone(),
        original_status: "pending".into(),
        prior_credits: prior.to_vec(),
    }
}

/// A credit draft against `original` (its number as `original`).
pub fn credit_draft(original: &Invoice, lines: Vec<DraftLine>) -> Draft {
    Draft {
        kind: "credit".into(),
        buyer: original.buyer.clone(),
        lines,
        original: Some(original.number.clone()),
        ..Draft::default()
    }
}

/// The credit draft line for `quantity` (positive, as text) of original line `l`.
pub fn credit_line_for(l: &kaipiao_core::Line, quantity: &Fixed, with_price: bool) -> DraftLine {
    DraftLine {
        name: l.name.clone(),
        tax_code: l.tax_code.clone(),
        spec: l.spec.clone(),
        unit: l.unit.clone(),
        quantity: quantity.neg().text(),
        unit_price: if with_price {
            l.unit_price.clone()
        } else {
            String::new()
        },
        tax_rate: l.tax_rate.clone(),
        treatment: l.treatment.as_str().into(),
    }
}

/// A draft from its JSON, as the CLI reads it; panics if it does not parse.
pub fn parse_draft(v: Value) -> Draft {
    Draft::from_json(&v).expect("draft parses")
}

/// One line of office supplies (办公用品, by the 件) at 13%.
pub fn one_line(quantity: &str, unit_price: &str) -> DraftLine {
    DraftLine {
        name: "办公用品".into(),
        unit: "件".into(),
        quantity: quantity.into(),
        unit_price: unit_price.into(),
        tax_rate: "0.13".into(),
        ..DraftLine::default()
    }
}

/// A one-line ordinary invoice to a person (张三, no tax ID): office supplies, tax-exclusive,
/// `quantity` x `unit_price` at `tax_rate`, issued by `clerk1`.
pub fn ordinary(quantity: &str, unit_price: &str, tax_rate: &str) -> Draft {
    parse_draft(json!({
        "kind": "ordinary",
        "buyer": {"name": "张三"},
        "lines": [{"name": "办公用品", "unit": "件", "quantity": quantity, "unit_price": unit_price, "tax_rate": tax_rate}],
        "issuer": "clerk1"
    }))
}

/// [`ordinary`] at 13%: the line is [`one_line`].
pub fn office_supplies(quantity: &str, unit_price: &str) -> Draft {
    ordinary(quantity, unit_price, "0.13")
}

/// The `i`-th of a run of distinct small drafts: its own buyer, `i + 1` x 12.5 at 13%.
pub fn numbered_draft(i: usize) -> Draft {
    Draft {
        kind: "ordinary".into(),
        buyer: Party {
            name: format!("买方{i}"),
            ..Party::default()
        },
        lines: vec![DraftLine {
            name: "办公用品".into(),
            quantity: format!("{}", i + 1),
            unit_price: "12.5".into(),
            tax_rate: "0.13".into(),
            ..DraftLine::default()
        }],
        price_includes_tax: false,
        original: None,
        remarks: String::new(),
        issuer: "王会计".into(),
        credit_reason: None,
    }
}
