//! Every message that crosses a boundary, in one place: `crates/core/locales/en.ftl` and
//! `zh.ftl` (Project Fluent). The CLI, the app's Rust side and the UI (`ui/src/lib/messages.ts`)
//! read the same two files; the code names a message by its id and passes its arguments,
//! and never holds the words itself.
//!
//! Ids come from the [`Code`](crate::Code) the error carries: `invalid_tax_rate`, and
//! `invalid_tax_rate-<what>` where one code has several messages. Arguments are strings
//! formatted by the caller (money, quoted input) or integers; an argument may itself be a
//! message ([`Arg::Msg`]), formatted in the same language first (`expected { $what }`).
//!
//! An id the files do not have, or an argument a message needs and did not get, never
//! panics: the id (or the pattern with the gap) is returned and the problem is recorded in
//! [`problems`], which the tests check after formatting every message.

use crate::Lang;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

/// The English messages, exactly as shipped.
pub const EN_FTL: &str = include_str!("../locales/en.ftl");
/// The Chinese messages, exactly as shipped.
pub const ZH_FTL: &str = include_str!("../locales/zh.ftl");

/// The text of the messages of `lang`.
pub fn source(lang: Lang) -> &'static str {
    match lang {
        Lang::En => EN_FTL,
        Lang::Zh => ZH_FTL,
    }
}

type Bundle = FluentBundle<FluentResource>;

fn bundle(lang: Lang) -> Bundle {
    let locale = match lang {
        Lang::En => "en",
        Lang::Zh => "zh-CN",
    };
    let mut bundle = Bundle::new_concurrent(vec![locale.parse().expect("a valid locale")]);
    // No U+2068/U+2069 around arguments: terminals print them, and the texts are compared.
    bundle.set_use_isolating(false);
    let resource = match FluentResource::try_new(source(lang).to_string()) {
        Ok(r) => r,
        Err((r, errors)) => {
            note(format!("{locale}.ftl: {} parse errors", errors.len()));
            r
        }
    };
    if let Err(errors) = bundle.add_resource(resource) {
        note(format!("{locale}.ftl: {errors:?}"));
    }
    bundle
}

static EN: LazyLock<Bundle> = LazyLock::new(|| bundle(Lang::En));
static ZH: LazyLock<Bundle> = LazyLock::new(|| bundle(Lang::Zh));
static PROBLEMS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn note(problem: String) {
    if let Ok(mut p) = PROBLEMS.lock() {
        p.insert(problem);
    }
}

/// Every problem met while loading or formatting so far (an unknown id, a missing
/// argument, a parse error), each once. Empty in a correct build.
pub fn problems() -> Vec<String> {
    PROBLEMS
        .lock()
        .map(|p| p.iter().cloned().collect())
        .unwrap_or_default()
}

/// Whether `lang` has a message `id`.
pub fn has(lang: Lang, id: &str) -> bool {
    match lang {
        Lang::En => EN.has_message(id),
        Lang::Zh => ZH.has_message(id),
    }
}

/// One argument of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Text as it is printed (money, a field's value, a quoted input).
    Text(String),
    /// A number: printed as written, and what Fluent's plural selectors read.
    Int(i64),
    /// Another message, formatted in the same language first.
    Msg(Box<Msg>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Arg {
        Arg::Text(s.clone())
    }
}

impl From<char> for Arg {
    fn from(c: char) -> Arg {
        Arg::Text(c.to_string())
    }
}

impl From<Msg> for Arg {
    fn from(m: Msg) -> Arg {
        Arg::Msg(Box::new(m))
    }
}

macro_rules! int_args {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(n: $t) -> Arg {
                i64::try_from(n).map_or_else(|_| Arg::Text(n.to_string()), Arg::Int)
            }
        }
    )*};
}
int_args!(i32, i64, u32, u64, usize);

/// A message: an id of the .ftl files with its arguments, formatted when a language is
/// known. (Or, for the few texts that are not ours — an authority's own words, a test's
/// fixture — the two texts themselves: [`Msg::literal`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg(Inner);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inner {
    Id {
        id: &'static str,
        args: Vec<(&'static str, Arg)>,
    },
    Literal {
        en: String,
        zh: String,
    },
}

impl Msg {
    /// The message `id` of the .ftl files.
    pub fn new(id: &'static str) -> Msg {
        Msg(Inner::Id {
            id,
            args: Vec::new(),
        })
    }

    /// Texts that are not in the .ftl files, as they are.
    pub fn literal(en: impl Into<String>, zh: impl Into<String>) -> Msg {
        Msg(Inner::Literal {
            en: en.into(),
            zh: zh.into(),
        })
    }

    /// With the argument `$name`.
    pub fn arg(mut self, name: &'static str, value: impl Into<Arg>) -> Msg {
        if let Inner::Id { args, .. } = &mut self.0 {
            args.push((name, value.into()));
        }
        self
    }

    /// The id, None for a literal.
    pub fn id(&self) -> Option<&'static str> {
        match &self.0 {
            Inner::Id { id, .. } => Some(id),
            Inner::Literal { .. } => None,
        }
    }

    /// The message in `lang`.
    pub fn text(&self, lang: Lang) -> String {
        match &self.0 {
            Inner::Id { id, args } => tr(lang, id, args),
            Inner::Literal { en, zh } => lang.pick(zh, en).to_string(),
        }
    }
}

/// A message in one language, formatted the first time it is read: what
/// [`FieldError::en`](crate::FieldError::en) and `zh` are. It reads as a `&str`.
#[derive(Clone)]
pub struct Text {
    msg: Arc<Msg>,
    lang: Lang,
    formatted: OnceLock<String>,
}

impl Text {
    /// `msg` in `lang`.
    pub fn new(msg: Arc<Msg>, lang: Lang) -> Text {
        Text {
            msg,
            lang,
            formatted: OnceLock::new(),
        }
    }

    /// The message it formats.
    pub fn msg(&self) -> &Msg {
        &self.msg
    }

    pub fn as_str(&self) -> &str {
        self.formatted.get_or_init(|| self.msg.text(self.lang))
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.lang == other.lang && self.msg == other.msg
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_string()
    }
}

/// The message `id` in `lang` with `args`. An unknown id gives the id itself (and a
/// [`problems`] entry), never a panic.
pub fn tr(lang: Lang, id: &str, args: &[(&str, Arg)]) -> String {
    let bundle: &Bundle = match lang {
        Lang::En => &EN,
        Lang::Zh => &ZH,
    };
    let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
        note(format!("unknown message id {id:?}"));
        return id.to_string();
    };
    let mut fluent_args = FluentArgs::with_capacity(args.len());
    for (name, value) in args {
        let value: FluentValue = match value {
            Arg::Text(s) => s.clone().into(),
            Arg::Int(n) => (*n).into(),
            Arg::Msg(m) => m.text(lang).into(),
        };
        fluent_args.set(*name, value);
    }
    let mut errors = Vec::new();
    let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
    if !errors.is_empty() {
        note(format!("{id}: {errors:?}"));
    }
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_id_gives_the_id_and_is_noted() {
        assert_eq!(tr(Lang::Zh, "no-such-message", &[]), "no-such-message");
        assert!(problems().iter().any(|p| p.contains("no-such-message")));
    }

    #[test]
    fn arguments_are_not_isolated() {
        let m = Msg::new("too_long").arg("count", 9).arg("max", 5);
        assert_eq!(m.text(Lang::En), "has 9 characters; at most 5 are allowed");
        assert_eq!(m.text(Lang::Zh), "共 9 个字符，最多 5 个");
    }
}
