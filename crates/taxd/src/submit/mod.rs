//! Invoice submission (SPEC 7), alone or in a batch: the two handlers, and the order in
//! which they run the steps and hold the database. Each step is done in its own module:
//! 1 key and 2 shape in [`request`], 3 known key in [`idempotency`], 4 integrity in
//! [`signature`] (who signed it) and [`chain`] (chain position and number, with 5 the
//! chain gap), 6 business rules in [`audit`], and the receipt that is stored in
//! [`receipt`].
//!
//! Checks run in the order SPEC 7 fixes: 1 key, 2 shape, 3 known key, 4 integrity,
//! 5 chain, 6 business rules. Where 1 and 2 meet: a missing or malformed
//! `Idempotency-Key` header is refused before the body is read (step 1 needs no body),
//! but comparing the key with `invoice.id` needs a parsed envelope, so an unparsable or
//! oversized body is a shape error (400 `invalid_request` / 413) even when a key is
//! present; the mismatch is reported only for an envelope that parses.
//!
//! A known key is claimed with an in-flight marker in the database (one IMMEDIATE
//! transaction), so a second request with the same key, in this process or another on
//! the same `--db`, gets 409 `request_in_progress` instead of racing. The signature is
//! verified outside any transaction; integrity, chain and rules are checked and the
//! receipt stored and the head advanced in a second IMMEDIATE transaction, which also
//! removes the marker. A marker left by a crashed process expires after 60 s.
//!
//! A batch is answered item by item exactly as if each had been sent alone, in order, but
//! with one commit for all of them: keys and shapes are read and every device signature
//! is checked first (with one batch equation for the whole batch, falling back to one by
//! one to name the bad item), then steps 3 to 6 run for every item inside ONE IMMEDIATE
//! transaction. Holding the write lock from the known-key check to the commit makes the
//! in-flight markers unnecessary for a batch; a live marker left by a lone request of
//! another process still answers that item 409 `request_in_progress`.

mod audit;
#[cfg(test)]
pub(crate) use audit::NEWEST_RECEIVED;
mod chain;
mod cores;
mod idempotency;
mod receipt;
mod request;
mod signature;

use crate::body::{json, json_response, read_body};
use crate::error::{ErrorAnswer, TaxdError};
use crate::faults::{dropped_connection, outgoing_receipt, roll, Outgoing};
use crate::reqlog::LogDevice;
use crate::{AppState, Shared};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use kaipiao_core::model::Envelope;
use kaipiao_core::sign::invoice_hash;
use kaipiao_core::time::rfc3339;
use kaipiao_core::wire::{
    is_stop_verdict, seal_verdict, VerdictSubject, WireError, HEADER_REPLAYED, MAX_BATCH_BODY,
    MAX_BATCH_ITEMS, MAX_INVOICE_BODY,
};
use kaipiao_core::Code;
use receipt::Signing;
use request::{BatchIn, BatchItemIn, Prepared, Ready};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashSet;

/// What one submission came to: the status and the exact body to send.
pub(crate) struct Outcome {
    status: StatusCode,
    body: Vec<u8>,
    /// A stored answer sent again for a known key.
    replayed: bool,
    /// A receipt was stored by this request (the drop-after-commit fault applies).
    committed: bool,
}

impl From<ErrorAnswer> for Outcome {
    fn from(e: ErrorAnswer) -> Outcome {
        Outcome {
            status: e.status,
            body: e.body_bytes(),
            replayed: false,
            committed: false,
        }
    }
}

