//! Human-readable output: the `list` table, a readable invoice for `show`, status and
//! sync summaries, progress lines. JSON output never comes through here.

use chrono::{DateTime, Utc};
use kaipiao_core::{Kind, Lang};
use kaipiao_ledger::{InvoiceRecord, InvoiceSummary, LedgerStatus, Outage, Status};
use kaipiao_sync::{Progress, ReconcileProgress, ReconcileReport, SyncReport};
use std::fmt::Write;
use unicode_width::UnicodeWidthStr;

fn status_label(s: Status, lang: Lang) -> &'static str {
    match (s, lang) {
        (Status::Pending, Lang::Zh) => "待上传",
        (Status::Accepted, Lang::Zh) => "已受理",
        (Status::Rejected, Lang::Zh) => "已拒绝",
        (Status::Pending, Lang::En) => "pending",
        (Status::Accepted, Lang::En) => "accepted",
        (Status::Rejected, Lang::En) => "rejected",
    }
}

fn kind_label(kind: &str, lang: Lang) -> String {
    match (Kind::parse(kind), lang) {
        (Some(Kind::Ordinary), Lang::Zh) => "普通发票".into(),
        (Some(Kind::Special), Lang::Zh) => "专用发票".into(),
        (Some(Kind::Credit), Lang::Zh) => "红字发票".into(),
        _ => kind.to_string(),
    }
}

