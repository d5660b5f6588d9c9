//! `items` and `buyers`: the catalogs (kaipiao-desk's catalog.rs does the work).

use crate::ctx::Ctx;
use crate::failure::{CmdResult, CommandError, EXIT_INVALID};
use kaipiao_cli::args::{BuyersAction, ItemsAction};
use kaipiao_core::{Code, Msg};
use kaipiao_desk::catalog::{self, CatalogIndex, Which, MATCHES};
use kaipiao_ledger::{CatalogBuyer, CatalogItem, Ledger};
use kaipiao_sheets::Problem;
use serde_json::{json, Value};
use std::path::Path;
use unicode_width::UnicodeWidthStr;

/// CSV or XLSX, by the file's extension.
fn is_csv(ctx: &Ctx, path: &Path, field: &str) -> Result<bool, CommandError> {
    match path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .as_deref()
    {
        Some("csv") => Ok(true),
        Some("xlsx") => Ok(false),
        _ => Err(CommandError::new(
            EXIT_INVALID,
            Code::InvalidPath,
            field,
            Msg::new("invalid_path-catalog")
                .arg("path", path.display().to_string())
                .text(ctx.lang),
        )),
    }
}

fn ledger_err(ctx: &Ctx) -> impl Fn(kaipiao_ledger::LedgerError) -> CommandError + '_ {
    move |e| CommandError::ledger(&e, ctx.lang)
}

fn cut(text: &str, width: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if UnicodeWidthStr::width(out.as_str())
            + unicode_width::UnicodeWidthChar::width(c).unwrap_or(0)
            > width
        {
            out.push('…');
            break;
        }
        out.push(c);
    }
    let w = UnicodeWidthStr::width(out.as_str());
    format!("{out}{}", " ".repeat(width.saturating_sub(w)))
}

fn print_items(items: &[&CatalogItem], ctx: &Ctx) {
    println!(
        "{}  {}  {}  {}  {}  {}",
        cut("id", 5),
        cut(ctx.lang.pick("项目名称", "name"), 32),
        cut(ctx.lang.pick("税收分类编码", "tax code"), 19),
        cut(ctx.lang.pick("单位", "unit"), 6),
        cut(ctx.lang.pick("单价", "price"), 12),
        ctx.lang.pick("税率", "rate"),
    );
    for i in items {
        let price = if i.price.is_empty() {
            "-".to_string()
        } else if i.price_includes_tax {
            format!("{} {}", i.price, ctx.lang.pick("含税", "incl."))
        } else {
            i.price.clone()
        };
        println!(
            "{}  {}  {}  {}  {}  {}",
            cut(&i.id.to_string(), 5),
            cut(&i.name, 32),
            cut(&i.tax_code, 19),
            cut(&i.unit, 6),
            cut(&price, 12),
            kaipiao_core::money::rate_percent(&i.tax_rate),
        );
    }
}

fn print_buyers(buyers: &[&CatalogBuyer], ctx: &Ctx) {
    println!(
        "{}  {}  {}  {}",
        cut("id", 5),
        cut(ctx.lang.pick("购买方名称", "name"), 32),
        cut(ctx.lang.pick("纳税人识别号", "tax ID"), 20),
        ctx.lang.pick("默认种类", "kind"),
    );
    for b in buyers {
        println!(
            "{}  {}  {}  {}",
            cut(&b.id.to_string(), 5),
            cut(&b.name, 32),
            cut(&b.tax_id, 20),
            b.kind
        );
    }
}

fn import(ctx: &Ctx, ledger: &Ledger, which: Which, file: &Path) -> CmdResult {
    let csv = is_csv(ctx, file, "file")?;
    let bytes = std::fs::read(file).map_err(|e| {
        CommandError::new(
            EXIT_INVALID,
            Code::UnreadableFile,
            "file",
            Msg::new("unreadable_file")
                .arg("path", file.display().to_string())
                .arg("why", e.to_string())
                .text(ctx.lang),
        )
    })?;
    let report = match catalog::import(ledger, which, &bytes, csv, ctx.lang) {
        Ok(r) => r,
        Err(problems) => {
            let first = problems.first().cloned();
            let mut e = CommandError::new(
                EXIT_INVALID,
                first
                    .as_ref()
                    .map(|p| p.code)
                    .unwrap_or(Code::InvalidWorkbook),
                "file",
                first.map(|p| p.to_string()).unwrap_or_default(),
            );
            let mut doc = e.error_json();
            doc["problems"] = json!(problems);
            e.json = Some(doc);
            return Err(e);
        }
    };
    let doc = serde_json::to_value(&report).map_err(CommandError::internal)?;
    if !ctx.json {
        for p in &report.problems {
            println!("    {p}");
        }
        println!(
            "{}",
            Msg::new("cli-catalog-imported")
                .arg("added", report.added)
                .arg("updated", report.updated)
                .arg("refused", report.problems.len() as u64)
                .text(ctx.lang)
        );
    }
    if let Some(first) = report.problems.first() {
        let mut e = refused(ctx, first, report.problems.len());
        e.json = Some(doc);
        return Err(e);
    }
    Ok(doc)
}

fn refused(ctx: &Ctx, first: &Problem, n: usize) -> CommandError {
    CommandError::new(
        EXIT_INVALID,
        first.code,
        "file",
        Msg::new("cli-catalog-refused")
            .arg("count", n as u64)
            .text(ctx.lang),
    )
}

