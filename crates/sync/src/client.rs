//! The HTTP side of SPEC 7: one reqwest client (rustls with the `ring` provider), the
//! authority's endpoints, device-signed requests, and the reading of every answer into a
//! [`Verdict`] the relay acts on ([`read_answer`]).
//!
//! Nothing a server sends can make this module panic: bodies are read under a size limit,
//! JSON is parsed into `Option`/`Result`, and anything unexpected becomes a retryable
//! verdict rather than a final state.

use crate::error::SyncError;
use crate::policy::parse_retry_after;
use crate::SyncOptions;
use chrono::{DateTime, Utc};
use kaipiao_core::sign::sign_request_with_nonce;
use kaipiao_core::time::parse_rfc3339;
use kaipiao_core::wire::{
    AuthorityInfo, Health, WireError, HEADER_DEVICE, HEADER_NONCE, HEADER_REPLAYED,
    HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use kaipiao_core::{Code, DeviceKey};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use std::time::Duration;

/// Largest response body read; a batch of 500 receipts is well under 1 MiB.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// An HTTP answer, read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `Idempotent-Replayed: true`.
    pub replayed: bool,
    pub body: String,
}

/// No answer: the request failed to connect, timed out, or the connection dropped. When
/// `maybe_sent` is set the authority may have acted on it ("outcome unknown").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransportError {
    pub reason: String,
    pub maybe_sent: bool,
}

/// What an answer means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The expected success status.
    Success(Answer),
    /// Transport error, timeout, 409 `request_in_progress`, 429, 5xx or an unexpected
    /// answer: try again later, on the next endpoint when `failover`.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        failover: bool,
        /// The HTTP status when there was an answer.
        status: Option<u16>,
        /// The error code of the authority's error body, "" when there was none: with
        /// `status` it tells a refusal for overload ([`is_overload_refusal`]) from an
        /// outage.
        code: String,
    },
    /// 409 `chain_gap`; `body` as received, for the signature check of one ahead of
    /// ours (a stop, SPEC 10).
    ChainGap {
        expected_seq: u64,
        message: String,
        body: String,
    },
    /// 401 `clock_skew` with the authority's time.
    ClockSkew { server_time: DateTime<Utc> },
    /// 401 `unknown_device`, `bad_request_signature` (or another 401): this endpoint does
    /// not accept this device.
    Unauthorized { code: String, message: String },
    /// 422 `integrity` or `idempotency_key_reused`: stop the queue, once the signature
    /// on `body` (as received) is checked.
    Stop {
        code: String,
        message: String,
        body: String,
    },
    /// An answer that would stop the queue but is not the authority's signed word about
    /// the invoice sent (unsigned, badly signed, about another envelope): the endpoint
    /// misbehaves. An alert, and the run goes on without it; the queue is not stopped.
    Forged { code: String, why: String },
    /// A 4xx that retrying the same bytes cannot fix (bad request, too large, forbidden).
    Refused {
        status: u16,
        code: String,
        message: String,
        field: String,
    },
}

impl Verdict {
    pub(crate) fn retry(reason: impl Into<String>, failover: bool) -> Verdict {
        Verdict::Retry {
            reason: reason.into(),
            retry_after: None,
            failover,
            status: None,
            code: String::new(),
        }
    }

    /// The authority refused the request for overload ([`is_overload_refusal`]).
    pub(crate) fn is_overload_refusal(&self) -> bool {
        matches!(self, Verdict::Retry { status: Some(status), code, .. }
            if is_overload_refusal(*status, code))
    }
}

/// Whether an answer with HTTP `status` and error `code` is the authority refusing the
/// request for overload: 429 (`rate_limited`, this device's share of it) or 503
/// `overloaded` (SPEC 7), both with Retry-After. The authority is there and answering:
/// such a refusal slows the client down (Retry-After, adaptive throttling, a recovery
/// plan stretched) but is no outage. Any other 5xx (503 `outage`, `unavailable`, 500,
/// 502...) is the authority failing to serve: an outage when no endpoint serves.
pub fn is_overload_refusal(status: u16, code: &str) -> bool {
    status == 429 || (status == 503 && code == Code::Overloaded)
}

