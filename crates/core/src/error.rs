//! The error every bad input turns into: which field, a stable code, and a message in the
//! clerk's language that says what is allowed.

use crate::i18n::{Msg, Text};
use crate::Code;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
///
/// It carries the message's id and arguments ([`Msg`], ids of `crates/core/locales/*.ftl`)
/// rather than words: `en` and `zh` are that one message formatted in each language the
/// first time they are read. Its JSON form is unchanged: `{code, field, en, zh}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Stable machine code the UI branches on, e.g. `invalid_tax_rate`.
    pub code: Code,
    /// Path of the field in the draft, e.g. `lines[2].tax_rate`, or "" when none applies.
    pub field: String,
    /// The message in English (reads as a `&str`).
    pub en: Text,
    /// The message in Chinese (reads as a `&str`).
    pub zh: Text,
}

impl FieldError {
    /// A refusal with texts that are not in the message files (a test's, an authority's).
    /// The errors of Kaipiao itself use [`FieldError::msg`].
    pub fn new(
        code: Code,
        field: impl Into<String>,
        en: impl Into<String>,
        zh: impl Into<String>,
    ) -> Self {
        FieldError::msg(code, field, Msg::literal(en, zh))
    }

    /// A refusal saying `msg` (an id of `crates/core/locales/*.ftl` and its arguments).
    pub fn msg(code: Code, field: impl Into<String>, msg: Msg) -> Self {
        let msg = Arc::new(msg);
        FieldError {
            code,
            field: field.into(),
            en: Text::new(msg.clone(), Lang::En),
            zh: Text::new(msg, Lang::Zh),
        }
    }

    /// The message, as an id and arguments.
    pub fn message_id(&self) -> &Msg {
        self.en.msg()
    }

    /// The message without the field name.
    pub fn text(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.en.to_string(),
            Lang::Zh => self.zh.to_string(),
        }
    }

    /// `field: message`, as printed by the CLI.
    pub fn message(&self, lang: Lang) -> String {
        if self.field.is_empty() {
            self.text(lang)
        } else {
            format!("{}: {}", self.field, self.text(lang))
        }
    }
}

/// The JSON form: `{code, field, en, zh}`.
#[derive(Serialize, Deserialize)]
struct FieldErrorJson {
    code: Code,
    field: String,
    en: String,
    zh: String,
}

impl Serialize for FieldError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        FieldErrorJson {
            code: self.code,
            field: self.field.clone(),
            en: self.text(Lang::En),
            zh: self.text(Lang::Zh),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for FieldError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = FieldErrorJson::deserialize(d)?;
        Ok(FieldError::new(j.code, j.field, j.en, j.zh))
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(Lang::En))
    }
}

impl std::error::Error for FieldError {}
