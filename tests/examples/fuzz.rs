//! `make fuzz` (issue 10, item 7): at least a million generated inputs, in process, on
//! stable Rust, against every surface that reads something from outside:
//!
//! - drafts (`Draft::from_json`, then the issuer's `build_invoice` and the authority's
//!   `rules::check_invoice`): random JSON and mutations of a valid draft;
//! - CLI arguments, through clap's `try_parse_from` on the real grammar (`kaipiao_cli`);
//! - wire bodies in: random and mutated envelopes, batches, enrolments and lease requests
//!   posted to an in-process taxd (the real router and database);
//! - wire bodies out: random and mutated receipts, stop verdicts and leases read the way
//!   the client reads them (`Receipt::verify_json`, `check_verdict`, `Lease::verify`);
//! - JSON Lines imports: each line a draft, as `kaipiao import` reads it;
//! - workbooks, as `kaipiao import --xlsx` reads them: the template's layout with cells
//!   of the wrong type (booleans, formulas with errors, dates, huge numbers, hostile
//!   text), cells moved, sheets and headers missing, and the file's bytes damaged.
//!
//! It checks that nothing panics, that every refused draft names its field, and that the
//! authority answers every body with a status below 500 and an error body with a code,
//! and that every workbook problem names its cell (a sheet, a row and a column; the sheet
//! or the file when the layout itself is missing).
//! `KAIPIAO_FUZZ_INPUTS` (default 1,000,000) sets the total, `KAIPIAO_FUZZ_WORKBOOKS`
//! (default 20,000, each a whole .xlsx written and read) the workbooks, and
//! `KAIPIAO_FUZZ_SEED` the seed; the figures it prints go to docs/BENCHMARKS.md.

use kaipiao_core::wire::{check_verdict, Receipt};
use kaipiao_core::{Draft, Lease};
use kaipiao_testkit::authority::Authority;
use kaipiao_testkit::fixtures::{first_context, office_supplies};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Text that tends to break parsers: empty, huge, control characters, CJK, numbers.
fn nasty_text(rng: &mut StdRng) -> String {
    let pool = [
        "",
        " ",
        "0",
        "-1",
        "1e308",
        "NaN",
        "0.005",
        "99999999999999999999999.99",
        "1.2.3",
        "０１２",
        "13%",
        "\u{0}",
        "\n",
        "\u{202e}",
        "键盘",
        "*计算机配套产品*键盘",
        "91330100716105852F",
        "null",
        "{}",
        "\"",
        "\\",
    ];
    match rng.gen_range(0..4) {
        0 => pool[rng.gen_range(0..pool.len())].to_string(),
        1 => "字".repeat(rng.gen_range(0..400)),
        2 => (0..rng.gen_range(0..20))
            .map(|_| char::from_u32(rng.gen_range(0..0x3000)).unwrap_or('?'))
            .collect(),
        _ => format!("{}", rng.gen_range(-1e6f64..1e9f64)),
    }
}

/// A random JSON value, `depth` levels deep at most.
fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.gen_bool(0.5)),
        2 => json!(rng.gen_range(-1_000_000i64..1_000_000)),
        3 => json!(rng.gen_range(-1e12f64..1e12f64)),
        4 => json!(nasty_text(rng)),
        5 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "kind",
                "buyer",
                "lines",
                "name",
                "quantity",
                "unit_price",
                "tax_rate",
                "treatment",
                "original",
                "remarks",
                "issuer",
                "tax_id",
                "x",
            ];
            Value::Object(
                (0..rng.gen_range(0..5))
                    .map(|_| {
                        (
                            keys[rng.gen_range(0..keys.len())].to_string(),
                            random_value(rng, depth - 1),
                        )
                    })
                    .collect(),
            )
        }
    }
}

