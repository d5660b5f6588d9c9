//! The catalogs over the ledger (issue 12, item 1): entries checked and saved, imported
//! from and exported to CSV or XLSX with the template's Chinese headers, and the
//! type-ahead search the entry form asks at every keystroke (by name, by the pinyin
//! initials of the name, by tax ID or tax code), served from an index rebuilt only when
//! the catalogs change.

use crate::dto::{CatalogBuyerDto, CatalogItemDto, CatalogSavedDto, NewToCatalogDto};
use crate::engine::{lock, Engine};
use crate::error::{DeskError, DeskResult};
use kaipiao_core::{Code, Invoice, Lang, Line, Party};
use kaipiao_ledger::{
    check_buyer, check_item, CatalogBuyer, CatalogItem, Ledger, LedgerError, Saved,
};
use kaipiao_sheets::batch::{join, kind_of, rate, treatment_of, yes_no};
use kaipiao_sheets::catalog::{read_records, Record, BUYER_HEADERS, ITEM_HEADERS};
use kaipiao_sheets::template::*;
use kaipiao_sheets::write::{SheetData, Value};
use kaipiao_sheets::Problem;
use pinyin::ToPinyin;
use serde::Serialize;

/// What an import did: entries added and updated, and the rows refused, each problem at
/// its cell. The rows without problems are saved (in one transaction).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CatalogImport {
    pub added: u64,
    pub updated: u64,
    pub problems: Vec<Problem>,
}

/// An item field's column (明细's header).
fn item_column(field: &str) -> &'static str {
    match field {
        "name" => NAME,
        "tax_code" => TAX_CODE,
        "spec" => SPEC,
        "unit" => UNIT,
        "price" | "unit_price" | "quantity" => PRICE,
        "price_includes_tax" => INCLUDES_TAX,
        "tax_rate" => RATE,
        "treatment" => TREATMENT,
        _ => NAME,
    }
}

/// A buyer field's column (基本信息's header).
fn buyer_column(field: &str) -> &'static str {
    match field {
        "tax_id" => BUYER_TAX_ID,
        "address" => BUYER_ADDRESS,
        "bank" => BUYER_BANK,
        "email" => BUYER_EMAIL,
        "kind" => KIND,
        _ => BUYER_NAME,
    }
}

fn refusal(rec: &Record, column: &str, e: &LedgerError, lang: Lang) -> Problem {
    let message = match e {
        LedgerError::Invalid(fe) => fe.text(lang).to_string(),
        other => other.message(lang),
    };
    rec.problem(column, e.code(), message)
}

fn field_of(e: &LedgerError) -> &str {
    match e {
        LedgerError::Invalid(fe) => &fe.field,
        _ => "",
    }
}

fn item_of(rec: &Record, lang: Lang) -> Result<CatalogItem, Problem> {
    let includes = rec.get(INCLUDES_TAX);
    let price_includes_tax = yes_no(includes).ok_or_else(|| {
        rec.problem(
            INCLUDES_TAX,
            Code::InvalidCell,
            kaipiao_core::Msg::new("invalid_cell-yes-no")
                .arg("value", includes)
                .text(lang),
        )
    })?;
    let treatment = treatment_of(rec.get(TREATMENT)).ok_or_else(|| {
        rec.problem(
            TREATMENT,
            Code::InvalidTreatment,
            kaipiao_core::Msg::new("invalid_treatment-sheet")
                .arg("value", rec.get(TREATMENT))
                .text(lang),
        )
    })?;
    let item = CatalogItem {
        name: rec.get(NAME).into(),
        tax_code: rec.get(TAX_CODE).into(),
        spec: rec.get(SPEC).into(),
        unit: rec.get(UNIT).into(),
        price: rec.get(PRICE).replace([',', '，'], ""),
        price_includes_tax,
        tax_rate: rate(rec.get(RATE)),
        treatment: treatment.into(),
        ..CatalogItem::default()
    };
    check_item(&item).map_err(|e| refusal(rec, item_column(field_of(&e)), &e, lang))
}

