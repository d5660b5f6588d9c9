//! Batch issue from the tax platform's Excel template (`kaipiao import --xlsx`, the app's
//! 批量开具): the dry run that checks every invoice and places each problem at its cell,
//! and the real run that issues the valid ones in groups, one durable commit per group
//! ([`Ledger::issue_group`]), each invoice with its 发票流水号 as the idempotency key.

use crate::error::DeskError;
use chrono::Utc;
use kaipiao_core::money::{money_string, parse_money};
use kaipiao_core::{Code, DeviceKey, Lang, LimitWarning, Msg};
use kaipiao_ledger::{GroupItem, GroupOutcome, Ledger, LedgerError};
use kaipiao_sheets::batch::{read_batch, BatchInvoice, Defaults, Placed};
use kaipiao_sheets::book::read_xlsx;
pub use kaipiao_sheets::Problem;
use rust_decimal::Decimal;
use serde::Serialize;

/// Invoices issued per transaction: one durable commit each (a crash rolls back at most
/// this many, which a re-import then issues).
pub const GROUP: usize = 200;

/// One invoice of a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct DryInvoice {
    pub serial: String,
    pub lines: usize,
    /// The totals as issuance computes them; null when the invoice has problems.
    pub amount: Option<String>,
    pub tax: Option<String>,
    pub total: Option<String>,
    pub problems: Vec<Problem>,
    /// The number it was issued as by an earlier import (skipped by a real run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_as: Option<String>,
}

/// A dry run: each invoice, then what a real run would issue now (`count`, `total`).
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub invoices: Vec<DryInvoice>,
    pub count: u64,
    pub total: String,
}