/// The first 200 characters of a body, for messages.
fn excerpt(body: &str) -> String {
    let mut s: String = body.chars().take(200).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    s
}

/// Reads an answer (or its absence) into a verdict, against the status the call expects
/// on success.
pub(crate) fn read_answer(result: Result<Answer, TransportError>, success: u16) -> Verdict {
    let answer = match result {
        Ok(a) => a,
        Err(t) => {
            let reason = if t.maybe_sent {
                format!("{} (outcome unknown; will resend the same bytes)", t.reason)
            } else {
                t.reason
            };
            return Verdict::retry(reason, true);
        }
    };
    if answer.status == success {
        return Verdict::Success(answer);
    }
    let api = serde_json::from_str::<WireError>(&answer.body)
        .ok()
        .map(|e| e.error);
    let code = api.as_ref().map(|e| e.code.clone()).unwrap_or_default();
    let message = api.as_ref().map(|e| e.message.clone()).unwrap_or_default();
    let field = api.as_ref().map(|e| e.field.clone()).unwrap_or_default();
    let described = if api.is_some() {
        format!("HTTP {} {code}: {message}", answer.status)
    } else {
        format!("HTTP {}: {}", answer.status, excerpt(&answer.body))
    };
    let retry = |failover: bool| Verdict::Retry {
        reason: described.clone(),
        retry_after: answer.retry_after,
        failover,
        status: Some(answer.status),
        code: code.clone(),
    };
    match answer.status {
        // The authority is overloaded (503 `overloaded`), in an outage, or failing:
        // another endpoint may do.
        500..=599 => retry(true),
        // Per-device rate limit: the same for every endpoint of one authority.
        429 => retry(false),
        409 if code == Code::RequestInProgress => retry(false),
        409 if code == Code::ChainGap => match api.and_then(|e| e.expected_seq) {
            Some(expected_seq) => Verdict::ChainGap {
                expected_seq,
                message,
                body: answer.body.clone(),
            },
            None => Verdict::retry(format!("{described} (no expected_seq)"), true),
        },
        // A signature the authority says it has seen: every attempt here carries a fresh
        // nonce, so this was someone else's replay or a copy made on the way; the next
        // attempt signs anew.
        401 if code == Code::ReplayedRequest => retry(false),
        401 if code == Code::ClockSkew => {
            match api
                .and_then(|e| e.server_time)
                .as_deref()
                .and_then(parse_rfc3339)
            {
                Some(server_time) => Verdict::ClockSkew { server_time },
                None => Verdict::retry(format!("{described} (no usable server_time)"), true),
            }
        }
        401 => Verdict::Unauthorized {
            code: if code.is_empty() {
                Code::Unauthorized.into()
            } else {
                code
            },
            message: if message.is_empty() {
                excerpt(&answer.body)
            } else {
                message
            },
        },
        422 if code == Code::Integrity || code == Code::IdempotencyKeyReused => Verdict::Stop {
            code,
            message,
            body: answer.body.clone(),
        },
        400 | 403 | 413 | 422 if api.is_some() => Verdict::Refused {
            status: answer.status,
            code,
            message,
            field,
        },
        // Redirects, 404 from something that is not the authority, HTML error pages...
        _ => retry(true),
    }
}

/// A server address as the user typed it, checked and without a trailing slash.
pub fn normalize_server(url: &str) -> Result<String, SyncError> {
    // The one rule, shared with the ledger that stores the addresses.
    kaipiao_core::server::normalize_server(url).map_err(|p| SyncError::InvalidServer {
        url: url.to_string(),
        reason: p.text(kaipiao_core::Lang::En),
    })
}

/// Servers as they are used and stored: checked and normalised, primary first,
/// duplicates dropped; at least one.
pub fn normalize_servers(servers: &[String]) -> Result<Vec<String>, SyncError> {
    let mut out: Vec<String> = Vec::with_capacity(servers.len());
    for s in servers {
        let n = normalize_server(s)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        return Err(SyncError::NoServers);
    }
    Ok(out)
}

