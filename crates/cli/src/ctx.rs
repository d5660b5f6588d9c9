//! What every command runs with: the data directory, the language and `--json`, and the
//! ways in to the ledger (opened, or opened with the device key unsealed: SPEC 8 lets
//! only the commands that sign or sync unseal it).

use crate::failure::{CommandError, EXIT_INVALID, EXIT_OTHER};
use kaipiao_core::{Code, DeviceKey, Lang, Msg};
use kaipiao_desk::config;
use kaipiao_ledger::{KeySource, Ledger};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

pub struct Ctx {
    pub lang: Lang,
    pub json: bool,
    pub data: PathBuf,
}

impl Ctx {
    pub fn open(&self) -> Result<Ledger, CommandError> {
        Ledger::open(&self.data).map_err(|e| CommandError::ledger(&e, self.lang))
    }

    /// The ledger and its device key, for the commands that sign or sync (SPEC 8).
    pub fn open_unsealed(&self) -> Result<(Ledger, DeviceKey), CommandError> {
        let ledger = self.open()?;
        let key = ledger
            .unseal_key(&self.key_source(false)?)
            .map_err(|e| CommandError::ledger(&e, self.lang))?;
        Ok((ledger, key))
    }

    /// A passphrase typed at the terminal after `prompt`, and once more when `confirm`
    /// (different answers are `passphrase_mismatch`).
    pub(crate) fn prompt_passphrase(
        &self,
        prompt: &str,
        confirm: bool,
    ) -> Result<zeroize::Zeroizing<String>, CommandError> {
        let prompt_error = |e: std::io::Error| {
            CommandError::new(
                EXIT_OTHER,
                Code::Io,
                "",
                Msg::new("cli-passphrase-prompt")
                    .arg("why", e.to_string())
                    .text(self.lang),
            )
        };
        let first =
            zeroize::Zeroizing::new(rpassword::prompt_password(prompt).map_err(prompt_error)?);
        if confirm {
            let again = zeroize::Zeroizing::new(
                rpassword::prompt_password(self.lang.pick("再次输入口令：", "Repeat passphrase: "))
                    .map_err(prompt_error)?,
            );
            if again != first {
                return Err(CommandError::new(
                    EXIT_INVALID,
                    Code::PassphraseMismatch,
                    "passphrase",
                    Msg::new("passphrase_mismatch").text(self.lang),
                ));
            }
        }
        Ok(first)
    }

    /// The passphrase that seals the key's copy in a backup: KAIPIAO_BACKUP_PASSPHRASE,
    /// else typed twice at a terminal; None without either (the backup then says so).
    pub fn backup_passphrase(&self) -> Result<Option<zeroize::Zeroizing<String>>, CommandError> {
        if let Some(p) = std::env::var("KAIPIAO_BACKUP_PASSPHRASE")
            .ok()
            .filter(|p| !p.is_empty())
        {
            return Ok(Some(zeroize::Zeroizing::new(p)));
        }
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        let prompt = self.lang.pick("备份口令：", "Backup passphrase: ");
        self.prompt_passphrase(prompt, true).map(Some)
    }

    /// What opens the key inside a backup being restored: the device passphrase for a
    /// passphrase-sealed key, else the backup passphrase (KAIPIAO_BACKUP_PASSPHRASE, or
    /// typed once at a terminal).
    pub fn restore_key_source(
        &self,
        key: kaipiao_ledger::BackupKey,
    ) -> Result<KeySource, CommandError> {
        match key {
            kaipiao_ledger::BackupKey::DevicePassphrase => self.key_source(false),
            kaipiao_ledger::BackupKey::BackupPassphrase => {
                if let Some(p) = std::env::var("KAIPIAO_BACKUP_PASSPHRASE")
                    .ok()
                    .filter(|p| !p.is_empty())
                {
                    return Ok(KeySource::with_passphrase(&p));
                }
                if !std::io::stdin().is_terminal() {
                    return Ok(KeySource::default());
                }
                let prompt = self.lang.pick("备份口令：", "Backup passphrase: ");
                let pass = self.prompt_passphrase(prompt, false)?;
                Ok(KeySource::with_passphrase(&pass))
            }
        }
    }

    /// The passphrase that seals the device key: KAIPIAO_PASSPHRASE, else a prompt on a
    /// terminal (twice when `confirm`), else none (the OS keyring, where there is one).
    pub fn key_source(&self, confirm: bool) -> Result<KeySource, CommandError> {
        if let Some(p) = config::env_passphrase() {
            return Ok(config::key_source(Some(&p)));
        }
        if !std::io::stdin().is_terminal() {
            return Ok(KeySource::default());
        }
        let prompt = self.lang.pick("设备密钥口令：", "Device key passphrase: ");
        let first = self.prompt_passphrase(prompt, confirm)?;
        Ok(config::key_source(
            Some(first.as_str()).filter(|p| !p.is_empty()),
        ))
    }

    /// A file's text, or standard input for `-`.
    pub fn read_input(&self, path: &str) -> Result<String, CommandError> {
        let mut text = String::new();
        let result = if path == "-" {
            std::io::stdin().read_to_string(&mut text).map(|_| ())
        } else {
            std::fs::read_to_string(path).map(|t| text = t)
        };
        result.map_err(|e| {
            CommandError::new(
                EXIT_INVALID,
                Code::UnreadableFile,
                "file",
                Msg::new("unreadable_file")
                    .arg("path", path)
                    .arg("why", e.to_string())
                    .text(self.lang),
            )
        })?;
        Ok(text)
    }

    /// Writes `bytes` whole to `out` (`--out`: a crash leaves the old file or the new one)
    /// and says so unless `--json`.
    pub fn write_out(&self, out: &std::path::Path, bytes: &[u8]) -> Result<(), CommandError> {
        kaipiao_desk::print::write_whole(out, bytes).map_err(|e| {
            CommandError::new(
                EXIT_OTHER,
                Code::Io,
                "out",
                format!("{}: {e}", out.display()),
            )
        })?;
        if !self.json {
            println!(
                "{} {} ({} bytes)",
                self.lang.pick("已写入", "Wrote"),
                out.display(),
                bytes.len()
            );
        }
        Ok(())
    }

    /// Limit warnings on stderr, in the clerk's language.
    pub fn print_warnings(&self, warnings: &[kaipiao_core::LimitWarning]) {
        for w in warnings {
            eprintln!(
                "{}: {}",
                self.lang.pick("警告", "warning"),
                self.lang.pick(&w.zh, &w.en)
            );
        }
    }
}
