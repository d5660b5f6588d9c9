//! Processes: finding (and if need be building) the workspace's binaries, running a
//! command to completion with a deadline, a background process that is killed when
//! dropped, and polling a condition against a deadline.

use serde_json::Value;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// How long one CLI command may take before the harness calls it hung.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// The gap between two polls of a condition. Never used to wait for an event that can be
/// observed directly (an output line, a process exit).
pub const POLL: Duration = Duration::from_millis(25);

/// The workspace root (two levels above this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/testkit sits two levels below the workspace root")
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

/// The package that builds the workspace binary `name`.
fn package_of(name: &str) -> &str {
    match name {
        "kaipiao" => "kaipiao-cli",
        other => other,
    }
}

/// Path of a workspace binary (`kaipiao` or `taxd`). When it is in none of the candidate
/// directories it is built once (`cargo build -p PACKAGE --bin NAME`), so the tests of one
/// package also run alone; a binary that is there is used as it is (`make test` builds
/// them all first). Panics with what to do if it is still missing.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let find = || {
        bin_dirs()
            .into_iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return p;
    }
    let built = {
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if !built.iter().any(|b| b == name) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", package_of(name), "--bin", name])
                .current_dir(workspace_dir())
                .status();
            built.push(name.to_string());
            Some(status)
        } else {
            None
        }
    };
    find().unwrap_or_else(|| {
        panic!(
            "binary `{name}` not found in {:?} (build: {built:?}): run `cargo build --bins` \
             first (make test does)",
            bin_dirs()
        )
    })
}

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

pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(c) => c,
        None => -status.signal().unwrap_or(0),
    }
}

pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this harness spawned and has not yet reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Runs a command to completion with a deadline, capturing stdout and stderr.
/// Where Debian's libfaketime keeps its multithreaded library (`make deps` installs it).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Makes `cmd` see the wall clock `offset_secs` away from the real one (libfaketime,
/// `LD_PRELOAD`): `SystemTime` and `date` move, the monotonic clock does not, so timeouts
/// and backoff behave as on a machine whose clock is simply set wrong.
pub fn fake_clock(cmd: &mut Command, offset_secs: i64) {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run `make deps` (Debian package libfaketime)"
    );
    cmd.env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", format!("{offset_secs:+}"))
        .env("DONT_FAKE_MONOTONIC", "1")
        .env("FAKETIME_NO_CACHE", "1");
}

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

pub(crate) fn read_all<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
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
    /// Takes over a child started with stdout and stderr piped.
    pub(crate) fn new(label: String, mut child: Child) -> Background {
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().map(read_all);
        Background {
            label,
            child: Some(child),
            stdout,
            stderr,
        }
    }

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

/// Removes what could send loopback traffic elsewhere or change the CLI's language.
pub(crate) fn scrub_env(cmd: &mut Command) {
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

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
