//! `make crash` (issue 10, item 7): `kill -9` at random moments of every operation that
//! writes — `issue`, `import`, `sync` (its batches and receipt groups, while a real taxd
//! files), `backup` and `restore` (from the newest whole backup, over pending invoices) —
//! a thousand times by default (`KAIPIAO_CRASH_KILLS`). After each kill: the chain
//! verifies, seqs run 1..n without a gap, no number is used twice, every invoice a run
//! reported issued is in the ledger as printed (or, once a restore ran, absent and never
//! received by the authority: issued after the backup and lost with the copy it
//! replaced), and the authority holds at most one receipt per invoice, each for the
//! invoice at that seq here. A backup is whole or absent. At the end everything is filed:
//! exactly one receipt per invoice, and the export passes the independent verifier.
//!
//! Not part of `make test` (minutes, not seconds): an example, run by `make crash`, that
//! panics at the first broken check and prints its figures at the end (they go to
//! docs/BENCHMARKS.md).

use kaipiao_tests::*;
use rand::Rng;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Issue,
    Import,
    /// Sends the backlog in batches and stores the receipts in groups (the default).
    Sync,
    /// `backup --out` a new file.
    Backup,
    /// `restore --replace-pending` from the newest whole backup.
    Restore,
}

const OPS: [Op; 5] = [Op::Issue, Op::Import, Op::Sync, Op::Backup, Op::Restore];
/// Drafts per `import` run.
const IMPORT_LINES: usize = 5;

