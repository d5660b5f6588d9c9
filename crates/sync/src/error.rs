//! The sync engine's errors: each with a stable `code` the UI branches on, the `field` it
//! concerns and the CLI exit code of SPEC 9.
//!
//! These are what make a call fail outright (nothing could be attempted, the ledger could
//! not be written, enrolment was refused). A sync run that reached the authority but could
//! not finish reports that in [`crate::SyncOutcome`] instead, so its counts survive.

use kaipiao_core::{Code, Lang};
use kaipiao_ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// No endpoint served the request before the call gave up: transport errors,
    /// timeouts, 5xx, or refusals for overload waited out until the deadline.
    #[error("the tax authority could not be reached: {0}")]
    Http(String),
    /// The authority answered with an error: one that retrying will not fix, or a
    /// refusal for overload ([`SyncError::is_overload_refusal`]: 429, 503 `overloaded`)
    /// from a call that does not wait (a health probe).
    #[error("the tax authority refused the request ({status} {sent_code}): {message}")]
    Authority {
        status: u16,
        /// The authority's code as one of ours; [`Code::Unrecognized`] for a code we do
        /// not know (from a newer or another authority) or none.
        code: Code,
        /// The code exactly as the authority sent it ("" when its answer had none): what
        /// the messages quote, so an unknown code still reaches a person.
        sent_code: String,
        message: String,
        field: String,
    },
    /// The authority's answer did not have the shape of SPEC 7.
    #[error("the tax authority sent an unexpected answer: {0}")]
    InvalidResponse(String),
    /// A server URL that is not `http://` or `https://` with a host.
    #[error("invalid server address {url:?}: {reason}")]
    InvalidServer { url: String, reason: String },
    #[error("no tax authority server is configured; enrol the device with a server address first")]
    NoServers,
    #[error("this device is already enrolled as {device_id}")]
    AlreadyEnrolled { device_id: String },
    /// Two answers that should name the same authority key do not: possibly a wrong or
    /// impersonated server. Nothing was recorded.
    #[error("the authority key of {endpoint} ({found}) does not match {expected}; check the server addresses")]
    AuthorityKeyMismatch {
        endpoint: String,
        expected: String,
        found: String,
    },
    /// The unsealed key is not the one the ledger's device was set up with.
    #[error("the device key does not match this ledger's device")]
    WrongKey,
}

impl SyncError {
    /// The authority's refusal, its code read into ours.
    pub fn authority(
        status: u16,
        sent_code: impl Into<String>,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> SyncError {
        let sent_code = sent_code.into();
        SyncError::Authority {
            status,
            code: Code::parse(&sent_code).unwrap_or(Code::Unrecognized),
            sent_code,
            message: message.into(),
            field: field.into(),
        }
    }

    /// Stable code for the UI and `--json` output.
    pub fn code(&self) -> Code {
        match self {
            SyncError::Ledger(e) => e.code(),
            SyncError::Http(_) => Code::Unreachable,
            SyncError::Authority { code, .. } => *code,
            SyncError::InvalidResponse(_) => Code::InvalidResponse,
            SyncError::InvalidServer { .. } => Code::InvalidServer,
            SyncError::NoServers => Code::NoServers,
            SyncError::AlreadyEnrolled { .. } => Code::AlreadyEnrolled,
            SyncError::AuthorityKeyMismatch { .. } => Code::AuthorityKeyMismatch,
            SyncError::WrongKey => Code::WrongKey,
        }
    }

    /// The authority refused the request for overload (429, or 503 `overloaded`:
    /// [`crate::is_overload_refusal`]): it is there and answering, only busy; no outage.
    pub fn is_overload_refusal(&self) -> bool {
        matches!(self, SyncError::Authority { status, code, .. }
            if crate::is_overload_refusal(*status, code.as_str()))
    }

    /// The input field the error concerns, "" when none.
    pub fn field(&self) -> &str {
        match self {
            SyncError::Ledger(e) => e.field(),
            SyncError::Authority { field, .. } => field,
            SyncError::InvalidServer { .. } | SyncError::NoServers => "server",
            _ => "",
        }
    }

    /// SPEC 9: 2 invalid input or refused, 3 transient, 4 integrity, 1 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            SyncError::Ledger(e) => e.exit_code(),
            SyncError::Http(_) => 3,
            SyncError::Authority { status, code, .. } => match (*status, *code) {
                (_, Code::Integrity | Code::IdempotencyKeyReused) => 4,
                (401, _) => 4,
                (429, _) | (500..=599, _) | (409, Code::RequestInProgress) => 3,
                (400..=499, _) => 2,
                _ => 1,
            },
            SyncError::InvalidResponse(_) => 1,
            SyncError::InvalidServer { .. } | SyncError::NoServers => 2,
            SyncError::AlreadyEnrolled { .. } => 2,
            SyncError::AuthorityKeyMismatch { .. } | SyncError::WrongKey => 4,
        }
    }

    /// The message in the clerk's language.
    pub fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (SyncError::Ledger(e), _) => e.message(lang),
            // Refusals a clerk meets and can act on, in their words (both front ends).
            (
                SyncError::Authority {
                    code: Code::EnrollmentTokenInvalid,
                    ..
                },
                _,
            ) => lang
                .pick(
                    "税务机关不接受此登记令牌，请核对后重新输入",
                    "The tax authority did not accept this enrolment token; check it and type it again",
                )
                .into(),
            (SyncError::Http(w), Lang::Zh) => format!("无法连接税务机关：{w}"),
            (
                SyncError::Authority {
                    sent_code, message, ..
                },
                Lang::Zh,
            ) => {
                format!("税务机关拒绝了请求（{sent_code}）：{message}")
            }
            (SyncError::InvalidResponse(w), Lang::Zh) => {
                format!("税务机关返回了无法识别的应答：{w}")
            }
            (SyncError::InvalidServer { url, reason }, Lang::Zh) => {
                format!("服务器地址 {url:?} 无效：{reason}")
            }
            (SyncError::NoServers, Lang::Zh) => {
                "尚未配置税务机关服务器，请先用服务器地址登记设备".into()
            }
            (SyncError::AlreadyEnrolled { device_id }, Lang::Zh) => {
                format!("本设备已登记，设备编号 {device_id}")
            }
            (SyncError::AuthorityKeyMismatch { endpoint, .. }, Lang::Zh) => {
                format!("{endpoint} 的税务机关公钥与已登记的不一致，请核对服务器地址")
            }
            (SyncError::WrongKey, Lang::Zh) => "设备密钥与本账本的设备不一致".into(),
            (e, _) => e.to_string(),
        }
    }
}
