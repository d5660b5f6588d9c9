//! `kaipiao`: the Kaipiao engine from a terminal (SPEC 9).
//!
//! Every command opens the ledger of one data directory, does one thing and exits with
//! the codes of SPEC 9: 0 ok, 2 invalid input or a refused limit, 3 work remains for a
//! transient reason, 4 integrity failure or a stopped queue, 1 anything else. With
//! `--json` stdout holds exactly one JSON document (one line per argument for
//! `check-tax-id` and `words`); warnings and progress always go to stderr.

mod render;

use chrono::Utc;
use clap::{Parser, Subcommand, ValueEnum};
use kaipiao_core::{DeviceKey, Draft, FieldError, Lang, Party};
use kaipiao_ledger::{KeySource, Ledger, LedgerError, ListFilter, Status};
use kaipiao_sync::{SyncError, SyncOptions, SyncOutcome};
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "kaipiao",
    version,
    about = "Kaipiao 开票: offline-first VAT invoicing from a terminal"
)]
struct Cli {
    /// Data directory (default: $KAIPIAO_DATA, else the platform's data directory).
    #[arg(long, global = true, env = "KAIPIAO_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Print exactly one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Set up this device: seller and device name; creates and seals the device key.
    Init {
        #[arg(long)]
        seller_name: String,
        #[arg(long)]
        seller_tax_id: String,
        #[arg(long, default_value = "")]
        seller_address: String,
        #[arg(long, default_value = "")]
        seller_bank: String,
        #[arg(long)]
        device_name: String,
    },
    /// Enrol with the authority and take the first lease.
    Enroll {
        #[arg(long, value_name = "URL")]
        server: String,
        #[arg(long = "backup-server", value_name = "URL")]
        backup_servers: Vec<String>,
        #[arg(long)]
        token: String,
    },
    /// Issue one invoice from a draft file (or - for stdin); prints the envelope.
    Issue {
        #[arg(long, value_name = "DRAFT.json|-")]
        file: String,
    },
    /// Issue one draft per line, in order, each durable on its own.
    Import {
        #[arg(long, value_name = "DRAFTS.jsonl")]
        file: String,
    },
    /// List invoices in chain order.
    List {
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
    },
    /// Show one invoice by number or id.
    Show { number_or_id: String },
    /// Submit pending invoices now (gives up after 30 s without progress).
    Sync {
        /// Sync as a background job would (a cron job, a shop's fleet): the authority's
        /// overload is also throttled locally (SPEC 6); without it, this is "Sync now".
        #[arg(long)]
        background: bool,
        /// With --background: spread the backlog over SECONDS (at most 240) as the app
        /// does after an outage: even shares (at least 5 invoices, at least 10 s apart),
        /// the first after a random delay, so that shops coming back together do not
        /// meet the authority at once. The command runs until the last share is sent.
        #[arg(long, value_name = "SECONDS", requires = "background", value_parser = parse_spread)]
        start_spread: Option<u64>,
    },
    /// Compare every invoice with the authority's records; resubmit what it lost.
    ///
    /// Asks the authority for the receipt of every local invoice (device-signed
    /// GET /v1/invoices/{id}, a few at a time, paced like sync: Retry-After, retry budget,
    /// failover) and for this device's chain head, and reports each invoice as accounted
    /// for (the authority's receipt verifies and is the stored one; for an invoice still
    /// pending here, it is stored as sync would), mismatched (another receipt, hash or
    /// status, or a signature that does not verify: an alert is raised), or missing at
    /// the authority (pending ones are simply not filed yet). Invoices the authority holds
    /// beyond the local head are missing locally. An authority restored from an older
    /// backup (head behind ours) is healed: the invoices it lost are resubmitted from its
    /// head, byte for byte, and checked again. A healed invoice whose authority code
    /// (校验码) changed is listed under `refiled`.
    ///
    /// Exit 0 all accounted for (or healed), 3 transient (unreachable, 5xx, 429, budget;
    /// the report says how far it got), 4 mismatched, missing locally, lost invoices not
    /// healed, or a stopped queue.
    ///
    /// With --json: {"checked", "total", "accounted_for", "mismatched": [{"seq", "number",
    /// "reason"}], "missing_at_authority": [{"seq", "number", "status", "healed"}],
    /// "missing_locally": {"from_seq", "to_seq"} or null, "healed", "received",
    /// "refiled": [{"seq", "number", "authority_code", "local_authority_code"}],
    /// "pending", "server_head": {"seq", "hash"} or null}, whatever the exit code.
    Reconcile,
    /// Pending count, offline limits left, numbers left, chain head.
    Status,
    /// When the tax authority could not be reached, and what was issued meanwhile.
    ///
    /// An outage runs from the first request that no endpoint answered (could not
    /// connect, timed out, any 5xx such as 503 `outage` or `overloaded`) to the first
    /// answer that proves the authority serves again; a 429 or another 4xx is an answer,
    /// not an outage. Invoices issued during it are marked, and so are those still
    /// pending when it began that were issued since the authority last answered. Oldest
    /// first; the current outage, if any, is last.
    ///
    /// With --json: {"outages": [{"id", "started_at", "ended_at", "duration_seconds",
    /// "failed_attempts", "failed_endpoint", "reason", "ended_by", "invoices_issued",
    /// "first_number", "last_number"}]}. Times are RFC 3339 UTC; ended_at and ended_by
    /// (the endpoint whose answer ended it) are null while the outage is current, and
    /// duration_seconds then counts up to now; failed_endpoint and reason describe the
    /// first failed request; first_number and last_number (in chain order) are null
    /// when nothing was issued during it.
    Outages,
    /// Check the chain, every signature and every stored receipt.
    Verify,
    /// Write the ledger as JSON Lines (SPEC 9).
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check tax IDs (统一社会信用代码 / 纳税人识别号).
    CheckTaxId {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Amounts in Chinese capitals (大写).
    Words {
        #[arg(required = true, allow_hyphen_values = true)]
        amounts: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StatusArg {
    Pending,
    Accepted,
    Rejected,
}

/// A failed command: its exit code and a `{code, message, field}` error.
struct Failure {
    exit: u8,
    code: String,
    field: String,
    message: String,
    /// What stdout gets with --json (defaults to the error document).
    json: Option<Value>,
}

impl Failure {
    fn new(exit: u8, code: &str, field: &str, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            code: code.to_string(),
            field: field.to_string(),
            message: message.into(),
            json: None,
        }
    }

    fn ledger(e: &LedgerError, lang: Lang) -> Failure {
        Failure::new(
            u8::try_from(e.exit_code()).unwrap_or(1),
            e.code(),
            e.field(),
            e.message(lang),
        )
    }

    fn field(e: &FieldError, lang: Lang) -> Failure {
        Failure::new(2, &e.code, &e.field, e.message(lang))
    }

    fn sync(e: &SyncError, lang: Lang) -> Failure {
        match e {
            SyncError::Ledger(le) => Failure::ledger(le, lang),
            other => Failure::new(
                u8::try_from(other.exit_code()).unwrap_or(1),
                other.code(),
                "",
                other.to_string(),
            ),
        }
    }

    fn error_json(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "field": self.field}})
    }
}

