//! taxd's errors: [`TaxdError`] for what goes wrong inside (database, files, start-up),
//! and [`ErrorAnswer`] for an answer the wire protocol defines (`{"error": {...}}` with a
//! status). An internal error reaches the wire only as a 500 `internal`, after it has been
//! written to stderr: the client learns that it may retry, the operator learns why.

use crate::body::json_response;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kaipiao_core::wire::WireError;
use kaipiao_core::Code;
use std::path::PathBuf;

/// Everything that can go wrong inside taxd.
#[derive(Debug, thiserror::Error)]
pub enum TaxdError {
    #[error("--db {path}: cannot open the database: {source}")]
    OpenDb {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("--request-log {path}: cannot open the file for appending: {source}")]
    OpenRequestLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--db {path}: the database has schema version {found}, newer than this taxd ({supported}); use a newer taxd")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("signing: {0}")]
    Sign(#[from] kaipiao_core::sign::SignatureError),
    #[error("a worker task failed: {0}")]
    Task(String),
}

impl TaxdError {
    /// True when the error comes from a flag's value (a path that cannot be opened): the
    /// binary exits 2 for those, like for any other bad flag.
    pub fn is_bad_flag(&self) -> bool {
        matches!(
            self,
            TaxdError::OpenDb { .. } | TaxdError::OpenRequestLog { .. }
        )
    }
}

/// An HTTP answer that is not a success: status, the JSON error body, and for 429/503
/// the Retry-After seconds. Every refusal of a request is one, and so is a 500: what the
/// client is told, not what went wrong inside (that is [`TaxdError`]).
#[derive(Debug, Clone)]
pub(crate) struct ErrorAnswer {
    pub status: StatusCode,
    /// Boxed: error answers travel through every `Result` of a request, keep them small.
    pub body: Box<WireError>,
    pub retry_after: Option<u64>,
}

impl ErrorAnswer {
    pub fn new(
        status: StatusCode,
        code: Code,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> ErrorAnswer {
        ErrorAnswer {
            status,
            body: Box::new(WireError::new(code, message, field)),
            retry_after: None,
        }
    }

    pub fn bad_request(code: Code, message: impl Into<String>, field: impl Into<String>) -> Self {
        ErrorAnswer::new(StatusCode::BAD_REQUEST, code, message, field)
    }

    pub fn integrity(message: impl Into<String>, field: impl Into<String>) -> Self {
        ErrorAnswer::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::Integrity,
            message,
            field,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ErrorAnswer::new(StatusCode::NOT_FOUND, Code::NotFound, message, "")
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The error body as bytes (what a batch item carries).
    pub fn body_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail; fall back to a fixed
        // body rather than panic if it ever did.
        serde_json::to_vec(&*self.body).unwrap_or_else(|_| {
            br#"{"error":{"code":"internal","message":"internal error","field":""}}"#.to_vec()
        })
    }
}

impl From<TaxdError> for ErrorAnswer {
    fn from(e: TaxdError) -> ErrorAnswer {
        eprintln!("taxd: internal error: {e}");
        ErrorAnswer::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "the authority hit an internal error; retry later",
            "",
        )
    }
}

impl From<rusqlite::Error> for ErrorAnswer {
    fn from(e: rusqlite::Error) -> ErrorAnswer {
        ErrorAnswer::from(TaxdError::Db(e))
    }
}

impl IntoResponse for ErrorAnswer {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, self.body_bytes());
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
