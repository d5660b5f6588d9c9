//! `check-tax-id` and `words`: one line per argument, no ledger needed.

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
