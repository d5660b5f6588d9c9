//! What durable issuance costs, next to what SQLite itself costs for one durable commit.
//!
//! Run: `cargo bench -p kaipiao-ledger --bench issue -- --warm-up-time 1 --measurement-time 3`
//! (a few minutes on a 2-core machine). In one run it measures:
//! (a) `sqlite_commit`: a bare one-row INSERT commit, WAL + synchronous=FULL, own file;
//! (a2) `floor`: what a durable issuance cannot avoid, committed bare: the invoice's
//!     RFC 8785 bytes, SHA-256 and Ed25519 signature computed, then the same rows the
//!     ledger writes (invoice with its envelope text, outbox row, the lease's next number
//!     and issued amount) in one IMMEDIATE transaction, WAL + synchronous=FULL, plain
//!     tables without the ledger's indexes, triggers or checks;
//! (b) `ledger_issue`: `Ledger::issue` of a 1-line draft (validate, sign, insert, commit);
//! (c) `import`: 10,000 drafts issued one by one, each durable (the CLI's `import` path),
//!     timed once and printed as time per item;
//! (d) `verify`: `Ledger::verify` of those 10,000 invoices;
//! (e) `interleaved`: (a), (a2) and (b) in alternating rounds of 200, printed as the
//!     medians of the per-round ratios: the figures the goal is judged by; and
//!     `alternating`: the same, one call of each after the other, each timed alone.
//! The ledgers live in temporary directories on the default temp filesystem; fsync cost
//! dominates (a) and (b), so figures depend on the disk far more than on the CPU.
//! Under `cargo test --benches` everything runs once on 200 drafts instead of 10,000.

use chrono::{DateTime, TimeZone, Utc};
use criterion::{black_box, Criterion, Throughput};
use kaipiao_core::{DeviceKey, Draft, Lease, Party};
use kaipiao_ledger::{KeySource, Ledger};
use serde_json::json;
use std::time::{Duration, Instant};

const DEVICE_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
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

/// An enrolled ledger with one lease large enough for any run, and its unsealed key.
fn ready_ledger(dir: &std::path::Path) -> (Ledger, DeviceKey) {
    let authority = DeviceKey::from_bytes(&[9u8; 32]);
    let keys = KeySource::with_passphrase("bench");
    let ledger = Ledger::open(dir).expect("open");
    ledger.init(&seller(), "bench", &keys, t0()).expect("init");
    ledger
        .record_enrollment(DEVICE_ID, &authority.public().to_base64(), &[], t0())
        .expect("enrol");
    let lease = Lease {
        lease_id: "bench".into(),
        device_id: DEVICE_ID.into(),
        prefix: "260330000001".into(),
        first: 1,
        last: 99_999_999,
        offline_hours: 100_000,
        offline_amount_cap: "999999999999999.00".into(),
        single_invoice_cap: "999999999999999.00".into(),
        granted_at: "2026-03-01T08:00:00Z".into(),
        signature: String::new(),
    }
    .signed(&authority);
    ledger.store_lease(&lease, t0()).expect("lease");
    let key = ledger.unseal_key(&keys).expect("unseal");
    (ledger, key)
}

fn one_line_draft(i: u64) -> Draft {
    Draft::from_json(&json!({
        "buyer": {"name": "张三"},
        "lines": [{"name": "办公用品", "unit": "件", "quantity": (i % 9 + 1).to_string(), "unit_price": "12.5", "tax_rate": "0.13"}],
        "issuer": "bench"
    }))
    .expect("draft")
}

fn bare_sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join("bare.sqlite3")).expect("open");
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .expect("table");
    // About the size of a stored one-line envelope.
    let body = "x".repeat(1500);
    let mut g = c.benchmark_group("a_sqlite_commit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert_one_row_wal_full", |b| {
        b.iter(|| {
            conn.execute("INSERT INTO t (body) VALUES (?1)", [&body])
                .expect("insert");
        })
    });
    g.finish();
}

/// The floor of a durable issuance (a2): the invoice's bytes, hash and signature, and
/// the rows the ledger writes for it (schema 5: the invoice with its envelope text, the
/// outbox row, the lease's next number and issued amount) in one fsync'd IMMEDIATE
/// transaction, WAL + synchronous=FULL, in plain tables without the ledger's indexes,
/// triggers or checks. Everything `Ledger::issue` spends above it is ours to remove.
struct Floor {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    conn: rusqlite::Connection,
    key: DeviceKey,
    template: kaipiao_core::Invoice,
    seq: u64,
}

