//! Per-till defaults (issue 12, item 5): the 开票人 (issuer) and the kind a new invoice
//! starts as, set once per device. The app's entry form and `import --xlsx` start from
//! them; `kaipiao issue` takes its draft as written and never reads them.

use crate::{invalid, Ledger, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::draft::{check_text, MAX_NAME_CHARS};
use kaipiao_core::time::rfc3339;
use kaipiao_core::{Code, Msg};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TillDefaults {
    /// 开票人 for a new invoice; "" for none.
    pub issuer: String,
    /// "ordinary" or "special" (a credit note always starts from its original).
    pub kind: String,
}

impl Default for TillDefaults {
    fn default() -> Self {
        TillDefaults {
            issuer: String::new(),
            kind: "ordinary".into(),
        }
    }
}

impl Ledger {
    /// The till's defaults; the plain ones (no issuer, ordinary) until set.
    pub fn till_defaults(&self) -> Result<TillDefaults> {
        Ok(self
            .conn
            .prepare_cached("SELECT issuer, kind FROM till_defaults WHERE id = 1")?
            .query_row([], |r| {
                Ok(TillDefaults {
                    issuer: r.get(0)?,
                    kind: r.get(1)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// Sets the till's defaults, checked: the issuer as an invoice's (at most 100
    /// characters), the kind `ordinary` or `special`.
    pub fn set_till_defaults(&self, d: &TillDefaults, now: DateTime<Utc>) -> Result<TillDefaults> {
        let issuer = d.issuer.trim();
        check_text("issuer", issuer, 0, MAX_NAME_CHARS).map_err(crate::LedgerError::Invalid)?;
        let kind = d.kind.trim();
        if kind != "ordinary" && kind != "special" {
            return Err(invalid(
                Code::InvalidKind,
                "kind",
                Msg::new("invalid_kind-default").arg("value", kind),
            ));
        }
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO till_defaults (id, issuer, kind, updated_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET issuer = ?1, kind = ?2, updated_at = ?3",
            params![issuer, kind, rfc3339(now)],
        )?;
        tx.commit()?;
        self.till_defaults()
    }
}
