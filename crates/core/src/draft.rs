//! Drafts: what the clerk typed, validated field by field and turned into invoice lines
//! and totals by the rules of SPEC 2. One function, [`compute_lines`], does the money; the
//! issuer, the preview and the authority all call it.

use crate::error::FieldError;
use crate::i18n::{Arg, Msg};
use crate::model::{Invoice, Kind, Line, OriginalRef, Party, Treatment};
use crate::money::{
    decimal_string, money_string, parse_decimal, parse_money, round, DecimalProblem,
};
use crate::taxid::check_tax_id;
use crate::time::{parse_rfc3339, rfc3339};
use crate::Code;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const MAX_LINES: usize = 2000;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_REMARKS_CHARS: usize = 200;
pub const MAX_TEXT_CHARS: usize = 200;
/// Quantities and prices above this are refused before any arithmetic (no overflow).
pub(crate) const MAX_MAGNITUDE: i64 = 999_999_999_999;
/// The audit's bounds on a line, above anything the issuer produces: quantities stop at
/// MAX_MAGNITUDE, a stored tax-inclusive unit price at MAX_MAGNITUDE + 0.005 / qty (the
/// amount rounds up), amounts and taxes below 10^24. 2000 lines of such amounts still add
/// up inside a `Decimal`, so a crafted invoice gets a finding instead of an overflow.
pub(crate) const MAX_AUDIT_QUANTITY_OR_PRICE: i64 = 10_000_000_000_000;
pub(crate) const MAX_LINE_MONEY: i128 = 1_000_000_000_000_000_000_000_000;

/// A draft as SPEC 9 defines it. Decimals stay text until validated so every error can
/// name the field and quote what was typed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Draft {
    pub kind: String,
    pub buyer: Party,
    pub lines: Vec<DraftLine>,
    pub price_includes_tax: bool,
    /// Number of the original invoice (credit notes only).
    pub original: Option<String>,
    pub remarks: String,
    pub issuer: String,
    /// A credit note's reason, "01" to "04" ([`CREDIT_REASONS`]); it writes the original's
    /// number and the reason into the remarks, before the clerk's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_reason: Option<String>,
}

/// The 数电票's reasons for a red-letter invoice (冲红原因), by code.
pub const CREDIT_REASONS: [(&str, &str); 4] = [
    ("01", "开票有误"),
    ("02", "销货退回"),
    ("03", "服务中止"),
    ("04", "销售折让"),
];

/// `remarks` without a leading "被红冲蓝字发票号码：N 冲红原因：R" (and the space after it).
fn strip_reason_prefix(remarks: &str) -> &str {
    let Some(rest) = remarks.strip_prefix("被红冲蓝字发票号码：") else {
        return remarks;
    };
    let Some((_, after)) = rest.split_once(" 冲红原因：") else {
        return remarks;
    };
    for (_, reason) in CREDIT_REASONS {
        if let Some(tail) = after.strip_prefix(reason) {
            return tail.strip_prefix(' ').unwrap_or(tail);
        }
    }
    remarks
}

/// The words of a credit reason code; None for a code that is not one.
pub fn credit_reason_text(code: &str) -> Option<&'static str> {
    CREDIT_REASONS
        .iter()
        .find(|(c, _)| *c == code.trim())
        .map(|(_, text)| *text)
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DraftLine {
    pub name: String,
    pub tax_code: String,
    pub spec: String,
    pub unit: String,
    pub quantity: String,
    /// Tax-inclusive when the draft says `price_includes_tax`. On a credit line it may be
    /// left "" to take the original line's price.
    pub unit_price: String,
    pub tax_rate: String,
    /// "" means `standard` for a non-zero rate.
    pub treatment: String,
}

/// The chain position and identity the ledger assigns to a new invoice.
#[derive(Debug, Clone)]
pub struct IssueContext {
    pub id: String,
    pub device_id: String,
    pub seq: u64,
    pub prev_hash: String,
    pub number: String,
    pub issued_at: DateTime<Utc>,
    pub seller: Party,
}

/// What a credit note is checked against: the original and the credits already issued
/// against it that were not rejected.
#[derive(Debug, Clone)]
pub struct CreditContext {
    pub original: Invoice,
    /// `pending`, `accepted` or `rejected`.
    pub original_status: String,
    pub prior_credits: Vec<Invoice>,
}

/// Lines and totals computed from a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Computed {
    pub lines: Vec<Line>,
    pub total_amount: String,
    pub total_tax: String,
    pub total: String,
}

