//! A device's chain and numbers at the authority: step 4's chain position and number
//! checks (a seq already taken, a number outside the device's leases or already used, a
//! prev_hash that is not the head's hash: 422 `integrity`), step 5's gap (409
//! `chain_gap` with `expected_seq`), and the head advanced with each receipt. A chain
//! position and a number are never reused, and the chain is never skipped or rewritten.

use crate::error::{ErrorAnswer, TaxdError};
use axum::http::StatusCode;
use kaipiao_core::model::Invoice;
use kaipiao_core::Code;
use rusqlite::{params, OptionalExtension, Transaction};

/// Steps 4 (chain position, numbers) and 5 for `inv` inside `tx`, in this order: the seq
/// is not taken, the number lies in one of the device's leases and is unused, the seq is
/// not ahead of the head, the prev_hash is the head's hash. Ok is the terms of the lease
/// the number was taken from (step 6 checks the invoice against them).
pub(super) fn check_position(
    tx: &Transaction<'_>,
    inv: &Invoice,
) -> Result<LeaseTerms, ErrorAnswer> {
    let (head_seq, head_hash): (i64, String) = tx
        .prepare_cached("SELECT seq, hash FROM chain_heads WHERE device_id = ?1")?
        .query_row([&inv.device_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| {
            ErrorAnswer::from(TaxdError::Corrupt(format!(
                "device {} has no chain head",
                inv.device_id
            )))
        })?;
    let head_seq = u64::try_from(head_seq).unwrap_or(0);
    if inv.seq <= head_seq {
        let holder: Option<String> = tx
            .prepare_cached("SELECT invoice_id FROM receipts WHERE device_id = ?1 AND seq = ?2")?
            .query_row(params![inv.device_id, inv.seq as i64], |r| r.get(0))
            .optional()?;
        return Err(ErrorAnswer::integrity(
            format!(
                "seq {} is already taken{} (the device's head is seq {head_seq}); a chain position is never reused",
                inv.seq,
                holder.map(|h| format!(" by invoice {h}")).unwrap_or_default()
            ),
            "invoice.seq",
        ));
    }
    let terms = lease_of_number(tx, &inv.device_id, &inv.number)?.ok_or_else(|| {
        ErrorAnswer::integrity(
            format!(
                "number {:?} lies outside every lease granted to this device",
                inv.number
            ),
            "invoice.number",
        )
    })?;
    let number_holder: Option<String> = tx
        .prepare_cached("SELECT invoice_id FROM receipts WHERE number = ?1")?
        .query_row([&inv.number], |r| r.get(0))
        .optional()?;
    if let Some(holder) = number_holder {
        return Err(ErrorAnswer::integrity(
            format!(
                "number {} was already used by invoice {holder}; a number is never reused",
                inv.number
            ),
            "invoice.number",
        ));
    }
    // Step 5: a gap is the client's to fill; nothing is stored.
    if inv.seq > head_seq + 1 {
        let mut gap = ErrorAnswer::new(
            StatusCode::CONFLICT,
            Code::ChainGap,
            format!(
                "seq {} is ahead of the chain: submit seq {} first",
                inv.seq,
                head_seq + 1
            ),
            "invoice.seq",
        );
        gap.body.error.expected_seq = Some(head_seq + 1);
        return Err(gap);
    }
    if inv.prev_hash != head_hash {
        return Err(ErrorAnswer::integrity(
            format!(
                "prev_hash {:?} is not the hash of seq {head_seq} ({head_hash})",
                inv.prev_hash
            ),
            "invoice.prev_hash",
        ));
    }
    Ok(terms)
}

/// What step 6 needs of the lease a number was taken from.
pub(super) struct LeaseTerms {
    pub single_invoice_cap: String,
    /// When the authority granted it (RFC 3339, as stored).
    pub granted_at: String,
    /// The lease as granted (its offline window and amount cap).
    pub body: String,
}

/// The lease a number was taken from: its terms.
fn lease_of_number(
    tx: &Transaction<'_>,
    device: &str,
    number: &str,
) -> Result<Option<LeaseTerms>, ErrorAnswer> {
    if number.len() != 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let (prefix, sequence) = number.split_at(12);
    let Ok(sequence) = sequence.parse::<i64>() else {
        return Ok(None);
    };
    Ok(tx
        .prepare_cached(
            "SELECT single_invoice_cap, granted_at, body FROM leases
             WHERE device_id = ?1 AND prefix = ?2 AND first <= ?3 AND last >= ?3
             ORDER BY first LIMIT 1",
        )?
        .query_row(params![device, prefix, sequence], |r| {
            Ok(LeaseTerms {
                single_invoice_cap: r.get(0)?,
                granted_at: r.get(1)?,
                body: r.get(2)?,
            })
        })
        .optional()?)
}

/// The device's head moves to `inv` (hash `hash`), at `at`: with its receipt, accepted or
/// rejected alike.
pub(super) fn advance_head(
    tx: &Transaction<'_>,
    inv: &Invoice,
    hash: &str,
    at: &str,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "UPDATE chain_heads SET seq = ?1, hash = ?2, updated_at = ?3 WHERE device_id = ?4",
    )?
    .execute(params![inv.seq as i64, hash, at, inv.device_id])?;
    Ok(())
}
