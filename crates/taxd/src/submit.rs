//! Invoice submission (SPEC 7), alone or in a batch, after the IETF Idempotency-Key draft.
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
//! is checked first (with one `verify_batch` for the whole batch, falling back to one by
//! one to name the bad item), then steps 3 to 6 run for every item inside ONE IMMEDIATE
//! transaction. Holding the write lock from the known-key check to the commit makes the
//! in-flight markers unnecessary for a batch; a live marker left by a lone request of
//! another process still answers that item 409 `request_in_progress`.

use crate::api::{json, read_body};
use crate::auth::device_key;
use crate::error::{json_response, Failure, TaxdError};
use crate::faults::{outgoing_receipt, roll, Outgoing};
use crate::reqlog::LogDevice;
use crate::{AppState, Shared};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use kaipiao_core::draft::{parse_timestamp, timestamp, CreditContext};
use kaipiao_core::model::{Envelope, Invoice, Kind, Party};
use kaipiao_core::money::{money_string, parse_money};
use kaipiao_core::sign::{
    invoice_hash, sign_object, verify_envelope, SignatureError, RECEIPT_DOMAIN,
};
use kaipiao_core::sign::{PublicKey, INVOICE_DOMAIN};
use kaipiao_core::wire::{
    parse_sf_string, Reason, Receipt, HEADER_IDEMPOTENCY_KEY, HEADER_REPLAYED, MAX_BATCH_BODY,
    MAX_BATCH_ITEMS, MAX_INVOICE_BODY,
};
use kaipiao_core::FieldError;
use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;

/// An in-flight marker older than this belongs to a request that died with its process.
const STALE_MARKER_MS: i64 = 60_000;
/// How far in the future `issued_at` may be before the invoice is rejected.
const MAX_FUTURE_SECS: i64 = 300;

pub(crate) fn is_submission_path(path: &str) -> bool {
    path == "/v1/invoices" || path == "/v1/invoices:batch"
}

/// What one submission came to: the status and the exact body to send.
pub(crate) struct Outcome {
    status: StatusCode,
    body: Vec<u8>,
    /// A stored answer sent again for a known key.
    replayed: bool,
    /// A receipt was stored by this request (the drop-after-commit fault applies).
    committed: bool,
}

impl From<Failure> for Outcome {
    fn from(f: Failure) -> Outcome {
        Outcome {
            status: f.status,
            body: f.body_bytes(),
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
        let key = idempotency_key(&parts.headers)?;
        let bytes = read_body(&parts.headers, body, MAX_INVOICE_BODY).await?;
        let envelope = parse_envelope(&bytes)?;
        device = Some(envelope.invoice.device_id.clone());
        state.0.limits.check_device(&envelope.invoice.device_id)?;
        if key != envelope.invoice.id {
            return Err(mismatch(&key, &envelope.invoice.id));
        }
        state
            .blocking(move |shared| Ok(submit_envelope(shared, &envelope)))
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
        Err(f) => f.into_response(),
    };
    if let Some(device) = device {
        response.extensions_mut().insert(LogDevice(device));
    }
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

/// `{items: [{idempotency_key, envelope}]}` (SPEC 7) with each envelope kept as the bytes
/// that were sent, so that it is read exactly as a lone submission's body would be: the
/// same size limit, the same parser, the same errors.
#[derive(Deserialize)]
struct BatchIn {
    items: Vec<BatchItemIn>,
}

#[derive(Deserialize)]
struct BatchItemIn {
    idempotency_key: String,
    envelope: Box<RawValue>,
}

/// Only what the rate limit needs from an envelope.
#[derive(Deserialize)]
struct DeviceOf {
    invoice: DeviceOfInvoice,
}

#[derive(Deserialize)]
struct DeviceOfInvoice {
    device_id: String,
}

/// POST /v1/invoices:batch
pub(crate) async fn submit_batch(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut device = None;
    let result = async {
        let bytes = read_body(&parts.headers, body, MAX_BATCH_BODY).await?;
        let batch: BatchIn = parse_json(&bytes, "")?;
        if batch.items.is_empty() || batch.items.len() > MAX_BATCH_ITEMS {
            return Err(Failure::bad_request(
                "invalid_request",
                format!(
                    "a batch has 1 to {MAX_BATCH_ITEMS} items, this one has {}",
                    batch.items.len()
                ),
                "items",
            ));
        }
        // A batch is one request, charged to the device of its first envelope.
        device = batch.items.iter().find_map(|item| {
            serde_json::from_str::<DeviceOf>(item.envelope.get())
                .ok()
                .map(|d| d.invoice.device_id)
        });
        if let Some(d) = &device {
            state.0.limits.check_device(d)?;
        }
        state
            .blocking(move |shared| {
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
                            Failure::from(TaxdError::Corrupt("a stored receipt is not JSON".into()))
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
        Err(f) => f.into_response(),
    };
    if let Some(device) = device {
        response.extensions_mut().insert(LogDevice(device));
    }
    response
}

/// The drop-after-commit fault: the receipt is stored, but the response body fails at
/// once, so hyper aborts the connection before even the status line is flushed and the
/// client sees a transport error — the "outcome unknown" case a retry must settle.
fn dropped_connection(status: StatusCode) -> Response {
    let failing = futures_util::stream::iter([Err::<Bytes, std::io::Error>(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "taxd fault: connection dropped after commit",
    ))]);
    let mut response = Response::new(Body::from_stream(failing));
    *response.status_mut() = status;
    response
}

/// Step 1: the `Idempotency-Key` header as an sf-string.
fn idempotency_key(headers: &HeaderMap) -> Result<String, Failure> {
    headers
        .get(HEADER_IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_sf_string)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Failure::bad_request(
                "idempotency_key_missing",
                "send the invoice id as Idempotency-Key, quoted as a structured-field string: Idempotency-Key: \"<invoice id>\"",
                HEADER_IDEMPOTENCY_KEY,
            )
        })
}

fn mismatch(key: &str, invoice_id: &str) -> Failure {
    Failure::bad_request(
        "idempotency_key_mismatch",
        format!("the idempotency key {key:?} is not the envelope's invoice.id {invoice_id:?}"),
        "invoice.id",
    )
}

/// Parses JSON into `T`, naming the path of the first problem.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], prefix: &str) -> Result<T, Failure> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = parsed.map_err(|e| shape_error(prefix, &e))?;
    de.end().map_err(|e| {
        Failure::bad_request(
            "invalid_request",
            format!("trailing data after the JSON: {e}"),
            prefix,
        )
    })?;
    Ok(value)
}