type CmdResult = Result<Value, Failure>;

struct Ctx {
    lang: Lang,
    json: bool,
    data: PathBuf,
}

fn lang_from_env() -> Lang {
    for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return Lang::from_locale(&v);
            }
        }
    }
    Lang::En
}

fn main() -> ExitCode {
    let lang = lang_from_env();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let data = match cli
        .data
        .clone()
        .or_else(|| dirs::data_dir().map(|d| d.join("kaipiao")))
    {
        Some(d) => d,
        None => {
            eprintln!(
                "{}",
                lang.pick(
                    "找不到数据目录：请用 --data DIR 或 KAIPIAO_DATA 指定",
                    "no data directory: give --data DIR or set KAIPIAO_DATA"
                )
            );
            return ExitCode::from(2);
        }
    };
    let ctx = Ctx {
        lang,
        json: cli.json,
        data,
    };
    // check-tax-id and words print one line per argument themselves.
    let result = match cli.command {
        Command::CheckTaxId { ids } => return check_tax_ids(&ctx, &ids),
        Command::Words { amounts } => return words(&ctx, &amounts),
        other => run(&ctx, other),
    };
    match result {
        Ok(doc) => {
            if ctx.json {
                println!("{doc}");
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("{}: {}", lang.pick("错误", "error"), f.message);
            if ctx.json {
                println!("{}", f.json.clone().unwrap_or_else(|| f.error_json()));
            }
            ExitCode::from(f.exit)
        }
    }
}

fn run(ctx: &Ctx, command: Command) -> CmdResult {
    match command {
        Command::Init {
            seller_name,
            seller_tax_id,
            seller_address,
            seller_bank,
            device_name,
        } => {
            let seller = Party {
                name: seller_name,
                tax_id: seller_tax_id,
                address: seller_address,
                bank: seller_bank,
            };
            init(ctx, &seller, &device_name)
        }
        Command::Enroll {
            server,
            backup_servers,
            token,
        } => {
            let mut servers = vec![server];
            servers.extend(backup_servers);
            enroll(ctx, &servers, &token)
        }
        Command::Issue { file } => issue(ctx, &file),
        Command::Import { file } => import(ctx, &file),
        Command::List { status } => list(ctx, status),
        Command::Show { number_or_id } => show(ctx, &number_or_id),
        Command::Sync {
            background,
            start_spread,
        } => sync(ctx, background, start_spread),
        Command::Reconcile => reconcile(ctx),
        Command::Status => status(ctx),
        Command::Outages => outages(ctx),
        Command::Verify => verify(ctx),
        Command::Export { out } => export(ctx, &out),
        Command::CheckTaxId { .. } | Command::Words { .. } => Ok(Value::Null),
    }
}

fn open(ctx: &Ctx) -> Result<Ledger, Failure> {
    Ledger::open(&ctx.data).map_err(|e| Failure::ledger(&e, ctx.lang))
}

/// The passphrase that seals the device key: KAIPIAO_PASSPHRASE, else a prompt on a
/// terminal, else none (the OS keyring, where there is one).
fn key_source(ctx: &Ctx, confirm: bool) -> Result<KeySource, Failure> {
    if let Ok(p) = std::env::var("KAIPIAO_PASSPHRASE") {
        if !p.is_empty() {
            return Ok(KeySource {
                passphrase: Some(zeroize::Zeroizing::new(p)),
            });
        }
    }
    if !std::io::stdin().is_terminal() {
        return Ok(KeySource::default());
    }
    let prompt = ctx.lang.pick("设备密钥口令：", "Device key passphrase: ");
    let first = rpassword::prompt_password(prompt)
        .map_err(|e| Failure::new(1, "io", "", format!("passphrase prompt: {e}")))?;
    if confirm {
        let again =
            rpassword::prompt_password(ctx.lang.pick("再次输入口令：", "Repeat passphrase: "))
                .map_err(|e| Failure::new(1, "io", "", format!("passphrase prompt: {e}")))?;
        if again != first {
            return Err(Failure::new(
                2,
                "passphrase_mismatch",
                "passphrase",
                ctx.lang
                    .pick("两次输入的口令不一致", "the passphrases differ"),
            ));
        }
    }
    if first.is_empty() {
        return Ok(KeySource::default());
    }
    Ok(KeySource {
        passphrase: Some(zeroize::Zeroizing::new(first)),
    })
}

fn init(ctx: &Ctx, seller: &Party, device_name: &str) -> CmdResult {
    let ledger = open(ctx)?;
    let keys = key_source(ctx, true)?;
    let device = ledger
        .init(seller, device_name, &keys, Utc::now())
        .map_err(|e| Failure::ledger(&e, ctx.lang))?;
    if !ctx.json {
        println!(
            "{} {} ({}) — {} {}",
            ctx.lang.pick("已设置设备", "Device set up for"),
            device.seller.name,
            device.seller.tax_id,
            ctx.lang.pick("数据目录", "data in"),
            ctx.data.display()
        );
        println!(
            "{}",
            ctx.lang.pick(
                "下一步：kaipiao enroll --server URL --token 令牌",
                "Next: kaipiao enroll --server URL --token TOKEN"
            )
        );
    }
    Ok(json!({"data": ctx.data, "device": device}))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, "runtime", "", e.to_string()))
}

