//! `sync` and `reconcile`: the outbox drained, or every invoice checked against the
//! authority's records, with progress on stderr and the summary printed whatever the exit.

use crate::ctx::Ctx;
use crate::failure::{outcome_result, CmdResult, CommandError};
use crate::render;
use kaipiao_core::Code;
use kaipiao_sync::SyncOptions;
use serde_json::json;

/// The summary `sync` prints whatever its exit (SPEC 9).
fn summary(
    submitted: u64,
    accepted: u64,
    rejected: u64,
    pending: u64,
    server_head: Option<&kaipiao_core::wire::Head>,
) -> serde_json::Value {
    json!({
        "submitted": submitted,
        "accepted": accepted,
        "rejected": rejected,
        "pending": pending,
        "server_head": server_head,
    })
}

pub fn sync(ctx: &Ctx, background: bool, start_spread: Option<u64>, lock_wait: u64) -> CmdResult {
    let (ledger, key) = ctx.open_unsealed()?;
    let lang = ctx.lang;
    let progress = move |p: kaipiao_sync::Progress| {
        eprintln!("{}", render::progress(&p, lang));
    };
    let opts = SyncOptions {
        background,
        start_spread: start_spread.map(std::time::Duration::from_secs),
        lock_wait: std::time::Duration::from_secs(lock_wait),
        // `--background` waits for its turn when the authority paces (issue 13); the
        // plain `sync` ends at once with `turn_at`.
        wait_for_turn: background,
        ..SyncOptions::default()
    };
    let report = match kaipiao_desk::runtime()
        .map_err(CommandError::internal)?
        .block_on(kaipiao_sync::sync_now(&ledger, &key, &opts, &progress))
    {
        // Another process is still sending this outbox: the work goes on there, so this
        // is work that remains for a transient reason (SPEC 9: exit 3, summary printed).
        Err(kaipiao_sync::SyncError::Ledger(kaipiao_ledger::LedgerError::Busy)) => {
            let pending = ledger
                .status(chrono::Utc::now())
                .map_err(|e| CommandError::ledger(&e, lang))?
                .pending;
            let doc = summary(0, 0, 0, pending, None);
            let why = kaipiao_core::Msg::new("cli-sync-busy")
                .arg("seconds", lock_wait)
                .text(lang);
            return outcome_result(
                &kaipiao_sync::SyncOutcome::Transient(why),
                doc,
                Code::QueueStopped,
            );
        }
        other => other.map_err(|e| CommandError::sync(&e, ctx.lang))?,
    };
    let mut doc = summary(
        report.submitted,
        report.accepted,
        report.rejected,
        report.pending,
        report.server_head.as_ref(),
    );
    // The authority paces its recovery and this shop's turn has not come (issue 13):
    // the summary says when it will.
    if let Some(turn_at) = &report.turn_at {
        doc["turn_at"] = json!(turn_at);
    }
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
    send_mail(&ledger, &key, lang);
    outcome_result(&report.outcome, doc, Code::QueueStopped)
}

/// After the drain, the deliveries whose time has come go to the mail server. Reported
/// on stderr only: SPEC 9 fixes `sync`'s document and exit code, which are the
/// authority's business, not the mail server's.
fn send_mail(
    ledger: &kaipiao_ledger::Ledger,
    key: &kaipiao_core::DeviceKey,
    lang: kaipiao_core::Lang,
) {
    let run = kaipiao_desk::mail::send_queued(ledger, key);
    if run.sent + run.retrying + run.failed > 0 || run.stopped.is_some() {
        eprintln!(
            "{}: {} {}, {} {}, {} {}{}",
            lang.pick("邮件", "mail"),
            run.sent,
            lang.pick("已发送", "sent"),
            run.retrying,
            lang.pick("稍后重试", "to retry"),
            run.failed,
            lang.pick("已放弃", "given up"),
            run.stopped
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        );
    }
}

/// Reconciliation's progress lines on stderr (`reconcile`, `queue resume`).
fn reconcile_progress(
    lang: kaipiao_core::Lang,
) -> impl Fn(kaipiao_sync::ReconcileProgress) + Send + Sync {
    move |p| {
        if let Some(line) = render::reconcile_progress(&p, lang) {
            eprintln!("{line}");
        }
    }
}

pub fn reconcile(ctx: &Ctx) -> CmdResult {
    let (ledger, key) = ctx.open_unsealed()?;
    let lang = ctx.lang;
    let progress = reconcile_progress(lang);
    let report = kaipiao_desk::runtime()
        .map_err(CommandError::internal)?
        .block_on(kaipiao_sync::reconcile(
            &ledger,
            &key,
            &SyncOptions::default(),
            &progress,
        ))
        .map_err(|e| CommandError::sync(&e, ctx.lang))?;
    let doc = serde_json::to_value(&report).map_err(CommandError::internal)?;
    for a in &report.alerts {
        eprintln!("{}: {a}", lang.pick("警报", "alert"));
    }
    if !ctx.json {
        print!("{}", render::reconcile(&report, lang));
    }
    outcome_result(&report.outcome, doc, Code::NotReconciled)
}

/// `kaipiao queue resume`: reconcile, lift the stop only when that explains it, sync.
pub fn resume(ctx: &Ctx) -> CmdResult {
    let (ledger, key) = ctx.open_unsealed()?;
    let lang = ctx.lang;
    let progress = reconcile_progress(lang);
    let report = kaipiao_desk::runtime()
        .map_err(CommandError::internal)?
        .block_on(kaipiao_sync::resume_queue(
            &ledger,
            &key,
            &SyncOptions::default(),
            &progress,
        ))
        .map_err(|e| CommandError::sync(&e, ctx.lang))?;
    let doc = serde_json::to_value(&report).map_err(CommandError::internal)?;
    let alerts = report
        .reconcile
        .iter()
        .flat_map(|r| r.alerts.iter())
        .chain(report.sync.iter().flat_map(|s| s.alerts.iter()));
    for a in alerts {
        eprintln!("{}: {a}", lang.pick("警报", "alert"));
    }
    if !ctx.json {
        println!("{}", render::resume(&report, lang));
    }
    outcome_result(&report.outcome, doc, Code::QueueStopped)
}
