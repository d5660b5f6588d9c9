//! The endpoints other than submission and the admin API: health, authority key,
//! enrolment, and the device-signed ones (leases, chain head, receipt look-up), which take
//! their device from the [`DeviceAuth`] extractor.

use crate::auth::DeviceAuth;
use crate::body::{json, json_response, read_body, MAX_SMALL_BODY};
use crate::config::MAX_SEQUENCE;
use crate::error::{ErrorAnswer, TaxdError};
use crate::faults::{outgoing_receipt, Outgoing};
use crate::{AppState, Shared, AUTHORITY_NAME};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use kaipiao_core::draft::validate_seller;
use kaipiao_core::lease::Lease;
use kaipiao_core::model::Party;
use kaipiao_core::money::money_string;
use kaipiao_core::sign::PublicKey;
use kaipiao_core::time::rfc3339;
use kaipiao_core::wire::{AuthorityInfo, EnrollResponse, Head, Health};
use kaipiao_core::Code;
use kaipiao_core::ZERO_HASH;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde_json::Value;

/// Device names are shown to a person; the same limit as other names (SPEC 2).
const MAX_DEVICE_NAME_CHARS: usize = 100;

pub(crate) async fn health(State(state): State<AppState>) -> Response {
    json(
        StatusCode::OK,
        &Health {
            status: "ok".into(),
            time: rfc3339(Utc::now()),
            sandbox: Some(!state.0.config.not_sandbox),
            admission: crate::admission::health(&state.0),
        },
    )
}

pub(crate) async fn authority(State(state): State<AppState>) -> Response {
    json(
        StatusCode::OK,
        &AuthorityInfo {
            name: AUTHORITY_NAME.into(),
            public_key: state.authority_public_key(),
        },
    )
}

pub(crate) async fn no_route() -> Response {
    ErrorAnswer::not_found("no such endpoint").into_response()
}

pub(crate) async fn no_method() -> Response {
    ErrorAnswer::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        "this endpoint does not take this method",
        "",
    )
    .into_response()
}

fn invalid(message: impl Into<String>, field: &str) -> ErrorAnswer {
    ErrorAnswer::bad_request(Code::InvalidRequest, message, field)
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn text_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<&'a str, ErrorAnswer> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid("expected text", field)),
        None => Err(invalid("is required", field)),
    }
}

/// POST /v1/devices: `{enrollment_token, seller, device_name, public_key}` -> 201.
pub(crate) async fn enroll(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ErrorAnswer> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, MAX_SMALL_BODY).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("the body is not JSON: {e}"), ""))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("expected a JSON object", ""))?;
    for key in obj.keys() {
        if !["enrollment_token", "seller", "device_name", "public_key"].contains(&key.as_str()) {
            return Err(invalid(
                "unknown field; allowed: enrollment_token, seller, device_name, public_key",
                key,
            ));
        }
    }
    let token = text_field(obj, "enrollment_token")?;
    if !same_secret(token, &state.0.config.enrollment_token) {
        return Err(ErrorAnswer::new(
            StatusCode::FORBIDDEN,
            Code::EnrollmentTokenInvalid,
            "the enrolment token is not the one this authority issued; ask for the right token",
            "enrollment_token",
        ));
    }
    let public_key = text_field(obj, "public_key")?;
    PublicKey::from_base64(public_key).map_err(|_| {
        invalid(
            "expected the device's Ed25519 public key: 32 bytes in standard padded base64",
            "public_key",
        )
    })?;
    let device_name = text_field(obj, "device_name")?.trim().to_string();
    let name_chars = device_name.chars().count();
    if name_chars == 0
        || name_chars > MAX_DEVICE_NAME_CHARS
        || device_name.chars().any(char::is_control)
    {
        return Err(invalid(
            format!("expected 1 to {MAX_DEVICE_NAME_CHARS} characters without control characters"),
            "device_name",
        ));
    }
    let seller_value = obj
        .get("seller")
        .ok_or_else(|| invalid("is required", "seller"))?;
    let seller: Party = serde_path_to_error::deserialize(seller_value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            "seller".to_string()
        } else {
            format!("seller.{path}")
        };
        invalid(format!("{}", e.inner()), &field)
    })?;
    let seller = validate_seller(&seller)
        .map_err(|fe| invalid(fe.text(kaipiao_core::Lang::En), &fe.field))?;
    let seller_json = serde_json::to_string(&seller).map_err(TaxdError::Json)?;
    let public_key = public_key.to_string();
    let device_id = state
        .blocking(move |shared| insert_device(shared, &public_key, &seller_json, &device_name))
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &EnrollResponse {
            device_id,
            authority_public_key: state.authority_public_key(),
        },
    ))
}