/// Replaces, removes or adds one value somewhere in `v`.
fn mutate(rng: &mut StdRng, v: &mut Value) {
    match v {
        Value::Object(map) if !map.is_empty() && rng.gen_bool(0.7) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = keys[rng.gen_range(0..keys.len())].clone();
            match rng.gen_range(0..4) {
                0 => {
                    map.remove(&k);
                }
                1 => {
                    map.insert(k, random_value(rng, 2));
                }
                _ => {
                    if let Some(inner) = map.get_mut(&k) {
                        mutate(rng, inner);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() && rng.gen_bool(0.7) => {
            let i = rng.gen_range(0..items.len());
            if rng.gen_bool(0.2) {
                let copy = items[i].clone();
                for _ in 0..rng.gen_range(1..50) {
                    items.push(copy.clone());
                }
            } else {
                mutate(rng, &mut items[i]);
            }
        }
        other => *other = random_value(rng, 2),
    }
}

fn valid_draft() -> Value {
    serde_json::to_value(office_supplies("2", "10.00")).expect("a draft as JSON")
}

/// One generated draft through the issuer's path. Err: a refusal without a field.
fn one_draft(value: &Value) -> Result<&'static str, String> {
    match Draft::from_json(value) {
        Err(e) if e.field.is_empty() && value.is_object() => Err(format!(
            "draft refused without a field: {} ({value})",
            e.code.as_str()
        )),
        Err(_) => Ok("refused"),
        Ok(draft) => match kaipiao_core::build_invoice(&draft, &first_context(), None) {
            Err(e) if e.field.is_empty() => Err(format!(
                "invoice refused without a field: {} ({value})",
                e.code.as_str()
            )),
            Err(_) => Ok("refused"),
            Ok(invoice) => {
                let findings = kaipiao_core::rules::check_invoice(&invoice, None);
                if let Some(f) = findings.iter().find(|f| f.field.is_empty()) {
                    return Err(format!(
                        "audit finding without a field: {}",
                        f.code.as_str()
                    ));
                }
                Ok(if findings.is_empty() {
                    "issued"
                } else {
                    "audited"
                })
            }
        },
    }
}

/// Words the CLI knows, and values that are not what they should be.
fn random_argv(rng: &mut StdRng) -> Vec<String> {
    let words = [
        "init",
        "enroll",
        "issue",
        "import",
        "list",
        "show",
        "sync",
        "reconcile",
        "status",
        "outages",
        "alerts",
        "dismiss",
        "queue",
        "resume",
        "verify",
        "backup",
        "restore",
        "--replace-pending",
        "export",
        "check-tax-id",
        "words",
        "--json",
        "--data",
        "--server",
        "--backup-server",
        "--token",
        "--file",
        "--status",
        "--out",
        "--authority-key",
        "--allow-insecure-http",
        "--background",
        "--start-spread",
        "--lock-wait",
        "--seller-name",
        "--seller-tax-id",
        "--device-name",
        "pending",
        "accepted",
        "-",
        "--",
        "-x",
        "--help",
        "--version",
        "0",
        "-1",
        "240",
        "99999999999999999999",
        "https://tax.example",
        "ftp://x",
        "a.json",
    ];
    let mut argv = vec!["kaipiao".to_string()];
    for _ in 0..rng.gen_range(0..8) {
        argv.push(if rng.gen_bool(0.8) {
            words[rng.gen_range(0..words.len())].to_string()
        } else {
            nasty_text(rng)
        });
    }
    argv
}

thread_local! {
    /// Inside [`Tally::guarded`]: a panic there is a finding, not the harness failing.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A workbook in the template's layout (title, 必填 and header rows), as rows of cells.
#[derive(Clone)]
enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Bool(bool),
    Formula(&'static str),
    Date,
}

fn template_book() -> Vec<(String, Vec<Vec<Cell>>)> {
    use kaipiao_sheets::template::{BASIC_COLUMNS, DETAIL_COLUMNS};
    let t = |s: &str| Cell::Text(s.to_string());
    let head = |cols: &[(&str, bool)]| cols.iter().map(|(c, _)| t(c)).collect::<Vec<_>>();
    let mut basic = vec![vec![t("批量开具")], vec![t("必填")], head(&BASIC_COLUMNS)];
    let mut detail = vec![vec![t("批量开具")], vec![t("必填")], head(&DETAIL_COLUMNS)];
    for i in 0..4 {
        let serial = format!("F{i}");
        basic.push(vec![
            t(&serial),
            t(if i == 1 {
                "增值税专用发票"
            } else {
                "普通发票"
            }),
            t(if i == 2 { "是" } else { "否" }),
            t("客户"),
            t("91330100716105852F"),
            t("地址"),
            t("0571-1234567"),
            t("银行"),
            t("6222"),
            t("备注"),
            t("a@example.com"),
            t("张三"),
        ]);
        for k in 0..3 {
            detail.push(vec![
                t(&serial),
                t(&format!("*日用杂品*货品{k}")),
                t("1090511030000000000"),
                t("规格"),
                t("个"),
                Cell::Number(2.0),
                Cell::Number(10.5),
                if k == 1 {
                    Cell::Number(21.0)
                } else {
                    Cell::Empty
                },
                if k == 2 { Cell::Number(0.13) } else { t("13%") },
                Cell::Empty,
            ]);
        }
    }
    vec![("基本信息".into(), basic), ("明细".into(), detail)]
}

fn random_cell(rng: &mut StdRng) -> Cell {
    match rng.gen_range(0..8) {
        0 => Cell::Empty,
        1 => Cell::Bool(rng.gen_bool(0.5)),
        2 => Cell::Formula(["=1/0", "=NA()", "=\"x\"&1", "=1.5*2", "=#REF!"][rng.gen_range(0..5)]),
        3 => Cell::Date,
        4 => Cell::Number(
            [
                0.0,
                -1.0,
                1e308,
                1e-9,
                0.1 + 0.2,
                123456789012345680000.0,
                0.13,
                f64::MIN_POSITIVE,
            ][rng.gen_range(0..8)],
        ),
        _ => Cell::Text(nasty_text(rng)),
    }
}

/// Damages the book: cells replaced or moved, rows and columns dropped or repeated,
/// sheets renamed or removed.
fn mutate_book(rng: &mut StdRng, book: &mut Vec<(String, Vec<Vec<Cell>>)>) {
    for _ in 0..rng.gen_range(1..6) {
        if book.is_empty() {
            return;
        }
        let s = rng.gen_range(0..book.len());
        let rows = &mut book[s].1;
        match rng.gen_range(0..10) {
            0 if rng.gen_bool(0.3) => {
                book.remove(s);
            }
            1 => {
                book[s].0 = nasty_text(rng)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(20)
                    .collect()
            }
            2 if !rows.is_empty() => {
                rows.remove(rng.gen_range(0..rows.len()));
            }
            3 if !rows.is_empty() => {
                let r = rows[rng.gen_range(0..rows.len())].clone();
                for _ in 0..rng.gen_range(1..30) {
                    rows.push(r.clone());
                }
            }
            4 => {
                for row in rows.iter_mut() {
                    if !row.is_empty() {
                        let c = rng.gen_range(0..row.len());
                        row.remove(c);
                    }
                }
            }
            _ if !rows.is_empty() => {
                let r = rng.gen_range(0..rows.len());
                let width = rows[r].len().max(1) + 2;
                let c = rng.gen_range(0..width);
                if rows[r].len() <= c {
                    rows[r].resize(c + 1, Cell::Empty);
                }
                rows[r][c] = random_cell(rng);
            }
            _ => {}
        }
    }
}

fn write_book(book: &[(String, Vec<Vec<Cell>>)]) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (i, (name, rows)) in book.iter().enumerate() {
        let ws = wb.add_worksheet();
        // A name Excel refuses (empty, too long, []:*?/\) is replaced.
        if ws.set_name(name).is_err() {
            let _ = ws.set_name(format!("S{i}"));
        }
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (r, c) = (r as u32, c as u16);
                let _ = match cell {
                    Cell::Empty => continue,
                    Cell::Text(t) => ws.write_string(r, c, t),
                    Cell::Number(x) => ws.write_number(r, c, *x),
                    Cell::Bool(b) => ws.write_boolean(r, c, *b),
                    Cell::Formula(f) => ws.write_formula(r, c, *f),
                    Cell::Date => ws.write_number_with_format(r, c, 46000.5, &date),
                };
            }
        }
    }
    wb.save_to_buffer().unwrap_or_default()
}

