//! Delivery by email, offline-first (issue 11, item 7): the shop's SMTP settings, the
//! password sealed under a key derived from the device key, and the queue of deliveries
//! beside the outbox.
//!
//! The password is never stored in plain text: it is sealed with XChaCha20-Poly1305 under
//! HKDF-SHA256 of the device's private key, so it is exactly as protected as that key (the
//! passphrase-sealed file or the OS keyring) and opens wherever the shop can issue.
//!
//! A delivery is claimed before it is sent (`claimed_until`), so two senders (the app's
//! watcher, a `kaipiao deliver` or `sync` in a terminal) never send the same one at once.
//! A sender that dies between the SMTP server's acceptance and [`Ledger::delivery_sent`]
//! leaves the claim to expire and the delivery is sent again: that window is the one way a
//! buyer gets a message twice, and both copies carry the same Message-ID.

use crate::{invalid, Ledger, LedgerError, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Duration, Utc};
use kaipiao_core::time::rfc3339;
use kaipiao_core::{Code, DeviceKey, Msg};
use rand::RngCore;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use zeroize::Zeroizing;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailSecurity {
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// Plain, then STARTTLS, required (submission, usually port 587).
    Starttls,
    /// No encryption: only for a relay on this machine or the shop's own network.
    Plain,
}

impl MailSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            MailSecurity::Tls => "tls",
            MailSecurity::Starttls => "starttls",
            MailSecurity::Plain => "plain",
        }
    }

    pub fn parse(s: &str) -> Option<MailSecurity> {
        match s {
            "tls" => Some(MailSecurity::Tls),
            "starttls" => Some(MailSecurity::Starttls),
            "plain" => Some(MailSecurity::Plain),
            _ => None,
        }
    }
}

/// The shop's SMTP settings (the password is kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailSettings {
    pub host: String,
    pub port: u16,
    /// The login; empty for a relay that takes mail without one.
    pub user: String,
    /// The sender address the buyer sees.
    pub from: String,
    pub security: MailSecurity,
    pub updated_at: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (`next_attempt_at`); `last_error` says why an earlier
    /// one did not go.
    Queued,
    /// Accepted by the SMTP server.
    Sent,
    /// Given up: the server refused it for good, or [`MAX_ATTEMPTS`] attempts failed.
    Failed,
}

impl DeliveryStatus {
    fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "queued" => Some(DeliveryStatus::Queued),
            "sent" => Some(DeliveryStatus::Sent),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One invoice sent (or to be sent) to one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub invoice_id: String,
    pub number: String,
    pub address: String,
    /// The language of the message's body: `zh` or `en`.
    pub lang: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    /// The Message-ID's left part, the same on every attempt.
    pub message_id: String,
    pub created_at: String,
    pub sent_at: Option<String>,
}

/// Attempts before a delivery that keeps failing for a passing reason is given up (with
/// the sender's doubling delays from a minute up to six hours, about a day of trying).
pub const MAX_ATTEMPTS: u32 = 12;

const SEAL_INFO: &[u8] = b"kaipiao smtp password v1";

fn seal_key(key: &DeviceKey) -> Zeroizing<[u8; 32]> {
    let secret = Zeroizing::new(key.secret_bytes());
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, secret.as_slice());
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand(SEAL_INFO, out.as_mut_slice())
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// The sealed password is bound to the settings it was given with.
fn seal_aad(host: &str, user: &str) -> Vec<u8> {
    format!("kaipiao-smtp-v1\n{host}\n{user}").into_bytes()
}

const DELIVERY_COLUMNS: &str = "d.id, i.id, i.number, d.address, d.lang, d.status, d.attempts, d.next_attempt_at, d.last_error, d.message_id, d.created_at, d.sent_at";

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Delivery, String)> {
    let status: String = r.get(5)?;
    Ok((
        Delivery {
            id: r.get(0)?,
            invoice_id: r.get(1)?,
            number: r.get(2)?,
            address: r.get(3)?,
            lang: r.get(4)?,
            status: DeliveryStatus::Queued,
            attempts: r.get(6)?,
            next_attempt_at: r.get(7)?,
            last_error: r.get(8)?,
            message_id: r.get(9)?,
            created_at: r.get(10)?,
            sent_at: r.get(11)?,
        },
        status,
    ))
}

fn typed(row: (Delivery, String)) -> Result<Delivery> {
    let (mut d, status) = row;
    d.status = DeliveryStatus::parse(&status).ok_or_else(|| {
        LedgerError::Storage(format!(
            "delivery {} has an unknown status {status:?}; run kaipiao verify",
            d.id
        ))
    })?;
    Ok(d)
}

