//! Sealing the device's private key at rest (SPEC 8): the OS keyring where a persistent
//! one exists, else (and always when a passphrase is given) a file sealed with Argon2id +
//! XChaCha20-Poly1305.
//!
//! The device row records which of the two protects the key, so unsealing never guesses.
//! Secret bytes live in `Zeroizing` buffers and are wiped when dropped; no error message,
//! `Debug` output or log line ever contains them.

use crate::error::LedgerError;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kaipiao_core::{Code, FieldError, Msg};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where the passphrase comes from; the caller (CLI or app) decides, the ledger never
/// reads the environment or prompts.
#[derive(Clone, Default)]
pub struct KeySource {
    /// From `KAIPIAO_PASSPHRASE` or a prompt. None: use the OS keyring or fail clearly.
    pub passphrase: Option<zeroize::Zeroizing<String>>,
}

impl KeySource {
    /// A source that seals and unseals with this passphrase.
    pub fn with_passphrase(passphrase: &str) -> KeySource {
        KeySource {
            passphrase: Some(Zeroizing::new(passphrase.to_string())),
        }
    }
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySource { .. }")
    }
}

/// How the device key is protected; recorded in the device row at `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// [`SEALED_KEY_FILE`] in the data directory, sealed under a passphrase.
    PassphraseFile,
    /// The OS keyring (Secret Service, Keychain, Credential Manager).
    OsKeyring,
}

impl Protection {
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::PassphraseFile => "passphrase_file",
            Protection::OsKeyring => "os_keyring",
        }
    }

    pub fn parse(s: &str) -> Option<Protection> {
        match s {
            "passphrase_file" => Some(Protection::PassphraseFile),
            "os_keyring" => Some(Protection::OsKeyring),
            _ => None,
        }
    }
}

/// File name of the passphrase-sealed key inside the data directory.
pub const SEALED_KEY_FILE: &str = "device-key.sealed";
/// Service name of the keyring entries; the entry's user is the device row's key id.
pub const KEYRING_SERVICE: &str = "kaipiao";
/// The message every caller shows when neither a passphrase nor a keyring is available.
pub const NO_KEYRING: &str =
    "no OS keyring is available here: set KAIPIAO_PASSPHRASE (or run from a terminal to be prompted)";

const FORMAT_VERSION: u32 = 1;
const KDF: &str = "argon2id";
const CIPHER: &str = "xchacha20poly1305";
/// OWASP's Argon2id recommendation (19 MiB, 2 passes, 1 lane): about 50 ms on a laptop,
/// costly enough per guess for an attacker who copied the file.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;

/// The sealed key file. Everything but the ciphertext is public; the public key is bound
/// as associated data so a sealed file cannot be swapped in from another device.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedKey {
    version: u32,
    kdf: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
    /// SHA-256 (hex) of the second half of the Argon2 output. It tells a wrong passphrase
    /// from a damaged ciphertext, which the AEAD alone cannot; it gives an attacker nothing
    /// the AEAD does not (each guess still costs one Argon2 run).
    check: String,
    cipher: String,
    nonce: String,
    ciphertext: String,
    public_key: String,
}

fn key_error(msg: impl Into<String>) -> LedgerError {
    LedgerError::Key(msg.into())
}

/// Seals `secret` as [`KeySource`] asks: a passphrase always means the sealed file.
pub(crate) fn seal(
    dir: &Path,
    key_id: &str,
    secret: &[u8; 32],
    public_key: &str,
    keys: &KeySource,
) -> Result<Protection, LedgerError> {
    match &keys.passphrase {
        Some(pass) => {
            seal_file(&dir.join(SEALED_KEY_FILE), secret, public_key, pass)?;
            Ok(Protection::PassphraseFile)
        }
        None => {
            keyring_store(key_id, secret)?;
            Ok(Protection::OsKeyring)
        }
    }
}