impl Computed {
    /// The totals of lines computed one by one (each amount and tax as stored), without
    /// the whole-invoice checks: what a preview shows while the invoice as a whole is
    /// refused (over a lease cap, say). Text that is not money counts as nothing.
    pub fn summing(lines: Vec<Line>) -> Computed {
        let sum = |f: fn(&Line) -> &str| {
            lines
                .iter()
                .filter_map(|l| parse_money(f(l)))
                .fold(Decimal::ZERO, |a, b| a + b)
        };
        let amount = sum(|l| &l.amount);
        let tax = sum(|l| &l.tax);
        Computed {
            total_amount: money_string(amount),
            total_tax: money_string(tax),
            total: money_string(amount + tax),
            lines,
        }
    }
}

fn err(code: Code, field: &str, msg: Msg) -> FieldError {
    FieldError::msg(code, field, msg)
}

impl Draft {
    /// Reads a draft from JSON, naming the field of the first problem. Quantities and
    /// prices may be strings or JSON numbers; omitted optional fields default to ""/null/false.
    pub fn from_json(value: &Value) -> Result<Draft, FieldError> {
        let obj = as_object(value, "")?;
        reject_unknown(
            obj,
            "",
            &[
                "kind",
                "buyer",
                "lines",
                "price_includes_tax",
                "original",
                "remarks",
                "issuer",
                "credit_reason",
            ],
        )?;
        let kind = opt_text(obj, "kind", "")?;
        let kind = if kind.is_empty() {
            "ordinary".to_string()
        } else {
            kind
        };
        let buyer = match obj.get("buyer") {
            None | Some(Value::Null) => Party::default(),
            Some(b) => {
                let b = as_object(b, "buyer")?;
                reject_unknown(b, "buyer", &["name", "tax_id", "address", "bank"])?;
                Party {
                    name: opt_text(b, "name", "buyer.")?,
                    tax_id: opt_text(b, "tax_id", "buyer.")?,
                    address: opt_text(b, "address", "buyer.")?,
                    bank: opt_text(b, "bank", "buyer.")?,
                }
            }
        };
        let lines_value = obj
            .get("lines")
            .ok_or_else(|| err(Code::MissingField, "lines", Msg::new("missing_field-lines")))?;
        let Value::Array(items) = lines_value else {
            return Err(wrong_type("lines", Msg::new("expect-lines")));
        };
        let mut lines = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let p = format!("lines[{i}]");
            let o = as_object(item, &p)?;
            reject_unknown(
                o,
                &p,
                &[
                    "name",
                    "tax_code",
                    "spec",
                    "unit",
                    "quantity",
                    "unit_price",
                    "tax_rate",
                    "treatment",
                ],
            )?;
            let prefix = format!("{p}.");
            lines.push(DraftLine {
                name: opt_text(o, "name", &prefix)?,
                tax_code: opt_text(o, "tax_code", &prefix)?,
                spec: opt_text(o, "spec", &prefix)?,
                unit: opt_text(o, "unit", &prefix)?,
                quantity: number_text(o, "quantity", &prefix)?,
                unit_price: number_text(o, "unit_price", &prefix)?,
                tax_rate: number_text(o, "tax_rate", &prefix)?,
                treatment: opt_text(o, "treatment", &prefix)?,
            });
        }
        let price_includes_tax = match obj.get("price_includes_tax") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(wrong_type("price_includes_tax", Msg::new("expect-bool"))),
        };
        let original = match obj.get("original") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => return Err(wrong_type("original", Msg::new("expect-original"))),
        };
        Ok(Draft {
            kind,
            buyer,
            lines,
            price_includes_tax,
            original,
            remarks: opt_text(obj, "remarks", "")?,
            issuer: opt_text(obj, "issuer", "")?,
            credit_reason: Some(opt_text(obj, "credit_reason", "")?)
                .filter(|r| !r.trim().is_empty()),
        })
    }

    pub fn kind(&self) -> Result<Kind, FieldError> {
        Kind::parse(self.kind.trim()).ok_or_else(|| {
            err(
                Code::InvalidKind,
                "kind",
                Msg::new("invalid_kind").arg("value", format!("{:?}", self.kind)),
            )
        })
    }
}

fn as_object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, FieldError> {
    v.as_object().ok_or_else(|| {
        let f = if field.is_empty() { "draft" } else { field };
        wrong_type(f, Msg::new("expect-object"))
    })
}