/// Pads to a display width (CJK characters take two columns).
fn pad(s: &str, width: usize, right_align: bool) -> String {
    let w = UnicodeWidthStr::width(s);
    let fill = " ".repeat(width.saturating_sub(w));
    if right_align {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

fn truncate(s: &str, max_width: usize) -> String {
    if UnicodeWidthStr::width(s) <= max_width {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if UnicodeWidthStr::width(out.as_str())
            + unicode_width::UnicodeWidthChar::width(c).unwrap_or(1)
            > max_width.saturating_sub(1)
        {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// The aligned table of `kaipiao list`.
pub fn table(rows: &[InvoiceSummary], lang: Lang) -> String {
    let headers: [&str; 7] = match lang {
        Lang::Zh => [
            "序号",
            "发票号码",
            "种类",
            "开票时间",
            "购买方",
            "价税合计",
            "状态",
        ],
        Lang::En => [
            "seq",
            "number",
            "kind",
            "issued at",
            "buyer",
            "total",
            "status",
        ],
    };
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.seq.to_string(),
                r.number.clone(),
                kind_label(&r.kind, lang),
                r.issued_at.clone(),
                truncate(&r.buyer_name, 30),
                r.total.clone(),
                status_label(r.status, lang).to_string(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| UnicodeWidthStr::width(*h)).collect();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(UnicodeWidthStr::width(c.as_str()));
        }
    }
    let right = [true, false, false, false, false, true, false];
    let mut out = String::new();
    let line = |cols: &[String]| -> String {
        cols.iter()
            .enumerate()
            .map(|(i, c)| pad(c, widths[i], right[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(out, "{}", line(&head));
    let _ = writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for row in &cells {
        let _ = writeln!(out, "{}", line(row));
    }
    let _ = writeln!(out, "{} {}", rows.len(), lang.pick("张发票", "invoices"));
    out
}

/// A readable invoice for `kaipiao show`.
pub fn invoice(rec: &InvoiceRecord, words: &str, lang: Lang) -> String {
    let inv = &rec.envelope.invoice;
    let mut o = String::new();
    let l = |zh: &'static str, en: &'static str| lbl(lang.pick(zh, en), 14);
    let kind = inv.kind;
    let _ = writeln!(
        o,
        "{}  {}",
        kind.label_zh(),
        if lang == Lang::En { kind.as_str() } else { "" }
    );
    let _ = writeln!(o, "{} {}", l("发票号码", "Number"), inv.number);
    let _ = writeln!(o, "{} {}", l("开票日期", "Issued at"), inv.issued_at);
    let _ = writeln!(
        o,
        "{} {}",
        l("状态", "Status"),
        status_label(rec.status, lang)
    );
    if let Some(id) = rec.issued_during_outage {
        let _ = writeln!(
            o,
            "{} {}",
            l("中断期间开具", "Outage"),
            match lang {
                Lang::Zh => format!("开具于税务机关中断 #{id} 期间（kaipiao outages）"),
                Lang::En => format!("issued during outage #{id} (kaipiao outages)"),
            }
        );
    }
    if let Some(orig) = &inv.original {
        let _ = writeln!(o, "{} {}", l("原发票", "Original"), orig.number);
    }
    for (label, p) in [
        (l("销售方", "Seller"), &inv.seller),
        (l("购买方", "Buyer"), &inv.buyer),
    ] {
        let _ = writeln!(o, "{} {}  {}", label, p.name, p.tax_id);
        if !p.address.is_empty() || !p.bank.is_empty() {
            let _ = writeln!(o, "{} {}  {}", lbl("", 14), p.address, p.bank);
        }
    }
    let _ = writeln!(o);
    let heads = match lang {
        Lang::Zh => [
            "项目名称",
            "规格型号",
            "单位",
            "数量",
            "单价",
            "金额",
            "税率",
            "税额",
        ],
        Lang::En => [
            "item",
            "spec",
            "unit",
            "qty",
            "unit price",
            "amount",
            "rate",
            "tax",
        ],
    };
    let mut rows: Vec<[String; 8]> = vec![heads.map(String::from)];
    for line in &inv.lines {
        let rate = match line.treatment {
            kaipiao_core::Treatment::Exempt => lang.pick("免税", "exempt").to_string(),
            kaipiao_core::Treatment::NonTaxable => lang.pick("不征税", "non-taxable").to_string(),
            _ => kaipiao_core::money::rate_percent(&line.tax_rate),
        };
        rows.push([
            line.name.clone(),
            line.spec.clone(),
            line.unit.clone(),
            line.quantity.clone(),
            line.unit_price.clone(),
            line.amount.clone(),
            rate,
            line.tax.clone(),
        ]);
    }
    let mut widths = [0usize; 8];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(UnicodeWidthStr::width(c.as_str()));
        }
    }
    for r in &rows {
        let cols: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| pad(c, widths[i], i >= 3))
            .collect();
        let _ = writeln!(o, "  {}", cols.join("  ").trim_end());
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{} {}", l("合计金额", "Amount"), inv.total_amount);
    let _ = writeln!(o, "{} {}", l("合计税额", "Tax"), inv.total_tax);
    let _ = writeln!(o, "{} {}", l("价税合计", "Total"), inv.total);
    let _ = writeln!(o, "{} {}", l("价税合计(大写)", "In words"), words);
    if !inv.remarks.is_empty() {
        let _ = writeln!(o, "{} {}", l("备注", "Remarks"), inv.remarks);
    }
    if !inv.issuer.is_empty() {
        let _ = writeln!(o, "{} {}", l("开票人", "Issuer"), inv.issuer);
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} {} (seq {})",
        l("哈希", "Hash"),
        rec.envelope.hash,
        inv.seq
    );
    let _ = writeln!(o, "{} {}", l("签名", "Signature"), rec.envelope.signature);
    // The receipt typed, as the app's detail view reads it (kaipiao-desk).
    let receipt = rec
        .receipt
        .as_ref()
        .and_then(kaipiao_desk::detail::read_receipt);
    if let Some(r) = &receipt {
        let _ = writeln!(
            o,
            "{} {}  {}",
            l("校验码", "Auth. code"),
            r.authority_code,
            r.received_at
        );
        for reason in &r.reasons {
            let _ = writeln!(
                o,
                "{} {}: {}",
                l("拒绝原因", "Reason"),
                reason.field,
                reason.message
            );
        }
        if !r.reasons.is_empty() {
            let _ = writeln!(
                o,
                "{}",
                l(
                    "处理办法：更正后重新开具蓝字发票（被拒绝的发票无需冲红）",
                    "Way forward: correct the draft and issue a new invoice (a rejected invoice needs no credit note)"
                )
            );
        }
    }
    let _ = writeln!(o, "{}", lang.pick("状态记录", "History"));
    for e in &rec.history {
        let code = receipt.as_ref().map_or("", |r| r.authority_code.as_str());
        let (status, detail) = history_line(e, rec, code, lang);
        let _ = writeln!(o, "  {}  {}  {detail}", e.at, pad(&status, 9, false));
    }
    o
}

/// One status-history entry in the reader's language. The ledger keeps an English
/// detail; what it says is rebuilt from the record where it can be (the number, the
/// receipt's authority code), else the stored detail is shown as it is.
fn history_line(
    e: &kaipiao_ledger::StatusEvent,
    rec: &InvoiceRecord,
    code: &str,
    lang: Lang,
) -> (String, String) {
    let l = |zh: &str, en: &str| lang.pick(zh, en).to_string();
    match e.status.as_str() {
        "issued" => (
            l("开具", "issued"),
            format!(
                "{} {}",
                l("发票号码", "number"),
                rec.envelope.invoice.number
            ),
        ),
        "accepted" if !code.is_empty() => (
            l("已受理", "accepted"),
            format!("{} {code}", l("校验码", "authority code")),
        ),
        "rejected" => (l("被拒绝", "rejected"), e.detail.clone()),
        "accepted" => (l("已受理", "accepted"), e.detail.clone()),
        _ => (e.status.clone(), e.detail.clone()),
    }
}

/// A label padded to a display width (CJK characters take two columns).
fn lbl(s: &str, width: usize) -> String {
    pad(s, width, false)
}

pub fn status(st: &LedgerStatus, lang: Lang) -> String {
    let mut o = String::new();
    let l = |zh: &'static str, en: &'static str| lang.pick(zh, en);
    let k = |zh: &'static str, en: &'static str| lbl(lang.pick(zh, en), 20);
    let none = l("无", "none");
    let _ = writeln!(
        o,
        "{} {}",
        k("设备", "Device"),
        st.device_id
            .as_deref()
            .unwrap_or(l("未登记", "not enrolled"))
    );
    let _ = writeln!(o, "{} {}", k("待上传发票", "Pending invoices"), st.pending);
    let _ = writeln!(
        o,
        "{} {}",
        k("最早待上传", "Oldest pending"),
        st.oldest_pending_at.as_deref().unwrap_or(none)
    );
    let _ = writeln!(
        o,
        "{} {}",
        k("离线时限剩余(小时)", "Offline hours left"),
        st.offline_hours_left.as_deref().unwrap_or(none)
    );
    let _ = writeln!(
        o,
        "{} {}",
        k("离线金额剩余", "Offline amount left"),
        st.offline_amount_left.as_deref().unwrap_or(none)
    );
    let _ = writeln!(
        o,
        "{} {}",
        k("剩余发票号码", "Numbers left"),
        st.numbers_left
    );
    let _ = writeln!(
        o,
        "{} {} {}",
        k("链头", "Chain head"),
        st.head.seq,
        st.head.hash
    );
    let _ = writeln!(
        o,
        "{} {}",
        k("上次同步", "Last sync"),
        st.last_sync_at.as_deref().unwrap_or(none)
    );
    if let Some(why) = &st.queue_stopped {
        let _ = writeln!(o, "{} {why}", k("上传已暂停", "QUEUE STOPPED"));
    }
    for a in &st.alerts {
        let _ = writeln!(
            o,
            "{} {} {}: {}",
            k("警报", "Alert"),
            a.at,
            a.code,
            a.message
        );
    }
    o
}

pub fn sync_summary(r: &SyncReport, lang: Lang) -> String {
    let head = r
        .server_head
        .as_ref()
        .map(|h| format!("{} {}", h.seq, h.hash))
        .unwrap_or_else(|| lang.pick("无法连接", "unreachable").to_string());
    let line = match lang {
        Lang::Zh => format!(
            "已提交 {}，受理 {}，拒绝 {}，仍待上传 {}；税务机关链头 {head}",
            r.submitted, r.accepted, r.rejected, r.pending
        ),
        Lang::En => format!(
            "submitted {}, accepted {}, rejected {}, still pending {}; authority head {head}",
            r.submitted, r.accepted, r.rejected, r.pending
        ),
    };
    match &r.turn_at {
        Some(turn) => format!(
            "{line}\n{} {turn}",
            lang.pick(
                "税务机关正在分批恢复，本店的轮次约在",
                "the authority is pacing its recovery; this shop's turn is expected at"
            )
        ),
        None => line,
    }
}

/// `kaipiao reconcile`: a summary line, then what needs a look, one invoice a line.
pub fn reconcile(r: &ReconcileReport, lang: Lang) -> String {
    let mut o = String::new();
    let head = r
        .server_head
        .as_ref()
        .map(|h| format!("{} {}", h.seq, h.hash))
        .unwrap_or_else(|| lang.pick("无法读取", "unreadable").to_string());
    let (checked, total, ok) = (r.checked, r.total, r.accounted_for);
    let (mismatched, missing) = (r.mismatched.len(), r.missing_at_authority.len());
    let (healed, received, pending) = (r.healed, r.received, r.pending);
    let locally = r.missing_locally.as_ref().map_or("0".to_string(), |m| {
        format!("seq {}..{}", m.from_seq, m.to_seq)
    });
    let _ = match lang {
        Lang::Zh => writeln!(
            o,
            "已核对 {checked}/{total} 张：相符 {ok}，不符 {mismatched}，税务机关缺失 {missing}（已补传 {healed}），本地缺失 {locally}，取回回执 {received}，仍待上传 {pending}；税务机关链头 {head}"
        ),
        Lang::En => writeln!(
            o,
            "checked {checked} of {total}: accounted for {ok}, mismatched {mismatched}, missing at the authority {missing} (healed {healed}), missing locally {locally}, receipts fetched {received}, still pending {pending}; authority head {head}"
        ),
    };
    if !r.mismatched.is_empty() {
        let _ = writeln!(o, "{}", lang.pick("与税务机关记录不符：", "Mismatched:"));
        for m in &r.mismatched {
            let _ = writeln!(o, "  seq {} {}: {}", m.seq, m.number, m.reason);
        }
    }
    if !r.missing_at_authority.is_empty() {
        let _ = writeln!(
            o,
            "{}",
            lang.pick("税务机关没有回执：", "Missing at the authority:")
        );
        for m in &r.missing_at_authority {
            let note = match (m.status, m.healed) {
                (Status::Pending, _) => lang.pick("尚未上传", "not filed yet"),
                (_, true) => lang.pick("已补传并核对", "resubmitted and checked"),
                (_, false) => lang.pick(
                    "税务机关已丢失，未能补传",
                    "lost by the authority, not resubmitted",
                ),
            };
            let _ = writeln!(
                o,
                "  seq {} {} ({}): {note}",
                m.seq,
                m.number,
                status_label(m.status, lang)
            );
        }
    }
    if let Some(m) = &r.missing_locally {
        let _ = writeln!(
            o,
            "{} seq {}..{}",
            lang.pick(
                "税务机关有而本账本没有的发票：",
                "At the authority but not in this ledger:"
            ),
            m.from_seq,
            m.to_seq
        );
    }
    if !r.refiled.is_empty() {
        let _ = writeln!(
            o,
            "{}",
            lang.pick(
                "税务机关重新受理，校验码已变（交给购买方的发票上是本地校验码）：",
                "Filed again by the authority with a new authority code (the invoice handed out carries the local one):"
            )
        );
        for f in &r.refiled {
            let _ = writeln!(
                o,
                "  seq {} {}: {} {} -> {} {}",
                f.seq,
                f.number,
                lang.pick("本地", "local"),
                f.local_authority_code,
                lang.pick("税务机关", "authority"),
                f.authority_code
            );
        }
    }
    o
}

/// A progress line for `kaipiao reconcile` (every 100th invoice checked, and the last).
pub fn reconcile_progress(p: &ReconcileProgress, lang: Lang) -> Option<String> {
    match p {
        ReconcileProgress::Checked { checked, total } => (checked % 100 == 0 || checked == total)
            .then(|| format!("{} {checked}/{total}", lang.pick("已核对", "checked"))),
        ReconcileProgress::Sync(p) => Some(progress(p, lang)),
    }
}

/// `kaipiao alerts`: one line each, oldest first.
pub fn alerts(all: &[kaipiao_ledger::Alert], lang: Lang) -> String {
    if all.is_empty() {
        return format!("{}\n", lang.pick("没有警报。", "No alerts."));
    }
    let mut out = String::new();
    for a in all {
        out.push_str(&format!("#{} {} {}: {}", a.id, a.at, a.code, a.message));
        if let Some(n) = &a.number {
            out.push_str(&format!(" ({} {n})", lang.pick("发票", "invoice")));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{}\n",
        lang.pick(
            "处理后运行 `kaipiao alerts dismiss ID` 将其标记为已读。",
            "Once dealt with, `kaipiao alerts dismiss ID` marks one as read."
        )
    ));
    out
}

/// `kaipiao queue`.
pub fn queue(state: &kaipiao_ledger::QueueState, advice: &str, lang: Lang) -> String {
    let mut out = String::new();
    if state.stopped {
        let _ = writeln!(
            out,
            "{} {}: {}",
            lang.pick("队列已停止，自", "Queue stopped since"),
            state.since.as_deref().unwrap_or("?"),
            state.reason.as_deref().unwrap_or("")
        );
        if let Some(id) = state.alert_id {
            let _ = writeln!(out, "{} #{id}", lang.pick("警报", "Alert"));
        }
    } else {
        let _ = writeln!(out, "{}", lang.pick("队列正常运行。", "Queue running."));
    }
    let _ = writeln!(
        out,
        "{}: seq {} ({})",
        lang.pick("本地链头", "Local head"),
        state.local_head.seq,
        state.local_head.hash
    );
    match &state.authority_head {
        Some(a) => {
            let _ = writeln!(
                out,
                "{}: seq {} ({}), {} {}",
                lang.pick("税局链头", "Authority head"),
                a.seq,
                a.hash.as_deref().unwrap_or("?"),
                lang.pick("读取于", "as read at"),
                a.read_at
            );
        }
        None => {
            let _ = writeln!(
                out,
                "{}",
                lang.pick("税局链头：尚未读取", "Authority head: not read yet")
            );
        }
    }
    let _ = writeln!(out, "{advice}");
    out
}

/// `kaipiao queue resume`.
pub fn resume(r: &kaipiao_sync::ResumeReport, lang: Lang) -> String {
    if !r.was_stopped && r.reconcile.is_none() {
        return lang
            .pick(
                "队列未停止，无需恢复。",
                "The queue is not stopped; nothing to resume.",
            )
            .to_string();
    }
    let mut out = String::new();
    if let Some(c) = &r.brought_back {
        out.push_str(&caught_up(c, lang));
    }
    out.push_str(&resume_outcome(r, lang));
    out
}

fn resume_outcome(r: &kaipiao_sync::ResumeReport, lang: Lang) -> String {
    match (&r.resumed, &r.reason) {
        (true, None) => lang
            .pick(
                "核对完毕，队列已恢复，待上传发票已发送。",
                "Reconciled; the queue is resumed and what was pending is sent.",
            )
            .to_string(),
        (true, Some(why)) => format!(
            "{}: {why}",
            lang.pick(
                "核对完毕，队列已恢复；仍有待上传的发票",
                "Reconciled; the queue is resumed; work remains"
            )
        ),
        (false, why) => format!(
            "{}: {}",
            lang.pick("队列未恢复", "The queue was not resumed"),
            why.as_deref().unwrap_or("")
        ),
    }
}

/// What `restore` and `queue resume` brought back from the authority, the numbers they
/// gave up and the fresh block, one line each (the ranges one per line).
fn caught_up(c: &kaipiao_sync::CaughtUp, lang: Lang) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} {}, {} {}.",
        lang.pick("从税务机关取回", "Brought back from the authority"),
        c.invoices_brought_back,
        lang.pick("张发票", "invoices"),
        c.receipts_brought_back,
        lang.pick("份回执", "receipts"),
    );
    if c.numbers_possibly_used.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            lang.pick(
                "没有可能已被其他副本使用的号码。",
                "No number may have been used by another copy."
            )
        );
    } else {
        let _ = writeln!(
            out,
            "{} ({}):",
            lang.pick(
                "以下号码可能已被丢失的或较新的副本使用但未上传，这些发票已随之丢失，号码不再使用",
                "These numbers may have been used by a lost or newer copy and never filed: those invoices are lost with it, and the numbers are never used again"
            ),
            c.numbers_possibly_used_count
        );
        for range in &c.numbers_possibly_used {
            let _ = writeln!(out, "  {} - {} ({})", range.first, range.last, range.count);
        }
    }
    let _ = writeln!(
        out,
        "{}: {} - {}.",
        lang.pick("新号码段", "Fresh block"),
        c.fresh_lease.first,
        c.fresh_lease.last
    );
    out
}