impl Floor {
    fn new() -> Floor {
        // One real invoice as the template: the floor signs the same object each time.
        let scratch = tempfile::tempdir().expect("tempdir");
        let (ledger, key) = ready_ledger(scratch.path());
        let template = ledger
            .issue(&one_line_draft(1), &key, t0())
            .expect("issue")
            .envelope
            .invoice;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("floor.sqlite3");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .expect("wal");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("full");
        conn.execute_batch(
            "CREATE TABLE invoices (seq INTEGER PRIMARY KEY, id TEXT, number TEXT, kind TEXT,
                 issued_at TEXT, buyer_name TEXT, buyer_tax_id TEXT, total TEXT, total_amount TEXT,
                 total_amount_cents INTEGER, hash TEXT, envelope TEXT, status TEXT);
             CREATE TABLE outbox (seq INTEGER PRIMARY KEY, attempts INTEGER);
             CREATE TABLE leases (lease_id TEXT PRIMARY KEY, next INTEGER, issued_cents INTEGER);
             INSERT INTO leases VALUES ('bench', 1, 0);",
        )
        .expect("tables");
        Floor {
            _dir: dir,
            path,
            conn,
            key,
            template,
            seq: 0,
        }
    }

    fn issue(&mut self) {
        self.seq += 1;
        let mut invoice = self.template.clone();
        invoice.seq = self.seq;
        let envelope = kaipiao_core::sign::seal_invoice(&self.key, invoice);
        let text = serde_json::to_string(&envelope).expect("envelope");
        let inv = &envelope.invoice;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
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
        tx.prepare_cached("INSERT INTO outbox VALUES (?1, 0)")
            .expect("prepare")
            .execute([inv.seq as i64])
            .expect("outbox");
        tx.prepare_cached(
            "UPDATE leases SET next = next + 1, issued_cents = issued_cents + 1250 WHERE lease_id = 'bench'",
        )
        .expect("prepare")
        .execute([])
        .expect("lease");
        tx.commit().expect("commit");
    }
}

fn issuance_floor(c: &mut Criterion) {
    let mut floor = Floor::new();
    let mut g = c.benchmark_group("a2_floor");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bytes_hash_signature_and_rows_committed_bare", |b| {
        b.iter(|| floor.issue())
    });
    g.finish();
}

