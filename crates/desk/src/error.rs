//! The one error shape that crosses IPC: `{code, message, field}`. The UI branches on
//! `code` and highlights `field`; `message` is already in the clerk's language.

use kaipiao_core::{Code, FieldError, Lang};
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

    /// Picks the message of the clerk's language.
    pub fn say(code: Code, field: &str, lang: Lang, zh: &str, en: &str) -> DeskError {
        DeskError::new(code, field, lang.pick(zh, en))
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
                "口令不正确，请重新输入设备密钥口令",
                "Wrong passphrase for the device key; type it again",
            ),
            LedgerError::NotInitialized => DeskError::say(
                Code::NotInitialized,
                "",
                lang,
                "此数据目录尚未设置设备，请先完成首次设置",
                "This data directory has no device yet; complete the first-run setup",
            ),
            LedgerError::NotEnrolled => DeskError::say(
                Code::NotEnrolled,
                "",
                lang,
                "设备尚未向税务机关登记，请先完成首次设置",
                "The device is not enrolled with the tax authority; complete the first-run setup",
            ),
            other => DeskError::new(other.code(), other.field(), other.message(lang)),
        }
    }

    pub fn sync(e: &SyncError, lang: Lang) -> DeskError {
        match e {
            SyncError::Ledger(le) => DeskError::ledger(le, lang),
            SyncError::Http(_) => DeskError::new(
                Code::Unreachable,
                "servers",
                format!(
                    "{} ({})",
                    lang.pick(
                        "无法连接税务机关服务器，请检查地址和网络后重试",
                        "The tax authority could not be reached; check the address and the network, then try again"
                    ),
                    e.message(lang)
                ),
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
        DeskError::say(
            Code::Locked,
            "passphrase",
            lang,
            "设备密钥尚未解锁，请输入口令",
            "The device key is locked; type its passphrase",
        )
    }

    pub fn internal(what: impl std::fmt::Display) -> DeskError {
        DeskError::new(Code::Internal, "", what.to_string())
    }
}

pub type DeskResult<T> = Result<T, DeskError>;
