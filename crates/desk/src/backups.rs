//! The app's scheduled backups (issue 10, item 6): `kaipiao backup` on a timer, into a
//! folder the clerk chooses (a USB stick's will do), keeping a set number.
//!
//! Each backup is a file `kaipiao-YYYYMMDD-HHMMSS.kaipiao-backup` (UTC) written by
//! [`kaipiao_ledger::Ledger::backup`] through the engine's reading connection (an online
//! backup: issuing goes on meanwhile), whole or not at all; the newest `keep` are kept,
//! older ones and any half-written `.partial` left by a crash are deleted. A backup is
//! due when the newest in the folder is `every_hours` old (or there is none). A thread
//! looks every few minutes while the app runs; "Back up now" writes one at once.
//! `kaipiao restore FILE` makes a data directory again from any of them.
//!
//! The key goes into a backup sealed, as `kaipiao backup` seals it: a passphrase-sealed
//! key as it is (the device passphrase opens it). A key in the OS keyring would need a
//! backup passphrase, which the app does not keep: such a device's scheduled backups
//! fail with that said in the panel (`kaipiao backup` asks for one).

use crate::dto::{BackupFileDto, BackupSettingsDto, BackupStateDto};
use crate::engine::{lock, Engine};
use crate::error::{DeskError, DeskResult};
use crate::settings;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use kaipiao_core::time::rfc3339;
use kaipiao_core::{Code, Msg};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Weak};
use std::time::Duration;

const PREFIX: &str = "kaipiao-";
const SUFFIX: &str = ".kaipiao-backup";
const STAMP: &str = "%Y%m%d-%H%M%S";
/// Defaults: one a day, a week of them.
pub const DEFAULT_EVERY_HOURS: u32 = 24;
pub const DEFAULT_KEEP: u32 = 7;
const MAX_EVERY_HOURS: u32 = 24 * 30;
const MAX_KEEP: u32 = 1000;
/// How often the scheduler looks whether a backup is due.
const LOOK_EVERY: Duration = Duration::from_secs(5 * 60);

/// The folder backups go to by default: `NAME-backups` beside the data directory (not in
/// it: a restore replaces the data directory).
pub fn default_folder(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kaipiao".into());
    data_dir.with_file_name(format!("{name}-backups"))
}

/// When a backup file was taken, from its name; None for any other file.
fn taken_at(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    NaiveDateTime::parse_from_str(stamp, STAMP)
        .ok()
        .map(|t| t.and_utc())
}

/// The backups in `folder`, newest first.
fn list(folder: &Path) -> Vec<(PathBuf, DateTime<Utc>, u64)> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let at = taken_at(&name)?;
            let bytes = e.metadata().ok()?.len();
            Some((e.path(), at, bytes))
        })
        .collect();
    found.sort_by(|a, b| b.1.cmp(&a.1));
    found
}

/// Refuses settings the scheduler cannot follow, naming the field.
fn check(s: &BackupSettingsDto, lang: kaipiao_core::Lang) -> DeskResult<()> {
    if s.folder.trim().is_empty() || !Path::new(s.folder.trim()).is_absolute() {
        return Err(DeskError::say(
            Code::InvalidPath,
            "folder",
            lang,
            Msg::new("invalid_path-backup-folder"),
        ));
    }
    if s.every_hours > MAX_EVERY_HOURS {
        return Err(DeskError::say(
            Code::OutOfRange,
            "every_hours",
            lang,
            Msg::new("out_of_range-backup-hours").arg("max", MAX_EVERY_HOURS),
        ));
    }
    if !(1..=MAX_KEEP).contains(&s.keep) {
        return Err(DeskError::say(
            Code::OutOfRange,
            "keep",
            lang,
            Msg::new("out_of_range-backup-keep").arg("max", MAX_KEEP),
        ));
    }
    Ok(())
}

impl Engine {
    /// The scheduled backups' settings: as stored, else the defaults.
    pub fn backup_settings(&self) -> BackupSettingsDto {
        settings::read(&self.config.settings_file)
            .backups
            .unwrap_or_else(|| BackupSettingsDto {
                folder: default_folder(&self.config.data_dir).display().to_string(),
                every_hours: DEFAULT_EVERY_HOURS,
                keep: DEFAULT_KEEP,
            })
    }

    /// The backups panel as of now (the window's).
    pub fn backups(&self) -> BackupStateDto {
        self.backup_state(Utc::now())
    }

