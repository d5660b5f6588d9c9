//! Admission (issue 13): the endpoint, the order it serves a backlog in, the clamps on
//! what a device states, tickets on submissions, the refusal of ticketless work while
//! the seconds are planned full, reclaiming a void grant, and two authorities on one
//! database pacing one backlog.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{Duration, Utc};
use kaipiao_core::model::Envelope;
use kaipiao_core::time::rfc3339;
use kaipiao_testkit::authority::*;
use kaipiao_testkit::fixtures::office_supplies as ordinary;
use serde_json::{json, Value};

/// Admission capacity 10 invoices/s: a budget of 9 a second, 1 kept for live traffic.
fn paced() -> Authority {
    Authority::with(|c| c.admission_capacity = Some(10))
}

/// An enrolled device whose lease was granted 100 hours ago (so that what it states
/// about older invoices is not clamped away).
async fn ready(a: &Authority, secret: u8) -> Device {
    let mut d = a.enroll(secret).await;
    a.lease(&mut d).await;
    let conn = rusqlite::Connection::open(a.db_path()).unwrap();
    conn.execute(
        "UPDATE leases SET granted_at = ?2 WHERE device_id = ?1",
        rusqlite::params![d.id, rfc3339(Utc::now() - Duration::hours(100))],
    )
    .unwrap();
    d
}

fn ask_body(pending: u64, oldest_hours_ago: i64, hours: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "pending": pending,
        "oldest_pending_at": rfc3339(Utc::now() - Duration::hours(oldest_hours_ago)),
        "offline_hours": hours,
    }))
    .unwrap()
}

