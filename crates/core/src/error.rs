//! The error every bad input turns into: which field, a stable code, and a message in the
//! clerk's language that says what is allowed.

use crate::Code;
use serde::{Deserialize, Serialize};

/// The language of messages. Chinese when the locale says so, English otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Zh,
    #[default]
    En,
}

impl Lang {
    /// From a POSIX locale string such as `zh_CN.UTF-8` (the value of `LANG`/`LC_ALL`).
    pub fn from_locale(locale: &str) -> Lang {
        if locale.to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// A refusal tied to one field of the input, e.g. `lines[2].tax_rate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Stable machine code the UI branches on, e.g. `invalid_tax_rate`.
    pub code: Code,
    /// Path of the field in the draft, e.g. `lines[2].tax_rate`, or "" when none applies.
    pub field: String,
    pub en: String,
    pub zh: String,
}

impl FieldError {
    pub fn new(
        code: Code,
        field: impl Into<String>,
        en: impl Into<String>,
        zh: impl Into<String>,
    ) -> Self {
        FieldError {
            code,
            field: field.into(),
            en: en.into(),
            zh: zh.into(),
        }
    }

    /// The message without the field name.
    pub fn text(&self, lang: Lang) -> &str {
        lang.pick(&self.zh, &self.en)
    }

    /// `field: message`, as printed by the CLI.
    pub fn message(&self, lang: Lang) -> String {
        if self.field.is_empty() {
            self.text(lang).to_string()
        } else {
            format!("{}: {}", self.field, self.text(lang))
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(Lang::En))
    }
}

impl std::error::Error for FieldError {}