    /// "Back up now" (the window's).
    pub fn back_up(&self) -> DeskResult<BackupStateDto> {
        self.backup_now(Utc::now())
    }

    /// The backups panel as of `now`.
    pub fn backup_state(&self, now: DateTime<Utc>) -> BackupStateDto {
        let settings = self.backup_settings();
        let folder = PathBuf::from(&settings.folder);
        let backups = list(&folder);
        let next_due = (settings.every_hours > 0).then(|| {
            let due = backups.first().map_or(now, |(_, at, _)| {
                *at + TimeDelta::hours(i64::from(settings.every_hours))
            });
            rfc3339(due.max(now))
        });
        BackupStateDto {
            backups: backups
                .into_iter()
                .map(|(path, at, bytes)| BackupFileDto {
                    file: path.display().to_string(),
                    taken_at: rfc3339(at),
                    bytes,
                })
                .collect(),
            next_due,
            last_error: lock(&self.backup_error).clone(),
            settings,
        }
    }

    /// Stores new settings (checked) and says what they mean now.
    pub fn set_backup_settings(&self, s: BackupSettingsDto) -> DeskResult<BackupStateDto> {
        let s = BackupSettingsDto {
            folder: s.folder.trim().to_string(),
            ..s
        };
        check(&s, self.lang())?;
        settings::write_backups(&self.config.settings_file, &s)?;
        Ok(self.backup_state(Utc::now()))
    }

    /// Writes a backup now (whether or not one is due) and prunes the folder.
    pub fn backup_now(&self, now: DateTime<Utc>) -> DeskResult<BackupStateDto> {
        let settings = self.backup_settings();
        let result = self.write_backup(&settings, now);
        *lock(&self.backup_error) = result.as_ref().err().map(|e| e.message.clone());
        result?;
        Ok(self.backup_state(now))
    }

    /// The scheduler's step: a backup when one is due, else nothing. Returns whether one
    /// was written.
    pub fn backup_if_due(&self, now: DateTime<Utc>) -> DeskResult<bool> {
        let settings = self.backup_settings();
        if settings.every_hours == 0 {
            return Ok(false);
        }
        let newest = list(Path::new(&settings.folder)).first().map(|b| b.1);
        let due =
            newest.is_none_or(|at| now >= at + TimeDelta::hours(i64::from(settings.every_hours)));
        // Nothing to back up before the device exists.
        if !due || self.reader().device().ok().flatten().is_none() {
            return Ok(false);
        }
        self.backup_now(now).map(|_| true)
    }

    fn write_backup(&self, settings: &BackupSettingsDto, now: DateTime<Utc>) -> DeskResult<()> {
        check(settings, self.lang())?;
        let folder = PathBuf::from(&settings.folder);
        let io = |e: std::io::Error| {
            DeskError::new(Code::Io, "folder", format!("{}: {e}", folder.display()))
        };
        std::fs::create_dir_all(&folder).map_err(io)?;
        let out = folder.join(format!("{PREFIX}{}{SUFFIX}", now.format(STAMP)));
        if !out.exists() {
            self.reader()
                .backup(&out, None, now)
                .map_err(|e| self.ledger_error(e))?;
        }
        // Older backups beyond `keep`, and whatever a crash left half written.
        for (path, _, _) in list(&folder).into_iter().skip(settings.keep as usize) {
            std::fs::remove_file(&path).map_err(io)?;
        }
        if let Ok(entries) = std::fs::read_dir(&folder) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(PREFIX) && name.ends_with(&format!("{SUFFIX}.partial")) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

/// Starts the scheduler: every few minutes, a backup when one is due, for as long as the
/// engine lives. Dropping the returned sender stops it at once.
pub(crate) fn start(engine: Weak<Engine>) -> std::io::Result<mpsc::Sender<()>> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("kaipiao-backups".into())
        .spawn(move || loop {
            if let Some(engine) = engine.upgrade() {
                let _ = engine.backup_if_due(Utc::now());
                drop(engine);
            } else {
                return;
            }
            match stopped.recv_timeout(LOOK_EVERY) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        })?;
    Ok(stop)
}

/// Keeps the scheduler's handle in the engine (see `Engine::open`).
pub(crate) fn attach(engine: &Arc<Engine>) {
    if let Ok(stop) = start(Arc::downgrade(engine)) {
        *lock(&engine.backup_stop) = Some(stop);
    }
}
