//! `init` and `enroll`: a new device, sealed key, then enrolment with the authority and
//! its first lease.

use crate::ctx::Ctx;
use crate::failure::{CmdResult, CommandError};
use chrono::Utc;
use kaipiao_core::Party;
use kaipiao_sync::SyncOptions;
use serde_json::json;

pub fn init(ctx: &Ctx, seller: &Party, device_name: &str) -> CmdResult {
    let ledger = ctx.open()?;
    let keys = ctx.key_source(true)?;
    let device = ledger
        .init(seller, device_name, &keys, Utc::now())
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        println!(
            "{} {} ({}) — {} {}",
            ctx.lang.pick("已设置设备", "Device set up for"),
            device.seller.name,
            device.seller.tax_id,
            ctx.lang.pick("数据目录", "data in"),
            ctx.data.display()
        );
        println!(
            "{}",
            ctx.lang.pick(
                "下一步：kaipiao enroll --server URL --token 令牌",
                "Next: kaipiao enroll --server URL --token TOKEN"
            )
        );
    }
    Ok(json!({"data": ctx.data, "device": device}))
}

pub fn enroll(
    ctx: &Ctx,
    servers: &[String],
    token: &str,
    trust: &kaipiao_sync::Trust<'_>,
) -> CmdResult {
    let ledger = ctx.open()?;
    let keys = ctx.key_source(false)?;
    let key = ledger
        .unseal_key(&keys)
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    let outcome = kaipiao_desk::enrol(
        &ledger,
        &key,
        servers,
        token,
        trust,
        &SyncOptions::default(),
    )
    .map_err(|e| CommandError::sync(&e, ctx.lang))?;
    if !ctx.json {
        println!(
            "{} {} — {} {}{:08}..{}{:08}",
            ctx.lang.pick("已登记，设备号", "Enrolled as device"),
            outcome.device_id,
            ctx.lang.pick("号码段", "numbers"),
            outcome.lease.prefix,
            outcome.lease.first,
            outcome.lease.prefix,
            outcome.lease.last
        );
    }
    Ok(json!({
        "device_id": outcome.device_id,
        "authority_public_key": outcome.authority_public_key,
        "lease": outcome.lease,
    }))
}

/// `kaipiao backup --out FILE`: never needs the device passphrase; a key in the OS keyring
/// is sealed for the backup under KAIPIAO_BACKUP_PASSPHRASE or a passphrase typed twice.
pub fn backup(ctx: &Ctx, out: &std::path::Path) -> CmdResult {
    let ledger = ctx.open()?;
    let protection = ledger
        .device()
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?
        .map(|d| d.key_protection);
    let pass = match protection {
        Some(kaipiao_ledger::Protection::OsKeyring) => ctx.backup_passphrase()?,
        _ => None,
    };
    let report = ledger
        .backup(out, pass.as_deref().map(|p| p.as_str()), chrono::Utc::now())
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if !ctx.json {
        println!(
            "{} {} ({} {}, {} bytes)",
            ctx.lang.pick("已备份到", "Backed up to"),
            report.out.display(),
            report.invoices,
            ctx.lang.pick("张发票", "invoices"),
            report.bytes
        );
    }
    serde_json::to_value(&report).map_err(CommandError::internal)
}

pub fn restore(ctx: &Ctx, file: &std::path::Path, replace_pending: bool) -> CmdResult {
    let info = kaipiao_ledger::read_backup(file).map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    let keys = ctx.restore_key_source(info.key)?;
    let request = kaipiao_sync::RestoreRequest {
        file,
        data_dir: &ctx.data,
        replace_pending,
    };
    let report = kaipiao_desk::runtime()
        .map_err(CommandError::internal)?
        .block_on(kaipiao_sync::restore(
            &request,
            &keys,
            &SyncOptions::default(),
        ))
        .map_err(|e| CommandError::sync(&e, ctx.lang))?;
    if !ctx.json {
        println!("{}", crate::render::restore(&report, ctx.lang));
    }
    serde_json::to_value(&report).map_err(CommandError::internal)
}

/// `kaipiao till [set --issuer N --kind K]`: this till's defaults, shown or changed.
pub fn till(ctx: &Ctx, issuer: Option<String>, kind: Option<String>) -> CmdResult {
    let ledger = ctx.open()?;
    let mut till = ledger
        .till_defaults()
        .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    if issuer.is_some() || kind.is_some() {
        if let Some(issuer) = issuer {
            till.issuer = issuer;
        }
        if let Some(kind) = kind {
            till.kind = kind;
        }
        till = ledger
            .set_till_defaults(&till, chrono::Utc::now())
            .map_err(|e| CommandError::ledger(&e, ctx.lang))?;
    }
    if !ctx.json {
        println!(
            "{}: {} · {}: {}",
            ctx.lang.pick("开票人", "issuer"),
            if till.issuer.is_empty() {
                "—"
            } else {
                &till.issuer
            },
            ctx.lang.pick("默认种类", "default kind"),
            till.kind
        );
    }
    Ok(serde_json::json!({"issuer": till.issuer, "kind": till.kind}))
}
