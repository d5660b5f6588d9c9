//! A batch-issue workbook read into drafts: one per 基本信息 row, its lines from the 明细
//! rows with the same 发票流水号. Every problem names its sheet, its row as Excel numbers
//! it, and its column by header; a draft the ledger refuses later is placed the same way
//! ([`Placed::place`]).

use crate::book::{Book, Cell, Table};
use crate::template::*;
use crate::Problem;
use kaipiao_core::money::{decimal_string, parse_decimal, round};
use kaipiao_core::{Code, Draft, DraftLine, FieldError, Lang, Msg, Party};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The longest 发票流水号 kept.
pub const MAX_SERIAL_CHARS: usize = 64;

/// What a till fills in when the workbook leaves it empty (issue 12, per-till defaults).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// 开票人.
    pub issuer: String,
    /// "ordinary" or "special".
    pub kind: String,
}

/// One invoice of the workbook.
#[derive(Debug, Clone)]
pub struct BatchInvoice {
    pub serial: String,
    /// The draft, when its cells could be read (it may still be refused when issued).
    pub draft: Option<Draft>,
    /// 购买方邮箱, when given.
    pub email: Option<String>,
    /// SHA-256 of the serial's cells as written (its 基本信息 row and its 明细 rows, by
    /// header): what "the same content" means on a re-import. Defaults a till fills in
    /// are not part of it.
    pub digest: String,
    pub problems: Vec<Problem>,
    /// Where the draft's fields are, for placing the ledger's refusals.
    pub placed: Placed,
}

/// The cells a draft was read from.
#[derive(Debug, Clone, Default)]
pub struct Placed {
    /// The 基本信息 row (as Excel numbers it; 0 when the serial has no row there).
    pub basic_row: u32,
    /// Each line's 明细 row, as Excel numbers it.
    pub line_rows: Vec<u32>,
}

impl Placed {
    /// The cell a draft field (`buyer.tax_id`, `lines[2].quantity`, `remarks`) was read
    /// from: (sheet, row, column).
    pub fn place(&self, field: &str) -> (&'static str, u32, &'static str) {
        let basic = |column| (BASIC, self.basic_row, column);
        if let Some(rest) = field.strip_prefix("lines[") {
            if let Some((index, tail)) = rest.split_once(']') {
                if let Some(row) = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.line_rows.get(i))
                {
                    let column = match tail.trim_start_matches('.') {
                        "name" => NAME,
                        "tax_code" => TAX_CODE,
                        "spec" => SPEC,
                        "unit" => UNIT,
                        "quantity" => QUANTITY,
                        "unit_price" => PRICE,
                        "amount" => AMOUNT,
                        "tax_rate" => RATE,
                        "treatment" => TREATMENT,
                        _ => SERIAL,
                    };
                    return (DETAIL, *row, column);
                }
            }
        }
        match field {
            "kind" => basic(KIND),
            "price_includes_tax" => basic(INCLUDES_TAX),
            "buyer.name" | "buyer" => basic(BUYER_NAME),
            "buyer.tax_id" => basic(BUYER_TAX_ID),
            "buyer.address" => basic(BUYER_ADDRESS),
            "buyer.bank" => basic(BUYER_BANK),
            "remarks" => basic(REMARKS),
            "issuer" => basic(ISSUER),
            _ => basic(SERIAL),
        }
    }

    /// A refusal of the draft's `field`, placed at its cell.
    pub fn problem(&self, code: Code, field: &str, message: String) -> Problem {
        let (sheet, row, column) = self.place(field);
        Problem {
            sheet: sheet.to_string(),
            row,
            column: column.to_string(),
            code,
            message,
        }
    }

    pub fn field_problem(&self, e: &FieldError, lang: Lang) -> Problem {
        self.problem(e.code, &e.field, e.text(lang).to_string())
    }
}