/// Unseals the key the way the device row says it was sealed, and checks that it is the
/// device's key (its public half equals `public_key`).
pub(crate) fn unseal(
    dir: &Path,
    key_id: &str,
    protection: Protection,
    public_key: &str,
    keys: &KeySource,
) -> Result<Zeroizing<[u8; 32]>, LedgerError> {
    let secret = match protection {
        Protection::PassphraseFile => {
            let Some(pass) = &keys.passphrase else {
                return Err(key_error(
                    "the device key is sealed with a passphrase: set KAIPIAO_PASSPHRASE (or run from a terminal to be prompted)",
                ));
            };
            unseal_file(&dir.join(SEALED_KEY_FILE), public_key, pass)?
        }
        Protection::OsKeyring => keyring_load(key_id)?,
    };
    if !is_device_key(&secret, public_key) {
        return Err(key_error(
            "the unsealed key is not this device's key (its public key differs from the ledger's); restore the data directory's own key",
        ));
    }
    Ok(secret)
}

/// Whether `secret` is the private half of `public_key` (standard base64).
fn is_device_key(secret: &[u8; 32], public_key: &str) -> bool {
    kaipiao_core::DeviceKey::from_bytes(secret)
        .public()
        .to_base64()
        == public_key
}

/// For a backup: the key in the OS keyring (entry `key_id`), sealed under `pass` as a
/// sealed key file's text, written through `scratch` (a temporary path, removed).
pub(crate) fn seal_copy(
    key_id: &str,
    public_key: &str,
    pass: &str,
    scratch: &Path,
) -> Result<String, LedgerError> {
    let secret = keyring_load(key_id)?;
    if !is_device_key(&secret, public_key) {
        return Err(key_error(
            "the key in the OS keyring is not this device's key; no backup was written",
        ));
    }
    let path = scratch.with_extension("key");
    let sealed = seal_file(&path, &secret, public_key, pass)
        .and_then(|()| std::fs::read_to_string(&path).map_err(LedgerError::Io));
    let _ = std::fs::remove_file(&path);
    sealed
}

/// For a restore: writes a sealed key file's `text` (from a backup) to `path`, atomically
/// and private, after checking that it is one (it is opened later, with its passphrase).
pub(crate) fn write_sealed(path: &Path, text: &str) -> Result<(), LedgerError> {
    let sealed: SealedKey = serde_json::from_str(text).map_err(|_| {
        key_error(
            "the sealed key in the backup is damaged (not the expected JSON); no restore was made",
        )
    })?;
    if sealed.version != FORMAT_VERSION || sealed.kdf != KDF || sealed.cipher != CIPHER {
        return Err(key_error(
            "the sealed key in the backup has an unknown version, KDF or cipher; no restore was made",
        ));
    }
    write_atomically(path, text.as_bytes())
}

/// Argon2id output: 32 bytes of cipher key, then 32 bytes hashed into the check value.
fn derive(
    pass: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 64]>, LedgerError> {
    let params = Params::new(m, t, p, Some(64)).map_err(|e| {
        key_error(format!(
            "unusable Argon2 parameters in the sealed key file: {e}"
        ))
    })?;
    let mut out = Zeroizing::new([0u8; 64]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pass.as_bytes(), salt, out.as_mut())
        .map_err(|e| key_error(format!("key derivation failed: {e}")))?;
    Ok(out)
}

fn check_value(derived: &[u8; 64]) -> String {
    kaipiao_core::sha256_hex(&derived[32..])
}

