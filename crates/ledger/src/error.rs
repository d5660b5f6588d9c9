//! The ledger's errors, each with a stable code, the field it concerns and a message in
//! the clerk's language.

use kaipiao_core::{FieldError, Lang};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Bad input or a refused limit (exit 2): names the field.
    #[error("{0}")]
    Invalid(FieldError),
    #[error("this data directory has no device yet; run `kaipiao init` first")]
    NotInitialized,
    #[error("this data directory already has a device")]
    AlreadyInitialized,
    #[error("the device is not enrolled with an authority; run `kaipiao enroll` first")]
    NotEnrolled,
    #[error("no invoice numbers left; connect to the authority and sync to get a new lease")]
    NoNumbers,
    /// Chain, hash, signature or receipt check failed (exit 4).
    #[error("integrity failure at seq {seq}: {what}")]
    Integrity { seq: u64, what: String },
    /// A receipt that does not verify or does not match its invoice; not stored.
    #[error("receipt refused: {0}")]
    BadReceipt(String),
    #[error("device key: {0}")]
    Key(String),
    #[error("no invoice {0} in this ledger")]
    NotFound(String),
    #[error("another process is syncing this data directory")]
    Busy,
    #[error("the ledger was written by a newer Kaipiao (schema {found}, this program knows {known}); update Kaipiao")]
    TooNew { found: i64, known: i64 },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

impl From<FieldError> for LedgerError {
    fn from(e: FieldError) -> Self {
        LedgerError::Invalid(e)
    }
}

impl LedgerError {
    /// Stable code for the UI and `--json` output.
    pub fn code(&self) -> &str {
        match self {
            LedgerError::Invalid(e) => &e.code,
            LedgerError::NotInitialized => "not_initialized",
            LedgerError::AlreadyInitialized => "already_initialized",
            LedgerError::NotEnrolled => "not_enrolled",
            LedgerError::NoNumbers => "no_numbers",
            LedgerError::Integrity { .. } => "integrity",
            LedgerError::BadReceipt(_) => "bad_receipt",
            LedgerError::Key(_) => "key",
            LedgerError::NotFound(_) => "not_found",
            LedgerError::Busy => "busy",
            LedgerError::TooNew { .. } => "schema_too_new",
            LedgerError::Sqlite(_) => "database",
            LedgerError::Io(_) => "io",
        }
    }

    pub fn field(&self) -> &str {
        match self {
            LedgerError::Invalid(e) => &e.field,
            _ => "",
        }
    }

    /// The CLI exit code of SPEC 9 for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            LedgerError::Invalid(_)
            | LedgerError::NoNumbers
            | LedgerError::NotInitialized
            | LedgerError::AlreadyInitialized
            | LedgerError::NotEnrolled
            | LedgerError::NotFound(_) => 2,
            LedgerError::Integrity { .. } => 4,
            _ => 1,
        }
    }

    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (LedgerError::Invalid(e), _) => e.message(lang),
            (LedgerError::NotInitialized, Lang::Zh) => "此数据目录尚未设置设备，请先运行 `kaipiao init`".into(),
            (LedgerError::AlreadyInitialized, Lang::Zh) => "此数据目录已设置设备".into(),
            (LedgerError::NotEnrolled, Lang::Zh) => "设备尚未向税务机关登记，请先运行 `kaipiao enroll`".into(),
            (LedgerError::NoNumbers, Lang::Zh) => "发票号码已用完，请联网同步以领取新的号码段".into(),
            (LedgerError::Integrity { seq, what }, Lang::Zh) => format!("第 {seq} 张发票完整性校验失败：{what}"),
            (LedgerError::BadReceipt(w), Lang::Zh) => format!("回执无效，未保存：{w}"),
            (LedgerError::Key(w), Lang::Zh) => format!("设备密钥：{w}"),
            (LedgerError::NotFound(n), Lang::Zh) => format!("账本中没有发票 {n}"),
            (LedgerError::Busy, Lang::Zh) => "另一个进程正在同步此数据目录".into(),
            (LedgerError::TooNew { found, known }, Lang::Zh) => format!("账本由更新版本的 Kaipiao 写入（结构版本 {found}，本程序支持 {known}），请升级 Kaipiao"),
            (e, _) => e.to_string(),
        }
    }
}
