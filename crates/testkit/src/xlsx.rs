//! A second XLSX implementation for the workbook tests: Python's openpyxl
//! (`scripts/xlsx.py`), installed by `make deps`. Fixtures in the tax platform's layout are
//! written by it, and what Kaipiao writes is read back by it, so neither side checks
//! itself.

use crate::process::workspace_dir;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn python() -> Command {
    let mut cmd = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    cmd.arg(workspace_dir().join("crates/testkit/scripts/xlsx.py"));
    cmd
}

/// Writes `book` ({"sheets": [{"name", "rows": [[cell]]}]}, see the script) to `out`.
pub fn write_xlsx(out: &Path, book: &Value) {
    let mut child = python()
        .arg("write")
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 runs (make deps installs openpyxl)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(book.to_string().as_bytes())
        .expect("the book reaches the script");
    let status = child.wait().expect("the script ends");
    assert!(
        status.success(),
        "openpyxl could not write {}",
        out.display()
    );
}

/// Reads `path` with openpyxl: {"sheets": [{"name", "rows", "formats"}]}.
pub fn read_xlsx(path: &Path) -> Value {
    let out = python()
        .arg("read")
        .arg(path)
        .output()
        .expect("python3 runs (make deps installs openpyxl)");
    assert!(
        out.status.success(),
        "openpyxl could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}
