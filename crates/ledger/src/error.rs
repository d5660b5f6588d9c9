//! The ledger's errors, each with a stable code, the field it concerns and a message in
//! the clerk's language.

use kaipiao_core::{Code, FieldError, Lang};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Bad input or a refused limit (exit 2): names the field.
    #[error("{0}")]
    Invalid(FieldError),
    #[error("this data directory has no device yet")]
    NotInitialized,
    #[error("this data directory already has a device")]
    AlreadyInitialized,
    #[error("the device is not enrolled with an authority")]
    NotEnrolled,
    #[error("no invoice numbers left; connect to the authority and sync to get a new lease")]
    NoNumbers,
    /// Chain, hash, signature or receipt check failed (exit 4).
    #[error("integrity failure at seq {seq}: {what}")]
    Integrity { seq: u64, what: String },
    /// The authority key pinned at enrolment is stored but cannot be read as a key: the
    /// device row was damaged or edited, so no receipt or lease can be checked (exit 4).
    #[error("the authority key pinned at enrolment cannot be read ({0}): the device record in this ledger was damaged or edited, and receipts and leases cannot be checked until the data directory is restored from a backup")]
    PinnedKeyUnreadable(String),
    /// The storage cannot give the durability the ledger needs (WAL mode refused); nothing
    /// was written (exit 1).
    #[error("the storage cannot keep the ledger safe: {0}; keep the data directory on a local disk (not a network share or a read-only medium) and try again")]
    Storage(String),
    /// A receipt that does not verify or does not match its invoice; not stored.
    #[error("receipt refused: {0}")]
    BadReceipt(String),
    #[error("device key: {0}")]
    Key(String),
    /// The passphrase does not open the sealed device key.
    #[error("wrong passphrase for the device key; check it (or KAIPIAO_PASSPHRASE) and try again")]
    WrongPassphrase,
    #[error("no invoice {0} in this ledger")]
    NotFound(String),
    /// No alert with this id, or it was already dismissed (exit 2, code `not_found`).
    #[error("no alert {0}")]
    AlertNotFound(i64),
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
    pub fn code(&self) -> Code {
        match self {
            LedgerError::Invalid(e) => e.code,
            LedgerError::NotInitialized => Code::NotInitialized,
            LedgerError::AlreadyInitialized => Code::AlreadyInitialized,
            LedgerError::NotEnrolled => Code::NotEnrolled,
            LedgerError::NoNumbers => Code::NoNumbers,
            LedgerError::Integrity { .. } => Code::Integrity,
            LedgerError::PinnedKeyUnreadable(_) => Code::PinnedKeyUnreadable,
            LedgerError::Storage(_) => Code::Storage,
            LedgerError::BadReceipt(_) => Code::BadReceipt,
            LedgerError::Key(_) => Code::Key,
            LedgerError::WrongPassphrase => Code::WrongPassphrase,
            LedgerError::NotFound(_) | LedgerError::AlertNotFound(_) => Code::NotFound,
            LedgerError::Busy => Code::Busy,
            LedgerError::TooNew { .. } => Code::SchemaTooNew,
            LedgerError::Sqlite(_) => Code::Database,
            LedgerError::Io(_) => Code::Io,
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
            | LedgerError::NotFound(_)
            | LedgerError::AlertNotFound(_) => 2,
            LedgerError::Integrity { .. } | LedgerError::PinnedKeyUnreadable(_) => 4,
            _ => 1,
        }
    }

    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (LedgerError::Invalid(e), _) => e.message(lang),
            (LedgerError::NotInitialized, Lang::Zh) => "此数据目录尚未设置设备".into(),
            (LedgerError::AlreadyInitialized, Lang::Zh) => "此数据目录已设置设备".into(),
            (LedgerError::NotEnrolled, Lang::Zh) => "设备尚未向税务机关登记".into(),
            (LedgerError::NoNumbers, Lang::Zh) => "发票号码已用完，请联网同步以领取新的号码段".into(),
            (LedgerError::Integrity { seq, what }, Lang::Zh) => format!("第 {seq} 张发票完整性校验失败：{what}"),
            (LedgerError::PinnedKeyUnreadable(w), Lang::Zh) => format!("无法读取登记时固定的税务机关公钥（{w}）：账本中的设备记录已损坏或被改动，在从备份恢复数据目录之前无法校验回执和号码段"),
            (LedgerError::Storage(w), Lang::Zh) => format!("存储无法保证账本安全：{w}；请将数据目录放在本机磁盘上（不要放在网络共享或只读介质上）后重试"),
            (LedgerError::BadReceipt(w), Lang::Zh) => format!("回执无效，未保存：{w}"),
            (LedgerError::Key(w), Lang::Zh) => format!("设备密钥：{w}"),
            (LedgerError::WrongPassphrase, Lang::Zh) => "设备密钥口令不正确，请核对口令（或 KAIPIAO_PASSPHRASE）后重试".into(),
            (LedgerError::NotFound(n), Lang::Zh) => format!("账本中没有发票 {n}"),
            (LedgerError::AlertNotFound(id), Lang::Zh) => format!("没有编号为 {id} 的警报"),
            (LedgerError::Busy, Lang::Zh) => "另一个进程正在同步此数据目录".into(),
            (LedgerError::TooNew { found, known }, Lang::Zh) => format!("账本由更新版本的 Kaipiao 写入（结构版本 {found}，本程序支持 {known}），请升级 Kaipiao"),
            (e, _) => e.to_string(),
        }
    }
}