/// `expected <what>`: `what` is one of the `expect-*` messages.
fn wrong_type(field: &str, what: Msg) -> FieldError {
    err(
        Code::InvalidType,
        field,
        Msg::new("invalid_type").arg("what", what),
    )
}

fn reject_unknown(
    obj: &Map<String, Value>,
    prefix: &str,
    known: &[&str],
) -> Result<(), FieldError> {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            let field = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            return Err(err(
                Code::UnknownField,
                &field,
                Msg::new("unknown_field").arg("allowed", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn opt_text(obj: &Map<String, Value>, key: &str, prefix: &str) -> Result<String, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(wrong_type(
            &format!("{prefix}{key}"),
            Msg::new("expect-text"),
        )),
    }
}

fn number_text(obj: &Map<String, Value>, key: &str, prefix: &str) -> Result<String, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => json_number_text(n, &format!("{prefix}{key}")),
        Some(_) => Err(wrong_type(
            &format!("{prefix}{key}"),
            Msg::new("expect-decimal"),
        )),
    }
}

/// A JSON number as decimal text. Integers are exact; any other number has already been
/// read into an `f64` by serde_json, which prints small ones with an exponent ("1e-7") and
/// keeps only about 16 significant digits. Up to 15 significant digits the shortest form of
/// that `f64` is exactly what was typed, so it is written out plainly; beyond that the
/// number may have been changed on the way in, and a price must never be changed silently.
fn json_number_text(n: &serde_json::Number, field: &str) -> Result<String, FieldError> {
    if n.is_i64() || n.is_u64() {
        return Ok(n.to_string());
    }
    let text = n.to_string();
    let Ok(d) = Decimal::from_str_exact(&text).or_else(|_| Decimal::from_scientific(&text)) else {
        // Out of any range we accept; the field check names it.
        return Ok(text);
    };
    let d = d.normalize();
    let digits = d.mantissa().unsigned_abs().to_string();
    if digits.trim_end_matches('0').len() > 15 {
        return Err(err(
            Code::InvalidNumber,
            field,
            Msg::new("invalid_number-json-digits"),
        ));
    }
    Ok(decimal_string(d))
}

pub fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), FieldError> {
    let n = value.chars().count();
    if n < min {
        return Err(err(
            Code::MissingField,
            field,
            Msg::new("missing_field-text")
                .arg("min", min)
                .arg("max", max),
        ));
    }
    if n > max {
        return Err(err(
            Code::TooLong,
            field,
            Msg::new("too_long").arg("count", n).arg("max", max),
        ));
    }
    // U+2028/U+2029 are line breaks too: JSON writers leave them unescaped, and a reader
    // that splits an export into lines (Python's splitlines, as the SPEC 4 verifier does)
    // would cut the invoice in two.
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(err(
            Code::ControlCharacter,
            field,
            Msg::new("control_character"),
        ));
    }
    Ok(())
}

fn decimal_field(field: &str, text: &str, what: Msg) -> Result<Decimal, FieldError> {
    if text.is_empty() {
        return Err(err(
            Code::MissingField,
            field,
            Msg::new("missing_field-number").arg("what", what),
        ));
    }
    let d = parse_decimal(text, 8).map_err(|p| match p {
        DecimalProblem::NotANumber => err(
            Code::InvalidNumber,
            field,
            Msg::new("invalid_number")
                .arg("value", format!("{text:?}"))
                .arg("what", what),
        ),
        DecimalProblem::TooManyPlaces(n) => err(
            Code::TooManyDecimals,
            field,
            Msg::new("too_many_decimals")
                .arg("value", text)
                .arg("places", n),
        ),
    })?;
    if d.abs() > Decimal::from(MAX_MAGNITUDE) {
        return Err(err(
            Code::OutOfRange,
            field,
            Msg::new("out_of_range")
                .arg("value", text)
                .arg("max", MAX_MAGNITUDE.to_string()),
        ));
    }
    Ok(d)
}