fn enroll(ctx: &Ctx, servers: &[String], token: &str) -> CmdResult {
    let ledger = open(ctx)?;
    let keys = key_source(ctx, false)?;
    let key = ledger
        .unseal_key(&keys)
        .map_err(|e| Failure::ledger(&e, ctx.lang))?;
    let outcome = runtime()?
        .block_on(kaipiao_sync::enroll(
            &ledger,
            &key,
            servers,
            token,
            &SyncOptions::default(),
        ))
        .map_err(|e| Failure::sync(&e, ctx.lang))?;
    if !ctx.json {
        println!(
            "{} {} — {} {}{:08}..{}{:08}",
            ctx.lang.pick("已登记，设备号", "Enrolled as device"),
            outcome.device_id,
            ctx.lang.pick("号码段", "numbers"),
            outcome.lease.prefix,
            outcome.lease.first,
            outcome.lease.prefix,
            outcome.lease.last
        );
    }
    Ok(json!({
        "device_id": outcome.device_id,
        "authority_public_key": outcome.authority_public_key,
        "lease": outcome.lease,
    }))
}

fn read_input(path: &str, lang: Lang) -> Result<String, Failure> {
    let mut text = String::new();
    let result = if path == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    result.map_err(|e| {
        Failure::new(
            2,
            "unreadable_file",
            "file",
            format!(
                "{path}: {e} ({})",
                lang.pick("无法读取文件", "cannot read the file")
            ),
        )
    })?;
    Ok(text)
}

