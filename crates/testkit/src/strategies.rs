//! Proptest strategies: decimals as a clerk types them, rates with their treatments, and
//! whole generated drafts (lines of [`crate::money::Fixed`] values) for the property tests.

use crate::fixtures::buyer;
use crate::money::{pow10, Fixed};
use kaipiao_core::{Draft, DraftLine};
use proptest::prelude::*;

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
            credit_reason: None,
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
