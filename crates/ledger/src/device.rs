//! The device: set up once by `init` (seller, name, the sealed key), enrolled with the
//! authority (its key pinned, its endpoints recorded), and its key unsealed for the
//! callers that sign.

use crate::keystore::{self, KeySource, Protection};
use crate::{invalid, json_error, rows, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::rfc3339;
use kaipiao_core::{Code, DeviceKey, Msg, Party, PublicKey};
use rusqlite::params;
use serde::Serialize;

/// The local device as set up by `init` and `enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalDevice {
    /// Assigned by the authority at enrolment; None before.
    pub device_id: Option<String>,
    pub device_name: String,
    pub seller: Party,
    /// Standard base64 of the device's Ed25519 public key.
    pub public_key: String,
    /// Pinned at enrolment; receipts and leases must verify against it.
    pub authority_public_key: Option<String>,
    /// Primary first, then backups.
    pub servers: Vec<String>,
    /// Plain-`http://` endpoints allowed on purpose at enrolment (for tests); every other
    /// endpoint is `https://` or this machine.
    pub insecure_servers: Vec<String>,
    /// Whether the authority said at enrolment that it is a sandbox (`/v1/health`);
    /// None when it was not recorded (enrolled before it was, or an authority that does
    /// not say). Printed invoices treat None as a sandbox: never passed off as real.
    pub authority_sandbox: Option<bool>,
    pub created_at: String,
    pub enrolled_at: Option<String>,
    /// How the private key is sealed: a CLI prompts for a passphrase only for
    /// [`Protection::PassphraseFile`].
    pub key_protection: Protection,
}

/// Endpoints must be http(s) URLs; anything else would only fail later, at sync time.
/// The addresses normalised and checked, the transport rule included: `https://`, this
/// machine, or a plain-http endpoint in `allowed_plain`.
fn check_servers(servers: &[String], allowed_plain: &[String]) -> Result<Vec<String>> {
    servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            kaipiao_core::server::normalize_server(s)
                .and_then(|n| kaipiao_core::server::check_transport(&n, allowed_plain).map(|()| n))
                .map_err(|p| {
                    invalid(
                        Code::InvalidServer,
                        &format!("servers[{i}]"),
                        Msg::new("invalid_server")
                            .arg("value", format!("{s:?}"))
                            .arg("problem", p.msg()),
                    )
                })
        })
        .collect()
}

