//! The ledger's errors, each with a stable code, the field it concerns and a message in
//! the clerk's language.

use kaipiao_core::{Code, FieldError, Lang, Msg};

#[derive(Debug)]
pub enum LedgerError {
    /// Bad input or a refused limit (exit 2): names the field.
    Invalid(FieldError),
    NotInitialized,
    AlreadyInitialized,
    NotEnrolled,
    NoNumbers,
    /// Chain, hash, signature or receipt check failed (exit 4).
    Integrity {
        seq: u64,
        what: String,
    },
    /// The authority key pinned at enrolment is stored but cannot be read as a key: the
    /// device row was damaged or edited, so no receipt or lease can be checked (exit 4).
    PinnedKeyUnreadable(String),
    /// The storage cannot give the durability the ledger needs (WAL mode refused); nothing
    /// was written (exit 1).
    Storage(String),
    /// A receipt that does not verify or does not match its invoice; not stored.
    BadReceipt(String),
    Key(String),
    /// The passphrase does not open the sealed device key.
    WrongPassphrase,
    NotFound(String),
    /// No alert with this id, or it was already dismissed (exit 2, code `not_found`).
    AlertNotFound(i64),
    Busy,
    TooNew {
        found: i64,
        known: i64,
    },
    Sqlite(rusqlite::Error),
    Io(std::io::Error),
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

    /// The message in the clerk's language.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            LedgerError::Invalid(e) => e.message(lang),
            other => other.msg().text(lang),
        }
    }

    /// The message as an id of `crates/core/locales` and its arguments (for
    /// [`LedgerError::Invalid`], without the field name).
    pub fn msg(&self) -> Msg {
        match self {
            LedgerError::Invalid(e) => e.message_id().clone(),
            LedgerError::NotInitialized => Msg::new("not_initialized"),
            LedgerError::AlreadyInitialized => Msg::new("already_initialized"),
            LedgerError::NotEnrolled => Msg::new("not_enrolled"),
            LedgerError::NoNumbers => Msg::new("no_numbers"),
            LedgerError::Integrity { seq, what } => {
                Msg::new("integrity").arg("seq", *seq).arg("what", what)
            }
            LedgerError::PinnedKeyUnreadable(why) => {
                Msg::new("pinned_key_unreadable").arg("why", why)
            }
            LedgerError::Storage(why) => Msg::new("storage").arg("why", why),
            LedgerError::BadReceipt(why) => Msg::new("bad_receipt").arg("why", why),
            LedgerError::Key(why) => Msg::new("key").arg("why", why),
            LedgerError::WrongPassphrase => Msg::new("wrong_passphrase"),
            LedgerError::NotFound(number) => Msg::new("not_found-invoice").arg("number", number),
            LedgerError::AlertNotFound(id) => Msg::new("not_found-alert").arg("id", *id),
            LedgerError::Busy => Msg::new("busy"),
            LedgerError::TooNew { found, known } => Msg::new("schema_too_new")
                .arg("found", *found)
                .arg("known", *known),
            LedgerError::Sqlite(e) => Msg::new("database").arg("why", e.to_string()),
            LedgerError::Io(e) => Msg::new("io").arg("why", e.to_string()),
        }
    }
}

/// The English message.
impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(Lang::En))
    }
}

impl std::error::Error for LedgerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LedgerError::Sqlite(e) => Some(e),
            LedgerError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError::Sqlite(e)
    }
}

impl From<std::io::Error> for LedgerError {
    fn from(e: std::io::Error) -> Self {
        LedgerError::Io(e)
    }
}