/// What a workbook holds: its invoices in 基本信息 order (a serial found only on 明细
/// comes after them, with its problem), or the problems that keep it from being read at
/// all (no such sheet, no header row, a required column missing).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub invoices: Vec<BatchInvoice>,
}

/// The cells of one row by header.
struct Row<'a> {
    sheet: &'static str,
    /// As Excel numbers it.
    row: u32,
    cells: BTreeMap<&'static str, &'a Cell>,
}

impl Row<'_> {
    fn problem(&self, column: &str, code: Code, msg: Msg, lang: Lang) -> Problem {
        Problem {
            sheet: self.sheet.to_string(),
            row: self.row,
            column: column.to_string(),
            code,
            message: msg.text(lang),
        }
    }

    /// `column` is empty and must not be.
    fn missing(&self, column: &'static str, lang: Lang) -> Problem {
        self.problem(
            column,
            Code::MissingField,
            Msg::new("missing_field-cell").arg("column", column),
            lang,
        )
    }

    /// A text cell's text (a number as shown); "" when empty. Booleans, dates and errors
    /// are problems.
    fn text(&self, column: &'static str, problems: &mut Vec<Problem>, lang: Lang) -> String {
        match self.cells.get(column) {
            None => String::new(),
            Some(Cell::Text(t)) | Some(Cell::Number(t)) => t.clone(),
            Some(Cell::Other { kind, shown }) => {
                problems.push(
                    self.problem(
                        column,
                        Code::InvalidCell,
                        Msg::new("invalid_cell-type")
                            .arg("kind", *kind)
                            .arg("value", shown.as_str()),
                        lang,
                    ),
                );
                String::new()
            }
        }
    }

    /// A digit string that must not pass through a double (a tax code's 19 digits): a
    /// numeric cell is a problem, since Excel keeps only 15 digits of a number.
    fn digits(&self, column: &'static str, problems: &mut Vec<Problem>, lang: Lang) -> String {
        if let Some(Cell::Number(shown)) = self.cells.get(column) {
            if shown.len() > 15 {
                problems.push(self.problem(
                    column,
                    Code::InvalidCell,
                    Msg::new("invalid_cell-digits").arg("value", shown.as_str()),
                    lang,
                ));
                return String::new();
            }
        }
        self.text(column, problems, lang)
    }

    /// A decimal cell: None when empty (or a problem was recorded).
    fn decimal(
        &self,
        column: &'static str,
        problems: &mut Vec<Problem>,
        lang: Lang,
    ) -> Option<Decimal> {
        let raw = self.text(column, problems, lang);
        let t: String = raw.chars().filter(|c| *c != ',' && *c != '，').collect();
        if t.is_empty() {
            return None;
        }
        match parse_decimal(&t, 28) {
            Ok(d) => Some(d),
            Err(_) => {
                problems.push(self.problem(
                    column,
                    Code::InvalidCell,
                    Msg::new("invalid_cell-number").arg("value", raw.as_str()),
                    lang,
                ));
                None
            }
        }
    }
}

fn rows_of<'a>(
    table: &Table<'a>,
    sheet: &'static str,
    columns: &[(&'static str, bool)],
) -> Vec<Row<'a>> {
    table
        .rows()
        .into_iter()
        .map(|(row, by_col)| Row {
            sheet,
            row: row.saturating_add(1),
            cells: columns
                .iter()
                .filter_map(|(name, _)| {
                    let col = table.columns.get(*name)?;
                    Some((*name, *by_col.get(col)?))
                })
                .collect(),
        })
        .collect()
}

/// The serial's cells as written, for the digest: each known column's text by header.
fn content(row: &Row<'_>) -> Vec<(&'static str, String)> {
    row.cells
        .iter()
        .map(|(k, v)| (*k, v.text().to_string()))
        .collect()
}

