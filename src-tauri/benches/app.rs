//! The desktop app's figures for docs/BENCHMARKS.md (issue 3, "Set-up and speed").
//!
//! Run: `cargo bench -p kaipiao-app --bench app` (release; `--profile dev` for a debug
//! build), optionally naming sections: `-- list issue window`. It prints the machine,
//! then, each with the baseline it is compared against in the same run:
//!
//! - **list**: the `list_invoices` command path (`Engine::list`, what the virtualized
//!   list calls) over a ledger of 100,000 invoices: the first page after a filter change
//!   (count + page), a page in the middle and the last page while scrolling, for the
//!   status filters, a buyer filter, number searches and a month. Baseline: loading the
//!   whole filtered result (what the app did before paging), with the memory it held.
//! - **issue**: `Engine::issue` (the `issue` command's body), `Ledger::issue`, and a bare
//!   SQLite one-row commit (WAL, synchronous=FULL) in the same directory on disk.
//! - **window**: the real app under Xvfb through tauri-driver: cold start to an
//!   interactable `buyer-name`, idle RSS/PSS of the app and its WebKit processes, both
//!   against `examples/blank` (a bare Tauri window with one input); click-to-number
//!   (`issue-submit` clicked → `issued-number` shows the new number, timed in the page);
//!   and the list in the window over the 100,000-invoice ledger.
//!
//! The 100,000-invoice ledger is made with kaipiao-ledger directly (`support/shop.rs`), on
//! /dev/shm when there is one (about a minute); `KAIPIAO_BENCH_LEDGER=DIR` keeps and
//! reuses it, `KAIPIAO_BENCH_N` changes the size. Under `cargo test --benches` everything
//! runs once on 2,000 invoices, without the window.

#[path = "../tests/driver/mod.rs"]
mod driver;
#[path = "support/shop.rs"]
mod shop;

use driver::Window;
use kaipiao_desk::dto::{ListQuery, SetupRequest};
use kaipiao_desk::watcher::Silent;
use kaipiao_desk::{Engine, EngineConfig};
use kaipiao_ledger::{KeySource, Ledger, ListFilter, Status};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAGE: u32 = 200;

struct Run {
    benching: bool,
    reps: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, min and max of the samples, in ms.
fn stats(samples: &[f64]) -> (f64, f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let median = if s.is_empty() {
        f64::NAN
    } else {
        s[s.len() / 2]
    };
    (
        median,
        *s.first().unwrap_or(&f64::NAN),
        *s.last().unwrap_or(&f64::NAN),
    )
}

fn fmt_stats(samples: &[f64]) -> String {
    let (m, lo, hi) = stats(samples);
    format!(
        "median {m:.2} ms (min {lo:.2}, max {hi:.2}, n={})",
        samples.len()
    )
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let v = f();
    (v, ms(start.elapsed()))
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let debian = std::fs::read_to_string("/etc/debian_version").unwrap_or_default();
    println!("## machine");
    println!(
        "cpu: {cpu} x {} (available parallelism)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "memory: {mem}; Debian {}; Linux {}",
        debian.trim(),
        sh("uname", &["-r"])
    );
    println!("rustc: {}", sh("rustc", &["--version"]));
    println!(
        "WebKitGTK: {}",
        sh(
            "dpkg-query",
            &["-W", "-f=${Version}", "libwebkit2gtk-4.1-0"]
        )
    );
    println!(
        "build: {} (debug assertions {})",
        if cfg!(debug_assertions) {
            "dev profile"
        } else {
            "release/bench profile"
        },
        if cfg!(debug_assertions) { "on" } else { "off" }
    );
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

fn engine_config(dir: &Path) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        data_dir_from_env: true,
        settings_file: dir.join("app-settings.json"),
        env_passphrase: Some(shop::PASSPHRASE.into()),
        system_locale: "zh_CN.UTF-8".into(),
        dev_build: true,
    }
}

/// Scratch space on the real disk (issuing is an fsync; /tmp may be tmpfs elsewhere).
fn disk_tempdir() -> tempfile::TempDir {
    let base = driver::workspace().join("target/bench-tmp");
    std::fs::create_dir_all(&base).expect("target/bench-tmp");
    tempfile::tempdir_in(base).expect("tempdir")
}

