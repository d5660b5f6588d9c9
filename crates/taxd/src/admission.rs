//! Admission (issue 13, docs/PROTOCOL.md section 9.1): with `--admission-capacity N` the
//! authority paces recovering backlogs. A device with more than `live_max` pending asks
//! `POST /v1/admission` (device-signed) and is answered `open`, `admitted` (a ticket for a
//! share in one second) or `waiting` (its expected turn and when to ask again); the
//! decision is [`kaipiao_core::admission::decide`], over state kept in `--db` so that two
//! taxd on one database are one authority. Submissions then carry the ticket in
//! `Kaipiao-Admission`; one without a ticket is taken only while the current second has
//! room beyond what is planned, else 503 `overloaded` with a Retry-After computed from the
//! backlog waiting ahead of it.
//!
//! The device's statements are clamped to what the authority knows: the offline window to
//! the newest lease it granted the device, the oldest pending time to no earlier than the
//! invoice at the device's head here, the pending count to the numbers granted and not yet
//! receipted. A device cannot jump the queue by claiming more urgency than its lease
//! allows.

use crate::auth::DeviceAuth;
use crate::body::json;
use crate::error::{ErrorAnswer, TaxdError};
use crate::{AppState, Shared};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use kaipiao_core::admission::{
    decide, decide_live, Decision, Params, Seconds, DEMAND_EXPIRY_MS, RECENT_S,
};
use kaipiao_core::lease::Lease;
use kaipiao_core::time::parse_rfc3339;
use kaipiao_core::wire::{AdmissionAnswer, AdmissionRequest, HealthAdmission, HEADER_ADMISSION};
use kaipiao_core::Code;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

/// The admission parameters, when admission is on.
pub(crate) fn params(shared: &Shared) -> Option<Params> {
    shared.config.admission_capacity.map(Params::new)
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn invalid(message: impl Into<String>, field: &str) -> ErrorAnswer {
    ErrorAnswer::bad_request(Code::InvalidRequest, message, field)
}

/// What `/v1/health` says about admission, when it is on.
pub(crate) fn health(shared: &Shared) -> Option<HealthAdmission> {
    let params = params(shared)?;
    let now = millis(Utc::now());
    let recovering = shared
        .db
        .with(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM admission_demand WHERE expires_ms > ?1)
                     OR EXISTS (SELECT 1 FROM admission_grants WHERE not_after_ms > ?1)",
                [now],
                |r| r.get::<_, bool>(0),
            )
            .map_err(TaxdError::from)
        })
        .unwrap_or(false);
    Some(HealthAdmission {
        recovering,
        live_max: params.live_max,
    })
}

/// POST /v1/admission (device-signed).
pub(crate) async fn ask(
    State(state): State<AppState>,
    DeviceAuth { device, body }: DeviceAuth,
) -> Result<Response, ErrorAnswer> {
    let Some(params) = params(&state.0) else {
        return Err(ErrorAnswer::not_found(
            "this authority does not pace recovery (no admission): send as before",
        ));
    };
    let request: AdmissionRequest =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body))
            .map_err(|e| {
                let field = e.path().to_string();
                invalid(
                    format!(
                        "expected {{pending, oldest_pending_at, offline_hours}}: {}",
                        e.inner()
                    ),
                    if field == "." { "" } else { &field },
                )
            })?;
    let oldest = parse_rfc3339(&request.oldest_pending_at).ok_or_else(|| {
        invalid(
            "expected an RFC 3339 time such as 2026-01-05T09:30:00Z",
            "oldest_pending_at",
        )
    })?;
    let answer = state
        .blocking(move |shared| decide_for(shared, &params, &device, &request, oldest))
        .await?;
    let mut response = json(StatusCode::OK, &answer);
    if let (Some(ticket), Some(not_before)) = (answer.ticket, answer.not_before) {
        response
            .extensions_mut()
            .insert(crate::reqlog::LogGrant { ticket, not_before });
    }
    Ok(response)
}

