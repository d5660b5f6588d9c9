//! `kaipiao backup --out FILE` (issue 10, item 6): an online SQLite backup of the ledger
//! with the device key inside it, sealed, never plain.
//!
//! The file is itself a SQLite database: the ledger's pages as of one moment (SQLite's
//! online backup, so issuing may go on meanwhile), in rollback-journal mode so that it is
//! one file, plus a `backup_meta` row: when it was taken, the schema version, the head it
//! holds, and the sealed key. A passphrase-sealed device key is copied as sealed (the
//! clerk's passphrase opens it); a key in the OS keyring is sealed for the backup under a
//! passphrase given for it (Argon2id + XChaCha20-Poly1305, the same sealing). It is
//! written under a temporary name, synced and renamed into place: a crash leaves either
//! no backup or a whole one, and an existing file is never overwritten.

use crate::keystore::{self, Protection, SEALED_KEY_FILE};
use crate::{invalid, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::rfc3339;
use kaipiao_core::wire::Head;
use kaipiao_core::{Code, Msg};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How the key inside a backup is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKey {
    /// The device's sealed key file as it is: the device passphrase opens it.
    DevicePassphrase,
    /// A copy of the keyring's key, sealed under the backup passphrase.
    BackupPassphrase,
}

/// What `backup` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub out: PathBuf,
    pub bytes: u64,
    pub invoices: u64,
    pub head: Head,
    pub key: BackupKey,
    pub created_at: String,
}

const META: &str = "CREATE TABLE backup_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    created_at TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    head_seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    key_protection TEXT NOT NULL,
    sealed_key TEXT NOT NULL
) STRICT;";

impl Ledger {
    /// Writes the backup to `out` (see the module documentation). `backup_passphrase`
    /// seals the key of a device whose key is in the OS keyring; it is not needed (and
    /// not used) for a passphrase-sealed key.
    pub fn backup(
        &self,
        out: &Path,
        backup_passphrase: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<BackupReport> {
        if out.exists() {
            return Err(invalid(
                Code::InvalidPath,
                "out",
                Msg::new("invalid_path-exists").arg("path", out.display().to_string()),
            ));
        }
        let device = crate::rows::require_device(&self.conn)?;
        let partial = partial_path(out);
        let _ = std::fs::remove_file(&partial);
        let (sealed_key, key) = match device.protection {
            Protection::PassphraseFile => (
                std::fs::read_to_string(self.dir.join(SEALED_KEY_FILE)).map_err(|e| {
                    LedgerError::Key(format!("the sealed device key cannot be read: {e}"))
                })?,
                BackupKey::DevicePassphrase,
            ),
            Protection::OsKeyring => {
                let pass = backup_passphrase.filter(|p| !p.is_empty()).ok_or_else(|| {
                    LedgerError::Key(
                        "the device key is in the OS keyring: give a passphrase to seal its copy in the backup (KAIPIAO_BACKUP_PASSPHRASE, or type it when asked)".into(),
                    )
                })?;
                let sealed =
                    keystore::seal_copy(&device.key_id, &device.public_key, pass, &partial)?;
                (sealed, BackupKey::BackupPassphrase)
            }
        };
        let result = self.write_backup(&partial, &sealed_key, device.protection, now);
        let report = match result {
            Ok((invoices, head)) => (invoices, head),
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        std::fs::rename(&partial, out).map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            LedgerError::Io(e)
        })?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport {
            out: out.to_path_buf(),
            bytes,
            invoices: report.0,
            head: report.1,
            key,
            created_at: rfc3339(now),
        })
    }

    /// The online copy into `partial`, its meta row, one file, synced.
    fn write_backup(
        &self,
        partial: &Path,
        sealed_key: &str,
        protection: Protection,
        now: DateTime<Utc>,
    ) -> Result<(u64, Head)> {
        self.conn
            .backup(rusqlite::DatabaseName::Main, partial, None)?;
        let copy = Connection::open(partial)?;
        let mode: String =
            copy.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(LedgerError::Storage(format!(
                "the backup copy refused rollback-journal mode (journal_mode is {mode})"
            )));
        }
        let head: Option<(u64, String)> = copy
            .query_row(
                "SELECT seq, hash FROM invoices ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let head = head.map_or_else(
            || Head {
                seq: 0,
                hash: kaipiao_core::ZERO_HASH.to_string(),
            },
            |(seq, hash)| Head { seq, hash },
        );
        copy.execute_batch(META)?;
        copy.execute(
            "INSERT INTO backup_meta (id, created_at, schema_version, head_seq, head_hash,
                                      key_protection, sealed_key)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                rfc3339(now),
                crate::SCHEMA_VERSION,
                head.seq as i64,
                head.hash,
                protection.as_str(),
                sealed_key
            ],
        )?;
        drop(copy);
        std::fs::File::open(partial)
            .and_then(|f| f.sync_all())
            .map_err(LedgerError::Io)?;
        Ok((head.seq, head))
    }
}

/// The temporary name next to `out`.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
