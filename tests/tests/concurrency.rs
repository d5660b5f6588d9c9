//! Several processes on one data directory (SPEC 5): issuers are serialised by SQLite's
//! write lock into one gapless chain; concurrent syncs never submit twice or skip.

use kaipiao_tests::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

#[test]
fn concurrent_issuers_share_one_gapless_chain() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    const PROCS: usize = 4;
    const EACH: usize = 5;
    let mut running = Vec::new();
    for p in 0..PROCS {
        let mut text = String::new();
        for i in 0..EACH {
            text.push_str(
                &small_draft(&format!("进程{p}-{i}"), &format!("{}.{p}{i}", i + 1)).to_string(),
            );
            text.push('\n');
        }
        let f = shop.write_file("drafts.jsonl", text.as_bytes());
        running.push(shop.spawn(&["--json", "import", "--file", f.to_str().unwrap()]));
    }
    for bg in running {
        let out = bg.wait(Duration::from_secs(120));
        out.expect_code(0);
        assert_eq!(out.json()["issued"], json!(EACH), "{out}");
    }
    let rows = shop.list(None);
    assert_eq!(rows.len(), PROCS * EACH);
    let mut numbers = HashSet::new();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(u(r, "/seq"), i as u64 + 1, "one gapless chain: {rows:?}");
        assert!(
            numbers.insert(r["number"].clone()),
            "duplicate number {}",
            r["number"]
        );
    }
    shop.kaipiao(&["verify"]).expect_code(0);
}

#[test]
fn concurrent_syncs_submit_each_invoice_once() {
    let taxd = Taxd::start(&["--fault-delay-ms", "5..20"]);
    let shop = Shop::new(&taxd);
    let drafts: Vec<_> = (1..=12)
        .map(|i| small_draft(&format!("并发{i}"), &format!("{i}")))
        .collect();
    shop.import(&drafts);
    let a = shop.spawn(&["--json", "sync"]);
    let b = shop.spawn(&["--json", "sync"]);
    for bg in [a, b] {
        let out = bg.wait(Duration::from_secs(90));
        // The second may wait for the outbox lock or report it busy; never an integrity stop.
        assert!(matches!(out.code, 0 | 1 | 3), "a concurrent sync\n{out}");
    }
    let doc = shop.sync_until_complete(3);
    assert_eq!(doc["pending"], json!(0));
    assert_eq!(shop.list(Some("accepted")).len(), 12);
    assert_eq!(shop.status()["head"], doc["server_head"]);
    let bad: Vec<_> = taxd
        .requests()
        .into_iter()
        .filter(|r| r["status"] == json!(422) || r["status"] == json!(409))
        .collect();
    assert!(bad.is_empty(), "two drains of one outbox collided: {bad:?}");
}

#[test]
fn a_sync_waits_a_bounded_time_for_another_drainer_then_says_so_with_its_summary() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let drafts: Vec<_> = (1..=3)
        .map(|i| small_draft(&format!("等锁{i}"), &format!("{i}")))
        .collect();
    shop.import(&drafts);
    // Another process drains this outbox (here: holds its lock, as the app would).
    let other = kaipiao_ledger::Ledger::open(&shop.data).expect("open");
    let held = other.lock_outbox().expect("lock");

    // Still busy after the wait: the summary, exit 3 (work remains, transient).
    let out = shop.kaipiao(&["--json", "sync", "--lock-wait", "1"]);
    out.expect_code(3);
    let doc = out.json();
    assert_eq!(doc["pending"], json!(3), "{out}");
    assert_eq!(doc["submitted"], json!(0), "{out}");
    assert_eq!(doc["server_head"], json!(null), "{out}");
    assert!(
        out.stderr.contains("another process") || out.stderr.contains("另一个进程"),
        "{out}"
    );

    // Released while a sync waits: that sync goes on and sends everything.
    let mut cmd = shop.command(&["--json", "sync", "--lock-wait", "120"]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let waiting = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("up to") || l.contains("最多等待"));
    assert!(waiting.is_some(), "the waiting sync says that it waits");
    drop(held);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0), "{rest:?}");
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(doc["accepted"], json!(3), "{doc}");
    assert_eq!(doc["pending"], json!(0), "{doc}");
}
