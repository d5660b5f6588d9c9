//! taxd's operational surface as the other tests rely on it: the ready line, restarts on
//! the same database and address keeping the authority's identity, the request log format
//! and the admin faults API.

use kaipiao_tests::*;
use serde_json::json;

#[test]
fn taxd_restarts_on_the_same_address_and_keeps_its_identity() {
    let mut taxd = Taxd::start(&[]);
    let url = taxd.url();
    let health = taxd.get("/v1/health");
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["status"], json!("ok"));
    let key = taxd.authority_key();

    taxd.restart();
    assert_eq!(taxd.url(), url);
    assert_eq!(
        taxd.authority_key(),
        key,
        "the signing key lives in --db and survives restarts"
    );
    taxd.kill9();
    taxd.restart();
    assert_eq!(taxd.authority_key(), key, "and survives SIGKILL");

    // An unknown enrolment token.
    let body = json!({"enrollment_token": "wrong", "seller": {"name": "x", "tax_id": seller_tax_id(), "address": "", "bank": ""},
                      "device_name": "d", "public_key": key});
    taxd.post_raw("/v1/devices", &[], body.to_string().into_bytes())
        .expect_error(403, "enrollment_token_invalid");

    let log = taxd.requests();
    assert!(log.len() >= 4, "one line per request: {log:?}");
    for entry in &log {
        for k in ["time", "device", "method", "path", "status"] {
            assert!(
                entry.get(k).is_some(),
                "request log line lacks `{k}`: {entry}"
            );
        }
    }
    assert!(
        log.iter()
            .any(|r| r["path"] == json!("/v1/devices") && r["status"] == json!(403)),
        "{log:?}"
    );
}

#[test]
fn admin_faults_round_trip() {
    let taxd = Taxd::start(&["--fault-error-rate", "0.25", "--fault-delay-ms", "1..3"]);
    let f = taxd.faults();
    assert_eq!(f["error_rate"], json!(0.25), "{f}");
    assert_eq!(f["delay_ms"], json!([1, 3]), "{f}");
    assert_eq!(f["outage"], json!(false), "{f}");
    assert_eq!(f["wrong_signing_key"], json!(false), "{f}");
    assert_eq!(f["malformed_receipt"], json!(0.0), "{f}");
    let want = json!({"drop_after_commit": 0.0, "error_rate": 1.0, "delay_ms": null,
                      "outage": false, "wrong_signing_key": true, "malformed_receipt": 0.5});
    taxd.set_faults(want.clone());
    assert_eq!(taxd.faults(), want);
    taxd.set_faults(json!({"wrong_signing_key": false, "malformed_receipt": 0.0}));
    let r = taxd.get("/v1/health");
    assert_eq!(r.status, 503, "error_rate 1.0 answers 503: {}", r.text());
    taxd.set_faults(
        json!({"drop_after_commit": 0.0, "error_rate": 0.0, "delay_ms": null, "outage": true}),
    );
    assert_ne!(
        taxd.get("/v1/health").status,
        200,
        "an outage answers nothing useful"
    );
    taxd.set_faults(
        json!({"drop_after_commit": 0.0, "error_rate": 0.0, "delay_ms": null, "outage": false}),
    );
    assert_eq!(taxd.get("/v1/health").status, 200);
}

#[test]
fn taxd_refuses_a_rate_flag_it_cannot_serve_instead_of_panicking() {
    // An absurd rate used to start, then panic a handler on the first refusal (a wait of
    // 10^300 seconds does not fit a Duration).
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("taxd.db");
    for (flag, value) in [
        ("--capacity", "1e-300"),
        ("--capacity", "0"),
        ("--device-rate", "1e300"),
        ("--device-rate", "NaN"),
    ] {
        let mut cmd = std::process::Command::new(binary("taxd"));
        cmd.args([
            "--db",
            db.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            flag,
            value,
        ]);
        let out = run_with_deadline(
            cmd,
            format!("taxd {flag} {value}"),
            None,
            std::time::Duration::from_secs(30),
        );
        out.expect_code(2);
        assert!(out.stderr.contains(flag), "names {flag}\n{out}");
        assert!(out.stderr.contains("requests per second"), "{out}");
    }
    assert!(!db.exists(), "nothing was created for a refused start");
}

#[test]
fn an_enrolment_pinned_to_a_fingerprint_trusts_only_that_authority() {
    let taxd = Taxd::start(&[]);
    // taxd prints its key's fingerprint at start, after its ready line (here a second
    // process on the same database: the same authority).
    let mut cmd = std::process::Command::new(binary("taxd"));
    cmd.args([
        "--db",
        taxd.db.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn taxd");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .take(2)
        .map_while(Result::ok)
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let printed = lines
        .get(1)
        .and_then(|l| l.strip_prefix("taxd authority key fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint line: {lines:?}"))
        .to_string();
    let key = kaipiao_core::PublicKey::from_base64(&taxd.authority_key()).expect("key");
    assert_eq!(printed, key.fingerprint());
    assert_eq!(printed.len(), 64);

    // Another fingerprint: refused before anything is sent, nothing enrolled.
    let shop = Shop::init_only();
    let url = taxd.url();
    let enroll = |fingerprint: &str| {
        shop.kaipiao(&[
            "--json",
            "enroll",
            "--server",
            &url,
            "--token",
            TOKEN,
            "--authority-key",
            fingerprint,
        ])
    };
    let out = enroll(&"0".repeat(64));
    out.expect_code(4);
    assert_eq!(
        out.json()["error"]["code"],
        json!("authority_key_mismatch"),
        "{out}"
    );
    assert!(
        out.stderr.contains(&printed),
        "names the key it found\n{out}"
    );
    let status = shop.kaipiao(&["--json", "status"]);
    assert!(status.json()["device_id"].is_null(), "{status}");
    let enrolments = taxd
        .requests()
        .into_iter()
        .filter(|r| r["path"] == json!("/v1/devices"))
        .count();
    assert_eq!(
        enrolments, 0,
        "nothing was sent to an authority it does not trust"
    );
    // Not a fingerprint at all: refused naming the flag.
    let out = enroll("abc");
    out.expect_code(2);
    assert!(out.stderr.contains("--authority-key"), "{out}");

    // The right one (in capitals, as a person may copy it): enrolled.
    let out = enroll(&printed.to_uppercase());
    out.expect_code(0);
    assert_eq!(
        out.json()["authority_public_key"],
        json!(taxd.authority_key())
    );
}
