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
/// Extension (issue 13): the admission ticket a submission is sent under.
pub const HEADER_ADMISSION: &str = "Kaipiao-Admission";
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
    /// Extension (SPEC 10): the authority is a sandbox, its invoices samples (样票) that
    /// are printed as such. None from an authority that does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
    /// Extension (issue 13): the authority paces recovering backlogs
    /// (`POST /v1/admission`). None from an authority that does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<HealthAdmission>,
}

/// What `/v1/health` says about admission (issue 13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthAdmission {
    /// A backlog is being paced now: a device with more than `live_max` pending asks
    /// before it sends.
    pub recovering: bool,
    /// A device with at most this many pending invoices sends them without asking.
    pub live_max: u32,
}

/// `POST /v1/admission` (device-signed, issue 13): what a device with a backlog states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionRequest {
    /// Invoices waiting in its outbox.
    pub pending: u64,
    /// `issued_at` of the oldest of them (RFC 3339).
    pub oldest_pending_at: String,
    /// The offline window of its lease, hours.
    pub offline_hours: u64,
}

/// The authority's answer to an admission request; `decision` says which fields are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionAnswer {
    /// `open`, `admitted` or `waiting`.
    pub decision: String,
    /// The authority's clock when it decided (RFC 3339 with milliseconds): the client
    /// measures the times below from it, not from its own clock.
    pub server_time: String,
    /// admitted: the ticket to send in `Kaipiao-Admission`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// admitted: send no earlier than this (RFC 3339 with milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// admitted: the ticket is void after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// admitted: how many invoices the ticket covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoices: Option<u32>,
    /// waiting: when the device's turn is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_at: Option<String>,
    /// waiting: when to ask again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_again_at: Option<String>,
    /// waiting: invoices of other devices ahead of this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead_invoices: Option<u64>,
    /// waiting: why, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer of the buyer's check (查验, `GET /v1/check`, SPEC 10): whether the
/// authority holds that invoice, and its status only when it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAnswer {
    #[serde(rename = "match")]
    pub matched: bool,
    pub status: Option<String>,
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
        Receipt::shape(value)
    }

    fn shape(value: &Value) -> Result<Receipt, ReceiptProblem> {
        Receipt::deserialize(value).map_err(|e| ReceiptProblem::Shape(e.to_string()))
    }

    /// Rejected as `issued_in_future`: such an invoice does not set the time the next
    /// one may not go back before (SPEC 10, amending SPEC 2), so a clock once set ahead
    /// costs the invoices issued under it, never the device. The one rule of the client
    /// and the authority.
    pub fn rejected_in_future(&self) -> bool {
        self.status == "rejected" && self.reasons.iter().any(|r| r.code == Code::IssuedInFuture)
    }

    /// [`Receipt::verify`] of JSON text; also gives the parsed JSON back.
    pub fn verify_json(text: &str, pinned: &PublicKey) -> Result<(Receipt, Value), ReceiptProblem> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ReceiptProblem::NotJson(e.to_string()))?;
        Ok((Receipt::verify(&value, pinned)?, value))
    }

    /// [`Receipt::verify_json`] of many receipts (a batch answer's), one result per text,
    /// each the same as checking it alone would give: their signatures go through one
    /// batch verification ([`crate::sign::verify_many`]).
    pub fn verify_json_many(
        texts: &[&str],
        pinned: &PublicKey,
    ) -> Vec<Result<(Receipt, Value), ReceiptProblem>> {
        use crate::sign::{SignatureError, Signed, RECEIPT_DOMAIN};
        const FIELD: &str = "authority_signature";
        // Parsed, with the canonical bytes it is signed over and its signature.
        let parsed: Vec<Result<(Value, Vec<u8>), ReceiptProblem>> = texts
            .iter()
            .map(|text| {
                let value: Value = serde_json::from_str(text)
                    .map_err(|e| ReceiptProblem::NotJson(e.to_string()))?;
                let map = value
                    .as_object()
                    .filter(|m| m.get(FIELD).is_some_and(Value::is_string))
                    .ok_or_else(|| {
                        ReceiptProblem::Signature(SignatureError::NotAnObject.to_string())
                    })?;
                let mut unsigned = map.clone();
                unsigned.remove(FIELD);
                let bytes = crate::canonical::canonical_bytes(&unsigned);
                Ok((value, bytes))
            })
            .collect();
        // The receipts that parsed, and their signatures, checked together.
        let (indices, items): (Vec<usize>, Vec<Signed<'_>>) = parsed
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let (value, bytes) = p.as_ref().ok()?;
                let signature = value.get(FIELD)?.as_str()?;
                Some((
                    i,
                    Signed {
                        key: pinned,
                        domain: RECEIPT_DOMAIN,
                        message: bytes,
                        signature,
                    },
                ))
            })
            .unzip();
        let mut verdicts = vec![None; texts.len()];
        for (i, verdict) in indices.into_iter().zip(crate::sign::verify_many(&items)) {
            verdicts[i] = Some(verdict);
        }
        parsed
            .into_iter()
            .zip(verdicts)
            .map(|(p, verdict)| {
                let (value, _) = p?;
                match verdict {
                    Some(Ok(())) => Ok((Receipt::shape(&value)?, value)),
                    Some(Err(e)) => Err(ReceiptProblem::Signature(e.to_string())),
                    None => Err(ReceiptProblem::Signature(
                        SignatureError::NotAnObject.to_string(),
                    )),
                }
            })
            .collect()
    }
}