fn buyer_of(rec: &Record, lang: Lang) -> Result<CatalogBuyer, Problem> {
    let kind_text = rec.get(KIND);
    let kind = if kind_text.is_empty() {
        "ordinary"
    } else {
        kind_of(kind_text).ok_or_else(|| {
            rec.problem(
                KIND,
                Code::InvalidKind,
                kaipiao_core::Msg::new("invalid_kind-sheet")
                    .arg("value", kind_text)
                    .text(lang),
            )
        })?
    };
    let buyer = CatalogBuyer {
        name: rec.get(BUYER_NAME).into(),
        tax_id: rec.get(BUYER_TAX_ID).into(),
        address: join(rec.get(BUYER_ADDRESS).into(), rec.get(BUYER_PHONE).into()),
        bank: join(rec.get(BUYER_BANK).into(), rec.get(BUYER_ACCOUNT).into()),
        email: rec.get(BUYER_EMAIL).into(),
        kind: kind.into(),
        ..CatalogBuyer::default()
    };
    check_email(&buyer.email, lang).map_err(|e| rec.problem(BUYER_EMAIL, e.code, e.message))?;
    check_buyer(&buyer).map_err(|e| refusal(rec, buyer_column(field_of(&e)), &e, lang))
}

/// A buyer's email address, when given, as a mail would need it.
pub fn check_email(email: &str, lang: Lang) -> Result<(), DeskError> {
    if email.trim().is_empty() {
        return Ok(());
    }
    crate::mail::check_address(email, "email")
        .map(|_| ())
        .map_err(|e| DeskError::new(e.code, "email", e.text(lang)))
}

/// Which catalog a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Items,
    Buyers,
}

impl Which {
    fn key(self) -> &'static str {
        match self {
            Which::Items => NAME,
            Which::Buyers => BUYER_NAME,
        }
    }

    fn headers(self) -> &'static [&'static str] {
        match self {
            Which::Items => &ITEM_HEADERS,
            Which::Buyers => &BUYER_HEADERS,
        }
    }

    pub fn sheet(self) -> &'static str {
        match self {
            Which::Items => "项目信息",
            Which::Buyers => "客户信息",
        }
    }
}

/// The records read as entries; each that cannot be is a problem.
fn convert<T>(
    records: &[Record],
    problems: &mut Vec<Problem>,
    entry: impl Fn(&Record) -> Result<T, Problem>,
) -> Vec<T> {
    let mut good = Vec::new();
    for rec in records {
        match rec.bad.first() {
            Some((_, p)) => problems.push(p.clone()),
            None => match entry(rec) {
                Ok(e) => good.push(e),
                Err(p) => problems.push(p),
            },
        }
    }
    good
}

/// Imports a catalog file (CSV when `csv`, else .xlsx): every row checked as the entry
/// it would be, the good ones saved in one transaction, each bad one a problem at its
/// cell. `Err`: the file cannot be read as a catalog table (nothing saved).
pub fn import(
    ledger: &Ledger,
    which: Which,
    bytes: &[u8],
    csv: bool,
    lang: Lang,
) -> Result<CatalogImport, Vec<Problem>> {
    let records =
        read_records(bytes, csv, which.key(), which.headers(), lang).map_err(|p| vec![p])?;
    let mut report = CatalogImport::default();
    let file_problem = |e: LedgerError| {
        vec![Problem {
            sheet: String::new(),
            row: 0,
            column: String::new(),
            code: e.code(),
            message: e.message(lang),
        }]
    };
    let saved: Vec<Saved> = match which {
        Which::Items => {
            let good = convert(&records, &mut report.problems, |r| item_of(r, lang));
            let saved = ledger.save_items(&good, chrono::Utc::now());
            saved
                .map_err(file_problem)?
                .into_iter()
                .map(|(_, s)| s)
                .collect()
        }
        Which::Buyers => {
            let good = convert(&records, &mut report.problems, |r| buyer_of(r, lang));
            let saved = ledger.save_buyers(&good, chrono::Utc::now());
            saved
                .map_err(file_problem)?
                .into_iter()
                .map(|(_, s)| s)
                .collect()
        }
    };
    for s in saved {
        match s {
            Saved::Added => report.added += 1,
            Saved::Updated => report.updated += 1,
        }
    }
    Ok(report)
}

