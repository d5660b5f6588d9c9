//! Step 4's first part, who signed the envelope: an enrolled device, whose key verifies
//! the envelope's hash and signature (else 422 `integrity`). Checked outside any
//! transaction, so that the write lock is never held for cryptography: alone for a lone
//! submission, and with one Ed25519 batch verification for a batch. Nothing
//! unauthenticated reaches the later steps.

use super::request::Prepared;
use crate::auth::device_key;
use crate::error::ErrorAnswer;
use crate::Shared;
use kaipiao_core::model::{Envelope, Invoice};
use kaipiao_core::sign::{
    verify_envelope, verify_many, PublicKey, SignatureError, Signed, INVOICE_DOMAIN,
};
use std::collections::HashMap;

/// Step 4's signature part for a lone envelope. Keys never change once enrolled, so the
/// cached key is as good as the stored one.
pub(super) fn authenticate(shared: &Shared, envelope: &Envelope) -> Result<(), ErrorAnswer> {
    let inv = &envelope.invoice;
    let key = device_key(shared, &inv.device_id)?.ok_or_else(|| unknown_device(inv))?;
    verify_envelope(&key, envelope).map_err(integrity_of)
}

/// Step 4's signature part for every item of a batch that reached it: the signatures of
/// known devices whose hash matches the invoice go through one batch verification
/// ([`kaipiao_core::sign::verify_many`], which names a bad one on its own item, as a lone
/// submission would); the others get the lone check.
pub(super) fn authenticate_all(
    shared: &Shared,
    prepared: &mut [Prepared],
) -> Result<(), ErrorAnswer> {
    let mut keys: HashMap<String, Option<PublicKey>> = HashMap::new();
    for p in prepared.iter() {
        let Prepared::Ready(ready) = p else { continue };
        let device = &ready.envelope.invoice.device_id;
        if !keys.contains_key(device) {
            keys.insert(device.clone(), device_key(shared, device)?);
        }
    }
    let mut decided: Vec<(usize, Result<(), ErrorAnswer>)> = Vec::new();
    let mut together: Vec<usize> = Vec::new();
    let mut signed: Vec<Signed<'_>> = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        let Prepared::Ready(ready) = p else { continue };
        let inv = &ready.envelope.invoice;
        let Some(key) = keys.get(&inv.device_id).and_then(Option::as_ref) else {
            decided.push((i, Err(unknown_device(inv))));
            continue;
        };
        if ready.hash == ready.envelope.hash {
            together.push(i);
            signed.push(Signed {
                key,
                domain: INVOICE_DOMAIN,
                message: &ready.canonical,
                signature: &ready.envelope.signature,
            });
        } else {
            decided.push((
                i,
                verify_envelope(key, &ready.envelope).map_err(integrity_of),
            ));
        }
    }
    let verified = verify_many(&signed);
    drop(signed);
    decided.extend(
        together
            .into_iter()
            .zip(verified)
            .map(|(i, r)| (i, r.map_err(integrity_of))),
    );
    for (i, authentic) in decided {
        if let Some(Prepared::Ready(ready)) = prepared.get_mut(i) {
            ready.authentic = authentic;
        }
    }
    Ok(())
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
