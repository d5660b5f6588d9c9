//! The command line: every subcommand and flag of `kaipiao`, as clap parses them.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "kaipiao",
    version,
    about = "Kaipiao 开票: offline-first VAT invoicing from a terminal"
)]
pub struct Cli {
    /// Data directory (default: $KAIPIAO_DATA, else the platform's data directory).
    #[arg(long, global = true, env = "KAIPIAO_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print exactly one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
        /// Trust only an authority whose key has this fingerprint (the lowercase hex
        /// SHA-256 of its raw 32-byte key, as taxd prints it at start): checked before
        /// anything is sent; another key is refused and nothing is enrolled.
        #[arg(long = "authority-key", value_name = "FINGERPRINT", value_parser = parse_fingerprint)]
        authority_key: Option<String>,
        /// Allow plain http:// to the servers given even where they are not this
        /// computer (for tests; stored for those endpoints only). Without it such a
        /// server is refused: https:// is required except for loopback.
        #[arg(long = "allow-insecure-http")]
        allow_insecure_http: bool,
    },
    /// Issue one invoice from a draft file (or - for stdin); prints the envelope.
    Issue {
        #[arg(long, value_name = "DRAFT.json|-")]
        file: String,
    },
    /// Issue one draft per line, in order, each durable on its own (--file); or batch
    /// issue from a workbook in the tax platform's template layout (--xlsx: sheets 基本信息
    /// and 明细, see `kaipiao template`), in groups, each 发票流水号 issued once however
    /// often the file is imported. --dry-run checks every invoice and issues nothing;
    /// with --json {invoices: [{serial, lines, amount, tax, total, problems}], count,
    /// total}. The real run's --json is {issued: [{serial, number}], skipped: [{serial,
    /// number}], refused: [{serial, problems}]}; a problem is {sheet, row, column, code,
    /// message}. Exit 2 when any invoice has a problem.
    Import {
        #[arg(
            long,
            value_name = "DRAFTS.jsonl",
            required_unless_present = "xlsx",
            conflicts_with = "xlsx"
        )]
        file: Option<String>,
        #[arg(long, value_name = "FILE.xlsx")]
        xlsx: Option<PathBuf>,
        #[arg(long, requires = "xlsx")]
        dry_run: bool,
    },
    /// Writes the blank batch-issue workbook (sheets 基本信息 and 明细, with dropdowns
    /// for the coded columns) for `import --xlsx`.
    Template {
        #[arg(long, value_name = "FILE.xlsx")]
        out: PathBuf,
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
        /// When another process (the app, another `kaipiao sync`) is sending this outbox,
        /// wait up to SECONDS (at most 3600) for it to finish; still busy then, the run
        /// prints its summary and exits 3.
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_LOCK_WAIT, value_parser = parse_lock_wait)]
        lock_wait: u64,
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
    /// The alerts that need a person (a receipt that did not verify, a refused lease, a
    /// stopped queue, ...), oldest first; with --json {"alerts": [{"id", "code",
    /// "message", "raised_at", "number"}]} (number: the invoice's, or null).
    /// `alerts dismiss ID` marks one as read: it leaves the list, and stays in the ledger.
    Alerts {
        #[command(subcommand)]
        action: Option<AlertsAction>,
    },
    /// Whether the queue is stopped, why and since when, what the ledger and the
    /// authority (as last heard) each hold, and what to do; exit 0 either way. With
    /// --json {"stopped", "reason", "since", "alert_id", "local_head": {"seq", "hash"},
    /// "authority_head": {"seq", "hash", "read_at"} | null, "advice"}.
    /// `queue resume` reconciles first and lifts the stop only when that explains it,
    /// then syncs: exit 0 resumed, 3 could not reach the authority, 4 still stopped.
    Queue {
        #[command(subcommand)]
        action: Option<QueueAction>,
    },
    /// Write an online backup of the ledger, with the device key sealed inside it (never
    /// plain), to FILE (never overwritten). A key in the OS keyring is sealed for the
    /// backup under KAIPIAO_BACKUP_PASSPHRASE (or a passphrase typed when asked). With
    /// --json {"out", "bytes", "invoices", "head": {"seq", "hash"}, "key", "created_at"}.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Make the data directory again from a backup written by `backup`: the chain
    /// verified, what the authority holds beyond the backup brought back, every number
    /// the lost copy may have used reported and given up, a fresh block taken. Needs the
    /// authority (exit 3 when it cannot be reached; nothing changed). The directory it
    /// replaces is kept beside it as NAME.replaced-TIMESTAMP; one that still holds
    /// pending invoices is replaced only with --replace-pending. The key opens with the
    /// device passphrase (KAIPIAO_PASSPHRASE), or for a key that was in the OS keyring
    /// with the backup passphrase (KAIPIAO_BACKUP_PASSPHRASE), which then seals it. With
    /// --json the report (docs/CLI.md).
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace a ledger that still holds invoices the authority has not received.
        #[arg(long)]
        replace_pending: bool,
    },
    /// Check the chain, every signature and every stored receipt.
    Verify,
    /// Write the ledger as JSON Lines (SPEC 9, --out); or for the accountant (--xlsx: sheets
    /// 发票, one row per invoice, and 明细, one row per line, Chinese headers, amounts as
    /// numbers; --csv FILE.csv: the same as FILE-发票.csv and FILE-明细.csv), optionally
    /// only the invoices issued --from/--to (YYYY-MM-DD, inclusive, China time) or with
    /// --status. With --json {"invoices", "out"} ("out" a list of two files for --csv).
    #[command(group(clap::ArgGroup::new("format").required(true).args(["out", "xlsx", "csv"])))]
    Export {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long, value_name = "FILE.xlsx")]
        xlsx: Option<PathBuf>,
        #[arg(long, value_name = "FILE.csv")]
        csv: Option<PathBuf>,
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "out")]
        from: Option<String>,
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "out")]
        to: Option<String>,
        #[arg(long, value_enum, conflicts_with = "out")]
        status: Option<StatusArg>,
    },
    /// Check tax IDs (统一社会信用代码 / 纳税人识别号).
    CheckTaxId {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Check an invoice PDF offline against the proof embedded in it: the device signature
    /// and hash, the authority's receipt (trusted when its key's fingerprint is the one
    /// pinned in this data directory or given with --authority-key), the printed text and
    /// the QR code as drawn. Exit 0 when all hold, 4 when anything differs or the proof is
    /// missing, unreadable or unverified. With --json {"valid", "number", "status",
    /// "checks": [{"name", "ok", "detail"}]}.
    VerifyPdf {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The authority key's fingerprint (lowercase hex SHA-256 of the raw key) to trust.
        #[arg(long = "authority-key", value_name = "FINGERPRINT")]
        authority_key: Vec<String>,
    },
    /// The buyer's check (查验): asks the authority whether it holds the invoice NUMBER
    /// issued on DATE (YYYYMMDD, China time) with 价税合计 TOTAL and an authority code
    /// ending in CODE6 (the last 6 digits printed on the invoice and in its QR code). No
    /// device key is needed. Exit 0 when it matches, 4 when not, 3 when the authority
    /// cannot be reached, 2 for a malformed field. With --json {"match", "status",
    /// "server"}.
    CheckInvoice {
        /// The authority to ask (default: this data directory's primary server).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        #[arg(value_name = "NUMBER")]
        number: String,
        #[arg(value_name = "DATE")]
        date: String,
        #[arg(value_name = "TOTAL", allow_hyphen_values = true)]
        total: String,
        #[arg(value_name = "CODE6")]
        code: String,
    },
    /// The invoice as a PDF laid out like a 数电票 (210 x 140 mm), with its QR code and
    /// its proof embedded (docs/FORMATS.md): a pending invoice says so on the paper, an
    /// accepted one carries the authority's code; a rejected one is refused
    /// (`not_printable`, exit 2), as is an unknown number (exit 2). FILE is written whole
    /// or not at all (a temporary file renamed over it). With --json {"out", "bytes",
    /// "number"}.
    Pdf {
        #[arg(value_name = "NUMBER")]
        number: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// The mail server invoices are sent through (`smtp set`); alone, the stored
    /// settings (never the password). With --json {"smtp": {"host", "port", "user",
    /// "from", "security", "updated_at"} | null}.
    Smtp {
        #[command(subcommand)]
        action: Option<SmtpAction>,
    },
    /// Email the invoice NUMBER (its PDF and its envelope as JSON, a zh/en body) to
    /// ADDRESS: queued beside the outbox, then tried at once. A delivery to the same
    /// address already queued or sent is answered instead of sending again, unless
    /// --again. Exit 0 sent, 3 still queued (the mail server unreachable or refusing for
    /// now: `sync` and the app send it later, with backoff), 4 given up, 2 a bad address
    /// or number or no mail settings. With --json {"delivery": {"id", "number",
    /// "address", "lang", "status", "attempts", "next_attempt_at", "last_error",
    /// "message_id", "created_at", "sent_at", ...}}.
    Deliver {
        #[arg(value_name = "NUMBER")]
        number: String,
        #[arg(long, value_name = "ADDRESS")]
        email: String,
        /// Send again to an address the invoice was already sent to.
        #[arg(long)]
        again: bool,
    },
    /// A month's figures for the accountant, China time: by kind (a credit note under the
    /// kind it credits) and by rate, blue (蓝字) and red (红字) apart: count, amount and
    /// tax. Accepted invoices are counted, pending ones shown apart, rejected ones left
    /// out; an invoice with several rates counts once in each rate's row and once in the
    /// totals, and the rows add up to the totals exactly. With --json {month, rows:
    /// [{kind, tax_rate, sign, count, amount, tax}], pending: {count, amount, tax},
    /// totals: {count, amount, tax, total}}.
    Summary {
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
    },
    /// This till's defaults: the issuer (开票人) and the kind a new invoice starts as, in
    /// the app's entry form and `import --xlsx`; `issue` never reads them. `till set`
    /// changes the options given. With --json {"issuer", "kind"}.
    Till {
        #[command(subcommand)]
        action: Option<TillAction>,
    },
    /// The items catalog (项目信息): what the app's entry form offers as you type a line.
    /// Alone, or `list [--search Q]`, the items; `add` saves one (an item with the same
    /// name and 规格型号 is updated); `remove ID`; `import FILE` and `export --out FILE`
    /// in CSV or XLSX (by the file's extension) with the template's 明细 headers. With
    /// --json {"items": [...]}, the entry saved, {"removed"}, {"added", "updated",
    /// "problems"} or {"out", "count"}.
    Items {
        #[command(subcommand)]
        action: Option<ItemsAction>,
    },
    /// The buyers catalog (客户信息): as `items`, by tax ID (by name when there is none),
    /// with the template's 基本信息 headers.
    Buyers {
        #[command(subcommand)]
        action: Option<BuyersAction>,
    },
    /// Amounts in Chinese capitals (大写).
    Words {
        #[arg(required = true, allow_hyphen_values = true)]
        amounts: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlertsAction {
    /// Mark alert ID as read (exit 2 when there is no such alert not yet dismissed).
    Dismiss {
        #[arg(value_name = "ID")]
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ItemsAction {
    /// Save an item: the name with its *简称* (`*计算机配套产品*键盘`), the 19-digit
    /// 税收分类编码, the rate (13% or 0.13) and, for a 0 rate, the treatment.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        tax_code: String,
        #[arg(long, default_value = "")]
        spec: String,
        #[arg(long, default_value = "")]
        unit: String,
        /// The default unit price (none when not given).
        #[arg(long, default_value = "")]
        price: String,
        /// The price includes the tax.
        #[arg(long)]
        price_includes_tax: bool,
        #[arg(long, value_name = "13%|0.13")]
        rate: String,
        #[arg(long, value_name = "exempt|non_taxable|zero_rated", default_value = "")]
        treatment: String,
    },
    /// The items, by name; --search as the entry form matches (name, pinyin initials, code).
    List {
        #[arg(long)]
        search: Option<String>,
    },
    Remove {
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// Items from a .csv or .xlsx file with the 明细 headers (项目名称, 商品和服务税收分类编码,
    /// 规格型号, 单位, 单价, 是否含税, 税率, 免税类型); exit 2 if any row was refused.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    Export {
        #[arg(long, value_name = "FILE.csv|FILE.xlsx")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BuyersAction {
    /// Save a buyer: name, tax ID (checked; required for a special-invoice buyer), address
    /// and phone, bank and account, email, and the kind its invoices start as.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        tax_id: String,
        #[arg(long, default_value = "")]
        address: String,
        #[arg(long, default_value = "")]
        bank: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, value_name = "ordinary|special", default_value = "ordinary")]
        kind: String,
    },
    List {
        #[arg(long)]
        search: Option<String>,
    },
    Remove {
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// Buyers from a .csv or .xlsx file with the 基本信息 headers (购买方名称,
    /// 购买方纳税人识别号, 购买方地址, 购买方电话, 购买方开户银行, 购买方开户银行账户,
    /// 购买方邮箱, 发票类型); exit 2 if any row was refused.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    Export {
        #[arg(long, value_name = "FILE.csv|FILE.xlsx")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum TillAction {
    /// Set the issuer and/or the default kind (ordinary or special).
    Set {
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long, value_name = "ordinary|special")]
        kind: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SmtpAction {
    /// Store the mail server's settings; the password comes from KAIPIAO_SMTP_PASSWORD or
    /// a prompt and is sealed under the device key (which must open: KAIPIAO_PASSPHRASE).
    /// Without --tls or --starttls the connection is not encrypted: only for a relay on
    /// this machine or the shop's own network.
    Set(SmtpSet),
}

/// `smtp set`'s flags.
#[derive(clap::Args, Debug)]
pub struct SmtpSet {
    #[arg(long)]
    pub host: String,
    #[arg(long)]
    pub port: u16,
    /// The login; leave it out for a relay that takes mail without one.
    #[arg(long, default_value = "")]
    pub user: String,
    /// The sender address the buyer sees.
    #[arg(long, value_name = "ADDRESS")]
    pub from: String,
    /// TLS from the first byte (SMTPS, usually port 465).
    #[arg(long, conflicts_with = "starttls")]
    pub tls: bool,
    /// STARTTLS, required (submission, usually port 587).
    #[arg(long)]
    pub starttls: bool,
}

#[derive(Subcommand, Debug)]
pub enum QueueAction {
    /// Reconcile with the authority, and resume the stopped queue only when that explains
    /// the stop; then sync. Needs the device key.
    Resume,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StatusArg {
    Pending,
    Accepted,
    Rejected,
}

/// `enroll --authority-key`: 64 hex digits.
pub fn parse_fingerprint(s: &str) -> Result<String, String> {
    kaipiao_core::PublicKey::parse_fingerprint(s).ok_or_else(|| {
        "expected 64 hex digits (the SHA-256 of the authority's key, as taxd prints it)".into()
    })
}

/// `sync --lock-wait` unless given: as long as a run waits without progress (SPEC 9).
pub const DEFAULT_LOCK_WAIT: u64 = 30;

pub fn parse_lock_wait(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n <= 3600 => Ok(n),
        _ => Err("expected whole seconds from 0 to 3600".into()),
    }
}

pub fn parse_spread(s: &str) -> Result<u64, String> {
    let cap = kaipiao_sync::policy::START_SPREAD.as_secs();
    match s.parse::<u64>() {
        Ok(n) if n <= cap => Ok(n),
        _ => Err(format!("expected whole seconds from 0 to {cap}")),
    }
}
