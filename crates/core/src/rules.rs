//! The authority's audit of a finished invoice (SPEC 2 as business rules). `taxd` runs it
//! on every submission and turns each finding into a `reason` of a rejected receipt; the
//! client's `verify` runs it too, so an invoice the issuer built always passes it.

use crate::draft::{
    check_original, check_text, tolerance_checks, validate_buyer, validate_seller, CreditContext,
    Remaining, MAX_AUDIT_QUANTITY_OR_PRICE, MAX_LINES, MAX_LINE_MONEY, MAX_NAME_CHARS,
    MAX_REMARKS_CHARS,
};
use crate::error::FieldError;
use crate::model::{Invoice, Kind, Treatment};
use crate::money::{is_normalized_decimal, money_string, parse_decimal, parse_money};
use crate::Code;
use rust_decimal::Decimal;

fn finding(code: Code, field: &str, en: String, zh: String) -> FieldError {
    FieldError::new(code, field, en, zh)
}

/// Every business-rule finding on `inv`; empty when it is acceptable. `credit` describes
/// the original (and earlier non-rejected credits) for a credit note; None when the
/// original is unknown, which is itself a finding for a credit note.
pub fn check_invoice(inv: &Invoice, credit: Option<&CreditContext>) -> Vec<FieldError> {
    let mut out = Vec::new();
    if inv.version != 1 {
        out.push(finding(
            Code::InvalidVersion,
            "version",
            format!("version {} is not 1", inv.version),
            format!("版本 {} 不是 1", inv.version),
        ));
    }
    if inv.currency != "CNY" {
        out.push(finding(
            Code::InvalidCurrency,
            "currency",
            format!("{:?} is not CNY", inv.currency),
            format!("{:?} 不是 CNY", inv.currency),
        ));
    }
    match validate_seller(&inv.seller) {
        Ok(s) if s != inv.seller => out.push(finding(
            Code::NotNormalized,
            "seller",
            "is not in normalised form".into(),
            "销售方信息未规范化".into(),
        )),
        Ok(_) => {}
        Err(e) => out.push(e),
    }
    match validate_buyer(&inv.buyer, inv.kind) {
        Ok(b) if b != inv.buyer => out.push(finding(
            Code::NotNormalized,
            "buyer",
            "is not in normalised form".into(),
            "购买方信息未规范化".into(),
        )),
        Ok(_) => {}
        Err(e) => out.push(e),
    }
    if let Err(e) = check_text("remarks", &inv.remarks, 0, MAX_REMARKS_CHARS) {
        out.push(e);
    }
    if let Err(e) = check_text("issuer", &inv.issuer, 0, MAX_NAME_CHARS) {
        out.push(e);
    }
    if inv.lines.is_empty() || inv.lines.len() > MAX_LINES {
        out.push(finding(
            Code::LineCount,
            "lines",
            format!("has {} lines; 1 to {MAX_LINES} allowed", inv.lines.len()),
            format!("共 {} 行，应为 1 至 {MAX_LINES} 行", inv.lines.len()),
        ));
        return out;
    }
    let credit_note = inv.kind == Kind::Credit;
    let (mut sum_a, mut sum_t) = (Decimal::ZERO, Decimal::ZERO);
    let mut numbers_ok = true;
    for (i, l) in inv.lines.iter().enumerate() {
        let f = |n: &str| format!("lines[{i}].{n}");
        for (name, v, max) in [
            ("name", &l.name, MAX_NAME_CHARS),
            ("spec", &l.spec, MAX_NAME_CHARS),
            ("unit", &l.unit, MAX_NAME_CHARS),
        ] {
            if let Err(e) = check_text(&f(name), v, usize::from(name == "name"), max) {
                out.push(e);
            }
        }
        if !crate::draft::is_tax_code(&l.tax_code) {
            out.push(finding(
                Code::InvalidTaxCode,
                &f("tax_code"),
                "is not 19 digits".into(),
                "不是 19 位数字".into(),
            ));
        }
        if !crate::RATES.contains(&l.tax_rate.as_str()) {
            out.push(finding(
                Code::InvalidTaxRate,
                &f("tax_rate"),
                format!(
                    "{} is not a VAT rate ({})",
                    l.tax_rate,
                    crate::RATES.join(", ")
                ),
                format!("{} 不是增值税税率", l.tax_rate),
            ));
            numbers_ok = false;
            continue;
        }
        let zero = l.tax_rate == "0";
        if zero == (l.treatment == Treatment::Standard) {
            out.push(finding(
                Code::InvalidTreatment,
                &f("treatment"),
                format!(
                    "{} does not go with rate {}",
                    l.treatment.as_str(),
                    l.tax_rate
                ),
                format!(
                    "征税方式 {} 与税率 {} 不符",
                    l.treatment.as_str(),
                    l.tax_rate
                ),
            ));
        }
        if inv.kind == Kind::Special
            && matches!(l.treatment, Treatment::Exempt | Treatment::NonTaxable)
        {
            out.push(finding(
                Code::SpecialTreatment,
                &f("treatment"),
                format!(
                    "{} lines are not allowed on a special invoice",
                    l.treatment.as_str()
                ),
                "专用发票不得开具免税或不征税项目".into(),
            ));
        }
        let q = (is_normalized_decimal(&l.quantity) && parse_decimal(&l.quantity, 8).is_ok())
            .then(|| parse_decimal(&l.quantity, 8).unwrap_or_default());
        let p = (is_normalized_decimal(&l.unit_price) && parse_decimal(&l.unit_price, 8).is_ok())
            .then(|| parse_decimal(&l.unit_price, 8).unwrap_or_default());
        let (a, t) = (parse_money(&l.amount), parse_money(&l.tax));
        let (Some(q), Some(p), Some(a), Some(t)) = (q, p, a, t) else {
            out.push(finding(
                Code::InvalidNumber,
                &f("quantity"),
                "quantity, unit_price, amount or tax is not written as SPEC 2 requires".into(),
                "数量、单价、金额或税额的书写格式不符合规范".into(),
            ));
            numbers_ok = false;
            continue;
        };
        // Bounded before anything is summed: a crafted invoice must get a finding, not
        // overflow the audit (taxd runs it on what devices send).
        let (max_qp, max_money) = (
            Decimal::from(MAX_AUDIT_QUANTITY_OR_PRICE),
            Decimal::from_i128_with_scale(MAX_LINE_MONEY, 0),
        );
        if q.abs() >= max_qp || p.abs() >= max_qp || a.abs() >= max_money || t.abs() >= max_money {
            out.push(finding(
                Code::OutOfRange,
                &f("quantity"),
                "quantity, unit_price, amount or tax is out of range".into(),
                "数量、单价、金额或税额超出范围".into(),
            ));
            numbers_ok = false;
            continue;
        }
        let sign_ok = if credit_note {
            q < Decimal::ZERO && p >= Decimal::ZERO
        } else {
            q > Decimal::ZERO && p >= Decimal::ZERO
        };
        if !sign_ok {
            out.push(finding(
                Code::InvalidQuantity,
                &f("quantity"),
                if credit_note {
                    "a credit line needs a negative quantity and a non-negative price".into()
                } else {
                    "needs a positive quantity and a non-negative price".into()
                },
                if credit_note {
                    "红字发票行须为负数量、非负单价".into()
                } else {
                    "须为正数量、非负单价".into()
                },
            ));
        }
        sum_a += a;
        sum_t += t;
    }
    if numbers_ok {
        if let Err(e) = tolerance_checks(&inv.lines) {
            out.push(e);
        }
        let totals = [
            ("total_amount", &inv.total_amount, sum_a),
            ("total_tax", &inv.total_tax, sum_t),
            ("total", &inv.total, sum_a + sum_t),
        ];
        for (field, written, expected) in totals {
            if parse_money(written) != Some(expected) || *written != money_string(expected) {
                out.push(finding(
                    Code::TotalMismatch,
                    field,
                    format!(
                        "{written} is not the sum of the lines ({})",
                        money_string(expected)
                    ),
                    format!("{written} 不等于各行合计 {}", money_string(expected)),
                ));
            }
        }
    }
    match (inv.kind, &inv.original) {
        (Kind::Credit, None) => out.push(finding(
            Code::MissingField,
            "original",
            "a credit note needs its original".into(),
            "红字发票须引用原发票".into(),
        )),
        (Kind::Credit, Some(orig)) => match credit {
            None => out.push(finding(
                Code::OriginalUnknown,
                "original",
                format!("{} is not an invoice of this device", orig.number),
                format!("{} 不是本设备开具的发票", orig.number),
            )),
            Some(ctx) if ctx.original.id != orig.id || ctx.original.number != orig.number => out
                .push(finding(
                    Code::OriginalUnknown,
                    "original",
                    format!("{} does not match the original's id", orig.number),
                    format!("{} 与原发票标识不符", orig.number),
                )),
            Some(ctx) => {
                if let Err(e) = check_original(ctx) {
                    out.push(e);
                } else if numbers_ok {
                    out.extend(check_credit_lines(inv, ctx));
                }
            }
        },
        (_, Some(_)) => out.push(finding(
            Code::OriginalNotAllowed,
            "original",
            "only a credit note refers to an original".into(),
            "只有红字发票才引用原发票".into(),
        )),
        (_, None) => {}
    }
    out
}

