//! Crash safety of issuance (SPEC 5, 8): `kill -9` of `kaipiao issue` at many moments —
//! before, during and after its transaction — never leaves a gap, a duplicate number, a
//! half-written invoice or a lost invoice that was reported issued.

use kaipiao_tests::*;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const KILLS: usize = 48;
/// Undisturbed runs that measure how long one whole `issue` takes here.
const CALIBRATION_RUNS: usize = 3;

#[test]
fn kill_9_during_issue_never_breaks_the_chain() {
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    taxd.stop();

    // Undisturbed issues measure how long a whole run takes here, so the kill moments can
    // be spread over before, during and after the transaction.
    let mut completed: Vec<Value> = Vec::new(); // envelopes of runs that exited 0
    let mut full = Duration::ZERO;
    for i in 0..CALIBRATION_RUNS {
        let started = Instant::now();
        completed.push(shop.issue(&small_draft(&format!("计时{i}"), "1")));
        full = full.max(started.elapsed());
    }
    let max_delay_ms = (full.as_millis() as u64 * 3 / 2).max(20);
    let mut printed_then_killed = 0usize; // runs killed after their first stdout byte
    let mut rng = rand::thread_rng();
    for i in 0..KILLS {
        let p = shop.write_draft(&small_draft(&format!("崩溃{i}"), &format!("{}", i + 1)));
        let mut bg = shop.spawn(&["--json", "issue", "--file", p.to_str().expect("utf-8")]);
        if i % 4 == 3 {
            // Killed the moment it starts printing the envelope: after the commit.
            let got_byte = bg.wait_first_stdout_byte(Duration::from_secs(60));
            let out = bg.kill9();
            if got_byte {
                if out.code == 0 {
                    completed.push(
                        serde_json::from_str(&format!("{{{}", out.stdout))
                            .unwrap_or_else(|e| panic!("envelope after first byte ({e})\n{out}")),
                    );
                } else {
                    printed_then_killed += 1;
                }
            } else {
                panic!("issue printed nothing and exited\n{out}");
            }
        } else {
            // A random kill moment; this delay only picks when to kill, it waits for nothing.
            let delay = rng.gen_range(0..=max_delay_ms);
            std::thread::sleep(Duration::from_millis(delay));
            let exited = bg.try_exited();
            let out = bg.kill9();
            match exited {
                Some(0) => completed.push(out.json()),
                Some(code) => panic!("issue failed on its own with {code}\n{out}"),
                None => {}
            }
        }
    }

    // The ledger is whole.
    let v = shop.kaipiao(&["--json", "verify"]);
    v.expect_code(0);
    let rows = shop.list(None);
    let n = rows.len();
    eprintln!(
        "crash loop: one issue takes {full:?}, kill delays 0..={max_delay_ms} ms; {n} invoices \
         after {KILLS} killed runs ({} completed before the kill, {printed_then_killed} killed \
         after printing)",
        completed.len() - CALIBRATION_RUNS
    );
    assert!(
        n >= completed.len() + printed_then_killed && n <= KILLS + CALIBRATION_RUNS,
        "{n} invoices, {} completed runs, {printed_then_killed} killed after printing",
        completed.len()
    );
    let mut numbers = HashSet::new();
    let mut last = 0u128;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            u(row, "/seq"),
            i as u64 + 1,
            "seqs must run 1..n without gaps: {rows:?}"
        );
        let num = number_value(s(row, "/number"));
        assert!(
            num > last,
            "numbers strictly increasing: {num} after {last}"
        );
        assert!(numbers.insert(num), "duplicate number {num}");
        last = num;
        assert_eq!(row["status"], json!("pending"));
    }
    // Every run that reported success is in the ledger, exactly as it printed it.
    for env in &completed {
        let seq = u(env, "/invoice/seq") as usize;
        assert!(seq >= 1 && seq <= n, "completed seq {seq} not in 1..={n}");
        assert_eq!(rows[seq - 1]["number"], env["invoice"]["number"]);
        assert_eq!(rows[seq - 1]["id"], env["invoice"]["id"]);
    }
    // No stale lock or half state blocks the next clerk action.
    let after = shop.issue(&small_draft("之后", "5"));
    assert_eq!(u(&after, "/invoice/seq"), n as u64 + 1);
    let n = n + 1;
    assert_eq!(shop.status()["pending"], json!(n));

    // The authority returns: everything is accepted and the heads agree.
    taxd.restart();
    let doc = shop.sync_until_complete(3);
    assert_eq!(doc["pending"], json!(0), "{doc}");
    assert_eq!(shop.list(Some("accepted")).len(), n);
    let st = shop.status();
    assert_eq!(st["head"], doc["server_head"], "local head == server head");
    assert_eq!(u(&st, "/head/seq"), n as u64);
    let (file, _) = shop.export();
    assert_eq!(
        verify_export(&file, &taxd.authority_key()),
        (n as u64, n as u64)
    );
}