async fn ask_on(app: &axum::Router, d: &Device, pending: u64, ago: i64, hours: u64) -> Value {
    let reply = call(
        app,
        d.signed(Method::POST, "/v1/admission", ask_body(pending, ago, hours)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

async fn ask(a: &Authority, d: &Device, pending: u64, ago: i64, hours: u64) -> Value {
    ask_on(&a.app, d, pending, ago, hours).await
}

fn batch(envelopes: &[Envelope], ticket: Option<&str>) -> Request<Body> {
    let items: Vec<Value> = envelopes
        .iter()
        .map(|e| json!({"idempotency_key": e.invoice.id, "envelope": e}))
        .collect();
    let mut r = Request::post("/v1/invoices:batch").header("content-type", "application/json");
    if let Some(t) = ticket {
        r = r.header("Kaipiao-Admission", t);
    }
    r.body(Body::from(
        serde_json::to_vec(&json!({ "items": items })).unwrap(),
    ))
    .unwrap()
}

#[tokio::test]
async fn without_admission_the_endpoint_is_not_there_and_health_says_nothing() {
    let a = Authority::new();
    let d = ready(&a, 1).await;
    let reply = a
        .call(d.signed(Method::POST, "/v1/admission", ask_body(40, 1, 72)))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    let health = a.get("/v1/health").await.json();
    assert!(health.get("admission").is_none(), "{health}");
    // Submissions go as before, without a ticket.
    let mut d = d;
    let e = d.issue(&ordinary("1", "1"));
    assert_eq!(a.submit(&e).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_backlog_is_served_earliest_deadline_first_in_shares() {
    let a = paced();
    let health = a.get("/v1/health").await.json();
    assert_eq!(
        health["admission"],
        json!({"recovering": false, "live_max": 5})
    );
    let first = ready(&a, 1).await;
    let later = ready(&a, 2).await;
    let urgent = ready(&a, 3).await;
    // 400 pending, window closing in 71 h: a share of 9 now, the rest waits.
    let got = ask(&a, &first, 400, 1, 72).await;
    assert_eq!(got["decision"], "admitted", "{got}");
    // Its share: a second's budget, or what is left of the current second.
    let granted = got["invoices"].as_u64().unwrap();
    assert!((1..=9).contains(&granted), "{got}");
    let rest = 400 - granted;
    assert!(got["ticket"].as_str().unwrap().len() >= 16);
    assert!(a.get("/v1/health").await.json()["admission"]["recovering"] == true);
    // Same window, later: behind the rest of the first one, beyond the horizon.
    let wait = ask(&a, &later, 40, 1, 72).await;
    assert_eq!(wait["decision"], "waiting", "{wait}");
    assert_eq!(wait["ahead_invoices"], rest);
    let turn = chrono::DateTime::parse_from_rfc3339(wait["turn_at"].as_str().unwrap()).unwrap();
    let again =
        chrono::DateTime::parse_from_rfc3339(wait["ask_again_at"].as_str().unwrap()).unwrap();
    let server =
        chrono::DateTime::parse_from_rfc3339(wait["server_time"].as_str().unwrap()).unwrap();
    // Some 391 at 9 a second are about 44 s away; asked again 3 s before.
    assert!((turn - server).num_seconds() >= 43, "{wait}");
    assert_eq!((turn - again).num_seconds(), 3);
    assert!(wait["reason"].as_str().unwrap().contains(&rest.to_string()));
    // A window that closes in 2 hours goes before both.
    let jump = ask(&a, &urgent, 40, 70, 72).await;
    assert_eq!(jump["decision"], "admitted", "{jump}");
    let urgent_rest = 40 - jump["invoices"].as_u64().unwrap();
    // Asked again, the later one now has the urgent one's rest ahead as well.
    let wait = ask(&a, &later, 40, 1, 72).await;
    assert_eq!(wait["ahead_invoices"], rest + urgent_rest, "{wait}");
    // A device with at most live_max pending, issued just now, is live traffic: granted
    // from what the backlog was not given at once, whatever the backlog ahead; one with
    // none is open.
    let live = ask(&a, &later, 5, 0, 72).await;
    assert_eq!(live["decision"], "admitted", "{live}");
    assert_eq!(live["invoices"], 1, "{live}");
    let other = ready(&a, 4).await;
    let next = ask(&a, &other, 1, 0, 72).await;
    assert_eq!(next["decision"], "admitted", "{next}");
    let (a_at, b_at) = (
        live["not_before"].as_str().unwrap().to_string(),
        next["not_before"].as_str().unwrap().to_string(),
    );
    assert!(b_at > a_at, "one a second: {a_at} then {b_at}");
    assert_eq!(ask(&a, &other, 0, 0, 72).await["decision"], "open");
}

#[tokio::test]
async fn what_a_device_states_is_clamped_to_what_the_authority_knows() {
    let a = paced();
    let honest = ready(&a, 1).await;
    // Its lease was granted just now.
    let mut liar = a.enroll(2).await;
    a.lease(&mut liar).await;
    // The honest one is 60 hours into a 72-hour window.
    let got = ask(&a, &honest, 400, 60, 72).await;
    assert_eq!(got["decision"], "admitted");
    let rest = 400 - got["invoices"].as_u64().unwrap();
    // The liar claims an invoice from 1970 and a window of ten thousand hours: its
    // oldest is taken as no older than its lease (granted now), its window as its
    // lease's 72 hours, so its window closes after the honest one's and it waits.
    let lie = ask(&a, &liar, 400, 500_000, 10_000).await;
    assert_eq!(lie["decision"], "waiting", "{lie}");
    assert_eq!(lie["ahead_invoices"], rest);
    // Pending beyond the numbers it was granted (a lease of 1000) counts as 1000.
    let many = ready(&a, 3).await;
    let capped = ask(&a, &many, 1_000_000, 1, 72).await;
    assert_eq!(capped["decision"], "waiting");
    let other = ready(&a, 4).await;
    let behind = ask(&a, &other, 40, 1, 72).await;
    // Ahead of it: the honest one's rest and the capped 1000; not the liar, whose window
    // (clamped) closes after its own.
    assert_eq!(behind["ahead_invoices"], rest + 1000, "{behind}");
    // A malformed request names its field.
    let reply = a
        .call(
            honest.signed(
                Method::POST,
                "/v1/admission",
                serde_json::to_vec(
                    &json!({"pending": 3, "oldest_pending_at": "yesterday", "offline_hours": 72}),
                )
                .unwrap(),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), "oldest_pending_at");
    let reply = a
        .call(honest.signed(
            Method::POST,
            "/v1/admission",
            serde_json::to_vec(&json!({"pending": -1, "oldest_pending_at": "2026-01-01T00:00:00Z", "offline_hours": 72})).unwrap(),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), "pending");
}

#[tokio::test]
async fn a_ticket_covers_its_share_for_its_device_only() {
    let a = paced();
    let mut d = ready(&a, 1).await;
    let other = ready(&a, 2).await;
    let got = ask(&a, &d, 12, 1, 72).await;
    assert_eq!(got["decision"], "admitted", "{got}");
    let n = got["invoices"].as_u64().unwrap() as usize;
    assert!((1..=9).contains(&n), "{got}");
    let ticket = got["ticket"].as_str().unwrap().to_string();
    let envelopes: Vec<Envelope> = (1..=12)
        .map(|i| d.issue(&ordinary("1", &i.to_string())))
        .collect();
    // Asked again before using it: the same ticket (an answer lost on the way).
    assert_eq!(ask(&a, &d, 12, 1, 72).await["ticket"], ticket.as_str());
    // Before its slot: refused, with the time to send.
    let not_before = chrono::DateTime::parse_from_rfc3339(got["not_before"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let conn = rusqlite::Connection::open(a.db_path()).unwrap();
    conn.execute(
        "UPDATE admission_grants SET not_before_ms = ?2 WHERE ticket = ?1",
        rusqlite::params![ticket, Utc::now().timestamp_millis() + 60_000],
    )
    .unwrap();
    let early = a.call(batch(&envelopes[..n], Some(&ticket))).await;
    assert_eq!(early.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(early.text().contains("slot starts at"), "{}", early.text());
    assert!(
        early.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 59
    );
    // The slot has come (its start moved back to where it was given, and into the past,
    // as time would).
    conn.execute(
        "UPDATE admission_grants SET not_before_ms = ?2 WHERE ticket = ?1",
        rusqlite::params![ticket, not_before.min(Utc::now().timestamp_millis())],
    )
    .unwrap();
    // Its share, under its ticket: every receipt.
    let reply = a.call(batch(&envelopes[..n], Some(&ticket))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let results = reply.json()["results"].as_array().unwrap().clone();
    assert!(results.iter().all(|r| r["status"] == 201), "{results:?}");
    // More than it covers: refused for overload, nothing of it taken.
    let reply = a.call(batch(&envelopes[n..], Some(&ticket))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "overloaded");
    assert_eq!(reply.field(), "Kaipiao-Admission");
    assert!(reply.headers.contains_key("retry-after"));
    // Another device's envelopes under this ticket, and a ticket never given.
    let mut o = other;
    let theirs = o.issue(&ordinary("1", "1"));
    let reply = a
        .call(batch(std::slice::from_ref(&theirs), Some(&ticket)))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.text().contains("another device"), "{}", reply.text());
    let reply = a.call(batch(&[theirs], Some("0123456789abcdef"))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.text().contains("unknown"), "{}", reply.text());
}

#[tokio::test]
async fn ticketless_work_is_refused_while_the_seconds_are_planned_full() {
    let a = paced();
    // 25 devices with backlogs of 9 (a second's budget each) fill the seconds of the
    // horizon; those beyond it wait.
    let mut waiting = 0u64;
    for i in 0..25u8 {
        let d = ready(&a, 10 + i).await;
        if ask(&a, &d, 9, 1, 72).await["decision"] == "waiting" {
            waiting += 9;
        }
    }
    assert!(waiting >= 4 * 9, "{waiting}");
    // The current and next second are planned full too (the moment a test cannot pick).
    let now_s = Utc::now().timestamp();
    let conn = rusqlite::Connection::open(a.db_path()).unwrap();
    for second in now_s..now_s + 2 {
        conn.execute(
            "INSERT INTO admission_seconds (second, planned) VALUES (?1, 9)
             ON CONFLICT (second) DO UPDATE SET planned = 9",
            [second],
        )
        .unwrap();
    }
    let mut legacy = ready(&a, 1).await;
    let envelopes: Vec<Envelope> = (1..=3)
        .map(|i| legacy.issue(&ordinary("1", &i.to_string())))
        .collect();
    let reply = a.call(batch(&envelopes, None)).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.code(), "overloaded");
    // Retry-After from the backlog waiting (what the authority holds as demand: the
    // devices beyond the horizon and the rest of those given part of a second) plus
    // these 3, at 9 a second, not from a token bucket.
    let demand: i64 = conn
        .query_row("SELECT SUM(pending) FROM admission_demand", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(demand as u64 >= waiting, "{demand} < {waiting}");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry,
        ((demand + 3) as f64 / 9.0).ceil() as u64,
        "{}",
        reply.text()
    );
    // One invoice alone is live traffic: the reserve (1 a second) is kept for it even
    // while the backlog's seconds are planned full.
    let reply = a.submit(&envelopes[0]).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

#[tokio::test]
async fn live_traffic_is_taken_without_a_ticket_while_the_second_has_room() {
    let a = paced();
    let mut d = ready(&a, 1).await;
    let e = d.issue(&ordinary("1", "1"));
    assert_eq!(a.submit(&e).await.status, StatusCode::CREATED);
    let e2 = d.issue(&ordinary("1", "2"));
    let e3 = d.issue(&ordinary("1", "3"));
    let reply = a.call(batch(&[e2, e3], None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn a_grant_left_unused_is_reclaimed_and_its_device_keeps_its_place() {
    let a = paced();
    let first = ready(&a, 1).await;
    let second = ready(&a, 2).await;
    let got = ask(&a, &first, 400, 2, 72).await;
    let ticket = got["ticket"].as_str().unwrap().to_string();
    let rest = 400 - got["invoices"].as_u64().unwrap();
    assert_eq!(ask(&a, &second, 40, 1, 72).await["ahead_invoices"], rest);
    // The grant ends unused (its end moved into the past, as time would).
    let conn = rusqlite::Connection::open(a.db_path()).unwrap();
    conn.execute(
        "UPDATE admission_grants SET not_after_ms = 0 WHERE ticket = ?1",
        [&ticket],
    )
    .unwrap();
    // The first device did not come: no room is kept for it any more, and the second
    // is next.
    let next = ask(&a, &second, 40, 1, 72).await;
    assert!(next.get("ahead_invoices").is_none_or(|n| n == 0), "{next}");
    // Back, the first one keeps its place: ahead of the second again, with a new ticket.
    let again = ask(&a, &first, 400, 2, 72).await;
    assert_eq!(again["decision"], "admitted", "{again}");
    assert_ne!(again["ticket"], ticket.as_str());
}

#[tokio::test]
async fn two_authorities_on_one_database_pace_one_backlog() {
    let a = paced();
    let (_, b) = a.sibling_with(|c| c.admission_capacity = Some(10));
    let first = ready(&a, 1).await;
    let second = ready(&a, 2).await;
    let got = ask(&a, &first, 400, 1, 72).await;
    assert_eq!(got["decision"], "admitted");
    let seen = ask_on(&b, &second, 40, 1, 72).await;
    assert_eq!(seen["decision"], "waiting");
    assert_eq!(
        seen["ahead_invoices"],
        400 - got["invoices"].as_u64().unwrap(),
        "{seen}"
    );
}
