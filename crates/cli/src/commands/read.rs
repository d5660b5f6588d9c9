//! The commands that only read the ledger (SPEC 8: they never unseal the key): `list`,
//! `show`, `status`, `outages`, `verify` and `export`.

use crate::ctx::Ctx;
use crate::failure::{CmdResult, CommandError};
use crate::render;
use chrono::Utc;
use kaipiao_cli::args::StatusArg;
use kaipiao_core::Code;
use kaipiao_ledger::{LedgerError, ListFilter, Status};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// The ledger's status for `--status`.
pub fn status_of(s: StatusArg) -> Status {
    match s {
        StatusArg::Pending => Status::Pending,
        StatusArg::Accepted => Status::Accepted,
        StatusArg::Rejected => Status::Rejected,
    }
}

pub fn list(ctx: &Ctx, status: Option<StatusArg>) -> CmdResult {
    let ledger = ctx.open()?;
    let filter = ListFilter {
        status: status.map(status_of),
        ..ListFilter::default()
    };
    let rows = ledger
        .list(&filter)
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        print!("{}", render::table(&rows, ctx.lang));
    }
    serde_json::to_value(&rows).map_err(|e| CommandError::new(1, Code::Internal, "", e.to_string()))
}

pub fn show(ctx: &Ctx, number_or_id: &str) -> CmdResult {
    let ledger = ctx.open()?;
    let rec = ledger
        .show(number_or_id)
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    let words = kaipiao_core::words::total_in_words(&rec.envelope.invoice.total);
    let deliveries = ledger
        .deliveries(number_or_id)
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        print!("{}", render::invoice(&rec, &words, ctx.lang));
        for d in &deliveries {
            println!(
                "{}: {}",
                ctx.lang.pick("邮件", "email"),
                super::mail::describe(d, ctx.lang)
            );
        }
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
        "deliveries": deliveries,
    }))
}

pub fn status(ctx: &Ctx) -> CmdResult {
    let now = Utc::now();
    let shop = kaipiao_desk::status::compose(&ctx.open()?, now)
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    let st = &shop.ledger;
    ctx.print_warnings(&st.warnings);
    if !ctx.json {
        print!("{}", render::status(st, ctx.lang));
        // Not in --json: SPEC 9 fixes that shape; `outages --json` has the current one.
        if let Some(outage) = &shop.current_outage {
            print!("{}", render::current_outage(outage, now, ctx.lang));
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

pub fn outages(ctx: &Ctx) -> CmdResult {
    let ledger = ctx.open()?;
    let all = ledger
        .outages()
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
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

pub fn alerts(ctx: &Ctx) -> CmdResult {
    let ledger = ctx.open()?;
    let all = ledger
        .alerts()
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        print!("{}", render::alerts(&all, ctx.lang));
    }
    let rows: Vec<Value> = all
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "code": a.code,
                "message": a.message,
                "raised_at": a.at,
                "number": a.number,
            })
        })
        .collect();
    Ok(json!({ "alerts": rows }))
}

pub fn dismiss_alert(ctx: &Ctx, id: i64) -> CmdResult {
    let ledger = ctx.open()?;
    ledger
        .dismiss_alert(id, Utc::now())
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        println!(
            "{}",
            ctx.lang.pick(
                &format!("已标记警报 {id} 为已读"),
                &format!("Alert {id} dismissed")
            )
        );
    }
    Ok(json!({ "dismissed": id }))
}

/// `kaipiao queue`: the queue's state and the way forward; never needs the key.
pub fn queue(ctx: &Ctx) -> CmdResult {
    let ledger = ctx.open()?;
    let state = ledger
        .queue_state()
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    let advice = kaipiao_desk::queue::advice(&state, ctx.lang);
    if !ctx.json {
        print!("{}", render::queue(&state, &advice, ctx.lang));
    }
    Ok(json!({
        "stopped": state.stopped,
        "reason": state.reason,
        "since": state.since,
        "alert_id": state.alert_id,
        "local_head": state.local_head,
        "authority_head": state.authority_head,
        "advice": advice,
    }))
}

