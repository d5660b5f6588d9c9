//! `issue` and `import`: drafts from a file or standard input, issued one by one, each
//! durable when it is printed.

use crate::ctx::Ctx;
use crate::failure::{CmdResult, CommandError, EXIT_INVALID};
use chrono::Utc;
use kaipiao_core::{Code, Draft, Lang, Msg};
use serde_json::{json, Value};

pub fn parse_draft(text: &str, lang: Lang) -> Result<Draft, CommandError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        CommandError::new(
            EXIT_INVALID,
            Code::InvalidJson,
            "draft",
            Msg::new("invalid_json")
                .arg("why", e.to_string())
                .text(lang),
        )
    })?;
    Draft::from_json(&value).map_err(|e| CommandError::field(&e, lang))
}

pub fn issue(ctx: &Ctx, file: &str) -> CmdResult {
    let text = ctx.read_input(file)?;
    let draft = parse_draft(&text, ctx.lang)?;
    let (ledger, key) = ctx.open_unsealed()?;
    let issued = ledger
        .issue_with_clock(&draft, &key, Utc::now)
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    ctx.print_warnings(&issued.warnings);
    let inv = &issued.envelope.invoice;
    eprintln!(
        "{} {} {} {} ({})",
        ctx.lang.pick("已开具", "Issued"),
        inv.number,
        ctx.lang.pick("价税合计", "total"),
        inv.total,
        ctx.lang.pick("待上传", "pending")
    );
    let doc: Value = serde_json::to_value(&issued.envelope).map_err(CommandError::internal)?;
    if !ctx.json {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    Ok(doc)
}

pub fn import(ctx: &Ctx, file: &str) -> CmdResult {
    let text = ctx.read_input(file)?;
    let (ledger, key) = ctx.open_unsealed()?;
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
                .issue_with_clock(&draft, &key, Utc::now)
                .map_err(|e| CommandError::ledger(&e, ctx.lang))
        });
        match result {
            Ok(done) => {
                ctx.print_warnings(&done.warnings);
                let number = done.envelope.invoice.number;
                first.get_or_insert_with(|| number.clone());
                last = Some(number);
                issued += 1;
            }
            Err(mut f) => {
                f.message = Msg::new("cli-import-line")
                    .arg("line", lineno)
                    .arg("message", f.message)
                    .arg("issued", issued)
                    .text(ctx.lang);
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
