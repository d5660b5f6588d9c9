//! Shared by the integration tests: fixtures (parties, issue contexts, drafts), an
//! independent fixed-point re-implementation of the money rules of SPEC 2 on `i128`
//! (deliberately not `kaipiao_core::money` nor `rust_decimal`), and proptest strategies.

#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use kaipiao_core::{
    build_invoice, CreditContext, Draft, DraftLine, FieldError, Invoice, IssueContext, Party,
    ZERO_HASH,
};
use proptest::prelude::*;

/// Valid unified social credit codes (their check digits are verified in `taxid`).
pub const SELLER_TAX_ID: &str = "91350100M000100Y43";
pub const BUYER_TAX_ID: &str = "91110108551385082Q";
pub const DEVICE_ID: &str = "0190a0b4-7c00-4000-8000-000000000001";
pub const PREFIX: &str = "260000000001";

pub fn seller() -> Party {
    Party {
        name: "福州开票测试有限公司".into(),
        tax_id: SELLER_TAX_ID.into(),
        address: "福州市鼓楼区五四路 1 号 0591-88888888".into(),
        bank: "中国工商银行福州分行 1402020009000000000".into(),
    }
}

pub fn buyer() -> Party {
    Party {
        name: "北京采购有限公司".into(),
        tax_id: BUYER_TAX_ID.into(),
        address: String::new(),
        bank: String::new(),
    }
}

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 0).unwrap() // 2026-01-01T00:00:00Z + secs
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

pub fn first_context() -> IssueContext {
    issue_context(1, ZERO_HASH)
}

pub fn line(name: &str, quantity: &str, unit_price: &str, tax_rate: &str) -> DraftLine {
    DraftLine {
        name: name.into(),
        quantity: quantity.into(),
        unit_price: unit_price.into(),
        tax_rate: tax_rate.into(),
        ..DraftLine::default()
    }
}

pub fn draft(kind: &str, lines: Vec<DraftLine>) -> Draft {
    Draft {
        kind: kind.into(),
        buyer: buyer(),
        lines,
        ..Draft::default()
    }
}

pub fn build(d: &Draft) -> Result<Invoice, FieldError> {
    build_invoice(d, &first_context(), None)
}

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

// ---------------------------------------------------------------------------------------
// Independent fixed-point arithmetic: value = m / 10^s.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub m: i128,
    pub s: u32,
}

pub fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// n / d rounded half away from zero; d > 0.
pub fn div_half_up(n: i128, d: i128) -> i128 {
    assert!(d > 0);
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d {
        q + n.signum()
    } else {
        q
    }
}

impl Fixed {
    pub fn new(m: i128, s: u32) -> Fixed {
        Fixed { m, s }
    }

