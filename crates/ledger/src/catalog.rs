//! The shop's catalogs (issue 12, item 1): items (项目信息) and buyers (客户信息), kept in
//! the ledger (migration 13). They may change at any time: an issued invoice copies the
//! values it was issued with and never refers to a catalog row.
//!
//! Each entry is checked as an invoice's field would be (an item as a one-line ordinary
//! draft's line, a buyer as an invoice's buyer), so what the catalog fills in is never
//! refused at issuance for its own sake. Saving is by key: an item by name and 规格型号, a
//! buyer by tax ID (by name when it has none); saving an entry whose key exists updates it.

use crate::{invalid, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::draft::{check_text, validate_buyer, MAX_NAME_CHARS};
use kaipiao_core::money::{decimal_string, parse_decimal};
use kaipiao_core::time::rfc3339;
use kaipiao_core::{Code, Draft, DraftLine, FieldError, Kind, Msg, Party};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// An item of the catalog (项目信息).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CatalogItem {
    pub id: i64,
    /// With its `*简称*` prefix: `*计算机配套产品*键盘`.
    pub name: String,
    /// 税收分类编码, 19 digits.
    pub tax_code: String,
    pub spec: String,
    pub unit: String,
    /// The default unit price, normalised; "" for none.
    pub price: String,
    /// Whether `price` includes the tax.
    pub price_includes_tax: bool,
    /// "0.13", "0.06", … "0".
    pub tax_rate: String,
    /// "" (standard), "exempt", "non_taxable" or "zero_rated".
    pub treatment: String,
    pub updated_at: String,
}

/// A buyer of the catalog (客户信息, 抬头).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CatalogBuyer {
    pub id: i64,
    pub name: String,
    pub tax_id: String,
    /// Address and phone.
    pub address: String,
    /// Bank and account.
    pub bank: String,
    pub email: String,
    /// The kind an invoice for this buyer starts as: "ordinary" or "special".
    pub kind: String,
    pub updated_at: String,
}

/// A field error of an entry, its field named without the draft's path.
fn entry_error(e: FieldError, prefix: &str) -> LedgerError {
    let field = e.field.strip_prefix(prefix).unwrap_or(&e.field).to_string();
    LedgerError::Invalid(FieldError { field, ..e })
}

/// A treatment as a draft line or a catalog item writes it: "" for standard.
pub fn draft_treatment(t: kaipiao_core::Treatment) -> &'static str {
    match t {
        kaipiao_core::Treatment::Standard => "",
        t => t.as_str(),
    }
}

/// `*简称*名称`: a non-empty short name between two asterisks, then the name.
fn has_short_name(name: &str) -> bool {
    name.strip_prefix('*')
        .and_then(|rest| rest.split_once('*'))
        .is_some_and(|(short, rest)| !short.trim().is_empty() && !rest.trim().is_empty())
}

/// Checks and normalises an item as an invoice line would be: name (with its `*简称*`),
/// tax code (required here, 19 digits), rate and treatment, a price that is a price.
pub fn check_item(item: &CatalogItem) -> Result<CatalogItem> {
    let name = item.name.trim();
    check_text("name", name, 1, MAX_NAME_CHARS).map_err(LedgerError::Invalid)?;
    if !has_short_name(name) {
        return Err(invalid(
            Code::InvalidText,
            "name",
            Msg::new("invalid_text-short-name").arg("value", name),
        ));
    }
    if item.tax_code.trim().is_empty() {
        return Err(invalid(
            Code::MissingField,
            "tax_code",
            Msg::new("missing_field-tax-code"),
        ));
    }
    let price = item.price.trim();
    let line = DraftLine {
        name: name.to_string(),
        tax_code: item.tax_code.trim().to_string(),
        spec: item.spec.trim().to_string(),
        unit: item.unit.trim().to_string(),
        quantity: "1".into(),
        unit_price: if price.is_empty() {
            "1".into()
        } else {
            price.to_string()
        },
        tax_rate: item.tax_rate.trim().to_string(),
        treatment: item.treatment.trim().to_string(),
    };
    let draft = Draft {
        kind: "ordinary".into(),
        buyer: Party {
            name: "-".into(),
            ..Party::default()
        },
        lines: vec![line],
        price_includes_tax: item.price_includes_tax,
        ..Draft::default()
    };
    let computed =
        kaipiao_core::compute_lines(&draft, None).map_err(|e| entry_error(e, "lines[0]."))?;
    let line = &computed.lines[0];
    let price = if price.is_empty() {
        String::new()
    } else {
        // A price of 0 or below is no default price for a sale.
        let d = parse_decimal(price, 8).map_err(|_| {
            invalid(
                Code::InvalidUnitPrice,
                "price",
                Msg::new("invalid_unit_price-catalog").arg("value", price),
            )
        })?;
        if d <= rust_decimal::Decimal::ZERO {
            return Err(invalid(
                Code::InvalidUnitPrice,
                "price",
                Msg::new("invalid_unit_price-catalog").arg("value", price),
            ));
        }
        decimal_string(d)
    };
    Ok(CatalogItem {
        id: item.id,
        name: line.name.clone(),
        tax_code: line.tax_code.clone(),
        spec: line.spec.clone(),
        unit: line.unit.clone(),
        price,
        price_includes_tax: item.price_includes_tax,
        tax_rate: line.tax_rate.clone(),
        treatment: draft_treatment(line.treatment).to_string(),
        updated_at: item.updated_at.clone(),
    })
}

