//! RFC 8785 (JSON Canonicalization Scheme) bytes and SHA-256: what gets hashed and signed.
//!
//! `serde_jcs` does the canonicalisation. Everything Kaipiao signs holds only strings,
//! integers, booleans, null, arrays and objects with ASCII keys, so the number-formatting
//! part of RFC 8785 never comes into play; the end-to-end tests cross-check the bytes
//! against an independent Python implementation (`rfc8785`).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// RFC 8785 bytes of any serialisable value.
pub fn canonical_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // serde_jcs fails only for values JSON cannot represent (maps with non-string keys,
    // non-finite floats); none of Kaipiao's types have them, and serde_json::Value never does.
    match serde_jcs::to_vec(value) {
        Ok(bytes) => bytes,
        Err(e) => panic!("value not representable as JSON: {e}"),
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