/// A tax classification code (税收分类编码): empty, or exactly 19 digits.
pub fn is_tax_code(code: &str) -> bool {
    code.is_empty() || (code.len() == 19 && code.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses a rate and returns it as written in SPEC 2 ("0.13"); names the field otherwise.
pub fn parse_rate(field: &str, text: &str) -> Result<(&'static str, Decimal), FieldError> {
    let list = crate::RATES.join(", ");
    let bad = || {
        err(
            Code::InvalidTaxRate,
            field,
            Msg::new("invalid_tax_rate")
                .arg("value", or_empty(text))
                .arg("rates", list.as_str()),
        )
    };
    let d = parse_decimal(text, 8).map_err(|_| bad())?;
    for r in crate::RATES {
        if let Ok(rd) = parse_decimal(r, 8) {
            if rd == d {
                return Ok((r, rd));
            }
        }
    }
    Err(bad())
}

/// The text, or `(empty)` in the clerk's language.
fn or_empty(text: &str) -> Arg {
    if text.is_empty() {
        Msg::new("value-empty").into()
    } else {
        text.into()
    }
}

fn parse_treatment(field: &str, text: &str, rate: Decimal) -> Result<Treatment, FieldError> {
    let t = text.trim();
    if rate.is_zero() {
        match Treatment::parse(t) {
            Some(tr) if tr != Treatment::Standard => Ok(tr),
            _ => Err(err(
                Code::InvalidTreatment,
                field,
                Msg::new("invalid_treatment-zero-rate").arg("value", or_empty(t)),
            )),
        }
    } else {
        match t {
            "" | "standard" => Ok(Treatment::Standard),
            _ => Err(err(
                Code::InvalidTreatment,
                field,
                Msg::new("invalid_treatment-nonzero-rate").arg("value", t),
            )),
        }
    }
}

pub(crate) fn tolerance_checks(lines: &[Line]) -> Result<(), FieldError> {
    let cent = Decimal::new(1, 2);
    let six = Decimal::new(6, 2);
    let mut rate_sum = Decimal::ZERO;
    let mut tax_sum = Decimal::ZERO;
    for (i, l) in lines.iter().enumerate() {
        let (Ok(q), Ok(p), Some(a), Some(t), Ok(r)) = (
            parse_decimal(&l.quantity, 28),
            parse_decimal(&l.unit_price, 28),
            parse_money(&l.amount),
            parse_money(&l.tax),
            parse_decimal(&l.tax_rate, 8),
        ) else {
            return Err(err(
                Code::InvalidLine,
                &format!("lines[{i}]"),
                Msg::new("invalid_line"),
            ));
        };
        // Checked arithmetic: the audit runs this on invoices a device sent, and an overflow
        // is simply outside the tolerance.
        let amount_off = q
            .checked_mul(p)
            .and_then(|x| x.checked_sub(a))
            .map(|x| x.abs());
        let tax = a.checked_mul(r);
        let tax_off = tax.and_then(|x| x.checked_sub(t)).map(|x| x.abs());
        let within =
            matches!((amount_off, tax_off), (Some(da), Some(dt)) if da <= cent && dt <= six);
        if !within {
            return Err(err(
                Code::RoundingTolerance,
                &format!("lines[{i}].quantity"),
                Msg::new("rounding_tolerance-line")
                    .arg("quantity", &l.quantity)
                    .arg("price", &l.unit_price)
                    .arg("amount", &l.amount)
                    .arg("tax", &l.tax),
            ));
        }
        let sums = rate_sum
            .checked_add(tax.unwrap_or_default())
            .zip(tax_sum.checked_add(t));
        let Some((rs, ts)) = sums else {
            return Err(err(Code::OutOfRange, "lines", Msg::new("out_of_range-sum")));
        };
        rate_sum = rs;
        tax_sum = ts;
    }
    if rate_sum
        .checked_sub(tax_sum)
        .is_none_or(|d| d.abs() > Decimal::new(127, 2))
    {
        return Err(err(
            Code::RoundingTolerance,
            "lines",
            Msg::new("rounding_tolerance-invoice")
                .arg("tax", money_string(tax_sum))
                .arg("sum", rate_sum.to_string()),
        ));
    }
    Ok(())
}

/// Which original line a credit line draws on, and what is left of each.
pub(crate) struct Remaining {
    pub(crate) quantity: Vec<Decimal>,
    pub(crate) amount: Vec<Decimal>,
    pub(crate) tax: Vec<Decimal>,
}

fn same_item(
    a: &Line,
    name: &str,
    tax_code: &str,
    spec: &str,
    unit: &str,
    rate: &str,
    tr: Treatment,
) -> bool {
    a.name == name
        && a.tax_code == tax_code
        && a.spec == spec
        && a.unit == unit
        && a.tax_rate == rate
        && a.treatment == tr
}

impl Remaining {
    pub(crate) fn of(original: &Invoice, prior: &[Invoice]) -> Remaining {
        let mut r = Remaining {
            quantity: Vec::new(),
            amount: Vec::new(),
            tax: Vec::new(),
        };
        for l in &original.lines {
            r.quantity
                .push(parse_decimal(&l.quantity, 28).unwrap_or_default());
            r.amount.push(parse_money(&l.amount).unwrap_or_default());
            r.tax.push(parse_money(&l.tax).unwrap_or_default());
        }
        for credit in prior {
            for cl in &credit.lines {
                let q = parse_decimal(&cl.quantity, 28).unwrap_or_default();
                if let Some(i) = r.find(original, cl, q.abs()) {
                    r.quantity[i] += q;
                    r.amount[i] += parse_money(&cl.amount).unwrap_or_default();
                    r.tax[i] += parse_money(&cl.tax).unwrap_or_default();
                }
            }
        }
        r
    }

    /// First original line with the same item and at least `need` left, else the first
    /// with the same item and anything left, else the first with the same item (so that
    /// crediting a fully credited line is refused as exceeding it, not as unknown). When
    /// `l` carries a unit price, lines at that price come first: the same item sold at two
    /// prices is two lines, and a credit at the second price must not be matched against
    /// the first (nor refused as a price mismatch).
    pub(crate) fn find(&self, original: &Invoice, l: &Line, need: Decimal) -> Option<usize> {
        let mut candidates: Vec<usize> = original
            .lines
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                same_item(
                    o,
                    &l.name,
                    &l.tax_code,
                    &l.spec,
                    &l.unit,
                    &l.tax_rate,
                    l.treatment,
                )
            })
            .map(|(i, _)| i)
            .collect();
        if let Ok(price) = parse_decimal(&l.unit_price, 28) {
            let at_price: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&i| parse_decimal(&original.lines[i].unit_price, 28) == Ok(price))
                .collect();
            if !at_price.is_empty() {
                candidates = at_price;
            }
        }
        candidates
            .iter()
            .copied()
            .find(|&i| self.quantity[i] >= need)
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&i| self.quantity[i] > Decimal::ZERO)
            })
            .or_else(|| candidates.first().copied())
    }
}