fn shape_error(prefix: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> Failure {
    let path = e.path().to_string();
    let field = match (prefix.is_empty(), path == "." || path.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => path,
        (false, false) => format!("{prefix}.{path}"),
    };
    Failure::bad_request(
        "invalid_request",
        format!("not a well-formed envelope: {}", e.inner()),
        field,
    )
}

/// Step 2: the envelope's shape (unknown fields are refused by the core types).
fn parse_envelope(bytes: &[u8]) -> Result<Envelope, Failure> {
    parse_json(bytes, "")
}

/// A batch item after steps 1 and 2.
enum Prepared {
    /// Refused by step 1 or 2 (key, shape): the answer is final.
    Answered(Outcome),
    Ready(Box<Ready>),
}

/// An envelope whose key matched, with what the transaction needs.
struct Ready {
    envelope: Envelope,
    /// RFC 8785 bytes of the invoice (what the device signed) and their SHA-256.
    canonical: Vec<u8>,
    hash: String,
    /// Step 4's signature part, decided before the transaction by [`authenticate_all`];
    /// used only if step 3 does not answer first.
    authentic: Result<(), Failure>,
}

/// Steps 1 and 2 of one batch item, exactly as for a lone submission with
/// `Idempotency-Key: "<key>"` and the envelope as its body.
fn prepare(item: &BatchItemIn) -> Prepared {
    if item.idempotency_key.is_empty() {
        return Prepared::Answered(
            Failure::bad_request(
                "idempotency_key_missing",
                "each batch item needs its invoice id as idempotency_key",
                "idempotency_key",
            )
            .into(),
        );
    }
    let bytes = item.envelope.get().as_bytes();
    if bytes.len() > MAX_INVOICE_BODY {
        return Prepared::Answered(
            Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the envelope is over {MAX_INVOICE_BODY} bytes"),
                "",
            )
            .into(),
        );
    }
    let envelope = match parse_envelope(bytes) {
        Ok(e) => e,
        Err(f) => return Prepared::Answered(f.into()),
    };
    if item.idempotency_key != envelope.invoice.id {
        return Prepared::Answered(mismatch(&item.idempotency_key, &envelope.invoice.id).into());
    }
    let (canonical, hash) = invoice_hash(&envelope.invoice);
    Prepared::Ready(Box::new(Ready {
        envelope,
        canonical,
        hash,
        authentic: Ok(()),
    }))
}

