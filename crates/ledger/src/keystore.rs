//! Sealing the device's private key at rest (SPEC 8): the OS keyring where a persistent
//! one exists, else (and always when a passphrase is given) a file sealed with Argon2id +
//! XChaCha20-Poly1305.

/// Where the passphrase comes from; the caller (CLI or app) decides, the ledger never
/// reads the environment or prompts.
#[derive(Clone, Default)]
pub struct KeySource {
    /// From `KAIPIAO_PASSPHRASE` or a prompt. None: use the OS keyring or fail clearly.
    pub passphrase: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySource { .. }")
    }
}
