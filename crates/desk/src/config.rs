//! Where a shop's files are and how it opens: the data directory, the clerk's language
//! and the passphrase from the environment. The CLI and the app resolve them here, so
//! both open the same ledger in the same language.

use crate::settings;
use kaipiao_core::Lang;
use kaipiao_ledger::KeySource;
use std::path::PathBuf;

/// The platform's data directory for Kaipiao (`~/.local/share/kaipiao` on Linux): the
/// CLI's default and the release app's, so both open the same ledger.
pub fn default_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("kaipiao"))
}

/// The OS locale (the first of LC_ALL, LC_MESSAGES, LANG that is set), "" when none.
pub fn system_locale() -> String {
    for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    String::new()
}

/// The language of the OS locale (`zh_CN.UTF-8` is Chinese; anything else English).
pub fn system_lang() -> Lang {
    Lang::from_locale(&system_locale())
}

/// A language setting (`system`, `zh`, `en`) read against the OS locale.
pub fn resolve_lang(language: &str, locale: &str) -> Lang {
    match language {
        "zh" => Lang::Zh,
        "en" => Lang::En,
        _ => Lang::from_locale(locale),
    }
}

/// The short code the UI keys its texts by.
pub fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "zh",
        Lang::En => "en",
    }
}

/// `KAIPIAO_PASSPHRASE`, when set and not empty.
pub fn env_passphrase() -> Option<String> {
    std::env::var("KAIPIAO_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
}

/// The key source for a passphrase, or for none (the OS keyring, where there is one).
pub fn key_source(passphrase: Option<&str>) -> KeySource {
    match passphrase {
        Some(p) => KeySource::with_passphrase(p),
        None => KeySource::default(),
    }
}

/// Where the app's engine's files are and where its preferences come from.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub data_dir_from_env: bool,
    /// `settings.json` (language, theme, a chosen data directory).
    pub settings_file: PathBuf,
    /// KAIPIAO_PASSPHRASE.
    pub env_passphrase: Option<String>,
    /// The OS locale (LC_ALL / LC_MESSAGES / LANG) for `language: "system"`.
    pub system_locale: String,
    pub dev_build: bool,
}

impl EngineConfig {
    /// From the environment: KAIPIAO_DATA, else the directory the clerk chose last, else
    /// `default_data_dir`; settings beside the data when KAIPIAO_DATA pins it (so a test
    /// or a second shop keeps its own), else in `config_dir`.
    pub fn from_env(
        default_data_dir: Option<PathBuf>,
        config_dir: Option<PathBuf>,
        dev_build: bool,
    ) -> EngineConfig {
        let env_data = std::env::var_os("KAIPIAO_DATA")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let data_dir_from_env = env_data.is_some();
        let settings_file = match (&env_data, &config_dir) {
            (Some(d), _) => d.join("app-settings.json"),
            (None, Some(c)) => c.join("settings.json"),
            (None, None) => PathBuf::from("kaipiao-settings.json"),
        };
        let stored_dir = if data_dir_from_env {
            None
        } else {
            settings::read(&settings_file).data_dir
        };
        let data_dir = env_data
            .or(stored_dir)
            .or(default_data_dir)
            .unwrap_or_else(|| PathBuf::from("kaipiao-data"));
        EngineConfig {
            data_dir,
            data_dir_from_env,
            settings_file,
            env_passphrase: env_passphrase(),
            system_locale: system_locale(),
            dev_build,
        }
    }
}