impl DryRun {
    pub fn problems(&self) -> usize {
        self.invoices.iter().map(|i| i.problems.len()).sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SerialNumber {
    pub serial: String,
    pub number: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub serial: String,
    pub problems: Vec<Problem>,
}

/// A real run: per serial, issued, skipped (issued before with the same content) or
/// refused with its problems.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub issued: Vec<SerialNumber>,
    pub skipped: Vec<SerialNumber>,
    pub refused: Vec<Refused>,
    /// Deliveries queued for 购买方邮箱 (sent by the next sync or the app's mail thread).
    pub deliveries_queued: u64,
    /// Addresses not queued because no mail server is set up.
    #[serde(skip_serializing_if = "is_zero")]
    pub deliveries_not_set: u64,
    /// The offline-limit warnings of the last invoice issued.
    #[serde(skip)]
    pub warnings: Vec<LimitWarning>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a batch did not run to its end.
#[derive(Debug)]
pub enum BatchError {
    /// The workbook cannot be read at all; nothing was issued.
    Workbook(Vec<Problem>),
    /// A fault stopped the run: every group before it is issued (in `report`); the group
    /// it stopped in was rolled back, and a re-import issues it.
    Stopped { report: RunReport, error: DeskError },
}

/// The workbook's invoices with the till's defaults filled in, every cell read and the
/// addresses checked.
fn read(ledger: &Ledger, bytes: &[u8], lang: Lang) -> Result<Vec<BatchInvoice>, BatchError> {
    let book = read_xlsx(bytes, lang).map_err(|p| BatchError::Workbook(vec![p]))?;
    let till = ledger
        .till_defaults()
        .map_err(|e| BatchError::Workbook(vec![ledger_problem(&e, lang)]))?;
    let defaults = Defaults {
        issuer: till.issuer,
        kind: till.kind,
    };
    let mut invoices = read_batch(&book, &defaults, lang)
        .map_err(BatchError::Workbook)?
        .invoices;
    for inv in &mut invoices {
        if let Some(email) = &inv.email {
            if let Err(e) = crate::mail::check_address(email, "buyer.email") {
                let (sheet, row, _) = inv.placed.place("buyer");
                inv.problems.push(Problem {
                    sheet: sheet.to_string(),
                    row,
                    column: kaipiao_sheets::template::BUYER_EMAIL.to_string(),
                    code: e.code,
                    message: e.text(lang),
                });
                inv.draft = None;
            }
        }
    }
    Ok(invoices)
}

/// A ledger error that is not about one field of one draft, as a problem of the file.
fn ledger_problem(e: &LedgerError, lang: Lang) -> Problem {
    Problem {
        sheet: String::new(),
        row: 0,
        column: String::new(),
        code: e.code(),
        message: e.message(lang),
    }
}

/// A ledger's refusal of one draft, at the cell of the field it names.
fn refusal(placed: &Placed, e: &LedgerError, lang: Lang) -> Problem {
    match e {
        LedgerError::Invalid(fe) => placed.field_problem(fe, lang),
        other => placed.problem(other.code(), other.field(), other.message(lang)),
    }
}

fn conflict(inv: &BatchInvoice, number: &str, lang: Lang) -> Problem {
    placed_serial(
        &inv.placed,
        Code::SerialConflict,
        Msg::new("serial_conflict-issued")
            .arg("serial", inv.serial.as_str())
            .arg("number", number)
            .text(lang),
    )
}

fn placed_serial(placed: &Placed, code: Code, message: String) -> Problem {
    placed.problem(code, "serial", message)
}

/// Checks every invoice of the workbook as issuance would, without issuing and without
/// the key: each problem at its cell, the totals of what a real run would issue.
pub fn dry_run(ledger: &Ledger, bytes: &[u8], lang: Lang) -> Result<DryRun, BatchError> {
    let invoices = read(ledger, bytes, lang)?;
    let mut out = Vec::with_capacity(invoices.len());
    let (mut count, mut sum) = (0u64, Decimal::ZERO);
    for inv in invoices {
        let mut dry = DryInvoice {
            serial: inv.serial.clone(),
            lines: inv.placed.line_rows.len(),
            amount: None,
            tax: None,
            total: None,
            problems: inv.problems.clone(),
            issued_as: None,
        };
        let earlier = ledger
            .import_serial(&inv.serial)
            .map_err(|e| BatchError::Workbook(vec![ledger_problem(&e, lang)]))?;
        if let Some(draft) = &inv.draft {
            match ledger.preview(draft) {
                Ok(c) => {
                    dry.amount = Some(c.total_amount);
                    dry.tax = Some(c.total_tax);
                    dry.total = Some(c.total);
                }
                Err(e) => dry.problems.push(refusal(&inv.placed, &e, lang)),
            }
        }
        match earlier {
            Some((number, digest)) if digest == inv.digest => dry.issued_as = Some(number),
            Some((number, _)) if !inv.serial.is_empty() => {
                dry.problems.push(conflict(&inv, &number, lang))
            }
            _ => {}
        }
        if dry.problems.is_empty() && dry.issued_as.is_none() {
            count += 1;
            sum += dry
                .total
                .as_deref()
                .and_then(parse_money)
                .unwrap_or_default();
        }
        out.push(dry);
    }
    Ok(DryRun {
        invoices: out,
        count,
        total: money_string(sum),
    })
}

/// Test hooks of debug builds: the group size, and a pause (stdout says "import paused")
/// inside the transaction of the group after `pause` groups, for a test to kill the
/// process there.
fn hooks() -> (usize, Option<usize>) {
    if !cfg!(debug_assertions) {
        return (GROUP, None);
    }
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    (
        var("KAIPIAO_TEST_IMPORT_GROUP")
            .filter(|g| *g > 0)
            .unwrap_or(GROUP),
        var("KAIPIAO_TEST_IMPORT_PAUSE"),
    )
}

/// Queues the delivery of invoice `number` to the workbook's 购买方邮箱, when it has one
/// and mail is set up (sent by the next sync or the app's mail thread).
fn queue_mail(
    ledger: &Ledger,
    inv: &BatchInvoice,
    number: &str,
    mail_set: bool,
    lang_code: &str,
    report: &mut RunReport,
) {
    let Some(email) = &inv.email else {
        return;
    };
    if !mail_set {
        report.deliveries_not_set += 1;
    } else if ledger
        .queue_delivery(number, email, lang_code, false, None, Utc::now())
        .is_ok()
    {
        report.deliveries_queued += 1;
    }
}

/// Issues the workbook's valid invoices in groups and refuses the rest, each with its
/// problems; a serial issued before is skipped (same content) or refused (other content).
/// 购买方邮箱 queues a delivery when mail is set up. `on_group` hears the serials done so
/// far after each group is durable.
pub fn run(
    ledger: &Ledger,
    key: &DeviceKey,
    bytes: &[u8],
    lang: Lang,
    mut on_group: impl FnMut(usize),
) -> Result<RunReport, BatchError> {
    let invoices = read(ledger, bytes, lang)?;
    let (group, pause) = hooks();
    let mut report = RunReport::default();
    let mail_set = matches!(ledger.mail_settings(), Ok(Some(_)));
    let lang_code = crate::config::lang_code(lang);
    let mut done = 0usize;
    let mut groups = 0usize;
    // Invoices with problems of their own are refused without reaching the ledger.
    let mut ready = Vec::new();
    for inv in &invoices {
        match &inv.draft {
            Some(draft) if inv.problems.is_empty() => ready.push((inv, draft)),
            _ => report.refused.push(Refused {
                serial: inv.serial.clone(),
                problems: inv.problems.clone(),
            }),
        }
    }
    for chunk in ready.chunks(group) {
        let items: Vec<GroupItem<'_>> = chunk
            .iter()
            .map(|(inv, draft)| GroupItem {
                serial: &inv.serial,
                digest: &inv.digest,
                draft,
            })
            .collect();
        let paused = pause == Some(groups);
        let outcomes = ledger
            .issue_group(&items, key, Utc::now, || {
                if paused {
                    // On stdout, which a test waits on (--json prints nothing before the end).
                    println!("import paused");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                    loop {
                        std::thread::park();
                    }
                }
            })
            .map_err(|e| BatchError::Stopped {
                report: report.clone(),
                error: DeskError::ledger(&e, lang),
            })?;
        groups += 1;
        for ((inv, _), outcome) in chunk.iter().zip(outcomes) {
            let serial = inv.serial.clone();
            match outcome {
                GroupOutcome::Issued(issued) => {
                    let number = issued.envelope.invoice.number.clone();
                    report.warnings = issued.warnings.clone();
                    queue_mail(ledger, inv, &number, mail_set, lang_code, &mut report);
                    report.issued.push(SerialNumber { serial, number });
                }
                GroupOutcome::Skipped { number } => {
                    // Issued by an earlier import that may have stopped before queueing
                    // its mail: queued now if it never was (the address's delivery, if
                    // any, is left as it is).
                    let mailed = inv.email.as_deref().is_some_and(|email| {
                        ledger.deliveries(&number).is_ok_and(|ds| {
                            ds.iter()
                                .any(|d| d.address.eq_ignore_ascii_case(email.trim()))
                        })
                    });
                    if !mailed {
                        queue_mail(ledger, inv, &number, mail_set, lang_code, &mut report);
                    }
                    report.skipped.push(SerialNumber { serial, number })
                }
                GroupOutcome::Conflict { number } => report.refused.push(Refused {
                    problems: vec![conflict(inv, &number, lang)],
                    serial,
                }),
                GroupOutcome::Refused(e) => report.refused.push(Refused {
                    problems: vec![refusal(&inv.placed, &e, lang)],
                    serial,
                }),
            }
        }
        done += chunk.len();
        on_group(done);
    }
    // Refusals in the workbook's order, as the dry run lists them.
    let order: std::collections::HashMap<&str, usize> = invoices
        .iter()
        .enumerate()
        .map(|(i, inv)| (inv.serial.as_str(), i))
        .rev()
        .collect();
    report
        .refused
        .sort_by_key(|r| order.get(r.serial.as_str()).copied().unwrap_or(usize::MAX));
    Ok(report)
}

// -------------------------------------------------------------------------------------
// The app: 批量开具 (check a workbook, then issue it) and the blank template.
// -------------------------------------------------------------------------------------

use crate::dto::{
    BatchCheckDto, BatchInvoiceDto, BatchIssuedDto, BatchRefusedDto, BatchRunDto, ProblemDto,
    SavedFileDto,
};
use crate::engine::Engine;
use crate::error::DeskResult;

/// The SHA-256 of a workbook's bytes, hex.
fn file_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn problems(ps: &[Problem]) -> Vec<ProblemDto> {
    ps.iter().map(ProblemDto::from).collect()
}

fn read_file(path: &std::path::Path, lang: Lang) -> DeskResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        DeskError::say(
            Code::UnreadableFile,
            "file",
            lang,
            Msg::new("unreadable_file")
                .arg("path", path.display().to_string())
                .arg("why", e.to_string()),
        )
    })
}