/// (e) The ratios of the issue's goal, measured interleaved: rounds of `per_round` bare
/// commits, floor issuances and `Ledger::issue` calls one after the other, so that a
/// disturbance on the shared disk hits all three alike; the medians of the per-round
/// ratios are printed. Criterion's groups above run one after another and can each meet
/// a different disk.
fn interleaved_ratios(rounds: usize, per_round: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, key) = ready_ledger(dir.path());
    let draft = one_line_draft(1);
    let mut floor = Floor::new();
    let bare_dir = tempfile::tempdir().expect("tempdir");
    let bare = rusqlite::Connection::open(bare_dir.path().join("bare.sqlite3")).expect("open");
    bare.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        .expect("wal");
    bare.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    bare.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .expect("table");
    let body = "x".repeat(1500);
    let per_op = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..per_round {
            f();
        }
        started.elapsed().as_secs_f64() * 1e6 / per_round as f64
    };
    let (mut bare_us, mut floor_us, mut issue_us) = (Vec::new(), Vec::new(), Vec::new());
    let (mut to_floor, mut to_bare) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let b = per_op(&mut || {
            bare.execute("INSERT INTO t (body) VALUES (?1)", [&body])
                .expect("insert");
        });
        let f = per_op(&mut || floor.issue());
        let i = per_op(&mut || {
            black_box(ledger.issue(&draft, &key, t0()).expect("issue"));
        });
        to_floor.push(i / f);
        to_bare.push(i / b);
        bare_us.push(b);
        floor_us.push(f);
        issue_us.push(i);
    }
    // The same three again, one call of each after the other, each timed alone: a
    // second reading of the same ratios that no drift between blocks of 200 can tilt.
    let (mut alt_floor, mut alt_bare) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (mut b, mut f, mut i) = (0.0, 0.0, 0.0);
        for _ in 0..per_round {
            let t1 = Instant::now();
            bare.execute("INSERT INTO t (body) VALUES (?1)", [&body])
                .expect("insert");
            let t2 = Instant::now();
            floor.issue();
            let t3 = Instant::now();
            black_box(ledger.issue(&draft, &key, t0()).expect("issue"));
            let t4 = Instant::now();
            b += (t2 - t1).as_secs_f64();
            f += (t3 - t2).as_secs_f64();
            i += (t4 - t3).as_secs_f64();
        }
        alt_floor.push(i / f);
        alt_bare.push(i / b);
    }
    // WAL frames (4 KiB pages) each commits, from the WAL's growth after a checkpoint:
    // what the disk has to write and fsync besides the CPU work.
    let frames = |db: &std::path::Path, op: &mut dyn FnMut()| {
        let wal = {
            let mut p = db.as_os_str().to_owned();
            p.push("-wal");
            std::path::PathBuf::from(p)
        };
        let c = rusqlite::Connection::open(db).expect("open");
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        let before = std::fs::metadata(&wal).map_or(0, |m| m.len());
        let n = 50;
        for _ in 0..n {
            op();
        }
        let after = std::fs::metadata(&wal).map_or(0, |m| m.len());
        (after.saturating_sub(before)) as f64 / (4096.0 + 24.0) / f64::from(n)
    };
    let ledger_frames = frames(&ledger.db_path(), &mut || {
        ledger.issue(&draft, &key, t0()).expect("issue");
    });
    let floor_db = floor.path.clone();
    let floor_frames = frames(&floor_db, &mut || floor.issue());
    println!(
        "e_wal_frames: per issuance: Ledger::issue {ledger_frames:.2}, floor {floor_frames:.2}"
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "e_alternating/{rounds}x{per_round}: median of per-round ratios: issue/floor {:.3}x, issue/bare {:.3}x",
        median(&mut alt_floor),
        median(&mut alt_bare)
    );
    println!(
        "e_interleaved/{rounds}x{per_round}: median µs per op: bare {:.1}, floor {:.1}, Ledger::issue {:.1}; \
         median of per-round ratios: issue/floor {:.3}x, issue/bare {:.3}x",
        median(&mut bare_us),
        median(&mut floor_us),
        median(&mut issue_us),
        median(&mut to_floor),
        median(&mut to_bare)
    );
}

fn ledger_issue(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, key) = ready_ledger(dir.path());
    let draft = one_line_draft(1);
    let mut g = c.benchmark_group("b_ledger_issue");
    g.throughput(Throughput::Elements(1));
    g.bench_function("issue_one_line_durable", |b| {
        b.iter(|| black_box(ledger.issue(&draft, &key, t0()).expect("issue")))
    });
    g.finish();
}

fn import_then_verify(c: &mut Criterion, n: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ledger, key) = ready_ledger(dir.path());
    let drafts: Vec<Draft> = (0..n).map(one_line_draft).collect();
    let tenth = (n / 10).max(1) as usize;
    let mut chunks = Vec::new();
    let started = Instant::now();
    let mut chunk_started = started;
    for (i, d) in drafts.iter().enumerate() {
        let now = t0() + chrono::Duration::seconds(i as i64 / 10);
        ledger.issue(d, &key, now).expect("issue");
        if (i + 1) % tenth == 0 {
            chunks.push(chunk_started.elapsed().as_secs_f64() * 1000.0 / tenth as f64);
            chunk_started = Instant::now();
        }
    }
    let took = started.elapsed();
    // All invoices stay pending here, the worst case for the offline-limit sums: the
    // per-tenth figures show whether the cost grows with the pending count.
    let per_tenth: Vec<String> = chunks.iter().map(|ms| format!("{ms:.2}")).collect();
    println!(
        "c_import/{n}_drafts: ms per item by tenth of the run: [{}]",
        per_tenth.join(", ")
    );
    println!(
        "c_import/{n}_drafts: total {:.2} s, {:.3} ms per item, {:.0} items/s",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / n as f64,
        n as f64 / took.as_secs_f64()
    );
    let mut g = c.benchmark_group("d_verify");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function(format!("verify_{n}_invoices"), |b| {
        b.iter(|| black_box(ledger.verify().expect("verify")))
    });
    g.finish();
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bare_sqlite(&mut c);
    issuance_floor(&mut c);
    ledger_issue(&mut c);
    import_then_verify(&mut c, if benching { 10_000 } else { 200 });
    if benching {
        interleaved_ratios(30, 200);
    } else {
        interleaved_ratios(1, 5);
    }
    c.final_summary();
}