/// The reqwest client and the authority's endpoints (primary first, then backups).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Vec<String>,
    request_timeout: Duration,
}

impl Client {
    /// Checks the server addresses and builds the HTTP client with the connect and
    /// request timeouts of `opts`. Redirects are not followed: the authority has no
    /// reason to send one, and following a POST would change what is sent.
    pub fn new(servers: &[String], opts: &SyncOptions) -> Result<Client, SyncError> {
        let endpoints = normalize_servers(servers)?;
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kaipiao/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SyncError::Http(describe(&e)))?;
        Ok(Client {
            http,
            endpoints,
            request_timeout: opts.request_timeout,
        })
    }

    /// Primary first, then backups, normalised.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// `GET /v1/health` on one endpoint.
    pub async fn health(&self, endpoint: &str) -> Result<Health, SyncError> {
        self.get_json(endpoint, "/v1/health").await
    }

    /// The buyer's check (查验) on one endpoint: `GET /v1/check` with the four fields,
    /// each already checked by the caller (digits only: nothing to escape).
    pub async fn check_invoice(
        &self,
        endpoint: &str,
        number: &str,
        date: &str,
        total: &str,
        code: &str,
    ) -> Result<kaipiao_core::wire::CheckAnswer, SyncError> {
        let path = format!("/v1/check?number={number}&date={date}&total={total}&code={code}");
        self.get_json(endpoint, &path).await
    }

    /// `GET /v1/authority` on one endpoint: its name and signing key.
    pub async fn authority(&self, endpoint: &str) -> Result<AuthorityInfo, SyncError> {
        self.get_json(endpoint, "/v1/authority").await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        path: &str,
    ) -> Result<T, SyncError> {
        let result = self
            .send(Method::GET, endpoint, path, None, &[], self.request_timeout)
            .await;
        match read_answer(result, 200) {
            Verdict::Success(a) => serde_json::from_str(&a.body)
                .map_err(|e| SyncError::InvalidResponse(format!("GET {path} on {endpoint}: {e}"))),
            other => Err(verdict_error(other)),
        }
    }

    /// Sends one request and reads the whole answer. `path` starts with `/`.
    pub(crate) async fn send(
        &self,
        method: Method,
        endpoint: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Answer, TransportError> {
        let url = format!("{endpoint}{path}");
        let mut request = self.http.request(method, &url).timeout(timeout);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let mut response = request.send().await.map_err(|e| TransportError {
            reason: describe(&e),
            maybe_sent: !e.is_connect(),
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let replayed = response
            .headers()
            .get(HEADER_REPLAYED)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(TransportError {
                            reason: format!(
                                "the answer from {url} is larger than {MAX_RESPONSE_BYTES} bytes"
                            ),
                            maybe_sent: true,
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(TransportError {
                        reason: format!("reading the answer (HTTP {status}): {}", describe(&e)),
                        maybe_sent: true,
                    })
                }
            }
        }
        let body = String::from_utf8(bytes).map_err(|_| TransportError {
            reason: format!("the answer from {url} (HTTP {status}) is not UTF-8"),
            maybe_sent: true,
        })?;
        Ok(Answer {
            status,
            retry_after,
            replayed,
            body,
        })
    }

    /// Sends a device-signed request (SPEC 7): the signature covers the method, the path
    /// as sent (with any query, and with the endpoint's own base path), the timestamp and
    /// the SHA-256 of the body.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send_signed(
        &self,
        method: Method,
        endpoint: &str,
        path: &str,
        body: Option<Vec<u8>>,
        key: &DeviceKey,
        device_id: &str,
        timestamp: i64,
        timeout: Duration,
    ) -> Result<Answer, TransportError> {
        let url = Url::parse(&format!("{endpoint}{path}")).map_err(|e| TransportError {
            reason: format!("bad request address {endpoint}{path}: {e}"),
            maybe_sent: false,
        })?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        // A fresh nonce for every attempt: the authority refuses a signature it has seen.
        let nonce = uuid::Uuid::new_v4().to_string();
        let signature = sign_request_with_nonce(
            key,
            method.as_str(),
            &target,
            timestamp,
            body.as_deref().unwrap_or(&[]),
            Some(&nonce),
        );
        let headers = [
            (HEADER_DEVICE, device_id.to_string()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_NONCE, nonce),
            (HEADER_SIGNATURE, signature),
        ];
        self.send(method, endpoint, path, body, &headers, timeout)
            .await
    }
}

