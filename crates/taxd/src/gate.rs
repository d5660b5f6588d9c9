//! In front of every /v1 request, in this order: the injected faults that strike before
//! anything is done (an outage answers at once, an injected error, the delay), then the
//! server's capacity (503 `overloaded`). `/v1/health` is never limited. The per-device
//! rate (429 `rate_limited`) is charged only once the device is authenticated (in
//! `DeviceAuth`, and in the submission handlers once the envelope's signature verifies),
//! so that no one can spend another device's rate with requests they cannot sign.

use crate::error::ErrorAnswer;
use crate::{faults, AppState};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kaipiao_core::Code;

/// The middleware: /v1 requests go through the faults and limits, others pass.
pub(crate) async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let faults = state.0.faults.get();
    if faults.outage {
        return ErrorAnswer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Outage,
            "the authority is unavailable (simulated outage); keep working offline and sync later",
            "",
        )
        .into_response();
    }
    if faults::roll(faults.error_rate) {
        return ErrorAnswer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "the authority failed this request (injected fault); retry",
            "",
        )
        .into_response();
    }
    if let Some(range) = faults.delay_ms {
        tokio::time::sleep(faults::draw_delay(range)).await;
    }
    if path != "/v1/health" {
        if let Err(e) = state.0.limits.check_capacity() {
            return e.into_response();
        }
    }
    next.run(req).await
}