fn kills() -> usize {
    std::env::var("KAIPIAO_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

struct Loop {
    shop: Shop,
    /// Number -> id of every invoice a run reported issued (exit 0 before the kill).
    reported: HashMap<String, String>,
    drafts: usize,
    /// The backups asked for, in order (each whole or absent after a kill).
    backups: Vec<std::path::PathBuf>,
    /// A restore ran (to the end or killed): reported invoices may have been lost with
    /// the ledger it replaced.
    restored: bool,
}

impl Loop {
    fn args(&mut self, op: Op) -> Vec<String> {
        let next = |l: &mut Loop| {
            l.drafts += 1;
            small_draft(
                &format!("崩溃客户{}", l.drafts),
                &format!("{}.00", l.drafts % 90 + 1),
            )
        };
        match op {
            Op::Issue => {
                let d = next(self);
                let p = self.shop.write_draft(&d);
                vec![
                    "--json".into(),
                    "issue".into(),
                    "--file".into(),
                    p.display().to_string(),
                ]
            }
            Op::Import => {
                let lines: Vec<String> =
                    (0..IMPORT_LINES).map(|_| next(self).to_string()).collect();
                let p = self
                    .shop
                    .write_file("drafts.jsonl", lines.join("\n").as_bytes());
                vec![
                    "--json".into(),
                    "import".into(),
                    "--file".into(),
                    p.display().to_string(),
                ]
            }
            Op::Sync => vec![
                "--json".into(),
                "sync".into(),
                "--lock-wait".into(),
                "0".into(),
            ],
            Op::Backup => {
                let out = self
                    .shop
                    .work
                    .join(format!("b{:05}.kaipiao-backup", self.backups.len()));
                self.backups.push(out.clone());
                vec![
                    "--json".into(),
                    "backup".into(),
                    "--out".into(),
                    out.display().to_string(),
                ]
            }
            Op::Restore => {
                self.restored = true;
                let newest = self.backups.iter().rev().find(|b| b.exists()).cloned();
                vec![
                    "--json".into(),
                    "restore".into(),
                    newest.unwrap_or_default().display().to_string(),
                    "--replace-pending".into(),
                ]
            }
        }
    }

    /// What a run that exited 0 reported issued.
    fn record(&mut self, op: Op, out: &Output) {
        let Ok(doc) = serde_json::from_str::<Value>(&out.stdout) else {
            return;
        };
        match op {
            Op::Issue => {
                let inv = &doc["invoice"];
                self.reported.insert(
                    inv["number"].as_str().unwrap_or_default().to_string(),
                    inv["id"].as_str().unwrap_or_default().to_string(),
                );
            }
            Op::Import | Op::Sync | Op::Backup | Op::Restore => {}
        }
    }

    /// A data directory left without its ledger by a restore killed between its two
    /// renames is finished by running `restore` again (docs/CLI.md).
    fn finish_restore(&self, round: usize) {
        if self.shop.data.join("ledger.sqlite3").exists() {
            return;
        }
        let newest = self.backups.iter().rev().find(|b| b.exists());
        let file = newest.map(|b| b.display().to_string()).unwrap_or_default();
        let out = self
            .shop
            .kaipiao(&["--json", "restore", &file, "--replace-pending"]);
        assert_eq!(out.code, 0, "round {round}: finishing the restore\n{out}");
    }

    /// The checks after every kill.
    #[track_caller]
    fn check(&self, taxd: &Taxd, round: usize) {
        self.shop.kaipiao(&["--json", "verify"]).expect_code(0);
        let rows = self.shop.list(None);
        let mut numbers = HashSet::new();
        let mut by_number = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(
                u(row, "/seq"),
                i as u64 + 1,
                "round {round}: a gap in {rows:?}"
            );
            let number = s(row, "/number").to_string();
            assert!(
                numbers.insert(number.clone()),
                "round {round}: {number} twice"
            );
            by_number.insert(number, s(row, "/id").to_string());
        }
        let receipts = taxd.receipts_of(&self.shop.device_id);
        let received: HashSet<&str> = receipts.iter().map(|r| s(r, "/number")).collect();
        for (number, id) in &self.reported {
            match by_number.get(number) {
                Some(found) => assert_eq!(
                    found, id,
                    "round {round}: {number} is in the ledger as another invoice (a number used twice)"
                ),
                None => assert!(
                    self.restored && !received.contains(number.as_str()),
                    "round {round}: {number} was reported issued and is not in the ledger"
                ),
            }
        }
        for b in self.backups.iter().filter(|b| b.exists()) {
            if let Err(e) = kaipiao_ledger::read_backup(b) {
                panic!("round {round}: {} is not a whole backup: {e}", b.display());
            }
        }
        let mut seen = HashSet::new();
        for r in &receipts {
            let seq = u(r, "/seq");
            assert!(
                seen.insert(seq),
                "round {round}: two receipts for seq {seq}"
            );
            let local = rows.get(seq as usize - 1).unwrap_or_else(|| {
                panic!("round {round}: a receipt for seq {seq} beyond the ledger")
            });
            assert_eq!(
                local["id"], r["invoice_id"],
                "round {round}: seq {seq} differs"
            );
        }
    }
}

/// Kill -9 at random moments of every write; nothing is lost or duplicated.
fn main() {
    let kills = kills();
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let mut l = Loop {
        shop,
        reported: HashMap::new(),
        drafts: 0,
        backups: Vec::new(),
        restored: false,
    };
    // How long each operation takes here, undisturbed, to spread the kill moments over
    // before, during and after its work.
    let mut full: HashMap<Op, Duration> = HashMap::new();
    for op in OPS {
        for _ in 0..2 {
            let args = l.args(op);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let started = Instant::now();
            let out = l.shop.kaipiao(&args);
            out.expect_code(0);
            l.record(op, &out);
            let took = started.elapsed();
            full.entry(op)
                .and_modify(|d| *d = (*d).max(took))
                .or_insert(took);
        }
    }
    let started = Instant::now();
    let mut rng = rand::thread_rng();
    let mut per_op: HashMap<Op, (usize, usize)> = HashMap::new(); // (killed, finished first)
    for round in 0..kills {
        let op = OPS[rng.gen_range(0..OPS.len())];
        let args = l.args(op);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut bg = l.shop.spawn(&args);
        let window = full[&op].as_millis() as u64 * 3 / 2 + 1;
        // This delay only picks the kill moment; nothing waits on it.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..=window)));
        let exited = bg.try_exited();
        let out = bg.kill9();
        let entry = per_op.entry(op).or_default();
        match exited {
            Some(0) => {
                entry.1 += 1;
                l.record(op, &out);
            }
            // A sync that found the outbox still locked by the one just killed? None is
            // left running, so a transient end is only the authority's; still no failure.
            Some(3) if op == Op::Sync => entry.1 += 1,
            Some(code) => panic!("round {round}: {op:?} failed on its own with {code}\n{out}"),
            None => entry.0 += 1,
        }
        if op == Op::Restore {
            l.finish_restore(round);
        }
        l.check(&taxd, round);
    }
    let elapsed = started.elapsed();
    // Everything is filed in the end, exactly once.
    let doc = l.shop.sync_until_complete(5);
    assert_eq!(doc["pending"], serde_json::json!(0), "{doc}");
    l.check(&taxd, kills);
    let n = l.shop.list(None).len() as u64;
    assert_eq!(taxd.receipts_of(&l.shop.device_id).len() as u64, n);
    let (file, _) = l.shop.export();
    assert_eq!(verify_export(&file, &taxd.authority_key()), (n, n));
    eprintln!(
        "crash loop: {kills} kills in {:.0} s ({:.0} ms a round, checks included); {n} invoices; \
         undisturbed: {full:?}; per operation (killed while running, finished first): {per_op:?}",
        elapsed.as_secs_f64(),
        elapsed.as_millis() as f64 / kills as f64
    );
}