/// What a signed verdict is about (SPEC 10): the envelope of `invoice_id` whose canonical
/// hash is `hash`, as the authority decided at `decided_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictSubject {
    pub invoice_id: String,
    pub hash: String,
    pub decided_at: String,
}

/// Why an answer that would stop a queue is not the authority's word about this invoice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictProblem {
    #[error("the answer is not JSON ({0})")]
    NotJson(String),
    #[error("the answer carries no authority_signature: it is not signed by the authority")]
    Unsigned,
    #[error("the authority signature does not verify against the key pinned at enrolment ({0})")]
    Signature(String),
    #[error("the signed verdict is about {what}, not this invoice's")]
    OtherSubject { what: String },
    #[error("the signed verdict is malformed ({0})")]
    Shape(String),
}

/// Whether an error answer with this status and code stops a queue, so that the
/// authority signs it (SPEC 10): 422 `integrity`, 422 `idempotency_key_reused`, and 409
/// `chain_gap` (which stops only when its `expected_seq` is ahead of the invoice sent).
pub fn is_stop_verdict(status: u16, code: &str) -> bool {
    (status == 422 && (code == Code::Integrity || code == Code::IdempotencyKeyReused))
        || (status == 409 && code == Code::ChainGap)
}

/// A signed verdict's body: `{"error": {...}, "verdict": {invoice_id, hash, decided_at},
/// "authority_signature"}`, the signature (domain `KAIPIAO-VERDICT-V1`) over the RFC 8785
/// bytes of the body without `authority_signature`, as a receipt is signed. The `error`
/// object is the one SPEC 7 fixes, so a client that reads only `error` sees no change.
pub fn seal_verdict(
    key: &crate::sign::DeviceKey,
    error: &WireError,
    subject: &VerdictSubject,
) -> Result<Value, crate::sign::SignatureError> {
    let body = serde_json::json!({
        "error": error.error,
        "verdict": subject,
    });
    crate::sign::sign_object(
        key,
        crate::sign::VERDICT_DOMAIN,
        body,
        "authority_signature",
    )
}

