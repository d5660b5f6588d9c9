//! What the authority holds of this device, read back (for restore, and for a ledger that
//! is behind the authority): every envelope after a seq, through `GET
//! /v1/devices/{id}/invoices`, page by page. Nothing is taken on the authority's word:
//! each envelope must be signed by this device's own key, hash to its `hash`, carry the
//! next seq and link to the one before it, and its receipt must verify against the key
//! pinned at enrolment and name that very invoice.

use crate::client::Client;
use crate::error::SyncError;
use crate::route::{Call, Route, Signer};
use crate::{Progress, SyncOptions};
use kaipiao_core::sign::verify_envelope;
use kaipiao_core::wire::{Head, Receipt};
use kaipiao_core::{DeviceKey, Envelope};
use kaipiao_ledger::Ledger;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Items asked for per request (the authority's maximum).
const PAGE: u64 = 500;

/// One invoice the authority holds, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldInvoice {
    pub envelope: Envelope,
    pub receipt: Receipt,
    /// The receipt exactly as the authority stores it.
    pub receipt_json: String,
}

#[derive(Deserialize)]
struct RawItem {
    seq: u64,
    envelope: Envelope,
    receipt: Box<RawValue>,
}

#[derive(Deserialize)]
struct RawLeases {
    leases: Vec<kaipiao_core::Lease>,
}

#[derive(Deserialize)]
struct RawPage {
    items: Vec<RawItem>,
    head: Head,
}

fn no_progress(_: Progress) {}

/// The invoices of this device the authority holds after `after_seq` (whose hash is
/// `after_hash`, the link the first must carry), checked as the module says, and the
/// authority's head. `Err` names the first thing that does not hold.
pub async fn fetch_held(
    ledger: &Ledger,
    key: &DeviceKey,
    opts: &SyncOptions,
    after_seq: u64,
    after_hash: &str,
) -> Result<(Vec<HeldInvoice>, Head), SyncError> {
    let (device, device_id, pinned) = crate::relay::enrolled(ledger, key)?;
    let own = key.public();
    let mut route = Route::new(Client::new(&device.servers, opts)?, opts, &no_progress);
    let signer = Signer {
        ledger,
        key,
        device_id: &device_id,
    };
    let mut held: Vec<HeldInvoice> = Vec::new();
    let (mut last_seq, mut last_hash) = (after_seq, after_hash.to_string());
    loop {
        let path = format!("/v1/devices/{device_id}/invoices?after_seq={last_seq}&limit={PAGE}");
        let page: RawPage = route
            .call(Call::get(&path), Some(&signer), |b| {
                serde_json::from_str::<RawPage>(b).map_err(|e| e.to_string())
            })
            .await?;
        route.progressed();
        let done = page.items.is_empty() || page.items.len() < PAGE as usize;
        for item in page.items {
            let bad = |what: String| {
                SyncError::InvalidResponse(format!(
                    "the authority's copy of seq {}: {what}",
                    item.seq
                ))
            };
            let inv = &item.envelope.invoice;
            if item.seq != last_seq + 1 || inv.seq != item.seq {
                return Err(bad(format!("expected seq {}", last_seq + 1)));
            }
            if inv.prev_hash != last_hash {
                return Err(bad(format!(
                    "it links to {} where this chain has {last_hash}",
                    inv.prev_hash
                )));
            }
            if Some(&inv.device_id) != device.device_id.as_ref() {
                return Err(bad("it names another device".into()));
            }
            verify_envelope(&own, &item.envelope)
                .map_err(|e| bad(format!("not signed by this device's key ({e})")))?;
            let receipt_json = item.receipt.get().to_string();
            let (receipt, _) = Receipt::verify_json(&receipt_json, &pinned)
                .map_err(|e| bad(format!("its receipt: {e}")))?;
            if receipt.invoice_id != inv.id
                || receipt.hash != item.envelope.hash
                || receipt.number != inv.number
            {
                return Err(bad("its receipt names another invoice".into()));
            }
            last_seq = item.seq;
            last_hash = item.envelope.hash.clone();
            held.push(HeldInvoice {
                envelope: item.envelope,
                receipt,
                receipt_json,
            });
        }
        if done || last_seq >= page.head.seq {
            return Ok((held, page.head));
        }
    }
}

/// The leases the authority granted this device, in the order granted, through `GET
/// /v1/devices/{id}/leases`. Not checked here: the ledger checks each one it stores
/// (signature by the pinned key, this device, no overlap).
pub async fn fetch_leases(
    ledger: &Ledger,
    key: &DeviceKey,
    opts: &SyncOptions,
) -> Result<Vec<kaipiao_core::Lease>, SyncError> {
    let (device, device_id, _) = crate::relay::enrolled(ledger, key)?;
    let mut route = Route::new(Client::new(&device.servers, opts)?, opts, &no_progress);
    let signer = Signer {
        ledger,
        key,
        device_id: &device_id,
    };
    let path = format!("/v1/devices/{device_id}/leases");
    let leases: RawLeases = route
        .call(Call::get(&path), Some(&signer), |b| {
            serde_json::from_str::<RawLeases>(b).map_err(|e| e.to_string())
        })
        .await?;
    Ok(leases.leases)
}