fn seal_file(
    path: &Path,
    secret: &[u8; 32],
    public_key: &str,
    pass: &str,
) -> Result<(), LedgerError> {
    if pass.is_empty() {
        return Err(LedgerError::Invalid(FieldError::msg(
            Code::PassphraseEmpty,
            "passphrase",
            Msg::new("passphrase_empty"),
        )));
    }
    let aad = B64
        .decode(public_key)
        .map_err(|_| key_error("the device public key is not base64"))?;
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let derived = derive(pass, &salt, M_COST_KIB, T_COST, P_COST)?;
    let cipher = XChaCha20Poly1305::new_from_slice(&derived[..32])
        .map_err(|_| key_error("cipher key of the wrong length"))?;
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .map_err(|_| key_error("sealing the device key failed"))?;
    let sealed = SealedKey {
        version: FORMAT_VERSION,
        kdf: KDF.into(),
        m_cost_kib: M_COST_KIB,
        t_cost: T_COST,
        p_cost: P_COST,
        salt: B64.encode(salt),
        check: check_value(&derived),
        cipher: CIPHER.into(),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
        public_key: public_key.to_string(),
    };
    let text = serde_json::to_vec_pretty(&sealed).map_err(|e| LedgerError::Io(e.into()))?;
    write_atomically(path, &text)?;
    Ok(())
}

/// Writes to a temporary file, syncs it and renames it over `path`, so a crash leaves
/// either the old file or the new one, never half a key.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let mut tmp = PathBuf::from(path);
    tmp.set_extension("sealed.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        // The rename is durable only once the directory entry is; not possible on Windows.
        #[cfg(unix)]
        std::fs::File::open(parent)?.sync_all()?;
        #[cfg(not(unix))]
        let _ = parent;
    }
    Ok(())
}

fn unseal_file(
    path: &Path,
    public_key: &str,
    pass: &str,
) -> Result<Zeroizing<[u8; 32]>, LedgerError> {
    let shown = path.display();
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(key_error(format!(
                "the sealed key file {shown} is missing; restore it from the backup of this data directory"
            )))
        }
        Err(e) => return Err(LedgerError::Io(e)),
    };
    let damaged = |why: &str| {
        key_error(format!("the sealed key file {shown} is damaged or was edited ({why}); restore it from a backup"))
    };
    let sealed: SealedKey =
        serde_json::from_slice(&text).map_err(|_| damaged("not the expected JSON"))?;
    if sealed.version != FORMAT_VERSION || sealed.kdf != KDF || sealed.cipher != CIPHER {
        return Err(damaged("unknown version, KDF or cipher"));
    }
    // Bounds keep a tampered file from making us allocate gigabytes or spin for hours.
    if !(8..=1_048_576).contains(&sealed.m_cost_kib)
        || !(1..=16).contains(&sealed.t_cost)
        || !(1..=16).contains(&sealed.p_cost)
    {
        return Err(damaged("Argon2 parameters out of range"));
    }
    let salt = B64.decode(&sealed.salt).map_err(|_| damaged("salt"))?;
    let nonce = B64.decode(&sealed.nonce).map_err(|_| damaged("nonce"))?;
    let ciphertext = B64
        .decode(&sealed.ciphertext)
        .map_err(|_| damaged("ciphertext"))?;
    if salt.len() < 8 || nonce.len() != NONCE_LEN {
        return Err(damaged("salt or nonce length"));
    }
    let derived = derive(pass, &salt, sealed.m_cost_kib, sealed.t_cost, sealed.p_cost)?;
    if check_value(&derived) != sealed.check {
        return Err(LedgerError::WrongPassphrase);
    }
    // The device row's public key, not the file's: a file from another device fails here.
    let aad = B64
        .decode(public_key)
        .map_err(|_| key_error("the device public key is not base64"))?;
    let cipher = XChaCha20Poly1305::new_from_slice(&derived[..32])
        .map_err(|_| key_error("cipher key of the wrong length"))?;
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                key_error(format!(
                    "the sealed key file {shown} was tampered with or belongs to another device (authentication failed); restore it from a backup"
                ))
            })?,
    );
    to_secret(&plain).ok_or_else(|| damaged("secret length"))
}

