//! kaipiao-tests: the harness for end-to-end and fault tests over real processes.
//!
//! Every test here drives the real `kaipiao` binary on a real SQLite ledger in a temp
//! directory against a real `taxd` on loopback, and checks the results from outside: exit
//! codes, JSON on stdout, the authority's answers over raw HTTP, the bytes of the database
//! file, and the independent Python verifier `verify_export.py` of SPEC 4.
//!
//! It must never synchronise by sleeping: it waits on output lines, process exits, or polls
//! a condition against a deadline. It must never weaken what the SPEC says to make a
//! product pass, and it must never leave a process behind: everything it starts is killed
//! when its owner is dropped.

use kaipiao_core::DeviceKey;
use serde_json::{json, Value};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The passphrase every test device key is sealed with.
pub const PASSPHRASE: &str = "correct horse battery staple 开票";
/// The reusable enrollment token every test taxd accepts.
pub const TOKEN: &str = "e2e-enrollment-token";
/// The hash of "no previous invoice" (SPEC 4).
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The eight VAT rates of SPEC 2.
pub const RATES: [&str; 8] = ["0.13", "0.09", "0.06", "0.05", "0.03", "0.015", "0.01", "0"];
/// How long one CLI command may take before the harness calls it hung.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long taxd may take to print its ready line.
pub const TAXD_READY_DEADLINE: Duration = Duration::from_secs(30);

/// The gap between two polls of a condition. Never used to wait for an event that can be
/// observed directly (an output line, a process exit).
pub const POLL: Duration = Duration::from_millis(25);

// ---------------------------------------------------------------------------------------
// Locating things
// ---------------------------------------------------------------------------------------

/// The workspace root (this crate's parent directory).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Candidate directories holding the debug binaries, most specific first: an explicit
/// `CARGO_TARGET_DIR` (at run time, then at build time), the profile directory this test
/// binary itself was built into, and `<workspace>/target/debug`.
fn bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let absolute = |p: PathBuf| {
        if p.is_absolute() {
            p
        } else {
            workspace_dir().join(p)
        }
    };
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(absolute(PathBuf::from(d)).join("debug"));
    }
    if let Some(d) = option_env!("CARGO_TARGET_DIR") {
        dirs.push(absolute(PathBuf::from(d)).join("debug"));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/deps/<test binary>
        if let Some(profile) = exe.parent().and_then(Path::parent) {
            dirs.push(profile.to_path_buf());
        }
    }
    dirs.push(workspace_dir().join("target").join("debug"));
    dirs
}

/// Path of a workspace binary (`kaipiao` or `taxd`); panics with what to do if missing.
pub fn binary(name: &str) -> PathBuf {
    let dirs = bin_dirs();
    for d in &dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "binary `{name}` not found in {:?}: run `cargo build --bins` first (make test does)",
        dirs
    );
}

/// The independent verifier of SPEC 4 (shared/tools/verify_export.py beside the repo).
pub fn verifier_path() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("KAIPIAO_VERIFY_EXPORT") {
        candidates.push(PathBuf::from(p));
    }
    let ws = workspace_dir();
    candidates.push(ws.join("../shared/tools/verify_export.py"));
    // The verbatim copy in the repository, for a clone that has no shared/ beside it.
    candidates.push(ws.join("tools/verify_export.py"));
    candidates.push(ws.join("shared/tools/verify_export.py"));
    candidates.push(PathBuf::from("/work/shared/tools/verify_export.py"));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "verify_export.py not found (looked in {candidates:?}); set KAIPIAO_VERIFY_EXPORT to \
         its path"
    );
}

// ---------------------------------------------------------------------------------------
// Tax IDs and drafts
// ---------------------------------------------------------------------------------------

/// A valid unified social credit code: the 17 given characters plus their check digit.
pub fn uscc(first17: &str) -> String {
    let check = kaipiao_core::taxid::check_digit(first17)
        .unwrap_or_else(|| panic!("{first17:?} is not 17 characters of the USCC alphabet"));
    format!("{first17}{check}")
}