    /// Plain decimal text: `-?digits(.digits)?`.
    pub fn parse(text: &str) -> Fixed {
        let (neg, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        assert!(
            !int.is_empty() && (int.to_owned() + frac).chars().all(|c| c.is_ascii_digit()),
            "not a plain decimal: {text:?}"
        );
        let m: i128 = format!("{int}{frac}").parse().unwrap();
        Fixed::new(if neg { -m } else { m }, frac.len() as u32)
    }

    /// Mantissa at scale `s` (>= self.s).
    pub fn at(self, s: u32) -> i128 {
        assert!(s >= self.s);
        self.m * pow10(s - self.s)
    }

    /// Rounded half away from zero to `dp` places, as a mantissa at scale `dp`.
    pub fn round_to(self, dp: u32) -> i128 {
        if self.s <= dp {
            self.at(dp)
        } else {
            div_half_up(self.m, pow10(self.s - dp))
        }
    }

    pub fn mul(self, o: Fixed) -> Fixed {
        Fixed::new(self.m * o.m, self.s + o.s)
    }

    pub fn neg(self) -> Fixed {
        Fixed::new(-self.m, self.s)
    }

    pub fn sub(self, o: Fixed) -> Fixed {
        let s = self.s.max(o.s);
        Fixed::new(self.at(s) - o.at(s), s)
    }

    pub fn add(self, o: Fixed) -> Fixed {
        self.sub(o.neg())
    }

    pub fn is_positive(self) -> bool {
        self.m > 0
    }

    /// |self| <= |bound| (bound non-negative).
    pub fn abs_le(self, bound: Fixed) -> bool {
        let s = self.s.max(bound.s);
        self.at(s).abs() <= bound.at(s)
    }

    /// Normalised text: no trailing zeros, no exponent, "0" for zero.
    pub fn text(self) -> String {
        let (mut m, mut s) = (self.m, self.s);
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        let digits = m.unsigned_abs().to_string();
        let sign = if m < 0 { "-" } else { "" };
        if s == 0 {
            return format!("{sign}{digits}");
        }
        let s = s as usize;
        let padded = format!("{digits:0>width$}", width = s + 1);
        let (int, frac) = padded.split_at(padded.len() - s);
        format!("{sign}{int}.{frac}")
    }
}

/// Money text with exactly 2 places from a cent count ("-0.04", "0.00").
pub fn money(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

pub fn cents(money_text: &str) -> i128 {
    let f = Fixed::parse(money_text);
    assert_eq!(f.s, 2, "money must have 2 places: {money_text:?}");
    f.m
}

/// A VAT rate in thousandths ("0.015" -> 15).
pub fn rate_milli(rate: &str) -> i128 {
    Fixed::parse(rate).at(3)
}

/// A line as SPEC 2 computes it, by the independent arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub quantity: String,
    pub unit_price: String,
    pub amount_cents: i128,
    pub tax_cents: i128,
}

/// SPEC 2 for a positive (non-credit) line.
pub fn expected_line(q: Fixed, p: Fixed, rate: &str, includes_tax: bool) -> Expected {
    let r = rate_milli(rate);
    let gross_or_amount = q.mul(p).round_to(2);
    if includes_tax {
        let amount = div_half_up(gross_or_amount * 1000, 1000 + r);
        // unit price = round(amount / q, 8) = amount_cents * 10^(qs + 6) / qm
        let unit = div_half_up(amount * pow10(q.s + 6), q.m);
        Expected {
            quantity: q.text(),
            unit_price: Fixed::new(unit, 8).text(),
            amount_cents: amount,
            tax_cents: gross_or_amount - amount,
        }
    } else {
        Expected {
            quantity: q.text(),
            unit_price: p.text(),
            amount_cents: gross_or_amount,
            tax_cents: div_half_up(gross_or_amount * r, 1000),
        }
    }
}

/// The authority's per-line tolerances of SPEC 2, exactly.
pub fn line_within_tolerance(
    q: &str,
    unit_price: &str,
    amount: i128,
    tax: i128,
    rate: &str,
) -> bool {
    let amount_f = Fixed::new(amount, 2);
    let product = Fixed::parse(q).mul(Fixed::parse(unit_price));
    let amount_ok = product.sub(amount_f).abs_le(Fixed::new(1, 2));
    // amount x rate at scale 5, tax at scale 5; tolerance 0.06.
    let tax_off = amount * rate_milli(rate) - tax * 1000;
    amount_ok && tax_off.abs() <= 6_000
}

/// The per-invoice tolerance: |sum(amount x rate) - sum(tax)| <= 1.27.
pub fn invoice_within_tolerance(lines: &[(i128, i128, &str)]) -> bool {
    let off: i128 = lines
        .iter()
        .map(|(a, t, r)| a * rate_milli(r) - t * 1000)
        .sum();
    off.abs() <= 127_000
}

// ---------------------------------------------------------------------------------------
// Strategies.

/// A positive decimal with up to 8 places and at most `int_digits` integer digits, as
/// (value, text as typed). The text keeps the generated scale, so "2.50" happens.
pub fn positive_decimal(int_digits: u32) -> impl Strategy<Value = Fixed> {
    (0u32..=8)
        .prop_flat_map(move |s| (1i128..pow10(int_digits + s)).prop_map(move |m| Fixed::new(m, s)))
}

/// Like `positive_decimal` but zero one time in ten (free goods).
pub fn price(int_digits: u32) -> impl Strategy<Value = Fixed> {
    prop_oneof![
        9 => positive_decimal(int_digits),
        1 => Just(Fixed::new(0, 0)),
    ]
}

/// Typed text for a value at its own scale, e.g. Fixed(250, 2) -> "2.50".
pub fn typed(f: Fixed) -> String {
    if f.s == 0 {
        return f.m.to_string();
    }
    let digits = f.m.unsigned_abs().to_string();
    let s = f.s as usize;
    let padded = format!("{digits:0>width$}", width = s + 1);
    let (int, frac) = padded.split_at(padded.len() - s);
    format!("{}{int}.{frac}", if f.m < 0 { "-" } else { "" })
}

/// A rate with a treatment that goes with it; `special` excludes exempt and non_taxable.
pub fn rate_and_treatment(special: bool) -> impl Strategy<Value = (String, String)> {
    let zero_treatments: Vec<&'static str> = if special {
        vec!["zero_rated"]
    } else {
        vec!["zero_rated", "exempt", "non_taxable"]
    };
    prop_oneof![
        (
            prop::sample::select(&kaipiao_core::RATES[..7]),
            prop::sample::select(vec!["", "standard"])
        )
            .prop_map(|(r, t)| (r.to_string(), t.to_string())),
        prop::sample::select(zero_treatments).prop_map(|t| ("0".to_string(), t.to_string())),
    ]
}