/// POST /v1/invoices
pub(crate) async fn submit_invoice(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut device = None;
    let result = async {
        let key = request::idempotency_key(&parts.headers)?;
        let ticket = crate::admission::ticket(&parts.headers)?;
        let bytes = read_body(&parts.headers, body, MAX_INVOICE_BODY).await?;
        let envelope = request::parse_envelope(&bytes)?;
        device = Some(envelope.invoice.device_id.clone());
        if key != envelope.invoice.id {
            return Err(request::mismatch(&key, &envelope.invoice.id));
        }
        state
            .blocking(move |shared| {
                crate::admission::admit_submission(
                    shared,
                    ticket.as_deref(),
                    &envelope.invoice.device_id,
                    1,
                )?;
                // Charged to the device only if it signed this envelope (the checks of
                // SPEC 7 then run in their order, the signature again at step 4).
                if shared.limits.charges_devices()
                    && signature::authenticate(shared, &envelope).is_ok()
                {
                    shared.limits.check_device(&envelope.invoice.device_id)?;
                }
                Ok(submit_envelope(shared, &envelope))
            })
            .await
    }
    .await;
    let mut response = match result {
        Ok(outcome) => {
            let faults = state.faults();
            if outcome.committed && roll(faults.drop_after_commit) {
                dropped_connection(outcome.status)
            } else {
                let body = if outcome.status == StatusCode::CREATED {
                    match outgoing_receipt(&faults, &state.0.impostor, outcome.body) {
                        Outgoing::Receipt(body) | Outgoing::Broken(body) => body,
                    }
                } else {
                    outcome.body
                };
                let mut r = json_response(outcome.status, body);
                if outcome.replayed {
                    r.headers_mut()
                        .insert(HEADER_REPLAYED, HeaderValue::from_static("true"));
                }
                r
            }
        }
        Err(e) => e.into_response(),
    };
    if let Some(device) = device {
        response.extensions_mut().insert(LogDevice(device));
    }
    response
        .extensions_mut()
        .insert(crate::reqlog::LogInvoices(1));
    response
}

/// One result of a batch; `body` is embedded byte for byte as it would be sent alone.
#[derive(Serialize)]
struct BatchResultOut {
    idempotency_key: String,
    status: u16,
    body: Box<RawValue>,
}

#[derive(Serialize)]
struct BatchResponseOut {
    results: Vec<BatchResultOut>,
}

/// POST /v1/invoices:batch
pub(crate) async fn submit_batch(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut device = None;
    let mut items = None;
    let result = async {
        let bytes = read_body(&parts.headers, body, MAX_BATCH_BODY).await?;
        let batch: BatchIn = request::parse_json(&bytes, "")?;
        if batch.items.is_empty() || batch.items.len() > MAX_BATCH_ITEMS {
            return Err(ErrorAnswer::bad_request(
                Code::InvalidRequest,
                format!(
                    "a batch has 1 to {MAX_BATCH_ITEMS} items, this one has {}",
                    batch.items.len()
                ),
                "items",
            ));
        }
        device = request::first_device(&batch);
        items = Some(batch.items.len());
        let ticket = crate::admission::ticket(&parts.headers)?;
        let first = device.clone().unwrap_or_default();
        state
            .blocking(move |shared| {
                crate::admission::admit_submission(
                    shared,
                    ticket.as_deref(),
                    &first,
                    batch.items.len(),
                )?;
                let outcomes = submit_items(shared, &batch.items)?;
                // Committed by now: the receipt faults change only what is sent.
                let faults = shared.faults.get();
                let mut committed = false;
                let mut results = Vec::with_capacity(outcomes.len());
                for (item, outcome) in batch.items.into_iter().zip(outcomes) {
                    committed |= outcome.committed;
                    let text = if outcome.status == StatusCode::CREATED {
                        match outgoing_receipt(&faults, &shared.impostor, outcome.body) {
                            Outgoing::Receipt(body) => String::from_utf8(body).ok(),
                            Outgoing::Broken(cut) => {
                                serde_json::to_string(&String::from_utf8_lossy(&cut)).ok()
                            }
                        }
                    } else {
                        String::from_utf8(outcome.body).ok()
                    };
                    let body = text
                        .and_then(|s| RawValue::from_string(s).ok())
                        .ok_or_else(|| {
                            ErrorAnswer::from(TaxdError::Corrupt(
                                "a stored receipt is not JSON".into(),
                            ))
                        })?;
                    results.push(BatchResultOut {
                        idempotency_key: item.idempotency_key,
                        status: outcome.status.as_u16(),
                        body,
                    });
                }
                Ok((BatchResponseOut { results }, committed))
            })
            .await
    }
    .await;
    let mut response = match result {
        Ok((out, committed)) => {
            // One roll per batch: the whole answer is lost, as a lone answer would be.
            if committed && roll(state.faults().drop_after_commit) {
                dropped_connection(StatusCode::OK)
            } else {
                json(StatusCode::OK, &out)
            }
        }
        Err(e) => e.into_response(),
    };
    if let Some(device) = device {
        response.extensions_mut().insert(LogDevice(device));
    }
    if let Some(n) = items {
        response
            .extensions_mut()
            .insert(crate::reqlog::LogInvoices(n));
    }
    response
}

