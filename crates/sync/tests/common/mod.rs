//! Test helpers: a real `taxd` process on loopback, a real ledger in a temp directory,
//! and a scripted HTTP server that misbehaves in front of taxd.
#![allow(dead_code)]

use chrono::Utc;
use kaipiao_core::draft::{Draft, DraftLine};
use kaipiao_core::sign::sign_request;
use kaipiao_core::taxid::check_digit;
use kaipiao_core::wire::{HEADER_DEVICE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use kaipiao_core::{DeviceKey, Party};
use kaipiao_ledger::{Issued, KeySource, Ledger};
use kaipiao_sync::{Progress, SyncOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "sync-test-token";
pub const PASSPHRASE: &str = "correct horse battery staple";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The taxd binary, built once per test binary so the tests run against the current
/// source (`cargo test -p kaipiao-sync` does not build other packages' binaries).
pub fn taxd_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let bin = target.join("debug").join("taxd");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "--quiet", "-p", "taxd"])
            .current_dir(workspace_root())
            .status();
        assert!(
            bin.exists(),
            "taxd binary missing at {} (build: {built:?}); run `cargo build -p taxd`",
            bin.display()
        );
        bin
    })
    .clone()
}

/// A taxd process on 127.0.0.1 with its own database; killed when dropped.
pub struct Taxd {
    child: Child,
    pub url: String,
    pub db: PathBuf,
    _dir: Option<TempDir>,
}

impl Taxd {
    pub fn start(extra: &[&str]) -> Taxd {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("taxd.db");
        let mut t = Taxd::start_on(&db, extra);
        t._dir = Some(dir);
        t
    }

    /// Starts on an existing (or new) database file; waits for the "listening" line.
    pub fn start_on(db: &Path, extra: &[&str]) -> Taxd {
        Taxd::start_at(db, "127.0.0.1:0", extra)
    }

    /// Like [`Taxd::start_on`], on a given address (to restart a server where it was).
    pub fn start_at(db: &Path, listen: &str, extra: &[&str]) -> Taxd {
        let mut child = Command::new(taxd_bin())
            .args(["--listen", listen, "--db"])
            .arg(db)
            .args(["--enrollment-token", TOKEN])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout);
        let mut url = None;
        let mut line = String::new();
        while lines.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(rest) = line.trim().strip_prefix("taxd listening on ") {
                url = Some(rest.to_string());
                break;
            }
            line.clear();
        }
        let Some(url) = url else {
            let _ = child.kill();
            panic!("taxd exited without printing its address");
        };
        // Keep draining stdout so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink);
        });
        Taxd {
            child,
            url,
            db: db.to_path_buf(),
            _dir: None,
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `PUT /admin/faults`.
    pub async fn faults(&self, update: serde_json::Value) {
        let r = reqwest::Client::new()
            .put(format!("{}/admin/faults", self.url))
            .json(&update)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "admin faults: {}", r.status());
    }
}

impl Drop for Taxd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A valid 18-character unified social credit code.
pub fn tax_id(body17: &str) -> String {
    format!("{body17}{}", check_digit(body17).unwrap())
}

pub fn seller() -> Party {
    Party {
        name: "同步测试商贸有限公司".into(),
        tax_id: tax_id("91310115MA1H7GXQ2"),
        address: "上海市浦东新区".into(),
        bank: String::new(),
    }
}

/// A device with a real ledger in a temp directory.
pub struct Device {
    pub dir: TempDir,
    pub ledger: Ledger,
    pub key: DeviceKey,
}

impl Device {
    pub fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let keys = KeySource::with_passphrase(PASSPHRASE);
        ledger.init(&seller(), "柜台一", &keys, Utc::now()).unwrap();
        let key = ledger.unseal_key(&keys).unwrap();
        Device { dir, ledger, key }
    }

    /// Opens a copy of this device's data directory (an old backup of the ledger).
    pub fn copy(&self) -> Device {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
        }
        let ledger = Ledger::open(dir.path()).unwrap();
        let key = ledger
            .unseal_key(&KeySource::with_passphrase(PASSPHRASE))
            .unwrap();
        Device { dir, ledger, key }
    }

    pub async fn enroll(&self, taxd: &Taxd) -> kaipiao_sync::EnrollOutcome {
        kaipiao_sync::enroll(
            &self.ledger,
            &self.key,
            std::slice::from_ref(&taxd.url),
            TOKEN,
            &SyncOptions::default(),
        )
        .await
        .unwrap()
    }

    pub fn issue(&self, n: usize) -> Vec<Issued> {
        (0..n)
            .map(|i| self.ledger.issue(&draft(i), &self.key, Utc::now()).unwrap())
            .collect()
    }

    pub fn device_id(&self) -> String {
        self.ledger.device().unwrap().unwrap().device_id.unwrap()
    }

    pub fn pending(&self) -> u64 {
        self.ledger.status(Utc::now()).unwrap().pending
    }
}

