//! Drafts: what the clerk typed, validated field by field and turned into invoice lines
//! and totals by the rules of SPEC 2. One function, [`compute_lines`], does the money; the
//! issuer, the preview and the authority all call it.

use crate::error::FieldError;
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

fn err(code: Code, field: &str, en: String, zh: String) -> FieldError {
    FieldError::new(code, field, en, zh)
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
        let lines_value = obj.get("lines").ok_or_else(|| {
            err(
                Code::MissingField,
                "lines",
                "is required: a list of 1 to 2000 lines".into(),
                "必填：1 至 2000 行货物或服务明细".into(),
            )
        })?;
        let Value::Array(items) = lines_value else {
            return Err(wrong_type("lines", "a list of lines", "明细行列表"));
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
            Some(_) => {
                return Err(wrong_type(
                    "price_includes_tax",
                    "true or false",
                    "true 或 false",
                ))
            }
        };
        let original = match obj.get("original") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => {
                return Err(wrong_type(
                    "original",
                    "the 20-digit number of the original invoice, as a string",
                    "原发票的 20 位号码（字符串）",
                ))
            }
        };
        Ok(Draft {
            kind,
            buyer,
            lines,
            price_includes_tax,
            original,
            remarks: opt_text(obj, "remarks", "")?,
            issuer: opt_text(obj, "issuer", "")?,
        })
    }

    pub fn kind(&self) -> Result<Kind, FieldError> {
        Kind::parse(self.kind.trim()).ok_or_else(|| {
            err(
                Code::InvalidKind,
                "kind",
                format!("{:?} is not a kind (ordinary, special, credit)", self.kind),
                format!("{:?} 不是有效的发票种类（ordinary 普通发票、special 专用发票、credit 红字发票）", self.kind),
            )
        })
    }
}

fn as_object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, FieldError> {
    v.as_object().ok_or_else(|| {
        let f = if field.is_empty() { "draft" } else { field };
        wrong_type(f, "a JSON object", "JSON 对象")
    })
}

fn wrong_type(field: &str, en: &str, zh: &str) -> FieldError {
    err(
        Code::InvalidType,
        field,
        format!("expected {en}"),
        format!("应为{zh}"),
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
                format!("is not a draft field (allowed: {})", known.join(", ")),
                format!("不是草稿字段（允许：{}）", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn opt_text(obj: &Map<String, Value>, key: &str, prefix: &str) -> Result<String, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(wrong_type(&format!("{prefix}{key}"), "text", "文本")),
    }
}

fn number_text(obj: &Map<String, Value>, key: &str, prefix: &str) -> Result<String, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => json_number_text(n, &format!("{prefix}{key}")),
        Some(_) => Err(wrong_type(
            &format!("{prefix}{key}"),
            "a decimal number such as \"12.5\"",
            "十进制数字，如 \"12.5\"",
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
            "has more digits than a JSON number carries exactly; write it as a string in quotes, e.g. \"1234567.12345678\"".into(),
            "位数超过 JSON 数字能精确表示的范围，请加引号写成字符串，如 \"1234567.12345678\"".into(),
        ));
    }
    Ok(decimal_string(d))
}

pub(crate) fn check_text(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), FieldError> {
    let n = value.chars().count();
    if n < min {
        return Err(err(
            Code::MissingField,
            field,
            format!("is required ({min} to {max} characters)"),
            format!("必填（{min} 至 {max} 个字符）"),
        ));
    }
    if n > max {
        return Err(err(
            Code::TooLong,
            field,
            format!("has {n} characters; at most {max} are allowed"),
            format!("共 {n} 个字符，最多 {max} 个"),
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
            "contains a control character (line break, tab...); remove it".into(),
            "含有控制字符（换行、制表符等），请删除".into(),
        ));
    }
    Ok(())
}

