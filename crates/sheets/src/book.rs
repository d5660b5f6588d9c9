//! An .xlsx workbook read cell by cell into sparse sheets, and a table found in a sheet by
//! its header row.
//!
//! A number is kept as the shortest decimal text that reads back as the same double
//! (Rust's `Display` for `f64`), which is the text Excel shows for it: "0.13" stays
//! "0.13", and no float arithmetic ever touches money. Sizes are bounded before anything
//! is inflated: the archive's entries (uncompressed) and the number of cells.

use crate::Problem;
use calamine::{DataRef, Reader, Xlsx};
use kaipiao_core::{Code, Lang, Msg};
use std::collections::BTreeMap;
use std::io::Cursor;

/// The largest workbook file read, and the most its entries may inflate to.
pub const MAX_FILE_BYTES: usize = 32 << 20;
pub const MAX_INFLATED_BYTES: u64 = 256 << 20;
/// The most non-empty cells read from one workbook.
pub const MAX_CELLS: usize = 2_000_000;

/// One cell's value, as text the importer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    /// A numeric cell: its shortest round-trip decimal text ("0.13", "1200", "-3.5").
    Number(String),
    /// A cell that holds no text or number: a boolean, a date, an error such as #DIV/0!.
    Other {
        kind: &'static str,
        shown: String,
    },
}

impl Cell {
    /// The text a clerk sees in the cell (a number as Excel shows it).
    pub fn text(&self) -> &str {
        match self {
            Cell::Text(t) | Cell::Number(t) => t,
            Cell::Other { shown, .. } => shown,
        }
    }
}

/// A sheet's non-empty cells by (row, column), both from 0.
#[derive(Debug, Clone, Default)]
pub struct Sheet {
    pub name: String,
    pub cells: BTreeMap<(u32, u32), Cell>,
}

#[derive(Debug, Clone, Default)]
pub struct Book {
    pub sheets: Vec<Sheet>,
}

impl Book {
    pub fn sheet(&self, name: &str) -> Option<&Sheet> {
        self.sheets.iter().find(|s| s.name.trim() == name)
    }
}

fn whole_file(code: Code, msg: Msg, lang: Lang) -> Problem {
    Problem {
        sheet: String::new(),
        row: 0,
        column: String::new(),
        code,
        message: msg.text(lang),
    }
}

/// Reads an .xlsx file's bytes. A file that is not one, is too large or is damaged is one
/// problem naming the file as a whole (row 0, no sheet).
pub fn read_xlsx(bytes: &[u8], lang: Lang) -> Result<Book, Problem> {
    let not_xlsx = |why: String| {
        whole_file(
            Code::InvalidWorkbook,
            Msg::new("invalid_workbook-zip").arg("why", why),
            lang,
        )
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(whole_file(
            Code::InvalidWorkbook,
            Msg::new("invalid_workbook-too-big").arg("limit", (MAX_FILE_BYTES >> 20) as u64),
            lang,
        ));
    }
    // The entries' stated sizes, summed before calamine inflates any of them.
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| not_xlsx(e.to_string()))?;
    let mut inflated = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| not_xlsx(e.to_string()))?;
        inflated = inflated.saturating_add(entry.size());
    }
    if inflated > MAX_INFLATED_BYTES {
        return Err(whole_file(
            Code::InvalidWorkbook,
            Msg::new("invalid_workbook-too-big").arg("limit", MAX_INFLATED_BYTES >> 20),
            lang,
        ));
    }
    let mut xlsx: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|e| not_xlsx(e.to_string()))?;
    let mut book = Book::default();
    let mut total = 0usize;
    for name in xlsx.sheet_names() {
        let mut sheet = Sheet {
            name: name.clone(),
            cells: BTreeMap::new(),
        };
        let mut reader = xlsx
            .worksheet_cells_reader(&name)
            .map_err(|e| not_xlsx(e.to_string()))?;
        while let Some(cell) = reader.next_cell().map_err(|e| not_xlsx(e.to_string()))? {
            let Some(value) = cell_value(cell.get_value()) else {
                continue;
            };
            total += 1;
            if total > MAX_CELLS {
                return Err(whole_file(
                    Code::InvalidWorkbook,
                    Msg::new("invalid_workbook-cells").arg("limit", MAX_CELLS as u64),
                    lang,
                ));
            }
            sheet.cells.insert(cell.get_position(), value);
        }
        book.sheets.push(sheet);
    }
    Ok(book)
}

/// A cell's value; None for an empty cell or one holding only spaces.
fn cell_value(data: &DataRef<'_>) -> Option<Cell> {
    let text = |s: &str| {
        let t = s.trim();
        (!t.is_empty()).then(|| Cell::Text(t.to_string()))
    };
    match data {
        DataRef::Empty => None,
        DataRef::String(s) => text(s),
        DataRef::SharedString(s) => text(s),
        DataRef::Int(i) => Some(Cell::Number(i.to_string())),
        DataRef::Float(f) if f.is_finite() => Some(Cell::Number(number_text(*f))),
        DataRef::Float(f) => Some(Cell::Other {
            kind: "number",
            shown: f.to_string(),
        }),
        DataRef::Bool(b) => Some(Cell::Other {
            kind: "boolean",
            shown: if *b { "TRUE" } else { "FALSE" }.to_string(),
        }),
        DataRef::DateTime(d) => Some(Cell::Other {
            kind: "date",
            shown: d.to_string(),
        }),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Some(Cell::Other {
            kind: "date",
            shown: s.clone(),
        }),
        DataRef::Error(e) => Some(Cell::Other {
            kind: "error",
            shown: e.to_string(),
        }),
    }
}