impl Engine {
    /// 批量开具, first step: the workbook checked as a run would issue it (no key needed).
    pub fn batch_check(&self, path: &std::path::Path) -> DeskResult<BatchCheckDto> {
        let lang = self.lang();
        let bytes = read_file(path, lang)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = BatchCheckDto {
            path: path.display().to_string(),
            file_name,
            digest: file_digest(&bytes),
            invoices: Vec::new(),
            count: 0,
            total: "0.00".into(),
            file_problems: Vec::new(),
        };
        match dry_run(&self.reader(), &bytes, lang) {
            Ok(dry) => {
                out.count = u32::try_from(dry.count).unwrap_or(u32::MAX);
                out.total = dry.total;
                out.invoices = dry
                    .invoices
                    .iter()
                    .map(|i| BatchInvoiceDto {
                        serial: i.serial.clone(),
                        lines: u32::try_from(i.lines).unwrap_or(u32::MAX),
                        amount: i.amount.clone(),
                        tax: i.tax.clone(),
                        total: i.total.clone(),
                        problems: problems(&i.problems),
                        issued_as: i.issued_as.clone(),
                    })
                    .collect();
            }
            Err(BatchError::Workbook(ps)) => out.file_problems = problems(&ps),
            Err(BatchError::Stopped { error, .. }) => return Err(error),
        }
        Ok(out)
    }