/// Checks and normalises a buyer as an invoice's buyer of its default kind (a 专用发票
/// buyer needs a tax ID). The email address is the caller's to check.
pub fn check_buyer(buyer: &CatalogBuyer) -> Result<CatalogBuyer> {
    let kind_text = if buyer.kind.trim().is_empty() {
        "ordinary"
    } else {
        buyer.kind.trim()
    };
    let kind = match Kind::parse(kind_text) {
        Some(k @ (Kind::Ordinary | Kind::Special)) => k,
        _ => {
            return Err(invalid(
                Code::InvalidKind,
                "kind",
                Msg::new("invalid_kind-default").arg("value", kind_text),
            ))
        }
    };
    let party = validate_buyer(
        &Party {
            name: buyer.name.clone(),
            tax_id: buyer.tax_id.clone(),
            address: buyer.address.clone(),
            bank: buyer.bank.clone(),
        },
        kind,
    )
    .map_err(|e| entry_error(e, "buyer."))?;
    Ok(CatalogBuyer {
        id: buyer.id,
        name: party.name,
        tax_id: party.tax_id,
        address: party.address,
        bank: party.bank,
        email: buyer.email.trim().to_string(),
        kind: kind.as_str().to_string(),
        updated_at: buyer.updated_at.clone(),
    })
}

const ITEM_COLUMNS: &str =
    "id, name, tax_code, spec, unit, price, price_includes_tax, tax_rate, treatment, updated_at";