/// Validates the draft's lines and computes amounts, taxes and totals (SPEC 2).
/// `credit` is required for a credit note and ignored otherwise.
pub fn compute_lines(
    draft: &Draft,
    credit: Option<&CreditContext>,
) -> Result<Computed, FieldError> {
    let kind = draft.kind()?;
    if draft.lines.is_empty() || draft.lines.len() > MAX_LINES {
        return Err(err(
            Code::LineCount,
            "lines",
            Msg::new("line_count-draft")
                .arg("count", draft.lines.len())
                .arg("max", MAX_LINES),
        ));
    }
    let credit = if kind == Kind::Credit {
        if draft.price_includes_tax {
            return Err(err(
                Code::CreditPriceIncludesTax,
                "price_includes_tax",
                Msg::new("credit_price_includes_tax"),
            ));
        }
        let ctx = credit.ok_or_else(|| {
            err(
                Code::MissingField,
                "original",
                Msg::new("missing_field-original"),
            )
        })?;
        check_original(ctx)?;
        Some((ctx, Remaining::of(&ctx.original, &ctx.prior_credits)))
    } else {
        None
    };
    let mut credit = credit;
    let mut lines = Vec::with_capacity(draft.lines.len());
    let (mut sum_amount, mut sum_tax) = (Decimal::ZERO, Decimal::ZERO);
    for (i, dl) in draft.lines.iter().enumerate() {
        let f = |name: &str| format!("lines[{i}].{name}");
        check_text(&f("name"), dl.name.trim(), 1, MAX_NAME_CHARS)?;
        let tax_code = dl.tax_code.trim();
        if !is_tax_code(tax_code) {
            return Err(err(
                Code::InvalidTaxCode,
                &f("tax_code"),
                Msg::new("invalid_tax_code-draft").arg("value", format!("{tax_code:?}")),
            ));
        }
        check_text(&f("spec"), dl.spec.trim(), 0, MAX_NAME_CHARS)?;
        check_text(&f("unit"), dl.unit.trim(), 0, MAX_NAME_CHARS)?;
        let (rate_str, rate) = parse_rate(&f("tax_rate"), &dl.tax_rate)?;
        let treatment = parse_treatment(&f("treatment"), &dl.treatment, rate)?;
        if kind == Kind::Special && matches!(treatment, Treatment::Exempt | Treatment::NonTaxable) {
            return Err(err(
                Code::SpecialTreatment,
                &f("treatment"),
                Msg::new("special_treatment-draft").arg("treatment", treatment.as_str()),
            ));
        }
        let quantity = decimal_field(&f("quantity"), &dl.quantity, Msg::new("expect-quantity"))?;
        let mut line = Line {
            name: dl.name.trim().to_string(),
            tax_code: tax_code.to_string(),
            spec: dl.spec.trim().to_string(),
            unit: dl.unit.trim().to_string(),
            quantity: decimal_string(quantity),
            unit_price: String::new(),
            amount: String::new(),
            tax_rate: rate_str.to_string(),
            treatment,
            tax: String::new(),
        };
        let (amount, tax) = if let Some((ctx, remaining)) = credit.as_mut() {
            credit_line(i, dl, quantity, rate, ctx, remaining, &mut line)?
        } else {
            if quantity <= Decimal::ZERO {
                return Err(err(
                    Code::InvalidQuantity,
                    &f("quantity"),
                    Msg::new("invalid_quantity-positive").arg("value", &dl.quantity),
                ));
            }
            let price = decimal_field(&f("unit_price"), &dl.unit_price, Msg::new("expect-price"))?;
            if price < Decimal::ZERO {
                return Err(err(
                    Code::InvalidUnitPrice,
                    &f("unit_price"),
                    Msg::new("invalid_unit_price").arg("value", &dl.unit_price),
                ));
            }
            let gross_or_amount = round(quantity * price, 2);
            if draft.price_includes_tax {
                let amount = round(gross_or_amount / (Decimal::ONE + rate), 2);
                let tax = gross_or_amount - amount;
                line.unit_price = decimal_string(round(amount / quantity, 8));
                (amount, tax)
            } else {
                line.unit_price = decimal_string(price);
                (gross_or_amount, round(gross_or_amount * rate, 2))
            }
        };
        line.amount = money_string(amount);
        line.tax = money_string(tax);
        sum_amount += amount;
        sum_tax += tax;
        lines.push(line);
    }
    tolerance_checks(&lines)?;
    Ok(Computed {
        lines,
        total_amount: money_string(sum_amount),
        total_tax: money_string(sum_tax),
        total: money_string(sum_amount + sum_tax),
    })
}