/// Credit lines draw on matching original lines at the original's price, never beyond what
/// is left of their quantity or amount.
fn check_credit_lines(inv: &Invoice, ctx: &CreditContext) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut remaining = Remaining::of(&ctx.original, &ctx.prior_credits);
    for (i, l) in inv.lines.iter().enumerate() {
        let q = parse_decimal(&l.quantity, 8).unwrap_or_default();
        let a = parse_money(&l.amount).unwrap_or_default();
        let t = parse_money(&l.tax).unwrap_or_default();
        let need = q.abs();
        let Some(idx) = remaining.find(&ctx.original, l, need) else {
            out.push(finding(
                Code::CreditLineNotInOriginal,
                &format!("lines[{i}].name"),
                format!("matches no line of {}", ctx.original.number),
                format!("与原发票 {} 的任何行都不匹配", ctx.original.number),
            ));
            continue;
        };
        if ctx.original.lines[idx].unit_price != l.unit_price {
            out.push(finding(
                Code::CreditPriceMismatch,
                &format!("lines[{i}].unit_price"),
                format!(
                    "{} is not the original's price {}",
                    l.unit_price, ctx.original.lines[idx].unit_price
                ),
                format!(
                    "{} 不是原发票单价 {}",
                    l.unit_price, ctx.original.lines[idx].unit_price
                ),
            ));
        }
        if need > remaining.quantity[idx] || a.abs() > remaining.amount[idx] {
            out.push(finding(
                Code::CreditExceedsOriginal,
                &format!("lines[{i}].quantity"),
                format!(
                    "credits more than is left on line {idx} of {}",
                    ctx.original.number
                ),
                format!(
                    "超过原发票 {} 第 {} 行剩余可冲红数量或金额",
                    ctx.original.number,
                    idx + 1
                ),
            ));
            continue;
        }
        remaining.quantity[idx] -= need;
        remaining.amount[idx] += a;
        remaining.tax[idx] += t;
    }
    out
}