/// `kaipiao restore`.
pub fn restore(r: &kaipiao_sync::RestoreReport, lang: Lang) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({} seq {}).",
        lang.pick("已从备份恢复", "Restored from the backup of"),
        r.backup_created_at,
        lang.pick("备份时链头", "its head at"),
        r.backup_head.seq
    );
    out.push_str(&caught_up(&r.caught_up, lang));
    let _ = write!(
        out,
        "{} seq {}, {} {}.",
        lang.pick("链头现为", "The head is now"),
        r.head.seq,
        r.pending,
        lang.pick("张待上传", "pending")
    );
    if let Some(aside) = &r.replaced {
        let _ = write!(
            out,
            "\n{} {}",
            lang.pick(
                "原数据目录已另存为",
                "The data directory it replaced is kept as"
            ),
            aside.display()
        );
    }
    if r.key == kaipiao_ledger::BackupKey::BackupPassphrase {
        let _ = write!(
            out,
            "\n{}",
            lang.pick(
                "设备密钥现由备份口令保护（KAIPIAO_PASSPHRASE 使用该口令）。",
                "The device key is now sealed under the backup passphrase (give it as KAIPIAO_PASSPHRASE)."
            )
        );
    }
    out
}

/// "in N min" / "N 分钟后", rounded up; seconds under a minute.
fn minutes(after: std::time::Duration, lang: Lang) -> String {
    let secs = after.as_secs();
    if secs < 60 {
        lang.pick(&format!("{secs} 秒后"), &format!("in {secs} s"))
            .to_string()
    } else {
        let m = secs.div_ceil(60);
        lang.pick(&format!("{m} 分钟后"), &format!("in {m} min"))
            .to_string()
    }
}

