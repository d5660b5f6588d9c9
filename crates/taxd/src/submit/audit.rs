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
use kaipiao_core::{Code, FieldError, Lang, Msg};
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
        findings.push(FieldError::msg(
            Code::InvalidId,
            "id",
            Msg::new("invalid_id").arg("value", format!("{:?}", inv.id)),
        ));
    }
    match parse_rfc3339(&inv.issued_at) {
        Some(t) if rfc3339(t) != inv.issued_at => findings.push(FieldError::msg(
            Code::InvalidTimestamp,
            "issued_at",
            Msg::new("invalid_timestamp-form").arg("value", format!("{:?}", inv.issued_at)),
        )),
        Some(t) if t > now + Duration::seconds(MAX_FUTURE_SECS) => findings.push(FieldError::msg(
            Code::IssuedInFuture,
            "issued_at",
            Msg::new("issued_in_future")
                .arg("value", &inv.issued_at)
                .arg("seconds", MAX_FUTURE_SECS)
                .arg("now", rfc3339(now)),
        )),
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
                    findings.push(FieldError::msg(
                        Code::IssuedAtBackwards,
                        "issued_at",
                        Msg::new("issued_at_backwards")
                            .arg("value", &inv.issued_at)
                            .arg("previous", rfc3339(prev)),
                    ));
                }
            }
        }
        None => findings.push(FieldError::msg(
            Code::InvalidTimestamp,
            "issued_at",
            Msg::new("invalid_timestamp").arg("value", format!("{:?}", inv.issued_at)),
        )),
    }
    if let (Some(total), Some(cap)) = (
        parse_money(&inv.total_amount),
        parse_money(single_invoice_cap),
    ) {
        if total.abs() > cap {
            findings.push(FieldError::msg(
                Code::SingleInvoiceCap,
                "total_amount",
                Msg::new("single_invoice_cap")
                    .arg("amount", money_string(total.abs()))
                    .arg("cap", money_string(cap))
                    .arg("over", money_string(total.abs() - cap)),
            ));
        }
    }
    let enrolled: String = tx
        .prepare_cached("SELECT seller FROM devices WHERE device_id = ?1")?
        .query_row([&inv.device_id], |r| r.get(0))?;
    let enrolled: Party = serde_json::from_str(&enrolled).map_err(TaxdError::Json)?;
    if inv.seller != enrolled {
        findings.push(FieldError::msg(
            Code::SellerMismatch,
            "seller",
            Msg::new("seller_mismatch")
                .arg("name", &inv.seller.name)
                .arg("tax_id", &inv.seller.tax_id)
                .arg("enrolled_name", &enrolled.name)
                .arg("enrolled_tax_id", &enrolled.tax_id),
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
                // English on the wire (SPEC 7).
                message: fe.text(Lang::En),
                field: fe.field,
            });
        }
    }
    Ok(reasons)
}

fn is_lowercase_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}
