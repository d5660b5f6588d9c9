//! What batch issue from a workbook costs (issue 12, item 2), in one process, in
//! alternating rounds so that the shared disk treats every contender alike:
//!
//! (A) `jsonl`: the drafts issued one by one, each durable, as `kaipiao import --file`
//!     does (each line parsed, then `Ledger::issue`);
//! (B) `workbook`: the same drafts as a workbook in the template's layout, through
//!     `batch::run` (the .xlsx read, every cell checked, groups of 200 issued);
//! (C) `groups`: the drafts already read, through `Ledger::issue_group` in groups of 200;
//! (D) `floor`: what group issuance cannot avoid: each invoice's RFC 8785 bytes, SHA-256
//!     and Ed25519 signature, and the same rows (invoice with its envelope text, outbox
//!     row, import serial, the lease's next number and amount) inserted in one IMMEDIATE
//!     transaction per 200, WAL + synchronous=FULL, plain tables without indexes,
//!     triggers or checks.
//!
//! Printed: the medians of the per-round rates and of the ratios B/A and C/D (the goal:
//! C at least 60% of D). `KAIPIAO_BENCH_N` (default 2,000) invoices per contender and
//! round, `KAIPIAO_BENCH_ROUNDS` (default 5) rounds.
//! Run: `cargo bench -p kaipiao-desk --bench batch` (`make bench-batch`).

use chrono::Utc;
use kaipiao_core::{Draft, Lang};
use kaipiao_desk::batch;
use kaipiao_ledger::{GroupItem, GroupOutcome};
use kaipiao_sheets::write::{xlsx, SheetData, Value};
use kaipiao_testkit::keys::Terms;
use kaipiao_testkit::ledger::{with_lease, Setup};
use serde_json::json;
use std::time::Instant;

const GROUP: usize = 200;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fresh() -> Setup {
    with_lease(&Terms {
        first: 1,
        last: 99_999_999,
        hours: 10_000_000,
        cap: "999999999999999.00",
        single: "999999999999999.00",
    })
}

/// Invoice `i`: one to three lines, rates and prices varying.
fn draft_json(i: usize) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = (0..(i % 3 + 1))
        .map(|k| {
            json!({
                "name": format!("*日用杂品*货品{k}"),
                "tax_code": "1090511030000000000",
                "unit": "个",
                "quantity": ((i + k) % 9 + 1).to_string(),
                "unit_price": format!("{}.5", 10 + k),
                "tax_rate": if k == 1 { "0.06" } else { "0.13" },
            })
        })
        .collect();
    json!({"kind": "ordinary", "buyer": {"name": format!("客户{i}")}, "lines": lines, "issuer": "bench"})
}

