//! What the authority records for a submission: the receipt (SPEC 7), made once, signed
//! with the authority key, and stored with the invoice as the bytes that are sent now and
//! replayed for its key forever. `authority_code` (校验码) is drawn here, once per invoice,
//! rejected ones too.
//!
//! A lone submission's receipt is signed as it is stored. A batch's receipts are stored
//! unsigned as each item is recorded (the later items' rules read the earlier rows) and
//! signed together before the commit, on every core ([`sign_later`]): signing is the
//! largest part of recording an item, and an item's receipt depends only on that item.
//! No unsigned body outlives the transaction.

use crate::error::{ErrorAnswer, TaxdError};
use crate::Shared;
use axum::http::StatusCode;
use kaipiao_core::model::{Envelope, Kind};
use kaipiao_core::money::parse_money;
use kaipiao_core::sign::{sign_object, RECEIPT_DOMAIN};
use kaipiao_core::wire::{Reason, Receipt};
use kaipiao_core::DeviceKey;
use rand::Rng;
use rusqlite::{params, Transaction};
use rust_decimal::Decimal;
use serde_json::Value;

/// When [`store`] signs the receipt.
pub(super) enum Signing<'a> {
    /// As it is stored.
    Now,
    /// With the rest of the batch, by [`sign_later`]: the row holds the receipt unsigned
    /// (`authority_signature` empty) until then, and it is queued here with the slot of
    /// the batch's answers its signed bytes go into.
    Later(&'a mut Vec<Unsigned>, usize),
}

/// A receipt stored unsigned in this transaction.
pub(super) struct Unsigned {
    rowid: i64,
    receipt: Value,
    /// Which answer of the batch its signed bytes go into.
    slot: usize,
}

/// Makes, signs and stores the receipt of `envelope` (whose canonical hash is `hash`)
/// inside `tx`: `accepted` when `reasons` is empty, else `rejected` with them. Ok is the
/// receipt's bytes, exactly as stored (unsigned for [`Signing::Later`]).
pub(super) fn store(
    tx: &Transaction<'_>,
    shared: &Shared,
    envelope: &Envelope,
    hash: &str,
    reasons: Vec<Reason>,
    received_at: &str,
    signing: Signing<'_>,
) -> Result<Vec<u8>, ErrorAnswer> {
    let inv = &envelope.invoice;
    let status = if reasons.is_empty() {
        "accepted"
    } else {
        "rejected"
    };
    let receipt = Receipt {
        invoice_id: inv.id.clone(),
        number: inv.number.clone(),
        hash: hash.to_string(),
        status: status.to_string(),
        reasons,
        authority_code: authority_code(),
        received_at: received_at.to_string(),
        authority_signature: String::new(),
    };
    let value = serde_json::to_value(&receipt).map_err(TaxdError::Json)?;
    let (body, unsigned) = match signing {
        Signing::Now => (sign(&shared.authority, value)?, None),
        Signing::Later(queue, slot) => {
            let body = serde_json::to_vec(&value).map_err(TaxdError::Json)?;
            (body, Some((queue, slot, value)))
        }
    };
    let invoice_json = serde_json::to_string(inv).map_err(TaxdError::Json)?;
    let original_number = match (inv.kind, &inv.original) {
        (Kind::Credit, Some(o)) => Some(o.number.as_str()),
        _ => None,
    };
    tx.prepare_cached(
        "INSERT INTO receipts (invoice_id, device_id, seq, number, kind, original_number, hash,
                               signature, status, status_code, authority_code, received_at,
                               issued_at, invoice, body, exposure_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                 ?16 + COALESCE((SELECT exposure_cents FROM receipts
                                 WHERE device_id = ?2 AND seq = ?3 - 1), 0))",
    )?
    .execute(params![
        inv.id,
        inv.device_id,
        inv.seq as i64,
        inv.number,
        inv.kind.as_str(),
        original_number,
        hash,
        envelope.signature,
        status,
        StatusCode::CREATED.as_u16(),
        receipt.authority_code,
        receipt.received_at,
        inv.issued_at,
        invoice_json,
        body,
        exposure_cents(&inv.total_amount),
    ])?;
    if let Some((queue, slot, receipt)) = unsigned {
        queue.push(Unsigned {
            rowid: tx.last_insert_rowid(),
            receipt,
            slot,
        });
    }
    Ok(body)
}

/// Signs a receipt. Serialised once: these bytes are sent, stored, and replayed for the
/// key forever.
fn sign(authority: &DeviceKey, receipt: Value) -> Result<Vec<u8>, ErrorAnswer> {
    let signed = sign_object(authority, RECEIPT_DOMAIN, receipt, "authority_signature")
        .map_err(TaxdError::Sign)?;
    Ok(serde_json::to_vec(&signed).map_err(TaxdError::Json)?)
}

/// Signs the receipts stored unsigned in `tx`, in parallel, and stores each signed body in
/// its row. Ok is each receipt's slot with its bytes, exactly as stored.
pub(super) fn sign_later(
    tx: &Transaction<'_>,
    shared: &Shared,
    unsigned: Vec<Unsigned>,
) -> Result<Vec<(usize, Vec<u8>)>, ErrorAnswer> {
    let places: Vec<(i64, usize)> = unsigned.iter().map(|u| (u.rowid, u.slot)).collect();
    let authority = &shared.authority;
    let receipts: Vec<Value> = unsigned.into_iter().map(|u| u.receipt).collect();
    let bodies: Vec<Vec<u8>> =
        super::cores::map_on_every_core(receipts, |receipt| sign(authority, receipt))
            .map_err(TaxdError::Task)?
            .into_iter()
            .collect::<Result<_, _>>()?;
    let mut update = tx.prepare_cached("UPDATE receipts SET body = ?2 WHERE rowid = ?1")?;
    for ((rowid, _), body) in places.iter().zip(&bodies) {
        update.execute(params![rowid, body])?;
    }
    Ok(places
        .into_iter()
        .map(|(_, slot)| slot)
        .zip(bodies)
        .collect())
}

/// |total_amount| in cents, as the offline amount cap counts it; 0 for an amount that
/// does not parse (such an invoice is rejected anyway).
pub(super) fn exposure_cents(total_amount: &str) -> i64 {
    parse_money(total_amount)
        .map(|d| (d.abs() * Decimal::from(100)).trunc())
        .and_then(|c| i64::try_from(c).ok())
        .unwrap_or(0)
}

/// 校验码: 20 random digits, drawn once per invoice.
fn authority_code() -> String {
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}
