//! Recovery throughput (issue 4): how long draining a backlog takes next to how long
//! issuing it took, and what a drain running in the background does to issuance latency.
//!
//! Run: `cargo bench -p kaipiao-sync --bench drain` (about two minutes on a 2-core
//! machine; `make bench` runs it). One run, one machine, every figure next to the one it
//! is compared with:
//!
//! 1. a real **release** `taxd` binary (`target/release/taxd`, built first with
//!    `cargo build --release -p taxd`) on 127.0.0.1 with its database in a temp dir, and
//!    a ledger enrolled with it in another temp dir on the same filesystem;
//! 2. `import`: 10,000 one-line drafts issued one by one with `Ledger::issue`, each
//!    durable (what `kaipiao import` does), timed;
//! 3. `drain`: `kaipiao_sync::sync_now` with `SyncOptions::default()` (what `kaipiao sync`
//!    and the app run) draining those 10,000 to taxd, timed: the target is at most 0.4x
//!    the import;
//! 4. issuance latency, idle: invoices issued one at a time, a pause of `PACE` between
//!    them (a busy till, not a bulk import), nothing else touching the ledger;
//! 5. the same while another thread (its own ledger connection, its own runtime, at the
//!    lowered priority of the app's sync thread: `kaipiao_sync::yield_to_clerk`) drains
//!    a fresh 10,000-invoice backlog with `SyncOptions::default()`: issuance runs for as
//!    long as that drain does. The target is p99 busy at most 2x p99 idle.
//!
//! taxd stands for the remote authority, so on a machine with two CPUs or more it runs on
//! CPU 1 and this process (till and drain) on CPU 0: on a 2-core machine an unpinned
//! taxd's verification and commits take CPU time from the till that a real authority
//! never would. `DRAIN_PIN=0` lets all three share every CPU (docs/BENCHMARKS.md has both).
//!
//! A one-shot measurement rather than criterion: a drain of 10,000 is the unit being
//! measured, and repeating it for statistics would take many minutes per sample. Figures
//! go to docs/BENCHMARKS.md by hand. Under `cargo test --benches` everything runs once
//! on a backlog of 300 as a smoke test.
//!
//! `DRAIN_BATCH=0,100,500 cargo bench -p kaipiao-sync --bench drain` adds one drain of a
//! 2,000-invoice backlog per batch size listed (0: one request per invoice).

use chrono::Utc;
use kaipiao_core::{DeviceKey, Draft, Party};
use kaipiao_ledger::{KeySource, Ledger};
use kaipiao_sync::{sync_now, Progress, SyncOptions, SyncOutcome};
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";
const PASSPHRASE: &str = "bench";
/// The clerk's pause between two invoices in the latency runs.
const PACE: Duration = Duration::from_millis(2);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The release taxd binary, built now so it matches the source.
fn taxd_release() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "-p", "taxd"])
        .current_dir(workspace_root())
        .status()
        .expect("cargo build --release -p taxd");
    assert!(status.success(), "building taxd failed");
    target.join("release").join("taxd")
}

struct Taxd {
    child: Child,
    url: String,
}

impl Drop for Taxd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// taxd stands for the authority, whose CPU is never the shop's: unless `DRAIN_PIN=0`
/// (or the machine has one CPU), taxd runs on CPU 1 and this process (the till and the
/// drain) on CPU 0, so the till competes with its own drain and not with the authority.
/// Decided once, before anything is pinned (pinning changes what the machine reports).
fn pinned() -> bool {
    static PINNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PINNED.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        cfg!(target_os = "linux")
            && cpus >= 2
            && std::env::var("DRAIN_PIN").map_or(true, |v| v != "0")
    })
}

/// Binds the calling thread (and what it spawns later) to one CPU; best effort.
#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t filled by the libc macro, for the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn start_taxd(bin: &Path, db: &Path) -> Taxd {
    let mut command = Command::new(bin);
    #[cfg(target_os = "linux")]
    if pinned() {
        use std::os::unix::process::CommandExt;
        // SAFETY: only sched_setaffinity (async-signal-safe) runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                pin_to(1);
                Ok(())
            });
        }
    }
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(["--enrollment-token", TOKEN])
        .args(["--lease-size", "1000000"])
        .args(["--offline-amount-cap", "999999999.00"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn taxd");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    let mut url = None;
    while lines.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(rest) = line.trim().strip_prefix("taxd listening on ") {
            url = Some(rest.to_string());
            break;
        }
        line.clear();
    }
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = lines.read_to_end(&mut sink);
    });
    Taxd {
        child,
        url: url.expect("taxd printed its address"),
    }
}