pub(crate) fn check_original(ctx: &CreditContext) -> Result<(), FieldError> {
    let number = &ctx.original.number;
    if ctx.original.kind == Kind::Credit {
        return Err(err(
            Code::OriginalIsCredit,
            "original",
            Msg::new("original_is_credit").arg("number", number),
        ));
    }
    if ctx.original_status == "rejected" {
        return Err(err(
            Code::OriginalRejected,
            "original",
            Msg::new("original_rejected").arg("number", number),
        ));
    }
    Ok(())
}

fn credit_line(
    i: usize,
    dl: &DraftLine,
    quantity: Decimal,
    rate: Decimal,
    ctx: &CreditContext,
    remaining: &mut Remaining,
    line: &mut Line,
) -> Result<(Decimal, Decimal), FieldError> {
    let f = |name: &str| format!("lines[{i}].{name}");
    if quantity >= Decimal::ZERO {
        return Err(err(
            Code::InvalidQuantity,
            &f("quantity"),
            Msg::new("invalid_quantity-negative").arg("value", &dl.quantity),
        ));
    }
    let need = quantity.abs();
    let given_price = if dl.unit_price.is_empty() {
        None
    } else {
        Some(decimal_field(
            &f("unit_price"),
            &dl.unit_price,
            Msg::new("expect-original-price"),
        )?)
    };
    // Lets `find` pick the original line at the price the clerk named.
    line.unit_price = given_price.map(decimal_string).unwrap_or_default();
    let Some(idx) = remaining.find(&ctx.original, line, need) else {
        return Err(err(
            Code::CreditLineNotInOriginal,
            &f("name"),
            Msg::new("credit_line_not_in_original-draft").arg("number", &ctx.original.number),
        ));
    };
    let orig = &ctx.original.lines[idx];
    let orig_price = parse_decimal(&orig.unit_price, 28).unwrap_or_default();
    if let Some(p) = given_price {
        if p != orig_price {
            return Err(err(
                Code::CreditPriceMismatch,
                &f("unit_price"),
                Msg::new("credit_price_mismatch-draft")
                    .arg("value", &dl.unit_price)
                    .arg("price", &orig.unit_price),
            ));
        }
    }
    line.unit_price = orig.unit_price.clone();
    let (left_q, left_a, left_t) = (
        remaining.quantity[idx],
        remaining.amount[idx],
        remaining.tax[idx],
    );
    if need > left_q {
        return Err(err(
            Code::CreditExceedsOriginal,
            &f("quantity"),
            Msg::new("credit_exceeds_original-quantity")
                .arg("value", &dl.quantity)
                .arg("left", decimal_string(left_q))
                .arg("index", idx)
                .arg("line", idx + 1)
                .arg("number", &ctx.original.number),
        ));
    }
    let (amount, tax) = if need == left_q {
        (-left_a, -left_t)
    } else {
        let amount = round(quantity * orig_price, 2);
        (amount, round(amount * rate, 2))
    };
    if amount.abs() > left_a.abs() {
        return Err(err(
            Code::CreditExceedsOriginal,
            &f("quantity"),
            Msg::new("credit_exceeds_original-amount")
                .arg("amount", money_string(amount.abs()))
                .arg("left", money_string(left_a))
                .arg("index", idx)
                .arg("line", idx + 1)
                .arg("number", &ctx.original.number),
        ));
    }
    remaining.quantity[idx] -= need;
    remaining.amount[idx] += amount;
    remaining.tax[idx] += tax;
    Ok((amount, tax))
}