fn insert_device(
    shared: &Shared,
    public_key: &str,
    seller_json: &str,
    device_name: &str,
) -> Result<String, ErrorAnswer> {
    shared.db.with(|conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The same enrolment again (a client's retry after a lost answer: the same key,
        // seller and name) is the device already enrolled, not a second one.
        let enrolled: Option<String> = tx
            .query_row(
                "SELECT device_id FROM devices WHERE public_key = ?1 AND seller = ?2 AND device_name = ?3
                 ORDER BY created_at DESC LIMIT 1",
                params![public_key, seller_json, device_name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(device_id) = enrolled {
            return Ok(device_id);
        }
        let serial: i64 = tx.query_row(
            "SELECT COALESCE(MAX(prefix_serial), 0) + 1 FROM devices",
            [],
            |r| r.get(0),
        )?;
        // "26" + a 10-digit counter: distinct 12-digit prefixes for 10^10 devices.
        if serial > 9_999_999_999 {
            return Err(ErrorAnswer::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::PrefixesExhausted,
                "this sandbox authority has no invoice-number prefixes left; start a new database",
                "",
            ));
        }
        let prefix = format!("26{serial:010}");
        let device_id = uuid::Uuid::new_v4().to_string();
        let now = rfc3339(Utc::now());
        tx.execute(
            "INSERT INTO devices (device_id, public_key, seller, device_name, prefix_serial, prefix, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![device_id, public_key, seller_json, device_name, serial, prefix, now],
        )?;
        tx.execute(
            "INSERT INTO chain_heads (device_id, seq, hash, updated_at) VALUES (?1, 0, ?2, ?3)",
            params![device_id, ZERO_HASH, now],
        )?;
        tx.commit()?;
        Ok(device_id)
    })
}

/// Leases a device may hold that the authority has not seen used to their end (no
/// receipt for their last number). At the cap, a lease request gets the newest of them
/// again: replayed or repeated requests cannot use up a device's numbers.
pub const MAX_UNEXHAUSTED_LEASES: i64 = 3;

/// The longest `request_id` a lease request may carry.
const MAX_REQUEST_ID_CHARS: usize = 100;

/// POST /v1/leases (device-signed): the next block of numbers, signed. The body is `{}`
/// or `{"request_id": "...", "supersede": true}`, both fields optional: a request
/// repeated with the same id (a client's retry after a lost answer) gets the same lease.
/// `supersede` is a restored device's request (`kaipiao restore`): the device gives up
/// the numbers left in every lease it holds (a lost copy of it may have used some), those
/// leases stop counting against [`MAX_UNEXHAUSTED_LEASES`], and the lease granted is a
/// new block past them all, never one granted before.
pub(crate) async fn grant_lease(
    State(state): State<AppState>,
    DeviceAuth { device, body }: DeviceAuth,
) -> Result<Response, ErrorAnswer> {
    // An empty body is taken as `{}`. Other fields are ignored so a later client may say
    // more (e.g. how many numbers it wants) without breaking this one.
    let mut request_id = None;
    let mut supersede = false;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("the body is not JSON: {e}"), ""))?;
        let Some(obj) = value.as_object() else {
            return Err(invalid("expected a JSON object such as {}", ""));
        };
        match obj.get("request_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(id))
                if (1..=MAX_REQUEST_ID_CHARS).contains(&id.chars().count())
                    && !id.chars().any(char::is_control) =>
            {
                request_id = Some(id.clone());
            }
            Some(_) => {
                return Err(invalid(
                    format!(
                    "expected 1 to {MAX_REQUEST_ID_CHARS} characters without control characters"
                ),
                    "request_id",
                ))
            }
        }
        match obj.get("supersede") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => supersede = *b,
            Some(_) => return Err(invalid("expected true or false", "supersede")),
        }
    }
    let lease = state
        .blocking(move |shared| store_lease(shared, &device, request_id.as_deref(), supersede))
        .await?;
    Ok(json(StatusCode::CREATED, &lease))
}

fn parse_stored_lease(body: &str) -> Result<Lease, ErrorAnswer> {
    serde_json::from_str(body)
        .map_err(|e| TaxdError::Corrupt(format!("a stored lease is not a lease: {e}")).into())
}

