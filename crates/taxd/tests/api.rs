//! Health, authority key, enrolment, leases, request authentication, admin API, limits.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kaipiao_core::sign::DeviceKey;
use kaipiao_testkit::authority::*;
use kaipiao_testkit::fixtures::{office_supplies as ordinary, seller};
use serde_json::json;
use taxd::{AppState, Config};

#[tokio::test]
async fn health_answers_ok_with_time() {
    let a = Authority::new();
    let r = a.get("/v1/health").await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    let time = v["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 20, "{time}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let a = Authority::new();
    let r = a.get("/v1/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
    let r = a.post_json("/v1/health", &json!({})).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
}

#[tokio::test]
async fn authority_endpoint_gives_the_signing_key() {
    let a = Authority::new();
    let v = a.get("/v1/authority").await.json();
    assert_eq!(v["public_key"], a.state.authority_public_key());
    assert!(v["name"].as_str().unwrap().contains("sandbox"));
}

#[tokio::test]
async fn authority_key_is_stable_on_the_same_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("taxd.db");
    let k1 = AppState::open(Config::new(&db))
        .unwrap()
        .authority_public_key();
    let k2 = AppState::open(Config::new(&db))
        .unwrap()
        .authority_public_key();
    assert_eq!(k1, k2);
    let other = tempfile::tempdir().unwrap();
    let k3 = AppState::open(Config::new(other.path().join("taxd.db")))
        .unwrap()
        .authority_public_key();
    assert_ne!(k1, k3, "a new database gets a new key");
}

#[tokio::test]
async fn enrolment_checks_token_key_and_seller() {
    let a = Authority::new();
    let key = DeviceKey::from_bytes(&[1; 32]);
    let good = json!({
        "enrollment_token": TOKEN,
        "seller": seller(),
        "device_name": "前台",
        "public_key": key.public().to_base64(),
    });
    let r = a.post_json("/v1/devices", &good).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v = r.json();
    let id = v["device_id"].as_str().unwrap();
    let parsed = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(parsed.hyphenated().to_string(), id);
    assert_eq!(v["authority_public_key"], a.state.authority_public_key());

    // The token is reusable: another device enrols with it. (The same request again is
    // the same device: the_same_enrolment_again_is_the_same_device.)
    let mut second = good.clone();
    second["public_key"] = json!(DeviceKey::from_bytes(&[11; 32]).public().to_base64());
    let r2 = a.post_json("/v1/devices", &second).await;
    assert_eq!(r2.status, StatusCode::CREATED);
    assert_ne!(r2.json()["device_id"], v["device_id"]);

    let mut bad = good.clone();
    bad["enrollment_token"] = json!("guess");
    let r = a.post_json("/v1/devices", &bad).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "enrollment_token_invalid");

    let mut bad = good.clone();
    bad["public_key"] = json!("AAAA");
    let r = a.post_json("/v1/devices", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (r.code(), r.field()),
        ("invalid_request".into(), "public_key".into())
    );

    let mut bad = good.clone();
    bad["seller"]["tax_id"] = json!("91110108MA01ABCD10");
    let r = a.post_json("/v1/devices", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.field(), "seller.tax_id");

    let mut bad = good.clone();
    bad["seller"]["nickname"] = json!("x");
    let r = a.post_json("/v1/devices", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.field().starts_with("seller"), "{}", r.field());

    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("device_name");
    let r = a.post_json("/v1/devices", &bad).await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, "device_name".into())
    );

    let r = a
        .call(
            Request::post("/v1/devices")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

#[tokio::test]
async fn leases_are_signed_and_ranges_continue() {
    let a = Authority::with(|c| c.lease_size = 50);
    let mut d = a.enroll(2).await;
    let mut other = a.enroll(3).await;
    let l1 = a.lease(&mut d).await;
    let l2 = a.lease(&mut d).await;
    let o1 = a.lease(&mut other).await;
    for l in [&l1, &l2, &o1] {
        l.verify(&a.authority_key()).unwrap();
        l.terms().unwrap();
        assert!(l.granted_at.ends_with('Z') && l.granted_at.len() == 20);
        assert_eq!(l.offline_hours, 72);
        assert_eq!(l.offline_amount_cap, "1000000.00");
        assert_eq!(l.single_invoice_cap, "100000.00");
    }
    assert_eq!((l1.first, l1.last), (1, 50));
    assert_eq!((l2.first, l2.last), (51, 100));
    assert_eq!((o1.first, o1.last), (1, 50));
    assert_eq!(l1.prefix, l2.prefix);
    assert_ne!(l1.prefix, o1.prefix);
    assert_eq!(l1.prefix.len(), 12);
    assert!(l1.prefix.starts_with("26"));
    assert_eq!(l1.device_id, d.id);
    assert_ne!(l1.lease_id, l2.lease_id);

    // Another process on the database (with the default lease size) continues the range.
    let (_, b) = a.sibling();
    let r = call(&b, d.signed(Method::POST, "/v1/leases", b"{}".to_vec())).await;
    let l3: kaipiao_core::lease::Lease = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((l3.first, l3.last), (101, 1100));

    // An empty body is taken as {}; a non-object is refused.
    let r = a
        .call(d.signed(Method::POST, "/v1/leases", Vec::new()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = a
        .call(d.signed(Method::POST, "/v1/leases", b"[1]".to_vec()))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn request_authentication() {
    let a = Authority::new();
    let d = a.enroll(4).await;
    let head_path = format!("/v1/devices/{}/head", d.id);

    let r = a.call(d.signed(Method::GET, &head_path, Vec::new())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"seq": 0, "hash": kaipiao_core::ZERO_HASH}));

    // Clock skew: server_time tells the client how far off it is.
    let old = chrono::Utc::now().timestamp() - 301;
    let r = a
        .call(d.signed_at(Method::GET, &head_path, Vec::new(), old))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "clock_skew".into())
    );
    let server_time = r.json()["error"]["server_time"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(kaipiao_core::time::parse_rfc3339(&server_time).is_some());
    let near = chrono::Utc::now().timestamp() - 290;
    let r = a
        .call(d.signed_at(Method::GET, &head_path, Vec::new(), near))
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Unknown device.
    let mut stranger = a.enroll(5).await;
    stranger.id = uuid::Uuid::new_v4().to_string();
    let r = a
        .call(stranger.signed(
            Method::GET,
            &format!("/v1/devices/{}/head", stranger.id),
            Vec::new(),
        ))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unknown_device".into())
    );

    // Bad signature: another key under this device's id.
    let mut forger = a.enroll(6).await;
    forger.id = d.id.clone();
    let r = a
        .call(forger.signed(Method::GET, &head_path, Vec::new()))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "bad_request_signature".into())
    );

    // Missing headers.
    let r = a.get(&head_path).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "bad_request_signature".into())
    );

    // The query string is part of what is signed.
    let with_query = format!("{head_path}?probe=1");
    let r = a.call(d.signed(Method::GET, &with_query, Vec::new())).await;
    assert_eq!(r.status, StatusCode::OK);
    let ts = chrono::Utc::now().timestamp();
    let sig = kaipiao_core::sign::sign_request(&d.key, "GET", &head_path, ts, b"");
    let r = a
        .call(
            Request::get(&with_query)
                .header("Kaipiao-Device", &d.id)
                .header("Kaipiao-Timestamp", ts.to_string())
                .header("Kaipiao-Signature", sig)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.code(), "bad_request_signature");

    // The body is signed too.
    let mut req = d.signed(Method::POST, "/v1/leases", b"{}".to_vec());
    *req.body_mut() = Body::from("{ }");
    let r = a.call(req).await;
    assert_eq!(r.code(), "bad_request_signature");

    // Another device's head is forbidden.
    let e = a.enroll(7).await;
    let r = a.call(e.signed(Method::GET, &head_path, Vec::new())).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
}