pub fn verify(ctx: &Ctx) -> CmdResult {
    let ledger = ctx.open()?;
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
            let mut f = CommandError::ledger(&e, ctx.lang);
            if let LedgerError::Integrity { seq, what } = &e {
                f.json = Some(
                    json!({"ok": false, "seq": seq, "error": {"code": Code::Integrity, "message": what, "field": format!("seq {seq}")}}),
                );
            }
            Err(f)
        }
    }
}

pub fn export(ctx: &Ctx, out: &Path) -> CmdResult {
    let ledger = ctx.open()?;
    let io_err = |e: std::io::Error| {
        CommandError::new(1, Code::Io, "out", format!("{}: {e}", out.display()))
    };
    // Write beside the target and rename, so a reader never sees half an export.
    let tmp = out.with_extension(format!("partial-{}", std::process::id()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err)?);
    let n = match ledger.export(&mut file) {
        Ok(n) => n,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(CommandError::ledger(&e, ctx.lang));
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

pub fn pdf(ctx: &Ctx, number: &str, out: &std::path::Path) -> CmdResult {
    use kaipiao_desk::print::{invoice_pdf, PrintError};
    let ledger = ctx.open()?;
    let pdf = invoice_pdf(&ledger, number).map_err(|e| match e {
        PrintError::Ledger(e) => CommandError::ledger(&e, ctx.lang),
        PrintError::Refused { code, field, msg } => CommandError::new(
            crate::failure::EXIT_INVALID,
            code,
            &field,
            msg.text(ctx.lang),
        ),
        PrintError::Internal(why) => CommandError::internal(why),
    })?;
    ctx.write_out(out, &pdf.bytes)?;
    Ok(json!({"out": out, "bytes": pdf.bytes.len(), "number": pdf.number}))
}

pub fn verify_pdf(ctx: &Ctx, file: &Path, authority_keys: &[String]) -> CmdResult {
    let bytes = std::fs::read(file).map_err(|e| {
        CommandError::new(
            crate::failure::EXIT_INVALID,
            Code::UnreadableFile,
            "file",
            kaipiao_core::Msg::new("unreadable_file")
                .arg("path", file.display().to_string())
                .arg("why", e.to_string())
                .text(ctx.lang),
        )
    })?;
    // The pinned key of this data directory, when there is one (never made here).
    let mut trusted: Vec<String> = authority_keys
        .iter()
        .map(|k| k.trim().to_lowercase())
        .collect();
    if ctx.data.join(kaipiao_ledger::DB_FILE).exists() {
        if let Ok(Some(device)) = ctx.open()?.device() {
            if let Some(key) = device
                .authority_public_key
                .as_deref()
                .and_then(|k| kaipiao_core::PublicKey::from_base64(k).ok())
            {
                trusted.push(key.fingerprint());
            }
        }
    }
    let report = kaipiao_pdf::verify_pdf(&bytes, &trusted);
    let doc = serde_json::to_value(&report).map_err(CommandError::internal)?;
    if !ctx.json {
        for c in &report.checks {
            println!(
                "{} {:<17} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        println!(
            "{}",
            if report.valid {
                ctx.lang.pick(
                    "发票 PDF 与其内嵌证明相符。",
                    "The PDF matches the proof it carries.",
                )
            } else {
                ctx.lang
                    .pick("发票 PDF 未通过核验。", "The PDF does not verify.")
            }
        );
    }
    if report.valid {
        Ok(doc)
    } else {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect();
        Err(CommandError {
            json: Some(doc),
            ..CommandError::new(
                crate::failure::EXIT_INTEGRITY,
                Code::Integrity,
                failed.first().copied().unwrap_or(""),
                format!(
                    "{}: {}",
                    ctx.lang.pick("未通过", "failed"),
                    failed.join(", ")
                ),
            )
        })
    }
}

/// `kaipiao summary --month YYYY-MM`: the month's figures (kaipiao-core sums them).
pub fn summary(ctx: &Ctx, month: &str) -> CmdResult {
    let ledger = ctx.open()?;
    let (s, _) = kaipiao_desk::stats::month_summary(&ledger, month)
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        print!("{}", render::month_summary(&s, ctx.lang));
    }
    Ok(serde_json::to_value(&s).map_err(CommandError::internal)?)
}