/// What the authority knows of a device: the offline hours of its newest lease, the time
/// nothing it has pending can be older than (its head invoice here, its first lease), and
/// the numbers granted beyond its head.
fn known(tx: &Transaction<'_>, device: &str) -> Result<(u64, Option<i64>, u64), ErrorAnswer> {
    let newest: Option<String> = tx
        .query_row(
            "SELECT body FROM leases WHERE device_id = ?1 ORDER BY granted_at DESC, first DESC LIMIT 1",
            [device],
            |r| r.get(0),
        )
        .optional()?;
    let hours = newest
        .and_then(|b| serde_json::from_str::<Lease>(&b).ok())
        .map_or(0, |l| l.offline_hours);
    let head: Option<(i64, Option<String>)> = tx
        .query_row(
            "SELECT h.seq, r.issued_at FROM chain_heads h
             LEFT JOIN receipts r ON r.device_id = h.device_id AND r.seq = h.seq
             WHERE h.device_id = ?1",
            [device],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (granted, first_granted): (i64, Option<String>) = tx.query_row(
        "SELECT COALESCE(SUM(last - first + 1), 0), MIN(granted_at) FROM leases WHERE device_id = ?1",
        [device],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let head_seq = head.as_ref().map_or(0, |h| h.0);
    // Nothing pending can be older than the invoice at its head here, nor than its first
    // lease (an invoice issued before its lease was granted is rejected).
    let not_before = [head.and_then(|h| h.1), first_granted]
        .into_iter()
        .flatten()
        .filter_map(|t| parse_rfc3339(&t))
        .map(|t| t.timestamp())
        .max();
    Ok((
        hours,
        not_before,
        u64::try_from(granted - head_seq).unwrap_or(0),
    ))
}

/// Void grants: their devices count for nothing ahead of others until they ask again;
/// devices that stopped asking leave the order; old seconds go.
fn reclaim(tx: &Transaction<'_>, now: i64) -> Result<(), ErrorAnswer> {
    // A device that did not come for its slot counts for nothing ahead of others until
    // it asks again (no room is kept for a device that went away); it keeps its place.
    tx.execute(
        "UPDATE admission_demand SET pending = 0
         WHERE device_id IN (SELECT device_id FROM admission_grants
                             WHERE not_after_ms <= ?1 AND used < invoices)",
        [now],
    )?;
    tx.execute(
        "DELETE FROM admission_grants WHERE not_after_ms <= ?1",
        [now],
    )?;
    tx.execute("DELETE FROM admission_demand WHERE expires_ms <= ?1", [now])?;
    tx.execute(
        "DELETE FROM admission_seconds WHERE second < ?1",
        [now.div_euclid(1000) - 60.max(RECENT_S + 1)],
    )?;
    Ok(())
}

fn decide_for(
    shared: &Shared,
    params: &Params,
    device: &str,
    request: &AdmissionRequest,
    stated_oldest: DateTime<Utc>,
) -> Result<AdmissionAnswer, ErrorAnswer> {
    shared.db.with(|conn| {
        unsynced(conn, |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = millis(Utc::now());
            reclaim(&tx, now)?;
            let (lease_hours, head_issued, unreceipted) = known(&tx, device)?;
            // Clamped to what the authority knows.
            let hours = request.offline_hours.min(lease_hours);
            let oldest = stated_oldest
                .timestamp()
                .max(head_issued.unwrap_or(i64::MIN))
                .min(now.div_euclid(1000));
            let deadline = oldest.saturating_add(i64::try_from(hours).unwrap_or(0) * 3600);
            let pending = request.pending.min(unreceipted);
            let answer = decide_in(&tx, params, device, pending, oldest, deadline, now)?;
            tx.commit()?;
            Ok(answer)
        })
    })
}

fn decide_in(
    tx: &Transaction<'_>,
    params: &Params,
    device: &str,
    pending: u64,
    oldest: i64,
    deadline: i64,
    now: i64,
) -> Result<AdmissionAnswer, ErrorAnswer> {
    // A grant it holds is answered again (an answer lost on the way), unless it now has
    // fewer invoices than the grant's rest: then the grant is given up and decided anew.
    let held: Option<(String, i64, i64, i64, i64, i64)> = tx
        .query_row(
            "SELECT ticket, second, invoices, used, not_before_ms, not_after_ms
             FROM admission_grants WHERE device_id = ?1",
            [device],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?;
    if let Some((ticket, second, invoices, used, not_before, not_after)) = held {
        let rest = invoices - used;
        if rest > 0 && u64::try_from(rest).unwrap_or(0) <= pending {
            return Ok(AdmissionAnswer {
                ticket: Some(ticket),
                not_before: Some(at_ms(not_before.max(now))),
                not_after: Some(at_ms(not_after)),
                invoices: Some(u32::try_from(rest).unwrap_or(0)),
                ..answer("admitted", now)
            });
        }
        tx.execute(
            "UPDATE admission_seconds SET planned = MAX(0, planned - ?2) WHERE second = ?1",
            params![second, rest.max(0)],
        )?;
        tx.execute("DELETE FROM admission_grants WHERE ticket = ?1", [&ticket])?;
    }
    if pending == 0 {
        tx.execute(
            "DELETE FROM admission_demand WHERE device_id = ?1",
            [device],
        )?;
        return Ok(answer("open", now));
    }
    let now_s = now.div_euclid(1000);
    // Invoices planned (backlog) and granted from the reserve (live) per second ahead.
    let mut planned = vec![0u32; params.horizon_s as usize + 1];
    let mut live = vec![0u32; params.horizon_s as usize + 1];
    {
        let mut stmt = tx.prepare_cached(
            "SELECT second, planned, live FROM admission_seconds WHERE second BETWEEN ?1 AND ?2",
        )?;
        let rows = stmt.query_map(params![now_s, now_s + params.horizon_s], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (second, p, l) = row?;
            let k = (second - now_s) as usize;
            if let (Some(ps), Some(ls)) = (planned.get_mut(k), live.get_mut(k)) {
                *ps = u32::try_from(p).unwrap_or(u32::MAX);
                *ls = u32::try_from(l).unwrap_or(u32::MAX);
            }
        }
    }
    // Live invoices a second over the last whole seconds: the reserve follows them.
    let recent: i64 = tx.query_row(
        "SELECT COALESCE(SUM(live), 0) FROM admission_seconds WHERE second BETWEEN ?1 AND ?2",
        params![now_s - RECENT_S, now_s - 1],
        |r| r.get(0),
    )?;
    let seconds = Seconds {
        planned: &planned,
        live: &live,
        budget: params.budget_for(recent as f64 / RECENT_S as f64),
    };
    if params.is_live(pending, oldest, now) {
        // Live traffic: never behind the backlog, first come first served.
        tx.execute(
            "DELETE FROM admission_demand WHERE device_id = ?1",
            [device],
        )?;
        return match decide_live(params, now, pending as u32, seconds) {
            Decision::Admitted {
                second,
                not_before_ms,
                not_after_ms,
                invoices,
            } => grant(
                tx,
                device,
                Lane::Live,
                second,
                (not_before_ms, not_after_ms),
                invoices,
                now,
            ),
            Decision::Waiting {
                turn_at_ms,
                ask_again_at_ms,
                ..
            } => Ok(waiting(
                now,
                turn_at_ms,
                ask_again_at_ms,
                0,
                "the authority's room for live invoices is taken for the next seconds".into(),
            )),
            Decision::Open => Ok(answer("open", now)),
        };
    }
    let known: Option<i64> = tx
        .query_row(
            "SELECT arrived_ms FROM admission_demand WHERE device_id = ?1",
            [device],
            |r| r.get(0),
        )
        .optional()?;
    let first = known.is_none();
    let arrived = known.unwrap_or(now);
    let ahead: i64 = tx.query_row(
        "SELECT COALESCE(SUM(pending), 0) FROM admission_demand
         WHERE (deadline, arrived_ms, device_id) < (?1, ?2, ?3)",
        params![deadline, arrived, device],
        |r| r.get(0),
    )?;
    let ahead = u64::try_from(ahead).unwrap_or(0);
    let upsert_demand = |pending: u64, expires: i64| -> Result<(), ErrorAnswer> {
        tx.execute(
            "INSERT INTO admission_demand (device_id, deadline, arrived_ms, pending, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (device_id) DO UPDATE SET deadline = ?2, pending = ?4, expires_ms = ?5",
            params![device, deadline, arrived, pending as i64, expires],
        )?;
        Ok(())
    };
    match decide(
        params,
        now,
        params.share(pending, seconds.budget, first),
        ahead,
        seconds,
    ) {
        Decision::Admitted {
            second,
            not_before_ms,
            not_after_ms,
            invoices,
        } => {
            let rest = pending.saturating_sub(u64::from(invoices));
            if rest > 0 {
                upsert_demand(rest, not_after_ms + DEMAND_EXPIRY_MS)?;
            } else {
                tx.execute(
                    "DELETE FROM admission_demand WHERE device_id = ?1",
                    [device],
                )?;
            }
            grant(
                tx,
                device,
                Lane::Backlog,
                second,
                (not_before_ms, not_after_ms),
                invoices,
                now,
            )
        }
        Decision::Waiting {
            turn_at_ms,
            ask_again_at_ms,
            ahead,
        } => {
            upsert_demand(pending, ask_again_at_ms + DEMAND_EXPIRY_MS)?;
            Ok(waiting(
                now,
                turn_at_ms,
                ask_again_at_ms,
                ahead,
                format!(
                    "the authority is recovering from an outage: {ahead} invoices of shops whose offline windows close sooner or that asked earlier are ahead of yours, at {} invoices a second",
                    seconds.budget
                ),
            ))
        }
        Decision::Open => Ok(answer("open", now)),
    }
}

/// Which count of a second a grant takes from.
#[derive(Clone, Copy)]
enum Lane {
    /// `planned`: the backlog's budget.
    Backlog,
    /// `live`: live traffic.
    Live,
}

/// An answer of `decision` at `now`, its other fields unset.
fn answer(decision: &str, now: i64) -> AdmissionAnswer {
    AdmissionAnswer {
        decision: decision.into(),
        server_time: at_ms(now),
        ticket: None,
        not_before: None,
        not_after: None,
        invoices: None,
        turn_at: None,
        ask_again_at: None,
        ahead_invoices: None,
        reason: None,
    }
}

fn waiting(
    now: i64,
    turn_at: i64,
    ask_again_at: i64,
    ahead: u64,
    reason: String,
) -> AdmissionAnswer {
    AdmissionAnswer {
        turn_at: Some(at_ms(turn_at)),
        ask_again_at: Some(at_ms(ask_again_at)),
        ahead_invoices: Some(ahead),
        reason: Some(reason),
        ..answer("waiting", now)
    }
}

/// Stores a grant of `invoices` in `second` for `device`, counted in `lane`, and answers it.
fn grant(
    tx: &Transaction<'_>,
    device: &str,
    lane: Lane,
    second: i64,
    (not_before_ms, not_after_ms): (i64, i64),
    invoices: u32,
    now: i64,
) -> Result<AdmissionAnswer, ErrorAnswer> {
    let ticket = new_ticket();
    tx.execute(
        "INSERT INTO admission_grants
             (ticket, device_id, second, invoices, not_before_ms, not_after_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            ticket,
            device,
            second,
            invoices,
            not_before_ms,
            not_after_ms
        ],
    )?;
    tx.execute(
        match lane {
            Lane::Backlog => {
                "INSERT INTO admission_seconds (second, planned) VALUES (?1, ?2)
                 ON CONFLICT (second) DO UPDATE SET planned = planned + ?2"
            }
            Lane::Live => {
                "INSERT INTO admission_seconds (second, live) VALUES (?1, ?2)
                 ON CONFLICT (second) DO UPDATE SET live = live + ?2"
            }
        },
        params![second, invoices],
    )?;
    Ok(AdmissionAnswer {
        ticket: Some(ticket),
        not_before: Some(at_ms(not_before_ms)),
        not_after: Some(at_ms(not_after_ms)),
        invoices: Some(invoices),
        ..answer("admitted", now)
    })
}

/// Admission's bookkeeping commits without waiting for the disk (synchronous=NORMAL,
/// restored after): it paces and records nothing a receipt depends on, a submission's own
/// commit right after it syncs the WAL with it, and a grant lost in a crash only makes its
/// device ask again. One fsync fewer per admission request and per paced submission.
fn unsynced<T>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> Result<T, ErrorAnswer>,
) -> Result<T, ErrorAnswer> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let done = work(conn);
    let restored = conn.pragma_update(None, "synchronous", "FULL");
    let value = done?;
    restored?;
    Ok(value)
}

