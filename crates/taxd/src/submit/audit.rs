//! Step 6 of a submission, the business rules: what makes a receipt `rejected` and its
//! `reasons`. SPEC 2 through kaipiao-core's rules (the same the client applies), plus what
//! needs the authority's records or clock: the credit context of a credit note,
//! issued_at against now and the previous invoice, the lease's single-invoice cap, and
//! the enrolled seller. Nothing here refuses a request: the chain advances either way.

use crate::error::{ErrorAnswer, TaxdError};
use chrono::{DateTime, Duration, Utc};
use kaipiao_core::draft::CreditContext;
use kaipiao_core::model::{Invoice, Kind, Party};
use kaipiao_core::money::{money_string, parse_money};
use kaipiao_core::time::{parse_rfc3339, rfc3339};
use kaipiao_core::wire::Reason;
use kaipiao_core::{Code, FieldError};
use rusqlite::{params, OptionalExtension, Transaction};

/// How far in the future `issued_at` may be before the invoice is rejected.
const MAX_FUTURE_SECS: i64 = 300;

/// The credit context of a credit note: its original among this device's receipts and the
/// credits against it that were not rejected. None when the original is unknown.
fn credit_context(
    tx: &Transaction<'_>,
    device: &str,
    original_number: &str,
) -> Result<Option<CreditContext>, ErrorAnswer> {
    let found: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT invoice, status FROM receipts WHERE device_id = ?1 AND number = ?2",
        )?
        .query_row(params![device, original_number], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((original_json, original_status)) = found else {
        return Ok(None);
    };
    let original: Invoice = serde_json::from_str(&original_json).map_err(TaxdError::Json)?;
    let mut stmt = tx.prepare_cached(
        "SELECT invoice FROM receipts
         WHERE device_id = ?1 AND original_number = ?2 AND kind = 'credit' AND status <> 'rejected'
         ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![device, original_number], |r| r.get::<_, String>(0))?;
    let mut prior_credits = Vec::new();
    for row in rows {
        prior_credits.push(serde_json::from_str::<Invoice>(&row?).map_err(TaxdError::Json)?);
    }
    Ok(Some(CreditContext {
        original,
        original_status,
        prior_credits,
    }))
}

/// Step 6: SPEC 2 through kaipiao-core's rules, plus what needs the authority's records or
/// clock: issued_at against now and the previous invoice, the lease's single-invoice cap
/// (on |total_amount|, as SPEC 3 and the issuer count it), and the enrolled seller.
/// Empty when the invoice is accepted.
pub(super) fn audit(
    tx: &Transaction<'_>,
    inv: &Invoice,
    single_invoice_cap: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Reason>, ErrorAnswer> {
    let credit = match (inv.kind, &inv.original) {
        (Kind::Credit, Some(o)) => credit_context(tx, &inv.device_id, &o.number)?,
        _ => None,
    };
    let mut findings = kaipiao_core::rules::check_invoice(inv, credit.as_ref());
    if !is_lowercase_uuid(&inv.id) {
        findings.push(FieldError::new(
            Code::InvalidId,
            "id",
            format!("{:?} is not a lowercase hyphenated UUID", inv.id),
            format!("{:?} 不是小写连字符格式的 UUID", inv.id),
        ));
    }
    match parse_rfc3339(&inv.issued_at) {
        Some(t) if rfc3339(t) != inv.issued_at => findings.push(FieldError::new(
            Code::InvalidTimestamp,
            "issued_at",
            format!("{:?} is not RFC 3339 UTC with Z and whole seconds", inv.issued_at),
            format!("{:?} 不是带 Z 的整秒 RFC 3339 UTC 时间", inv.issued_at),
        )),
        Some(t) if t > now + Duration::seconds(MAX_FUTURE_SECS) => {
            findings.push(FieldError::new(
                Code::IssuedInFuture,
                "issued_at",
                format!(
                    "{} is more than {MAX_FUTURE_SECS} s after the authority's time {}; correct the device clock",
                    inv.issued_at,
                    rfc3339(now)
                ),
                format!(
                    "开具时间 {} 比税务机关时间 {} 晚 {MAX_FUTURE_SECS} 秒以上，请校正设备时钟",
                    inv.issued_at,
                    rfc3339(now)
                ),
            ))
        }
        Some(t) => {
            let previous: Option<String> = tx
                .prepare_cached("SELECT issued_at FROM receipts WHERE device_id = ?1 AND seq = ?2")?
                .query_row(
                    params![inv.device_id, inv.seq.saturating_sub(1) as i64],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(prev) = previous.as_deref().and_then(parse_rfc3339) {
                if t < prev {
                    findings.push(FieldError::new(
                        Code::IssuedAtBackwards,
                        "issued_at",
                        format!(
                            "{} is before the previous invoice's {}; issued_at never goes backwards along the chain: correct the device clock",
                            inv.issued_at,
                            rfc3339(prev)
                        ),
                        format!(
                            "开具时间 {} 早于上一张发票的 {}；开具时间不得倒退，请校正设备时钟",
                            inv.issued_at,
                            rfc3339(prev)
                        ),
                    ));
                }
            }
        }
        None => findings.push(FieldError::new(
            Code::InvalidTimestamp,
            "issued_at",
            format!("{:?} is not an RFC 3339 time", inv.issued_at),
            format!("{:?} 不是 RFC 3339 时间", inv.issued_at),
        )),
    }
    if let (Some(total), Some(cap)) = (
        parse_money(&inv.total_amount),
        parse_money(single_invoice_cap),
    ) {
        if total.abs() > cap {
            findings.push(FieldError::new(
                Code::SingleInvoiceCap,
                "total_amount",
                format!(
                    "the invoice amount {} is over the lease's single-invoice cap {} by {}",
                    money_string(total.abs()),
                    money_string(cap),
                    money_string(total.abs() - cap)
                ),
                format!(
                    "发票金额 {} 超过额度的单张发票限额 {}（超出 {}）",
                    money_string(total.abs()),
                    money_string(cap),
                    money_string(total.abs() - cap)
                ),
            ));
        }
    }
    let enrolled: String = tx
        .prepare_cached("SELECT seller FROM devices WHERE device_id = ?1")?
        .query_row([&inv.device_id], |r| r.get(0))?;
    let enrolled: Party = serde_json::from_str(&enrolled).map_err(TaxdError::Json)?;
    if inv.seller != enrolled {
        findings.push(FieldError::new(
            Code::SellerMismatch,
            "seller",
            format!(
                "the seller ({}, {}) is not the one enrolled for this device ({}, {}); enrol the device again after a change",
                inv.seller.name, inv.seller.tax_id, enrolled.name, enrolled.tax_id
            ),
            format!(
                "销售方（{}，{}）与本设备登记的销售方（{}，{}）不符；变更后请重新登记设备",
                inv.seller.name, inv.seller.tax_id, enrolled.name, enrolled.tax_id
            ),
        ));
    }
    // One reason per code and field: the same fact found twice is said once.
    let mut reasons: Vec<Reason> = Vec::with_capacity(findings.len());
    for fe in findings {
        if !reasons
            .iter()
            .any(|r| fe.code == r.code && r.field == fe.field)
        {
            reasons.push(Reason {
                code: fe.code.as_str().to_string(),
                message: fe.en,
                field: fe.field,
            });
        }
    }
    Ok(reasons)
}

fn is_lowercase_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}