/// The same drafts as a workbook: 基本信息 and 明细, header in row 1.
fn workbook(drafts: &[serde_json::Value]) -> Vec<u8> {
    let t = |s: &str| Value::Text(s.to_string());
    let mut basic = SheetData {
        name: "基本信息".into(),
        headers: ["发票流水号", "发票类型", "是否含税", "购买方名称", "开票人"]
            .map(String::from)
            .to_vec(),
        rows: Vec::new(),
    };
    let mut detail = SheetData {
        name: "明细".into(),
        headers: [
            "发票流水号",
            "项目名称",
            "商品和服务税收分类编码",
            "单位",
            "数量",
            "单价",
            "税率",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
    };
    for (i, d) in drafts.iter().enumerate() {
        let serial = format!("B{i:06}");
        basic.rows.push(vec![
            t(&serial),
            t("普通发票"),
            t("否"),
            t(d["buyer"]["name"].as_str().unwrap_or_default()),
            t("bench"),
        ]);
        for l in d["lines"].as_array().into_iter().flatten() {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            detail.rows.push(vec![
                t(&serial),
                t(&s("name")),
                t(&s("tax_code")),
                t(&s("unit")),
                Value::Number(s("quantity")),
                Value::Number(s("unit_price")),
                Value::Number(s("tax_rate")),
            ]);
        }
    }
    xlsx(&[basic, detail]).expect("the workbook")
}

/// (D) the floor: bytes, hash and signature per invoice, the rows in groups.
struct Floor {
    _dir: tempfile::TempDir,
    conn: rusqlite::Connection,
    key: kaipiao_core::DeviceKey,
    template: kaipiao_core::Invoice,
    seq: u64,
}

impl Floor {
    fn new(template: kaipiao_core::Invoice, key: kaipiao_core::DeviceKey) -> Floor {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = rusqlite::Connection::open(dir.path().join("floor.sqlite3")).expect("open");
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .expect("wal");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("full");
        conn.execute_batch(
            "CREATE TABLE invoices (seq INTEGER PRIMARY KEY, id TEXT, number TEXT, kind TEXT,
                 issued_at TEXT, buyer_name TEXT, buyer_tax_id TEXT, total TEXT, total_amount TEXT,
                 total_amount_cents INTEGER, hash TEXT, envelope TEXT, status TEXT);
             CREATE TABLE outbox (seq INTEGER PRIMARY KEY);
             CREATE TABLE serials (serial TEXT PRIMARY KEY, digest TEXT, seq INTEGER);
             CREATE TABLE leases (lease_id TEXT PRIMARY KEY, next INTEGER, issued_cents INTEGER);
             INSERT INTO leases VALUES ('bench', 1, 0);",
        )
        .expect("tables");
        Floor {
            _dir: dir,
            conn,
            key,
            template,
            seq: 0,
        }
    }

    fn group(&mut self, n: usize) {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        for _ in 0..n {
            self.seq += 1;
            let mut invoice = self.template.clone();
            invoice.seq = self.seq;
            let envelope = kaipiao_core::sign::seal_invoice(&self.key, invoice);
            let text = serde_json::to_string(&envelope).expect("envelope");
            let inv = &envelope.invoice;
            tx.prepare_cached(
                "INSERT INTO invoices VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending')",
            )
            .expect("prepare")
            .execute(rusqlite::params![
                inv.seq as i64,
                inv.id,
                inv.number,
                inv.kind.as_str(),
                inv.issued_at,
                inv.buyer.name,
                inv.buyer.tax_id,
                inv.total,
                inv.total_amount,
                1250i64,
                envelope.hash,
                text,
            ])
            .expect("invoice");
            tx.prepare_cached("INSERT INTO outbox VALUES (?1)")
                .expect("prepare")
                .execute([inv.seq as i64])
                .expect("outbox");
            tx.prepare_cached("INSERT INTO serials VALUES (?1, ?2, ?1)")
                .expect("prepare")
                .execute(rusqlite::params![inv.seq as i64, envelope.hash])
                .expect("serial");
            tx.prepare_cached(
                "UPDATE leases SET next = next + 1, issued_cents = issued_cents + 1250 WHERE lease_id = 'bench'",
            )
            .expect("prepare")
            .execute([])
            .expect("lease");
        }
        tx.commit().expect("commit");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // Under `cargo test --benches`, one short round.
    let quick = std::env::args()
        .any(|a| a == "--bench")
        .then_some(())
        .is_none();
    let n = if quick {
        50
    } else {
        env_or("KAIPIAO_BENCH_N", 2_000)
    };
    let rounds = if quick {
        1
    } else {
        env_or("KAIPIAO_BENCH_ROUNDS", 5)
    };
    let values: Vec<serde_json::Value> = (0..n).map(draft_json).collect();
    let lines: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let drafts: Vec<Draft> = values
        .iter()
        .map(|v| Draft::from_json(v).expect("a draft"))
        .collect();
    let book = workbook(&values);
    let serials: Vec<String> = (0..n).map(|i| format!("B{i:06}")).collect();
    let digests: Vec<String> = (0..n).map(|i| format!("{i:064x}")).collect();

    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // (A) JSON Lines, one durable commit per invoice.
        let s = fresh();
        let t = Instant::now();
        for line in &lines {
            let value: serde_json::Value = serde_json::from_str(line).expect("json");
            let draft = Draft::from_json(&value).expect("draft");
            s.ledger.issue(&draft, &s.key, Utc::now()).expect("issue");
        }
        a.push(n as f64 / t.elapsed().as_secs_f64());

        // (B) the workbook, read and issued in groups.
        let s = fresh();
        let t = Instant::now();
        let report = batch::run(&s.ledger, &s.key, &book, Lang::Zh, |_| {}).expect("run");
        b.push(n as f64 / t.elapsed().as_secs_f64());
        assert_eq!(report.issued.len(), n, "{:?}", report.refused.first());

        // (C) the same drafts already read, in groups.
        let s = fresh();
        let mut template = None;
        let t = Instant::now();
        for (i, chunk) in drafts.chunks(GROUP).enumerate() {
            let items: Vec<GroupItem<'_>> = chunk
                .iter()
                .enumerate()
                .map(|(k, draft)| GroupItem {
                    serial: &serials[i * GROUP + k],
                    digest: &digests[i * GROUP + k],
                    draft,
                })
                .collect();
            let out = s
                .ledger
                .issue_group(&items, &s.key, Utc::now, || {})
                .expect("group");
            if let (None, Some(GroupOutcome::Issued(first))) = (&template, out.first()) {
                template = Some(first.envelope.invoice.clone());
            }
        }
        c.push(n as f64 / t.elapsed().as_secs_f64());

        // (D) the floor.
        let mut floor = Floor::new(template.expect("an invoice issued"), s.key);
        let t = Instant::now();
        let mut left = n;
        while left > 0 {
            let k = left.min(GROUP);
            floor.group(k);
            left -= k;
        }
        d.push(n as f64 / t.elapsed().as_secs_f64());
        eprintln!(
            "round {round}: jsonl {:.0}/s, workbook {:.0}/s, groups {:.0}/s, floor {:.0}/s",
            a[round], b[round], c[round], d[round]
        );
    }
    let ratio = |x: &[f64], y: &[f64]| median(x.iter().zip(y).map(|(x, y)| x / y).collect());
    println!(
        "batch of {n} invoices, {rounds} rounds (medians): jsonl {:.0}/s ({:.3} ms each), \
         workbook {:.0}/s, groups {:.0}/s, floor {:.0}/s; workbook / jsonl {:.2}x, \
         groups / floor {:.2} (goal >= 0.60), workbook / floor {:.2}",
        median(a.clone()),
        1000.0 / median(a.clone()),
        median(b.clone()),
        median(c.clone()),
        median(d.clone()),
        ratio(&b, &a),
        ratio(&c, &d),
        ratio(&b, &d),
    );
}