/// A catalog as one table with the template's headers, for `export` (XLSX or CSV).
pub fn table(ledger: &Ledger, which: Which) -> kaipiao_ledger::Result<SheetData> {
    let t = |s: &str| Value::Text(s.to_string());
    let rows = match which {
        Which::Items => ledger
            .items()?
            .into_iter()
            .map(|i| {
                vec![
                    t(&i.name),
                    t(&i.tax_code),
                    t(&i.spec),
                    t(&i.unit),
                    if i.price.is_empty() {
                        t("")
                    } else {
                        Value::Number(i.price.clone())
                    },
                    t(if i.price_includes_tax { "是" } else { "否" }),
                    t(&kaipiao_core::money::rate_percent(&i.tax_rate)),
                    t(kaipiao_core::Treatment::parse(&i.treatment)
                        .map(crate::export::treatment_zh)
                        .unwrap_or("")),
                ]
            })
            .collect(),
        Which::Buyers => ledger
            .buyers()?
            .into_iter()
            .map(|b| {
                vec![
                    t(&b.name),
                    t(&b.tax_id),
                    t(&b.address),
                    t(""),
                    t(&b.bank),
                    t(""),
                    t(&b.email),
                    t(KINDS
                        .iter()
                        .find(|(_, en)| *en == b.kind)
                        .map(|(zh, _)| *zh)
                        .unwrap_or("普通发票")),
                ]
            })
            .collect(),
    };
    Ok(SheetData {
        name: which.sheet().into(),
        headers: which.headers().iter().map(|h| h.to_string()).collect(),
        rows,
    })
}

// -------------------------------------------------------------------------------------
// Type-ahead.
// -------------------------------------------------------------------------------------

/// The pinyin initials of the Chinese characters of `text`, other letters and digits kept
/// (lowercased): "深圳市某某科技" -> "szsmmkj", "*计算机配套产品*键盘" -> "jsjptcpjp".
pub fn initials(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c.to_pinyin() {
            Some(p) => p.first_letter().chars().next(),
            None if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            None => None,
        })
        .collect()
}

/// The name without its `*简称*` prefix: what a clerk types first for an item.
fn short_stripped(name: &str) -> &str {
    name.strip_prefix('*')
        .and_then(|rest| rest.split_once('*'))
        .map(|(_, n)| n)
        .unwrap_or(name)
}

/// One entry's search keys.
#[derive(Debug, Clone)]
struct Keys {
    /// Name (lowercased), with and without the `*简称*`.
    name: String,
    bare: String,
    initials: String,
    bare_initials: String,
    /// Tax ID or tax code.
    code: String,
}

impl Keys {
    fn new(name: &str, code: &str) -> Keys {
        let bare = short_stripped(name);
        Keys {
            name: name.to_lowercase(),
            bare: bare.to_lowercase(),
            initials: initials(name),
            bare_initials: initials(bare),
            code: code.to_uppercase(),
        }
    }

    /// How well `q` (lowercased) matches: 0 best; None when it does not.
    fn rank(&self, q: &str, q_upper: &str) -> Option<u8> {
        if self.bare.starts_with(q) || self.name.starts_with(q) {
            Some(0)
        } else if self.bare_initials.starts_with(q) || self.initials.starts_with(q) {
            Some(1)
        } else if !q_upper.is_empty() && self.code.starts_with(q_upper) {
            Some(2)
        } else if self.name.contains(q) {
            Some(3)
        } else if self.initials.contains(q) {
            Some(4)
        } else {
            None
        }
    }
}

/// The catalogs as searched, with the version they were read at.
#[derive(Debug, Default)]
pub struct CatalogIndex {
    version: Option<i64>,
    items: Vec<(CatalogItem, Keys)>,
    buyers: Vec<(CatalogBuyer, Keys)>,
}

/// Matches shown at most.
pub const MATCHES: usize = 8;

