//! The ledger's half of `kaipiao restore FILE` (issue 10, item 6): a backup written by
//! [`Ledger::backup`] made a data directory's ledger again, the invoices the authority
//! holds beyond it taken in, and every number the lost copy may have used given up.
//!
//! The network half (reading the authority's copy, the fresh lease) is kaipiao-sync's
//! `restore`; it calls these in order on a ledger staged in a directory of its own, and
//! moves that directory into place only once all of them succeeded:
//!
//! 1. [`read_backup`]: what the file says about itself, read without changing it.
//! 2. [`Ledger::stage_restore`]: the backup's pages copied into an empty directory, the
//!    sealed key written beside them, the schema brought up to date; then `verify`.
//! 3. [`Ledger::restore_point`]: the invoice after which the authority's copy is read (the
//!    one before the first still pending, so their receipts come back too).
//! 4. [`Ledger::adopt_held`]: the authority's copy taken in, in one transaction: receipts
//!    for the backup's pending invoices, and the invoices it lacks entered exactly as
//!    issuance enters an invoice (the same columns, lease use and lookup keys), each with
//!    its receipt.
//! 5. [`Ledger::retire_leases`]: every lease used up locally, the numbers that were still
//!    left from the lease of the last known invoice on reported: the lost copy may have
//!    used them, never filed, and they are never used again.

use crate::backup::BackupKey;
use crate::keystore::{Protection, SEALED_KEY_FILE};
use crate::lookup;
use crate::rows::{self, corrupt};
use crate::{invalid, json_error, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::money::parse_money;
use kaipiao_core::wire::Head;
use kaipiao_core::{Code, Envelope, Kind, Msg};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::Path;

/// What a backup file says about itself (its `backup_meta` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    pub created_at: String,
    pub schema_version: i64,
    pub head: Head,
    /// Which passphrase opens the key inside it.
    pub key: BackupKey,
}

/// A run of numbers of one lease that a lost copy of the device may have used after the
/// backup: never filed, so lost with it, and never used again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NumberRange {
    pub lease_id: String,
    /// The first and last invoice number of the run (20 digits each).
    pub first: String,
    pub last: String,
    pub count: u64,
}

/// What [`Ledger::adopt_held`] took in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Adopted {
    /// Receipts stored for invoices the backup held as pending.
    pub receipts: u64,
    /// Invoices the backup lacked, entered with their receipts.
    pub invoices: u64,
}

/// One invoice of the authority's copy, already checked against the device key, the
/// chain and the pinned authority key by the caller.
pub struct HeldItem<'a> {
    pub envelope: &'a Envelope,
    /// The receipt exactly as the authority stores it.
    pub receipt_json: &'a str,
}

fn not_a_backup(file: &Path, why: impl Into<String>) -> LedgerError {
    invalid(
        Code::UnreadableFile,
        "file",
        Msg::new("unreadable_file-backup")
            .arg("path", file.display().to_string())
            .arg("why", why.into()),
    )
}

/// Reads the `backup_meta` row of `file`, opened read-only (the backup is never changed).
pub fn read_backup(file: &Path) -> Result<BackupInfo> {
    if !file.is_file() {
        return Err(not_a_backup(file, "no such file"));
    }
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_a_backup(file, e.to_string()))?;
    meta(&conn).map_err(|e| match e {
        LedgerError::Sqlite(e) => not_a_backup(
            file,
            format!("{e} (it has no readable backup record: written by `kaipiao backup`?)"),
        ),
        other => other,
    })
}

