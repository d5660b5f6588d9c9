//! The admin API: `GET` and `PUT /admin/faults`, answering only to loopback peers because
//! it can take the authority down.

use crate::body::{json, read_body, MAX_SMALL_BODY};
use crate::error::ErrorAnswer;
use crate::AppState;
use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kaipiao_core::Code;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

/// The peer's address, as axum's ConnectInfo extractor finds it: the real connection
/// first, else a test's mock.
pub(crate) fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| {
            req.extensions()
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|MockConnectInfo(addr)| addr.ip())
        })
}

/// The admin API answers only to loopback peers: it can take the authority down.
fn loopback_only(req: &Request) -> Result<(), ErrorAnswer> {
    let peer = peer_ip(req);
    let loopback = match peer {
        Some(IpAddr::V4(ip)) => ip.is_loopback(),
        Some(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(ErrorAnswer::new(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            "the admin API answers only on loopback",
            "",
        ))
    }
}

/// GET /admin/faults
pub(crate) async fn get_faults(State(state): State<AppState>, req: Request) -> Response {
    match loopback_only(&req) {
        Ok(()) => json(StatusCode::OK, &state.faults()),
        Err(e) => e.into_response(),
    }
}

/// PUT /admin/faults with any of the fields GET answers with (`drop_after_commit`,
/// `error_rate`, `delay_ms`, `outage`, `wrong_signing_key`, `malformed_receipt`);
/// answers with the faults now in force.
pub(crate) async fn put_faults(State(state): State<AppState>, req: Request) -> Response {
    let result = async {
        loopback_only(&req)?;
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts.headers, body, MAX_SMALL_BODY).await?;
        let update: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ErrorAnswer::bad_request(
                Code::InvalidRequest,
                format!("the body is not JSON: {e}"),
                "",
            )
        })?;
        let next = state.faults().updated(&update)?;
        state.set_faults(next);
        Ok::<_, ErrorAnswer>(json(StatusCode::OK, &next))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