/// One generated line: quantity, price, rate, treatment. Integer digits are chosen so that
/// |qty x price| < 10^12 (the range where the product is exact in a 96-bit decimal), with
/// quantities up to 10^9 so that tax-inclusive lines can hit the 0.01 tolerance.
#[derive(Debug, Clone)]
pub struct GenLine {
    pub name: String,
    pub q: Fixed,
    pub p: Fixed,
    pub rate: String,
    pub treatment: String,
}

pub fn gen_line(special: bool, names: &'static [&'static str]) -> impl Strategy<Value = GenLine> {
    (
        prop::sample::select(vec![1u32, 1, 3, 3, 6, 6, 9]),
        prop::sample::select(vec![1u32, 4, 8]),
    )
        .prop_flat_map(move |(qd, pd)| {
            let pd = pd.min(12 - qd);
            (
                prop::sample::select(names),
                positive_decimal(qd),
                price(pd),
                rate_and_treatment(special),
            )
        })
        .prop_map(|(name, q, p, (rate, treatment))| GenLine {
            name: name.to_string(),
            q,
            p,
            rate,
            treatment,
        })
}

impl GenLine {
    pub fn draft_line(&self) -> DraftLine {
        DraftLine {
            name: self.name.clone(),
            tax_code: "1010101010000000000".into(),
            spec: "500g".into(),
            unit: "袋".into(),
            quantity: typed(self.q),
            unit_price: typed(self.p),
            tax_rate: self.rate.clone(),
            treatment: self.treatment.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenDraft {
    pub special: bool,
    pub includes_tax: bool,
    pub lines: Vec<GenLine>,
}

impl GenDraft {
    pub fn draft(&self) -> Draft {
        Draft {
            kind: if self.special { "special" } else { "ordinary" }.into(),
            buyer: buyer(),
            lines: self.lines.iter().map(GenLine::draft_line).collect(),
            price_includes_tax: self.includes_tax,
            original: None,
            remarks: "备注".into(),
            issuer: "张三".into(),
        }
    }
}

pub const DISTINCT_NAMES: &[&str] = &[
    "办公用品",
    "打印纸",
    "服务费",
    "咨询费",
    "运输服务",
    "软件许可",
    "矿泉水",
    "电脑",
];
/// Few names, so that originals often hold the same item on several lines.
pub const FEW_NAMES: &[&str] = &["打印纸", "服务费"];

pub fn gen_draft(
    max_lines: usize,
    names: &'static [&'static str],
) -> impl Strategy<Value = GenDraft> {
    (any::<bool>(), any::<bool>()).prop_flat_map(move |(special, includes_tax)| {
        prop::collection::vec(gen_line(special, names), 1..=max_lines).prop_map(move |lines| {
            GenDraft {
                special,
                includes_tax,
                lines,
            }
        })
    })
}
