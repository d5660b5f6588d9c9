//! A device's own records read back (SPEC 10, for restore): its stored envelopes with
//! their receipts, in chain order, and the leases it was granted. Device-signed, and only
//! a device's own: the envelopes are its invoices exactly as it signed them, so a device
//! that lost its ledger (or restored an old copy) can bring back what the authority holds
//! and verify every byte against its own key and the authority's.
//!
//! `GET /v1/devices/{id}/invoices?after_seq=N&limit=M` answers 200 `{"items": [{"seq",
//! "envelope", "receipt"}], "head": {seq, hash}}`: up to M (1 to 500, default 100) items
//! with seq > N (default 0), `receipt` the receipt body exactly as stored.
//! `GET /v1/devices/{id}/leases` answers 200 `{"leases": [lease]}`, in the order granted.

use crate::auth::DeviceAuth;
use crate::body::json;
use crate::error::{ErrorAnswer, TaxdError};
use crate::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use kaipiao_core::wire::Head;
use kaipiao_core::Code;
use serde::Serialize;
use serde_json::value::RawValue;

/// Items per page when the request does not say, and at most.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 500;

#[derive(Serialize)]
struct Item {
    seq: u64,
    envelope: Box<RawValue>,
    receipt: Box<RawValue>,
}

#[derive(Serialize)]
struct Page {
    items: Vec<Item>,
    head: Head,
}

#[derive(Serialize)]
struct Leases {
    leases: Vec<Box<RawValue>>,
}

/// Only a device's own records.
fn own(device: &str, id: &str) -> Result<(), ErrorAnswer> {
    if device == id {
        Ok(())
    } else {
        Err(ErrorAnswer::new(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            "a device may read back only its own records",
            "",
        ))
    }
}

/// `after_seq` and `limit` from the query, each named when it is wrong.
fn page_query(query: Option<&str>) -> Result<(u64, u64), ErrorAnswer> {
    let (mut after, mut limit) = (0u64, DEFAULT_LIMIT);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = |field: &str, max: u64| {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    ErrorAnswer::bad_request(
                        Code::InvalidRequest,
                        format!("{field} must be a whole number from 0 to {max}, not {value:?}"),
                        field,
                    )
                })
        };
        match name {
            "after_seq" => after = number("after_seq", i64::MAX as u64)?,
            "limit" => limit = number("limit", MAX_LIMIT)?.max(1),
            other => {
                return Err(ErrorAnswer::bad_request(
                    Code::InvalidRequest,
                    format!("unknown query parameter {other:?}: use after_seq and limit"),
                    other,
                ))
            }
        }
    }
    Ok((after, limit))
}

fn raw(text: String) -> Result<Box<RawValue>, ErrorAnswer> {
    RawValue::from_string(text).map_err(|e| {
        ErrorAnswer::from(TaxdError::Corrupt(format!(
            "a stored record is not JSON: {e}"
        )))
    })
}

/// GET /v1/devices/{id}/invoices (device-signed).
pub(crate) async fn invoices(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    DeviceAuth { device, .. }: DeviceAuth,
) -> Result<Response, ErrorAnswer> {
    own(&device, &id)?;
    let (after, limit) = page_query(query.as_deref())?;
    let page = state
        .blocking(move |shared| {
            shared.db.with(|conn| {
                let tx = conn.transaction()?;
                let head = crate::api::chain_head(&tx, &device)?;
                let mut stmt = tx.prepare(
                    "SELECT seq, invoice, hash, signature, body FROM receipts
                     WHERE device_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )?;
                let rows =
                    stmt.query_map(rusqlite::params![device, after as i64, limit as i64], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Vec<u8>>(4)?,
                        ))
                    })?;
                let mut items = Vec::new();
                for row in rows {
                    let (seq, invoice, hash, signature, body) = row?;
                    let envelope = format!(
                        "{{\"invoice\":{invoice},\"hash\":{},\"signature\":{}}}",
                        serde_json::Value::String(hash),
                        serde_json::Value::String(signature)
                    );
                    let receipt = String::from_utf8(body).map_err(|_| {
                        ErrorAnswer::from(TaxdError::Corrupt(
                            "a stored receipt is not UTF-8".into(),
                        ))
                    })?;
                    items.push(Item {
                        seq: u64::try_from(seq).unwrap_or(0),
                        envelope: raw(envelope)?,
                        receipt: raw(receipt)?,
                    });
                }
                Ok::<_, ErrorAnswer>(Page { items, head })
            })
        })
        .await?;
    Ok(json(StatusCode::OK, &page))
}

/// GET /v1/devices/{id}/leases (device-signed).
pub(crate) async fn leases(
    State(state): State<AppState>,
    Path(id): Path<String>,
    DeviceAuth { device, .. }: DeviceAuth,
) -> Result<Response, ErrorAnswer> {
    own(&device, &id)?;
    let leases = state
        .blocking(move |shared| {
            shared.db.with(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT body FROM leases WHERE device_id = ?1 ORDER BY granted_at, first",
                )?;
                let bodies = stmt
                    .query_map([&device], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                bodies.into_iter().map(raw).collect::<Result<Vec<_>, _>>()
            })
        })
        .await?;
    Ok(json(StatusCode::OK, &Leases { leases }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_query_names_what_is_wrong() {
        assert_eq!(page_query(None).ok(), Some((0, DEFAULT_LIMIT)));
        assert_eq!(page_query(Some("after_seq=7&limit=3")).ok(), Some((7, 3)));
        assert_eq!(page_query(Some("limit=0")).ok(), Some((0, 1)));
        for (query, field) in [
            ("limit=501", "limit"),
            ("after_seq=-1", "after_seq"),
            ("after_seq=x", "after_seq"),
            ("offset=3", "offset"),
        ] {
            let e = page_query(Some(query)).err().expect(query);
            assert_eq!(
                (e.status, e.body.error.field.as_str()),
                (StatusCode::BAD_REQUEST, field)
            );
        }
    }
}