/// One workbook through the importer's reading: no panic, every problem at its cell, every
/// draft it yields through the draft path.
fn one_workbook(bytes: &[u8]) -> Result<&'static str, String> {
    use kaipiao_core::Lang;
    use kaipiao_sheets::batch::{read_batch, Defaults};
    let book = match kaipiao_sheets::book::read_xlsx(bytes, Lang::Zh) {
        Err(p) if p.message.is_empty() => {
            return Err(format!("a file refusal that says nothing: {p:?}"))
        }
        Err(_) => return Ok("not-a-workbook"),
        Ok(b) => b,
    };
    let batch = match read_batch(&book, &Defaults::default(), Lang::En) {
        Err(fatal) => {
            if let Some(p) = fatal
                .iter()
                .find(|p| p.sheet.is_empty() || p.message.is_empty())
            {
                return Err(format!("a layout problem without its sheet: {p:?}"));
            }
            return Ok("layout-refused");
        }
        Ok(b) => b,
    };
    let mut outcome = "empty-batch";
    for inv in &batch.invoices {
        if let Some(p) = inv.problems.iter().find(|p| {
            p.sheet.is_empty() || p.row == 0 || p.column.is_empty() || p.message.is_empty()
        }) {
            return Err(format!("a problem without its cell: {p:?}"));
        }
        if let Some(draft) = &inv.draft {
            let value = serde_json::to_value(draft).map_err(|e| e.to_string())?;
            if let Err(e) = Draft::from_json(&value) {
                // Refusals name a field that places at a cell.
                let (sheet, row, column) = inv.placed.place(&e.field);
                if sheet.is_empty() || row == 0 || column.is_empty() {
                    return Err(format!("{} placed nowhere", e.field));
                }
            }
            one_draft(&value)?;
            outcome = "drafts";
        } else if !inv.problems.is_empty() {
            outcome = "problems";
        }
    }
    Ok(outcome)
}

