//! `import --xlsx [--dry-run]` and `template`: batch issue from the tax platform's
//! workbook layout (kaipiao-desk's batch.rs does the work); `export --xlsx|--csv`, the
//! accountant's workbook (kaipiao-desk's export.rs).

use crate::ctx::Ctx;
use crate::failure::{CmdResult, CommandError, EXIT_INVALID, EXIT_OTHER};
use kaipiao_core::{Code, Msg};
use kaipiao_desk::batch::{self, BatchError, Problem};
use serde_json::{json, Value};
use std::path::Path;
use unicode_width::UnicodeWidthStr;

fn unreadable(ctx: &Ctx, path: &Path, e: std::io::Error) -> CommandError {
    CommandError::new(
        EXIT_INVALID,
        Code::UnreadableFile,
        "xlsx",
        Msg::new("unreadable_file")
            .arg("path", path.display().to_string())
            .arg("why", e.to_string())
            .text(ctx.lang),
    )
}

fn print_problems(problems: &[Problem]) {
    for p in problems {
        println!("    {p}");
    }
}

/// The workbook could not be read at all: exit 2, each problem on stderr, and with
/// --json the error plus every problem.
fn workbook_error(problems: Vec<Problem>) -> CommandError {
    let first = problems.first().cloned();
    let message = problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let code = first.map(|p| p.code).unwrap_or(Code::InvalidWorkbook);
    let mut e = CommandError::new(EXIT_INVALID, code, "xlsx", message);
    let mut doc = e.error_json();
    doc["problems"] = json!(problems);
    e.json = Some(doc);
    e
}

fn pad(text: &str, width: usize) -> String {
    let w = UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(w)))
}

/// Right-aligned to a display width (CJK headers are two columns a character).
fn rpad(text: &str, width: usize) -> String {
    let w = UnicodeWidthStr::width(text);
    format!("{}{text}", " ".repeat(width.saturating_sub(w)))
}

/// The refusal a run or a dry run ends with: how many invoices, and what to do.
fn refused(
    count: usize,
    doc: Value,
    first: Option<&Problem>,
    lang: kaipiao_core::Lang,
) -> CommandError {
    let mut e = CommandError::new(
        EXIT_INVALID,
        first.map(|p| p.code).unwrap_or(Code::InvalidWorkbook),
        "xlsx",
        Msg::new("cli-batch-refused")
            .arg("count", count as u64)
            .text(lang),
    );
    e.json = Some(doc);
    e
}