/// Reads a workbook in the template's layout. `Err` holds the problems that keep the
/// workbook from being read at all; otherwise each invoice carries its own.
pub fn read_batch(book: &Book, defaults: &Defaults, lang: Lang) -> Result<Batch, Vec<Problem>> {
    let mut fatal = Vec::new();
    let mut tables = Vec::new();
    for (name, columns) in [(BASIC, &BASIC_COLUMNS[..]), (DETAIL, &DETAIL_COLUMNS[..])] {
        let Some(sheet) = book.sheet(name) else {
            fatal.push(Problem {
                sheet: name.to_string(),
                row: 0,
                column: String::new(),
                code: Code::InvalidWorkbook,
                message: Msg::new("invalid_workbook-sheet")
                    .arg("sheet", name)
                    .text(lang),
            });
            continue;
        };
        match Table::find(sheet, SERIAL, HEADER_WITHIN, lang) {
            Ok(table) => {
                let required: Vec<&str> = columns
                    .iter()
                    .filter(|(_, req)| *req)
                    .map(|(c, _)| *c)
                    .collect();
                fatal.extend(table.require(&required, lang));
                tables.push(table);
            }
            Err(p) => fatal.push(p),
        }
    }
    if !fatal.is_empty() {
        return Err(fatal);
    }
    let basic_rows = rows_of(&tables[0], BASIC, &BASIC_COLUMNS);
    let detail_rows = rows_of(&tables[1], DETAIL, &DETAIL_COLUMNS);

    // Lines by serial, in sheet order.
    let mut lines: BTreeMap<String, Vec<&Row<'_>>> = BTreeMap::new();
    let mut line_problems: BTreeMap<String, Vec<Problem>> = BTreeMap::new();
    for row in &detail_rows {
        let mut problems = Vec::new();
        let serial = row.digits(SERIAL, &mut problems, lang);
        if serial.is_empty() {
            // A row with cells but no serial belongs to no invoice: said on that row.
            let mut p = problems;
            p.push(row.missing(SERIAL, lang));
            line_problems.entry(String::new()).or_default().extend(p);
            continue;
        }
        lines.entry(serial.clone()).or_default().push(row);
    }

    let mut batch = Batch::default();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for row in &basic_rows {
        let mut problems = Vec::new();
        let serial = row.digits(SERIAL, &mut problems, lang);
        if serial.is_empty() {
            problems.push(row.missing(SERIAL, lang));
        } else if serial.chars().count() > MAX_SERIAL_CHARS {
            problems.push(row.problem(
                SERIAL,
                Code::TooLong,
                Msg::new("too_long-serial").arg("max", MAX_SERIAL_CHARS as u64),
                lang,
            ));
        }
        if let Some(first) = seen.get(&serial).filter(|_| !serial.is_empty()) {
            problems.push(
                row.problem(
                    SERIAL,
                    Code::SerialConflict,
                    Msg::new("serial_conflict-duplicate")
                        .arg("serial", serial.as_str())
                        .arg("row", *first as u64),
                    lang,
                ),
            );
            batch.invoices.push(BatchInvoice {
                serial,
                draft: None,
                email: None,
                digest: String::new(),
                problems,
                placed: Placed {
                    basic_row: row.row,
                    line_rows: Vec::new(),
                },
            });
            continue;
        }
        seen.insert(serial.clone(), row.row);
        let its_lines = if serial.is_empty() {
            Vec::new()
        } else {
            lines.remove(&serial).unwrap_or_default()
        };
        batch.invoices.push(read_invoice(
            serial, row, &its_lines, defaults, problems, lang,
        ));
    }
    // Lines whose serial has no 基本信息 row.
    for (serial, rows) in lines {
        let problems = rows
            .iter()
            .take(1)
            .map(|r| {
                r.problem(
                    SERIAL,
                    Code::MissingField,
                    Msg::new("missing_field-serial-basic").arg("serial", serial.as_str()),
                    lang,
                )
            })
            .collect();
        batch.invoices.push(BatchInvoice {
            serial,
            draft: None,
            email: None,
            digest: String::new(),
            problems,
            placed: Placed {
                basic_row: 0,
                line_rows: rows.iter().map(|r| r.row).collect(),
            },
        });
    }
    if let Some(problems) = line_problems.remove("") {
        // Detail rows without a serial: reported under an invoice of their own, serial "".
        batch.invoices.push(BatchInvoice {
            serial: String::new(),
            draft: None,
            email: None,
            digest: String::new(),
            problems,
            placed: Placed::default(),
        });
    }
    Ok(batch)
}