/// The seller of every test shop: 91350100M000100Y43.
pub fn seller_tax_id() -> String {
    uscc("91350100M000100Y4")
}

/// A buyer with a valid tax ID (for special invoices).
pub fn buyer_tax_id() -> String {
    uscc("91110108MA01C8QW2")
}

/// The same ID with a wrong check digit.
pub fn invalid_tax_id() -> String {
    let good = buyer_tax_id();
    let last = good.chars().last().expect("non-empty");
    let wrong = if last == '0' { '1' } else { '0' };
    format!("{}{wrong}", &good[..17])
}

pub fn buyer(name: &str, tax_id: &str) -> Value {
    json!({"name": name, "tax_id": tax_id, "address": "", "bank": ""})
}

/// A draft line; `treatment` "" means `standard` for a non-zero rate.
pub fn line(
    name: &str,
    quantity: &str,
    unit_price: &str,
    tax_rate: &str,
    treatment: &str,
) -> Value {
    json!({
        "name": name, "tax_code": "", "spec": "", "unit": "个",
        "quantity": quantity, "unit_price": unit_price,
        "tax_rate": tax_rate, "treatment": treatment,
    })
}

/// A draft of SPEC 9 with every field written out.
pub fn draft(kind: &str, buyer: Value, lines: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "buyer": buyer,
        "lines": lines,
        "price_includes_tax": false,
        "original": null,
        "remarks": "",
        "issuer": "测试开票员",
    })
}