const BUYER_COLUMNS: &str = "id, name, tax_id, address, bank, email, kind, updated_at";

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogItem> {
    Ok(CatalogItem {
        id: r.get(0)?,
        name: r.get(1)?,
        tax_code: r.get(2)?,
        spec: r.get(3)?,
        unit: r.get(4)?,
        price: r.get(5)?,
        price_includes_tax: r.get(6)?,
        tax_rate: r.get(7)?,
        treatment: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

fn buyer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogBuyer> {
    Ok(CatalogBuyer {
        id: r.get(0)?,
        name: r.get(1)?,
        tax_id: r.get(2)?,
        address: r.get(3)?,
        bank: r.get(4)?,
        email: r.get(5)?,
        kind: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// Whether an entry was added or updated an existing one (by its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Saved {
    Added,
    Updated,
}

fn save_item_in(
    tx: &rusqlite::Transaction<'_>,
    item: &CatalogItem,
    now: &str,
) -> Result<(i64, Saved)> {
    let existing: Option<i64> = tx
        .prepare_cached("SELECT id FROM catalog_items WHERE name = ?1 AND spec = ?2")?
        .query_row(params![item.name, item.spec], |r| r.get(0))
        .optional()?;
    tx.prepare_cached(
        "INSERT INTO catalog_items (name, tax_code, spec, unit, price, price_includes_tax,
                                    tax_rate, treatment, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (name, spec) DO UPDATE SET tax_code = ?2, unit = ?4, price = ?5,
             price_includes_tax = ?6, tax_rate = ?7, treatment = ?8, updated_at = ?9",
    )?
    .execute(params![
        item.name,
        item.tax_code,
        item.spec,
        item.unit,
        item.price,
        item.price_includes_tax,
        item.tax_rate,
        item.treatment,
        now
    ])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM catalog_items WHERE name = ?1 AND spec = ?2")?
        .query_row(params![item.name, item.spec], |r| r.get(0))?;
    Ok((
        id,
        if existing.is_some() {
            Saved::Updated
        } else {
            Saved::Added
        },
    ))
}

/// The key a buyer is saved under: its tax ID, or its name when it has none.
fn buyer_key(b: &CatalogBuyer) -> String {
    if b.tax_id.is_empty() {
        format!("name:{}", b.name)
    } else {
        format!("tax_id:{}", b.tax_id)
    }
}

fn save_buyer_in(
    tx: &rusqlite::Transaction<'_>,
    b: &CatalogBuyer,
    now: &str,
) -> Result<(i64, Saved)> {
    let key = buyer_key(b);
    let existing: Option<i64> = tx
        .prepare_cached("SELECT id FROM catalog_buyers WHERE key = ?1")?
        .query_row([&key], |r| r.get(0))
        .optional()?;
    tx.prepare_cached(
        "INSERT INTO catalog_buyers (key, name, tax_id, address, bank, email, kind, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (key) DO UPDATE SET name = ?2, address = ?4, bank = ?5, email = ?6,
             kind = ?7, updated_at = ?8",
    )?
    .execute(params![
        key, b.name, b.tax_id, b.address, b.bank, b.email, b.kind, now
    ])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM catalog_buyers WHERE key = ?1")?
        .query_row([&key], |r| r.get(0))?;
    Ok((
        id,
        if existing.is_some() {
            Saved::Updated
        } else {
            Saved::Added
        },
    ))
}

fn bump(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.prepare_cached("UPDATE catalog_version SET version = version + 1 WHERE id = 1")?
        .execute([])?;
    Ok(())
}

impl Ledger {
    /// Checks `entries` and saves them in one transaction (an import is all or nothing),
    /// each added or updating the entry with its key; the catalog version moves.
    fn save_all<T>(
        &self,
        entries: &[T],
        check: fn(&T) -> Result<T>,
        save: fn(&rusqlite::Transaction<'_>, &T, &str) -> Result<(i64, Saved)>,
        stamp: fn(T, i64, &str) -> T,
        now: DateTime<Utc>,
    ) -> Result<Vec<(T, Saved)>> {
        let checked = entries.iter().map(check).collect::<Result<Vec<_>>>()?;
        let now = rfc3339(now);
        let tx = self.write_tx()?;
        let mut out = Vec::with_capacity(checked.len());
        for entry in checked {
            let (id, saved) = save(&tx, &entry, &now)?;
            out.push((stamp(entry, id, &now), saved));
        }
        bump(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Saves items, checked, in one transaction; each is added, or updates the item with
    /// its name and 规格型号.
    pub fn save_items(
        &self,
        items: &[CatalogItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<(CatalogItem, Saved)>> {
        self.save_all(
            items,
            check_item,
            save_item_in,
            |i, id, now| CatalogItem {
                id,
                updated_at: now.to_string(),
                ..i
            },
            now,
        )
    }

    /// Saves buyers, checked, in one transaction; each is added, or updates the buyer
    /// with its tax ID (its name, when it has none).
    pub fn save_buyers(
        &self,
        buyers: &[CatalogBuyer],
        now: DateTime<Utc>,
    ) -> Result<Vec<(CatalogBuyer, Saved)>> {
        self.save_all(
            buyers,
            check_buyer,
            save_buyer_in,
            |b, id, now| CatalogBuyer {
                id,
                updated_at: now.to_string(),
                ..b
            },
            now,
        )
    }

    /// Every item, by name.
    pub fn items(&self) -> Result<Vec<CatalogItem>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM catalog_items ORDER BY name, spec, id"
            ))?
            .query_map([], item_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Every buyer, by name.
    pub fn buyers(&self) -> Result<Vec<CatalogBuyer>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {BUYER_COLUMNS} FROM catalog_buyers ORDER BY name, tax_id, id"
            ))?
            .query_map([], buyer_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Removes an item; an id that is none is `not_found`, naming `id`.
    pub fn remove_item(&self, id: i64) -> Result<()> {
        self.remove_entry("catalog_items", id)
    }

    pub fn remove_buyer(&self, id: i64) -> Result<()> {
        self.remove_entry("catalog_buyers", id)
    }

    fn remove_entry(&self, table: &str, id: i64) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), [id])?;
        if n == 0 {
            return Err(invalid(
                Code::NotFound,
                "id",
                Msg::new("not_found-catalog").arg("id", id),
            ));
        }
        bump(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Moves whenever either catalog changes (for a reader's cache).
    pub fn catalog_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT version FROM catalog_version WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_need_both_parts() {
        assert!(has_short_name("*计算机配套产品*键盘"));
        assert!(!has_short_name("键盘"));
        assert!(!has_short_name("**键盘"));
        assert!(!has_short_name("*计算机配套产品*"));
    }
}