struct Tally {
    counts: BTreeMap<&'static str, u64>,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    fn fail(&mut self, why: String) {
        if self.failures.len() < 20 {
            self.failures.push(why);
        }
        self.add("FAILED");
    }

    /// Runs `f`, counting a panic as a failure.
    fn guarded(&mut self, surface: &'static str, f: impl FnOnce() -> Result<&'static str, String>) {
        GUARDED.with(|g| g.set(true));
        let result = catch_unwind(AssertUnwindSafe(f));
        GUARDED.with(|g| g.set(false));
        match result {
            Ok(Ok(outcome)) => {
                self.add(surface);
                self.add(outcome);
            }
            Ok(Err(why)) => self.fail(format!("{surface}: {why}")),
            Err(_) => self.fail(format!("{surface}: PANIC")),
        }
    }
}

fn main() {
    let total = env_or("KAIPIAO_FUZZ_INPUTS", 1_000_000);
    let seed = env_or("KAIPIAO_FUZZ_SEED", 2026);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally {
        counts: BTreeMap::new(),
        failures: Vec::new(),
    };
    // Quiet panic messages inside a guarded call (counted and reported at the end); the
    // set-up's own panics are printed and end the run.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !GUARDED.with(std::cell::Cell::get) {
            default_hook(info);
        }
    }));
    let started = Instant::now();
    // Shares of the total: drafts and imports 40%, CLI 30%, wire out 20%, wire in 10%
    // (each of those goes through HTTP routing and SQLite in process).
    let drafts = total * 30 / 100;
    let imports = total * 10 / 100;
    let argvs = total * 30 / 100;
    let outs = total * 20 / 100;
    let ins = total - drafts - imports - argvs - outs;

    let base = valid_draft();
    for i in 0..drafts {
        let value = if i % 3 == 0 {
            random_value(&mut rng, 4)
        } else {
            let mut v = base.clone();
            for _ in 0..rng.gen_range(1..4) {
                mutate(&mut rng, &mut v);
            }
            v
        };
        tally.guarded("draft", || one_draft(&value));
    }

    // JSON Lines as `import` reads them: a line that is not JSON is refused naming the
    // line; one that is goes through the draft path.
    for _ in 0..imports {
        let mut line = base.to_string();
        if rng.gen_bool(0.5) {
            let mut cut = rng.gen_range(0..line.len());
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        } else {
            let at = rng.gen_range(0..line.len());
            if line.is_char_boundary(at) {
                line.insert_str(at, &nasty_text(&mut rng));
            }
        }
        tally.guarded("import-line", || {
            match serde_json::from_str::<Value>(&line) {
                Err(_) => Ok("not-json"),
                Ok(v) => one_draft(&v),
            }
        });
    }

    let t_drafts = started.elapsed();

    for _ in 0..argvs {
        let argv = random_argv(&mut rng);
        tally.guarded(
            "argv",
            || match <kaipiao_cli::args::Cli as clap::Parser>::try_parse_from(&argv) {
                Ok(_) => Ok("parsed"),
                Err(e) if e.to_string().trim().is_empty() => {
                    Err(format!("a refusal that says nothing: {argv:?}"))
                }
                Err(_) => Ok("refused"),
            },
        );
    }
    let t_cli = started.elapsed();

    // Wire bodies out: what a server could send back, read as the client reads it.
    let authority_key = kaipiao_core::DeviceKey::from_bytes(&[7; 32]);
    let pinned = authority_key.public();
    let receipt = json!({
        "invoice_id": "0190a1b2-c3d4-7e5f-8a9b-000000000001", "number": "26000000000100000001",
        "hash": "00".repeat(32), "status": "accepted", "reasons": [],
        "authority_code": "01234567890123456789", "received_at": "2026-12-02T10:00:00Z",
        "authority_signature": ""
    });
    for i in 0..outs {
        let mut v = receipt.clone();
        mutate(&mut rng, &mut v);
        let text = if i % 5 == 0 {
            nasty_text(&mut rng)
        } else {
            v.to_string()
        };
        tally.guarded("wire-out", || {
            let _ = Receipt::verify_json(&text, &pinned);
            let _ = check_verdict(&text, &pinned, "0190a1b2-c3d4-7e5f-8a9b-000000000001", "h");
            if let Ok(lease) = serde_json::from_str::<Lease>(&text) {
                let _ = lease.verify(&pinned);
                let _ = lease.terms();
            }
            Ok("read")
        });
    }
    let t_out = started.elapsed();

    // Workbooks: the template's layout damaged, written as real .xlsx; a share of them
    // with their bytes damaged instead.
    let workbooks = env_or("KAIPIAO_FUZZ_WORKBOOKS", 20_000);
    let template = template_book();
    let mut books_ok = 0u64;
    for i in 0..workbooks {
        let mut book = template.clone();
        mutate_book(&mut rng, &mut book);
        let mut bytes = write_book(&book);
        if i % 5 == 0 && !bytes.is_empty() {
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
        }
        tally.guarded("workbook", || one_workbook(&bytes));
        books_ok += 1;
    }
    let t_books = started.elapsed();

    // Wire bodies in: posted to an in-process taxd, its real router and database.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let a = Authority::new();
        let mut device = a.enroll(5).await;
        a.lease(&mut device).await;
        let valid = serde_json::to_value(device.issue(&office_supplies("1", "10.00")))
            .expect("an envelope as JSON");
        for i in 0..ins {
            let (path, body): (&str, Vec<u8>) = match i % 4 {
                0 | 1 => {
                    let mut v = valid.clone();
                    mutate(&mut rng, &mut v);
                    ("/v1/invoices", v.to_string().into_bytes())
                }
                2 => {
                    let mut v = json!({"items": [{"idempotency_key": "k", "envelope": valid}]});
                    mutate(&mut rng, &mut v);
                    ("/v1/invoices:batch", v.to_string().into_bytes())
                }
                _ => {
                    let mut v = json!({"enrollment_token": "sandbox", "seller": {}, "device_name": "x", "public_key": "x"});
                    mutate(&mut rng, &mut v);
                    ("/v1/devices", v.to_string().into_bytes())
                }
            };
            let key = format!("\"{}\"", valid["invoice"]["id"].as_str().unwrap_or_default());
            let reply = a
                .post_bytes(
                    path,
                    &[("content-type", "application/json"), ("idempotency-key", &key)],
                    body,
                )
                .await;
            if reply.status.is_server_error() {
                tally.fail(format!("{path}: {} {}", reply.status, reply.text()));
            } else if !reply.status.is_success()
                && serde_json::from_slice::<Value>(&reply.body)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                    .is_none()
                && !reply.body.is_empty()
            {
                tally.fail(format!("{path}: an error without a code: {}", reply.text()));
            } else {
                tally.add("wire-in");
                tally.add(if reply.status.is_success() { "accepted" } else { "refused" });
            }
        }
    });
    let elapsed = started.elapsed();
    let inputs = drafts + imports + argvs + outs + ins;
    eprintln!(
        "fuzz: {inputs} inputs and {books_ok} workbooks (seed {seed}) in {:.1} s: drafts+imports {:.1} s, CLI {:.1} s, wire out {:.1} s, workbooks {:.1} s, wire in {:.1} s; {:?}",
        elapsed.as_secs_f64(),
        t_drafts.as_secs_f64(),
        (t_cli - t_drafts).as_secs_f64(),
        (t_out - t_cli).as_secs_f64(),
        (t_books - t_out).as_secs_f64(),
        (elapsed - t_books).as_secs_f64(),
        tally.counts
    );
    if !tally.failures.is_empty() {
        for f in &tally.failures {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}