/// Validates the whole draft and builds the unsigned invoice.
pub fn build_invoice(
    draft: &Draft,
    ctx: &IssueContext,
    credit: Option<&CreditContext>,
) -> Result<Invoice, FieldError> {
    let kind = draft.kind()?;
    let buyer = validate_buyer(&draft.buyer, kind)?;
    check_text("remarks", &draft.remarks, 0, MAX_REMARKS_CHARS)?;
    check_text("issuer", draft.issuer.trim(), 0, MAX_NAME_CHARS)?;
    let original = match (kind, &draft.original) {
        (Kind::Credit, None) => {
            return Err(err(
                Code::MissingField,
                "original",
                Msg::new("missing_field-original"),
            ))
        }
        (Kind::Credit, Some(_)) => credit.map(|c| OriginalRef {
            id: c.original.id.clone(),
            number: c.original.number.clone(),
        }),
        (_, Some(n)) => {
            return Err(err(
                Code::OriginalNotAllowed,
                "original",
                Msg::new("original_not_allowed-draft").arg("number", n),
            ))
        }
        (_, None) => None,
    };
    let remarks = remarks_with_reason(draft, kind, original.as_ref())?;
    let computed = compute_lines(draft, credit)?;
    Ok(Invoice {
        version: 1,
        id: ctx.id.clone(),
        device_id: ctx.device_id.clone(),
        seq: ctx.seq,
        prev_hash: ctx.prev_hash.clone(),
        number: ctx.number.clone(),
        kind,
        issued_at: rfc3339(ctx.issued_at),
        currency: "CNY".into(),
        seller: ctx.seller.clone(),
        buyer,
        lines: computed.lines,
        total_amount: computed.total_amount,
        total_tax: computed.total_tax,
        total: computed.total,
        original,
        remarks,
        issuer: draft.issuer.trim().to_string(),
    })
}

/// The invoice's remarks: with a credit reason, "被红冲蓝字发票号码：N 冲红原因：R" as the
/// 数电票 writes it, then a space and the clerk's own remarks; refused over
/// [`MAX_REMARKS_CHARS`] as a whole, naming `remarks`.
fn remarks_with_reason(
    draft: &Draft,
    kind: Kind,
    original: Option<&OriginalRef>,
) -> Result<String, FieldError> {
    let Some(code) = draft.credit_reason.as_deref().map(str::trim) else {
        return Ok(draft.remarks.clone());
    };
    if kind != Kind::Credit {
        return Err(err(
            Code::InvalidCreditReason,
            "credit_reason",
            Msg::new("invalid_credit_reason-not-credit"),
        ));
    }
    let reason = credit_reason_text(code).ok_or_else(|| {
        err(
            Code::InvalidCreditReason,
            "credit_reason",
            Msg::new("invalid_credit_reason").arg("value", code),
        )
    })?;
    let number = original
        .map(|o| o.number.clone())
        .or_else(|| draft.original.clone())
        .unwrap_or_default();
    let mut text = format!("被红冲蓝字发票号码：{number} 冲红原因：{reason}");
    // A corrected credit note's remarks may carry the prefix already (a reissue of a
    // rejected one): it is written once, with the reason chosen now.
    let own = strip_reason_prefix(&draft.remarks);
    if !own.trim().is_empty() {
        text.push(' ');
        text.push_str(own);
    }
    check_text("remarks", &text, 0, MAX_REMARKS_CHARS)?;
    Ok(text)
}

