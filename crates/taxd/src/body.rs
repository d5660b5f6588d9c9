//! Bodies in and out: a request body read under a size limit (so a 413 is our JSON error,
//! not hyper's or axum's text), and JSON answers sent as exactly the bytes given.

use crate::error::{ErrorAnswer, TaxdError};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kaipiao_core::Code;
use serde::Serialize;

/// Bodies of enrolment, lease, device-signed and admin requests are small; this bounds
/// what is read.
pub(crate) const MAX_SMALL_BODY: usize = 64 * 1024;

/// Reads a body, refusing more than `limit` bytes with 413 `payload_too_large` as soon as
/// that is known (from Content-Length or while reading), so a client gets our JSON error.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ErrorAnswer> {
    let too_large = || {
        ErrorAnswer::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::PayloadTooLarge,
            format!("the request body is over {limit} bytes"),
            "",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ErrorAnswer::bad_request(
            Code::InvalidRequest,
            format!("the request body could not be read: {e}"),
            "",
        )),
    }
}

/// `value` as a JSON answer.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_response(status, bytes),
        Err(e) => ErrorAnswer::from(TaxdError::Json(e)).into_response(),
    }
}

/// A response carrying JSON bytes exactly as given.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
