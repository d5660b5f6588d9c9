//! Tables written as a real .xlsx (one sheet each, numbers as numbers) or as CSV.

use rust_decimal::Decimal;
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use std::str::FromStr;

/// One cell to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    /// Money, written as a number shown with 2 decimals ("-12.30").
    Money(String),
    /// A quantity, a price or a count, written as a number as it reads.
    Number(String),
}

/// A sheet: its name, its header row and its rows.
#[derive(Debug, Clone, Default)]
pub struct SheetData {
    pub name: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// The double nearest a decimal text: exact for the amounts and quantities of an invoice
/// (at most 15 significant digits), whose shortest text is then the decimal itself.
fn double(text: &str) -> Option<f64> {
    Decimal::from_str(text).ok()?;
    f64::from_str(text).ok()
}

/// The sheets as one .xlsx: a bold header row, frozen, and columns wide enough to read.
pub fn xlsx(sheets: &[SheetData]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let header = Format::new().set_bold().set_background_color("#DDEBF7");
    let money = Format::new().set_num_format("0.00");
    for data in sheets {
        let sheet = book.add_worksheet();
        sheet.set_name(&data.name)?;
        for (col, h) in data.headers.iter().enumerate() {
            let col = u16::try_from(col).map_err(|_| XlsxError::RowColumnLimitError)?;
            sheet.write_string_with_format(0, col, h, &header)?;
            sheet.set_column_width(col, 16)?;
        }
        for (r, row) in data.rows.iter().enumerate() {
            let r = u32::try_from(r + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
            for (col, value) in row.iter().enumerate() {
                let col = u16::try_from(col).map_err(|_| XlsxError::RowColumnLimitError)?;
                match value {
                    Value::Text(t) => {
                        sheet.write_string(r, col, t)?;
                    }
                    Value::Money(t) => match double(t) {
                        Some(x) => {
                            sheet.write_number_with_format(r, col, x, &money)?;
                        }
                        None => {
                            sheet.write_string(r, col, t)?;
                        }
                    },
                    Value::Number(t) => match double(t) {
                        Some(x) => {
                            sheet.write_number(r, col, x)?;
                        }
                        None => {
                            sheet.write_string(r, col, t)?;
                        }
                    },
                }
            }
        }
        sheet.set_freeze_panes(1, 0)?;
    }
    book.save_to_buffer()
}

/// One CSV field: quoted when it holds a comma, a quote or a line break; a text that a
/// spreadsheet would run as a formula (=, +, -, @ first) is kept text with a leading '.
fn field(value: &Value) -> String {
    let text = match value {
        Value::Text(t) if t.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{t}"),
        Value::Text(t) | Value::Money(t) | Value::Number(t) => t.clone(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The sheet as CSV (RFC 4180, CRLF), UTF-8 with a byte-order mark so that Excel reads
/// the Chinese headers.
pub fn csv(data: &SheetData) -> String {
    let mut out = String::from("\u{feff}");
    let header: Vec<Value> = data.headers.iter().cloned().map(Value::Text).collect();
    for row in std::iter::once(&header).chain(data.rows.iter()) {
        let line: Vec<String> = row.iter().map(field).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let data = SheetData {
            name: "x".into(),
            headers: vec!["名称".into(), "金额".into()],
            rows: vec![vec![
                Value::Text("=1+1, \"a\"".into()),
                Value::Money("-1.50".into()),
            ]],
        };
        assert_eq!(
            csv(&data),
            "\u{feff}名称,金额\r\n\"'=1+1, \"\"a\"\"\",-1.50\r\n"
        );
    }

    #[test]
    fn decimals_become_the_double_that_reads_back_as_them() {
        for t in ["0.13", "123456789012.34", "-0.01", "3.14159265"] {
            let x = double(t).unwrap();
            assert_eq!(crate::book::number_text(x), t.trim_end_matches('0'));
        }
    }
}