/// A fresh ticket: 128 random bits, hex.
fn new_ticket() -> String {
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

/// The `Kaipiao-Admission` header: a ticket, if present.
pub(crate) fn ticket(headers: &HeaderMap) -> Result<Option<String>, ErrorAnswer> {
    match headers.get(HEADER_ADMISSION) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(t) if !t.trim().is_empty() && t.len() <= 64 => Ok(Some(t.trim().to_string())),
            _ => Err(invalid(
                "expected the ticket an admission answer gave",
                HEADER_ADMISSION,
            )),
        },
    }
}

fn overloaded(message: String, retry_after: u64) -> ErrorAnswer {
    ErrorAnswer::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::Overloaded,
        message,
        HEADER_ADMISSION,
    )
    .with_retry_after(retry_after)
}

/// Admission for a submission of `invoices` invoices from `device` (its first envelope's):
/// under its ticket, or without one while this second has room beyond what is planned.
/// Nothing to check when admission is off. Blocking.
pub(crate) fn admit_submission(
    shared: &Shared,
    ticket: Option<&str>,
    device: &str,
    invoices: usize,
) -> Result<(), ErrorAnswer> {
    let Some(params) = params(shared) else {
        return Ok(());
    };
    let n = i64::try_from(invoices).unwrap_or(i64::MAX);
    shared.db.with(|conn| unsynced(conn, |conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = millis(Utc::now());
        let now_s = now.div_euclid(1000);
        match ticket {
            Some(ticket) => {
                let grant: Option<(String, i64, i64, i64, i64)> = tx
                    .query_row(
                        "SELECT device_id, invoices, used, not_before_ms, not_after_ms
                         FROM admission_grants WHERE ticket = ?1",
                        [ticket],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                    )
                    .optional()?;
                let Some((owner, granted, used, not_before, not_after)) = grant else {
                    return Err(overloaded(
                        "this admission ticket is unknown or has ended; ask POST /v1/admission again".into(),
                        1,
                    ));
                };
                if owner != device {
                    return Err(overloaded(
                        "this admission ticket was given to another device; ask POST /v1/admission for your own".into(),
                        1,
                    ));
                }
                if now < not_before {
                    return Err(overloaded(
                        format!("this ticket's slot starts at {}; send then", at_ms(not_before)),
                        u64::try_from((not_before - now + 999) / 1000).unwrap_or(1),
                    ));
                }
                if now >= not_after {
                    return Err(overloaded(
                        "this admission ticket has ended; ask POST /v1/admission again".into(),
                        1,
                    ));
                }
                if used + n > granted {
                    return Err(overloaded(
                        format!(
                            "this ticket covers {} more invoices, not {n}; ask POST /v1/admission for the rest",
                            granted - used
                        ),
                        1,
                    ));
                }
                tx.execute(
                    "UPDATE admission_grants SET used = used + ?2 WHERE ticket = ?1",
                    params![ticket, n],
                )?;
            }
            None => {
                let (planned, live): (i64, i64) = tx
                    .query_row(
                        "SELECT planned, live FROM admission_seconds WHERE second = ?1",
                        [now_s],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?
                    .unwrap_or((0, 0));
                if planned + live + n > i64::from(params.capacity) {
                    // The wait the backlog ahead of it means, not the next token.
                    let waiting: i64 = tx.query_row(
                        "SELECT COALESCE(SUM(pending), 0) FROM admission_demand WHERE expires_ms > ?1",
                        [now],
                        |r| r.get(0),
                    )?;
                    let seconds = (waiting + n) as f64 / f64::from(params.budget());
                    return Err(overloaded(
                        format!(
                            "the authority is pacing a recovery ({waiting} invoices waiting); a device with more than {} pending asks POST /v1/admission for its turn",
                            params.live_max
                        ),
                        (seconds.ceil() as u64).clamp(1, 3600),
                    ));
                }
                tx.execute(
                    "INSERT INTO admission_seconds (second, live) VALUES (?1, ?2)
                     ON CONFLICT (second) DO UPDATE SET live = live + ?2",
                    params![now_s, n],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }))
}