fn store_lease(
    shared: &Shared,
    device: &str,
    request_id: Option<&str>,
    supersede: bool,
) -> Result<Lease, ErrorAnswer> {
    let config = &shared.config;
    shared.db.with(|conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(id) = request_id {
            let granted: Option<String> = tx
                .query_row(
                    "SELECT body FROM leases WHERE device_id = ?1 AND request_id = ?2",
                    params![device, id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(body) = granted {
                return parse_stored_lease(&body);
            }
        }
        if supersede {
            tx.execute(
                "UPDATE leases SET superseded_at = ?2 WHERE device_id = ?1 AND superseded_at IS NULL",
                params![device, rfc3339(Utc::now())],
            )?;
        }
        let unexhausted: Vec<String> = tx
            .prepare(
                "SELECT l.body FROM leases l
                 WHERE l.device_id = ?1 AND l.superseded_at IS NULL AND NOT EXISTS (
                     SELECT 1 FROM receipts r
                     WHERE r.device_id = l.device_id AND r.number = l.prefix || printf('%08d', l.last))
                 ORDER BY l.first DESC",
            )?
            .query_map([device], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if unexhausted.len() as i64 >= MAX_UNEXHAUSTED_LEASES {
            return parse_stored_lease(&unexhausted[0]);
        }
        let prefix: String = tx.query_row(
            "SELECT prefix FROM devices WHERE device_id = ?1",
            [device],
            |r| r.get(0),
        )?;
        let granted: i64 = tx.query_row(
            "SELECT COALESCE(MAX(last), 0) FROM leases WHERE device_id = ?1",
            [device],
            |r| r.get(0),
        )?;
        // Ranges continue: the first lease is 1..=size, the next size+1..=2*size, ...
        let first = u64::try_from(granted).unwrap_or(0) + 1;
        if first > MAX_SEQUENCE {
            return Err(ErrorAnswer::new(
                StatusCode::CONFLICT,
                Code::NumbersExhausted,
                "this device has used every 8-digit sequence number of its prefix; enrol a new device",
                "",
            ));
        }
        let last = first
            .saturating_add(config.lease_size - 1)
            .min(MAX_SEQUENCE);
        let lease = Lease {
            lease_id: uuid::Uuid::now_v7().to_string(),
            device_id: device.to_string(),
            prefix: prefix.clone(),
            first,
            last,
            offline_hours: config.offline_hours,
            offline_amount_cap: money_string(config.offline_amount_cap),
            single_invoice_cap: money_string(config.single_invoice_cap),
            granted_at: rfc3339(Utc::now()),
            signature: String::new(),
        }
        .signed(&shared.authority);
        let body = serde_json::to_string(&lease).map_err(TaxdError::Json)?;
        tx.execute(
            "INSERT INTO leases (lease_id, device_id, prefix, first, last, single_invoice_cap, granted_at, body, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                lease.lease_id,
                device,
                prefix,
                first as i64,
                last as i64,
                lease.single_invoice_cap,
                lease.granted_at,
                body,
                request_id
            ],
        )?;
        tx.commit()?;
        Ok(lease)
    })
}

/// GET /v1/devices/{id}/head (device-signed): only a device's own head.
pub(crate) async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    DeviceAuth { device, .. }: DeviceAuth,
) -> Result<Response, ErrorAnswer> {
    if device != id {
        return Err(ErrorAnswer::new(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            "a device may read only its own chain head",
            "",
        ));
    }
    let head = state
        .blocking(move |shared| {
            shared
                .db
                .with(|conn| chain_head(conn, &device).map_err(ErrorAnswer::from))
        })
        .await?;
    Ok(json(StatusCode::OK, &head))
}

/// A device's chain head as the authority holds it.
pub(crate) fn chain_head(conn: &rusqlite::Connection, device: &str) -> rusqlite::Result<Head> {
    conn.query_row(
        "SELECT seq, hash FROM chain_heads WHERE device_id = ?1",
        [device],
        |r| {
            Ok(Head {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                hash: r.get(1)?,
            })
        },
    )
}

/// GET /v1/invoices/{id} (device-signed): the receipt exactly as first sent (unless a
/// receipt fault is on), only to the device that submitted the invoice; anyone else
/// learns nothing, not even that it exists.
pub(crate) async fn receipt(
    State(state): State<AppState>,
    Path(id): Path<String>,
    DeviceAuth { device, .. }: DeviceAuth,
) -> Result<Response, ErrorAnswer> {
    let stored: Option<Vec<u8>> = state
        .blocking(move |shared| {
            shared.db.with(|conn| {
                conn.query_row(
                    "SELECT body FROM receipts WHERE invoice_id = ?1 AND device_id = ?2",
                    [&id, &device],
                    |r| r.get(0),
                )
                .optional()
                .map_err(ErrorAnswer::from)
            })
        })
        .await?;
    match stored {
        Some(body) => {
            let body = match outgoing_receipt(&state.faults(), &state.0.impostor, body) {
                Outgoing::Receipt(body) | Outgoing::Broken(body) => body,
            };
            Ok(json_response(StatusCode::OK, body))
        }
        None => Err(ErrorAnswer::not_found(
            "this device has no receipt for that invoice id; submit the invoice",
        )),
    }
}