pub fn import_xlsx(ctx: &Ctx, path: &Path, dry_run: bool) -> CmdResult {
    let bytes = std::fs::read(path).map_err(|e| unreadable(ctx, path, e))?;
    if dry_run {
        let ledger = ctx.open()?;
        let dry = match batch::dry_run(&ledger, &bytes, ctx.lang) {
            Ok(d) => d,
            Err(BatchError::Workbook(p)) => return Err(workbook_error(p)),
            Err(BatchError::Stopped { error, .. }) => {
                return Err(CommandError::new(
                    EXIT_OTHER,
                    error.code,
                    &error.field,
                    error.message,
                ))
            }
        };
        let doc = serde_json::to_value(&dry).map_err(CommandError::internal)?;
        if !ctx.json {
            let head = [
                ctx.lang.pick("发票流水号", "serial"),
                ctx.lang.pick("行数", "lines"),
                ctx.lang.pick("金额", "amount"),
                ctx.lang.pick("税额", "tax"),
                ctx.lang.pick("价税合计", "total"),
            ];
            let width = dry
                .invoices
                .iter()
                .map(|i| UnicodeWidthStr::width(i.serial.as_str()))
                .chain([UnicodeWidthStr::width(head[0])])
                .max()
                .unwrap_or(10);
            println!(
                "{}  {}  {}  {}  {}",
                pad(head[0], width),
                rpad(head[1], 5),
                rpad(head[2], 14),
                rpad(head[3], 12),
                rpad(head[4], 14)
            );
            for inv in &dry.invoices {
                let dash = || "-".to_string();
                println!(
                    "{}  {:>5}  {:>14}  {:>12}  {:>14}{}",
                    pad(&inv.serial, width),
                    inv.lines,
                    inv.amount.clone().unwrap_or_else(dash),
                    inv.tax.clone().unwrap_or_else(dash),
                    inv.total.clone().unwrap_or_else(dash),
                    inv.issued_as
                        .as_ref()
                        .map(|n| format!(
                            "  ({})",
                            Msg::new("cli-batch-skipped")
                                .arg("number", n.as_str())
                                .text(ctx.lang)
                        ))
                        .unwrap_or_default()
                );
                print_problems(&inv.problems);
            }
            println!(
                "{}",
                Msg::new("cli-batch-confirm")
                    .arg("count", dry.count)
                    .arg("total", dry.total.as_str())
                    .text(ctx.lang)
            );
        }
        let with_problems = dry
            .invoices
            .iter()
            .filter(|i| !i.problems.is_empty())
            .count();
        if with_problems > 0 {
            let first = dry
                .invoices
                .iter()
                .flat_map(|i| &i.problems)
                .next()
                .cloned();
            return Err(refused(with_problems, doc, first.as_ref(), ctx.lang));
        }
        return Ok(doc);
    }

    let (ledger, key) = ctx.open_unsealed()?;
    let (report, stopped) = match batch::run(&ledger, &key, &bytes, ctx.lang, |_| {}) {
        Ok(r) => (r, None),
        Err(BatchError::Workbook(p)) => return Err(workbook_error(p)),
        Err(BatchError::Stopped { report, error }) => (report, Some(error)),
    };
    ctx.print_warnings(&report.warnings);
    let doc = serde_json::to_value(&report).map_err(CommandError::internal)?;
    if !ctx.json {
        for s in &report.issued {
            println!(
                "{}  {} {}",
                s.serial,
                ctx.lang.pick("已开具", "issued"),
                s.number
            );
        }
        for s in &report.skipped {
            println!(
                "{}  {}",
                s.serial,
                Msg::new("cli-batch-skipped")
                    .arg("number", s.number.as_str())
                    .text(ctx.lang)
            );
        }
        for r in &report.refused {
            println!("{}  {}", r.serial, ctx.lang.pick("拒绝", "refused"));
            print_problems(&r.problems);
        }
        println!(
            "{}",
            Msg::new("cli-batch-done")
                .arg("issued", report.issued.len() as u64)
                .arg("skipped", report.skipped.len() as u64)
                .arg("refused", report.refused.len() as u64)
                .text(ctx.lang)
        );
    }
    if report.deliveries_queued > 0 {
        eprintln!(
            "{}",
            Msg::new("cli-batch-mail")
                .arg("count", report.deliveries_queued)
                .text(ctx.lang)
        );
    }
    if report.deliveries_not_set > 0 {
        eprintln!(
            "{}",
            Msg::new("cli-batch-mail-not-set")
                .arg("count", report.deliveries_not_set)
                .text(ctx.lang)
        );
    }
    if let Some(error) = stopped {
        let mut e = CommandError::new(EXIT_OTHER, error.code, &error.field, error.message);
        let mut doc = doc;
        doc["error"] = e.error_json()["error"].clone();
        e.json = Some(doc);
        return Err(e);
    }
    if !report.refused.is_empty() {
        let first = report
            .refused
            .iter()
            .flat_map(|r| &r.problems)
            .next()
            .cloned();
        return Err(refused(report.refused.len(), doc, first.as_ref(), ctx.lang));
    }
    Ok(doc)
}

pub fn template(ctx: &Ctx, out: &Path) -> CmdResult {
    let bytes = kaipiao_sheets::template::template().map_err(CommandError::internal)?;
    ctx.write_out(out, &bytes)?;
    Ok(json!({"out": out, "bytes": bytes.len()}) as Value)
}

/// `FILE.csv` -> `FILE-<sheet>.csv` beside it.
fn csv_path(base: &Path, sheet: &str) -> std::path::PathBuf {
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    base.with_file_name(format!("{stem}-{sheet}.csv"))
}

pub fn export_sheets(
    ctx: &Ctx,
    xlsx: Option<&Path>,
    csv: Option<&Path>,
    from: Option<String>,
    to: Option<String>,
    status: Option<crate::args::StatusArg>,
) -> CmdResult {
    use kaipiao_desk::export::sheets;
    let ledger = ctx.open()?;
    let filter = kaipiao_ledger::ListFilter {
        status: status.map(crate::commands::read::status_of),
        from,
        to,
        ..Default::default()
    };
    let (invoices, lines, n) =
        sheets(&ledger, &filter).map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    let written: Vec<std::path::PathBuf> = match (xlsx, csv) {
        (Some(out), _) => {
            let bytes =
                kaipiao_sheets::write::xlsx(&[invoices, lines]).map_err(CommandError::internal)?;
            ctx.write_out(out, &bytes)?;
            vec![out.to_path_buf()]
        }
        (None, Some(base)) => {
            let mut paths = Vec::new();
            for sheet in [&invoices, &lines] {
                let path = csv_path(base, &sheet.name);
                ctx.write_out(&path, kaipiao_sheets::write::csv(sheet).as_bytes())?;
                paths.push(path);
            }
            paths
        }
        (None, None) => Vec::new(),
    };
    if !ctx.json {
        println!(
            "{} {n} {}",
            ctx.lang.pick("已导出", "exported"),
            ctx.lang.pick("张发票", "invoices"),
        );
    }
    Ok(match (xlsx, written.as_slice()) {
        (Some(_), [one]) => json!({"invoices": n, "out": one}),
        _ => json!({"invoices": n, "out": written}),
    })
}