impl CatalogIndex {
    /// Re-reads the catalogs when they changed since the last read.
    pub fn refresh(&mut self, ledger: &Ledger) -> kaipiao_ledger::Result<()> {
        let version = ledger.catalog_version()?;
        if self.version == Some(version) {
            return Ok(());
        }
        self.items = ledger
            .items()?
            .into_iter()
            .map(|i| {
                let k = Keys::new(&i.name, &i.tax_code);
                (i, k)
            })
            .collect();
        self.buyers = ledger
            .buyers()?
            .into_iter()
            .map(|b| {
                let k = Keys::new(&b.name, &b.tax_id);
                (b, k)
            })
            .collect();
        self.version = Some(version);
        Ok(())
    }

    fn search<'a, T>(entries: &'a [(T, Keys)], query: &str, limit: usize) -> Vec<&'a T> {
        let q = query.trim().to_lowercase();
        if q.is_empty() {
            return Vec::new();
        }
        let q_upper = q.to_uppercase();
        let mut found: Vec<(u8, usize, &T)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, (e, k))| k.rank(&q, &q_upper).map(|r| (r, i, e)))
            .collect();
        // Best rank first, then catalog order (by name); only `limit` are sorted out.
        if found.len() > limit {
            found.select_nth_unstable_by_key(limit, |(r, i, _)| (*r, *i));
            found.truncate(limit);
        }
        found.sort_by_key(|(r, i, _)| (*r, *i));
        found.into_iter().map(|(_, _, e)| e).collect()
    }

    pub fn items(&self, query: &str, limit: usize) -> Vec<&CatalogItem> {
        Self::search(&self.items, query, limit)
    }

    pub fn buyers(&self, query: &str, limit: usize) -> Vec<&CatalogBuyer> {
        Self::search(&self.buyers, query, limit)
    }

    pub fn len(&self) -> (usize, usize) {
        (self.items.len(), self.buyers.len())
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.buyers.is_empty()
    }

    /// Whether a buyer with this tax ID (this name, when it has none) is in the catalog.
    pub fn knows_buyer(&self, party: &Party) -> bool {
        let tax_id = kaipiao_core::taxid::normalize_tax_id(&party.tax_id);
        self.buyers.iter().any(|(b, _)| {
            if tax_id.is_empty() {
                b.tax_id.is_empty() && b.name == party.name.trim()
            } else {
                b.tax_id == tax_id
            }
        })
    }

    /// Whether an item with this name and 规格型号 is in the catalog.
    pub fn knows_item(&self, name: &str, spec: &str) -> bool {
        self.items
            .iter()
            .any(|(i, _)| i.name == name.trim() && i.spec == spec.trim())
    }

    /// What of `inv` the catalogs do not hold yet (a credit note's parties and lines are
    /// its original's: nothing).
    pub fn new_in(&self, inv: &Invoice) -> NewToCatalogDto {
        if inv.kind == kaipiao_core::Kind::Credit {
            return NewToCatalogDto::default();
        }
        let mut seen = std::collections::BTreeSet::new();
        NewToCatalogDto {
            buyer: !self.knows_buyer(&inv.buyer),
            items: inv
                .lines
                .iter()
                .filter(|l| !l.tax_code.is_empty() && !self.knows_item(&l.name, &l.spec))
                .filter(|l| seen.insert((l.name.clone(), l.spec.clone())))
                .count() as u32,
        }
    }
}

// -------------------------------------------------------------------------------------
// The app: type-ahead and "save to catalogs".
// -------------------------------------------------------------------------------------

impl Engine {
    /// The catalog index, brought up to date with the ledger (read on the reader
    /// connection, so a search never waits for an issuance).
    fn with_index<T>(&self, f: impl FnOnce(&CatalogIndex) -> T) -> DeskResult<T> {
        let mut index = lock(&self.catalog_index);
        index
            .refresh(&self.reader())
            .map_err(|e| self.ledger_error(e))?;
        Ok(f(&index))
    }

    /// The entry form's line name as typed: the best matching items.
    pub fn search_items(&self, query: &str) -> DeskResult<Vec<CatalogItemDto>> {
        self.with_index(|x| {
            x.items(query, MATCHES)
                .into_iter()
                .map(CatalogItemDto::from)
                .collect()
        })
    }

    /// The entry form's buyer name as typed: the best matching buyers.
    pub fn search_buyers(&self, query: &str) -> DeskResult<Vec<CatalogBuyerDto>> {
        self.with_index(|x| {
            x.buyers(query, MATCHES)
                .into_iter()
                .map(CatalogBuyerDto::from)
                .collect()
        })
    }

