//! Device-authenticated requests (SPEC 7): `Kaipiao-Device`, `Kaipiao-Timestamp` and
//! `Kaipiao-Signature` over method, request target as sent, timestamp and body hash.
//!
//! The device-signed endpoints take their device from the [`DeviceAuth`] extractor. The
//! order of checks is part of the protocol: the body is read first (413 over the limit
//! before anything else), then the headers in turn, and the clock is checked before the
//! key is looked up, so a device whose clock is wrong learns the server time (which is no
//! secret) and can correct its offset and retry. The per-device rate limit has run before
//! any of this, in the gate, on the unauthenticated `Kaipiao-Device`.
//!
//! Also the device keys, cached, for this and for the envelope signatures of submissions.

use crate::body::{read_body, MAX_SMALL_BODY};
use crate::error::{ErrorAnswer, TaxdError};
use crate::{AppState, Shared};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use kaipiao_core::sign::{verify_request, PublicKey};
use kaipiao_core::time::rfc3339;
use kaipiao_core::wire::{
    HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_SKEW_SECS,
};
use kaipiao_core::Code;
use rusqlite::OptionalExtension;

/// The `Kaipiao-Device` header, if present and text.
pub(crate) fn header_device(headers: &HeaderMap) -> Option<String> {
    headers
        .get(HEADER_DEVICE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn unauthorized(code: Code, message: impl Into<String>, field: &str) -> ErrorAnswer {
    ErrorAnswer::new(StatusCode::UNAUTHORIZED, code, message, field)
}

/// A device-signed request (SPEC 7) whose signature checked out: the device that signed
/// it and the body it signed. A handler that takes one runs only for an enrolled device
/// that signed this very request; any refusal is answered as the [`ErrorAnswer`] it is
/// (401 `clock_skew` with `server_time`, `unknown_device`, `bad_request_signature`; 413
/// for a body over the small-body limit).
///
/// `FromRequest`, not `FromRequestParts`: the signature covers the SHA-256 of the body, so
/// the body is read here. Put it last among a handler's arguments.
pub(crate) struct DeviceAuth {
    pub device: String,
    pub body: Bytes,
}

impl FromRequest<AppState> for DeviceAuth {
    type Rejection = ErrorAnswer;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = read_body(&parts.headers, body, MAX_SMALL_BODY).await?;
        let device = authenticate(state, &parts, &body).await?;
        // Charged to the device once it proved who it is (never on a header as sent).
        state.0.limits.check_device(&device)?;
        Ok(DeviceAuth { device, body })
    }
}

/// Checks the request's device signature; Ok is the authenticated device id.
async fn authenticate(state: &AppState, parts: &Parts, body: &[u8]) -> Result<String, ErrorAnswer> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let device = header(HEADER_DEVICE).ok_or_else(|| {
        unauthorized(
            Code::BadRequestSignature,
            "the Kaipiao-Device header is missing",
            HEADER_DEVICE,
        )
    })?;
    let ts_text = header(HEADER_TIMESTAMP).ok_or_else(|| {
        unauthorized(
            Code::BadRequestSignature,
            "the Kaipiao-Timestamp header is missing",
            HEADER_TIMESTAMP,
        )
    })?;
    let ts: i64 = ts_text.trim().parse().map_err(|_| {
        unauthorized(
            Code::BadRequestSignature,
            "Kaipiao-Timestamp is not whole unix seconds",
            HEADER_TIMESTAMP,
        )
    })?;
    let now = Utc::now();
    if now.timestamp().abs_diff(ts) > MAX_SKEW_SECS.unsigned_abs() {
        let mut f = unauthorized(
            Code::ClockSkew,
            format!(
                "the request's time is more than {MAX_SKEW_SECS} s away from the authority's; correct the clock offset from server_time and retry"
            ),
            HEADER_TIMESTAMP,
        );
        f.body.error.server_time = Some(rfc3339(now));
        return Err(f);
    }
    let signature = header(HEADER_SIGNATURE).ok_or_else(|| {
        unauthorized(
            Code::BadRequestSignature,
            "the Kaipiao-Signature header is missing",
            HEADER_SIGNATURE,
        )
    })?;
    let device = device.to_string();
    let key = {
        let device = device.clone();
        state
            .blocking(move |shared| device_key(shared, &device))
            .await?
    }
    .ok_or_else(|| {
        unauthorized(
            Code::UnknownDevice,
            format!("device {device} is not enrolled with this authority; enrol it again"),
            HEADER_DEVICE,
        )
    })?;
    // The request target exactly as sent: the client signed it with any query string.
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or_else(|| parts.uri.path());
    let nonce = match header(HEADER_NONCE) {
        None => None,
        Some(n) => match uuid::Uuid::try_parse(n) {
            Ok(u) if u.hyphenated().to_string() == n => Some(n),
            _ => {
                return Err(unauthorized(
                    Code::BadRequestSignature,
                    "Kaipiao-Nonce is not a lowercase hyphenated UUID",
                    HEADER_NONCE,
                ))
            }
        },
    };
    verify_request(
        &key,
        parts.method.as_str(),
        target,
        ts,
        body,
        nonce,
        signature,
    )
    .map_err(|e| {
        unauthorized(
            Code::BadRequestSignature,
            format!("the request signature does not verify: {e}"),
            HEADER_SIGNATURE,
        )
    })?;
    // A signature seen before is a replay (with or without a nonce: without one, two
    // requests of the same second for the same thing sign the same bytes, which is why
    // clients send a nonce). Kept for twice the skew window, beyond which the timestamp
    // check refuses the request anyway.
    let signature = signature.to_string();
    let fresh = state
        .blocking(move |shared| remember_signature(shared, &signature, now.timestamp()))
        .await?;
    if !fresh {
        return Err(unauthorized(
            Code::ReplayedRequest,
            "this request was already received (a replay); send a new request with a new Kaipiao-Nonce",
            HEADER_SIGNATURE,
        ));
    }
    Ok(device)
}