impl Ledger {
    /// Sets up the device: validates the seller, creates and seals the key. Refused when
    /// the directory already holds a device.
    pub fn init(
        &self,
        seller: &Party,
        device_name: &str,
        keys: &KeySource,
        now: DateTime<Utc>,
    ) -> Result<LocalDevice> {
        let seller = kaipiao_core::draft::validate_seller(seller)?;
        let name = device_name.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > 100 || name.chars().any(char::is_control) {
            return Err(invalid(
                if chars == 0 {
                    Code::MissingField
                } else {
                    Code::InvalidText
                },
                "device_name",
                Msg::new("invalid_text-device-name").arg("count", chars),
            ));
        }
        // The write lock is held while the key is sealed, so two concurrent inits cannot
        // both believe they created the device.
        let tx = self.write_tx()?;
        if rows::load_device(&tx)?.is_some() {
            return Err(LedgerError::AlreadyInitialized);
        }
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, secret.as_mut());
        let public_key = DeviceKey::from_bytes(&secret).public().to_base64();
        let key_id = format!("device-key-{}", uuid::Uuid::new_v4().hyphenated());
        let protection = keystore::seal(&self.dir, &key_id, &secret, &public_key, keys)?;
        let seller_json = serde_json::to_string(&seller).map_err(json_error)?;
        tx.execute(
            "INSERT INTO device (id, key_id, key_protection, device_name, seller, public_key, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
            params![key_id, protection.as_str(), name, seller_json, public_key, rfc3339(now)],
        )?;
        tx.commit()?;
        Ok(LocalDevice {
            device_id: None,
            device_name: name.to_string(),
            seller,
            public_key,
            authority_public_key: None,
            servers: Vec::new(),
            insecure_servers: Vec::new(),
            authority_sandbox: None,
            created_at: rfc3339(now),
            enrolled_at: None,
            key_protection: protection,
        })
    }

    pub fn device(&self) -> Result<Option<LocalDevice>> {
        Ok(rows::load_device(&self.conn)?.map(|d| d.public()))
    }

    /// Unseals the device key (only issue, import, enroll and sync need it).
    pub fn unseal_key(&self, keys: &KeySource) -> Result<DeviceKey> {
        let dev = rows::require_device(&self.conn)?;
        let secret = keystore::unseal(
            &self.dir,
            &dev.key_id,
            dev.protection,
            &dev.public_key,
            keys,
        )?;
        Ok(DeviceKey::from_bytes(&secret))
    }

    /// Records whether the authority says it is a sandbox (its `/v1/health`), read at
    /// enrolment: printed invoices say so.
    pub fn set_authority_sandbox(&self, sandbox: bool) -> Result<()> {
        self.update_device(
            "UPDATE device SET authority_sandbox = ?1 WHERE id = 1",
            [sandbox],
        )
    }

    /// Records the authority's answer to enrolment; pins its key.
    pub fn record_enrollment(
        &self,
        device_id: &str,
        authority_public_key: &str,
        servers: &[String],
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.record_enrollment_allowing(device_id, authority_public_key, servers, &[], now)
    }

    /// [`Ledger::record_enrollment`], with the plain-`http://` endpoints of `servers`
    /// the shop allowed on purpose (`kaipiao enroll --allow-insecure-http`): kept with the
    /// device, so that the list can be set again later with the same ones.
    pub fn record_enrollment_allowing(
        &self,
        device_id: &str,
        authority_public_key: &str,
        servers: &[String],
        allowed_plain: &[String],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let device_id = device_id.trim();
        let canonical = uuid::Uuid::parse_str(device_id).map(|u| u.hyphenated().to_string());
        if canonical.as_deref() != Ok(device_id) {
            return Err(invalid(
                Code::InvalidDeviceId,
                "device_id",
                Msg::new("invalid_device_id").arg("value", format!("{device_id:?}")),
            ));
        }
        let authority_public_key = authority_public_key.trim();
        if PublicKey::from_base64(authority_public_key).is_err() {
            return Err(invalid(
                Code::InvalidPublicKey,
                "authority_public_key",
                Msg::new("invalid_public_key"),
            ));
        }
        let allowed_plain: Vec<String> = allowed_plain
            .iter()
            .filter_map(|a| kaipiao_core::server::normalize_server(a).ok())
            .collect();
        let servers = check_servers(servers, &allowed_plain)?;
        let servers_json = serde_json::to_string(&servers).map_err(json_error)?;
        let insecure: Vec<&String> = servers
            .iter()
            .filter(|s| kaipiao_core::server::check_transport(s, &[]).is_err())
            .collect();
        let insecure_json = serde_json::to_string(&insecure).map_err(json_error)?;
        let tx = self.write_tx()?;
        let dev = rows::require_device(&tx)?;
        if let Some(existing) = &dev.device_id {
            if existing != device_id {
                return Err(invalid(
                    Code::DeviceIdChanged,
                    "device_id",
                    Msg::new("device_id_changed")
                        .arg("existing", existing)
                        .arg("answered", device_id),
                ));
            }
        }
        if let Some(pinned) = &dev.authority_public_key {
            if pinned != authority_public_key {
                return Err(invalid(
                    Code::AuthorityKeyChanged,
                    "authority_public_key",
                    Msg::new("authority_key_changed"),
                ));
            }
        }
        tx.execute(
            "UPDATE device SET device_id = ?1, authority_public_key = ?2, servers = ?3,
                    enrolled_at = COALESCE(enrolled_at, ?4), insecure_servers = ?5
             WHERE id = 1",
            params![
                device_id,
                authority_public_key,
                servers_json,
                rfc3339(now),
                insecure_json
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces the endpoint list (primary first).
    /// Plain `http://` is refused except to this machine or an endpoint allowed at
    /// enrolment.
    pub fn set_servers(&self, servers: &[String]) -> Result<()> {
        let tx = self.write_tx()?;
        let allowed = rows::require_device(&tx)?.insecure_servers;
        let servers = check_servers(servers, &allowed)?;
        let json = serde_json::to_string(&servers).map_err(json_error)?;
        tx.execute("UPDATE device SET servers = ?1 WHERE id = 1", [json])?;
        tx.commit()?;
        Ok(())
    }

    /// One UPDATE of the device row in its own transaction; NotInitialized without a device.
    pub(crate) fn update_device(&self, sql: &str, args: impl rusqlite::Params) -> Result<()> {
        let tx = self.write_tx()?;
        if tx.execute(sql, args)? == 0 {
            return Err(LedgerError::NotInitialized);
        }
        tx.commit()?;
        Ok(())
    }
}