fn parse_draft(text: &str, lang: Lang) -> Result<Draft, Failure> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Failure::new(
            2,
            "invalid_json",
            "draft",
            format!(
                "{}: {e}",
                lang.pick("草稿不是有效的 JSON", "the draft is not valid JSON")
            ),
        )
    })?;
    Draft::from_json(&value).map_err(|e| Failure::field(&e, lang))
}

fn print_warnings(ctx: &Ctx, warnings: &[kaipiao_core::LimitWarning]) {
    for w in warnings {
        eprintln!(
            "{}: {}",
            ctx.lang.pick("警告", "warning"),
            ctx.lang.pick(&w.zh, &w.en)
        );
    }
}

fn issue(ctx: &Ctx, file: &str) -> CmdResult {
    let text = read_input(file, ctx.lang)?;
    let draft = parse_draft(&text, ctx.lang)?;
    let (ledger, key) = open_unsealed(ctx)?;
    let issued = ledger
        .issue(&draft, &key, Utc::now())
        .map_err(|e| Failure::ledger(&e, ctx.lang))?;
    print_warnings(ctx, &issued.warnings);
    let inv = &issued.envelope.invoice;
    eprintln!(
        "{} {} {} {} ({})",
        ctx.lang.pick("已开具", "Issued"),
        inv.number,
        ctx.lang.pick("价税合计", "total"),
        inv.total,
        ctx.lang.pick("待上传", "pending")
    );
    let doc: Value = serde_json::to_value(&issued.envelope)
        .map_err(|e| Failure::new(1, "internal", "", e.to_string()))?;
    if !ctx.json {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    Ok(doc)
}

fn import(ctx: &Ctx, file: &str) -> CmdResult {
    let text = read_input(file, ctx.lang)?;
    let (ledger, key) = open_unsealed(ctx)?;
    let mut issued = 0u64;
    let (mut first, mut last): (Option<String>, Option<String>) = (None, None);
    let summary = |issued: u64, first: &Option<String>, last: &Option<String>| json!({"issued": issued, "first_number": first, "last_number": last});
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let lineno = i + 1;
        let result = parse_draft(line, ctx.lang).and_then(|draft| {
            ledger
                .issue(&draft, &key, Utc::now())
                .map_err(|e| Failure::ledger(&e, ctx.lang))
        });
        match result {
            Ok(done) => {
                print_warnings(ctx, &done.warnings);
                let number = done.envelope.invoice.number;
                first.get_or_insert_with(|| number.clone());
                last = Some(number);
                issued += 1;
            }
            Err(mut f) => {
                f.message = format!(
                    "{} {lineno}: {} ({} {issued})",
                    ctx.lang.pick("第", "line"),
                    f.message,
                    ctx.lang.pick("此前已开具", "issued before it:")
                );
                let mut doc = summary(issued, &first, &last);
                doc["error"] =
                    json!({"line": lineno, "code": f.code, "field": f.field, "message": f.message});
                f.json = Some(doc);
                return Err(f);
            }
        }
    }
    if !ctx.json {
        println!(
            "{} {issued} {} {} .. {}",
            ctx.lang.pick("已开具", "Issued"),
            ctx.lang.pick("张发票", "invoices"),
            first.as_deref().unwrap_or("-"),
            last.as_deref().unwrap_or("-")
        );
    }
    Ok(summary(issued, &first, &last))
}