/// Steps 3 to 6 for a lone envelope whose key matched. Blocking.
fn submit_envelope(shared: &Shared, envelope: &Envelope) -> Outcome {
    let (_, hash) = invoice_hash(&envelope.invoice);
    let key = envelope.invoice.id.as_str();
    let owner = uuid::Uuid::new_v4().to_string();
    match shared
        .db
        .with(|conn| idempotency::claim(conn, key, &hash, &envelope.signature, &owner))
    {
        Ok(idempotency::Claim::Known(outcome)) => return sealed(shared, key, &hash, outcome),
        Ok(idempotency::Claim::Claimed) => {}
        Err(e) => return e.into(),
    }
    let outcome = match check_and_record(shared, envelope, &hash, &owner) {
        Ok(o) => o,
        Err(e) => sealed(shared, key, &hash, e.into()),
    };
    if !outcome.committed {
        // Refused (or failed): the key is free again for a corrected retry.
        let released = shared
            .db
            .with(|conn| idempotency::release(conn, key, &owner));
        if let Err(e) = released {
            // The marker expires on its own; say why the key stays busy for a while.
            eprintln!("taxd: cannot release the in-flight marker of {key}: {e}");
        }
    }
    outcome
}

/// A refusal that stops a device's queue (422 `integrity`, 422 `idempotency_key_reused`,
/// 409 `chain_gap`) goes out signed by the authority, about the envelope of `invoice_id`
/// whose canonical hash is `hash` (SPEC 10): a client stops only on the authority's word,
/// so an endpoint, proxy or anyone on the path cannot stop a shop with one answer. Every
/// other outcome goes as it is. Under the `wrong_signing_key` fault the verdict is signed
/// by the impostor key, as receipts are.
fn sealed(shared: &Shared, invoice_id: &str, hash: &str, outcome: Outcome) -> Outcome {
    let status = outcome.status.as_u16();
    if outcome.committed || outcome.replayed || !matches!(status, 409 | 422) {
        return outcome;
    }
    let Ok(error) = serde_json::from_slice::<WireError>(&outcome.body) else {
        return outcome;
    };
    if !is_stop_verdict(status, &error.error.code) {
        return outcome;
    }
    let subject = VerdictSubject {
        invoice_id: invoice_id.to_string(),
        hash: hash.to_string(),
        decided_at: rfc3339(Utc::now()),
    };
    let key = if shared.faults.get().wrong_signing_key {
        &shared.impostor
    } else {
        &shared.authority
    };
    let body = seal_verdict(key, &error, &subject)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::to_vec(&v).map_err(|e| e.to_string()));
    match body {
        Ok(body) => Outcome { body, ..outcome },
        Err(e) => {
            // Never expected; unsigned, the client takes it for a misbehaving endpoint
            // and retries instead of stopping.
            eprintln!("taxd: cannot sign the verdict on {invoice_id}: {e}");
            outcome
        }
    }
}

/// Steps 4 to 6 of a lone envelope whose key this request has claimed.
fn check_and_record(
    shared: &Shared,
    envelope: &Envelope,
    hash: &str,
    owner: &str,
) -> Result<Outcome, ErrorAnswer> {
    // Step 4, the part that needs no lock: who signed it.
    signature::authenticate(shared, envelope)?;
    let now = Utc::now();
    shared
        .db
        .with(|conn| record(conn, shared, envelope, hash, owner, now))
}

/// Steps 4 (chain position, numbers) to 6 and the receipt of a lone envelope, in one
/// IMMEDIATE transaction, if the key is still this request's.
fn record(
    conn: &mut Connection,
    shared: &Shared,
    envelope: &Envelope,
    hash: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Outcome, ErrorAnswer> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(outcome) =
        idempotency::claim_lost(&tx, &envelope.invoice.id, owner, hash, &envelope.signature)?
    {
        return Ok(outcome);
    }
    let outcome = record_in(&tx, shared, envelope, hash, now, Signing::Now)?;
    tx.commit()?;
    Ok(outcome)
}