/// A verdict that ends a call which is not retried here, as an error. A refusal for
/// overload is the authority's answer ([`SyncError::Authority`], see
/// [`SyncError::is_overload_refusal`]); any other failed attempt is an authority that
/// could not be reached ([`SyncError::Http`]).
pub(crate) fn verdict_error(verdict: Verdict) -> SyncError {
    match verdict {
        Verdict::Success(a) => SyncError::InvalidResponse(format!("HTTP {}", a.status)),
        Verdict::Retry {
            reason,
            status: Some(status),
            code,
            ..
        } if is_overload_refusal(status, &code) => SyncError::authority(status, code, reason, ""),
        Verdict::Retry { reason, .. } => SyncError::Http(reason),
        Verdict::ChainGap { message, .. } => SyncError::authority(409, Code::ChainGap, message, ""),
        Verdict::ClockSkew { server_time } => SyncError::authority(
            401,
            Code::ClockSkew,
            format!("the device clock is off; the authority's time is {server_time}"),
            "",
        ),
        Verdict::Unauthorized { code, message } => SyncError::authority(401, code, message, ""),
        Verdict::Stop { code, message, .. } => SyncError::authority(422, code, message, ""),
        Verdict::Forged { code, why } => {
            SyncError::Http(format!("an unsigned or badly signed {code} verdict: {why}"))
        }
        Verdict::Refused {
            status,
            code,
            message,
            field,
        } => SyncError::authority(status, code, message, field),
    }
}