pub fn progress(p: &Progress, lang: Lang) -> String {
    match p {
        Progress::Connecting { endpoint } => {
            format!("{} {endpoint}", lang.pick("连接", "connecting to"))
        }
        Progress::Submitted { number, status } => format!("{number} {status}"),
        Progress::Retrying { after, reason } => format!(
            "{} {:.1}s: {reason}",
            lang.pick("稍后重试", "retrying in"),
            after.as_secs_f64()
        ),
        Progress::Waiting { after, .. } => format!(
            "{} {:.1}s",
            lang.pick(
                "停机后分批发送积压发票，下一批在",
                "after the outage the backlog goes in shares; next share in"
            ),
            after.as_secs_f64()
        ),
        Progress::Turn {
            after,
            turn_at,
            ahead,
            reason,
        } => format!(
            "{} {} ({}, {ahead} {}): {reason}",
            lang.pick("税务机关正在分批恢复，本店轮到的时间约为", "the authority is pacing its recovery; this shop's turn is expected at"),
            turn_at,
            minutes(*after, lang),
            lang.pick("张发票在前", "invoices ahead"),
        ),
        Progress::WaitingForLock { up_to } => format!(
            "{} {}s",
            lang.pick(
                "另一个进程（应用或另一个 kaipiao sync）正在上传本机的发票，最多等待",
                "another process (the app, or another kaipiao sync) is sending this outbox; waiting for it up to"
            ),
            up_to.as_secs()
        ),
        Progress::Endpoint { endpoint, up } => format!(
            "{endpoint} {}",
            if *up {
                lang.pick("可用", "up")
            } else {
                lang.pick("不可用", "down")
            }
        ),
    }
}

