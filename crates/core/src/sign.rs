//! Ed25519 for everything Kaipiao signs, each with its own domain prefix so a signature
//! made for one purpose can never be replayed as another:
//! invoices (`KAIPIAO-INVOICE-V1`), leases (`-LEASE-V1`), receipts (`-RECEIPT-V1`) and
//! device-authenticated requests (`-REQUEST-V1`).

use crate::canonical::{canonical_bytes, sha256_hex};
use crate::model::{Envelope, Invoice};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha512};
use std::collections::HashMap;

pub const INVOICE_DOMAIN: &[u8] = b"KAIPIAO-INVOICE-V1\n";
pub const LEASE_DOMAIN: &[u8] = b"KAIPIAO-LEASE-V1\n";
pub const RECEIPT_DOMAIN: &[u8] = b"KAIPIAO-RECEIPT-V1\n";
pub const REQUEST_DOMAIN: &[u8] = b"KAIPIAO-REQUEST-V1\n";
/// The authority's signature on a verdict that stops a device's queue (SPEC 10).
pub const VERDICT_DOMAIN: &[u8] = b"KAIPIAO-VERDICT-V1\n";

/// Why a signature or hash did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the public key is not 32 bytes of standard base64")]
    BadPublicKey,
    #[error("the signature is not 64 bytes of standard base64")]
    BadSignatureEncoding,
    #[error("the signature does not verify")]
    Mismatch,
    #[error("the hash field is not the SHA-256 of the canonical invoice")]
    HashMismatch,
    #[error("the signed object is not a JSON object with a signature field")]
    NotAnObject,
}

/// The device's (or the authority's) private key. Built from 32 secret bytes that the
/// caller generated or unsealed; never serialised by this crate.
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    pub fn from_bytes(secret: &[u8; 32]) -> DeviceKey {
        DeviceKey(SigningKey::from_bytes(secret))
    }

    /// Whether this is the key of the device whose public key (standard base64, as the
    /// ledger stores it) is `public_key`: the one check before signing or syncing.
    pub fn belongs_to(&self, public_key: &str) -> bool {
        self.public().to_base64() == public_key
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Standard base64 of the signature over `domain` + `message`.
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> String {
        let mut buf = Vec::with_capacity(domain.len() + message.len());
        buf.extend_from_slice(domain);
        buf.extend_from_slice(message);
        B64.encode(self.0.sign(&buf).to_bytes())
    }
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey(public {})", self.public().to_base64())
    }
}

