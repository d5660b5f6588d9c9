//! kaipiao-sheets: workbooks in and out. The tax platform's batch-issue template read
//! into drafts, every problem placed at its cell ([`batch`]); the blank template
//! ([`template`]); tables written as real XLSX or CSV for the accountant ([`write`]).
//! No ledger and no I/O beyond bytes: the application layer (kaipiao-desk) issues.

pub mod batch;
pub mod book;
pub mod catalog;
pub mod template;
pub mod write;

use kaipiao_core::Code;
use serde::Serialize;

/// A problem with a workbook, at its cell: the sheet, the row as Excel numbers it (0 for
/// the sheet or the file as a whole), the column by its header, a stable code and what to
/// do, in the clerk's language. The same shape everywhere (dry run, real run, app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub sheet: String,
    pub row: u32,
    pub column: String,
    pub code: Code,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.sheet.is_empty(), self.row) {
            (true, _) => write!(f, "{}", self.message),
            (false, 0) if self.column.is_empty() => write!(f, "{}: {}", self.sheet, self.message),
            (false, 0) => write!(f, "{} {}: {}", self.sheet, self.column, self.message),
            (false, row) => write!(
                f,
                "{}!{} {}: {}",
                self.sheet, row, self.column, self.message
            ),
        }
    }
}