fn decimal_field(
    field: &str,
    text: &str,
    what_en: &str,
    what_zh: &str,
) -> Result<Decimal, FieldError> {
    if text.is_empty() {
        return Err(err(
            Code::MissingField,
            field,
            format!("is required: {what_en}"),
            format!("必填：{what_zh}"),
        ));
    }
    let d = parse_decimal(text, 8).map_err(|p| match p {
        DecimalProblem::NotANumber => err(
            Code::InvalidNumber,
            field,
            format!("{text:?} is not a decimal number; write {what_en}"),
            format!("{text:?} 不是十进制数字；应为{what_zh}"),
        ),
        DecimalProblem::TooManyPlaces(n) => err(
            Code::TooManyDecimals,
            field,
            format!("{text} has {n} decimal places; at most 8 are allowed"),
            format!("{text} 有 {n} 位小数，最多 8 位"),
        ),
    })?;
    if d.abs() > Decimal::from(MAX_MAGNITUDE) {
        return Err(err(
            Code::OutOfRange,
            field,
            format!("{text} is too large (at most {MAX_MAGNITUDE})"),
            format!("{text} 过大（最多 {MAX_MAGNITUDE}）"),
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
            format!(
                "{} is not a VAT rate ({list})",
                if text.is_empty() { "(empty)" } else { text }
            ),
            format!(
                "{} 不是增值税税率（{list}）",
                if text.is_empty() { "（空）" } else { text }
            ),
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

fn parse_treatment(field: &str, text: &str, rate: Decimal) -> Result<Treatment, FieldError> {
    let t = text.trim();
    if rate.is_zero() {
        match Treatment::parse(t) {
            Some(tr) if tr != Treatment::Standard => Ok(tr),
            _ => Err(err(
                Code::InvalidTreatment,
                field,
                format!(
                    "{} is not allowed with rate 0: use zero_rated (零税率), exempt (免税) or non_taxable (不征税)",
                    if t.is_empty() { "(empty)" } else { t }
                ),
                format!(
                    "税率为 0 时 {} 无效：应为 zero_rated（零税率）、exempt（免税）或 non_taxable（不征税）",
                    if t.is_empty() { "（空）" } else { t }
                ),
            )),
        }
    } else {
        match t {
            "" | "standard" => Ok(Treatment::Standard),
            _ => Err(err(
                Code::InvalidTreatment,
                field,
                format!("{t} is only allowed with rate 0; a non-zero rate takes standard"),
                format!("{t} 仅适用于 0 税率；非零税率应为 standard"),
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
                "has malformed numbers".into(),
                "数字格式错误".into(),
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
                format!(
                    "quantity {} x unit price {} = amount {} with tax {} falls outside the authority's tolerances (0.01 on the amount, 0.06 on the tax); change the quantity or price",
                    l.quantity, l.unit_price, l.amount, l.tax
                ),
                format!(
                    "数量 {} × 单价 {} = 金额 {}、税额 {} 超出税务机关允许的误差（金额 0.01、税额 0.06），请调整数量或单价",
                    l.quantity, l.unit_price, l.amount, l.tax
                ),
            ));
        }
        let sums = rate_sum
            .checked_add(tax.unwrap_or_default())
            .zip(tax_sum.checked_add(t));
        let Some((rs, ts)) = sums else {
            return Err(err(
                Code::OutOfRange,
                "lines",
                "the amounts are too large to add up; split the invoice".into(),
                "金额过大，无法合计，请拆分发票".into(),
            ));
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
            format!(
                "the invoice's tax {} differs from the sum of amount x rate {} by more than 1.27; split the invoice",
                money_string(tax_sum),
                rate_sum
            ),
            format!(
                "发票税额 {} 与各行金额×税率之和 {} 相差超过 1.27，请拆分发票",
                money_string(tax_sum),
                rate_sum
            ),
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
            format!(
                "has {} lines; an invoice has 1 to {MAX_LINES}",
                draft.lines.len()
            ),
            format!(
                "共 {} 行；一张发票应有 1 至 {MAX_LINES} 行",
                draft.lines.len()
            ),
        ));
    }
    let credit = if kind == Kind::Credit {
        if draft.price_includes_tax {
            return Err(err(
                Code::CreditPriceIncludesTax,
                "price_includes_tax",
                "must be false on a credit note: credit lines carry the original's tax-exclusive price".into(),
                "红字发票必须为不含税价：红字行沿用原发票的不含税单价".into(),
            ));
        }
        let ctx = credit.ok_or_else(|| {
            err(
                Code::MissingField,
                "original",
                "a credit note needs the number of the original invoice".into(),
                "红字发票须填写原发票号码".into(),
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
                format!("{tax_code:?} is not a tax classification code (19 digits, or empty)"),
                format!("{tax_code:?} 不是税收分类编码（19 位数字，或留空）"),
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
                format!("{} lines are not allowed on a special invoice (专用发票); issue an ordinary invoice", treatment.as_str()),
                format!("专用发票不得开具{}项目，请开具普通发票", if treatment == Treatment::Exempt { "免税" } else { "不征税" }),
            ));
        }
        let quantity = decimal_field(
            &f("quantity"),
            &dl.quantity,
            "a decimal such as 2 or 0.5",
            "十进制数字，如 2 或 0.5",
        )?;
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
                    format!(
                        "{} must be positive; corrections are issued as credit notes (红字发票)",
                        dl.quantity
                    ),
                    format!("{} 必须为正数；冲减请开具红字发票", dl.quantity),
                ));
            }
            let price = decimal_field(
                &f("unit_price"),
                &dl.unit_price,
                "a price such as 12.5",
                "单价，如 12.5",
            )?;
            if price < Decimal::ZERO {
                return Err(err(
                    Code::InvalidUnitPrice,
                    &f("unit_price"),
                    format!("{} must not be negative", dl.unit_price),
                    format!("{} 不能为负数", dl.unit_price),
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
            format!("{number} is itself a credit note; credit the original invoice instead"),
            format!("{number} 本身是红字发票，请针对原蓝字发票开具"),
        ));
    }
    if ctx.original_status == "rejected" {
        return Err(err(
            Code::OriginalRejected,
            "original",
            format!("{number} was rejected by the authority and needs no credit note; issue a new invoice instead"),
            format!("{number} 已被税务机关拒绝，无需开具红字发票，请重新开具蓝字发票"),
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
            format!(
                "{} must be negative on a credit note (e.g. -1)",
                dl.quantity
            ),
            format!("{} 在红字发票上必须为负数（如 -1）", dl.quantity),
        ));
    }
    let need = quantity.abs();
    let given_price = if dl.unit_price.is_empty() {
        None
    } else {
        Some(decimal_field(
            &f("unit_price"),
            &dl.unit_price,
            "the original line's price",
            "原发票行的单价",
        )?)
    };
    // Lets `find` pick the original line at the price the clerk named.
    line.unit_price = given_price.map(decimal_string).unwrap_or_default();
    let Some(idx) = remaining.find(&ctx.original, line, need) else {
        return Err(err(
            Code::CreditLineNotInOriginal,
            &f("name"),
            format!(
                "no line of {} matches this one in name, tax code, spec, unit, rate and treatment",
                ctx.original.number
            ),
            format!(
                "原发票 {} 中没有名称、税收分类编码、规格、单位、税率和征税方式都相同的行",
                ctx.original.number
            ),
        ));
    };
    let orig = &ctx.original.lines[idx];
    let orig_price = parse_decimal(&orig.unit_price, 28).unwrap_or_default();
    if let Some(p) = given_price {
        if p != orig_price {
            return Err(err(
                Code::CreditPriceMismatch,
                &f("unit_price"),
                format!("{} differs from the original line's tax-exclusive price {}; use {} or leave it empty", dl.unit_price, orig.unit_price, orig.unit_price),
                format!("{} 与原发票行不含税单价 {} 不同；请填写 {} 或留空", dl.unit_price, orig.unit_price, orig.unit_price),
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
            format!(
                "{} credits more than the {} left on line {} of {}",
                dl.quantity,
                decimal_string(left_q),
                idx,
                ctx.original.number
            ),
            format!(
                "{} 超过原发票 {} 第 {} 行剩余可冲红数量 {}",
                dl.quantity,
                ctx.original.number,
                idx + 1,
                decimal_string(left_q)
            ),
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
            format!(
                "credits {} against the {} left on line {} of {}",
                money_string(amount.abs()),
                money_string(left_a),
                idx,
                ctx.original.number
            ),
            format!(
                "冲红金额 {} 超过原发票 {} 第 {} 行剩余金额 {}",
                money_string(amount.abs()),
                ctx.original.number,
                idx + 1,
                money_string(left_a)
            ),
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
                "a credit note needs the number of the original invoice".into(),
                "红字发票须填写原发票号码".into(),
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
                format!("only a credit note refers to an original invoice (got {n}); set kind to credit or remove original"),
                format!("只有红字发票才引用原发票（收到 {n}）；请将种类设为 credit 或删除 original"),
            ))
        }
        (_, None) => None,
    };
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
        remarks: draft.remarks.clone(),
        issuer: draft.issuer.trim().to_string(),
    })
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
                "a special invoice (专用发票) needs the buyer's tax ID".into(),
                "专用发票必须填写购买方纳税人识别号".into(),
            ));
        }
        String::new()
    } else {
        check_tax_id(&normalized).map_err(|p| {
            err(
                Code::InvalidTaxId,
                "buyer.tax_id",
                format!("{normalized}: {}", p.message(false)),
                format!("{normalized}：{}", p.message(true)),
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
    let tax_id = check_tax_id(&seller.tax_id).map_err(|p| {
        err(
            Code::InvalidTaxId,
            "seller.tax_id",
            p.message(false),
            p.message(true),
        )
    })?;
    Ok(Party {
        name: seller.name.trim().to_string(),
        tax_id,
        address: seller.address.trim().to_string(),
        bank: seller.bank.trim().to_string(),
    })
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
            format!(
                "this computer's clock ({}) is behind the previous invoice ({}); set the correct date and time, then issue again",
                rfc3339(now),
                rfc3339(prev)
            ),
            format!(
                "本机时钟（{}）早于上一张发票的开具时间（{}），请校正日期和时间后再开票",
                rfc3339(now),
                rfc3339(prev)
            ),
        ));
    }
    Ok(())
}