/// A public key, written as standard padded base64 of its 32 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn from_base64(s: &str) -> Result<PublicKey, SignatureError> {
        let raw = B64.decode(s).map_err(|_| SignatureError::BadPublicKey)?;
        let arr: [u8; 32] = raw.try_into().map_err(|_| SignatureError::BadPublicKey)?;
        VerifyingKey::from_bytes(&arr)
            .map(PublicKey)
            .map_err(|_| SignatureError::BadPublicKey)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    /// The key's fingerprint, for a person to compare: the lowercase hex SHA-256 of the
    /// raw 32-byte key (what taxd prints at start and `enroll --authority-key` takes).
    pub fn fingerprint(&self) -> String {
        crate::canonical::sha256_hex(self.0.as_bytes())
    }

    /// A fingerprint as a person typed it: trimmed and lowercased; None unless it is 64
    /// hex digits (the CLI's `--authority-key`, the app's set-up field).
    pub fn parse_fingerprint(text: &str) -> Option<String> {
        let t = text.trim().to_ascii_lowercase();
        (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(t)
    }

    pub fn verify(
        &self,
        domain: &[u8],
        message: &[u8],
        signature_b64: &str,
    ) -> Result<(), SignatureError> {
        let raw = B64
            .decode(signature_b64)
            .map_err(|_| SignatureError::BadSignatureEncoding)?;
        let arr: [u8; 64] = raw
            .try_into()
            .map_err(|_| SignatureError::BadSignatureEncoding)?;
        let sig = Signature::from_bytes(&arr);
        let mut buf = Vec::with_capacity(domain.len() + message.len());
        buf.extend_from_slice(domain);
        buf.extend_from_slice(message);
        self.0
            .verify_strict(&buf, &sig)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// One signature of many to check with [`verify_many`].
#[derive(Clone, Copy)]
pub struct Signed<'a> {
    pub key: &'a PublicKey,
    pub domain: &'a [u8],
    pub message: &'a [u8],
    /// Standard base64, as on the wire.
    pub signature: &'a str,
}

/// Batch verification pays off from two signatures up.
const MIN_VERIFY_BATCH: usize = 2;

/// Checks many signatures, one result per item: those that can go together (a well-formed
/// signature under a key that is not of small order) through one batch equation
/// ([`verify_together`], about a third of the cost of checking each alone); when that
/// fails, each is checked alone with [`PublicKey::verify`], so a bad one is named on its
/// own item and only there. Batch verification accepts exactly the signatures that
/// satisfy the Ed25519 equation; `verify_strict` (the lone check) also refuses a few
/// non-canonical encodings that only the key's holder could construct and no conforming
/// signer produces, so an honest signer gets the same answer either way.
pub fn verify_many(items: &[Signed<'_>]) -> Vec<Result<(), SignatureError>> {
    let mut results: Vec<Result<(), SignatureError>> = Vec::with_capacity(items.len());
    let mut together: Vec<usize> = Vec::with_capacity(items.len());
    let mut messages: Vec<Vec<u8>> = Vec::with_capacity(items.len());
    let mut signatures: Vec<Signature> = Vec::with_capacity(items.len());
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match decode_signature(item.signature) {
            Some(sig) if !item.key.0.is_weak() => {
                let mut message = Vec::with_capacity(item.domain.len() + item.message.len());
                message.extend_from_slice(item.domain);
                message.extend_from_slice(item.message);
                messages.push(message);
                signatures.push(sig);
                keys.push(item.key.0);
                together.push(i);
                results.push(Ok(()));
            }
            _ => results.push(item.key.verify(item.domain, item.message, item.signature)),
        }
    }
    let all_good =
        together.len() >= MIN_VERIFY_BATCH && verify_together(&messages, &signatures, &keys);
    if !all_good {
        for &i in &together {
            let item = &items[i];
            results[i] = item.key.verify(item.domain, item.message, item.signature);
        }
    }
    results
}

/// Ed25519's batch equation over `signatures` of `messages` under `keys` (one each):
/// `[−∑ zᵢsᵢ]B + ∑ [zᵢ]Rᵢ + ∑ₖ [∑ zᵢhᵢ]Aₖ = 0`, the last sum over the distinct keys, each
/// with the terms of the signatures under it added up, where `hᵢ = SHA-512(Rᵢ‖Aᵢ‖Mᵢ)` and
/// the 128-bit `zᵢ` are drawn from a hash of every input, so that no signer can choose
/// them (as `ed25519_dalek::verify_batch` draws them from a transcript of its inputs).
/// That is `verify_batch`'s equation, with the same checks (`s` canonical, `R` a curve
/// point, no cofactor), but with one point per key instead of one per signature in the
/// multiscalar multiplication: a batch's signatures come from one device or from the
/// authority, and for 200 of them this takes about two thirds of `verify_batch`'s time.
fn verify_together(messages: &[Vec<u8>], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    let n = signatures.len();
    if messages.len() != n || keys.len() != n {
        return false;
    }
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(n + 2);
    let mut s_values: Vec<Scalar> = Vec::with_capacity(n);
    let mut hrams: Vec<Scalar> = Vec::with_capacity(n);
    let mut seed = Sha512::new_with_prefix(b"KAIPIAO-BATCH-VERIFICATION-V1\n");
    for ((message, signature), key) in messages.iter().zip(signatures).zip(keys) {
        let Some(r) = CompressedEdwardsY(*signature.r_bytes()).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))
        else {
            return false;
        };
        let hram: [u8; 64] = Sha512::new()
            .chain_update(signature.r_bytes())
            .chain_update(key.as_bytes())
            .chain_update(message)
            .finalize()
            .into();
        seed.update(hram);
        seed.update(signature.s_bytes());
        points.push(r);
        s_values.push(s);
        hrams.push(Scalar::from_bytes_mod_order_wide(&hram));
    }
    let seed = seed.finalize();
    let mut scalars: Vec<Scalar> = Vec::with_capacity(n + 2);
    let mut basepoint = Scalar::ZERO;
    let mut per_key: HashMap<[u8; 32], (EdwardsPoint, Scalar)> = HashMap::new();
    for (i, ((s, hram), key)) in s_values.iter().zip(&hrams).zip(keys).enumerate() {
        let draw = Sha512::new()
            .chain_update(seed)
            .chain_update((i as u64).to_le_bytes())
            .finalize();
        let mut low = [0u8; 16];
        low.copy_from_slice(&draw[..16]);
        let z = Scalar::from(u128::from_le_bytes(low));
        basepoint += z * s;
        per_key
            .entry(key.to_bytes())
            .or_insert_with(|| (key.to_edwards(), Scalar::ZERO))
            .1 += z * hram;
        scalars.push(z);
    }
    scalars.push(-basepoint);
    points.push(ED25519_BASEPOINT_POINT);
    for (point, coefficient) in per_key.into_values() {
        scalars.push(coefficient);
        points.push(point);
    }
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

