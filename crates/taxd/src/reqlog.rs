//! `--request-log FILE`: one JSON line per request,
//! `{"time", "device", "method", "path", "status"}` plus `"retry_after"` (whole seconds)
//! when the answer carries Retry-After, so a fault test can count what a client really
//! sent (retries, backoff, Retry-After honoured) after the fact.

use crate::error::TaxdError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// The device a handler found in the request body (a submission's envelope), for the log.
#[derive(Debug, Clone)]
pub(crate) struct LogDevice(pub String);

/// The invoices a submission carried (1, or a batch's items), for the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogInvoices(pub usize);

/// An admission ticket an answer gave and the time its slot starts, for the log.
#[derive(Debug, Clone)]
pub(crate) struct LogGrant {
    pub ticket: String,
    pub not_before: String,
}

pub(crate) struct RequestLog(Mutex<File>);

#[derive(Serialize)]
struct Line<'a> {
    /// RFC 3339 UTC with milliseconds: retries a few hundred ms apart must be told apart.
    time: String,
    device: &'a str,
    method: &'a str,
    /// The request target as sent, with any query.
    path: &'a str,
    status: u16,
    /// The answer's Retry-After, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    /// Invoices the submission carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    invoices: Option<usize>,
    /// The admission ticket a submission was sent under (`Kaipiao-Admission`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<String>,
    /// The ticket an admission answer gave, and when its slot starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    granted: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<&'a str>,
}

impl RequestLog {
    pub fn open(path: &Path) -> Result<RequestLog, TaxdError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| TaxdError::OpenRequestLog {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(RequestLog(Mutex::new(file)))
    }

    fn write(&self, line: &Line<'_>) {
        let Ok(mut bytes) = serde_json::to_vec(line) else {
            return;
        };
        bytes.push(b'\n');
        let mut file = match self.0.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        // One write per line keeps lines whole when several processes append to one file.
        if let Err(e) = file.write_all(&bytes) {
            eprintln!("taxd: cannot write the request log: {e}");
        }
    }
}

pub(crate) async fn log_request(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(log) = &state.0.request_log else {
        return next.run(req).await;
    };
    let method = req.method().as_str().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let header_device = crate::auth::header_device(req.headers());
    let ticket = req
        .headers()
        .get(kaipiao_core::wire::HEADER_ADMISSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = next.run(req).await;
    let device = header_device
        .or_else(|| {
            response
                .extensions()
                .get::<LogDevice>()
                .map(|d| d.0.clone())
        })
        .unwrap_or_default();
    let retry_after = response
        .headers()
        .get(axum::http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let grant = response.extensions().get::<LogGrant>();
    log.write(&Line {
        time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        device: &device,
        method: &method,
        path: &path,
        status: response.status().as_u16(),
        retry_after,
        invoices: response.extensions().get::<LogInvoices>().map(|n| n.0),
        ticket,
        granted: grant.map(|g| g.ticket.as_str()),
        not_before: grant.map(|g| g.not_before.as_str()),
    });
    response
}
