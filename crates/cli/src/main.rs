//! `kaipiao`: the Kaipiao engine from a terminal (SPEC 9).
//!
//! Every command opens the ledger of one data directory, does one thing and exits with
//! the codes of SPEC 9: 0 ok, 2 invalid input or a refused limit, 3 work remains for a
//! transient reason, 4 integrity failure or a stopped queue, 1 anything else. With
//! `--json` stdout holds exactly one JSON document (one line per argument for
//! `check-tax-id` and `words`); warnings and progress always go to stderr.
//!
//! This file resolves the context and dispatches; `args` is the command line, `commands`
//! one module per group of subcommands, `render` the human-readable output, `failure`
//! the exit codes. Where a step is the app's too (the data directory, the language, the
//! passphrase, the status composition, enrolment) it comes from kaipiao-desk.

mod commands;
mod ctx;
mod failure;
mod render;

use clap::Parser;
use commands::{batch, catalog, issue, mail, read, setup, sync, tools};
use ctx::Ctx;
use failure::CmdResult;
use kaipiao_cli::args::{self, Cli, Command};
use kaipiao_core::Party;
use std::process::ExitCode;

fn main() -> ExitCode {
    let lang = kaipiao_desk::config::system_lang();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let Some(data) = cli
        .data
        .clone()
        .or_else(kaipiao_desk::config::default_data_dir)
    else {
        eprintln!("{}", kaipiao_core::Msg::new("cli-no-data-dir").text(lang));
        return ExitCode::from(2);
    };
    let ctx = Ctx {
        lang,
        json: cli.json,
        data,
    };
    // check-tax-id and words print one line per argument themselves.
    let result = match cli.command {
        Command::CheckTaxId { ids } => return tools::check_tax_ids(&ctx, &ids),
        Command::Words { amounts } => return tools::words(&ctx, &amounts),
        other => run(&ctx, other),
    };
    match result {
        Ok(doc) => {
            if ctx.json {
                println!("{doc}");
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("{}: {}", lang.pick("错误", "error"), f.message);
            if ctx.json {
                println!("{}", f.json.clone().unwrap_or_else(|| f.error_json()));
            }
            ExitCode::from(f.exit)
        }
    }
}

fn run(ctx: &Ctx, command: Command) -> CmdResult {
    match command {
        Command::Init {
            seller_name,
            seller_tax_id,
            seller_address,
            seller_bank,
            device_name,
        } => {
            let seller = Party {
                name: seller_name,
                tax_id: seller_tax_id,
                address: seller_address,
                bank: seller_bank,
            };
            setup::init(ctx, &seller, &device_name)
        }
        Command::Enroll {
            server,
            backup_servers,
            token,
            authority_key,
            allow_insecure_http,
        } => {
            let mut servers = vec![server];
            servers.extend(backup_servers);
            let trust = kaipiao_sync::Trust {
                fingerprint: authority_key.as_deref(),
                allow_insecure_http,
            };
            setup::enroll(ctx, &servers, &token, &trust)
        }
        Command::Issue { file } => issue::issue(ctx, &file),
        Command::Import {
            xlsx: Some(xlsx),
            dry_run,
            ..
        } => batch::import_xlsx(ctx, &xlsx, dry_run),
        Command::Import { file, .. } => issue::import(ctx, file.as_deref().unwrap_or("-")),
        Command::Template { out } => batch::template(ctx, &out),
        Command::List { status } => read::list(ctx, status),
        Command::Show { number_or_id } => read::show(ctx, &number_or_id),
        Command::Pdf { number, out } => read::pdf(ctx, &number, &out),
        Command::Smtp { action } => match action {
            None => mail::show(ctx),
            Some(args::SmtpAction::Set(set)) => mail::set(ctx, set),
        },
        Command::Summary { month } => read::summary(ctx, &month),
        Command::Items { action } => catalog::items(ctx, action),
        Command::Buyers { action } => catalog::buyers(ctx, action),
        Command::Till { action } => match action {
            None => setup::till(ctx, None, None),
            Some(args::TillAction::Set { issuer, kind }) => setup::till(ctx, issuer, kind),
        },
        Command::Deliver {
            number,
            email,
            again,
        } => mail::deliver(ctx, &number, &email, again),
        Command::VerifyPdf {
            file,
            authority_key,
        } => read::verify_pdf(ctx, &file, &authority_key),
        Command::CheckInvoice {
            server,
            number,
            date,
            total,
            code,
        } => tools::check_invoice(ctx, server.as_deref(), [&number, &date, &total, &code]),
        Command::Sync {
            background,
            start_spread,
            lock_wait,
        } => sync::sync(ctx, background, start_spread, lock_wait),
        Command::Reconcile => sync::reconcile(ctx),
        Command::Status => read::status(ctx),
        Command::Outages => read::outages(ctx),
        Command::Alerts { action } => match action {
            None => read::alerts(ctx),
            Some(args::AlertsAction::Dismiss { id }) => read::dismiss_alert(ctx, id),
        },
        Command::Queue { action } => match action {
            None => read::queue(ctx),
            Some(args::QueueAction::Resume) => sync::resume(ctx),
        },
        Command::Backup { out } => setup::backup(ctx, &out),
        Command::Restore {
            file,
            replace_pending,
        } => setup::restore(ctx, &file, replace_pending),
        Command::Verify => read::verify(ctx),
        Command::Export { out: Some(out), .. } => read::export(ctx, &out),
        Command::Export {
            xlsx,
            csv,
            from,
            to,
            status,
            ..
        } => batch::export_sheets(ctx, xlsx.as_deref(), csv.as_deref(), from, to, status),
        Command::CheckTaxId { .. } | Command::Words { .. } => Ok(serde_json::Value::Null),
    }
}