/// Every item of a batch, answered in order as if each had been sent alone, with one
/// commit for all of them. Blocking. `Err` (a server error) means nothing of the batch
/// was committed.
fn submit_items(shared: &Shared, items: &[BatchItemIn]) -> Result<Vec<Outcome>, ErrorAnswer> {
    let mut prepared: Vec<Prepared> = items.iter().map(request::prepare).collect();
    signature::authenticate_all(shared, &mut prepared)?;
    // A batch is one request, charged once it is authenticated: to the device of its
    // first envelope whose signature verified (none verified: nothing to charge).
    let first_authentic = prepared.iter().find_map(|p| match p {
        Prepared::Ready(ready) if ready.authentic.is_ok() => {
            Some(ready.envelope.invoice.device_id.as_str())
        }
        _ => None,
    });
    if let Some(device) = first_authentic {
        shared.limits.check_device(device)?;
    }
    shared.db.with(|conn| record_all(conn, shared, prepared))
}

/// Steps 3 to 6 for every prepared item in ONE IMMEDIATE transaction. The receipts are
/// signed together before the commit ([`receipt::sign_later`]), unless a key comes twice
/// in the batch: its second answer is the first one's replay, read back from its row, so
/// that row must be signed by then.
fn record_all(
    conn: &mut Connection,
    shared: &Shared,
    prepared: Vec<Prepared>,
) -> Result<Vec<Outcome>, ErrorAnswer> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let sign_later = keys_are_distinct(&prepared);
    let mut unsigned = Vec::new();
    let mut outcomes = Vec::with_capacity(prepared.len());
    for p in prepared {
        let slot = outcomes.len();
        outcomes.push(match p {
            Prepared::Answered(outcome) => outcome,
            Prepared::Ready(ready) => {
                let signing = if sign_later {
                    Signing::Later(&mut unsigned, slot)
                } else {
                    Signing::Now
                };
                let outcome = match record_ready(&tx, shared, &ready, signing) {
                    Ok(outcome) => outcome,
                    // The authority failed, not the item: nothing of the batch is kept
                    // and the whole request is answered 500 (the client sends it again).
                    Err(e) if e.status.is_server_error() => return Err(e),
                    // Refusals come before any write of the item.
                    Err(e) => e.into(),
                };
                sealed(shared, &ready.envelope.invoice.id, &ready.hash, outcome)
            }
        });
    }
    for (slot, body) in receipt::sign_later(&tx, shared, unsigned)? {
        if let Some(outcome) = outcomes.get_mut(slot) {
            outcome.body = body;
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Whether no invoice id comes twice among the items that reached step 3.
fn keys_are_distinct(prepared: &[Prepared]) -> bool {
    let mut keys = HashSet::new();
    prepared.iter().all(|p| match p {
        Prepared::Ready(ready) => keys.insert(ready.envelope.invoice.id.as_str()),
        Prepared::Answered(_) => true,
    })
}

/// Steps 3 to 6 of one batch item inside the batch's transaction.
fn record_ready(
    tx: &Transaction<'_>,
    shared: &Shared,
    ready: &Ready,
    signing: Signing<'_>,
) -> Result<Outcome, ErrorAnswer> {
    let envelope = &ready.envelope;
    // Step 3, as `claim` does it for a lone submission.
    if let Some(outcome) = idempotency::known_or_in_flight(
        tx,
        &envelope.invoice.id,
        &ready.hash,
        &envelope.signature,
        idempotency::now_ms(),
    )? {
        return Ok(outcome);
    }
    ready.authentic.clone()?;
    record_in(tx, shared, envelope, &ready.hash, Utc::now(), signing)
}

/// Steps 4 (chain position, numbers) to 6 and the receipt inside `tx`, whose caller has
/// settled step 3 and the device signature. Every refusal comes before the first write;
/// any in-flight marker of the key is removed with the receipt.
fn record_in(
    tx: &Transaction<'_>,
    shared: &Shared,
    envelope: &Envelope,
    hash: &str,
    now: DateTime<Utc>,
    signing: Signing<'_>,
) -> Result<Outcome, ErrorAnswer> {
    let inv = &envelope.invoice;
    // Steps 4 (chain position, numbers) and 5.
    let terms = chain::check_position(tx, inv)?;
    // Step 6: findings make a rejected receipt; the chain advances either way.
    let reasons = audit::audit(tx, inv, &terms, now)?;
    let received_at = rfc3339(now);
    let body = receipt::store(tx, shared, envelope, hash, reasons, &received_at, signing)?;
    chain::advance_head(tx, inv, hash, &received_at)?;
    idempotency::clear_marker(tx, &inv.id)?;
    Ok(Outcome {
        status: StatusCode::CREATED,
        body,
        replayed: false,
        committed: true,
    })
}