/// Every item of a batch, answered in order as if each had been sent alone, with one
/// commit for all of them. Blocking. `Err` (a server error) means nothing of the batch
/// was committed.
fn submit_items(shared: &Shared, items: &[BatchItemIn]) -> Result<Vec<Outcome>, Failure> {
    let mut prepared: Vec<Prepared> = items.iter().map(prepare).collect();
    authenticate_all(shared, &mut prepared)?;
    shared.db.with(|conn| record_all(conn, shared, prepared))
}

/// Batch verification pays off from two signatures up.
const MIN_VERIFY_BATCH: usize = 2;

/// Step 4's signature part for every item that reached it, outside any transaction so
/// that the write lock is never held for cryptography.
///
/// The signatures that can be checked together (known device, hash matching the invoice,
/// well-formed signature, a key that is not of small order) go through one
/// `ed25519_dalek::verify_batch`. When it fails, which item is bad is found by checking
/// each alone with the very check a lone submission gets, so a bad signature is
/// reported on its own item and only there. Batch verification accepts exactly the
/// signatures that satisfy the Ed25519 equation; `verify_strict` (the lone check) also
/// refuses a few non-canonical encodings that only the holder of the device key could
/// construct and that no conforming signer produces. An honest device therefore gets
/// the same answer either way.
fn authenticate_all(shared: &Shared, prepared: &mut [Prepared]) -> Result<(), Failure> {
    let mut keys: HashMap<String, Option<(PublicKey, Option<VerifyingKey>)>> = HashMap::new();
    let mut together: Vec<(usize, PublicKey, Signature, VerifyingKey)> = Vec::new();
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for (i, p) in prepared.iter_mut().enumerate() {
        let Prepared::Ready(ready) = p else { continue };
        let device = ready.envelope.invoice.device_id.clone();
        let key = match keys.get(&device) {
            Some(k) => *k,
            None => {
                let k = device_key(shared, &device)?.map(|pk| (pk, batchable_key(&pk)));
                keys.insert(device, k);
                k
            }
        };
        let Some((public, verifying)) = key else {
            ready.authentic = Err(unknown_device(&ready.envelope.invoice));
            continue;
        };
        match (verifying, decode_signature(&ready.envelope.signature)) {
            (Some(vk), Some(sig)) if ready.hash == ready.envelope.hash => {
                let mut message = Vec::with_capacity(INVOICE_DOMAIN.len() + ready.canonical.len());
                message.extend_from_slice(INVOICE_DOMAIN);
                message.extend_from_slice(&ready.canonical);
                messages.push(message);
                together.push((i, public, sig, vk));
            }
            _ => ready.authentic = verify_envelope(&public, &ready.envelope).map_err(integrity_of),
        }
    }
    let all_good = together.len() >= MIN_VERIFY_BATCH && {
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let sigs: Vec<Signature> = together.iter().map(|t| t.2).collect();
        let vks: Vec<VerifyingKey> = together.iter().map(|t| t.3).collect();
        ed25519_dalek::verify_batch(&refs, &sigs, &vks).is_ok()
    };
    if !all_good {
        for &(i, public, _, _) in &together {
            if let Some(Prepared::Ready(ready)) = prepared.get_mut(i) {
                let alone = public
                    .verify(INVOICE_DOMAIN, &ready.canonical, &ready.envelope.signature)
                    .map_err(integrity_of);
                ready.authentic = alone;
            }
        }
    }
    Ok(())
}

/// The key for batch verification, or None to check this device's signatures one by one
/// (a small-order key, which `verify_strict` refuses and batch verification would not).
fn batchable_key(key: &PublicKey) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(key.to_base64()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes)
        .ok()
        .filter(|vk| !vk.is_weak())
}