/// A length of time for people: "45s", "3m 20s", "2h 05m", "3d 4h" (zh: "45秒",
/// "3分20秒", "2小时05分", "3天4小时").
pub fn duration(seconds: i64, lang: Lang) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match lang {
        Lang::Zh if d > 0 => format!("{d}天{h}小时"),
        Lang::Zh if h > 0 => format!("{h}小时{m:02}分"),
        Lang::Zh if m > 0 => format!("{m}分{sec:02}秒"),
        Lang::Zh => format!("{sec}秒"),
        Lang::En if d > 0 => format!("{d}d {h}h"),
        Lang::En if h > 0 => format!("{h}h {m:02}m"),
        Lang::En if m > 0 => format!("{m}m {sec:02}s"),
        Lang::En => format!("{sec}s"),
    }
}

/// Columns padded to their widest cell (display width), two spaces apart, with a rule
/// under the header.
fn aligned(headers: &[&str], cells: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| UnicodeWidthStr::width(*h)).collect();
    for row in cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(UnicodeWidthStr::width(c.as_str()));
        }
    }
    let line = |cols: &[String]| -> String {
        cols.iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| pad(c, *w, right.get(i).copied().unwrap_or(false)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(out, "{}", line(&head));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "{}", rule.join("  "));
    for row in cells {
        let _ = writeln!(out, "{}", line(row));
    }
    out
}

