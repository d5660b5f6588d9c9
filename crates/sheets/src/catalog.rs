//! The catalogs as tables (`kaipiao items|buyers import|export`): the template's Chinese
//! column names (明细's for items, 基本信息's for buyers), read from .xlsx or CSV by header
//! and written back the same way.

use crate::book::{read_xlsx, Cell, Sheet, Table};
use crate::template::*;
use crate::Problem;
use kaipiao_core::{Code, Lang, Msg};
use std::collections::BTreeMap;

/// An item's columns (明细's names, with 是否含税 for the price).
pub const ITEM_HEADERS: [&str; 8] = [
    NAME,
    TAX_CODE,
    SPEC,
    UNIT,
    PRICE,
    INCLUDES_TAX,
    RATE,
    TREATMENT,
];

/// A buyer's columns (基本信息's names, with 发票类型 for the default kind).
pub const BUYER_HEADERS: [&str; 8] = [
    BUYER_NAME,
    BUYER_TAX_ID,
    BUYER_ADDRESS,
    BUYER_PHONE,
    BUYER_BANK,
    BUYER_ACCOUNT,
    BUYER_EMAIL,
    KIND,
];

/// One row of a catalog table: its sheet, its row as Excel numbers it (a CSV's line
/// number), and its cells' text by header.
#[derive(Debug, Clone)]
pub struct Record {
    pub sheet: String,
    pub row: u32,
    pub cells: BTreeMap<String, String>,
    /// Cells that hold no text or number (a date, an error), by header.
    pub bad: Vec<(String, Problem)>,
}

impl Record {
    pub fn get(&self, header: &str) -> &str {
        self.cells.get(header).map(String::as_str).unwrap_or("")
    }

    /// A problem at this row, in `column`.
    pub fn problem(&self, column: &str, code: Code, message: String) -> Problem {
        Problem {
            sheet: self.sheet.clone(),
            row: self.row,
            column: column.to_string(),
            code,
            message,
        }
    }
}

fn records_of(table: &Table<'_>, headers: &[&str], lang: Lang) -> Vec<Record> {
    table
        .rows()
        .into_iter()
        .map(|(row, cells)| {
            let mut rec = Record {
                sheet: table.sheet.name.clone(),
                row: row + 1,
                cells: BTreeMap::new(),
                bad: Vec::new(),
            };
            for h in headers {
                let Some(col) = table.columns.get(*h) else {
                    continue;
                };
                match cells.get(col) {
                    Some(Cell::Text(t)) | Some(Cell::Number(t)) => {
                        rec.cells.insert(h.to_string(), t.clone());
                    }
                    Some(Cell::Other { kind, shown }) => {
                        let p = rec.problem(
                            h,
                            Code::InvalidCell,
                            Msg::new("invalid_cell-type")
                                .arg("kind", *kind)
                                .arg("value", shown.as_str())
                                .text(lang),
                        );
                        rec.bad.push((h.to_string(), p));
                    }
                    None => {}
                }
            }
            rec
        })
        .collect()
}

/// The records of a catalog file: an .xlsx (the first sheet with a header row holding
/// `key` within 5 rows) or a CSV (UTF-8, a byte-order mark allowed). `Err`: the file
/// cannot be read as such a table.
pub fn read_records(
    bytes: &[u8],
    csv: bool,
    key: &str,
    headers: &[&str],
    lang: Lang,
) -> Result<Vec<Record>, Problem> {
    let book = if csv {
        csv_book(bytes, lang)?
    } else {
        read_xlsx(bytes, lang)?
    };
    let mut first_error = None;
    for sheet in &book.sheets {
        match Table::find(sheet, key, HEADER_WITHIN, lang) {
            Ok(table) => return Ok(records_of(&table, headers, lang)),
            Err(p) => {
                first_error.get_or_insert(p);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| Problem {
        sheet: String::new(),
        row: 0,
        column: key.to_string(),
        code: Code::InvalidWorkbook,
        message: Msg::new("invalid_workbook-header")
            .arg("header", key)
            .arg("rows", HEADER_WITHIN as u64)
            .arg("sheet", "-")
            .text(lang),
    }))
}

/// A CSV file as a one-sheet book of text cells. A field our CSV writer defused (a
/// leading `'` before `=`, `+`, `-` or `@`) is read back as it was.
fn csv_book(bytes: &[u8], lang: Lang) -> Result<crate::book::Book, Problem> {
    let text = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    let mut sheet = Sheet {
        name: "CSV".into(),
        cells: BTreeMap::new(),
    };
    let mut count = 0usize;
    for (r, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Problem {
            sheet: String::new(),
            row: 0,
            column: String::new(),
            code: Code::InvalidWorkbook,
            message: Msg::new("invalid_workbook-csv")
                .arg("why", e.to_string())
                .text(lang),
        })?;
        for (c, field) in record.iter().enumerate() {
            let t = field.trim();
            if t.is_empty() {
                continue;
            }
            count += 1;
            if count > crate::book::MAX_CELLS {
                return Err(Problem {
                    sheet: String::new(),
                    row: 0,
                    column: String::new(),
                    code: Code::InvalidWorkbook,
                    message: Msg::new("invalid_workbook-cells")
                        .arg("limit", crate::book::MAX_CELLS as u64)
                        .text(lang),
                });
            }
            let t = match t.strip_prefix('\'') {
                Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
                _ => t,
            };
            let (Ok(r), Ok(c)) = (u32::try_from(r), u32::try_from(c)) else {
                continue;
            };
            sheet.cells.insert((r, c), Cell::Text(t.to_string()));
        }
    }
    Ok(crate::book::Book {
        sheets: vec![sheet],
    })
}