enum Ledger100k {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl Ledger100k {
    fn path(&self) -> PathBuf {
        match self {
            Ledger100k::Kept(p) => p.clone(),
            Ledger100k::Temp(t) => t.path().join("shop"),
        }
    }
}

fn big_ledger(n: u64) -> Ledger100k {
    let (ledger, dir) = match std::env::var_os("KAIPIAO_BENCH_LEDGER") {
        Some(p) => {
            let p = PathBuf::from(p);
            (Ledger100k::Kept(p.clone()), p)
        }
        None => {
            let shm = Path::new("/dev/shm");
            let t = if shm.is_dir() {
                tempfile::tempdir_in(shm)
            } else {
                tempfile::tempdir()
            }
            .expect("tempdir");
            let dir = t.path().join("shop");
            (Ledger100k::Temp(t), dir)
        }
    };
    let existing = Ledger::open(&dir)
        .ok()
        .and_then(|l| l.list_seqs(&ListFilter::default()).ok())
        .map_or(0, |s| s.len() as u64);
    if existing == n {
        println!("ledger: reusing {} ({n} invoices)", dir.display());
    } else {
        assert_eq!(
            existing,
            0,
            "{} holds {existing} invoices, not {n}: remove it",
            dir.display()
        );
        std::fs::create_dir_all(&dir).expect("ledger dir");
        let took = shop::populate(&dir, n, &[]);
        println!(
            "ledger: {n} invoices issued and receipted through kaipiao-ledger in {:.1} s ({:.2} ms each) at {}",
            took.as_secs_f64(),
            ms(took) / n as f64,
            dir.display()
        );
    }
    let size = std::fs::metadata(dir.join(kaipiao_ledger::DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("ledger file: {:.0} MiB", size as f64 / 1024.0 / 1024.0);
    ledger
}

// -------------------------------------------------------------------------------------
// list
// -------------------------------------------------------------------------------------

fn number_of(seq: u64) -> String {
    format!("260330000001{seq:08}")
}

fn query(
    status: Option<&str>,
    search: Option<&str>,
    buyer: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> ListQuery {
    ListQuery {
        status: status.map(str::to_string),
        search: search.map(str::to_string),
        buyer: buyer.map(str::to_string),
        from: from.map(str::to_string),
        to: to.map(str::to_string),
        offset: 0,
        limit: PAGE,
    }
}

/// The memory a `Vec<InvoiceSummary>` holds: what the app cached per filter before paging.
#[allow(clippy::ptr_arg)] // the Vec's capacity is part of the answer
fn held_bytes(rows: &Vec<kaipiao_ledger::InvoiceSummary>) -> usize {
    rows.capacity() * std::mem::size_of::<kaipiao_ledger::InvoiceSummary>()
        + rows
            .iter()
            .map(|r| {
                r.number.capacity()
                    + r.id.capacity()
                    + r.kind.capacity()
                    + r.issued_at.capacity()
                    + r.buyer_name.capacity()
                    + r.buyer_tax_id.capacity()
                    + r.total.capacity()
            })
            .sum::<usize>()
}

fn list_bench(run: &Run, dir: &Path, n: u64) {
    println!("\n## list: the list_invoices command path over {n} invoices (page = {PAGE} rows, newest first)");
    let engine = Engine::open(engine_config(dir), Arc::new(Silent)).expect("engine");
    let old = Ledger::open(dir).expect("second connection");
    let some = n / 2 + 17;
    let buyer_k = 123;
    let cases: Vec<(&str, ListQuery)> = vec![
        ("all", query(None, None, None, None, None)),
        (
            "status = pending",
            query(Some("pending"), None, None, None, None),
        ),
        (
            "status = rejected",
            query(Some("rejected"), None, None, None, None),
        ),
        (
            "status = accepted",
            query(Some("accepted"), None, None, None, None),
        ),
        (
            "buyer filter (one firm of 500)",
            query(None, None, Some(&format!("第{buyer_k:03}号")), None, None),
        ),
        (
            "search: a whole number",
            query(None, Some(&number_of(some)), None, None, None),
        ),
        (
            "search: 6 digits of a number",
            query(
                None,
                Some(&format!("{:06}", some % 1_000_000)),
                None,
                None,
                None,
            ),
        ),
        (
            "search: buyer name",
            query(None, Some("第123号"), None, None, None),
        ),
        (
            "a month (2026-03)",
            query(None, None, None, Some("2026-03-01"), Some("2026-03-31")),
        ),
        (
            "accepted + buyer + month",
            query(
                Some("accepted"),
                None,
                Some("第123号"),
                Some("2026-03-01"),
                Some("2026-03-31"),
            ),
        ),
    ];
    println!("| filter | matches | first page after a filter change | a middle page, scrolling | last page | held now | before: load all | held before |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut details = Vec::new();
    for (label, q) in &cases {
        // Another filter first, so each timed call counts afresh, as after a filter change.
        let other = if q.status.as_deref() == Some("pending") {
            query(None, None, None, None, None)
        } else {
            query(Some("pending"), None, None, None, None)
        };
        let mut first = Vec::new();
        let mut total = 0u32;
        for _ in 0..run.reps {
            engine.list(&other).expect("other");
            let (page, t) = time(|| engine.list(q).expect("list"));
            total = page.total;
            first.push(t);
        }
        let mut middle = Vec::new();
        let mut last = Vec::new();
        for _ in 0..run.reps {
            let (_, t) = time(|| {
                engine
                    .list(&ListQuery {
                        offset: total / 2,
                        ..q.clone()
                    })
                    .expect("middle")
            });
            middle.push(t);
            let (page, t) = time(|| {
                engine
                    .list(&ListQuery {
                        offset: total.saturating_sub(PAGE),
                        ..q.clone()
                    })
                    .expect("last")
            });
            assert!(page.rows.len() as u32 == total.min(PAGE));
            last.push(t);
        }
        // Before: on each filter change the whole filtered result was loaded into a cache,
        // newest first, and the buyer filter applied in Rust to what the SQL returned.
        let filter = ListFilter {
            status: q.status.as_deref().and_then(Status::parse),
            search: q.search.clone(),
            from: q.from.clone(),
            to: q.to.clone(),
            ..ListFilter::default()
        };
        let mut all = Vec::new();
        let mut held = 0;
        for _ in 0..run.reps.min(5) {
            let (rows, t) = time(|| {
                let mut rows = old.list(&filter).expect("all");
                if let Some(buyer) = q.buyer.as_deref().map(str::to_lowercase) {
                    rows.retain(|r| {
                        r.buyer_name.to_lowercase().contains(&buyer)
                            || r.buyer_tax_id.to_lowercase().contains(&buyer)
                    });
                }
                rows.reverse();
                rows
            });
            assert_eq!(rows.len() as u32, total);
            held = held_bytes(&rows);
            all.push(t);
        }
        let m = |s: &[f64]| stats(s).0;
        println!(
            "| {label} | {total} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} MiB | {:.1} ms | {:.1} MiB |",
            m(&first),
            m(&middle),
            m(&last),
            (total as usize * std::mem::size_of::<u64>()) as f64 / 1024.0 / 1024.0,
            m(&all),
            held as f64 / 1024.0 / 1024.0
        );
        details.push((label, first, middle));
    }
    println!("(medians of {} runs)", run.reps);
    for (label, first, middle) in &details {
        println!(
            "  {label}: first page {}; middle page {}",
            fmt_stats(first),
            fmt_stats(middle)
        );
    }
}

// -------------------------------------------------------------------------------------
// issue
// -------------------------------------------------------------------------------------

fn draft() -> kaipiao_desk::dto::DraftDto {
    use kaipiao_desk::dto::*;
    DraftDto {
        kind: "ordinary".into(),
        buyer: PartyDto {
            name: "个人买家".into(),
            ..PartyDto::default()
        },
        lines: vec![DraftLineDto {
            name: "*日用杂品*收纳盒".into(),
            unit: "个".into(),
            quantity: "3".into(),
            unit_price: "20".into(),
            tax_rate: "0.13".into(),
            ..DraftLineDto::default()
        }],
        price_includes_tax: false,
        original: None,
        remarks: String::new(),
        issuer: "李四".into(),
        credit_reason: None,
    }
}

/// Returns the median of `Engine::issue` in ms.
fn issue_bench(run: &Run) -> f64 {
    let reps = if run.benching { 60 } else { 3 };
    println!(
        "\n## issue: one invoice, durable, on disk (target/bench-tmp), {reps} each, interleaved"
    );
    let tmp = disk_tempdir();
    // (a) bare SQLite
    let conn = rusqlite::Connection::open(tmp.path().join("bare.sqlite3")).expect("open");
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .expect("table");
    let body = "x".repeat(1500);
    // (b) the ledger
    let ldir = tmp.path().join("ledger");
    std::fs::create_dir_all(&ldir).expect("dir");
    shop::populate(&ldir, 0, &[]);
    let ledger = Ledger::open(&ldir).expect("ledger");
    let key = ledger
        .unseal_key(&KeySource::with_passphrase(shop::PASSPHRASE))
        .expect("key");
    let core_draft = draft().to_draft();
    // (c) the engine
    let edir = tmp.path().join("engine");
    std::fs::create_dir_all(&edir).expect("dir");
    shop::populate(&edir, 0, &[]);
    let engine = Engine::open(engine_config(&edir), Arc::new(Silent)).expect("engine");
    let d = draft();
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        a.push(
            time(|| {
                conn.execute("INSERT INTO t (body) VALUES (?1)", [&body])
                    .expect("insert")
            })
            .1,
        );
        b.push(
            time(|| {
                ledger
                    .issue(&core_draft, &key, chrono::Utc::now())
                    .expect("issue")
            })
            .1,
        );
        c.push(time(|| engine.issue(&d).expect("issue")).1);
    }
    let (ma, mb, mc) = (stats(&a).0, stats(&b).0, stats(&c).0);
    println!(
        "(a) bare SQLite one-row commit, WAL + FULL: {}",
        fmt_stats(&a)
    );
    println!(
        "(b) Ledger::issue, 1 line:                  {}  = {:.2}x (a)",
        fmt_stats(&b),
        mb / ma
    );
    println!(
        "(c) Engine::issue (the issue command):      {}  = {:.2}x (a), {:.2}x (b)",
        fmt_stats(&c),
        mc / ma,
        mc / mb
    );
    mc
}

// -------------------------------------------------------------------------------------
// window
// -------------------------------------------------------------------------------------

/// Kilobytes of VmRSS and Pss of every process below tauri-driver except WebKitWebDriver,
/// by process name.
fn tree_memory(root: u32) -> Vec<(String, u32, u64, u64)> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut name: HashMap<u32, String> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parent.insert(pid, ppid);
        name.insert(pid, comm);
    }
    let descends = |mut pid: u32| {
        while let Some(&p) = parent.get(&pid) {
            if p == root {
                return true;
            }
            if p <= 1 {
                return false;
            }
            pid = p;
        }
        false
    };
    let kb = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for (&pid, comm) in &name {
        if !descends(pid) || comm == "WebKitWebDriver" {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        out.push((
            comm.clone(),
            pid,
            kb(&status, "VmRSS:"),
            kb(&rollup, "Pss:"),
        ));
    }
    out.sort();
    out
}

fn memory_line(label: &str, procs: &[(String, u32, u64, u64)]) -> (u64, u64) {
    let rss: u64 = procs.iter().map(|p| p.2).sum();
    let pss: u64 = procs.iter().map(|p| p.3).sum();
    let parts: Vec<String> = procs
        .iter()
        .filter(|p| p.2 > 0)
        .map(|p| {
            format!(
                "{} {:.1}/{:.1}",
                p.0,
                p.2 as f64 / 1024.0,
                p.3 as f64 / 1024.0
            )
        })
        .collect();
    println!(
        "  {label}: RSS {:.1} MiB, PSS {:.1} MiB = {} (MiB RSS/PSS)",
        rss as f64 / 1024.0,
        pss as f64 / 1024.0,
        parts.join(", ")
    );
    (rss, pss)
}

/// Waits until `testid` is displayed and enabled; the time since the session was requested.
fn until_interactable(w: &Window, testid: &str) -> f64 {
    let sel = Window::css(testid);
    loop {
        let ready = w.rt.block_on(async {
            match w.c().find(fantoccini::Locator::Css(&sel)).await {
                Ok(el) => {
                    el.is_displayed().await.unwrap_or(false)
                        && el.is_enabled().await.unwrap_or(false)
                }
                Err(_) => false,
            }
        });
        if ready {
            return ms(w.launch_requested.elapsed());
        }
        assert!(
            w.launch_requested.elapsed() < driver::DEADLINE,
            "{testid} never became interactable"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `act` in the page and resolves when `until` holds: [ms to the DOM change, ms to
/// the next frame after it]. Both JS snippets are statements/expressions over `document`.
fn timed_in_page(w: &Window, act: &str, until: &str) -> (f64, f64) {
    let js = format!(
        r#"
        const done = arguments[arguments.length - 1];
        const until = () => {{ return ({until}); }};
        let finished = false;
        let obs;
        const t0 = performance.now();
        const check = () => {{
          if (finished) return;
          let ok = false;
          try {{ ok = !!until(); }} catch (e) {{ ok = false; }}
          if (ok) {{
            finished = true;
            obs.disconnect();
            const dom = performance.now() - t0;
            requestAnimationFrame(() => done([dom, performance.now() - t0]));
          }}
        }};
        obs = new MutationObserver(check);
        obs.observe(document.documentElement, {{ subtree: true, childList: true, characterData: true, attributes: true }});
        {act};
        check();
        setTimeout(() => {{ if (!finished) {{ finished = true; obs.disconnect(); done([-1, -1]); }} }}, 25000);
        "#
    );
    let v = w.script_async(&js, vec![]);
    let dom = v[0].as_f64().unwrap_or(-1.0);
    let frame = v[1].as_f64().unwrap_or(-1.0);
    assert!(dom >= 0.0, "timed out in the page: {until}");
    (dom, frame)
}

fn q(testid: &str) -> String {
    format!("document.querySelector('[data-testid=\"{testid}\"]')")
}

fn set_value(testid: &str, value: &str, event: &str) -> String {
    format!("(() => {{ const el = {}; el.value = {}; el.dispatchEvent(new Event('{event}', {{ bubbles: true }})); }})()", q(testid), json!(value))
}

/// A small shop set up by the app's own first-run path against a real taxd.
fn small_shop(taxd: &kaipiao_tests::Taxd) -> (tempfile::TempDir, PathBuf) {
    let tmp = disk_tempdir();
    let dir = tmp.path().join("shop");
    let engine = Engine::open(engine_config(&dir), Arc::new(Silent)).expect("engine");
    engine
        .setup(SetupRequest {
            seller_name: "杭州小店贸易有限公司".into(),
            seller_tax_id: kaipiao_tests::seller_tax_id(),
            seller_address: String::new(),
            seller_bank: String::new(),
            device_name: "前台收银 1".into(),
            servers: vec![taxd.url()],
            token: kaipiao_tests::TOKEN.into(),
            passphrase: None,
            authority_key: None,
        })
        .expect("setup");
    drop(engine);
    (tmp, dir)
}

fn window_bench(run: &Run, big: &Path, n: u64, engine_issue_ms: f64) {
    let reps = if run.benching { 5 } else { 1 };
    println!("\n## window: tauri-driver + WebKitWebDriver, Xvfb 1280x800x24, the page timed with performance.now()");
    let taxd = kaipiao_tests::Taxd::start(&[]);
    let (_keep, shop_dir) = small_shop(&taxd);
    // `make bench-release-app`: the app as packaged (the unpacked .deb) against a release
    // blank window, both given; otherwise both of this build's profile.
    let given = |var: &str| std::env::var_os(var).map(PathBuf::from);
    let app = given("KAIPIAO_BENCH_APP").unwrap_or_else(driver::app_binary);
    let blank = match given("KAIPIAO_BENCH_BLANK") {
        Some(blank) => blank,
        None => {
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "-p",
                    "kaipiao-app",
                    "--example",
                    "blank",
                    "--features",
                    "bench-baseline",
                ])
                .args(if cfg!(debug_assertions) {
                    vec![]
                } else {
                    vec!["--release"]
                })
                .status()
                .expect("cargo build --example blank");
            assert!(status.success(), "building examples/blank failed");
            driver::app_binary()
                .parent()
                .expect("target dir")
                .join("examples/blank")
        }
    };
    println!("app: {}\nbaseline: {}", app.display(), blank.display());
    let shop_env = [
        ("KAIPIAO_DATA", shop_dir.to_str().unwrap()),
        ("KAIPIAO_PASSPHRASE", shop::PASSPHRASE),
    ];

    println!("\ncold start (warm disk cache): session requested -> WebDriver session (web view up) -> buyer-name interactable; then 5 s idle, memory");
    // Per binary: session ms, interactable ms, RSS MiB, PSS MiB.
    type Samples = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let mut results: HashMap<&str, Samples> = HashMap::new();
    for i in 0..reps {
        for (label, bin, env) in [
            ("blank", &blank, &[][..]),
            ("kaipiao-app", &app, &shop_env[..]),
        ] {
            let w = Window::launch(bin, env);
            let session = ms(w.session_granted - w.launch_requested);
            let ready = until_interactable(&w, "buyer-name");
            std::thread::sleep(Duration::from_secs(5));
            let procs = tree_memory(w.driver_pid());
            println!("  run {i} {label}: session {session:.0} ms, interactable {ready:.0} ms");
            let (rss, pss) = memory_line(label, &procs);
            let r = results.entry(label).or_default();
            r.0.push(session);
            r.1.push(ready);
            r.2.push(rss as f64 / 1024.0);
            r.3.push(pss as f64 / 1024.0);
        }
    }
    let (b, a) = (&results["blank"], &results["kaipiao-app"]);
    let m = |s: &[f64]| stats(s).0;
    println!("| | blank Tauri window (baseline) | kaipiao-app | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| WebDriver session (web view up) | {:.0} ms | {:.0} ms | {:.2}x |",
        m(&b.0),
        m(&a.0),
        m(&a.0) / m(&b.0)
    );
    println!(
        "| `buyer-name` interactable | {:.0} ms | {:.0} ms | {:.2}x |",
        m(&b.1),
        m(&a.1),
        m(&a.1) / m(&b.1)
    );
    println!(
        "| idle RSS, all processes | {:.0} MiB | {:.0} MiB | {:.2}x |",
        m(&b.2),
        m(&a.2),
        m(&a.2) / m(&b.2)
    );
    println!(
        "| idle PSS, all processes | {:.0} MiB | {:.0} MiB | {:.2}x |",
        m(&b.3),
        m(&a.3),
        m(&a.3) / m(&b.3)
    );

    println!("\nclick-to-number: issue-submit clicked in the page -> issued-number shows the new number (small shop, taxd up, background sync on)");
    {
        let w = Window::launch(&app, &shop_env);
        until_interactable(&w, "buyer-name");
        let (mut dom, mut frame) = (Vec::new(), Vec::new());
        for i in 0..reps * 4 {
            w.type_into("buyer-name", "个人买家");
            w.fill_line(0, "*日用杂品*收纳盒", "3", "20");
            w.wait_text("total", "67.80");
            let prev = if w.exists(&Window::css("issued-number")) {
                w.text("issued-number")
            } else {
                String::new()
            };
            let until = format!("(el => !!el && el.textContent.trim().length === 20 && el.textContent.trim() !== {})({})", json!(prev), q("issued-number"));
            let (d, f) = timed_in_page(&w, &format!("{}.click()", q("issue-submit")), &until);
            if i > 0 {
                dom.push(d);
                frame.push(f);
            }
        }
        println!("  DOM shows the number: {}", fmt_stats(&dom));
        println!("  next frame after it:  {}", fmt_stats(&frame));
        println!(
            "  Engine::issue alone (same run, same disk): {engine_issue_ms:.2} ms -> the window adds {:.1} ms ({:.2}x)",
            stats(&frame).0 - engine_issue_ms,
            stats(&frame).0 / engine_issue_ms
        );
    }

    println!(
        "\nthe list in the window over {n} invoices (ledger on {})",
        big.display()
    );
    {
        let big_env = [
            ("KAIPIAO_DATA", big.to_str().unwrap()),
            ("KAIPIAO_PASSPHRASE", shop::PASSPHRASE),
        ];
        let w = Window::launch(&app, &big_env);
        let ready = until_interactable(&w, "buyer-name");
        println!("  cold start with the big ledger: buyer-name interactable {ready:.0} ms");
        std::thread::sleep(Duration::from_secs(5));
        memory_line("idle, issue screen", &tree_memory(w.driver_pid()));
        let row = |number: &str| {
            format!("!!document.querySelector('[data-testid=\"invoice-row\"][data-number=\"{number}\"]')")
        };
        let (d, f) = timed_in_page(
            &w,
            &format!("{}.click()", q("nav-invoices")),
            &row(&number_of(n)),
        );
        println!("  open the list (newest row shown): {d:.0} ms DOM, {f:.0} ms frame");
        let mut scroll = Vec::new();
        for (k, frac) in [0.5, 0.25, 0.75, 0.999, 0.1].iter().enumerate() {
            let index = ((n as f64) * frac) as u64;
            let act = format!("(() => {{ const l = {}; l.scrollTop = {}; l.dispatchEvent(new Event('scroll')); }})()", q("invoice-list"), index * 36);
            let (d, f) = timed_in_page(&w, &act, &row(&number_of(n - index)));
            println!("  jump to row {index}: {d:.0} ms DOM, {f:.0} ms frame");
            if k > 0 {
                scroll.push(f);
            }
        }
        let first_row = |cond: &str| {
            format!("(r => !!r && {cond})(document.querySelector('[data-testid=\"invoice-row\"]'))")
        };
        let back_to_top = format!(
            "(() => {{ const l = {}; l.scrollTop = 0; l.dispatchEvent(new Event('scroll')); }})()",
            q("invoice-list")
        );
        w.script(&back_to_top);
        let filters: Vec<(&str, String, String)> = vec![
            (
                "status = rejected",
                set_value("filter-status", "rejected", "change"),
                first_row("r.dataset.status === 'rejected'"),
            ),
            (
                "status = all",
                set_value("filter-status", "", "change"),
                first_row(&format!("r.dataset.number === '{}'", number_of(n))),
            ),
            (
                "buyer filter 第123号",
                set_value("filter-buyer", "第123号", "input"),
                first_row("r.textContent.includes('第123号')"),
            ),
            (
                "buyer filter cleared",
                set_value("filter-buyer", "", "input"),
                first_row(&format!("r.dataset.number === '{}'", number_of(n))),
            ),
            (
                "search: a whole number",
                set_value("invoice-search", &number_of(n / 2 + 17), "input"),
                format!(
                    "document.querySelectorAll('[data-testid=\"invoice-row\"]').length === 1 && {}",
                    first_row(&format!("r.dataset.number === '{}'", number_of(n / 2 + 17)))
                ),
            ),
            (
                "search cleared",
                set_value("invoice-search", "", "input"),
                first_row(&format!("r.dataset.number === '{}'", number_of(n))),
            ),
        ];
        for (label, act, until) in &filters {
            let (d, f) = timed_in_page(&w, act, until);
            let typed = if label.starts_with("status") {
                ""
            } else {
                " (includes the 120 ms the list waits for typing to pause)"
            };
            println!("  {label}: {d:.0} ms DOM, {f:.0} ms frame{typed}");
        }
        println!("  scrolling jumps: {}", fmt_stats(&scroll));
        std::thread::sleep(Duration::from_secs(3));
        memory_line("after browsing the list", &tree_memory(w.driver_pid()));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let sections: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let want = |s: &str| sections.is_empty() || sections.contains(&s);
    let n: u64 = std::env::var("KAIPIAO_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 2_000 });
    let run = Run {
        benching,
        reps: if benching { 11 } else { 1 },
    };
    machine();
    let big = (want("list") || (benching && want("window"))).then(|| big_ledger(n));
    if want("list") {
        list_bench(&run, &big.as_ref().expect("ledger").path(), n);
    }
    let engine_issue = if want("issue") || (benching && want("window")) {
        issue_bench(&run)
    } else {
        0.0
    };
    if benching && want("window") {
        window_bench(&run, &big.as_ref().expect("ledger").path(), n, engine_issue);
    }
    println!(
        "\nload average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