fn list(ctx: &Ctx, status: Option<StatusArg>) -> CmdResult {
    let ledger = open(ctx)?;
    let filter = ListFilter {
        status: status.map(|s| match s {
            StatusArg::Pending => Status::Pending,
            StatusArg::Accepted => Status::Accepted,
            StatusArg::Rejected => Status::Rejected,
        }),
        ..ListFilter::default()
    };
    let rows = ledger
        .list(&filter)
        .map_err(|e| Failure::ledger(&e, ctx.lang))?;
    if !ctx.json {
        print!("{}", render::table(&rows, ctx.lang));
    }
    serde_json::to_value(&rows).map_err(|e| Failure::new(1, "internal", "", e.to_string()))
}

fn show(ctx: &Ctx, number_or_id: &str) -> CmdResult {
    let ledger = open(ctx)?;
    let rec = ledger
        .show(number_or_id)
        .map_err(|e| Failure::ledger(&e, ctx.lang))?;
    let words = kaipiao_core::money::parse_money(&rec.envelope.invoice.total)
        .map(kaipiao_core::words::amount_in_words)
        .unwrap_or_default();
    if !ctx.json {
        print!("{}", render::invoice(&rec, &words, ctx.lang));
    }
    Ok(json!({
        "invoice": rec.envelope.invoice,
        "hash": rec.envelope.hash,
        "signature": rec.envelope.signature,
        "status": rec.status,
        "receipt": rec.receipt,
        "total_in_words": words,
        "history": rec.history,
        "outbox": rec.outbox,
    }))
}

/// The ledger and its device key, for the commands that sign or sync (SPEC 8).
fn open_unsealed(ctx: &Ctx) -> Result<(Ledger, DeviceKey), Failure> {
    let ledger = open(ctx)?;
    let key = ledger
        .unseal_key(&key_source(ctx, false)?)
        .map_err(|e| Failure::ledger(&e, ctx.lang))?;
    Ok((ledger, key))
}

/// A run's outcome as the command's result: its document printed whatever the exit
/// (SPEC 9), 3 when transient, 4 with `stopped_code` when a human must look.
fn outcome_result(outcome: &SyncOutcome, doc: Value, stopped_code: &str) -> CmdResult {
    match outcome {
        SyncOutcome::Complete => Ok(doc),
        SyncOutcome::Transient(why) => Err(Failure {
            json: Some(doc),
            ..Failure::new(3, "transient", "", why.clone())
        }),
        SyncOutcome::Stopped(why) => Err(Failure {
            json: Some(doc),
            ..Failure::new(4, stopped_code, "", why.clone())
        }),
    }
}

/// `--start-spread`: whole seconds, 0 to 240 (the policy's cap).
fn parse_spread(s: &str) -> Result<u64, String> {
    let cap = kaipiao_sync::policy::START_SPREAD.as_secs();
    match s.parse::<u64>() {
        Ok(n) if n <= cap => Ok(n),
        _ => Err(format!("expected whole seconds from 0 to {cap}")),
    }
}

