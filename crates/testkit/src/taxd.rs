//! The taxd-process harness: a real `taxd` binary on a free loopback port with a temp
//! `--db` and request log, restarted or crashed on demand, its admin faults API, raw HTTP
//! against it, what it logged and what its database holds.

use crate::process::{binary, exit_code, run_with_deadline, scrub_env, signal, unix_now};
use crate::process::{COMMAND_DEADLINE, POLL};
use kaipiao_core::DeviceKey;
use serde_json::Value;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// The reusable enrollment token every test taxd process accepts.
pub const TOKEN: &str = "e2e-enrollment-token";
/// How long taxd may take to print its ready line.
pub const TAXD_READY_DEADLINE: Duration = Duration::from_secs(30);

/// A raw HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// `error.code` of an error body, if any.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .pointer("/error/code")?
            .as_str()
            .map(str::to_string)
    }

    /// Asserts status and error code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            (self.status, self.error_code().as_deref()),
            (status, Some(code)),
            "expected {status} `{code}`, got {} {}",
            self.status,
            self.text()
        );
        self.json()
    }
}

fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

fn send(rb: reqwest::blocking::RequestBuilder) -> Resp {
    let r = rb
        .send()
        .unwrap_or_else(|e| panic!("HTTP request failed: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

/// A real `taxd` on loopback, on a temp-dir database (or a given one). Killed when dropped.
pub struct Taxd {
    dir: tempfile::TempDir,
    pub db: PathBuf,
    /// `--request-log`: the one given in the flags, or one in the temp dir.
    pub request_log: PathBuf,
    stderr_log: PathBuf,
    args: Vec<String>,
    /// `127.0.0.1:PORT`, fixed at the first start and reused by restarts.
    pub addr: String,
    child: Option<Child>,
    /// Made on first use: a blocking client must not be built (nor used) inside an async
    /// runtime, and async tests start taxd without ever calling its blocking helpers.
    http: OnceLock<reqwest::blocking::Client>,
}

const READY_PREFIX: &str = "taxd listening on http://";

impl Taxd {
    /// Starts taxd on a fresh database with `--listen 127.0.0.1:0` plus `args`; returns
    /// once it printed its ready line.
    pub fn start(args: &[&str]) -> Taxd {
        Taxd::launch(None, "127.0.0.1:0", args)
    }

    /// Starts taxd on an existing (or new) database file, on a free port.
    pub fn start_on(db: &Path, args: &[&str]) -> Taxd {
        Taxd::launch(Some(db.to_path_buf()), "127.0.0.1:0", args)
    }

    /// Like [`Taxd::start_on`], listening on `listen` (to start a server where one was).
    pub fn start_at(db: &Path, listen: &str, args: &[&str]) -> Taxd {
        Taxd::launch(Some(db.to_path_buf()), listen, args)
    }

    /// A second taxd process on `other`'s database (SPEC 7: two processes on one `--db`
    /// act as one authority), with its own address, request log and stderr. Its faults
    /// and limits are its own. Drop it before `other`, whose directory holds the database.
    pub fn start_sharing(other: &Taxd, args: &[&str]) -> Taxd {
        Taxd::launch(Some(other.db.clone()), "127.0.0.1:0", args)
    }

    fn launch(db: Option<PathBuf>, listen: &str, args: &[&str]) -> Taxd {
        let dir = tempfile::Builder::new()
            .prefix("kaipiao-taxd-")
            .tempdir()
            .expect("tempdir");
        let mut t = Taxd {
            db: db.unwrap_or_else(|| dir.path().join("taxd.sqlite3")),
            request_log: request_log_flag(args)
                .unwrap_or_else(|| dir.path().join("requests.jsonl")),
            stderr_log: dir.path().join("taxd.stderr"),
            dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            addr: String::new(),
            child: None,
            http: OnceLock::new(),
        };
        match t.spawn_on(listen) {
            Ok((child, addr)) => {
                t.child = Some(child);
                t.addr = addr;
            }
            Err(e) => panic!("taxd did not start: {e}"),
        }
        t
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn http(&self) -> &reqwest::blocking::Client {
        self.http.get_or_init(http_client)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Spawns taxd listening on `listen`; Ok once its ready line names the address.
    fn spawn_on(&self, listen: &str) -> Result<(Child, String), String> {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .expect("taxd stderr log");
        let mut cmd = Command::new(binary("taxd"));
        cmd.arg("--listen")
            .arg(listen)
            .arg("--db")
            .arg(&self.db)
            .arg("--enrollment-token")
            .arg(TOKEN)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        if request_log_flag(&self.args).is_none() {
            cmd.arg("--request-log").arg(&self.request_log);
        }
        scrub_env(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("cannot spawn taxd: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Forward lines until the receiver goes away, then keep draining so taxd never
            // blocks on a full pipe.
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                let _ = tx.send(l);
            }
        });
        let started = Instant::now();
        loop {
            let left = TAXD_READY_DEADLINE.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    if let Some(addr) = l.trim().strip_prefix(READY_PREFIX) {
                        return Ok((child, addr.trim_end_matches('/').to_string()));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map(exit_code).unwrap_or(-1);
                    return Err(format!(
                        "taxd exited with {status} before its ready line; stderr:\n{}",
                        self.stderr_tail()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "taxd printed no `{READY_PREFIX}ADDR` line within {TAXD_READY_DEADLINE:?}; \
                         stderr:\n{}",
                        self.stderr_tail()
                    );
                }
            }
        }
    }

    /// SIGTERM, then wait for the exit (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
    }

    /// The authority's operator edits its database by hand: stops taxd, runs `sql` on
    /// `--db`, starts it again on the same address.
    pub fn edit_db(&mut self, sql: &str) {
        self.stop();
        let conn = rusqlite::Connection::open(&self.db).expect("open the taxd db");
        conn.execute_batch(sql).expect("edit the taxd db");
        drop(conn);
        self.restart();
    }

    /// SIGKILL: the authority crashes.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// [`Taxd::restart`] with other flags (beyond --listen, --db, --enrollment-token and
    /// --request-log, which stay), e.g. a `--capacity` switched on after the set-up.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.args = args.iter().map(|s| s.to_string()).collect();
        if let Some(log) = request_log_flag(&self.args) {
            self.request_log = log;
        }
        self.restart();
    }

    /// Starts it again on the same database and the same address (after stopping it if
    /// still running), retrying the bind until a deadline.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.spawn_on(&self.addr.clone()) {
                Ok((child, addr)) => {
                    assert_eq!(addr, self.addr, "taxd restarted on another address");
                    self.child = Some(child);
                    return;
                }
                Err(e) => {
                    if Instant::now() > deadline {
                        panic!("taxd could not be restarted on {}: {e}", self.addr);
                    }
                    std::thread::sleep(POLL * 4);
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        send(self.http().get(format!("{}{path}", self.url())))
    }

    /// POST with the given headers and raw body bytes.
    pub fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        let mut rb = self
            .http()
            .post(format!("{}{path}", self.url()))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        send(rb)
    }

    /// POST /v1/invoices with `Idempotency-Key: "<key>"` (or none).
    pub fn submit(&self, key: Option<&str>, body: &str) -> Resp {
        let header;
        let mut headers = Vec::new();
        if let Some(k) = key {
            header = kaipiao_core::wire::idempotency_header(k);
            headers.push(("Idempotency-Key", header.as_str()));
        }
        self.post_raw("/v1/invoices", &headers, body.as_bytes().to_vec())
    }

    /// A device-signed GET (SPEC 7).
    pub fn device_get(&self, device_id: &str, key: &DeviceKey, path: &str) -> Resp {
        let ts = unix_now();
        let nonce = uuid::Uuid::new_v4().to_string();
        let sig =
            kaipiao_core::sign::sign_request_with_nonce(key, "GET", path, ts, b"", Some(&nonce));
        send(
            self.http()
                .get(format!("{}{path}", self.url()))
                .header("Kaipiao-Device", device_id)
                .header("Kaipiao-Timestamp", ts.to_string())
                .header("Kaipiao-Nonce", nonce)
                .header("Kaipiao-Signature", sig),
        )
    }

    /// The authority's public key (GET /v1/authority).
    pub fn authority_key(&self) -> String {
        let r = self.get("/v1/authority");
        assert_eq!(r.status, 200, "GET /v1/authority: {}", r.text());
        r.json()["public_key"]
            .as_str()
            .unwrap_or_else(|| panic!("no public_key in {}", r.text()))
            .to_string()
    }

    pub fn faults(&self) -> Value {
        let r = self.get("/admin/faults");
        assert_eq!(r.status, 200, "GET /admin/faults: {}", r.text());
        r.json()
    }

    pub fn set_faults(&self, faults: Value) {
        let r = send(
            self.http()
                .put(format!("{}/admin/faults", self.url()))
                .header("content-type", "application/json")
                .body(faults.to_string()),
        );
        assert!(
            (200..300).contains(&r.status),
            "PUT /admin/faults {faults}: {} {}",
            r.status,
            r.text()
        );
    }

    /// The receipts the authority holds for `device_id`, in chain order, read straight
    /// from taxd's `--db` (read-only, with python3's sqlite3, as the verifier needs
    /// python3 anyway): `{invoice_id, seq, number, status, body}`, `body` parsed.
    #[track_caller]
    pub fn receipts_of(&self, device_id: &str) -> Vec<Value> {
        const READ: &str = r#"
import json, pathlib, sqlite3, sys
db = sqlite3.connect(pathlib.Path(sys.argv[1]).resolve().as_uri() + "?mode=ro", uri=True)
rows = db.execute(
    "SELECT invoice_id, seq, number, status, CAST(body AS TEXT) FROM receipts"
    " WHERE device_id = ? ORDER BY seq", (sys.argv[2],))
print(json.dumps([{"invoice_id": r[0], "seq": r[1], "number": r[2], "status": r[3],
                   "body": json.loads(r[4])} for r in rows]))
"#;
        let mut cmd = Command::new("python3");
        cmd.args(["-c", READ]).arg(&self.db).arg(device_id);
        let out = run_with_deadline(
            cmd,
            format!("python3 (read the receipts in {})", self.db.display()),
            None,
            COMMAND_DEADLINE,
        );
        out.expect_code(0);
        match out.json() {
            Value::Array(rows) => rows,
            other => panic!("expected a list of receipts, got {other}"),
        }
    }

    /// The request log so far: one JSON object per complete line.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.request_log).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("request log line is not JSON ({e}): {l}"))
            })
            .collect()
    }
}

impl Drop for Taxd {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The value of a `--request-log` among `args`, if the caller chose the file.
fn request_log_flag<S: AsRef<str>>(args: &[S]) -> Option<PathBuf> {
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(a) = it.next() {
        if a == "--request-log" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--request-log=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// The URL of a free loopback port with nothing listening on it.
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::request_log_flag;
    use std::path::PathBuf;

    #[test]
    fn a_request_log_among_the_flags_is_the_one_taxd_gets() {
        assert_eq!(request_log_flag(&["--capacity", "1"]), None);
        assert_eq!(
            request_log_flag(&["--capacity", "1", "--request-log", "/x/p.log"]),
            Some(PathBuf::from("/x/p.log"))
        );
        assert_eq!(
            request_log_flag(&["--request-log=/x/b.log"]),
            Some(PathBuf::from("/x/b.log"))
        );
    }
}
