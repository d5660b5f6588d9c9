//! `smtp [set]` and `deliver`: delivery by email (issue 11, item 7), over kaipiao-desk's
//! mail module (the same code as the app's Email… and its mail thread).

use crate::ctx::Ctx;
use crate::failure::{CmdResult, CommandError, EXIT_INTEGRITY, EXIT_INVALID, EXIT_TRANSIENT};
use chrono::Utc;
use kaipiao_desk::mail::{self, MailError};
use kaipiao_ledger::{Delivery, DeliveryStatus, MailSecurity, MailSettings};
use serde_json::json;
use std::io::IsTerminal;

fn refused(e: MailError, ctx: &Ctx) -> CommandError {
    CommandError::new(EXIT_INVALID, e.code, &e.field, e.text(ctx.lang))
}

/// The settings as shown and as `--json` prints them (never the password).
fn settings_doc(s: &Option<MailSettings>) -> serde_json::Value {
    match s {
        None => json!({"smtp": null}),
        Some(s) => json!({"smtp": {
            "host": s.host, "port": s.port, "user": s.user, "from": s.from,
            "security": s.security, "updated_at": s.updated_at,
        }}),
    }
}

/// `kaipiao smtp`: the stored settings, without the password.
pub fn show(ctx: &Ctx) -> CmdResult {
    let settings = ctx
        .open()?
        .mail_settings()
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        match &settings {
            None => println!("{}", kaipiao_core::Msg::new("mail_not_set").text(ctx.lang)),
            Some(s) => println!(
                "{} {}:{} ({}) {} {} · {} {}",
                ctx.lang.pick("邮件服务器", "mail server"),
                s.host,
                s.port,
                s.security.as_str(),
                ctx.lang.pick("用户", "user"),
                if s.user.is_empty() { "—" } else { &s.user },
                ctx.lang.pick("发件人", "from"),
                s.from
            ),
        }
    }
    Ok(settings_doc(&settings))
}

/// `kaipiao smtp set`: the password from KAIPIAO_SMTP_PASSWORD or a prompt, sealed
/// under the device key (so the device key must open: KAIPIAO_PASSPHRASE).
pub fn set(ctx: &Ctx, a: kaipiao_cli::args::SmtpSet) -> CmdResult {
    let (ledger, key) = ctx.open_unsealed()?;
    let password = match std::env::var("KAIPIAO_SMTP_PASSWORD") {
        Ok(p) => Some(zeroize::Zeroizing::new(p)),
        Err(_) if !a.user.is_empty() && std::io::stdin().is_terminal() => {
            Some(ctx.prompt_passphrase(ctx.lang.pick("邮箱密码：", "Mail password: "), false)?)
        }
        Err(_) => None,
    };
    let security = if a.tls {
        MailSecurity::Tls
    } else if a.starttls {
        MailSecurity::Starttls
    } else {
        MailSecurity::Plain
    };
    let settings = MailSettings {
        host: a.host,
        port: a.port,
        user: a.user,
        from: a.from,
        security,
        updated_at: String::new(),
    };
    mail::set_settings(
        &ledger,
        &key,
        &settings,
        password.as_deref().map(String::as_str),
        Utc::now(),
        ctx.lang,
    )
    .map_err(|e| refused(e, ctx))?;
    let stored = ledger
        .mail_settings()
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        println!(
            "{}",
            ctx.lang.pick(
                "邮件设置已保存（密码已用设备密钥加密）",
                "mail settings saved (the password sealed under the device key)"
            )
        );
    }
    Ok(settings_doc(&stored))
}

fn delivery_doc(d: &Delivery) -> serde_json::Value {
    json!({"delivery": d})
}

/// One line for a delivery, in the clerk's language.
pub fn describe(d: &Delivery, lang: kaipiao_core::Lang) -> String {
    match d.status {
        DeliveryStatus::Sent => format!(
            "{} {} → {} ({})",
            lang.pick("已发送", "sent"),
            d.number,
            d.address,
            d.sent_at.as_deref().unwrap_or_default()
        ),
        DeliveryStatus::Queued => format!(
            "{} {} → {}; {} {}{}",
            lang.pick("已排队", "queued"),
            d.number,
            d.address,
            lang.pick("下次尝试", "next attempt"),
            d.next_attempt_at,
            d.last_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ),
        DeliveryStatus::Failed => format!(
            "{} {} → {}: {}",
            lang.pick("发送失败", "failed"),
            d.number,
            d.address,
            d.last_error.as_deref().unwrap_or_default()
        ),
    }
}

/// `kaipiao deliver NUMBER --email ADDR [--again]`: queued, then tried at once. Exit 0
/// sent, 3 still queued (the mail server unreachable or refusing for now: `sync` or the
/// app sends it later), 4 given up, 2 a bad address or number or no mail settings.
pub fn deliver(ctx: &Ctx, number: &str, email: &str, again: bool) -> CmdResult {
    let (ledger, key) = ctx.open_unsealed()?;
    let d = mail::deliver(&ledger, &key, number, email, again, ctx.lang)
        .map_err(|e| refused(e, ctx))?;
    if !ctx.json {
        println!("{}", describe(&d, ctx.lang));
    }
    let doc = delivery_doc(&d);
    match d.status {
        DeliveryStatus::Sent => Ok(doc),
        DeliveryStatus::Queued => Err(CommandError::new(
            EXIT_TRANSIENT,
            kaipiao_core::Code::Unreachable,
            "email",
            describe(&d, ctx.lang),
        )
        .with_doc(doc)),
        DeliveryStatus::Failed => Err(CommandError::new(
            EXIT_INTEGRITY,
            kaipiao_core::Code::DeliveryFailed,
            "email",
            kaipiao_core::Msg::new("delivery_failed")
                .arg("address", d.address.as_str())
                .arg("why", d.last_error.clone().unwrap_or_default())
                .text(ctx.lang),
        )
        .with_doc(doc)),
    }
}
