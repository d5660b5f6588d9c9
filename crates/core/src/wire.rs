//! The wire types of SPEC 7, shared by `taxd` and the client.

use crate::model::{Envelope, Party};
use crate::sign::PublicKey;
use crate::Code;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const HEADER_DEVICE: &str = "Kaipiao-Device";
pub const HEADER_TIMESTAMP: &str = "Kaipiao-Timestamp";
pub const HEADER_SIGNATURE: &str = "Kaipiao-Signature";
/// A fresh UUID per request (SPEC 10): signed as the sixth line, so that no two requests
/// of a device sign the same bytes and the authority can refuse a repeat.
pub const HEADER_NONCE: &str = "Kaipiao-Nonce";
pub const HEADER_IDEMPOTENCY_KEY: &str = "Idempotency-Key";
pub const HEADER_REPLAYED: &str = "Idempotent-Replayed";
/// Largest single submission body (2 MiB) and batch body (16 MiB).
pub const MAX_INVOICE_BODY: usize = 2 * 1024 * 1024;
pub const MAX_BATCH_BODY: usize = 16 * 1024 * 1024;
pub const MAX_BATCH_ITEMS: usize = 500;
/// Allowed clock skew of device-signed requests, seconds.
pub const MAX_SKEW_SECS: i64 = 300;

/// `{"error": {"code", "message", "field"}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    pub error: WireErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub field: String,
    /// Set on 409 `chain_gap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
    /// Set on 401 `clock_skew` (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<String>,
}

impl WireError {
    /// An authority's refusal. The body keeps `code` as a string: a client reads codes
    /// from any authority, including ones it does not know.
    pub fn new(code: Code, message: impl Into<String>, field: impl Into<String>) -> WireError {
        WireError {
            error: WireErrorBody {
                code: code.as_str().to_string(),
                message: message.into(),
                field: field.into(),
                expected_seq: None,
                server_time: None,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorityInfo {
    pub name: String,
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub enrollment_token: String,
    pub seller: Party,
    pub device_name: String,
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: String,
    pub authority_public_key: String,
}

/// A device's chain head: `{"seq": 0, "hash": "000…0"}` before the first invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

/// One business-rule finding on a rejected receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
    pub field: String,
}

/// The authority's signed answer to a submission. Verify it with [`Receipt::verify`] on
/// the JSON exactly as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub invoice_id: String,
    pub number: String,
    pub hash: String,
    /// `accepted` or `rejected`.
    pub status: String,
    pub reasons: Vec<Reason>,
    pub authority_code: String,
    pub received_at: String,
    pub authority_signature: String,
}

/// Why a receipt as received is not the authority's word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptProblem {
    #[error("not JSON ({0})")]
    NotJson(String),
    #[error("the authority signature does not verify against the key pinned at enrolment ({0})")]
    Signature(String),
    #[error("not a receipt ({0})")]
    Shape(String),
}

impl Receipt {
    /// The one check of a receipt as received: the authority's signature over its exact
    /// JSON (RFC 8785 bytes without `authority_signature`, domain `KAIPIAO-RECEIPT-V1`)
    /// against the key pinned at enrolment, then its shape. Whether it names the right
    /// invoice is the caller's to compare with what it holds.
    pub fn verify(value: &Value, pinned: &PublicKey) -> Result<Receipt, ReceiptProblem> {
        crate::sign::verify_object(
            pinned,
            crate::sign::RECEIPT_DOMAIN,
            value,
            "authority_signature",
        )
        .map_err(|e| ReceiptProblem::Signature(e.to_string()))?;
        serde_json::from_value(value.clone()).map_err(|e| ReceiptProblem::Shape(e.to_string()))
    }

    /// [`Receipt::verify`] of JSON text; also gives the parsed JSON back.
    pub fn verify_json(text: &str, pinned: &PublicKey) -> Result<(Receipt, Value), ReceiptProblem> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ReceiptProblem::NotJson(e.to_string()))?;
        Ok((Receipt::verify(&value, pinned)?, value))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    pub idempotency_key: String,
    pub envelope: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub items: Vec<BatchItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    pub idempotency_key: String,
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub results: Vec<BatchResult>,
}

/// Envelope as submitted: kept as the typed value plus the `Idempotency-Key` sf-string.
pub fn idempotency_header(invoice_id: &str) -> String {
    format!("\"{invoice_id}\"")
}

/// Parses an `Idempotency-Key` header value as an RFC 8941 sf-string; None if it is not one.
pub fn parse_sf_string(header: &str) -> Option<String> {
    let inner = header.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\')) => out.push(e),
                _ => return None,
            },
            '"' => return None,
            c if (' '..='~').contains(&c) => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// Convenience: the envelope an item carries, if it parses.
pub fn envelope_of(value: &Value) -> Option<Envelope> {
    serde_json::from_value(value.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sf_strings() {
        assert_eq!(parse_sf_string("\"abc\""), Some("abc".into()));
        assert_eq!(parse_sf_string("abc"), None);
        assert_eq!(parse_sf_string("\"a\\\"b\""), Some("a\"b".into()));
        assert_eq!(parse_sf_string("\"a\"b\""), None);
        assert_eq!(parse_sf_string("\"é\""), None);
        assert_eq!(idempotency_header("x"), "\"x\"");
    }
}
