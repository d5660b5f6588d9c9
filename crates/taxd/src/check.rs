//! The buyer's check (查验, SPEC 10): `GET /v1/check?number=&date=YYYYMMDD&total=&code=`,
//! public (no signature) and rate-limited per peer address (`--check-rate`). It answers
//! `{"match": bool, "status": "accepted" | "rejected" | null}`: a match when the authority
//! holds an invoice with that number, issued on that date in China Standard Time
//! (UTC+8), with that 价税合计 and an authority code ending in those 6 digits; the status
//! only on a match. It says nothing else about an invoice (not whether the number exists
//! when the rest differs), so walking numbers learns nothing.

use crate::admin::peer_ip;
use crate::body::json;
use crate::error::ErrorAnswer;
use crate::AppState;
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDate;
use kaipiao_core::Code;
use rusqlite::OptionalExtension;
use rust_decimal::Decimal;
use serde::Serialize;

#[derive(Serialize)]
struct Answer {
    #[serde(rename = "match")]
    matched: bool,
    status: Option<String>,
}

/// The four fields, each checked and named when wrong.
struct Query {
    number: String,
    date: NaiveDate,
    total: Decimal,
    code: String,
}

fn bad(field: &str, what: &str) -> ErrorAnswer {
    ErrorAnswer::bad_request(Code::InvalidRequest, format!("{field}: {what}"), field)
}

fn parse(query: Option<&str>) -> Result<Query, ErrorAnswer> {
    let (mut number, mut date, mut total, mut code) = (None, None, None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "number" => number = Some(value.to_string()),
            "date" => date = Some(value.to_string()),
            "total" => total = Some(value.to_string()),
            "code" => code = Some(value.to_string()),
            other => {
                return Err(bad(
                    other,
                    "unknown query parameter: use number, date, total and code",
                ))
            }
        }
    }
    let number = number
        .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad("number", "the invoice number, 20 digits"))?;
    let date = date
        .and_then(|d| NaiveDate::parse_from_str(&d, "%Y%m%d").ok())
        .ok_or_else(|| bad("date", "the issue date as YYYYMMDD (China Standard Time)"))?;
    let total = total
        .and_then(|t| kaipiao_core::money::parse_decimal(&t, 2).ok())
        .ok_or_else(|| bad("total", "the 价税合计, e.g. 1356.00 or -135.60"))?;
    let code = code
        .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad("code", "the last 6 digits of the authority code"))?;
    Ok(Query {
        number,
        date,
        total,
        code,
    })
}

/// GET /v1/check.
pub(crate) async fn check(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Result<Response, ErrorAnswer> {
    let peer = peer_ip(&req).map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    state.0.limits.check_peer(&peer)?;
    let q = parse(query.as_deref())?;
    let answer = state
        .blocking(move |shared| {
            shared.db.with(|conn| {
                let row: Option<(String, String, String, Option<String>)> = conn
                    .query_row(
                        "SELECT status, authority_code, issued_at, json_extract(invoice, '$.total')
                         FROM receipts WHERE number = ?1",
                        [&q.number],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let matched = row.filter(|(_, code, issued_at, total)| {
                    let day = kaipiao_core::time::china_date(issued_at);
                    let total = total
                        .as_deref()
                        .and_then(|t| kaipiao_core::money::parse_decimal(t, 2).ok());
                    code.ends_with(&q.code) && day == Some(q.date) && total == Some(q.total)
                });
                Ok::<_, ErrorAnswer>(Answer {
                    matched: matched.is_some(),
                    status: matched.map(|(status, _, _, _)| status),
                })
            })
        })
        .await?;
    Ok(json(StatusCode::OK, &answer))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn each_field_is_checked_and_named() {
        let good = "number=26000000000100000001&date=20261203&total=4536.00&code=538691";
        assert!(parse(Some(good)).is_ok());
        for (query, field) in [
            ("date=20261203&total=1&code=538691", "number"),
            ("number=2600&date=20261203&total=1&code=538691", "number"),
            (
                "number=26000000000100000001&date=2026-12-03&total=1&code=538691",
                "date",
            ),
            (
                "number=26000000000100000001&date=20261203&total=1.234&code=538691",
                "total",
            ),
            (
                "number=26000000000100000001&date=20261203&total=1&code=53869",
                "code",
            ),
            (
                "number=26000000000100000001&date=20261203&total=1&code=538691&x=1",
                "x",
            ),
        ] {
            let e = parse(Some(query)).err().expect(query);
            assert_eq!(e.body.error.field, field, "{query}");
        }
    }
}