/// CPU seconds (user + system) a process has used so far: `pid`, or this process. Zero
/// where /proc is not there.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_string(),
        |p| format!("/proc/{p}/stat"),
    );
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) closed by ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
    #[cfg(target_os = "linux")]
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    #[cfg(not(target_os = "linux"))]
    let hz = 100.0;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

fn seller() -> Party {
    let first17 = "91330100MA2B3C4D5";
    let check = kaipiao_core::taxid::check_digit(first17).unwrap_or('0');
    Party {
        name: "杭州开票测试有限公司".into(),
        tax_id: format!("{first17}{check}"),
        address: "杭州市西湖区文三路 1 号".into(),
        bank: "工商银行杭州分行 1202020209000000001".into(),
    }
}

fn one_line_draft(i: u64) -> Draft {
    Draft::from_json(&json!({
        "buyer": {"name": "张三"},
        "lines": [{"name": "办公用品", "unit": "件", "quantity": (i % 9 + 1).to_string(), "unit_price": "12.5", "tax_rate": "0.13"}],
        "issuer": "bench"
    }))
    .expect("draft")
}

fn no_progress(_: Progress) {}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Drains everything with `opts` (re-running after a transient end, which a local taxd
/// should never cause), returning the time taken.
fn drain(ledger: &Ledger, key: &DeviceKey, opts: &SyncOptions) -> Duration {
    let rt = runtime();
    let started = Instant::now();
    for _ in 0..5 {
        let report = rt
            .block_on(sync_now(ledger, key, opts, &no_progress))
            .expect("sync");
        match report.outcome {
            SyncOutcome::Complete => return started.elapsed(),
            SyncOutcome::Transient(why) => eprintln!("drain: transient end, again: {why}"),
            SyncOutcome::Stopped(why) => panic!("drain stopped: {why}"),
        }
    }
    panic!("the drain did not complete");
}

fn issue_backlog(ledger: &Ledger, key: &DeviceKey, n: u64) -> Duration {
    let drafts: Vec<Draft> = (0..n).map(one_line_draft).collect();
    let started = Instant::now();
    for d in &drafts {
        ledger.issue(d, key, Utc::now()).expect("issue");
    }
    started.elapsed()
}

/// Issues one invoice at a time with `PACE` between them until `until` says stop (or
/// `n` were issued), returning each issuance's latency.
fn paced_issuance(
    ledger: &Ledger,
    key: &DeviceKey,
    n: usize,
    until: &dyn Fn() -> bool,
) -> Vec<Duration> {
    let draft = one_line_draft(1);
    let mut latencies = Vec::with_capacity(n.min(100_000));
    while latencies.len() < n && !until() {
        let started = Instant::now();
        ledger.issue(&draft, key, Utc::now()).expect("issue");
        latencies.push(started.elapsed());
        std::thread::sleep(PACE);
    }
    latencies
}

struct Stats {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn stats(latencies: &[Duration]) -> Stats {
    let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    // Nearest rank.
    let at = |p: f64| {
        let rank = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
        ms[rank - 1]
    };
    Stats {
        n: ms.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: ms.last().copied().unwrap_or(0.0),
    }
}

fn show(label: &str, s: &Stats) {
    println!(
        "{label}: n {}, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        s.n, s.p50, s.p90, s.p99, s.max
    );
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    #[cfg(target_os = "linux")]
    if pinned() {
        pin_to(0);
    }
    let backlog: u64 = if benching { 10_000 } else { 300 };
    let bin = taxd_release();
    let dir = tempfile::tempdir().expect("tempdir");
    // DRAIN_TAXD_DIR puts the authority's database elsewhere (e.g. /dev/shm): a real
    // authority's disk is not the clerk's.
    let taxd_dir = match std::env::var_os("DRAIN_TAXD_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("DRAIN_TAXD_DIR"),
        None => tempfile::tempdir().expect("tempdir"),
    };
    let taxd_db = taxd_dir.path().join("taxd.db");
    let taxd = start_taxd(&bin, &taxd_db);
    let data = dir.path().join("ledger");
    let keys = KeySource::with_passphrase(PASSPHRASE);
    let ledger = Ledger::open(&data).expect("open");
    ledger
        .init(&seller(), "bench", &keys, Utc::now())
        .expect("init");
    let key = ledger.unseal_key(&keys).expect("unseal");
    runtime()
        .block_on(kaipiao_sync::enroll(
            &ledger,
            &key,
            std::slice::from_ref(&taxd.url),
            TOKEN,
            &SyncOptions::default(),
        ))
        .expect("enroll");
    let opts = SyncOptions::default();
    println!(
        "taxd: {} (release), database {}; ledger {}; backlog {backlog}; batch size {}; pace {} ms; {}",
        bin.display(),
        taxd_db.display(),
        data.display(),
        opts.batch_size,
        PACE.as_millis(),
        if pinned() {
            "taxd on CPU 1, till and drain on CPU 0"
        } else {
            "taxd, till and drain share every CPU (DRAIN_PIN=0)"
        }
    );

    // Warm-up: caches, the taxd's device key, the connection.
    issue_backlog(&ledger, &key, 100);
    drain(&ledger, &key, &opts);

    // Throughput: import, then drain, the same 10,000.
    let import = issue_backlog(&ledger, &key, backlog);
    let cpu_before = (cpu_seconds(Some(taxd.child.id())), cpu_seconds(None));
    let drained = drain(&ledger, &key, &opts);
    let cpu_after = (cpu_seconds(Some(taxd.child.id())), cpu_seconds(None));
    println!(
        "import {backlog}: {:.2} s ({:.3} ms/item); drain {backlog}: {:.2} s ({:.3} ms/item); drain / import = {:.3}",
        import.as_secs_f64(),
        import.as_secs_f64() * 1e3 / backlog as f64,
        drained.as_secs_f64(),
        drained.as_secs_f64() * 1e3 / backlog as f64,
        drained.as_secs_f64() / import.as_secs_f64()
    );
    println!(
        "CPU during that drain: taxd {:.2} s, this process (client) {:.2} s, wall {:.2} s",
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
        drained.as_secs_f64()
    );

    // Issuance latency, in rounds so that the disk's ups and downs (a shared virtual disk
    // has them) fall on every kind of window alike. Each round: a fresh backlog; issuance
    // with it pending and nothing draining (issuing reads the pending invoices for the
    // offline limits, so a backlog costs something whether or not it drains); issuance
    // while it drains on another thread; issuance with nothing pending.
    let rounds = if benching { 3 } else { 1 };
    let window = if benching { 400 } else { 30 };
    let (mut idle_backlog, mut busy, mut idle_empty) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let import = issue_backlog(&ledger, &key, backlog);
        idle_backlog.extend(paced_issuance(&ledger, &key, window, &|| false));
        let done = Arc::new(AtomicBool::new(false));
        let drainer = {
            let done = done.clone();
            let data = data.clone();
            let secret = key.secret_bytes();
            let opts = opts.clone();
            std::thread::spawn(move || {
                // Set however the drain ends, a panic included, so issuance stops too.
                struct Done(Arc<AtomicBool>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _done = Done(done);
                // As the app's background sync thread does.
                kaipiao_sync::yield_to_clerk();
                let ledger = Ledger::open(&data).expect("open");
                let key = DeviceKey::from_bytes(&secret);
                drain(&ledger, &key, &opts)
            })
        };
        let during = paced_issuance(&ledger, &key, usize::MAX, &|| done.load(Ordering::SeqCst));
        let took = drainer.join().expect("drainer");
        println!(
            "round {round}: import {backlog} {:.2} s; drain with issuance alongside {:.2} s (drain / import = {:.3}), {} issued meanwhile",
            import.as_secs_f64(),
            took.as_secs_f64(),
            took.as_secs_f64() / import.as_secs_f64(),
            during.len()
        );
        busy.extend(during);
        idle_empty.extend(paced_issuance(&ledger, &key, window, &|| false));
        drain(&ledger, &key, &opts);
    }
    let (idle_empty, idle_backlog, busy) = (stats(&idle_empty), stats(&idle_backlog), stats(&busy));
    show("issuance, idle ledger, nothing pending", &idle_empty);
    show(
        &format!("issuance, idle ledger, {backlog} pending"),
        &idle_backlog,
    );
    show("issuance, during the drain", &busy);
    println!(
        "p99 during the drain / p99 idle = {:.2} (nothing pending), {:.2} ({backlog} pending)",
        busy.p99 / idle_empty.p99,
        busy.p99 / idle_backlog.p99
    );

    if let Ok(list) = std::env::var("DRAIN_BATCH") {
        for size in list
            .split(',')
            .filter_map(|s| s.trim().parse::<usize>().ok())
        {
            let n = if benching { 2000 } else { 100 };
            let opts = SyncOptions {
                batch_size: size,
                ..SyncOptions::default()
            };
            let import = issue_backlog(&ledger, &key, n);
            let took = drain(&ledger, &key, &opts);
            println!(
                "batch size {size}: import {n} {:.2} s, drain {:.2} s ({:.3} ms/item), drain / import = {:.3}",
                import.as_secs_f64(),
                took.as_secs_f64(),
                took.as_secs_f64() * 1e3 / n as f64,
                took.as_secs_f64() / import.as_secs_f64()
            );
        }
    }
    drop(taxd);
}