/// A reqwest error with its causes ("error sending request: connection refused"), which
/// is what tells a clerk or an administrator what went wrong.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    let mut text = format!("{kind}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<Answer, TransportError> {
        Ok(Answer {
            status,
            retry_after: None,
            replayed: false,
            body: body.to_string(),
        })
    }

    fn err_body(code: &str, extra: &str) -> String {
        format!(r#"{{"error": {{"code": "{code}", "message": "m", "field": ""{extra}}}}}"#)
    }

    #[test]
    fn success_and_retryable_answers() {
        assert!(matches!(
            read_answer(answer(201, "{}"), 201),
            Verdict::Success(_)
        ));
        let unknown = read_answer(
            Err(TransportError {
                reason: "timed out".into(),
                maybe_sent: true,
            }),
            201,
        );
        match unknown {
            Verdict::Retry {
                reason, failover, ..
            } => {
                assert!(failover);
                assert!(reason.contains("outcome unknown"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let mut overloaded =
            answer(503, &err_body("overloaded", "")).unwrap_or_else(|_| unreachable!());
        overloaded.retry_after = Some(Duration::from_secs(2));
        assert_eq!(
            read_answer(Ok(overloaded), 201),
            Verdict::Retry {
                reason: "HTTP 503 overloaded: m".into(),
                retry_after: Some(Duration::from_secs(2)),
                failover: true,
                status: Some(503),
                code: "overloaded".into(),
            }
        );
        assert!(matches!(
            read_answer(answer(429, &err_body("rate_limited", "")), 201),
            Verdict::Retry {
                failover: false,
                ..
            }
        ));
        assert!(matches!(
            read_answer(answer(409, &err_body("request_in_progress", "")), 201),
            Verdict::Retry {
                failover: false,
                ..
            }
        ));
        // Garbage, HTML and unexpected statuses are an error for this attempt only.
        assert!(matches!(
            read_answer(answer(200, "<html>"), 201),
            Verdict::Retry { failover: true, .. }
        ));
        assert!(matches!(
            read_answer(answer(404, "not found"), 201),
            Verdict::Retry { failover: true, .. }
        ));
        assert!(matches!(
            read_answer(answer(502, ""), 201),
            Verdict::Retry { failover: true, .. }
        ));
    }

    #[test]
    fn only_429_and_503_overloaded_are_refusals_for_overload() {
        assert!(is_overload_refusal(429, "rate_limited"));
        assert!(is_overload_refusal(429, ""));
        assert!(is_overload_refusal(503, "overloaded"));
        for (status, code) in [
            (503, "outage"),
            (503, "unavailable"),
            (503, ""),
            (500, "overloaded"),
            (502, ""),
            (409, "request_in_progress"),
        ] {
            assert!(!is_overload_refusal(status, code), "{status} {code}");
        }
        // The verdict and the error a call ends with say the same.
        let overloaded = read_answer(answer(503, &err_body("overloaded", "")), 200);
        assert!(overloaded.is_overload_refusal());
        let e = verdict_error(overloaded);
        assert!(e.is_overload_refusal(), "{e:?}");
        assert_eq!((e.code().as_str(), e.exit_code()), ("overloaded", 3));
        let limited = verdict_error(read_answer(answer(429, &err_body("rate_limited", "")), 200));
        assert!(limited.is_overload_refusal(), "{limited:?}");
        assert_eq!(
            (limited.code().as_str(), limited.exit_code()),
            ("rate_limited", 3)
        );
        let outage = read_answer(answer(503, &err_body("outage", "")), 200);
        assert!(!outage.is_overload_refusal());
        let e = verdict_error(outage);
        assert!(!e.is_overload_refusal(), "{e:?}");
        assert_eq!((e.code().as_str(), e.exit_code()), ("unreachable", 3));
        // A 503 page without the authority's error body is no refusal for overload.
        assert!(!read_answer(answer(503, "<html>busy</html>"), 200).is_overload_refusal());
    }

    #[test]
    fn chain_skew_auth_and_stops() {
        assert_eq!(
            read_answer(
                answer(409, &err_body("chain_gap", r#", "expected_seq": 4"#)),
                201
            ),
            Verdict::ChainGap {
                expected_seq: 4,
                message: "m".into(),
                body: err_body("chain_gap", r#", "expected_seq": 4"#),
            }
        );
        assert!(matches!(
            read_answer(answer(409, &err_body("chain_gap", "")), 201),
            Verdict::Retry { .. }
        ));
        match read_answer(
            answer(
                401,
                &err_body("clock_skew", r#", "server_time": "2026-01-01T00:00:00Z""#),
            ),
            200,
        ) {
            Verdict::ClockSkew { server_time } => {
                assert_eq!(server_time.timestamp(), 1_767_225_600)
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_answer(answer(401, &err_body("unknown_device", "")), 200),
            Verdict::Unauthorized { .. }
        ));
        assert!(matches!(
            read_answer(answer(401, "nope"), 200),
            Verdict::Unauthorized { .. }
        ));
        assert!(matches!(
            read_answer(answer(422, &err_body("integrity", "")), 201),
            Verdict::Stop { .. }
        ));
        assert!(matches!(
            read_answer(answer(422, &err_body("idempotency_key_reused", "")), 201),
            Verdict::Stop { .. }
        ));
        assert!(matches!(
            read_answer(answer(400, &err_body("invalid_request", "")), 201),
            Verdict::Refused { status: 400, .. }
        ));
        assert!(matches!(
            read_answer(answer(403, &err_body("enrollment_token_invalid", "")), 201),
            Verdict::Refused { status: 403, .. }
        ));
    }

    #[test]
    fn server_addresses() {
        assert_eq!(
            normalize_server(" http://127.0.0.1:8787/ ").ok().as_deref(),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(
            normalize_server("https://tax.example/base/")
                .ok()
                .as_deref(),
            Some("https://tax.example/base")
        );
        assert!(normalize_server("ftp://x").is_err());
        assert!(normalize_server("127.0.0.1:8787").is_err());
        assert!(normalize_server("http://x/?a=1").is_err());
        assert!(normalize_server("").is_err());
    }
}