/// A 发票类型 cell as a kind: "ordinary" or "special"; None when it is neither.
pub fn kind_of(text: &str) -> Option<&'static str> {
    match text.trim() {
        "普通发票" | "增值税普通发票" | "电子发票（普通发票）" | "ordinary" => {
            Some("ordinary")
        }
        "增值税专用发票" | "专用发票" | "电子发票（增值税专用发票）" | "special" => {
            Some("special")
        }
        _ => None,
    }
}

/// A 是否含税 cell: 是 true, 否 or empty false; None when it is neither.
pub fn yes_no(text: &str) -> Option<bool> {
    match text.trim() {
        "是" | "含税" | "Y" | "y" | "1" => Some(true),
        "否" | "不含税" | "N" | "n" | "0" | "" => Some(false),
        _ => None,
    }
}

/// A 免税类型 cell as a treatment ("" for standard); None when it is not one.
pub fn treatment_of(text: &str) -> Option<&'static str> {
    match text.trim() {
        "" => Some(""),
        t => TREATMENTS
            .iter()
            .find(|(zh, en)| *zh == t || *en == t)
            .map(|(_, en)| *en),
    }
}

/// Two cells joined with a space (地址 and 电话, 开户银行 and 账户).
pub fn join(a: String, b: String) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b,
        (_, true) => a,
        _ => format!("{a} {b}"),
    }
}

fn read_invoice(
    serial: String,
    row: &Row<'_>,
    line_rows: &[&Row<'_>],
    defaults: &Defaults,
    mut problems: Vec<Problem>,
    lang: Lang,
) -> BatchInvoice {
    let p = &mut problems;
    let kind_text = row.text(KIND, p, lang);
    let kind = if kind_text.is_empty() {
        if defaults.kind.is_empty() {
            "ordinary".to_string()
        } else {
            defaults.kind.clone()
        }
    } else {
        match kind_of(&kind_text) {
            Some(k) => k.to_string(),
            None => {
                p.push(row.problem(
                    KIND,
                    Code::InvalidKind,
                    Msg::new("invalid_kind-sheet").arg("value", kind_text.as_str()),
                    lang,
                ));
                String::new()
            }
        }
    };
    let includes = row.text(INCLUDES_TAX, p, lang);
    let price_includes_tax = match yes_no(&includes) {
        Some(b) => b,
        None => {
            p.push(row.problem(
                INCLUDES_TAX,
                Code::InvalidCell,
                Msg::new("invalid_cell-yes-no").arg("value", includes.as_str()),
                lang,
            ));
            false
        }
    };
    let buyer = Party {
        name: row.text(BUYER_NAME, p, lang),
        tax_id: row.digits(BUYER_TAX_ID, p, lang),
        address: join(
            row.text(BUYER_ADDRESS, p, lang),
            row.digits(BUYER_PHONE, p, lang),
        ),
        bank: join(
            row.text(BUYER_BANK, p, lang),
            row.digits(BUYER_ACCOUNT, p, lang),
        ),
    };
    let remarks = row.text(REMARKS, p, lang);
    let email = Some(row.text(BUYER_EMAIL, p, lang)).filter(|e| !e.is_empty());
    let issuer = Some(row.text(ISSUER, p, lang))
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| defaults.issuer.clone());

    let mut lines = Vec::new();
    for line in line_rows {
        lines.push(read_line(line, p, lang));
    }
    if line_rows.is_empty() && !serial.is_empty() {
        p.push(row.problem(
            SERIAL,
            Code::LineCount,
            Msg::new("line_count-sheet").arg("serial", serial.as_str()),
            lang,
        ));
    }

    let mut written: Vec<Vec<(&str, String)>> = vec![content(row)];
    written.extend(line_rows.iter().map(|r| content(r)));
    let digest = hex::encode(Sha256::digest(
        serde_json::to_vec(&written).unwrap_or_default(),
    ));
    let draft = problems.is_empty().then(|| Draft {
        kind,
        buyer,
        lines,
        price_includes_tax,
        original: None,
        remarks,
        issuer,
        credit_reason: None,
    });
    BatchInvoice {
        serial,
        draft,
        email,
        digest,
        problems,
        placed: Placed {
            basic_row: row.row,
            line_rows: line_rows.iter().map(|r| r.row).collect(),
        },
    }
}