    /// 批量开具, confirmed: the valid invoices issued in groups, the rest refused. The
    /// file must still be the one checked (`digest`): one changed since is refused, to be
    /// checked again, so what is issued is what the clerk confirmed.
    pub fn batch_issue(&self, path: &std::path::Path, digest: &str) -> DeskResult<BatchRunDto> {
        let lang = self.lang();
        let key = self.key()?;
        let bytes = read_file(path, lang)?;
        if file_digest(&bytes) != digest {
            return Err(DeskError::say(
                Code::InvalidWorkbook,
                "file",
                lang,
                Msg::new("invalid_workbook-changed").arg("path", path.display().to_string()),
            ));
        }
        let result = run(&self.ledger(), &key, &bytes, lang, |_| {});
        let pending = self.pending_count();
        self.notify.outbox(&crate::dto::OutboxChanged { pending });
        self.sync.wake();
        let report = match result {
            Ok(r) => r,
            Err(BatchError::Workbook(ps)) => {
                let first = ps.first().cloned();
                return Err(DeskError::new(
                    first
                        .as_ref()
                        .map(|p| p.code)
                        .unwrap_or(Code::InvalidWorkbook),
                    "file",
                    first.map(|p| p.to_string()).unwrap_or_default(),
                ));
            }
            Err(BatchError::Stopped { error, .. }) => return Err(error),
        };
        let pair = |s: &SerialNumber| BatchIssuedDto {
            serial: s.serial.clone(),
            number: s.number.clone(),
        };
        Ok(BatchRunDto {
            issued: report.issued.iter().map(pair).collect(),
            skipped: report.skipped.iter().map(pair).collect(),
            refused: report
                .refused
                .iter()
                .map(|r| BatchRefusedDto {
                    serial: r.serial.clone(),
                    problems: problems(&r.problems),
                })
                .collect(),
            deliveries_queued: u32::try_from(report.deliveries_queued).unwrap_or(u32::MAX),
            warnings: report
                .warnings
                .iter()
                .map(|w| crate::status::warning(w, lang))
                .collect(),
        })
    }

    /// The blank batch-issue template, written whole where the clerk chose.
    pub fn save_template(&self, path: &std::path::Path) -> DeskResult<SavedFileDto> {
        let bytes = kaipiao_sheets::template::template().map_err(DeskError::internal)?;
        self.write_chosen(path, &bytes)
    }

    /// `bytes` written whole to a path the clerk chose in a dialog.
    pub(crate) fn write_chosen(
        &self,
        path: &std::path::Path,
        bytes: &[u8],
    ) -> DeskResult<SavedFileDto> {
        if !path.is_absolute() {
            return Err(DeskError::say(
                Code::InvalidPath,
                "path",
                self.lang(),
                Msg::new("invalid_path-pdf"),
            ));
        }
        crate::print::write_whole(path, bytes)
            .map_err(|e| DeskError::new(Code::Io, "path", format!("{}: {e}", path.display())))?;
        Ok(SavedFileDto {
            path: path.display().to_string(),
            bytes: bytes.len() as u64,
        })
    }
}