fn decode_signature(text: &str) -> Option<Signature> {
    let bytes: [u8; 64] = B64.decode(text).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

/// Steps 3 to 6 for every prepared item in ONE IMMEDIATE transaction.
fn record_all(
    conn: &mut Connection,
    shared: &Shared,
    prepared: Vec<Prepared>,
) -> Result<Vec<Outcome>, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(prepared.len());
    for p in prepared {
        outcomes.push(match p {
            Prepared::Answered(outcome) => outcome,
            Prepared::Ready(ready) => match record_ready(&tx, shared, &ready) {
                Ok(outcome) => outcome,
                // The authority failed, not the item: nothing of the batch is kept and
                // the whole request is answered 500 (the client sends it again).
                Err(f) if f.status.is_server_error() => return Err(f),
                // Refusals come before any write of the item.
                Err(f) => f.into(),
            },
        });
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Steps 3 to 6 of one batch item inside the batch's transaction.
fn record_ready(tx: &Transaction<'_>, shared: &Shared, ready: &Ready) -> Result<Outcome, Failure> {
    let envelope = &ready.envelope;
    let key = envelope.invoice.id.as_str();
    // Step 3, as `claim` does it for a lone submission.
    if let Some(known) = known_receipt(tx, key)? {
        return Ok(replay_or_reused(known, &ready.hash, &envelope.signature));
    }
    let started: Option<i64> = tx
        .prepare_cached("SELECT started_at_ms FROM in_flight WHERE idempotency_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    if marker_is_live(started, now_ms()) {
        return Err(in_progress());
    }
    ready.authentic.clone()?;
    record_in(tx, shared, envelope, &ready.hash, Utc::now())
}

/// Steps 3 to 6 for an envelope whose key matched. Blocking.
fn submit_envelope(shared: &Shared, envelope: &Envelope) -> Outcome {
    let (_, hash) = invoice_hash(&envelope.invoice);
    let key = envelope.invoice.id.as_str();
    let owner = uuid::Uuid::new_v4().to_string();
    match shared
        .db
        .with(|conn| claim(conn, key, &hash, &envelope.signature, &owner))
    {
        Ok(Claim::Known(outcome)) => return outcome,
        Ok(Claim::Claimed) => {}
        Err(f) => return f.into(),
    }
    let outcome = match check_and_record(shared, envelope, &hash, &owner) {
        Ok(o) => o,
        Err(f) => f.into(),
    };
    if !outcome.committed {
        // Refused (or failed): the key is free again for a corrected retry.
        let released = shared.db.with(|conn| {
            conn.prepare_cached("DELETE FROM in_flight WHERE idempotency_key = ?1 AND owner = ?2")?
                .execute(params![key, owner])
                .map_err(TaxdError::Db)
        });
        if let Err(e) = released {
            // The marker expires on its own; say why the key stays busy for a while.
            eprintln!("taxd: cannot release the in-flight marker of {key}: {e}");
        }
    }
    outcome
}

enum Claim {
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

/// Step 3: the same envelope (recomputed hash and signature, however the JSON was
/// written) gets the first answer again; another envelope under the key is refused.
fn replay_or_reused(known: KnownReceipt, hash: &str, signature: &str) -> Outcome {
    if known.hash == hash && known.signature == signature {
        Outcome {
            status: StatusCode::from_u16(known.status_code).unwrap_or(StatusCode::CREATED),
            body: known.body,
            replayed: true,
            committed: false,
        }
    } else {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this idempotency key (invoice id) already has a receipt for a different envelope; an issued invoice is never changed: issue a credit note or a new invoice",
            "invoice.id",
        )
        .into()
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn in_progress() -> Failure {
    Failure::new(
        StatusCode::CONFLICT,
        "request_in_progress",
        "a request with this idempotency key is still being processed; retry shortly",
        "Idempotency-Key",
    )
}

/// Whether an in-flight marker started at `started` (ms) still holds its key at `now`.
fn marker_is_live(started: Option<i64>, now: i64) -> bool {
    // Either way round: a clock stepped back must not make a marker live for hours.
    started.is_some_and(|t| now.saturating_sub(t).unsigned_abs() < STALE_MARKER_MS as u64)
}

fn claim(
    conn: &mut Connection,
    key: &str,
    hash: &str,
    signature: &str,
    owner: &str,
) -> Result<Claim, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(known) = known_receipt(&tx, key)? {
        return Ok(Claim::Known(replay_or_reused(known, hash, signature)));
    }
    let now = now_ms();
    let started: Option<i64> = tx
        .prepare_cached("SELECT started_at_ms FROM in_flight WHERE idempotency_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    if marker_is_live(started, now) {
        return Err(in_progress());
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO in_flight (idempotency_key, owner, started_at_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![key, owner, now])?;
    tx.commit()?;
    Ok(Claim::Claimed)
}

fn check_and_record(
    shared: &Shared,
    envelope: &Envelope,
    hash: &str,
    owner: &str,
) -> Result<Outcome, Failure> {
    let inv = &envelope.invoice;
    // Step 4, the part that needs no lock: who signed it. Keys never change once enrolled.
    let key = device_key(shared, &inv.device_id)?.ok_or_else(|| unknown_device(inv))?;
    verify_envelope(&key, envelope).map_err(integrity_of)?;
    let now = Utc::now();
    shared
        .db
        .with(|conn| record(conn, shared, envelope, hash, owner, now))
}

fn unknown_device(inv: &Invoice) -> Failure {
    Failure::integrity(
        format!(
            "device {:?} is not enrolled with this authority",
            inv.device_id
        ),
        "invoice.device_id",
    )
}

/// Step 4's answer to an envelope whose hash or device signature does not check out.
fn integrity_of(e: SignatureError) -> Failure {
    match e {
        SignatureError::HashMismatch => Failure::integrity(
            "the hash field is not the SHA-256 of the canonical invoice",
            "hash",
        ),
        other => Failure::integrity(
            format!("the device signature does not verify: {other}"),
            "signature",
        ),
    }
}

/// The lease a number was taken from: its single-invoice cap.
fn lease_cap_for_number(
    tx: &Transaction<'_>,
    device: &str,
    number: &str,
) -> Result<Option<String>, Failure> {
    if number.len() != 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let (prefix, sequence) = number.split_at(12);
    let Ok(sequence) = sequence.parse::<i64>() else {
        return Ok(None);
    };
    Ok(tx
        .prepare_cached(
            "SELECT single_invoice_cap FROM leases
             WHERE device_id = ?1 AND prefix = ?2 AND first <= ?3 AND last >= ?3
             ORDER BY first LIMIT 1",
        )?
        .query_row(params![device, prefix, sequence], |r| r.get(0))
        .optional()?)
}

/// Steps 4 (chain position, numbers) to 6 and the receipt, in one IMMEDIATE transaction.
fn record(
    conn: &mut Connection,
    shared: &Shared,
    envelope: &Envelope,
    hash: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Outcome, Failure> {
    let inv = &envelope.invoice;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Still ours? A marker that went stale may have been taken over by a retry.
    let marker: Option<String> = tx
        .prepare_cached("SELECT owner FROM in_flight WHERE idempotency_key = ?1")?
        .query_row([&inv.id], |r| r.get(0))
        .optional()?;
    if marker.as_deref() != Some(owner) {
        if let Some(known) = known_receipt(&tx, &inv.id)? {
            return Ok(replay_or_reused(known, hash, &envelope.signature));
        }
        return Err(in_progress());
    }
    let outcome = record_in(&tx, shared, envelope, hash, now)?;
    tx.commit()?;
    Ok(outcome)
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
) -> Result<Outcome, Failure> {
    let inv = &envelope.invoice;
    let (head_seq, head_hash): (i64, String) = tx
        .prepare_cached("SELECT seq, hash FROM chain_heads WHERE device_id = ?1")?
        .query_row([&inv.device_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| {
            Failure::from(TaxdError::Corrupt(format!(
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
        return Err(Failure::integrity(
            format!(
                "seq {} is already taken{} (the device's head is seq {head_seq}); a chain position is never reused",
                inv.seq,
                holder.map(|h| format!(" by invoice {h}")).unwrap_or_default()
            ),
            "invoice.seq",
        ));
    }
    let cap = lease_cap_for_number(tx, &inv.device_id, &inv.number)?.ok_or_else(|| {
        Failure::integrity(
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
        return Err(Failure::integrity(
            format!(
                "number {} was already used by invoice {holder}; a number is never reused",
                inv.number
            ),
            "invoice.number",
        ));
    }
    // Step 5: a gap is the client's to fill; nothing is stored.
    if inv.seq > head_seq + 1 {
        let mut f = Failure::new(
            StatusCode::CONFLICT,
            "chain_gap",
            format!(
                "seq {} is ahead of the chain: submit seq {} first",
                inv.seq,
                head_seq + 1
            ),
            "invoice.seq",
        );
        f.body.error.expected_seq = Some(head_seq + 1);
        return Err(f);
    }
    if inv.prev_hash != head_hash {
        return Err(Failure::integrity(
            format!(
                "prev_hash {:?} is not the hash of seq {head_seq} ({head_hash})",
                inv.prev_hash
            ),
            "invoice.prev_hash",
        ));
    }
    // Step 6: findings make a rejected receipt; the chain advances either way.
    let reasons = audit(tx, inv, &cap, now)?;
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
        received_at: timestamp(now),
        authority_signature: String::new(),
    };
    let value = serde_json::to_value(&receipt).map_err(TaxdError::Json)?;
    let signed = sign_object(
        &shared.authority,
        RECEIPT_DOMAIN,
        value,
        "authority_signature",
    )
    .map_err(TaxdError::Sign)?;
    // Serialised once: these bytes are sent, stored, and replayed for the key forever.
    let body = serde_json::to_vec(&signed).map_err(TaxdError::Json)?;
    let invoice_json = serde_json::to_string(inv).map_err(TaxdError::Json)?;
    let original_number = match (inv.kind, &inv.original) {
        (Kind::Credit, Some(o)) => Some(o.number.as_str()),
        _ => None,
    };
    tx.prepare_cached(
        "INSERT INTO receipts (invoice_id, device_id, seq, number, kind, original_number, hash,
                               signature, status, status_code, authority_code, received_at,
                               issued_at, invoice, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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
    ])?;
    tx.prepare_cached(
        "UPDATE chain_heads SET seq = ?1, hash = ?2, updated_at = ?3 WHERE device_id = ?4",
    )?
    .execute(params![
        inv.seq as i64,
        hash,
        receipt.received_at,
        inv.device_id
    ])?;
    tx.prepare_cached("DELETE FROM in_flight WHERE idempotency_key = ?1")?
        .execute([&inv.id])?;
    Ok(Outcome {
        status: StatusCode::CREATED,
        body,
        replayed: false,
        committed: true,
    })
}

/// 校验码: 20 random digits, drawn once per invoice.
fn authority_code() -> String {
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// The credit context of a credit note: its original among this device's receipts and the
/// credits against it that were not rejected. None when the original is unknown.
fn credit_context(
    tx: &Transaction<'_>,
    device: &str,
    original_number: &str,
) -> Result<Option<CreditContext>, Failure> {
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
fn audit(
    tx: &Transaction<'_>,
    inv: &Invoice,
    single_invoice_cap: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Reason>, Failure> {
    let credit = match (inv.kind, &inv.original) {
        (Kind::Credit, Some(o)) => credit_context(tx, &inv.device_id, &o.number)?,
        _ => None,
    };
    let mut findings = kaipiao_core::rules::check_invoice(inv, credit.as_ref());
    if !is_lowercase_uuid(&inv.id) {
        findings.push(FieldError::new(
            "invalid_id",
            "id",
            format!("{:?} is not a lowercase hyphenated UUID", inv.id),
            format!("{:?} 不是小写连字符格式的 UUID", inv.id),
        ));
    }
    match parse_timestamp(&inv.issued_at) {
        Some(t) if timestamp(t) != inv.issued_at => findings.push(FieldError::new(
            "invalid_timestamp",
            "issued_at",
            format!("{:?} is not RFC 3339 UTC with Z and whole seconds", inv.issued_at),
            format!("{:?} 不是带 Z 的整秒 RFC 3339 UTC 时间", inv.issued_at),
        )),
        Some(t) if t > now + Duration::seconds(MAX_FUTURE_SECS) => {
            findings.push(FieldError::new(
                "issued_in_future",
                "issued_at",
                format!(
                    "{} is more than {MAX_FUTURE_SECS} s after the authority's time {}; correct the device clock",
                    inv.issued_at,
                    timestamp(now)
                ),
                format!(
                    "开具时间 {} 比税务机关时间 {} 晚 {MAX_FUTURE_SECS} 秒以上，请校正设备时钟",
                    inv.issued_at,
                    timestamp(now)
                ),
            ))
        }
        Some(t) => {
            let previous: Option<String> = tx
                .prepare_cached("SELECT issued_at FROM receipts WHERE device_id = ?1 AND seq = ?2")?
        .query_row(params![inv.device_id, inv.seq.saturating_sub(1) as i64],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(prev) = previous.as_deref().and_then(parse_timestamp) {
                if t < prev {
                    findings.push(FieldError::new(
                        "issued_at_backwards",
                        "issued_at",
                        format!(
                            "{} is before the previous invoice's {}; issued_at never goes backwards along the chain: correct the device clock",
                            inv.issued_at,
                            timestamp(prev)
                        ),
                        format!(
                            "开具时间 {} 早于上一张发票的 {}；开具时间不得倒退，请校正设备时钟",
                            inv.issued_at,
                            timestamp(prev)
                        ),
                    ));
                }
            }
        }
        None => findings.push(FieldError::new(
            "invalid_timestamp",
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
                "single_invoice_cap",
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
            "seller_mismatch",
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
            .any(|r| r.code == fe.code && r.field == fe.field)
        {
            reasons.push(Reason {
                code: fe.code,
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