pub fn draft(i: usize) -> Draft {
    Draft {
        kind: "ordinary".into(),
        buyer: Party {
            name: format!("买方{i}"),
            ..Party::default()
        },
        lines: vec![DraftLine {
            name: "办公用品".into(),
            quantity: format!("{}", i + 1),
            unit_price: "12.5".into(),
            tax_rate: "0.13".into(),
            ..DraftLine::default()
        }],
        price_includes_tax: false,
        original: None,
        remarks: String::new(),
        issuer: "王会计".into(),
    }
}

pub fn opts(give_up_secs: u64) -> SyncOptions {
    SyncOptions {
        give_up_after: Duration::from_secs(give_up_secs),
        ..SyncOptions::default()
    }
}

/// How the relay submits: one `POST /v1/invoices` per invoice, or batches (the default).
/// Tests of per-answer behaviour run in both, with the same expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Single,
    Batched,
}

impl Mode {
    pub fn opts(self, give_up_secs: u64) -> SyncOptions {
        SyncOptions {
            batch_size: match self {
                Mode::Single => 0,
                Mode::Batched => kaipiao_sync::DEFAULT_BATCH_SIZE,
            },
            ..opts(give_up_secs)
        }
    }
}

/// Generates `single::name` and `batched::name` tests from `async fn name(mode: Mode)`.
#[macro_export]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Mode::Single).await
                }
            )*
        }
        mod batched {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Mode::Batched).await
                }
            )*
        }
    };
}

/// Collects progress events.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<Progress>>>);

impl Events {
    pub fn sink(&self) -> impl Fn(Progress) + Send + Sync {
        let events = self.0.clone();
        move |p| events.lock().unwrap().push(p)
    }

    pub fn all(&self) -> Vec<Progress> {
        self.0.lock().unwrap().clone()
    }
}

/// A device-signed GET, as a third party checking the authority would do it.
pub async fn signed_get(base: &str, path: &str, device: &Device) -> (u16, String) {
    let ts = Utc::now().timestamp();
    let sig = sign_request(&device.key, "GET", path, ts, b"");
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header(HEADER_DEVICE, device.device_id())
        .header(HEADER_TIMESTAMP, ts.to_string())
        .header(HEADER_SIGNATURE, sig)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// A free loopback port with nothing listening on it.
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// A request as the scripted server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// An invoice submission, alone or in a batch.
    pub fn is_submission(&self) -> bool {
        self.method == "POST" && (self.path == "/v1/invoices" || self.is_batch())
    }

    pub fn is_batch(&self) -> bool {
        self.method == "POST" && self.path == "/v1/invoices:batch"
    }

    /// The submitted items as `(idempotency key, envelope bytes as sent)`: the header and
    /// body of a lone submission, or each item of a batch.
    pub fn items(&self) -> Vec<(String, Vec<u8>)> {
        #[derive(serde::Deserialize)]
        struct Batch {
            items: Vec<BatchItem>,
        }
        #[derive(serde::Deserialize)]
        struct BatchItem {
            idempotency_key: String,
            envelope: Box<serde_json::value::RawValue>,
        }
        if self.is_batch() {
            return serde_json::from_slice::<Batch>(&self.body)
                .map(|b| {
                    b.items
                        .into_iter()
                        .map(|i| (i.idempotency_key, i.envelope.get().as_bytes().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
        }
        let key = self
            .header("idempotency-key")
            .map(|k| k.trim_matches('"').to_string())
            .unwrap_or_default();
        vec![(key, self.body.clone())]
    }
}

/// What the scripted server does with one request.
pub enum Act {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Forward to the upstream taxd and relay its answer.
    Proxy,
    /// Wait, then forward (the client may have timed out by then).
    ProxyAfter(Duration),
    /// Forward, then close the connection without answering: committed, outcome unknown.
    ProxyThenDrop,
    /// Close the connection without answering (after reading the request).
    Drop,
    /// Forward, then answer with what `edit` makes of taxd's status and body.
    ProxyThen(Edit),
}

pub type Edit = Box<dyn FnOnce(u16, String) -> (u16, String) + Send>;

impl Act {
    pub fn json(status: u16, body: serde_json::Value) -> Act {
        Act::Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn error(status: u16, code: &str, extra: serde_json::Value) -> Act {
        Act::json(status, Act::error_body(code, extra))
    }

    /// The error body of [`Act::error`], for one item of a batch.
    pub fn error_body(code: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut error =
            serde_json::json!({"code": code, "message": format!("scripted {code}"), "field": ""});
        if let (Some(e), Some(x)) = (error.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                e.insert(k.clone(), v.clone());
            }
        }
        serde_json::json!({ "error": error })
    }

    /// Answers every submitted item with `answer(envelope bytes)` = (status, body): alone,
    /// as that answer; in a batch, as a 200 whose results are those answers.
    pub fn each_item(req: &Req, answer: impl Fn(&[u8]) -> (u16, serde_json::Value)) -> Act {
        if !req.is_batch() {
            let (status, body) = answer(&req.body);
            return Act::json(status, body);
        }
        let results: Vec<serde_json::Value> = req
            .items()
            .iter()
            .map(|(key, envelope)| {
                let (status, body) = answer(envelope);
                serde_json::json!({"idempotency_key": key, "status": status, "body": body})
            })
            .collect();
        Act::json(200, serde_json::json!({ "results": results }))
    }
}

pub type Script = Arc<dyn Fn(&Req, usize) -> Act + Send + Sync>;

/// True for the first request that `matches`, false for every other one (per script, so
/// tests running in one process do not share it).
pub fn once_for(matches: fn(&Req) -> bool) -> impl Fn(&Req) -> bool + Send + Sync {
    let seen = std::sync::atomic::AtomicBool::new(false);
    move |req| matches(req) && !seen.swap(true, std::sync::atomic::Ordering::SeqCst)
}

/// An HTTP/1.1 server on loopback that answers by a script, forwarding to taxd when
/// told to. Records requests; every connection is `Connection: close`.
pub struct Scripted {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    pub async fn start(upstream: Option<String>, script: Script) -> Scripted {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Req>>> = Arc::default();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (seen, script, http, upstream) = (
                    seen2.clone(),
                    script.clone(),
                    http.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    serve_one(sock, seen, script, http, upstream).await;
                });
            }
        });
        Scripted { url, seen, task }
    }

    pub fn requests(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }

    pub fn submissions(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(Req::is_submission)
            .collect()
    }
}