fn to_secret(bytes: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    if bytes.len() != 32 {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(bytes);
    Some(out)
}

/// True when the platform's default keyring keeps credentials until deleted. Without one
/// of the platform features, keyring falls back to an in-memory mock that would "work"
/// and lose the key at exit: that must count as no keyring.
fn persistent_keyring() -> bool {
    matches!(
        keyring::default::default_credential_builder().persistence(),
        keyring::credential::CredentialPersistence::UntilDelete
    )
}

fn keyring_store(key_id: &str, secret: &[u8; 32]) -> Result<(), LedgerError> {
    if !persistent_keyring() {
        return Err(key_error(NO_KEYRING));
    }
    let entry = keyring::Entry::new(KEYRING_SERVICE, key_id).map_err(|_| key_error(NO_KEYRING))?;
    let encoded = Zeroizing::new(B64.encode(secret));
    // Probe by storing and reading back: a Secret Service that is present but locked or
    // broken must not be trusted with the only copy of the key.
    entry
        .set_password(&encoded)
        .map_err(|_| key_error(NO_KEYRING))?;
    let back = Zeroizing::new(entry.get_password().map_err(|_| key_error(NO_KEYRING))?);
    if *back != *encoded {
        let _ = entry.delete_credential();
        return Err(key_error(NO_KEYRING));
    }
    Ok(())
}

fn keyring_load(key_id: &str) -> Result<Zeroizing<[u8; 32]>, LedgerError> {
    let entry = keyring::Entry::new(KEYRING_SERVICE, key_id)
        .map_err(|e| key_error(format!("the OS keyring cannot be opened: {e}")))?;
    let encoded = Zeroizing::new(entry.get_password().map_err(|e| match e {
        keyring::Error::NoEntry => key_error(format!(
            "the device key is missing from the OS keyring (service {KEYRING_SERVICE}, entry {key_id}); restore it or set up a new data directory"
        )),
        other => key_error(format!(
            "the OS keyring could not be read ({other}); unlock it and try again"
        )),
    })?);
    let raw = Zeroizing::new(
        B64.decode(encoded.as_bytes())
            .map_err(|_| key_error("the OS keyring entry of the device key is damaged"))?,
    );
    to_secret(&raw).ok_or_else(|| key_error("the OS keyring entry of the device key is damaged"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_wrong_passphrase_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let secret = [42u8; 32];
        let public = kaipiao_core::DeviceKey::from_bytes(&secret)
            .public()
            .to_base64();
        let keys = KeySource::with_passphrase("correct horse");
        assert_eq!(
            seal(dir.path(), "k", &secret, &public, &keys).unwrap(),
            Protection::PassphraseFile
        );
        let back = unseal(dir.path(), "k", Protection::PassphraseFile, &public, &keys).unwrap();
        assert_eq!(*back, secret);

        let wrong = KeySource::with_passphrase("battery staple");
        let e = unseal(dir.path(), "k", Protection::PassphraseFile, &public, &wrong).unwrap_err();
        assert!(e.to_string().contains("wrong passphrase"), "{e}");

        let path = dir.path().join(SEALED_KEY_FILE);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut ct = B64.decode(v["ciphertext"].as_str().unwrap()).unwrap();
        ct[0] ^= 1;
        v["ciphertext"] = B64.encode(ct).into();
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = unseal(dir.path(), "k", Protection::PassphraseFile, &public, &keys).unwrap_err();
        assert!(e.to_string().contains("tampered"), "{e}");
    }

    #[test]
    fn the_secret_is_not_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = [7u8; 32];
        let public = kaipiao_core::DeviceKey::from_bytes(&secret)
            .public()
            .to_base64();
        seal(
            dir.path(),
            "k",
            &secret,
            &public,
            &KeySource::with_passphrase("p"),
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join(SEALED_KEY_FILE)).unwrap();
        assert!(!text.contains(&B64.encode(secret)));
        assert!(!format!("{:?}", KeySource::with_passphrase("hunter2")).contains("hunter2"));
    }
}
