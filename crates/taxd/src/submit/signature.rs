//! Step 4's first part, who signed the envelope: an enrolled device, whose key verifies
//! the envelope's hash and signature (else 422 `integrity`). Checked outside any
//! transaction, so that the write lock is never held for cryptography: alone for a lone
//! submission, and with one Ed25519 batch verification for a batch. Nothing
//! unauthenticated reaches the later steps.

use super::request::Prepared;
use crate::auth::device_key;
use crate::error::ErrorAnswer;
use crate::Shared;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use kaipiao_core::model::{Envelope, Invoice};
use kaipiao_core::sign::{verify_envelope, PublicKey, SignatureError, INVOICE_DOMAIN};
use std::collections::HashMap;

/// Batch verification pays off from two signatures up.
const MIN_VERIFY_BATCH: usize = 2;

/// Step 4's signature part for a lone envelope. Keys never change once enrolled, so the
/// cached key is as good as the stored one.
pub(super) fn authenticate(shared: &Shared, envelope: &Envelope) -> Result<(), ErrorAnswer> {
    let inv = &envelope.invoice;
    let key = device_key(shared, &inv.device_id)?.ok_or_else(|| unknown_device(inv))?;
    verify_envelope(&key, envelope).map_err(integrity_of)
}

/// Step 4's signature part for every item of a batch that reached it.
///
/// The signatures that can be checked together (known device, hash matching the invoice,
/// well-formed signature, a key that is not of small order) go through one
/// `ed25519_dalek::verify_batch`. When it fails, which item is bad is found by checking
/// each alone with the very check a lone submission gets, so a bad signature is
/// reported on its own item and only there. Batch verification accepts exactly the
/// signatures that satisfy the Ed25519 equation; `verify_strict` (the lone check) also
/// refuses a few non-canonical encodings that only the holder of the device key could
/// construct and that no conforming signer produces. An honest device therefore gets
/// the same answer either way.
pub(super) fn authenticate_all(
    shared: &Shared,
    prepared: &mut [Prepared],
) -> Result<(), ErrorAnswer> {
    let mut keys: HashMap<String, Option<(PublicKey, Option<VerifyingKey>)>> = HashMap::new();
    let mut together: Vec<(usize, PublicKey, Signature, VerifyingKey)> = Vec::new();
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for (i, p) in prepared.iter_mut().enumerate() {
        let Prepared::Ready(ready) = p else { continue };
        let device = ready.envelope.invoice.device_id.clone();
        let key = match keys.get(&device) {
            Some(k) => *k,
            None => {
                let k = device_key(shared, &device)?.map(|pk| (pk, batchable_key(&pk)));
                keys.insert(device, k);
                k
            }
        };
        let Some((public, verifying)) = key else {
            ready.authentic = Err(unknown_device(&ready.envelope.invoice));
            continue;
        };
        match (verifying, decode_signature(&ready.envelope.signature)) {
            (Some(vk), Some(sig)) if ready.hash == ready.envelope.hash => {
                let mut message = Vec::with_capacity(INVOICE_DOMAIN.len() + ready.canonical.len());
                message.extend_from_slice(INVOICE_DOMAIN);
                message.extend_from_slice(&ready.canonical);
                messages.push(message);
                together.push((i, public, sig, vk));
            }
            _ => ready.authentic = verify_envelope(&public, &ready.envelope).map_err(integrity_of),
        }
    }
    let all_good = together.len() >= MIN_VERIFY_BATCH && {
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let sigs: Vec<Signature> = together.iter().map(|t| t.2).collect();
        let vks: Vec<VerifyingKey> = together.iter().map(|t| t.3).collect();
        ed25519_dalek::verify_batch(&refs, &sigs, &vks).is_ok()
    };
    if !all_good {
        for &(i, public, _, _) in &together {
            if let Some(Prepared::Ready(ready)) = prepared.get_mut(i) {
                let alone = public
                    .verify(INVOICE_DOMAIN, &ready.canonical, &ready.envelope.signature)
                    .map_err(integrity_of);
                ready.authentic = alone;
            }
        }
    }
    Ok(())
}

/// The key for batch verification, or None to check this device's signatures one by one
/// (a small-order key, which `verify_strict` refuses and batch verification would not).
fn batchable_key(key: &PublicKey) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(key.to_base64()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes)
        .ok()
        .filter(|vk| !vk.is_weak())
}

fn decode_signature(text: &str) -> Option<Signature> {
    let bytes: [u8; 64] = B64.decode(text).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

fn unknown_device(inv: &Invoice) -> ErrorAnswer {
    ErrorAnswer::integrity(
        format!(
            "device {:?} is not enrolled with this authority",
            inv.device_id
        ),
        "invoice.device_id",
    )
}

/// Step 4's answer to an envelope whose hash or device signature does not check out.
fn integrity_of(e: SignatureError) -> ErrorAnswer {
    match e {
        SignatureError::HashMismatch => ErrorAnswer::integrity(
            "the hash field is not the SHA-256 of the canonical invoice",
            "hash",
        ),
        other => ErrorAnswer::integrity(
            format!("the device signature does not verify: {other}"),
            "signature",
        ),
    }
}