    /// What of an invoice just issued the catalogs do not hold yet.
    pub(crate) fn new_to_catalog(&self, inv: &Invoice) -> NewToCatalogDto {
        self.with_index(|x| x.new_in(inv)).unwrap_or_default()
    }

    /// Ctrl+S after issuing: the invoice's buyer and items that the catalogs lack, saved
    /// as issued (an item's price is the stored tax-exclusive unit price). A line without a
    /// 税收分类编码 cannot be an item: it is named in `skipped`.
    pub fn save_to_catalogs(&self, number: &str) -> DeskResult<CatalogSavedDto> {
        let lang = self.lang();
        let inv = self
            .reader()
            .show(number)
            .map_err(|e| self.ledger_error(e))?
            .envelope
            .invoice;
        let (buyer_new, lines): (bool, Vec<Line>) = self.with_index(|x| {
            let mut seen = std::collections::BTreeSet::new();
            (
                inv.kind != kaipiao_core::Kind::Credit && !x.knows_buyer(&inv.buyer),
                inv.lines
                    .iter()
                    .filter(|_| inv.kind != kaipiao_core::Kind::Credit)
                    .filter(|l| !x.knows_item(&l.name, &l.spec))
                    .filter(|l| seen.insert((l.name.clone(), l.spec.clone())))
                    .cloned()
                    .collect(),
            )
        })?;
        let (items, skipped): (Vec<Line>, Vec<Line>) =
            lines.into_iter().partition(|l| !l.tax_code.is_empty());
        let now = chrono::Utc::now();
        let ledger = self.ledger();
        let mut saved = CatalogSavedDto {
            buyers: 0,
            items: 0,
            skipped: skipped.into_iter().map(|l| l.name).collect(),
        };
        if buyer_new {
            let b = CatalogBuyer {
                name: inv.buyer.name.clone(),
                tax_id: inv.buyer.tax_id.clone(),
                address: inv.buyer.address.clone(),
                bank: inv.buyer.bank.clone(),
                kind: inv.kind.as_str().to_string(),
                ..CatalogBuyer::default()
            };
            ledger
                .save_buyers(&[b], now)
                .map_err(|e| DeskError::ledger(&e, lang))?;
            saved.buyers = 1;
        }
        let entries: Vec<CatalogItem> = items
            .iter()
            .map(|l| CatalogItem {
                name: l.name.clone(),
                tax_code: l.tax_code.clone(),
                spec: l.spec.clone(),
                unit: l.unit.clone(),
                price: l.unit_price.clone(),
                price_includes_tax: false,
                tax_rate: l.tax_rate.clone(),
                treatment: kaipiao_ledger::draft_treatment(l.treatment).to_string(),
                ..CatalogItem::default()
            })
            .collect();
        if !entries.is_empty() {
            // An item name without its *简称* is refused by the catalog: named, not saved.
            for entry in entries {
                match ledger.save_items(std::slice::from_ref(&entry), now) {
                    Ok(_) => saved.items += 1,
                    Err(LedgerError::Invalid(_)) => saved.skipped.push(entry.name),
                    Err(e) => return Err(DeskError::ledger(&e, lang)),
                }
            }
        }
        Ok(saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_of_chinese_and_latin() {
        assert_eq!(initials("深圳市某某科技"), "szsmmkj");
        assert_eq!(initials("*计算机配套产品*键盘"), "jsjptcpjp");
        assert_eq!(initials("USB 键盘 2"), "usbjp2");
    }

    #[test]
    fn ranks_prefer_the_name_then_initials_then_codes() {
        let k = Keys::new("*计算机配套产品*键盘", "1090511030000000000");
        assert_eq!(k.rank("键盘", "键盘"), Some(0));
        assert_eq!(k.rank("jp", "JP"), Some(1));
        assert_eq!(k.rank("109051", "109051"), Some(2));
        assert_eq!(k.rank("配套", "配套"), Some(3));
        assert_eq!(k.rank("xyz", "XYZ"), None);
    }
}