/// The table of `kaipiao outages`: oldest first, the current one last.
pub fn outages(list: &[Outage], now: DateTime<Utc>, lang: Lang) -> String {
    if list.is_empty() {
        return format!(
            "{}\n",
            lang.pick(
                "没有中断记录（同步时税务机关均有应答）",
                "No outages recorded (the tax authority answered every sync so far)"
            )
        );
    }
    let headers: [&str; 8] = match lang {
        Lang::Zh => [
            "编号",
            "开始时间",
            "结束时间",
            "时长",
            "失败次数",
            "期间开具",
            "发票号码",
            "原因",
        ],
        Lang::En => [
            "#",
            "started at",
            "ended at",
            "duration",
            "failed",
            "issued",
            "numbers",
            "reason",
        ],
    };
    let cells: Vec<Vec<String>> = list
        .iter()
        .map(|o| {
            let numbers = match (&o.first_number, &o.last_number) {
                (Some(first), Some(last)) if first != last => format!("{first}..{last}"),
                (Some(first), _) => first.clone(),
                _ => "-".to_string(),
            };
            vec![
                o.id.to_string(),
                o.started_at.clone(),
                o.ended_at
                    .clone()
                    .unwrap_or_else(|| lang.pick("进行中", "current").to_string()),
                duration(o.duration_seconds(now), lang),
                o.failed_attempts.to_string(),
                o.invoices_issued.to_string(),
                numbers,
                truncate(&o.reason, 60),
            ]
        })
        .collect();
    let right = [true, false, false, true, true, true, false, false];
    let mut out = aligned(&headers, &cells, &right);
    let current = list.iter().filter(|o| o.is_current()).count();
    let _ = match lang {
        Lang::Zh => writeln!(out, "共 {} 次中断，{current} 次进行中", list.len()),
        Lang::En => writeln!(
            out,
            "{} outage{}, {current} current",
            list.len(),
            if list.len() == 1 { "" } else { "s" }
        ),
    };
    out
}

