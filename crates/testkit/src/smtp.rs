//! A real SMTP server for the mail tests: Python's aiosmtpd (`scripts/smtp_server.py`),
//! started on loopback with an optional login, writing every message it accepts to a
//! folder. Killed when dropped.

use crate::process::{wait_until, workspace_dir};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    out: tempfile::TempDir,
}

/// How long the server may take to listen, and a message to arrive.
const DEADLINE: Duration = Duration::from_secs(30);

impl SmtpServer {
    /// A server requiring `login` (user, password) when given; recipients in `reject`
    /// are refused for good (550).
    pub fn start(login: Option<(&str, &str)>, reject: &[&str]) -> SmtpServer {
        SmtpServer::start_on(0, login, reject)
    }

    /// The same on `port` (0: a free one), e.g. a server back after an outage.
    pub fn start_on(port: u16, login: Option<(&str, &str)>, reject: &[&str]) -> SmtpServer {
        let out = tempfile::Builder::new()
            .prefix("kaipiao-smtp-")
            .tempdir()
            .expect("a folder for the messages");
        let script = workspace_dir().join("crates/testkit/scripts/smtp_server.py");
        let mut cmd = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
        cmd.arg(&script)
            .arg("--out")
            .arg(out.path())
            .args(["--port", &port.to_string()]);
        if let Some((user, password)) = login {
            cmd.args(["--user", user, "--password", password]);
        }
        for r in reject {
            cmd.args(["--reject", r]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's first line");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the SMTP server did not start (is aiosmtpd installed? make deps): {line:?}")
            });
        SmtpServer { child, port, out }
    }

    pub fn folder(&self) -> &Path {
        self.out.path()
    }

    /// The messages received so far, in order, each as its raw bytes.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("the message folder")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read(p).expect("a message"))
            .collect()
    }

    /// Waits until `n` messages have arrived, and returns them.
    pub fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        wait_until(
            &format!("{n} message(s) at the SMTP server"),
            DEADLINE,
            || self.messages().len() >= n,
        );
        self.messages()
    }

    /// Stops the server (the port no longer answers).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
