//! Human-readable output: the `list` table, a readable invoice for `show`, status and
//! sync summaries, progress lines. JSON output never comes through here.

use kaipiao_core::{Kind, Lang};
use kaipiao_ledger::{InvoiceRecord, InvoiceSummary, LedgerStatus, Status};
use kaipiao_sync::{Progress, SyncReport};
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
            _ => rate_percent(&line.tax_rate),
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
    if let Some(r) = &rec.receipt {
        let code = r
            .get("authority_code")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let at = r.get("received_at").and_then(|v| v.as_str()).unwrap_or("");
        let _ = writeln!(o, "{} {code}  {at}", l("校验码", "Auth. code"));
        if let Some(reasons) = r.get("reasons").and_then(|v| v.as_array()) {
            for reason in reasons {
                let _ = writeln!(
                    o,
                    "{} {}: {}",
                    l("拒绝原因", "Reason"),
                    reason.get("field").and_then(|v| v.as_str()).unwrap_or(""),
                    reason.get("message").and_then(|v| v.as_str()).unwrap_or("")
                );
            }
            if !reasons.is_empty() {
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
    }
    for e in &rec.history {
        let _ = writeln!(o, "  {}  {:<9} {}", e.at, e.status, e.detail);
    }
    o
}

/// A label padded to a display width (CJK characters take two columns).
fn lbl(s: &str, width: usize) -> String {
    pad(s, width, false)
}

fn rate_percent(rate: &str) -> String {
    match kaipiao_core::money::parse_decimal(rate, 8) {
        Ok(d) => format!(
            "{}%",
            kaipiao_core::money::decimal_string(d * rust_decimal::Decimal::from(100))
        ),
        Err(_) => rate.to_string(),
    }
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
    match lang {
        Lang::Zh => format!(
            "已提交 {}，受理 {}，拒绝 {}，仍待上传 {}；税务机关链头 {head}",
            r.submitted, r.accepted, r.rejected, r.pending
        ),
        Lang::En => format!(
            "submitted {}, accepted {}, rejected {}, still pending {}; authority head {head}",
            r.submitted, r.accepted, r.rejected, r.pending
        ),
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