/// One 明细 row as a draft line. 金额 with no 单价 gives the price (quantity 1 when 数量
/// is empty too); given both, they must agree within 0.01 (SPEC 2's line tolerance). With
/// 是否含税 = 是, 金额 and 单价 both include the tax.
fn read_line(row: &Row<'_>, p: &mut Vec<Problem>, lang: Lang) -> DraftLine {
    let name = row.text(NAME, p, lang);
    if name.is_empty() {
        p.push(row.missing(NAME, lang));
    }
    let quantity = row.decimal(QUANTITY, p, lang);
    let price = row.decimal(PRICE, p, lang);
    let amount = row.decimal(AMOUNT, p, lang);
    let before = p.len();
    let (quantity, price) = match (quantity, price, amount) {
        (None, None, Some(a)) => (Some(Decimal::ONE), Some(a)),
        (Some(q), None, Some(a)) => {
            if q.is_zero() {
                p.push(row.problem(
                    QUANTITY,
                    Code::InvalidQuantity,
                    Msg::new("invalid_quantity-zero"),
                    lang,
                ));
                (Some(q), None)
            } else {
                (Some(q), a.checked_div(q).map(|x| round(x, 8)))
            }
        }
        (Some(q), Some(u), Some(a)) => {
            let product = q.checked_mul(u).map(|x| round(x, 2));
            let apart = product.and_then(|x| x.checked_sub(a)).map(|d| d.abs());
            if apart.is_none_or(|d| d > Decimal::new(1, 2)) {
                p.push(
                    row.problem(
                        AMOUNT,
                        Code::InvalidAmount,
                        Msg::new("invalid_amount-mismatch")
                            .arg("amount", decimal_string(a))
                            .arg(
                                "product",
                                product.map(decimal_string).unwrap_or_else(|| "?".into()),
                            ),
                        lang,
                    ),
                );
            }
            (Some(q), Some(u))
        }
        (Some(q), Some(u), None) => (Some(q), Some(u)),
        (None, Some(_), _) => {
            p.push(row.missing(QUANTITY, lang));
            (None, None)
        }
        (Some(_), None, None) | (None, None, None) => {
            // Nothing to price the line by (unless a cell above was already refused).
            if p.len() == before {
                p.push(row.problem(
                    AMOUNT,
                    Code::MissingField,
                    Msg::new("missing_field-amount"),
                    lang,
                ));
            }
            (None, None)
        }
    };
    let rate_text = row.text(RATE, p, lang);
    let tax_rate = rate(&rate_text);
    if rate_text.is_empty() {
        p.push(row.missing(RATE, lang));
    }
    let treatment_text = row.text(TREATMENT, p, lang);
    let treatment = match treatment_of(&treatment_text) {
        Some(t) => t.to_string(),
        None => {
            p.push(row.problem(
                TREATMENT,
                Code::InvalidTreatment,
                Msg::new("invalid_treatment-sheet").arg("value", treatment_text.as_str()),
                lang,
            ));
            String::new()
        }
    };
    DraftLine {
        name,
        tax_code: row.digits(TAX_CODE, p, lang),
        spec: row.text(SPEC, p, lang),
        unit: row.text(UNIT, p, lang),
        quantity: quantity.map(decimal_string).unwrap_or_default(),
        unit_price: price.map(decimal_string).unwrap_or_default(),
        tax_rate,
        treatment,
    }
}

