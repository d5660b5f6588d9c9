//! The CLI process runner: a clerk's shop, one data directory driven through the real
//! `kaipiao` binary with a deadline on every command.

use crate::fixtures::{seller, DEVICE_NAME};
use crate::inspect::s;
use crate::keys::{keys, PASSPHRASE};
use crate::process::COMMAND_DEADLINE;
use crate::process::{binary, run_with_deadline, scrub_env, Background, Output};
use crate::taxd::{Taxd, TOKEN};
use kaipiao_core::DeviceKey;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

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
        let seller = seller();
        shop.kaipiao(&[
            "init",
            "--seller-name",
            &seller.name,
            "--seller-tax-id",
            &seller.tax_id,
            "--seller-address",
            &seller.address,
            "--seller-bank",
            &seller.bank,
            "--device-name",
            DEVICE_NAME,
        ])
        .expect_code(0);
        shop
    }

    /// A copy of this shop's data directory as it is now (every file, the ledger with
    /// its WAL, the sealed key), in a directory of its own: a clerk's old copy put back
    /// by hand. Take it while no command of this shop runs.
    pub fn copy(&self) -> Shop {
        let shop = self.moved("kaipiao-shop-copy-");
        copy_dir(&self.data, &shop.data);
        shop
    }

    /// This shop on a new machine: the same device, a data directory that does not exist
    /// yet (for `kaipiao restore`), in a directory of its own.
    pub fn elsewhere(&self) -> Shop {
        self.moved("kaipiao-shop-new-")
    }

    /// This shop's device in a new directory named `prefix…`, whose `data` is not made.
    fn moved(&self, prefix: &str) -> Shop {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        Shop {
            data,
            work,
            dir,
            device_id: self.device_id.clone(),
            drafts: AtomicUsize::new(self.drafts.load(Ordering::SeqCst)),
        }
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

    /// Runs `kaipiao` with the system clock seen `offset_secs` away from the real one
    /// (negative: behind), through libfaketime: the clerk's computer with a wrong clock.
    pub fn kaipiao_with_clock(&self, offset_secs: i64, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        crate::process::fake_clock(&mut cmd, offset_secs);
        run_with_deadline(
            cmd,
            format!("{} (clock {offset_secs:+} s)", Self::label(args)),
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
        self.spawn_with_env(args, &[])
    }

    /// [`Shop::spawn`] with variables added to the environment (a test hook's).
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Background {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kaipiao: {e}"));
        Background::new(Self::label(args), child)
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
        ledger.unseal_key(&keys()).expect("unseal device key")
    }
}

/// Copies the directory `from` (files and subdirectories) to `to`, which must not exist.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the data directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a data file");
        }
    }
}