fn sync(ctx: &Ctx, background: bool, start_spread: Option<u64>) -> CmdResult {
    let (ledger, key) = open_unsealed(ctx)?;
    let lang = ctx.lang;
    let progress = move |p: kaipiao_sync::Progress| {
        eprintln!("{}", render::progress(&p, lang));
    };
    let opts = SyncOptions {
        background,
        start_spread: start_spread.map(std::time::Duration::from_secs),
        ..SyncOptions::default()
    };
    let report = runtime()?
        .block_on(kaipiao_sync::sync_now(&ledger, &key, &opts, &progress))
        .map_err(|e| Failure::sync(&e, ctx.lang))?;
    let doc = json!({
        "submitted": report.submitted,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "pending": report.pending,
        "server_head": report.server_head,
    });
    if let Some(m) = &report.head_mismatch {
        eprintln!(
            "{}: {m}",
            lang.pick("警告：链头不一致", "warning: chain heads differ")
        );
    }
    for a in &report.alerts {
        eprintln!("{}: {a}", lang.pick("警报", "alert"));
    }
    if !ctx.json {
        println!("{}", render::sync_summary(&report, lang));
    }
    outcome_result(&report.outcome, doc, "queue_stopped")
}

fn reconcile(ctx: &Ctx) -> CmdResult {
    let (ledger, key) = open_unsealed(ctx)?;
    let lang = ctx.lang;
    let progress = move |p: kaipiao_sync::ReconcileProgress| {
        if let Some(line) = render::reconcile_progress(&p, lang) {
            eprintln!("{line}");
        }
    };
    let report = runtime()?
        .block_on(kaipiao_sync::reconcile(
            &ledger,
            &key,
            &SyncOptions::default(),
            &progress,
        ))
        .map_err(|e| Failure::sync(&e, ctx.lang))?;
    let doc = serde_json::to_value(&report)
        .map_err(|e| Failure::new(1, "internal", "", e.to_string()))?;
    for a in &report.alerts {
        eprintln!("{}: {a}", lang.pick("警报", "alert"));
    }
    if !ctx.json {
        print!("{}", render::reconcile(&report, lang));
    }
    outcome_result(&report.outcome, doc, "not_reconciled")
}

fn status(ctx: &Ctx) -> CmdResult {
    let ledger = open(ctx)?;
    let st = ledger
        .status(Utc::now())
        .map_err(|e| Failure::ledger(&e, ctx.lang))?;
    print_warnings(ctx, &st.warnings);
    if !ctx.json {
        print!("{}", render::status(&st, ctx.lang));
        // Not in --json: SPEC 9 fixes that shape; `outages --json` has the current one.
        let current = ledger
            .current_outage()
            .map_err(|e| Failure::ledger(&e, ctx.lang))?;
        if let Some(outage) = &current {
            print!("{}", render::current_outage(outage, Utc::now(), ctx.lang));
        }
    }
    let hours = st
        .offline_hours_left
        .as_deref()
        .and_then(|h| h.parse::<f64>().ok());
    Ok(json!({
        "device_id": st.device_id,
        "pending": st.pending,
        "oldest_pending_at": st.oldest_pending_at,
        "offline_hours_left": hours,
        "offline_amount_left": st.offline_amount_left,
        "numbers_left": st.numbers_left,
        "head": st.head,
        "last_sync_at": st.last_sync_at,
        "queue_stopped": st.queue_stopped,
        "alerts": st.alerts,
    }))
}

fn outages(ctx: &Ctx) -> CmdResult {
    let ledger = open(ctx)?;
    let all = ledger
        .outages()
        .map_err(|e| Failure::ledger(&e, ctx.lang))?;
    let now = Utc::now();
    if !ctx.json {
        print!("{}", render::outages(&all, now, ctx.lang));
    }
    let rows: Vec<Value> = all
        .iter()
        .map(|o| {
            json!({
                "id": o.id,
                "started_at": o.started_at,
                "ended_at": o.ended_at,
                "duration_seconds": o.duration_seconds(now),
                "failed_attempts": o.failed_attempts,
                "failed_endpoint": o.failed_endpoint,
                "reason": o.reason,
                "ended_by": o.ended_by,
                "invoices_issued": o.invoices_issued,
                "first_number": o.first_number,
                "last_number": o.last_number,
            })
        })
        .collect();
    Ok(json!({ "outages": rows }))
}