/// Normalises and checks the buyer: name required, tax ID required on a special invoice
/// and checked whenever present.
pub fn validate_buyer(buyer: &Party, kind: Kind) -> Result<Party, FieldError> {
    check_text("buyer.name", buyer.name.trim(), 1, MAX_NAME_CHARS)?;
    check_text("buyer.address", buyer.address.trim(), 0, MAX_TEXT_CHARS)?;
    check_text("buyer.bank", buyer.bank.trim(), 0, MAX_TEXT_CHARS)?;
    let normalized = crate::taxid::normalize_tax_id(&buyer.tax_id);
    let tax_id = if normalized.is_empty() {
        if kind == Kind::Special {
            return Err(err(
                Code::MissingField,
                "buyer.tax_id",
                Msg::new("missing_field-buyer-tax-id"),
            ));
        }
        String::new()
    } else {
        check_tax_id(&normalized).map_err(|p| {
            err(
                Code::InvalidTaxId,
                "buyer.tax_id",
                Msg::new("invalid_tax_id-value")
                    .arg("value", &normalized)
                    .arg("problem", p.msg()),
            )
        })?
    };
    Ok(Party {
        name: buyer.name.trim().to_string(),
        tax_id,
        address: buyer.address.trim().to_string(),
        bank: buyer.bank.trim().to_string(),
    })
}

/// Validates the seller at device set-up; the name and tax ID are required.
pub fn validate_seller(seller: &Party) -> Result<Party, FieldError> {
    check_text("seller.name", seller.name.trim(), 1, MAX_NAME_CHARS)?;
    check_text("seller.address", seller.address.trim(), 0, MAX_TEXT_CHARS)?;
    check_text("seller.bank", seller.bank.trim(), 0, MAX_TEXT_CHARS)?;
    let tax_id = check_tax_id(&seller.tax_id)
        .map_err(|p| err(Code::InvalidTaxId, "seller.tax_id", p.msg()))?;
    Ok(Party {
        name: seller.name.trim().to_string(),
        tax_id,
        address: seller.address.trim().to_string(),
        bank: seller.bank.trim().to_string(),
    })
}

/// How far ahead of the authority's clock the device's may be before issuance refuses:
/// the authority rejects an invoice dated more than 300 s after its own time.
pub const MAX_CLOCK_AHEAD_SECS: i64 = crate::wire::MAX_SKEW_SECS;

/// The clock-ahead rule (issue 10): the authority measured this device's clock `offset`
/// seconds off its own (seconds to add; negative when the device is ahead) at local time
/// `measured_at`. While the local clock has not been set back since, a device more than
/// [`MAX_CLOCK_AHEAD_SECS`] ahead would issue invoices the authority rejects as
/// `issued_in_future`: refuse, naming the authority's time. A clock set back since the
/// measurement (now before `measured_at`) is taken as corrected: the authority judges
/// from there, and the next signed request measures again.
pub fn check_clock_ahead(
    offset: i64,
    measured_at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), FieldError> {
    let Some(measured) = measured_at.and_then(parse_rfc3339) else {
        return Ok(());
    };
    if offset >= -MAX_CLOCK_AHEAD_SECS || now < measured {
        return Ok(());
    }
    let authority_now = now + chrono::Duration::seconds(offset);
    Err(err(
        Code::ClockAhead,
        "issued_at",
        Msg::new("clock_ahead")
            .arg("now", rfc3339(now))
            .arg("authority", rfc3339(authority_now))
            .arg("seconds", offset.unsigned_abs()),
    ))
}

/// `issued_at` never goes backwards along the chain.
pub fn check_clock(previous_issued_at: Option<&str>, now: DateTime<Utc>) -> Result<(), FieldError> {
    let Some(prev) = previous_issued_at.and_then(parse_rfc3339) else {
        return Ok(());
    };
    let now_s = parse_rfc3339(&rfc3339(now)).unwrap_or(now);
    if now_s < prev {
        return Err(err(
            Code::ClockBehind,
            "issued_at",
            Msg::new("clock_behind")
                .arg("now", rfc3339(now))
                .arg("previous", rfc3339(prev)),
        ));
    }
    Ok(())
}
