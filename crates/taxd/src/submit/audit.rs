//! Step 6 of a submission, the business rules: what makes a receipt `rejected` and its
//! `reasons`. SPEC 2 through kaipiao-core's rules (the same the client applies), plus what
//! needs the authority's records or clock: the credit context of a credit note,
//! issued_at against now, the previous invoice and the grant of its number's lease (no
//! earlier than `granted_at` minus the allowed skew), the lease's single-invoice cap, and
//! the enrolled seller. Nothing here refuses a request: the chain advances either way.

use super::chain::LeaseTerms;
use crate::error::{ErrorAnswer, TaxdError};
use chrono::{DateTime, Duration, Utc};
use kaipiao_core::draft::CreditContext;
use kaipiao_core::lease::Lease;
use kaipiao_core::model::{Invoice, Kind, Party};
use kaipiao_core::money::{money_string, parse_money};
use kaipiao_core::time::{parse_rfc3339, rfc3339};
use kaipiao_core::wire::MAX_SKEW_SECS;
use kaipiao_core::wire::{Reason, Receipt};
use kaipiao_core::{Code, FieldError, Lang, Msg};
use rusqlite::{params, OptionalExtension, Transaction};
use rust_decimal::Decimal;

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
    terms: &LeaseTerms,
    now: DateTime<Utc>,
) -> Result<Vec<Reason>, ErrorAnswer> {
    let single_invoice_cap = terms.single_invoice_cap.as_str();
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
            let previous = clock_reference(tx, inv)?;
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
    // The lease terms the authority can see: no invoice before its number was granted
    // (give or take the allowed skew), whatever else is wrong with its time.
    if let (Some(t), Some(granted)) = (
        parse_rfc3339(&inv.issued_at),
        parse_rfc3339(&terms.granted_at),
    ) {
        if t < granted - Duration::seconds(MAX_SKEW_SECS) {
            findings.push(FieldError::msg(
                Code::IssuedBeforeLease,
                "issued_at",
                Msg::new("issued_before_lease")
                    .arg("value", &inv.issued_at)
                    .arg("seconds", MAX_SKEW_SECS)
                    .arg("granted", &terms.granted_at)
                    .arg("number", &inv.number),
            ));
        }
    }
    if let Some(t) = parse_rfc3339(&inv.issued_at) {
        offline_terms(tx, inv, terms, t, &mut findings)?;
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

/// The `issued_at` that `inv`'s may not go back before: the device's last invoice before
/// it that was not rejected as `issued_in_future` ([`Receipt::rejected_in_future`], SPEC
/// 10). Usually the previous seq; a run of future-dated rejections is skipped.
fn clock_reference(tx: &Transaction<'_>, inv: &Invoice) -> Result<Option<String>, ErrorAnswer> {
    let mut stmt = tx.prepare_cached(
        "SELECT issued_at, status, body FROM receipts WHERE device_id = ?1 AND seq < ?2
         ORDER BY seq DESC",
    )?;
    let mut rows = stmt.query(params![inv.device_id, inv.seq as i64])?;
    while let Some(row) = rows.next()? {
        let issued_at: String = row.get(0)?;
        let status: String = row.get(1)?;
        if status == "rejected" {
            let body: Vec<u8> = row.get(2)?;
            let receipt: Receipt = serde_json::from_slice(&body).map_err(TaxdError::Json)?;
            if receipt.rejected_in_future() {
                continue;
            }
        }
        return Ok(Some(issued_at));
    }
    Ok(None)
}

/// The device's newest receipt received by a time: one seek in `receipts_by_arrival_seq`
/// (a test in `db.rs` holds it to that).
pub(crate) const NEWEST_RECEIVED: &str =
    "SELECT seq FROM receipts WHERE device_id = ?1 AND received_at <= ?2
     ORDER BY received_at DESC, seq DESC LIMIT 1";

/// The offline window and amount cap of the lease the number comes from, recomputed from
/// the chain and the authority's own receipt times (issue 10, item 4). When the device
/// issued `inv` at `t`, the invoices it held without a receipt were, as far as the
/// authority can tell, those of its chain received after `t`: from seq `m`, the one after
/// the newest receipt received by `t`, to `inv` itself. The window is `t` minus the
/// `issued_at` of seq `m`; the amount is the sum of their |total_amount|
/// (`exposure_cents`, a running sum, makes it one subtraction). The device counts from
/// when it stored each receipt, which is later, so it is never laxer than this check.
fn offline_terms(
    tx: &Transaction<'_>,
    inv: &Invoice,
    terms: &LeaseTerms,
    t: DateTime<Utc>,
    findings: &mut Vec<FieldError>,
) -> Result<(), ErrorAnswer> {
    let newest_received: Option<i64> = tx
        .prepare_cached(NEWEST_RECEIVED)?
        .query_row(params![inv.device_id, rfc3339(t)], |r| r.get(0))
        .optional()?;
    let first_pending = newest_received.unwrap_or(0) + 1;
    let seq = inv.seq as i64;
    if first_pending >= seq {
        // Nothing older was out there: the invoice is its own window, and the amount
        // is its own (the single-invoice cap already bounds it).
        return Ok(());
    }
    // Parsed only when something older was out there (not for a device that is online).
    let Ok(lease) = serde_json::from_str::<Lease>(&terms.body) else {
        return Ok(());
    };
    let Ok(limits) = lease.terms() else {
        return Ok(());
    };
    let row = |s: i64| -> Result<Option<(String, Option<i64>)>, ErrorAnswer> {
        Ok(tx
            .prepare_cached(
                "SELECT issued_at, exposure_cents FROM receipts WHERE device_id = ?1 AND seq = ?2",
            )?
            .query_row(params![inv.device_id, s], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    };
    let Some((oldest_issued, _)) = row(first_pending)? else {
        return Ok(());
    };
    if let Some(oldest) = parse_rfc3339(&oldest_issued) {
        let window = i64::try_from(limits.offline_hours)
            .unwrap_or(i64::MAX / 3600)
            .saturating_mul(3600);
        let used = (t - oldest).num_seconds();
        if used > window {
            let over = Decimal::from(used - window) / Decimal::from(3600);
            findings.push(FieldError::msg(
                Code::OfflineHoursExceeded,
                "issued_at",
                Msg::new("offline_hours_exceeded-authority")
                    .arg("hours", limits.offline_hours.to_string())
                    .arg("over", kaipiao_core::money::round(over, 1).to_string())
                    .arg("oldest", oldest_issued.as_str())
                    .arg("seq", first_pending),
            ));
        }
    }
    let before = match first_pending - 1 {
        0 => Some(0),
        s => row(s)?.and_then(|(_, c)| c),
    };
    let through = row(seq - 1)?.and_then(|(_, c)| c);
    if let (Some(before), Some(through)) = (before, through) {
        let cents = through - before + super::receipt::exposure_cents(&inv.total_amount);
        let total = Decimal::new(cents, 2);
        if total > limits.offline_amount_cap {
            findings.push(FieldError::msg(
                Code::OfflineAmountExceeded,
                "total_amount",
                Msg::new("offline_amount_exceeded-authority")
                    .arg("total", money_string(total))
                    .arg("cap", money_string(limits.offline_amount_cap))
                    .arg("over", money_string(total - limits.offline_amount_cap))
                    .arg("seq", first_pending),
            ));
        }
    }
    Ok(())
}

fn is_lowercase_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}