impl Ledger {
    /// Stores the SMTP settings, the password sealed under the device key.
    pub fn set_mail_settings(
        &self,
        s: &MailSettings,
        password: &str,
        key: &DeviceKey,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let cipher = XChaCha20Poly1305::new(seal_key(key).as_slice().into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: password.as_bytes(),
                    aad: &seal_aad(&s.host, &s.user),
                },
            )
            .map_err(|_| LedgerError::Key("the SMTP password could not be sealed".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO mail_settings (id, host, port, user, from_addr, security, password_sealed, updated_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET host = ?1, port = ?2, user = ?3, from_addr = ?4,
                 security = ?5, password_sealed = ?6, updated_at = ?7",
            params![
                s.host,
                s.port,
                s.user,
                s.from,
                s.security.as_str(),
                B64.encode(blob),
                rfc3339(now)
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The SMTP settings; None until `kaipiao smtp set` (or the app's settings) gave them.
    pub fn mail_settings(&self) -> Result<Option<MailSettings>> {
        let row: Option<(String, u16, String, String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT host, port, user, from_addr, security, updated_at FROM mail_settings WHERE id = 1",
            )?
            .query_row([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .optional()?;
        let Some((host, port, user, from, security, updated_at)) = row else {
            return Ok(None);
        };
        let security = MailSecurity::parse(&security).ok_or_else(|| {
            LedgerError::Storage(format!(
                "the mail settings name an unknown security {security:?}; set them again with kaipiao smtp set"
            ))
        })?;
        Ok(Some(MailSettings {
            host,
            port,
            user,
            from,
            security,
            updated_at,
        }))
    }

    /// The SMTP password, unsealed with the device key.
    pub fn mail_password(&self, key: &DeviceKey) -> Result<Zeroizing<String>> {
        let row: Option<(String, String, String)> = self
            .conn
            .prepare_cached("SELECT host, user, password_sealed FROM mail_settings WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let damaged = || {
            LedgerError::Key(
                "the sealed SMTP password does not open with this device's key; set it again with kaipiao smtp set".into(),
            )
        };
        let Some((host, user, sealed)) = row else {
            return Ok(Zeroizing::new(String::new()));
        };
        let blob = B64.decode(sealed).map_err(|_| damaged())?;
        if blob.len() < 24 {
            return Err(damaged());
        }
        let cipher = XChaCha20Poly1305::new(seal_key(key).as_slice().into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&blob[..24]),
                    Payload {
                        msg: &blob[24..],
                        aad: &seal_aad(&host, &user),
                    },
                )
                .map_err(|_| damaged())?,
        );
        Ok(Zeroizing::new(
            String::from_utf8(plain.to_vec()).map_err(|_| damaged())?,
        ))
    }

    /// Queues the invoice `number_or_id` for `address` (already checked by the caller).
    /// A delivery to the same address still queued, or already sent, is answered instead
    /// of a new one unless `again`: asking twice never sends twice. With `claim`, a queued
    /// delivery no one else holds is claimed for that long in the same transaction (the
    /// caller sends it at once, and no mail thread takes it meanwhile). Answers the
    /// delivery and whether the caller now holds it.
    pub fn queue_delivery(
        &self,
        number_or_id: &str,
        address: &str,
        lang: &str,
        again: bool,
        claim: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<(Delivery, bool)> {
        let tx = self.write_tx()?;
        let Some(seq) = crate::lookup::seq_of(&tx, number_or_id.trim())? else {
            return Err(LedgerError::NotFound(number_or_id.trim().to_string()));
        };
        let (number, status): (String, String) = tx
            .prepare_cached("SELECT number, status FROM invoices WHERE seq = ?1")?
            .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if status == "rejected" {
            return Err(invalid(
                Code::NotPrintable,
                "number",
                Msg::new("not_printable-rejected").arg("number", &number),
            ));
        }
        let existing: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM deliveries WHERE invoice_seq = ?1 AND address = ?2
                 AND (status = 'queued' OR (status = 'sent' AND ?3 = 0)) ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![seq, address, again], |r| r.get(0))
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => {
                let mut tag = [0u8; 8];
                rand::rngs::OsRng.fill_bytes(&mut tag);
                let message_id = format!(
                    "kaipiao.{number}.{}",
                    tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
                );
                tx.execute(
                    "INSERT INTO deliveries (invoice_seq, address, lang, status, attempts, next_attempt_at, message_id, created_at)
                     VALUES (?1, ?2, ?3, 'queued', 0, ?4, ?5, ?4)",
                    params![seq, address, lang, rfc3339(now), message_id],
                )?;
                tx.last_insert_rowid()
            }
        };
        let held =
            match claim {
                Some(hold) => tx.execute(
                    "UPDATE deliveries SET claimed_until = ?2 WHERE id = ?1 AND status = 'queued'
                       AND (claimed_until IS NULL OR claimed_until <= ?3)",
                    params![id, rfc3339(now + hold), rfc3339(now)],
                )? == 1,
                None => false,
            };
        let d = Self::delivery_in(&tx, id)?;
        tx.commit()?;
        Ok((d, held))
    }

    fn delivery_in(conn: &rusqlite::Connection, id: i64) -> Result<Delivery> {
        let row = conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN invoices i ON i.seq = d.invoice_seq WHERE d.id = ?1"
            ))?
            .query_row([id], delivery_row)
            .optional()?
            .ok_or_else(|| LedgerError::NotFound(format!("delivery {id}")))?;
        typed(row)
    }

    /// One delivery by id.
    pub fn delivery(&self, id: i64) -> Result<Delivery> {
        Self::delivery_in(&self.conn, id)
    }

    /// Claims the oldest queued delivery due at `now` that no other sender holds, for
    /// `hold`. None when there is nothing to claim.
    pub fn claim_delivery(&self, now: DateTime<Utc>, hold: Duration) -> Result<Option<Delivery>> {
        let tx = self.write_tx()?;
        let at = rfc3339(now);
        let picked: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM deliveries WHERE status = 'queued' AND next_attempt_at <= ?1
                   AND (claimed_until IS NULL OR claimed_until <= ?1)
                 ORDER BY next_attempt_at, id LIMIT 1",
            )?
            .query_row([&at], |r| r.get(0))
            .optional()?;
        let Some(picked) = picked else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE deliveries SET claimed_until = ?2 WHERE id = ?1",
            params![picked, rfc3339(now + hold)],
        )?;
        let d = Self::delivery_in(&tx, picked)?;
        tx.commit()?;
        Ok(Some(d))
    }

