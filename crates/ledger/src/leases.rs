//! Leases: the blocks of invoice numbers and offline limits granted by the authority,
//! verified against the pinned authority key before they are stored, used in the order
//! stored.

use crate::{invalid, json_error, rows, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::rfc3339;
use kaipiao_core::{Code, Lease, Msg};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// A stored lease and how much of it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseState {
    pub lease: Lease,
    /// Next unused sequence number of the block, or None when used up.
    pub next: Option<u64>,
    pub numbers_left: u64,
}

impl Ledger {
    /// Verifies a lease against the pinned authority key and the device id, and stores it.
    /// Storing the same lease again is a no-op; leases are used in the order stored.
    pub fn store_lease(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
        let tx = self.write_tx()?;
        let dev = rows::require_device(&tx)?;
        let device_id = dev.device_id.clone().ok_or(LedgerError::NotEnrolled)?;
        let pinned = dev.pinned_key()?;
        if lease.verify(&pinned).is_err() {
            return Err(invalid(
                Code::LeaseSignatureInvalid,
                "lease.signature",
                Msg::new("lease_signature_invalid"),
            ));
        }
        if lease.device_id != device_id {
            return Err(invalid(
                Code::LeaseWrongDevice,
                "lease.device_id",
                Msg::new("lease_wrong_device")
                    .arg("device", &lease.device_id)
                    .arg("this", &device_id),
            ));
        }
        lease.terms()?;
        let json = serde_json::to_string(lease).map_err(json_error)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT lease_json FROM leases WHERE lease_id = ?1",
                [&lease.lease_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(stored) = existing {
            let same = serde_json::from_str::<Lease>(&stored).is_ok_and(|l| &l == lease);
            if same {
                return Ok(());
            }
            return Err(invalid(
                Code::LeaseConflict,
                "lease.lease_id",
                Msg::new("lease_conflict").arg("lease", &lease.lease_id),
            ));
        }
        let overlapping: Option<String> = tx
            .query_row(
                "SELECT lease_id FROM leases WHERE prefix = ?1 AND first <= ?3 AND last >= ?2 LIMIT 1",
                params![lease.prefix, lease.first, lease.last],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(other) = overlapping {
            return Err(invalid(
                Code::LeaseOverlap,
                "lease.first",
                Msg::new("lease_overlap")
                    .arg("first", lease.first)
                    .arg("last", lease.last)
                    .arg("prefix", &lease.prefix)
                    .arg("other", other),
            ));
        }
        tx.execute(
            "INSERT INTO leases (lease_id, position, lease_json, prefix, first, last, next, stored_at)
             VALUES (?1, (SELECT COALESCE(MAX(position), 0) + 1 FROM leases), ?2, ?3, ?4, ?5, ?4, ?6)",
            params![lease.lease_id, json, lease.prefix, lease.first, lease.last, rfc3339(now)],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn leases(&self) -> Result<Vec<LeaseState>> {
        Ok(rows::leases(&self.conn)?
            .into_iter()
            .map(|l| LeaseState {
                next: (l.next <= l.lease.last).then_some(l.next),
                numbers_left: l.numbers_left(),
                lease: l.lease,
            })
            .collect())
    }
}
