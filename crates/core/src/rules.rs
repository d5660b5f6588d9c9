//! The authority's audit of a finished invoice (SPEC 2 as business rules). `taxd` runs it
//! on every submission and turns each finding into a `reason` of a rejected receipt; the
//! client's `verify` runs it too, so an invoice the issuer built always passes it.

use crate::draft::{
    check_original, check_text, tolerance_checks, validate_buyer, validate_seller, CreditContext,
    Remaining, MAX_AUDIT_QUANTITY_OR_PRICE, MAX_LINES, MAX_LINE_MONEY, MAX_NAME_CHARS,
    MAX_REMARKS_CHARS,
};
use crate::error::FieldError;
use crate::i18n::Msg;
use crate::model::{Invoice, Kind, Treatment};
use crate::money::{is_normalized_decimal, money_string, parse_decimal, parse_money};
use crate::Code;
use rust_decimal::Decimal;

fn finding(code: Code, field: &str, msg: Msg) -> FieldError {
    FieldError::msg(code, field, msg)
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
            Msg::new("invalid_version").arg("version", inv.version),
        ));
    }
    if inv.currency != "CNY" {
        out.push(finding(
            Code::InvalidCurrency,
            "currency",
            Msg::new("invalid_currency").arg("value", format!("{:?}", inv.currency)),
        ));
    }
    match validate_seller(&inv.seller) {
        Ok(s) if s != inv.seller => out.push(finding(
            Code::NotNormalized,
            "seller",
            Msg::new("not_normalized-seller"),
        )),
        Ok(_) => {}
        Err(e) => out.push(e),
    }
    match validate_buyer(&inv.buyer, inv.kind) {
        Ok(b) if b != inv.buyer => out.push(finding(
            Code::NotNormalized,
            "buyer",
            Msg::new("not_normalized-buyer"),
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
            Msg::new("line_count")
                .arg("count", inv.lines.len())
                .arg("max", MAX_LINES),
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
                Msg::new("invalid_tax_code"),
            ));
        }
        if !crate::RATES.contains(&l.tax_rate.as_str()) {
            out.push(finding(
                Code::InvalidTaxRate,
                &f("tax_rate"),
                Msg::new("invalid_tax_rate-audit")
                    .arg("value", &l.tax_rate)
                    .arg("rates", crate::RATES.join(", ")),
            ));
            numbers_ok = false;
            continue;
        }
        let zero = l.tax_rate == "0";
        if zero == (l.treatment == Treatment::Standard) {
            out.push(finding(
                Code::InvalidTreatment,
                &f("treatment"),
                Msg::new("invalid_treatment")
                    .arg("treatment", l.treatment.as_str())
                    .arg("rate", &l.tax_rate),
            ));
        }
        if inv.kind == Kind::Special
            && matches!(l.treatment, Treatment::Exempt | Treatment::NonTaxable)
        {
            out.push(finding(
                Code::SpecialTreatment,
                &f("treatment"),
                Msg::new("special_treatment").arg("treatment", l.treatment.as_str()),
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
                Msg::new("invalid_number-audit"),
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
                Msg::new("out_of_range-audit"),
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
                    Msg::new("invalid_quantity-credit-audit")
                } else {
                    Msg::new("invalid_quantity-audit")
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
                    Msg::new("total_mismatch")
                        .arg("value", written)
                        .arg("sum", money_string(expected)),
                ));
            }
        }
    }
    match (inv.kind, &inv.original) {
        (Kind::Credit, None) => out.push(finding(
            Code::MissingField,
            "original",
            Msg::new("missing_field-original-audit"),
        )),
        (Kind::Credit, Some(orig)) => match credit {
            None => out.push(finding(
                Code::OriginalUnknown,
                "original",
                Msg::new("original_unknown").arg("number", &orig.number),
            )),
            Some(ctx) if ctx.original.id != orig.id || ctx.original.number != orig.number => out
                .push(finding(
                    Code::OriginalUnknown,
                    "original",
                    Msg::new("original_unknown-id").arg("number", &orig.number),
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
            Msg::new("original_not_allowed"),
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
                Msg::new("credit_line_not_in_original").arg("number", &ctx.original.number),
            ));
            continue;
        };
        if ctx.original.lines[idx].unit_price != l.unit_price {
            out.push(finding(
                Code::CreditPriceMismatch,
                &format!("lines[{i}].unit_price"),
                Msg::new("credit_price_mismatch")
                    .arg("value", &l.unit_price)
                    .arg("price", &ctx.original.lines[idx].unit_price),
            ));
        }
        if need > remaining.quantity[idx] || a.abs() > remaining.amount[idx] {
            out.push(finding(
                Code::CreditExceedsOriginal,
                &format!("lines[{i}].quantity"),
                Msg::new("credit_exceeds_original")
                    .arg("index", idx)
                    .arg("line", idx + 1)
                    .arg("number", &ctx.original.number),
            ));
            continue;
        }
        remaining.quantity[idx] -= need;
        remaining.amount[idx] += a;
        remaining.tax[idx] += t;
    }
    out
}