fn export(ctx: &Ctx, ledger: &Ledger, which: Which, out: &Path) -> CmdResult {
    let csv = is_csv(ctx, out, "out")?;
    let table = catalog::table(ledger, which).map_err(ledger_err(ctx))?;
    let count = table.rows.len();
    let bytes = if csv {
        kaipiao_sheets::write::csv(&table).into_bytes()
    } else {
        kaipiao_sheets::write::xlsx(&[table]).map_err(CommandError::internal)?
    };
    ctx.write_out(out, &bytes)?;
    Ok(json!({"out": out, "count": count}))
}

fn remove(ctx: &Ctx, result: kaipiao_ledger::Result<()>, id: i64) -> CmdResult {
    result.map_err(ledger_err(ctx))?;
    if !ctx.json {
        println!("{} {id}", ctx.lang.pick("已删除", "Removed"));
    }
    Ok(json!({"removed": id}))
}

/// The entries `search` matches as the entry form would (all of them without one).
fn matching<'a, T>(
    ctx: &Ctx,
    ledger: &Ledger,
    all: &'a [T],
    search: Option<&str>,
    found: fn(&CatalogIndex, &str) -> Vec<i64>,
    id: fn(&T) -> i64,
) -> Result<Vec<&'a T>, CommandError> {
    let Some(q) = search else {
        return Ok(all.iter().collect());
    };
    let mut index = CatalogIndex::default();
    index.refresh(ledger).map_err(ledger_err(ctx))?;
    Ok(found(&index, q)
        .iter()
        .filter_map(|wanted| all.iter().find(|e| id(e) == *wanted))
        .collect())
}

/// The one entry `add` saved: said, and as JSON with `"saved": "added"|"updated"`.
fn saved_doc<T: serde::Serialize>(
    ctx: &Ctx,
    saved: Vec<(T, kaipiao_ledger::Saved)>,
    label: fn(&T) -> (i64, &str),
) -> CmdResult {
    let (entry, how) = saved
        .into_iter()
        .next()
        .ok_or_else(|| CommandError::internal("nothing saved"))?;
    if !ctx.json {
        let word = match how {
            kaipiao_ledger::Saved::Added => ctx.lang.pick("已添加", "Added"),
            kaipiao_ledger::Saved::Updated => ctx.lang.pick("已更新", "Updated"),
        };
        let (id, name) = label(&entry);
        println!("{word} {id} {name}");
    }
    let mut doc = serde_json::to_value(&entry).map_err(CommandError::internal)?;
    doc["saved"] = json!(how);
    Ok(doc)
}

pub fn items(ctx: &Ctx, action: Option<ItemsAction>) -> CmdResult {
    let ledger = ctx.open()?;
    match action.unwrap_or(ItemsAction::List { search: None }) {
        ItemsAction::Add {
            name,
            tax_code,
            spec,
            unit,
            price,
            price_includes_tax,
            rate,
            treatment,
        } => {
            let item = CatalogItem {
                name,
                tax_code,
                spec,
                unit,
                price,
                price_includes_tax,
                tax_rate: kaipiao_sheets::batch::rate(&rate),
                treatment,
                ..CatalogItem::default()
            };
            let saved = ledger.save_items(&[item], chrono::Utc::now());
            saved_doc(ctx, saved.map_err(ledger_err(ctx))?, |e| {
                (e.id, e.name.as_str())
            })
        }
        ItemsAction::List { search } => {
            let all = ledger.items().map_err(ledger_err(ctx))?;
            let shown = matching(
                ctx,
                &ledger,
                &all,
                search.as_deref(),
                |x, q| x.items(q, MATCHES).iter().map(|i| i.id).collect(),
                |i| i.id,
            )?;
            if !ctx.json {
                print_items(&shown, ctx);
            }
            Ok(json!({"items": shown}))
        }
        ItemsAction::Remove { id } => remove(ctx, ledger.remove_item(id), id),
        ItemsAction::Import { file } => import(ctx, &ledger, Which::Items, &file),
        ItemsAction::Export { out } => export(ctx, &ledger, Which::Items, &out),
    }
}

pub fn buyers(ctx: &Ctx, action: Option<BuyersAction>) -> CmdResult {
    let ledger = ctx.open()?;
    match action.unwrap_or(BuyersAction::List { search: None }) {
        BuyersAction::Add {
            name,
            tax_id,
            address,
            bank,
            email,
            kind,
        } => {
            catalog::check_email(&email, ctx.lang)
                .map_err(|e| CommandError::new(EXIT_INVALID, e.code, &e.field, e.message))?;
            let buyer = CatalogBuyer {
                name,
                tax_id,
                address,
                bank,
                email,
                kind,
                ..CatalogBuyer::default()
            };
            let saved = ledger.save_buyers(&[buyer], chrono::Utc::now());
            saved_doc(ctx, saved.map_err(ledger_err(ctx))?, |e| {
                (e.id, e.name.as_str())
            })
        }
        BuyersAction::List { search } => {
            let all = ledger.buyers().map_err(ledger_err(ctx))?;
            let shown = matching(
                ctx,
                &ledger,
                &all,
                search.as_deref(),
                |x, q| x.buyers(q, MATCHES).iter().map(|b| b.id).collect(),
                |b| b.id,
            )?;
            if !ctx.json {
                print_buyers(&shown, ctx);
            }
            Ok(json!({"buyers": shown}) as Value)
        }
        BuyersAction::Remove { id } => remove(ctx, ledger.remove_buyer(id), id),
        BuyersAction::Import { file } => import(ctx, &ledger, Which::Buyers, &file),
        BuyersAction::Export { out } => export(ctx, &ledger, Which::Buyers, &out),
    }
}