async fn serve_one(
    mut sock: tokio::net::TcpStream,
    seen: Arc<Mutex<Vec<Req>>>,
    script: Script,
    http: reqwest::Client,
    upstream: Option<String>,
) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    let n = {
        let mut s = seen.lock().unwrap();
        s.push(req.clone());
        s.len() - 1
    };
    let (status, headers, body) = match script(&req, n) {
        Act::Drop => return,
        Act::Reply {
            status,
            headers,
            body,
        } => (status, headers, body),
        Act::Proxy => match proxy(&http, upstream.as_deref(), &req).await {
            Some(r) => r,
            None => return,
        },
        Act::ProxyAfter(d) => {
            tokio::time::sleep(d).await;
            match proxy(&http, upstream.as_deref(), &req).await {
                Some(r) => r,
                None => return,
            }
        }
        Act::ProxyThenDrop => {
            let _ = proxy(&http, upstream.as_deref(), &req).await;
            return;
        }
        Act::ProxyThen(edit) => match proxy(&http, upstream.as_deref(), &req).await {
            Some((status, headers, body)) => {
                let (status, body) = edit(status, body);
                (status, headers, body)
            }
            None => return,
        },
    };
    let mut head = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body.as_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn proxy(
    http: &reqwest::Client,
    upstream: Option<&str>,
    req: &Req,
) -> Option<(u16, Vec<(String, String)>, String)> {
    let up = upstream?;
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).ok()?;
    let mut r = http.request(method, format!("{up}{}", req.path));
    for (k, v) in &req.headers {
        let lk = k.to_ascii_lowercase();
        if lk != "host" && lk != "content-length" && lk != "connection" {
            r = r.header(k.as_str(), v.as_str());
        }
    }
    let resp = r.body(req.body.clone()).send().await.ok()?;
    let status = resp.status().as_u16();
    let mut headers = Vec::new();
    for (k, v) in resp.headers() {
        let lk = k.as_str();
        if lk != "content-length" && lk != "connection" && lk != "transfer-encoding" {
            headers.push((k.to_string(), v.to_str().unwrap_or("").to_string()));
        }
    }
    let body = resp.text().await.ok()?;
    Some((status, headers, body))
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req {
        method,
        path,
        headers,
        body,
        at: std::time::Instant::now(),
    })
}
