//! The sync engine's errors: each with a stable `code` the UI branches on, the `field` it
//! concerns and the CLI exit code of SPEC 9.
//!
//! These are what make a call fail outright (nothing could be attempted, the ledger could
//! not be written, enrolment was refused). A sync run that reached the authority but could
//! not finish reports that in [`crate::SyncOutcome`] instead, so its counts survive.

use kaipiao_core::{Code, Lang, Msg};
use kaipiao_ledger::LedgerError;

#[derive(Debug)]
pub enum SyncError {
    Ledger(LedgerError),
    /// No endpoint served the request before the call gave up: transport errors,
    /// timeouts, 5xx, or refusals for overload waited out until the deadline.
    Http(String),
    /// The authority answered with an error: one that retrying will not fix, or a
    /// refusal for overload ([`SyncError::is_overload_refusal`]: 429, 503 `overloaded`)
    /// from a call that does not wait (a health probe).
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
    InvalidResponse(String),
    /// A server URL that is not `http://` or `https://` with a host.
    InvalidServer {
        url: String,
        reason: String,
    },
    NoServers,
    AlreadyEnrolled {
        device_id: String,
    },
    /// Two answers that should name the same authority key do not: possibly a wrong or
    /// impersonated server. Nothing was recorded.
    AuthorityKeyMismatch {
        endpoint: String,
        expected: String,
        found: String,
    },
    /// The unsealed key is not the one the ledger's device was set up with.
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
        match self {
            SyncError::Ledger(e) => e.message(lang),
            // Refusals a clerk meets and can act on, in their words (both front ends).
            SyncError::Authority {
                code: Code::EnrollmentTokenInvalid,
                ..
            } => Msg::new("enrollment_token_invalid").text(lang),
            other => other.msg().text(lang),
        }
    }

    /// What happened, as an id of `crates/core/locales` and its arguments.
    pub fn msg(&self) -> Msg {
        match self {
            SyncError::Ledger(e) => e.msg(),
            SyncError::Http(why) => Msg::new("unreachable").arg("why", why),
            SyncError::Authority {
                status,
                sent_code,
                message,
                ..
            } => Msg::new("refused")
                .arg("status", u32::from(*status))
                .arg("code", sent_code)
                .arg("message", message),
            SyncError::InvalidResponse(why) => Msg::new("invalid_response").arg("why", why),
            SyncError::InvalidServer { url, reason } => Msg::new("invalid_server-address")
                .arg("value", format!("{url:?}"))
                .arg("why", reason),
            SyncError::NoServers => Msg::new("no_servers"),
            SyncError::AlreadyEnrolled { device_id } => {
                Msg::new("already_enrolled").arg("device", device_id)
            }
            SyncError::AuthorityKeyMismatch {
                endpoint,
                expected,
                found,
            } => Msg::new("authority_key_mismatch")
                .arg("endpoint", endpoint)
                .arg("expected", expected)
                .arg("found", found),
            SyncError::WrongKey => Msg::new("wrong_key"),
        }
    }
}

/// The English message (for an authority's refusal, its code and message as sent).
impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Ledger(e) => std::fmt::Display::fmt(e, f),
            other => f.write_str(&other.msg().text(Lang::En)),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyncError::Ledger(e) => e.source(),
            _ => None,
        }
    }
}

impl From<LedgerError> for SyncError {
    fn from(e: LedgerError) -> Self {
        SyncError::Ledger(e)
    }
}