fn verify(ctx: &Ctx) -> CmdResult {
    let ledger = open(ctx)?;
    match ledger.verify() {
        Ok(report) => {
            if !ctx.json {
                println!(
                    "{}: {} {}, {} {}",
                    ctx.lang.pick("校验通过", "verified"),
                    report.invoices,
                    ctx.lang.pick("张发票", "invoices"),
                    report.receipts,
                    ctx.lang.pick("份回执", "receipts")
                );
            }
            Ok(json!({"ok": true, "invoices": report.invoices, "receipts": report.receipts}))
        }
        Err(e) => {
            let mut f = Failure::ledger(&e, ctx.lang);
            if let LedgerError::Integrity { seq, what } = &e {
                f.json = Some(
                    json!({"ok": false, "seq": seq, "error": {"code": "integrity", "message": what, "field": format!("seq {seq}")}}),
                );
            }
            Err(f)
        }
    }
}

fn export(ctx: &Ctx, out: &Path) -> CmdResult {
    let ledger = open(ctx)?;
    let io_err =
        |e: std::io::Error| Failure::new(1, "io", "out", format!("{}: {e}", out.display()));
    // Write beside the target and rename, so a reader never sees half an export.
    let tmp = out.with_extension(format!("partial-{}", std::process::id()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err)?);
    let n = match ledger.export(&mut file) {
        Ok(n) => n,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(Failure::ledger(&e, ctx.lang));
        }
    };
    file.flush().map_err(io_err)?;
    file.get_ref().sync_all().map_err(io_err)?;
    drop(file);
    std::fs::rename(&tmp, out).map_err(io_err)?;
    if !ctx.json {
        println!(
            "{} {n} {} -> {}",
            ctx.lang.pick("已导出", "exported"),
            ctx.lang.pick("张发票", "invoices"),
            out.display()
        );
    }
    Ok(json!({"invoices": n, "out": out}))
}

fn check_tax_ids(ctx: &Ctx, ids: &[String]) -> ExitCode {
    let mut any_bad = false;
    for id in ids {
        match kaipiao_core::taxid::check_tax_id(id) {
            Ok(normalized) => {
                if ctx.json {
                    println!(
                        "{}",
                        json!({"id": id, "normalized": normalized, "valid": true})
                    );
                } else {
                    println!("{id} valid");
                }
            }
            Err(problem) => {
                any_bad = true;
                let reason = problem.message(ctx.lang == Lang::Zh);
                if ctx.json {
                    println!("{}", json!({"id": id, "valid": false, "reason": reason}));
                } else {
                    println!("{id} invalid: {reason}");
                }
            }
        }
    }
    ExitCode::from(if any_bad { 2 } else { 0 })
}

fn words(ctx: &Ctx, amounts: &[String]) -> ExitCode {
    let mut any_bad = false;
    for a in amounts {
        match kaipiao_core::money::parse_decimal(a, 2) {
            Ok(d) => {
                let w = kaipiao_core::words::amount_in_words(d);
                if ctx.json {
                    println!("{}", json!({"amount": a, "words": w}));
                } else {
                    println!("{w}");
                }
            }
            Err(_) => {
                any_bad = true;
                let msg = ctx.lang.pick(
                    "不是金额：应为最多 2 位小数的数字，如 1234.56",
                    "not an amount: write a number with at most 2 decimals, e.g. 1234.56",
                );
                eprintln!("{a}: {msg}");
                if ctx.json {
                    println!(
                        "{}",
                        json!({"amount": a, "error": {"code": "invalid_amount", "message": msg, "field": "amount"}})
                    );
                }
            }
        }
    }
    ExitCode::from(if any_bad { 2 } else { 0 })
}
