//! `check-tax-id` and `words`: one line per argument, no ledger needed; and
//! `check-invoice`, the buyer's check (查验) against the authority.

use crate::ctx::Ctx;
use kaipiao_core::{Code, Lang, Msg};
use serde_json::json;
use std::process::ExitCode;

pub fn check_tax_ids(ctx: &Ctx, ids: &[String]) -> ExitCode {
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

pub fn words(ctx: &Ctx, amounts: &[String]) -> ExitCode {
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
                let msg = Msg::new("invalid_amount").text(ctx.lang);
                eprintln!("{a}: {msg}");
                if ctx.json {
                    println!(
                        "{}",
                        json!({"amount": a, "error": {"code": Code::InvalidAmount, "message": msg, "field": "amount"}})
                    );
                }
            }
        }
    }
    ExitCode::from(if any_bad { 2 } else { 0 })
}

/// `check-invoice [--server URL] NUMBER DATE TOTAL CODE6`.
pub fn check_invoice(
    ctx: &Ctx,
    server: Option<&str>,
    [number, date, total, code]: [&String; 4],
) -> crate::failure::CmdResult {
    use crate::failure::{CommandError, EXIT_INTEGRITY, EXIT_INVALID};
    let bad = |field: &str, what: &str| {
        CommandError::new(
            EXIT_INVALID,
            Code::InvalidRequest,
            field,
            format!("{field}: {what}"),
        )
    };
    let (number, date, total, code) = (number.trim(), date.trim(), total.trim(), code.trim());
    if number.len() != 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "number",
            ctx.lang
                .pick("发票号码应为 20 位数字", "the invoice number, 20 digits"),
        ));
    }
    if chrono::NaiveDate::parse_from_str(date, "%Y%m%d").is_err() || date.len() != 8 {
        return Err(bad(
            "date",
            ctx.lang
                .pick("开票日期，格式 YYYYMMDD", "the issue date as YYYYMMDD"),
        ));
    }
    let Ok(amount) = kaipiao_core::money::parse_decimal(total, 2) else {
        return Err(bad(
            "total",
            ctx.lang
                .pick("价税合计，如 1356.00", "the 价税合计, e.g. 1356.00"),
        ));
    };
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "code",
            ctx.lang.pick(
                "税务机关确认码的后 6 位",
                "the last 6 digits of the authority code",
            ),
        ));
    }
    let server = match server {
        Some(s) => s.trim().to_string(),
        None => ctx
            .open()?
            .device()
            .map_err(|e| CommandError::ledger(&e, ctx.lang))?
            .and_then(|d| d.servers.first().cloned())
            .ok_or_else(|| {
                bad(
                    "server",
                    ctx.lang.pick(
                        "请用 --server 指定税务机关地址",
                        "give the authority's address with --server",
                    ),
                )
            })?,
    };
    let opts = kaipiao_sync::SyncOptions::default();
    let client = kaipiao_sync::Client::new(std::slice::from_ref(&server), &opts)
        .map_err(|e| CommandError::sync(&e, ctx.lang))?;
    let endpoint = client.endpoints().first().cloned().unwrap_or(server);
    // The answer is not signed: only over https (or on this machine) can it be believed.
    if kaipiao_core::server::check_transport(&endpoint, &[]).is_err() {
        return Err(bad(
            "server",
            ctx.lang.pick(
                "查验须经 https:// 连接（本机地址除外），否则答复可被冒充",
                "checks go over https:// (except on this machine): a plain http answer could be forged",
            ),
        ));
    }
    let total = kaipiao_core::money::decimal_string(amount);
    let answer = kaipiao_desk::runtime()
        .map_err(CommandError::internal)?
        .block_on(client.check_invoice(&endpoint, number, date, &total, code))
        .map_err(|e| CommandError::sync(&e, ctx.lang))?;
    let doc = json!({"match": answer.matched, "status": answer.status, "server": endpoint});
    if !ctx.json {
        match (&answer.matched, &answer.status) {
            (true, status) => println!(
                "{} ({})",
                ctx.lang.pick(
                    "查验相符：税务机关持有此发票",
                    "Match: the authority holds this invoice"
                ),
                status.as_deref().unwrap_or("")
            ),
            (false, _) => println!(
                "{}",
                ctx.lang.pick(
                    "查验不符：税务机关没有与这些信息相符的发票",
                    "No match: the authority holds no invoice with these details"
                )
            ),
        }
    }
    if answer.matched {
        Ok(doc)
    } else {
        Err(CommandError {
            json: Some(doc),
            ..CommandError::new(
                EXIT_INTEGRITY,
                Code::NotFound,
                "",
                ctx.lang.pick("查验不符", "no match"),
            )
        })
    }
}