/// A small ordinary invoice: one line `amount` (excluding tax) at 13%.
pub fn small_draft(buyer_name: &str, amount: &str) -> Value {
    draft(
        "ordinary",
        buyer(buyer_name, ""),
        vec![line("办公用品", "1", amount, "0.13", "")],
    )
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// The outcome of one finished command.
#[derive(Debug, Clone)]
pub struct Output {
    pub cmd: String,
    /// The exit code, or -SIGNAL when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// Asserts the exit code, showing the whole command output otherwise.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    /// stdout as exactly one JSON document (SPEC 9 `--json`); panics otherwise.
    #[track_caller]
    pub fn json(&self) -> Value {
        let docs = json_documents(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"));
        assert_eq!(
            docs.len(),
            1,
            "stdout must hold exactly one JSON document, found {}\n{self}",
            docs.len()
        );
        docs.into_iter().next().expect("one document")
    }
}

/// All JSON documents in a text, in order (whitespace between them allowed).
pub fn json_documents(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect()
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(c) => c,
        None => -status.signal().unwrap_or(0),
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this harness spawned and has not yet reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Runs a command to completion with a deadline, capturing stdout and stderr.
pub fn run_with_deadline(
    mut cmd: Command,
    label: String,
    stdin: Option<Vec<u8>>,
    deadline: Duration,
) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&input);
        });
    }
    let out = read_all(child.stdout.take().expect("piped stdout"));
    let err = read_all(child.stderr.take().expect("piped stderr"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(deadline) {
        Ok(s) => s.expect("wait for child"),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            let _ = rx.recv();
            let partial = Output {
                cmd: label,
                code: -9,
                stdout: out.join().unwrap_or_default(),
                stderr: err.join().unwrap_or_default(),
            };
            panic!("command hung for {deadline:?} and was killed\n{partial}");
        }
    };
    Output {
        cmd: label,
        code: exit_code(status),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn read_all<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A process started in the background; SIGKILLed and reaped when dropped.
pub struct Background {
    pub label: String,
    child: Option<Child>,
    stdout: Option<ChildStdout>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Exit status if it has exited (does not block).
    pub fn try_exited(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten().map(exit_code)
    }

    /// Waits until one byte arrives on stdout (true) or stdout closes (false); panics
    /// after `deadline` (the process is killed when this is dropped).
    pub fn wait_first_stdout_byte(&mut self, deadline: Duration) -> bool {
        let mut out = self.stdout.take().expect("stdout not yet taken");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            let got = matches!(out.read(&mut b), Ok(1));
            let _ = tx.send((got, out));
        });
        match rx.recv_timeout(deadline) {
            Ok((got, out)) => {
                self.stdout = Some(out);
                got
            }
            Err(_) => panic!("{} printed nothing within {deadline:?}", self.label),
        }
    }

    /// SIGKILL (if still running) and reap. Returns the exit code as observed.
    pub fn kill9(mut self) -> Output {
        if let Some(child) = self.child.as_mut() {
            // Child::kill never signals a child already reaped (whose pid may be reused).
            let _ = child.kill();
        }
        self.finish(Duration::from_secs(30))
    }

    /// Waits for the process to exit on its own (with a deadline) and collects output.
    pub fn wait(mut self, deadline: Duration) -> Output {
        self.finish(deadline)
    }

    fn finish(&mut self, deadline: Duration) -> Output {
        let mut child = self.child.take().expect("not finished twice");
        let pid = child.id();
        let out = read_all(self.stdout.take().expect("stdout"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(deadline) {
            Ok(s) => s.expect("wait"),
            Err(_) => {
                signal(pid, libc::SIGKILL);
                let _ = rx.recv();
                panic!("{} did not exit within {deadline:?}", self.label);
            }
        };
        Output {
            cmd: self.label.clone(),
            code: exit_code(status),
            stdout: out.join().unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// taxd
// ---------------------------------------------------------------------------------------

/// A real `taxd` on loopback, on a temp-dir database. Killed when dropped.
pub struct Taxd {
    dir: tempfile::TempDir,
    pub db: PathBuf,
    pub request_log: PathBuf,
    stderr_log: PathBuf,
    args: Vec<String>,
    /// `127.0.0.1:PORT`, fixed at the first start and reused by restarts.
    pub addr: String,
    child: Option<Child>,
    http: reqwest::blocking::Client,
}

const READY_PREFIX: &str = "taxd listening on http://";

impl Taxd {
    /// Starts taxd on a fresh database with `--listen 127.0.0.1:0` plus `args`; returns
    /// once it printed its ready line.
    pub fn start(args: &[&str]) -> Taxd {
        Taxd::launch(None, args)
    }

    /// A second taxd process on `other`'s database (SPEC 7: two processes on one `--db`
    /// act as one authority), with its own address, request log and stderr. Its faults
    /// and limits are its own. Drop it before `other`, whose directory holds the database.
    pub fn start_sharing(other: &Taxd, args: &[&str]) -> Taxd {
        Taxd::launch(Some(other.db.clone()), args)
    }

    fn launch(db: Option<PathBuf>, args: &[&str]) -> Taxd {
        let dir = tempfile::Builder::new()
            .prefix("kaipiao-taxd-")
            .tempdir()
            .expect("tempdir");
        let mut t = Taxd {
            db: db.unwrap_or_else(|| dir.path().join("taxd.sqlite3")),
            request_log: dir.path().join("requests.jsonl"),
            stderr_log: dir.path().join("taxd.stderr"),
            dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            addr: String::new(),
            child: None,
            http: http_client(),
        };
        match t.spawn_on("127.0.0.1:0") {
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
            .arg("--request-log")
            .arg(&self.request_log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
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
        send(self.http.get(format!("{}{path}", self.url())))
    }

    /// POST with the given headers and raw body bytes.
    pub fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        let mut rb = self
            .http
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
        let sig = kaipiao_core::sign::sign_request(key, "GET", path, ts, b"");
        send(
            self.http
                .get(format!("{}{path}", self.url()))
                .header("Kaipiao-Device", device_id)
                .header("Kaipiao-Timestamp", ts.to_string())
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
            self.http
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

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Removes what could send loopback traffic elsewhere or change the CLI's language.
fn scrub_env(cmd: &mut Command) {
    for v in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "KAIPIAO_DATA",
        "LANGUAGE",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("LC_ALL", "C").env("LANG", "C").env("NO_PROXY", "*");
}

/// Polls `cond` until it is true; panics with `what` after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------
// The clerk's shop: one data directory driven through the CLI
// ---------------------------------------------------------------------------------------

/// One device: a temp data directory set up with `init` (and usually `enroll`).
pub struct Shop {
    dir: tempfile::TempDir,
    pub data: PathBuf,
    pub work: PathBuf,
    pub device_id: String,
    drafts: AtomicUsize,
}

impl Shop {
    /// `init` + `enroll` against `taxd` (which must be running).
    pub fn new(taxd: &Taxd) -> Shop {
        let mut shop = Shop::init_only();
        let out = shop.kaipiao(&[
            "--json",
            "enroll",
            "--server",
            &taxd.url(),
            "--token",
            TOKEN,
        ]);
        out.expect_code(0);
        let doc = out.json();
        let device_id = doc["device_id"]
            .as_str()
            .unwrap_or_else(|| panic!("enroll --json has no device_id\n{out}"))
            .to_string();
        shop.device_id = device_id;
        shop
    }

    /// `init` + `enroll --server PRIMARY --backup-server B...` (all running).
    pub fn with_backups(primary: &Taxd, backups: &[&Taxd]) -> Shop {
        let mut shop = Shop::init_only();
        let urls: Vec<String> = backups.iter().map(|t| t.url()).collect();
        let primary_url = primary.url();
        let mut args = vec!["--json", "enroll", "--server", primary_url.as_str()];
        for u in &urls {
            args.extend(["--backup-server", u.as_str()]);
        }
        args.extend(["--token", TOKEN]);
        let out = shop.kaipiao(&args);
        out.expect_code(0);
        shop.device_id = s(&out.json(), "/device_id").to_string();
        shop
    }

    /// A data directory with `init` done, not enrolled.
    pub fn init_only() -> Shop {
        let dir = tempfile::Builder::new()
            .prefix("kaipiao-shop-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let shop = Shop {
            data,
            work,
            dir,
            device_id: String::new(),
            drafts: AtomicUsize::new(0),
        };
        shop.kaipiao(&[
            "init",
            "--seller-name",
            "福州测试商贸有限公司",
            "--seller-tax-id",
            &seller_tax_id(),
            "--seller-address",
            "福州市鼓楼区测试路 1 号 0591-12345678",
            "--seller-bank",
            "测试银行福州分行 1234567890",
            "--device-name",
            "前台电脑",
        ])
        .expect_code(0);
        shop
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The ledger file of SPEC 5.
    pub fn ledger_file(&self) -> PathBuf {
        self.data.join(kaipiao_ledger::DB_FILE)
    }

    /// The `kaipiao` command for this shop, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kaipiao"));
        cmd.arg("--data").arg(&self.data).args(args);
        scrub_env(&mut cmd);
        cmd.env("KAIPIAO_PASSPHRASE", PASSPHRASE);
        cmd
    }

    fn label(args: &[&str]) -> String {
        format!("kaipiao {}", args.join(" "))
    }

    /// Runs `kaipiao --data DIR ARGS...` to completion.
    pub fn kaipiao(&self, args: &[&str]) -> Output {
        run_with_deadline(
            self.command(args),
            Self::label(args),
            None,
            COMMAND_DEADLINE,
        )
    }

    /// Runs with `stdin` as standard input.
    pub fn kaipiao_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_deadline(
            self.command(args),
            Self::label(args),
            Some(stdin.to_vec()),
            COMMAND_DEADLINE,
        )
    }

    /// Starts a command in the background (stdout piped, stderr collected).
    pub fn spawn(&self, args: &[&str]) -> Background {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kaipiao: {e}"));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().map(read_all);
        Background {
            label: Self::label(args),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Writes a draft (any JSON value, or raw text) to a fresh file; returns its path.
    pub fn write_draft(&self, draft: &Value) -> PathBuf {
        self.write_file("draft.json", draft.to_string().as_bytes())
    }

    pub fn write_file(&self, suffix: &str, bytes: &[u8]) -> PathBuf {
        let n = self.drafts.fetch_add(1, Ordering::SeqCst);
        let p = self.work.join(format!("{n:04}-{suffix}"));
        std::fs::write(&p, bytes).expect("write draft");
        p
    }

    /// `issue --json --file DRAFT` without judging the outcome.
    pub fn try_issue(&self, draft: &Value) -> Output {
        let p = self.write_draft(draft);
        self.kaipiao(&["--json", "issue", "--file", p.to_str().expect("utf-8 path")])
    }

    /// Issues a draft that must be accepted; returns the envelope printed.
    #[track_caller]
    pub fn issue(&self, draft: &Value) -> Value {
        let out = self.try_issue(draft);
        out.expect_code(0);
        let env = out.json();
        assert!(
            env["invoice"].is_object() && env["hash"].is_string() && env["signature"].is_string(),
            "issue --json must print the envelope {{invoice, hash, signature}}\n{out}"
        );
        env
    }

    /// `import --json` of the drafts as JSON Lines; returns {issued, first_number, last_number}.
    #[track_caller]
    pub fn import(&self, drafts: &[Value]) -> Value {
        let mut text = String::new();
        for d in drafts {
            text.push_str(&d.to_string());
            text.push('\n');
        }
        let p = self.write_file("drafts.jsonl", text.as_bytes());
        let out = self.kaipiao(&["--json", "import", "--file", p.to_str().expect("utf-8")]);
        out.expect_code(0);
        let doc = out.json();
        assert_eq!(doc["issued"], json!(drafts.len()), "import --json\n{out}");
        doc
    }

    #[track_caller]
    pub fn status(&self) -> Value {
        let out = self.kaipiao(&["--json", "status"]);
        out.expect_code(0);
        out.json()
    }

    pub fn sync(&self) -> Output {
        self.kaipiao(&["--json", "sync"])
    }

    /// `sync` until it exits 0, at most `attempts` times; every other exit must be 3
    /// (transient). Returns the last sync document.
    #[track_caller]
    pub fn sync_until_complete(&self, attempts: usize) -> Value {
        let mut last = None;
        for _ in 0..attempts {
            let out = self.sync();
            match out.code {
                0 => return out.json(),
                3 => {
                    let doc = out.json();
                    assert!(
                        doc.get("pending").is_some(),
                        "sync exit 3 must still print its summary\n{out}"
                    );
                    last = Some(out);
                }
                _ => panic!("sync must exit 0 or 3 here\n{out}"),
            }
        }
        panic!(
            "sync did not complete in {attempts} attempts; last:\n{}",
            last.map(|o| o.to_string()).unwrap_or_default()
        );
    }

    /// `list --json [--status S]` rows in the order printed.
    #[track_caller]
    pub fn list(&self, status: Option<&str>) -> Vec<Value> {
        let mut args = vec!["--json", "list"];
        if let Some(s) = status {
            args.extend(["--status", s]);
        }
        let out = self.kaipiao(&args);
        out.expect_code(0);
        let doc = out.json();
        match doc {
            Value::Array(rows) => rows,
            Value::Object(ref m) => match m.get("invoices") {
                Some(Value::Array(rows)) => rows.clone(),
                _ => panic!("list --json must print the rows\n{out}"),
            },
            _ => panic!("list --json must print the rows\n{out}"),
        }
    }

    /// `show --json NUMBER|ID`.
    #[track_caller]
    pub fn show(&self, number_or_id: &str) -> Value {
        let out = self.kaipiao(&["--json", "show", number_or_id]);
        out.expect_code(0);
        out.json()
    }

    /// `export --out FILE`; returns the file and its records (first the device line).
    #[track_caller]
    pub fn export(&self) -> (PathBuf, Vec<Value>) {
        let n = self.drafts.fetch_add(1, Ordering::SeqCst);
        let p = self.work.join(format!("{n:04}-export.jsonl"));
        self.kaipiao(&["export", "--out", p.to_str().expect("utf-8")])
            .expect_code(0);
        let text = std::fs::read_to_string(&p).expect("export file");
        let records = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("export line not JSON ({e}): {l}"))
            })
            .collect();
        (p, records)
    }

    /// The device's private key, unsealed as the CLI would; for device-signed reads only.
    pub fn device_key(&self) -> DeviceKey {
        let ledger = kaipiao_ledger::Ledger::open(&self.data).expect("open ledger");
        ledger
            .unseal_key(&kaipiao_ledger::KeySource {
                passphrase: Some(zeroize::Zeroizing::new(PASSPHRASE.to_string())),
            })
            .expect("unseal device key")
    }
}

// ---------------------------------------------------------------------------------------
// The independent verifier
// ---------------------------------------------------------------------------------------

/// Runs `python3 verify_export.py FILE --authority-key KEY`; panics (the test fails) when
/// python3 or its modules are missing, or when the export does not verify. Returns the
/// verifier's (invoices, receipts) figures.
#[track_caller]
pub fn verify_export(file: &Path, authority_key: &str) -> (u64, u64) {
    let probe = Command::new("python3")
        .args(["-c", "import rfc8785, cryptography"])
        .output();
    match probe {
        Err(e) => panic!(
            "python3 is required to run the independent verifier ({e}); install python3 and \
             `pip install rfc8785 cryptography` (make deps does)"
        ),
        Ok(o) if !o.status.success() => panic!(
            "python3 lacks the verifier's modules: {}; `pip install rfc8785 cryptography` \
             (make deps does)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
    let mut cmd = Command::new("python3");
    cmd.arg(verifier_path())
        .arg(file)
        .arg("--authority-key")
        .arg(authority_key);
    let out = run_with_deadline(
        cmd,
        format!(
            "python3 verify_export.py {} --authority-key {authority_key}",
            file.display()
        ),
        None,
        COMMAND_DEADLINE,
    );
    assert_eq!(
        out.code, 0,
        "the independent verifier rejects the export\n{out}"
    );
    let last = out.stdout.lines().last().unwrap_or_default().to_string();
    let figures: Vec<u64> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        last.starts_with("verified ") && figures.len() == 2,
        "unexpected verifier output\n{out}"
    );
    (figures[0], figures[1])
}

// ---------------------------------------------------------------------------------------
// Small helpers over envelopes and documents
// ---------------------------------------------------------------------------------------

/// `v[key]` as &str, panicking with the document.
#[track_caller]
pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

#[track_caller]
pub fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned integer at {pointer} in {v}"))
}

/// The same JSON value written differently: every object's keys in reverse order and
/// pretty-printed, so only a receiver that canonicalises sees the same envelope.
pub fn respaced_reordered(v: &Value) -> String {
    fn reorder(v: &Value, out: &mut String, indent: usize) {
        let pad = "   ".repeat(indent);
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.reverse();
                out.push_str("{\n");
                for (i, k) in keys.iter().enumerate() {
                    out.push_str(&pad);
                    out.push_str("   ");
                    out.push_str(&serde_json::to_string(k).expect("key"));
                    out.push_str(" :  ");
                    reorder(&m[k.as_str()], out, indent + 1);
                    if i + 1 < keys.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                out.push_str(&pad);
                out.push('}');
            }
            Value::Array(a) => {
                out.push_str("[ ");
                for (i, x) in a.iter().enumerate() {
                    reorder(x, out, indent + 1);
                    if i + 1 < a.len() {
                        out.push_str(" ,\n");
                        out.push_str(&pad);
                    }
                }
                out.push_str(" ]");
            }
            other => out.push_str(&serde_json::to_string(other).expect("scalar")),
        }
    }
    let mut out = String::new();
    reorder(v, &mut out, 0);
    out.push('\n');
    out
}

/// Parses a 20-digit invoice number.
#[track_caller]
pub fn number_value(number: &str) -> u128 {
    assert!(
        number.len() == 20 && number.bytes().all(|b| b.is_ascii_digit()),
        "invoice number {number:?} is not 20 digits"
    );
    number.parse().expect("digits")
}

/// Reads a file fully (for byte-level tampering).
pub fn read_bytes(p: &Path) -> Vec<u8> {
    let mut f = File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut b = Vec::new();
    f.read_to_end(&mut b).expect("read");
    b
}

/// All start offsets of `needle` in `hay`.
pub fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return Vec::new();
    }
    (0..=hay.len() - needle.len())
        .filter(|&i| &hay[i..i + needle.len()] == needle)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The end of every fault story: nothing lost, nothing duplicated
// ---------------------------------------------------------------------------------------

/// How the receipts the client stored compare with the ones the authority holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipts {
    /// The very receipt the authority stored, field for field: it is what it sent.
    Identical,
    /// The authority lost some receipts (restored from a backup) and issued them again
    /// when the client resubmitted; the client keeps its first receipt, which must name
    /// the same invoice, number, hash and status.
    SameInvoices,
}

/// Milliseconds since the Unix epoch of a request-log line's `time`
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC).
#[track_caller]
pub fn log_time_ms(line: &Value) -> i64 {
    let t = s(line, "/time");
    let num = |range: std::ops::Range<usize>| -> i64 {
        t.get(range)
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("request-log time {t:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ"))
    };
    assert!(t.len() == 24 && t.ends_with('Z'), "request-log time {t:?}");
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    // Days from civil (H. Hinnant), proleptic Gregorian.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + num(11..13)) * 60 + num(14..16)) * 60_000 + num(17..19) * 1000 + num(20..23)
}

/// The checks every fault story ends with, once the faults are off: nothing lost (every
/// one of the `n` local invoices is final, nothing pending, the queue running), nothing
/// duplicated (the authority's `--db` holds exactly one receipt per local invoice, in
/// the same chain order, and no other receipt for this device), the chain heads agree,
/// `kaipiao verify` exits 0 and the export passes the independent verifier.
#[track_caller]
pub fn assert_settled(shop: &Shop, taxd: &Taxd, n: u64, receipts: Receipts) {
    let st = shop.status();
    assert_eq!(st["pending"], json!(0), "nothing may stay pending: {st}");
    assert!(st["queue_stopped"].is_null(), "the queue runs: {st}");
    assert_eq!(u(&st, "/head/seq"), n, "{st}");

    let (file, records) = shop.export();
    assert_eq!(records.len() as u64, n + 1, "device line + {n} invoices");
    let invoices = &records[1..];
    for rec in invoices {
        let status = s(rec, "/status");
        assert!(
            status == "accepted" || status == "rejected",
            "every invoice is final: {rec}"
        );
        assert!(
            rec["receipt"].is_object(),
            "a final invoice has its receipt: {rec}"
        );
    }

    let held = taxd.receipts_of(&shop.device_id);
    let local_ids: Vec<&str> = invoices.iter().map(|r| s(r, "/invoice/id")).collect();
    let held_ids: Vec<&str> = held.iter().map(|r| s(r, "/invoice_id")).collect();
    assert_eq!(
        held_ids, local_ids,
        "the authority holds exactly one receipt per invoice, in chain order"
    );
    for (rec, h) in invoices.iter().zip(&held) {
        assert_eq!(h["seq"], rec["invoice"]["seq"], "{h}");
        assert_eq!(h["status"], rec["status"], "{h}");
        match receipts {
            Receipts::Identical => assert_eq!(
                h["body"], rec["receipt"],
                "the client stored the receipt the authority stored"
            ),
            Receipts::SameInvoices => {
                for field in ["/invoice_id", "/number", "/hash", "/status"] {
                    assert_eq!(
                        h["body"].pointer(field),
                        rec["receipt"].pointer(field),
                        "{field} of {h} and of the client's {}",
                        rec["receipt"]
                    );
                }
            }
        }
    }

    let key = shop.device_key();
    let head = taxd.device_get(
        &shop.device_id,
        &key,
        &format!("/v1/devices/{}/head", shop.device_id),
    );
    assert_eq!(head.status, 200, "GET head: {}", head.text());
    assert_eq!(
        head.json(),
        st["head"],
        "the authority's head is the local head"
    );

    shop.kaipiao(&["verify"]).expect_code(0);
    assert_eq!(verify_export(&file, &taxd.authority_key()), (n, n));
}