/// Excel shows and keeps a number's first 15 significant digits.
const EXCEL_DIGITS: usize = 15;

/// The text of a number cell: the shortest decimal that reads back as `f` ("0.13",
/// "1200"), as typed; a computed one (a formula's `=1.1*3`, 3.3000000000000003) as Excel
/// shows it, to 15 significant digits ("3.3"). Only formatting, never arithmetic, touches
/// the value. `Display` for `f64` writes no exponent; a zero has no sign.
pub fn number_text(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string();
    }
    let shortest = f.to_string();
    let significant = shortest
        .trim_start_matches('-')
        .trim_start_matches(['0', '.'])
        .chars()
        .filter(char::is_ascii_digit)
        .count();
    let integer_digits = shortest
        .trim_start_matches('-')
        .split('.')
        .next()
        .map_or(0, str::len);
    if significant <= EXCEL_DIGITS || integer_digits > EXCEL_DIGITS {
        return shortest;
    }
    // 15 significant digits in scientific form, then written out without the exponent.
    let sci = format!("{:.*e}", EXCEL_DIGITS - 1, f);
    match rust_decimal::Decimal::from_scientific(&sci) {
        Ok(d) => kaipiao_core::money::decimal_string(d),
        Err(_) => shortest,
    }
}

/// A table in a sheet: the header row found by one of its cells, the columns by their
/// header text, and the rows below it.
#[derive(Debug, Clone)]
pub struct Table<'a> {
    pub sheet: &'a Sheet,
    /// The header row, from 0.
    pub header_row: u32,
    /// Column index by header text (a leading `*` and spaces dropped).
    pub columns: BTreeMap<String, u32>,
}

/// A header's text as matched: spaces, a leading `*` (required) and line breaks dropped.
fn header_key(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_start_matches('*')
        .trim_start_matches('＊')
        .to_string()
}

impl<'a> Table<'a> {
    /// Finds the header row by a cell reading `key` within the first `within` rows.
    pub fn find(sheet: &'a Sheet, key: &str, within: u32, lang: Lang) -> Result<Self, Problem> {
        let found = sheet
            .cells
            .range((0, 0)..(within, 0))
            .find(|(_, cell)| matches!(cell, Cell::Text(t) if header_key(t) == key))
            .map(|((row, _), _)| *row);
        let Some(header_row) = found else {
            return Err(Problem {
                sheet: sheet.name.clone(),
                row: 0,
                column: key.to_string(),
                code: Code::InvalidWorkbook,
                message: Msg::new("invalid_workbook-header")
                    .arg("header", key)
                    .arg("rows", within as u64)
                    .arg("sheet", sheet.name.as_str())
                    .text(lang),
            });
        };
        let mut columns = BTreeMap::new();
        for ((_, col), cell) in sheet.cells.range((header_row, 0)..(header_row + 1, 0)) {
            let key = header_key(cell.text());
            if !key.is_empty() {
                // The first of two columns with one header is the one read.
                columns.entry(key).or_insert(*col);
            }
        }
        Ok(Table {
            sheet,
            header_row,
            columns,
        })
    }

    /// The rows below the header that have any cell, in order: (row from 0, cells by column).
    pub fn rows(&self) -> Vec<(u32, BTreeMap<u32, &'a Cell>)> {
        let mut rows: BTreeMap<u32, BTreeMap<u32, &'a Cell>> = BTreeMap::new();
        for ((row, col), cell) in self.sheet.cells.range((self.header_row + 1, 0)..) {
            rows.entry(*row).or_default().insert(*col, cell);
        }
        rows.into_iter().collect()
    }

    /// Problems for the `required` headers this table lacks (row 0: the sheet as a whole).
    pub fn require(&self, required: &[&str], lang: Lang) -> Vec<Problem> {
        required
            .iter()
            .filter(|h| !self.columns.contains_key(**h))
            .map(|h| Problem {
                sheet: self.sheet.name.clone(),
                row: self.header_row + 1,
                column: h.to_string(),
                code: Code::InvalidWorkbook,
                message: Msg::new("invalid_workbook-column")
                    .arg("sheet", self.sheet.name.as_str())
                    .arg("column", *h)
                    .text(lang),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_their_shortest_text() {
        assert_eq!(number_text(0.13), "0.13");
        assert_eq!(number_text(1200.0), "1200");
        assert_eq!(number_text(-3.5), "-3.5");
        // Computed: as Excel shows it, 15 significant digits.
        assert_eq!(number_text(0.1 + 0.2), "0.3");
        assert_eq!(number_text(1.1 * 3.0), "3.3");
        assert_eq!(number_text(123456.78901234567), "123456.789012346");
        assert_eq!(number_text(1e-7), "0.0000001");
        assert_eq!(number_text(-0.0), "0");
    }

    #[test]
    fn headers_match_without_marks_or_spaces() {
        assert_eq!(header_key("*发票流水号"), "发票流水号");
        assert_eq!(header_key(" 购买方\n名称 "), "购买方名称");
    }

    #[test]
    fn not_a_workbook_is_one_problem_for_the_file() {
        let p = read_xlsx(b"hello", Lang::En).unwrap_err();
        assert_eq!(p.code, Code::InvalidWorkbook);
        assert_eq!(p.row, 0);
    }
}