/// A 税率 cell as the draft's rate: "13%" and "0.13" both read "0.13"; "0%" reads "0".
/// What is not a rate is passed on as written, for the draft's own check to name.
pub fn rate(text: &str) -> String {
    let t = text.trim();
    let parsed = match t.strip_suffix('%').or_else(|| t.strip_suffix('％')) {
        Some(pct) => parse_decimal(pct.trim(), 8)
            .ok()
            .and_then(|d| d.checked_div(Decimal::ONE_HUNDRED)),
        None => parse_decimal(t, 8).ok(),
    };
    match parsed {
        Some(d) => decimal_string(d),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_percent_or_fraction() {
        assert_eq!(rate("13%"), "0.13");
        assert_eq!(rate("0.13"), "0.13");
        assert_eq!(rate("1.5%"), "0.015");
        assert_eq!(rate("0%"), "0");
        assert_eq!(rate("0"), "0");
        assert_eq!(rate("7%"), "0.07");
        assert_eq!(rate("abc"), "abc");
    }

    /// A book from rows of text cells ("#" before a value makes it a number cell).
    fn book(sheets: &[(&str, &[&[&str]])]) -> crate::book::Book {
        let mut book = crate::book::Book::default();
        for (name, rows) in sheets {
            let mut sheet = crate::book::Sheet {
                name: name.to_string(),
                ..Default::default()
            };
            for (r, row) in rows.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    if v.is_empty() {
                        continue;
                    }
                    let cell = match v.strip_prefix('#') {
                        Some(n) => Cell::Number(n.to_string()),
                        None => Cell::Text(v.to_string()),
                    };
                    sheet.cells.insert((r as u32, c as u32), cell);
                }
            }
            book.sheets.push(sheet);
        }
        book
    }

    #[test]
    fn huge_amounts_and_long_numeric_serials_are_problems_not_panics() {
        let b = book(&[
            (
                BASIC,
                &[
                    &[SERIAL, KIND, INCLUDES_TAX, BUYER_NAME],
                    &["A", "普通发票", "否", "甲"],
                    &["#1234567890123456789", "普通发票", "否", "乙"],
                ],
            ),
            (
                DETAIL,
                &[
                    &[SERIAL, NAME, QUANTITY, PRICE, AMOUNT, RATE],
                    &[
                        "A",
                        "*a*b",
                        "#1",
                        "79228162514264337593543950335",
                        "#-1",
                        "13%",
                    ],
                ],
            ),
        ]);
        let batch = read_batch(&b, &Defaults::default(), Lang::En).expect("read");
        let a = &batch.invoices[0];
        assert_eq!(a.problems[0].code, Code::InvalidAmount, "{:?}", a.problems);
        assert_eq!(
            (a.problems[0].row, a.problems[0].column.as_str()),
            (2, AMOUNT)
        );
        let long = &batch.invoices[1];
        assert_eq!(
            long.problems[0].code,
            Code::InvalidCell,
            "{:?}",
            long.problems
        );
        assert_eq!(long.problems[0].column, SERIAL);
    }

    #[test]
    fn fields_are_placed_at_their_cells() {
        let placed = Placed {
            basic_row: 4,
            line_rows: vec![5, 9],
        };
        assert_eq!(placed.place("buyer.tax_id"), (BASIC, 4, BUYER_TAX_ID));
        assert_eq!(placed.place("lines[1].tax_rate"), (DETAIL, 9, RATE));
        assert_eq!(placed.place("lines[0]"), (DETAIL, 5, SERIAL));
        assert_eq!(placed.place("lines[7].name"), (BASIC, 4, SERIAL));
        assert_eq!(placed.place("lines"), (BASIC, 4, SERIAL));
    }
}