    /// The SMTP server accepted the message. (A delivery no longer queued, which another
    /// sender finished meanwhile, is left as it is.)
    pub fn delivery_sent(&self, id: i64, now: DateTime<Utc>) -> Result<Delivery> {
        let tx = self.write_tx()?;
        tx.execute(
            "UPDATE deliveries SET status = 'sent', sent_at = ?2, attempts = attempts + 1,
                 claimed_until = NULL, last_error = NULL WHERE id = ?1 AND status = 'queued'",
            params![id, rfc3339(now)],
        )?;
        let d = Self::delivery_in(&tx, id)?;
        tx.commit()?;
        Ok(d)
    }

    /// An attempt failed with `error`: given up when `permanent` or after
    /// [`MAX_ATTEMPTS`], else queued again `retry_after` (the sender's backoff for the
    /// attempt count it is given) from `now`.
    pub fn delivery_failed(
        &self,
        id: i64,
        error: &str,
        permanent: bool,
        retry_after: impl FnOnce(u32) -> Duration,
        now: DateTime<Utc>,
    ) -> Result<Delivery> {
        let tx = self.write_tx()?;
        let attempts: u32 = tx
            .prepare_cached("SELECT attempts FROM deliveries WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let attempts = attempts + 1;
        let give_up = permanent || attempts >= MAX_ATTEMPTS;
        tx.execute(
            "UPDATE deliveries SET status = ?2, attempts = ?3, last_error = ?4,
                 next_attempt_at = ?5, claimed_until = NULL WHERE id = ?1 AND status = 'queued'",
            params![
                id,
                if give_up { "failed" } else { "queued" },
                attempts,
                error,
                rfc3339(now + retry_after(attempts))
            ],
        )?;
        let d = Self::delivery_in(&tx, id)?;
        tx.commit()?;
        Ok(d)
    }

    /// The deliveries of one invoice, oldest first.
    pub fn deliveries(&self, number_or_id: &str) -> Result<Vec<Delivery>> {
        let Some(seq) = crate::lookup::seq_of(&self.conn, number_or_id.trim())? else {
            return Err(LedgerError::NotFound(number_or_id.trim().to_string()));
        };
        let rows = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN invoices i ON i.seq = d.invoice_seq
                 WHERE d.invoice_seq = ?1 ORDER BY d.id"
            ))?
            .query_map([seq], delivery_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(typed).collect()
    }

    /// How many queued deliveries are due at `now` and held by no sender.
    pub fn deliveries_due(&self, now: DateTime<Utc>) -> Result<u32> {
        let at = rfc3339(now);
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM deliveries WHERE status = 'queued' AND next_attempt_at <= ?1
                   AND (claimed_until IS NULL OR claimed_until <= ?1)",
            )?
            .query_row([&at], |r| r.get(0))?)
    }
}