fn meta(conn: &Connection) -> Result<BackupInfo> {
    let (created_at, schema_version, seq, hash, protection): (String, i64, i64, String, String) =
        conn.query_row(
            "SELECT created_at, schema_version, head_seq, head_hash, key_protection
             FROM backup_meta WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
    let key = match Protection::parse(&protection) {
        Some(Protection::PassphraseFile) => BackupKey::DevicePassphrase,
        Some(Protection::OsKeyring) => BackupKey::BackupPassphrase,
        None => {
            return Err(LedgerError::Key(format!(
                "the backup's key protection {protection:?} is not one this program knows"
            )))
        }
    };
    if schema_version > crate::SCHEMA_VERSION {
        return Err(LedgerError::TooNew {
            found: schema_version,
            known: crate::SCHEMA_VERSION,
        });
    }
    Ok(BackupInfo {
        created_at,
        schema_version,
        head: Head {
            seq: u64::try_from(seq).unwrap_or(0),
            hash,
        },
        key,
    })
}

impl Ledger {
    /// Copies the backup `file` into `dir` (which must hold no ledger) as its ledger, with
    /// the sealed key beside it, and opens it: the schema brought up to date, the backup
    /// record dropped, the key marked as passphrase-sealed (a keyring key's copy is sealed
    /// under the backup passphrase, which from now on opens it). The caller verifies.
    pub fn stage_restore(file: &Path, dir: &Path) -> Result<(Ledger, BackupInfo)> {
        let info = read_backup(file)?;
        crate::create_private_dir(dir)?;
        let db = dir.join(crate::DB_FILE);
        if db.exists() {
            return Err(LedgerError::AlreadyInitialized);
        }
        let source = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| not_a_backup(file, e.to_string()))?;
        let sealed: String =
            source.query_row("SELECT sealed_key FROM backup_meta WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        crate::create_private_file(&db)?;
        source.backup(rusqlite::DatabaseName::Main, &db, None)?;
        drop(source);
        crate::keystore::write_sealed(&dir.join(SEALED_KEY_FILE), &sealed)?;
        let ledger = Ledger::open(dir)?;
        {
            let tx = ledger.write_tx()?;
            tx.execute_batch("DROP TABLE IF EXISTS backup_meta")?;
            tx.execute(
                "UPDATE device SET key_protection = ?1 WHERE id = 1",
                [Protection::PassphraseFile.as_str()],
            )?;
            tx.commit()?;
        }
        Ok((ledger, info))
    }

    /// Invoices pending (not yet received by the authority, as far as this ledger knows).
    pub fn pending_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?)
    }

    /// The (seq, hash) after which the authority's copy is read: the invoice before the
    /// first one still pending, else the head ((0, zero hash) for an empty chain).
    pub fn restore_point(&self) -> Result<(u64, String)> {
        let tx = self.read_tx()?;
        let first_pending: Option<u64> = tx
            .query_row("SELECT MIN(seq) FROM outbox", [], |r| r.get(0))
            .optional()?
            .flatten();
        let seq = match first_pending {
            Some(s) => s - 1,
            None => rows::last_invoice(&tx)?.map_or(0, |(s, _, _)| s),
        };
        if seq == 0 {
            return Ok((0, kaipiao_core::ZERO_HASH.to_string()));
        }
        let hash: String =
            tx.query_row("SELECT hash FROM invoices WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })?;
        Ok((seq, hash))
    }

    /// Takes in the authority's copy (see the module documentation), in one transaction:
    /// all of it or none. `held` runs in seq order from just after [`Ledger::restore_point`].
    pub fn adopt_held(&self, held: &[HeldItem<'_>], now: DateTime<Utc>) -> Result<Adopted> {
        let pinned = rows::require_device(&self.conn)?.pinned_key()?;
        let mut done = Adopted::default();
        let tx = self.write_tx()?;
        for item in held {
            let checked =
                Self::check_receipt(&pinned, &item.envelope.invoice.id, item.receipt_json)
                    .map_err(|e| Self::held_error(item, e))?;
            let seq = item.envelope.invoice.seq;
            let head = rows::last_invoice(&tx)?.map_or(0, |(s, _, _)| s);
            if seq > head {
                Self::enter_held(&tx, item.envelope, head)?;
                done.invoices += 1;
            } else {
                done.receipts += 1;
            }
            Self::store_checked_receipt(&tx, &checked, now)
                .map_err(|e| Self::held_error(item, e))?;
        }
        tx.commit()?;
        Ok(done)
    }

    fn held_error(item: &HeldItem<'_>, e: LedgerError) -> LedgerError {
        match e {
            LedgerError::BadReceipt(what) => corrupt(
                item.envelope.invoice.seq,
                format!(
                    "the authority's copy of invoice {} does not match this backup: {what}",
                    item.envelope.invoice.number
                ),
            ),
            other => other,
        }
    }

    /// Enters one invoice of the authority's copy after `head`, as issuance would have:
    /// pending with its outbox row (the receipt stored next settles it), its number taken
    /// from its lease (numbers the lost copy skipped stay unused), its lookup keys.
    fn enter_held(tx: &rusqlite::Transaction<'_>, envelope: &Envelope, head: u64) -> Result<()> {
        let inv = &envelope.invoice;
        let seq = inv.seq;
        if seq != head + 1 {
            return Err(corrupt(
                seq,
                format!(
                    "the authority's copy continues at seq {seq}, this ledger at {}",
                    head + 1
                ),
            ));
        }
        let bad_number = || {
            corrupt(
                seq,
                format!(
                    "number {} lies in no lease this ledger or the authority knows of",
                    inv.number
                ),
            )
        };
        let (prefix, n) = lookup::split_number(&inv.number).ok_or_else(bad_number)?;
        let lease = rows::leases(tx)?
            .into_iter()
            .find(|l| l.lease.prefix == prefix && (l.lease.first..=l.lease.last).contains(&n))
            .ok_or_else(bad_number)?;
        if n < lease.next {
            return Err(corrupt(
                seq,
                format!(
                    "number {} was already taken in this ledger: the authority's copy and the backup disagree",
                    inv.number
                ),
            ));
        }
        let original_seq = match (&inv.original, inv.kind) {
            (Some(orig), Kind::Credit) => Some(
                rows::invoice_by_number(tx, &orig.number)?
                    .map(|(s, _, _)| s)
                    .ok_or_else(|| {
                        corrupt(
                            seq,
                            format!("it credits {}, which is not in this ledger", orig.number),
                        )
                    })?,
            ),
            _ => None,
        };
        let amount =
            parse_money(&inv.total_amount).ok_or_else(|| corrupt(seq, "its total is not money"))?;
        let cents = crate::issuance::cents(amount)?;
        let json = serde_json::to_string(envelope).map_err(json_error)?;
        crate::issuance::enter_invoice(
            tx,
            envelope,
            &json,
            cents,
            original_seq,
            (head > 0).then_some(head),
            &lease,
            n,
        )?;
        tx.execute(
            "UPDATE leases SET next = ?2 + 1, issued_cents = issued_cents + ?3 WHERE lease_id = ?1",
            params![lease.lease.lease_id, n, cents.saturating_abs()],
        )?;
        Ok(())
    }

    /// Uses up every lease locally and returns the numbers that were left from the lease
    /// of the last invoice on (all of them without one): a lost copy of the device, which
    /// took numbers in the same order, may have used those after the backup. Numbers left
    /// in leases before it were skipped on purpose (an earlier restore) and are not
    /// reported again.
    pub fn retire_leases(&self) -> Result<Vec<NumberRange>> {
        let tx = self.write_tx()?;
        let leases = rows::leases(&tx)?;
        let last_number = match rows::last_invoice(&tx)? {
            Some((seq, _, _)) => {
                let number: String =
                    tx.query_row("SELECT number FROM invoices WHERE seq = ?1", [seq], |r| {
                        r.get(0)
                    })?;
                lookup::split_number(&number).map(|(p, n)| (p.to_string(), n))
            }
            None => None,
        };
        let from = last_number.as_ref().and_then(|(prefix, n)| {
            leases
                .iter()
                .find(|l| &l.lease.prefix == prefix && (l.lease.first..=l.lease.last).contains(n))
                .map(|l| l.lease.first)
        });
        let mut ranges = Vec::new();
        for l in &leases {
            if l.numbers_left() == 0 {
                continue;
            }
            if from.is_none_or(|f| l.lease.first >= f) {
                ranges.push(NumberRange {
                    lease_id: l.lease.lease_id.clone(),
                    first: kaipiao_core::model::invoice_number(&l.lease.prefix, l.next),
                    last: kaipiao_core::model::invoice_number(&l.lease.prefix, l.lease.last),
                    count: l.numbers_left(),
                });
            }
            tx.execute(
                "UPDATE leases SET next = last + 1 WHERE lease_id = ?1",
                [&l.lease.lease_id],
            )?;
        }
        tx.commit()?;
        Ok(ranges)
    }
}