fn decode_signature(text: &str) -> Option<Signature> {
    let bytes: [u8; 64] = B64.decode(text).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

/// The canonical bytes and hash of an invoice.
pub fn invoice_hash(invoice: &Invoice) -> (Vec<u8>, String) {
    let bytes = canonical_bytes(invoice);
    let hash = sha256_hex(&bytes);
    (bytes, hash)
}

/// Hashes and signs an invoice into its envelope.
pub fn seal_invoice(key: &DeviceKey, invoice: Invoice) -> Envelope {
    let (bytes, hash) = invoice_hash(&invoice);
    let signature = key.sign(INVOICE_DOMAIN, &bytes);
    Envelope {
        invoice,
        hash,
        signature,
    }
}

/// Recomputes the hash from the invoice object (never trusting the field) and checks the
/// device's signature over the canonical bytes.
pub fn verify_envelope(device: &PublicKey, envelope: &Envelope) -> Result<(), SignatureError> {
    let (bytes, hash) = invoice_hash(&envelope.invoice);
    if hash != envelope.hash {
        return Err(SignatureError::HashMismatch);
    }
    device.verify(INVOICE_DOMAIN, &bytes, &envelope.signature)
}

/// Signs a JSON object (lease or receipt): the signature covers the RFC 8785 bytes of the
/// object without `signature_field`; the result has the field set.
pub fn sign_object(
    key: &DeviceKey,
    domain: &[u8],
    mut object: Value,
    signature_field: &str,
) -> Result<Value, SignatureError> {
    let map = object.as_object_mut().ok_or(SignatureError::NotAnObject)?;
    map.remove(signature_field);
    let sig = key.sign(domain, &canonical_bytes(&*map));
    map.insert(signature_field.to_string(), Value::String(sig));
    Ok(object)
}

/// Verifies an object signed by [`sign_object`], exactly as received.
pub fn verify_object(
    key: &PublicKey,
    domain: &[u8],
    object: &Value,
    signature_field: &str,
) -> Result<(), SignatureError> {
    let map = object.as_object().ok_or(SignatureError::NotAnObject)?;
    let sig = map
        .get(signature_field)
        .and_then(Value::as_str)
        .ok_or(SignatureError::NotAnObject)?;
    let mut unsigned = map.clone();
    unsigned.remove(signature_field);
    key.verify(domain, &canonical_bytes(&unsigned), sig)
}

/// The bytes a device signs to authenticate a request (SPEC 7): method, target,
/// timestamp and the body's SHA-256, one per line, and when the request carries a
/// `Kaipiao-Nonce`, the nonce as a sixth line (SPEC 10).
pub fn request_message(
    method: &str,
    path: &str,
    timestamp: i64,
    body: &[u8],
    nonce: Option<&str>,
) -> Vec<u8> {
    let mut text = format!(
        "{method}\n{path}\n{timestamp}\n{}",
        crate::canonical::sha256_hex(body)
    );
    if let Some(nonce) = nonce {
        text.push('\n');
        text.push_str(nonce);
    }
    text.into_bytes()
}

/// Value of the `Kaipiao-Signature` header of a request without a nonce.
pub fn sign_request(
    key: &DeviceKey,
    method: &str,
    path: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    sign_request_with_nonce(key, method, path, timestamp, body, None)
}

/// Value of the `Kaipiao-Signature` header; `nonce` is the `Kaipiao-Nonce` header sent
/// with it, if any.
pub fn sign_request_with_nonce(
    key: &DeviceKey,
    method: &str,
    path: &str,
    timestamp: i64,
    body: &[u8],
    nonce: Option<&str>,
) -> String {
    key.sign(
        REQUEST_DOMAIN,
        &request_message(method, path, timestamp, body, nonce),
    )
}

pub fn verify_request(
    key: &PublicKey,
    method: &str,
    path: &str,
    timestamp: i64,
    body: &[u8],
    nonce: Option<&str>,
    signature_b64: &str,
) -> Result<(), SignatureError> {
    key.verify(
        REQUEST_DOMAIN,
        &request_message(method, path, timestamp, body, nonce),
        signature_b64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` messages signed by keys chosen in turn from `owners` keys.
    fn batch(n: usize, owners: u8) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<VerifyingKey>) {
        let keys: Vec<SigningKey> = (1..=owners.max(1))
            .map(|k| SigningKey::from_bytes(&[k; 32]))
            .collect();
        let messages: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("message {i}").into_bytes())
            .collect();
        let signatures = messages
            .iter()
            .enumerate()
            .map(|(i, m)| keys[i % keys.len()].sign(m))
            .collect();
        let verifying = (0..n)
            .map(|i| keys[i % keys.len()].verifying_key())
            .collect();
        (messages, signatures, verifying)
    }

    /// The batch path itself (`verify_many` falls back to lone checks, so its results
    /// alone would not show a batch equation that always failed): good batches of any
    /// size and mix of keys hold, and one bad signature anywhere breaks the whole.
    #[test]
    fn the_batch_equation_holds_for_good_batches_and_breaks_on_any_bad_one() {
        for owners in 1..=3 {
            for n in [1, 2, 3, 17, 64] {
                let (messages, mut signatures, keys) = batch(n, owners);
                assert!(
                    verify_together(&messages, &signatures, &keys),
                    "{n} by {owners}"
                );
                for at in [0, n / 2, n - 1] {
                    let good = signatures[at];
                    let mut raw = good.to_bytes();
                    raw[40] ^= 1;
                    signatures[at] = Signature::from_bytes(&raw);
                    assert!(!verify_together(&messages, &signatures, &keys), "s at {at}");
                    signatures[at] = good;
                    let mut moved = messages.clone();
                    moved[at].push(b'!');
                    assert!(
                        !verify_together(&moved, &signatures, &keys),
                        "message at {at}"
                    );
                    let mut swapped = keys.clone();
                    swapped[at] = SigningKey::from_bytes(&[9; 32]).verifying_key();
                    assert!(
                        !verify_together(&messages, &signatures, &swapped),
                        "key at {at}"
                    );
                }
                assert!(verify_together(&messages, &signatures, &keys));
            }
        }
        let (messages, signatures, keys) = batch(4, 2);
        assert!(
            !verify_together(&messages[..3], &signatures, &keys),
            "lengths differ"
        );
    }
}