/// The one check of an answer that would stop the queue of the invoice `invoice_id`
/// (canonical hash `hash`): signed by the pinned authority key, about this very envelope.
/// Ok is the error it carries.
pub fn check_verdict(
    text: &str,
    pinned: &PublicKey,
    invoice_id: &str,
    hash: &str,
) -> Result<WireError, VerdictProblem> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| VerdictProblem::NotJson(e.to_string()))?;
    if value.get("authority_signature").is_none() {
        return Err(VerdictProblem::Unsigned);
    }
    crate::sign::verify_object(
        pinned,
        crate::sign::VERDICT_DOMAIN,
        &value,
        "authority_signature",
    )
    .map_err(|e| VerdictProblem::Signature(e.to_string()))?;
    let subject: VerdictSubject = value
        .get("verdict")
        .cloned()
        .ok_or_else(|| VerdictProblem::Shape("no verdict object".into()))
        .and_then(|v| {
            serde_json::from_value(v).map_err(|e| VerdictProblem::Shape(e.to_string()))
        })?;
    if subject.invoice_id != invoice_id {
        return Err(VerdictProblem::OtherSubject {
            what: format!("invoice {}", subject.invoice_id),
        });
    }
    if subject.hash != hash {
        return Err(VerdictProblem::OtherSubject {
            what: format!("an envelope with hash {}", subject.hash),
        });
    }
    serde_json::from_value(value).map_err(|e| VerdictProblem::Shape(e.to_string()))
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

    fn subject(id: &str, hash: &str) -> VerdictSubject {
        VerdictSubject {
            invoice_id: id.into(),
            hash: hash.into(),
            decided_at: "2026-12-02T10:00:00+00:00".into(),
        }
    }

    #[test]
    fn a_signed_verdict_is_checked_against_key_invoice_and_hash() {
        let authority = crate::sign::DeviceKey::from_bytes(&[7; 32]);
        let other = crate::sign::DeviceKey::from_bytes(&[8; 32]);
        let error = WireError::new(Code::Integrity, "seq 3 is already taken", "invoice.seq");
        let body = seal_verdict(&authority, &error, &subject("inv-1", "h1")).unwrap();
        let text = serde_json::to_string(&body).unwrap();
        let pinned = authority.public();
        assert_eq!(
            check_verdict(&text, &pinned, "inv-1", "h1"),
            Ok(error.clone())
        );
        // Spacing and key order do not matter (RFC 8785 bytes are signed).
        let pretty = serde_json::to_string_pretty(&body).unwrap();
        assert!(check_verdict(&pretty, &pinned, "inv-1", "h1").is_ok());
        assert!(matches!(
            check_verdict(&text, &other.public(), "inv-1", "h1"),
            Err(VerdictProblem::Signature(_))
        ));
        assert!(matches!(
            check_verdict(&text, &pinned, "inv-2", "h1"),
            Err(VerdictProblem::OtherSubject { .. })
        ));
        assert!(matches!(
            check_verdict(&text, &pinned, "inv-1", "h2"),
            Err(VerdictProblem::OtherSubject { .. })
        ));
        let unsigned = serde_json::to_string(&error).unwrap();
        assert_eq!(
            check_verdict(&unsigned, &pinned, "inv-1", "h1"),
            Err(VerdictProblem::Unsigned)
        );
        // The message changed on the way: the signature covers the error object too.
        let tampered = text.replace("already taken", "taken");
        assert!(matches!(
            check_verdict(&tampered, &pinned, "inv-1", "h1"),
            Err(VerdictProblem::Signature(_))
        ));
        assert!(matches!(
            check_verdict("<html>", &pinned, "inv-1", "h1"),
            Err(VerdictProblem::NotJson(_))
        ));
    }

    #[test]
    fn only_the_answers_that_stop_a_queue_are_verdicts() {
        assert!(is_stop_verdict(422, "integrity"));
        assert!(is_stop_verdict(422, "idempotency_key_reused"));
        assert!(is_stop_verdict(409, "chain_gap"));
        assert!(!is_stop_verdict(409, "request_in_progress"));
        assert!(!is_stop_verdict(422, "invalid_request"));
        assert!(!is_stop_verdict(400, "integrity"));
    }
}