#[tokio::test]
async fn admin_api_is_loopback_only_and_changes_faults() {
    let a = Authority::with(|c| {
        c.fault_delay_ms = Some(taxd::DelayRange {
            min_ms: 0,
            max_ms: 0,
        })
    });
    let r = a.get("/admin/faults").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"drop_after_commit": 0.0, "error_rate": 0.0, "delay_ms": [0, 0], "outage": false,
               "wrong_signing_key": false, "malformed_receipt": 0.0})
    );

    let remote = app(a.state.clone(), [10, 1, 2, 3]);
    let r = call(
        &remote,
        Request::get("/admin/faults").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let r = call(
        &remote,
        Request::put("/admin/faults")
            .body(Body::from(r#"{"outage":true}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!a.state.faults().outage);

    let put = |body: &str| {
        Request::put("/admin/faults")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let r = a.call(put(r#"{"outage": true, "delay_ms": null}"#)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["outage"], true);
    assert_eq!(r.json()["delay_ms"], json!(null));

    // Every /v1 request now answers 503 outage, at once and without Retry-After.
    for path in ["/v1/health", "/v1/authority"] {
        let r = a.get(path).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "outage".into())
        );
        assert!(r.headers.get("retry-after").is_none());
    }
    // The admin API still answers.
    let r = a.call(put(r#"{"outage": false, "error_rate": 1}"#)).await;
    assert_eq!(r.json()["error_rate"], 1.0);
    let r = a.get("/v1/health").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(r.code(), "outage");

    let r = a.call(put(r#"{"error_rate": 1.5}"#)).await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, "error_rate".into())
    );
    let r = a
        .call(put(r#"{"error_rate": 0, "delay_ms": [1, 2]}"#))
        .await;
    assert_eq!(r.json()["delay_ms"], json!([1, 2]));
    assert_eq!(a.get("/v1/health").await.status, StatusCode::OK);

    // The receipt faults, with the same partial-update validation.
    let r = a
        .call(put(
            r#"{"wrong_signing_key": true, "malformed_receipt": 0.5}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"drop_after_commit": 0.0, "error_rate": 0.0, "delay_ms": [1, 2], "outage": false,
               "wrong_signing_key": true, "malformed_receipt": 0.5})
    );
    for (body, field) in [
        (r#"{"wrong_signing_key": "yes"}"#, "wrong_signing_key"),
        (
            r#"{"malformed_receipt": 2, "outage": true}"#,
            "malformed_receipt",
        ),
        (r#"{"malformed_receipt": null}"#, "malformed_receipt"),
    ] {
        let r = a.call(put(body)).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (
                StatusCode::BAD_REQUEST,
                "invalid_request".into(),
                field.into()
            ),
            "{body}"
        );
    }
    assert!(!a.state.faults().outage, "a refused update changes nothing");
    let r = a.call(put(r#"{"wrong_signing_kee": false}"#)).await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::BAD_REQUEST, "wrong_signing_kee".into())
    );
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    for name in [
        "drop_after_commit",
        "error_rate",
        "delay_ms",
        "outage",
        "wrong_signing_key",
        "malformed_receipt",
    ] {
        assert!(message.contains(name), "{message}");
    }
    let r = a
        .call(put(
            r#"{"wrong_signing_key": false, "malformed_receipt": 0}"#,
        ))
        .await;
    assert_eq!(r.json()["wrong_signing_key"], false);
    assert_eq!(r.json()["malformed_receipt"], 0.0);
}

#[tokio::test]
async fn capacity_answers_overloaded_with_retry_after() {
    let a = Authority::with(|c| c.capacity = Some(1.0));
    assert_eq!(a.get("/v1/authority").await.status, StatusCode::OK);
    let r = a.get("/v1/authority").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded".into())
    );
    let secs: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs >= 1);
    // Health is never throttled: it is how clients find out the server is back.
    assert_eq!(a.get("/v1/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn device_rate_answers_rate_limited() {
    let a = Authority::with(|c| c.device_rate = Some(2.0));
    let d = a.enroll(8).await;
    let e = a.enroll(9).await;
    let path = format!("/v1/devices/{}/head", d.id);
    assert_eq!(
        a.call(d.signed(Method::GET, &path, Vec::new()))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        a.call(d.signed(Method::GET, &path, Vec::new()))
            .await
            .status,
        StatusCode::OK
    );
    let r = a.call(d.signed(Method::GET, &path, Vec::new())).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    assert_eq!(r.headers["retry-after"], "1");
    // Another device is not affected.
    let path_e = format!("/v1/devices/{}/head", e.id);
    assert_eq!(
        a.call(e.signed(Method::GET, &path_e, Vec::new()))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn request_log_has_one_json_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let a = Authority::with(|c| c.request_log = Some(log.clone()));
    let mut d = a.enroll(10).await;
    a.lease(&mut d).await;
    let env = d.issue(&ordinary("1", "10"));
    assert_eq!(a.submit(&env).await.status, StatusCode::CREATED);
    a.get("/v1/health?x=1").await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    let keys: Vec<&str> = text
        .lines()
        .next()
        .unwrap()
        .split('"')
        .skip(1)
        .step_by(4)
        .collect();
    assert_eq!(keys, ["time", "device", "method", "path", "status"]);
    assert_eq!(lines[0]["device"], "");
    assert_eq!(lines[0]["status"], 201);
    assert_eq!(lines[1]["device"], d.id.as_str());
    assert_eq!(lines[1]["path"], "/v1/leases");
    assert_eq!(
        lines[2]["device"],
        d.id.as_str(),
        "a submission logs the envelope's device"
    );
    assert_eq!(lines[2]["method"], "POST");
    assert_eq!(lines[3]["path"], "/v1/health?x=1");
    assert_eq!(lines[3]["status"], 200);
    assert!(
        lines.iter().all(|l| l.get("retry_after").is_none()),
        "no Retry-After, no field: {text}"
    );
}

#[tokio::test]
async fn request_log_names_the_retry_after_sent() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.jsonl");
    let a = Authority::with(|c| {
        c.request_log = Some(log.clone());
        c.device_rate = Some(0.25);
    });
    let d = a.enroll(11).await;
    let path = format!("/v1/devices/{}/head", d.id);
    assert_eq!(
        a.call(d.signed(Method::GET, &path, Vec::new()))
            .await
            .status,
        StatusCode::OK
    );
    let r = a.call(d.signed(Method::GET, &path, Vec::new())).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let sent: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["status"], 429, "{text}");
    assert_eq!(last["device"], d.id.as_str());
    assert_eq!(last["retry_after"], sent, "{text}");
    assert!(
        lines[lines.len() - 2].get("retry_after").is_none(),
        "{text}"
    );
}

#[tokio::test]
async fn lease_requests_are_idempotent_and_capped() {
    let a = Authority::with(|c| c.lease_size = 10);
    let mut d = a.enroll(4).await;
    let ask = |d: &Device, id: Option<&str>| {
        let body = match id {
            Some(id) => json!({ "request_id": id }).to_string().into_bytes(),
            None => b"{}".to_vec(),
        };
        d.signed(Method::POST, "/v1/leases", body)
    };
    let lease = |r: &Reply| -> kaipiao_core::lease::Lease {
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        serde_json::from_slice(&r.body).unwrap()
    };
    // The same request id again (a retry after a lost answer): the same lease.
    let first = lease(&a.call(ask(&d, Some("req-1"))).await);
    let again = lease(&a.call(ask(&d, Some("req-1"))).await);
    assert_eq!(again, first);
    assert_eq!((first.first, first.last), (1, 10));
    // Another id, or none: the next block, up to the cap of unexhausted leases.
    let second = lease(&a.call(ask(&d, Some("req-2"))).await);
    assert_eq!((second.first, second.last), (11, 20));
    let third = lease(&a.call(ask(&d, None)).await);
    assert_eq!((third.first, third.last), (21, 30));
    assert_eq!(taxd::MAX_UNEXHAUSTED_LEASES, 3);
    // At the cap: the newest unexhausted lease again, however often it is asked (a
    // replayed request cannot use up the device's numbers).
    for id in [None, Some("req-3"), Some("req-4")] {
        assert_eq!(lease(&a.call(ask(&d, id)).await), third);
    }
    // Once the authority has the last number of a lease, that lease no longer counts.
    d.leases = vec![first.clone()];
    for _ in 0..10 {
        let env = d.issue(&ordinary("1", "1"));
        assert_eq!(a.submit(&env).await.status, StatusCode::CREATED);
    }
    let fourth = lease(&a.call(ask(&d, Some("req-5"))).await);
    assert_eq!((fourth.first, fourth.last), (31, 40));
    // A request id that is not a short string is refused, naming it.
    for bad in [
        json!({"request_id": 7}),
        json!({"request_id": ""}),
        json!({"request_id": "x".repeat(101)}),
    ] {
        let r = a
            .call(d.signed(Method::POST, "/v1/leases", bad.to_string().into_bytes()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&r.body).contains("request_id"));
    }
}

#[tokio::test]
async fn a_superseding_lease_request_gives_up_the_old_leases_and_gets_a_new_block() {
    let a = Authority::with(|c| c.lease_size = 10);
    let d = a.enroll(4).await;
    let ask = |d: &Device, body: serde_json::Value| {
        d.signed(Method::POST, "/v1/leases", body.to_string().into_bytes())
    };
    let lease = |r: &Reply| -> kaipiao_core::lease::Lease {
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        serde_json::from_slice(&r.body).unwrap()
    };
    for _ in 0..3 {
        lease(&a.call(ask(&d, json!({}))).await);
    }
    // At the cap, a plain request gets the newest lease again: after a restore that
    // would be numbers a lost copy of the device may have used.
    let again = lease(&a.call(ask(&d, json!({}))).await);
    assert_eq!((again.first, again.last), (21, 30));
    // Superseding: a block past every lease granted, repeated with its id the same one.
    let fresh = lease(
        &a.call(ask(&d, json!({"request_id": "r-1", "supersede": true})))
            .await,
    );
    assert_eq!((fresh.first, fresh.last), (31, 40));
    let repeat = lease(
        &a.call(ask(&d, json!({"request_id": "r-1", "supersede": true})))
            .await,
    );
    assert_eq!(repeat, fresh);
    // The given-up leases no longer count against the cap: two more plain blocks.
    let next = lease(&a.call(ask(&d, json!({}))).await);
    assert_eq!((next.first, next.last), (41, 50));
    let r = a.call(ask(&d, json!({"supersede": "yes"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&r.body).contains("supersede"));
}

#[tokio::test]
async fn the_same_enrolment_again_is_the_same_device() {
    let a = Authority::new();
    let key = DeviceKey::from_bytes(&[5; 32]);
    let body = json!({
        "enrollment_token": TOKEN,
        "seller": seller(),
        "device_name": "前台",
        "public_key": key.public().to_base64(),
    });
    let first = a.post_json("/v1/devices", &body).await;
    let again = a.post_json("/v1/devices", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(first.json()["device_id"], again.json()["device_id"]);
    // Another name is another enrolment.
    let mut renamed = body.clone();
    renamed["device_name"] = json!("后台");
    let other = a.post_json("/v1/devices", &renamed).await;
    assert_ne!(first.json()["device_id"], other.json()["device_id"]);
}

#[tokio::test]
async fn a_replayed_device_request_is_refused() {
    let a = Authority::with(|c| c.lease_size = 10);
    let d = a.enroll(6).await;
    let ts = chrono::Utc::now().timestamp();
    // With a nonce: the same bytes twice, the second refused; a new nonce is a new request.
    let nonce = uuid::Uuid::new_v4().to_string();
    let once = || d.signed_with(Method::POST, "/v1/leases", b"{}".to_vec(), ts, Some(&nonce));
    assert_eq!(a.call(once()).await.status, StatusCode::CREATED);
    let again = a.call(once()).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.code(), "replayed_request");
    let fresh = a
        .call(d.signed_with(
            Method::POST,
            "/v1/leases",
            b"{}".to_vec(),
            ts,
            Some(&uuid::Uuid::new_v4().to_string()),
        ))
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    // Without a nonce (an older client): accepted once, replay-checked by its signature.
    let bare = || {
        d.signed_with(
            Method::GET,
            &format!("/v1/devices/{}/head", d.id),
            Vec::new(),
            ts,
            None,
        )
    };
    assert_eq!(a.call(bare()).await.status, StatusCode::OK);
    assert_eq!(a.call(bare()).await.code(), "replayed_request");
    // Another process on the same database refuses it too.
    let (_, b) = a.sibling();
    assert_eq!(call(&b, once()).await.code(), "replayed_request");
    // The nonce is signed: the same signature with another nonce does not verify, and a
    // nonce that is not a UUID is refused naming the header.
    let mut swapped = once();
    swapped.headers_mut().insert(
        "Kaipiao-Nonce",
        uuid::Uuid::new_v4().to_string().parse().unwrap(),
    );
    assert_eq!(a.call(swapped).await.code(), "bad_request_signature");
    let odd = a
        .call(d.signed_with(
            Method::POST,
            "/v1/leases",
            b"{}".to_vec(),
            ts,
            Some("not-a-uuid"),
        ))
        .await;
    assert_eq!(odd.code(), "bad_request_signature");
    assert!(String::from_utf8_lossy(&odd.body).contains("Kaipiao-Nonce"));
}
