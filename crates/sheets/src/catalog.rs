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

/// Columns whose digits must not pass through a double.
const DIGIT_COLUMNS: [&str; 4] = [TAX_CODE, BUYER_TAX_ID, BUYER_ACCOUNT, BUYER_PHONE];

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
                row: row.saturating_add(1),
                cells: BTreeMap::new(),
                bad: Vec::new(),
            };
            for h in headers {
                let Some(col) = table.columns.get(*h) else {
                    continue;
                };
                match cells.get(col) {
                    // Digits that must stay whole: a number cell keeps only 15 of them.
                    Some(Cell::Number(t)) if t.len() > 15 && DIGIT_COLUMNS.contains(h) => {
                        let p = rec.problem(
                            h,
                            Code::InvalidCell,
                            Msg::new("invalid_cell-digits")
                                .arg("value", t.as_str())
                                .text(lang),
                        );
                        rec.bad.push((h.to_string(), p));
                    }
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
    let (mut counted, mut breaks) = (0usize, 0usize);
    for record in reader.records() {
        let record = record.map_err(|e| Problem {
            sheet: String::new(),
            row: 0,
            column: String::new(),
            code: Code::InvalidWorkbook,
            message: Msg::new("invalid_workbook-csv")
                .arg("why", e.to_string())
                .text(lang),
        })?;
        // The line the record starts on, as the clerk's editor numbers it (empty lines and
        // quoted line breaks counted): the line breaks before its first byte.
        // The reader's offset may sit on the end of the previous line (its `\n`) and
        // before empty lines: the record's own first byte is after them.
        let mut start = record
            .position()
            .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX))
            .min(text.len());
        while start < text.len() && matches!(text[start], b'\r' | b'\n') {
            start += 1;
        }
        if start > counted {
            breaks += text[counted..start].iter().filter(|&&b| b == b'\n').count();
            counted = start;
        }
        let r = breaks;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_numbered_as_lines() {
        let text = "\u{feff}项目名称,单价\r\n*a*b,\"1\r\n\"\r\n\r\n*c*d,2\r\n";
        let recs = read_records(text.as_bytes(), true, NAME, &ITEM_HEADERS, Lang::En).unwrap();
        let rows: Vec<u32> = recs.iter().map(|r| r.row).collect();
        assert_eq!(rows, vec![2, 5]);
    }
}
