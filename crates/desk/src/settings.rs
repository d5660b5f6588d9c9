//! The app's preferences file: language, theme, the data directory the clerk chose and
//! the scheduled backups, read leniently (a bad value falls back to the default) and
//! written atomically.

use crate::dto::{BackupSettingsDto, SettingsDto};
use crate::error::{DeskError, DeskResult};
use kaipiao_core::{Code, Lang, Msg};
use std::path::{Path, PathBuf};

pub const LANGUAGES: [&str; 3] = ["system", "zh", "en"];
pub const THEMES: [&str; 3] = ["system", "light", "dark"];

/// What the file holds.
#[derive(Debug, Default)]
pub struct Stored {
    pub settings: SettingsDto,
    /// The data directory chosen with "open an existing data directory".
    pub data_dir: Option<PathBuf>,
    /// The scheduled backups as set (None: the defaults, `backups.rs`).
    pub backups: Option<BackupSettingsDto>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct SettingsFile {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    theme: Option<String>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    backups: Option<BackupSettingsDto>,
}

/// The stored preferences; a missing or unreadable file, or a value out of range, gives
/// the default.
pub fn read(path: &Path) -> Stored {
    let file: SettingsFile = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut settings = SettingsDto::default();
    if let Some(l) = file.language.filter(|l| LANGUAGES.contains(&l.as_str())) {
        settings.language = l;
    }
    if let Some(t) = file.theme.filter(|t| THEMES.contains(&t.as_str())) {
        settings.theme = t;
    }
    Stored {
        settings,
        data_dir: file.data_dir,
        backups: file.backups,
    }
}

/// Refuses a language or theme the app does not know, naming the field.
pub fn check(settings: &SettingsDto, lang: Lang) -> DeskResult<()> {
    if !LANGUAGES.contains(&settings.language.as_str()) {
        return Err(DeskError::say(
            Code::InvalidLanguage,
            "language",
            lang,
            Msg::new("invalid_language"),
        ));
    }
    if !THEMES.contains(&settings.theme.as_str()) {
        return Err(DeskError::say(
            Code::InvalidTheme,
            "theme",
            lang,
            Msg::new("invalid_theme"),
        ));
    }
    Ok(())
}

/// Writes beside the file and renames, so a crash never leaves half a file. The
/// scheduled backups' settings in the file are kept as they are.
pub fn write(path: &Path, settings: &SettingsDto, data_dir: Option<&Path>) -> DeskResult<()> {
    let file = SettingsFile {
        language: Some(settings.language.clone()),
        theme: Some(settings.theme.clone()),
        data_dir: data_dir.map(Path::to_path_buf),
        backups: read(path).backups,
    };
    write_file(path, &file)
}

/// Stores the scheduled backups' settings, keeping everything else in the file.
pub fn write_backups(path: &Path, backups: &BackupSettingsDto) -> DeskResult<()> {
    let stored = read(path);
    let file = SettingsFile {
        language: Some(stored.settings.language),
        theme: Some(stored.settings.theme),
        data_dir: stored.data_dir,
        backups: Some(backups.clone()),
    };
    write_file(path, &file)
}

fn write_file(path: &Path, file: &SettingsFile) -> DeskResult<()> {
    let io = |e: std::io::Error| DeskError::new(Code::Io, "", format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let text = serde_json::to_vec_pretty(file).map_err(DeskError::internal)?;
    let tmp = path.with_extension("json.partial");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(tmp, path).map_err(io)
}