/// Records a request signature; false when it was already there (a replay). Forgets
/// the ones older than twice the skew window on the way.
fn remember_signature(shared: &Shared, signature: &str, now: i64) -> Result<bool, ErrorAnswer> {
    shared.db.with(|conn| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM seen_requests WHERE seen_at < ?1",
            [now - 2 * MAX_SKEW_SECS],
        )?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO seen_requests (signature, seen_at) VALUES (?1, ?2)",
            rusqlite::params![signature, now],
        )?;
        tx.commit()?;
        Ok(inserted == 1)
    })
}

/// A device's public key, from the cache or the database. Blocking.
pub(crate) fn device_key(shared: &Shared, device: &str) -> Result<Option<PublicKey>, ErrorAnswer> {
    let cached = match shared.device_keys.read() {
        Ok(keys) => keys.get(device).copied(),
        Err(poisoned) => poisoned.into_inner().get(device).copied(),
    };
    if cached.is_some() {
        return Ok(cached);
    }
    let stored: Option<String> = shared.db.with(|conn| {
        conn.query_row(
            "SELECT public_key FROM devices WHERE device_id = ?1",
            [device],
            |r| r.get(0),
        )
        .optional()
        .map_err(ErrorAnswer::from)
    })?;
    let Some(text) = stored else {
        return Ok(None);
    };
    let key = PublicKey::from_base64(&text).map_err(|_| {
        ErrorAnswer::from(TaxdError::Corrupt(format!(
            "device {device} has a malformed public key"
        )))
    })?;
    match shared.device_keys.write() {
        Ok(mut keys) => keys.insert(device.to_string(), key),
        Err(poisoned) => poisoned.into_inner().insert(device.to_string(), key),
    };
    Ok(Some(key))
}