/// The current outage in `kaipiao status`: since when, how long, what was issued.
pub fn current_outage(o: &Outage, now: DateTime<Utc>, lang: Lang) -> String {
    let since = duration(o.duration_seconds(now), lang);
    let text = match lang {
        Lang::Zh => format!(
            "#{} 自 {}（已 {since}），期间开具 {} 张发票，失败 {} 次",
            o.id, o.started_at, o.invoices_issued, o.failed_attempts
        ),
        Lang::En => format!(
            "#{} since {} ({since}), {} invoices issued during it, {} failed attempts",
            o.id, o.started_at, o.invoices_issued, o.failed_attempts
        ),
    };
    format!(
        "{} {text}\n",
        lbl(lang.pick("税务机关中断", "Authority outage"), 20)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage(ended: Option<&str>) -> Outage {
        Outage {
            id: 2,
            started_at: "2026-03-01T09:00:00Z".into(),
            ended_at: ended.map(str::to_string),
            failed_attempts: 12,
            failed_endpoint: "http://127.0.0.1:8787".into(),
            reason: "HTTP 503 outage: the authority is unavailable".into(),
            ended_by: ended.map(|_| "http://127.0.0.1:8787".to_string()),
            invoices_issued: 3,
            first_number: Some("26000000000100000001".into()),
            last_number: Some("26000000000100000003".into()),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        kaipiao_core::time::parse_rfc3339(text).unwrap_or_default()
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(-5, Lang::En), "0s");
        assert_eq!(duration(45, Lang::En), "45s");
        assert_eq!(duration(200, Lang::En), "3m 20s");
        assert_eq!(duration(7500, Lang::En), "2h 05m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 59, Lang::En), "3d 4h");
        assert_eq!(duration(200, Lang::Zh), "3分20秒");
        assert_eq!(duration(7500, Lang::Zh), "2小时05分");
    }

    #[test]
    fn the_outage_table_is_aligned_in_both_languages() {
        let list = [outage(Some("2026-03-01T11:05:00Z")), outage(None)];
        let now = at("2026-03-01T12:00:00Z");
        for lang in [Lang::En, Lang::Zh] {
            let text = outages(&list, now, lang);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 5, "{text}");
            // Every column starts at the same display column in every row.
            let start = |line: &str, cell: &str| {
                let byte = line
                    .find(cell)
                    .unwrap_or_else(|| panic!("{cell} in {line}"));
                UnicodeWidthStr::width(&line[..byte])
            };
            let started = start(lines[0], lang.pick("开始时间", "started at"));
            assert_eq!(start(lines[2], "2026-03-01T09:00:00Z"), started, "{text}");
            assert_eq!(start(lines[3], "2026-03-01T09:00:00Z"), started, "{text}");
            assert!(lines[2].contains("2h 05m") || lines[2].contains("2小时05分"));
            assert!(lines[3].contains(lang.pick("进行中", "current")), "{text}");
            assert!(lines[3].contains("26000000000100000001..26000000000100000003"));
        }
        assert!(outages(&list, now, Lang::En).ends_with("2 outages, 1 current\n"));
        assert!(outages(&[], now, Lang::En).contains("No outages recorded"));
    }

    #[test]
    fn the_current_outage_in_status() {
        let now = at("2026-03-01T10:30:00Z");
        let en = current_outage(&outage(None), now, Lang::En);
        assert!(en.starts_with("Authority outage"), "{en}");
        assert!(
            en.contains("#2 since 2026-03-01T09:00:00Z (1h 30m), 3 invoices issued during it, 12 failed attempts"),
            "{en}"
        );
        let zh = current_outage(&outage(None), now, Lang::Zh);
        assert!(
            zh.contains("（已 1小时30分），期间开具 3 张发票，失败 12 次"),
            "{zh}"
        );
    }
}

/// `summary`'s table, in the clerk's language.
pub fn month_summary(s: &kaipiao_core::summary::MonthSummary, lang: Lang) -> String {
    use kaipiao_core::summary::Sign;
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}",
        s.month,
        lang.pick(
            "（中国时间，已受理的发票）",
            "(China time, accepted invoices)"
        )
    );
    let row = |cells: [&str; 6]| {
        format!(
            "{} {} {} {} {} {}",
            pad(cells[0], 10, false),
            pad(cells[1], 6, true),
            pad(cells[2], 6, false),
            pad(cells[3], 6, true),
            pad(cells[4], 16, true),
            pad(cells[5], 14, true)
        )
    };
    let _ = writeln!(
        out,
        "{}",
        row([
            lang.pick("种类", "kind"),
            lang.pick("税率", "rate"),
            lang.pick("蓝/红", "sign"),
            lang.pick("张数", "count"),
            lang.pick("金额", "amount"),
            lang.pick("税额", "tax"),
        ])
    );
    for r in &s.rows {
        let kind = match (r.kind, lang) {
            (kaipiao_core::Kind::Special, Lang::Zh) => "专用发票",
            (kaipiao_core::Kind::Special, Lang::En) => "special",
            (_, Lang::Zh) => "普通发票",
            (_, Lang::En) => "ordinary",
        };
        let sign = match (r.sign, lang) {
            (Sign::Blue, Lang::Zh) => "蓝字",
            (Sign::Red, Lang::Zh) => "红字",
            (Sign::Blue, Lang::En) => "blue",
            (Sign::Red, Lang::En) => "red",
        };
        let _ = writeln!(
            out,
            "{}",
            row([
                kind,
                &kaipiao_core::money::rate_percent(&r.tax_rate),
                sign,
                &r.count.to_string(),
                &r.amount,
                &r.tax,
            ])
        );
    }
    // "label: N invoices, amount A, tax T"
    let tally = |label: &str, count: u64, amount: &str, tax: &str| {
        format!(
            "{label}: {count} {}, {} {amount}, {} {tax}",
            lang.pick("张", if count == 1 { "invoice" } else { "invoices" }),
            lang.pick("金额", "amount"),
            lang.pick("税额", "tax"),
        )
    };
    let t = &s.totals;
    let _ = writeln!(
        out,
        "{}, {} {}",
        tally(lang.pick("合计", "totals"), t.count, &t.amount, &t.tax),
        lang.pick("价税合计", "total"),
        t.total
    );
    let p = &s.pending;
    let _ = writeln!(
        out,
        "{}",
        tally(
            lang.pick("待税务机关受理（未计入）", "pending, not counted"),
            p.count,
            &p.amount,
            &p.tax
        )
    );
    out
}
