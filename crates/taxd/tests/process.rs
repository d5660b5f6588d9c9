//! Real connections and the real binary: the listening line, SIGTERM, exit codes for bad
//! flags, the admin API's loopback check through a socket, and drop-after-commit as a
//! real HTTP client sees it.

use kaipiao_testkit::authority::*;
use kaipiao_testkit::fixtures::office_supplies as ordinary;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use taxd::{serve_state, AppState, Config};
use tokio::sync::oneshot;

/// Serves `state` on 127.0.0.1:0; returns the base URL and a shutdown trigger.
async fn listen(state: AppState) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve_state(state, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (format!("http://{addr}"), tx, task)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn drop_after_commit_is_a_transport_error_and_the_retry_replays() {
    let a = Authority::with(|c| c.fault_drop_after_commit = 1.0);
    let mut d = a.enroll(1).await;
    a.lease(&mut d).await;
    let (base, stop, task) = listen(a.state.clone()).await;
    let http = client();

    let env = d.issue(&ordinary("1", "10"));
    let body = serde_json::to_vec(&env).unwrap();
    let key = kaipiao_core::wire::idempotency_header(&env.invoice.id);
    let sent = http
        .post(format!("{base}/v1/invoices"))
        .header("Idempotency-Key", &key)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await;
    let err = sent.expect_err("the connection must drop before any response");
    assert!(!err.is_timeout(), "{err:?}");

    // It was committed all the same: the head moved.
    let faults = http
        .get(format!("{base}/admin/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status(), 200);
    let put = http
        .put(format!("{base}/admin/faults"))
        .json(&serde_json::json!({"drop_after_commit": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let retry = http
        .post(format!("{base}/v1/invoices"))
        .header("Idempotency-Key", &key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let receipt: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(receipt["status"], "accepted");

    // A batch that commits is dropped the same way.
    a.state.set_faults(taxd::Faults {
        drop_after_commit: 1.0,
        ..a.state.faults()
    });
    let env2 = d.issue(&ordinary("1", "2"));
    let batch =
        serde_json::json!({"items": [{"idempotency_key": env2.invoice.id, "envelope": env2}]});
    let sent = http
        .post(format!("{base}/v1/invoices:batch"))
        .json(&batch)
        .send()
        .await;
    assert!(sent.is_err());
    // ...but a replay commits nothing and is answered.
    let sent = http
        .post(format!("{base}/v1/invoices:batch"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);

    let _ = stop.send(());
    task.await.unwrap();
}

#[test]
fn binary_prints_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_taxd"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("taxd.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("taxd listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let health = rt.block_on(async {
        client()
            .get(format!("http://{addr}/v1/health"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    assert_eq!(health["status"], "ok");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("taxd.db");
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (vec!["--lease-size".into(), "zero".into()], "--lease-size"),
        (
            vec!["--fault-error-rate".into(), "2".into()],
            "--fault-error-rate",
        ),
        (
            vec!["--fault-delay-ms".into(), "9..1".into()],
            "--fault-delay-ms",
        ),
        (
            vec!["--fault-malformed-receipt".into(), "-0.5".into()],
            "--fault-malformed-receipt",
        ),
        (
            vec!["--offline-amount-cap".into(), "lots".into()],
            "--offline-amount-cap",
        ),
        (vec!["--device-rate".into(), "-1".into()], "--device-rate"),
    ];
    for (args, flag) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_taxd"))
            .arg("--db")
            .arg(&db)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_taxd"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("no/such/dir/taxd.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--db"));
}

#[tokio::test]
async fn serve_opens_the_state_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path().join("taxd.db"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(taxd::serve(config, listener));
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = client()
            .get(format!("http://{addr}/v1/health"))
            .send()
            .await
        {
            ok = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok);
    server.abort();
}
