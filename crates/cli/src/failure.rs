//! How a command fails: its SPEC 9 exit code and the `{code, message, field}` error, or
//! the document `--json` prints instead (a sync's summary is printed whatever the exit).

use kaipiao_core::{Code, FieldError, Lang, Msg};
use kaipiao_ledger::LedgerError;
use kaipiao_sync::{SyncError, SyncOutcome};
use serde_json::{json, Value};

/// A failed command.
pub struct CommandError {
    pub exit: u8,
    pub code: Code,
    pub field: String,
    pub message: String,
    /// What stdout gets with --json (defaults to the error document).
    pub json: Option<Value>,
}

pub type CmdResult = Result<Value, CommandError>;

/// Exit codes of SPEC 9.
pub const EXIT_OTHER: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_TRANSIENT: u8 = 3;
pub const EXIT_INTEGRITY: u8 = 4;

impl CommandError {
    pub fn new(exit: u8, code: Code, field: &str, message: impl Into<String>) -> CommandError {
        CommandError {
            exit,
            code,
            field: field.to_string(),
            message: message.into(),
            json: None,
        }
    }

    pub fn ledger(e: &LedgerError, lang: Lang) -> CommandError {
        let mut message = e.message(lang);
        // The libraries say what is missing; which command gives it is the CLI's to say.
        let next = match e {
            LedgerError::NotInitialized => Some(Msg::new("cli-next-init")),
            LedgerError::NotEnrolled => Some(Msg::new("cli-next-enroll")),
            _ => None,
        };
        if let Some(next) = next {
            message = Msg::new("cli-then")
                .arg("message", message)
                .arg("next", next)
                .text(lang);
        }
        CommandError::new(
            u8::try_from(e.exit_code()).unwrap_or(EXIT_OTHER),
            e.code(),
            e.field(),
            message,
        )
    }

    pub fn field(e: &FieldError, lang: Lang) -> CommandError {
        CommandError::new(EXIT_INVALID, e.code, &e.field, e.message(lang))
    }

    pub fn sync(e: &SyncError, lang: Lang) -> CommandError {
        match e {
            SyncError::Ledger(le) => CommandError::ledger(le, lang),
            SyncError::NoServers => CommandError::new(
                u8::try_from(e.exit_code()).unwrap_or(EXIT_OTHER),
                e.code(),
                "",
                Msg::new("cli-no-servers")
                    .arg("message", e.message(lang))
                    .text(lang),
            ),
            // In the clerk's language, like every other message (a zh-CN clerk whose
            // enrolment token is refused reads it in Chinese).
            other => CommandError::new(
                u8::try_from(other.exit_code()).unwrap_or(EXIT_OTHER),
                other.code(),
                other.field(),
                other.message(lang),
            ),
        }
    }

    /// The same failure, with `doc` printed by --json instead of the error document.
    pub fn with_doc(mut self, doc: Value) -> CommandError {
        self.json = Some(doc);
        self
    }

    pub fn internal(e: impl std::fmt::Display) -> CommandError {
        CommandError::new(EXIT_OTHER, Code::Internal, "", e.to_string())
    }

    pub fn error_json(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "field": self.field}})
    }
}

/// A run's outcome as the command's result: its document printed whatever the exit
/// (SPEC 9), 3 when transient, 4 with `stopped_code` when a human must look.
pub fn outcome_result(outcome: &SyncOutcome, doc: Value, stopped_code: Code) -> CmdResult {
    match outcome {
        SyncOutcome::Complete => Ok(doc),
        SyncOutcome::Transient(why) => Err(CommandError {
            json: Some(doc),
            ..CommandError::new(EXIT_TRANSIENT, Code::Transient, "", why.clone())
        }),
        SyncOutcome::Stopped(why) => Err(CommandError {
            json: Some(doc),
            ..CommandError::new(EXIT_INTEGRITY, stopped_code, "", why.clone())
        }),
    }
}
