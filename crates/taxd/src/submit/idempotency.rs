//! Step 3 of a submission, the known key (after the IETF Idempotency-Key draft): the same
//! envelope gets its first answer again, another envelope under the key is refused, and a
//! key still in flight answers 409 `request_in_progress`. A lone submission holds its key
//! with an in-flight marker in `--db`, so that requests in this process and in others on
//! the same file see it; a marker left by a crashed process goes stale after 60 s. Keys
//! for invoices never expire: the stored receipt is the record.

use super::Outcome;
use crate::error::{ErrorAnswer, TaxdError};
use axum::http::StatusCode;
use chrono::Utc;
use kaipiao_core::Code;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

/// An in-flight marker older than this belongs to a request that died with its process.
const STALE_MARKER_MS: i64 = 60_000;

pub(super) enum Claim {
    /// The key has a receipt: its replay, or the refusal of a different envelope.
    Known(Outcome),
    /// This request holds the key now.
    Claimed,
}

struct KnownReceipt {
    hash: String,
    signature: String,
    status_code: u16,
    body: Vec<u8>,
}

fn known_receipt(conn: &Connection, key: &str) -> Result<Option<KnownReceipt>, rusqlite::Error> {
    conn.prepare_cached(
        "SELECT hash, signature, status_code, body FROM receipts WHERE invoice_id = ?1",
    )?
    .query_row([key], |r| {
        Ok(KnownReceipt {
            hash: r.get(0)?,
            signature: r.get(1)?,
            status_code: r.get(2)?,
            body: r.get(3)?,
        })
    })
    .optional()
}

/// The same envelope (recomputed hash and signature, however the JSON was written) gets
/// the first answer again; another envelope under the key is refused.
fn replay_or_reused(known: KnownReceipt, hash: &str, signature: &str) -> Outcome {
    if known.hash == hash && known.signature == signature {
        Outcome {
            status: StatusCode::from_u16(known.status_code).unwrap_or(StatusCode::CREATED),
            body: known.body,
            replayed: true,
            committed: false,
        }
    } else {
        ErrorAnswer::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::IdempotencyKeyReused,
            "this idempotency key (invoice id) already has a receipt for a different envelope; an issued invoice is never changed: issue a credit note or a new invoice",
            "invoice.id",
        )
        .into()
    }
}

pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn in_progress() -> ErrorAnswer {
    ErrorAnswer::new(
        StatusCode::CONFLICT,
        Code::RequestInProgress,
        "a request with this idempotency key is still being processed; retry shortly",
        "Idempotency-Key",
    )
}

/// Whether an in-flight marker started at `started` (ms) still holds its key at `now`.
fn marker_is_live(started: Option<i64>, now: i64) -> bool {
    // Either way round: a clock stepped back must not make a marker live for hours.
    started.is_some_and(|t| now.saturating_sub(t).unsigned_abs() < STALE_MARKER_MS as u64)
}

/// Step 3 inside a write transaction: the answer for a known key, 409 for a key a live
/// marker holds (at `now`, ms), or None when the key is free.
pub(super) fn known_or_in_flight(
    tx: &Transaction<'_>,
    key: &str,
    hash: &str,
    signature: &str,
    now: i64,
) -> Result<Option<Outcome>, ErrorAnswer> {
    if let Some(known) = known_receipt(tx, key)? {
        return Ok(Some(replay_or_reused(known, hash, signature)));
    }
    let started: Option<i64> = tx
        .prepare_cached("SELECT started_at_ms FROM in_flight WHERE idempotency_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    if marker_is_live(started, now) {
        return Err(in_progress());
    }
    Ok(None)
}

/// Step 3 of a lone submission: answers a known key, or takes it with an in-flight
/// marker owned by `owner`.
pub(super) fn claim(
    conn: &mut Connection,
    key: &str,
    hash: &str,
    signature: &str,
    owner: &str,
) -> Result<Claim, ErrorAnswer> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    if let Some(known) = known_or_in_flight(&tx, key, hash, signature, now)? {
        return Ok(Claim::Known(known));
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO in_flight (idempotency_key, owner, started_at_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![key, owner, now])?;
    tx.commit()?;
    Ok(Claim::Claimed)
}

/// In the transaction that would store the receipt: None while `owner` still holds the
/// key, else the answer. A marker that went stale may have been taken over by a retry
/// meanwhile: the retry's receipt is replayed (or refused as another envelope), or, while
/// the retry is still in flight, 409.
pub(super) fn claim_lost(
    tx: &Transaction<'_>,
    key: &str,
    owner: &str,
    hash: &str,
    signature: &str,
) -> Result<Option<Outcome>, ErrorAnswer> {
    let marker: Option<String> = tx
        .prepare_cached("SELECT owner FROM in_flight WHERE idempotency_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    if marker.as_deref() == Some(owner) {
        return Ok(None);
    }
    if let Some(known) = known_receipt(tx, key)? {
        return Ok(Some(replay_or_reused(known, hash, signature)));
    }
    Err(in_progress())
}

/// Frees a key `owner` claimed and did not use (refused or failed), for a corrected retry.
pub(super) fn release(conn: &mut Connection, key: &str, owner: &str) -> Result<(), TaxdError> {
    conn.prepare_cached("DELETE FROM in_flight WHERE idempotency_key = ?1 AND owner = ?2")?
        .execute(params![key, owner])?;
    Ok(())
}

/// Removes any in-flight marker of the key, with the receipt that settles it.
pub(super) fn clear_marker(tx: &Transaction<'_>, key: &str) -> Result<(), rusqlite::Error> {
    tx.prepare_cached("DELETE FROM in_flight WHERE idempotency_key = ?1")?
        .execute([key])?;
    Ok(())
}
