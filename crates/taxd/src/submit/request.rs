//! Steps 1 (key) and 2 (shape) of a submission: the `Idempotency-Key` header or a batch
//! item's key, the envelope parsed with the JSON path of the first problem named, and the
//! batch request itself. A batch item is read exactly as a lone body would be: the same
//! size limit, the same parser, the same errors.

use super::Outcome;
use crate::error::ErrorAnswer;
use axum::http::{HeaderMap, StatusCode};
use kaipiao_core::model::Envelope;
use kaipiao_core::sign::invoice_hash;
use kaipiao_core::wire::{parse_sf_string, HEADER_IDEMPOTENCY_KEY, MAX_INVOICE_BODY};
use kaipiao_core::Code;
use serde::Deserialize;
use serde_json::value::RawValue;

/// `{items: [{idempotency_key, envelope}]}` (SPEC 7) with each envelope kept as the bytes
/// that were sent, so that it is read exactly as a lone submission's body would be: the
/// same size limit, the same parser, the same errors.
#[derive(Deserialize)]
pub(super) struct BatchIn {
    pub(super) items: Vec<BatchItemIn>,
}

#[derive(Deserialize)]
pub(super) struct BatchItemIn {
    pub(super) idempotency_key: String,
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

/// The device of the first envelope that names one: a batch is one request, charged to it.
pub(super) fn first_device(batch: &BatchIn) -> Option<String> {
    batch.items.iter().find_map(|item| {
        serde_json::from_str::<DeviceOf>(item.envelope.get())
            .ok()
            .map(|d| d.invoice.device_id)
    })
}

/// Step 1: the `Idempotency-Key` header as an sf-string.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<String, ErrorAnswer> {
    headers
        .get(HEADER_IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_sf_string)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ErrorAnswer::bad_request(
                Code::IdempotencyKeyMissing,
                "send the invoice id as Idempotency-Key, quoted as a structured-field string: Idempotency-Key: \"<invoice id>\"",
                HEADER_IDEMPOTENCY_KEY,
            )
        })
}

/// Step 1's second half, once the envelope parses: the key is its `invoice.id`.
pub(super) fn mismatch(key: &str, invoice_id: &str) -> ErrorAnswer {
    ErrorAnswer::bad_request(
        Code::IdempotencyKeyMismatch,
        format!("the idempotency key {key:?} is not the envelope's invoice.id {invoice_id:?}"),
        "invoice.id",
    )
}

/// Parses JSON into `T`, naming the path of the first problem. Well-formed JSON, the
/// common case, is read once without tracking the path; only JSON that fails is read
/// again to name where.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    prefix: &str,
) -> Result<T, ErrorAnswer> {
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = parsed.map_err(|e| shape_error(prefix, &e))?;
    de.end().map_err(|e| {
        ErrorAnswer::bad_request(
            Code::InvalidRequest,
            format!("trailing data after the JSON: {e}"),
            prefix,
        )
    })?;
    Ok(value)
}

fn shape_error(prefix: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> ErrorAnswer {
    let path = e.path().to_string();
    let field = match (prefix.is_empty(), path == "." || path.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => path,
        (false, false) => format!("{prefix}.{path}"),
    };
    ErrorAnswer::bad_request(
        Code::InvalidRequest,
        format!("not a well-formed envelope: {}", e.inner()),
        field,
    )
}

/// Step 2: the envelope's shape (unknown fields are refused by the core types).
pub(super) fn parse_envelope(bytes: &[u8]) -> Result<Envelope, ErrorAnswer> {
    parse_json(bytes, "")
}

/// A batch item after steps 1 and 2.
pub(super) enum Prepared {
    /// Refused by step 1 or 2 (key, shape): the answer is final.
    Answered(Outcome),
    Ready(Box<Ready>),
}

/// An envelope whose key matched, with what the transaction needs.
pub(super) struct Ready {
    pub(super) envelope: Envelope,
    /// RFC 8785 bytes of the invoice (what the device signed) and their SHA-256.
    pub(super) canonical: Vec<u8>,
    pub(super) hash: String,
    /// Step 4's signature part, decided before the transaction by
    /// [`super::signature::authenticate_all`]; used only if step 3 does not answer first.
    pub(super) authentic: Result<(), ErrorAnswer>,
}

/// Steps 1 and 2 of one batch item, exactly as for a lone submission with
/// `Idempotency-Key: "<key>"` and the envelope as its body.
pub(super) fn prepare(item: &BatchItemIn) -> Prepared {
    if item.idempotency_key.is_empty() {
        return Prepared::Answered(
            ErrorAnswer::bad_request(
                Code::IdempotencyKeyMissing,
                "each batch item needs its invoice id as idempotency_key",
                "idempotency_key",
            )
            .into(),
        );
    }
    let bytes = item.envelope.get().as_bytes();
    if bytes.len() > MAX_INVOICE_BODY {
        return Prepared::Answered(
            ErrorAnswer::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::PayloadTooLarge,
                format!("the envelope is over {MAX_INVOICE_BODY} bytes"),
                "",
            )
            .into(),
        );
    }
    let envelope = match parse_envelope(bytes) {
        Ok(e) => e,
        Err(e) => return Prepared::Answered(e.into()),
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
