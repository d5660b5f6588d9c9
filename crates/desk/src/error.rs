//! The one error shape that crosses IPC: `{code, message, field}`. The UI branches on
//! `code` and highlights `field`; `message` is already in the clerk's language.

use kaipiao_core::{Code, FieldError, Lang, Msg};
use kaipiao_ledger::LedgerError;
use kaipiao_sync::SyncError;
use serde::Serialize;
use ts_rs::TS;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskError {
    /// Stable machine code (`invalid_tax_id`, `offline_amount_exceeded`, `locked`, ...).
    pub code: Code,
    /// What happened and what to do, in the UI language.
    pub message: String,
    /// Path of the field in the request (`buyer.tax_id`, `lines[0].quantity`), "" when none.
    pub field: String,
}

impl std::fmt::Display for DeskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for DeskError {}

impl DeskError {
    pub fn new(code: Code, field: &str, message: impl Into<String>) -> DeskError {
        DeskError {
            code,
            message: message.into(),
            field: field.to_string(),
        }
    }

    /// Says `msg` (an id of `crates/core/locales` and its arguments) in the clerk's
    /// language.
    pub fn say(code: Code, field: &str, lang: Lang, msg: Msg) -> DeskError {
        DeskError::new(code, field, msg.text(lang))
    }

    /// The field's own text, without the `field:` prefix the CLI prints: the UI shows the
    /// message next to the field.
    pub fn field_error(e: &FieldError, lang: Lang) -> DeskError {
        DeskError::new(e.code, &e.field, e.text(lang))
    }

    pub fn ledger(e: &LedgerError, lang: Lang) -> DeskError {
        match e {
            LedgerError::Invalid(fe) => DeskError::field_error(fe, lang),
            LedgerError::WrongPassphrase => DeskError::say(
                Code::WrongPassphrase,
                "passphrase",
                lang,
                Msg::new("wrong_passphrase-app"),
            ),
            LedgerError::NotInitialized => DeskError::say(
                Code::NotInitialized,
                "",
                lang,
                Msg::new("not_initialized-app"),
            ),
            LedgerError::NotEnrolled => {
                DeskError::say(Code::NotEnrolled, "", lang, Msg::new("not_enrolled-app"))
            }
            other => DeskError::new(other.code(), other.field(), other.message(lang)),
        }
    }

    pub fn sync(e: &SyncError, lang: Lang) -> DeskError {
        match e {
            SyncError::Ledger(le) => DeskError::ledger(le, lang),
            SyncError::Http(_) => DeskError::new(
                Code::Unreachable,
                "servers",
                Msg::new("unreachable-app")
                    .arg("why", e.message(lang))
                    .text(lang),
            ),
            SyncError::Authority {
                code: Code::EnrollmentTokenInvalid,
                ..
            } => DeskError::new(Code::EnrollmentTokenInvalid, "token", e.message(lang)),
            other => {
                let field = match other.field() {
                    "server" => "servers",
                    f => f,
                };
                DeskError::new(other.code(), field, other.message(lang))
            }
        }
    }

    /// The device key has not been unlocked yet.
    pub fn locked(lang: Lang) -> DeskError {
        DeskError::say(Code::Locked, "passphrase", lang, Msg::new("locked"))
    }

    pub fn internal(what: impl std::fmt::Display) -> DeskError {
        DeskError::new(Code::Internal, "", what.to_string())
    }
}

pub type DeskResult<T> = Result<T, DeskError>;
