//! Leases: the blocks of invoice numbers and offline limits granted by the authority,
//! verified against the pinned authority key before they are stored, used in the order
//! stored.

use crate::{invalid, json_error, rows, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::rfc3339;
use kaipiao_core::{Code, Lease};
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
                "does not verify against the authority key pinned at enrolment; the lease is not stored",
                "无法用登记时固定的税务机关公钥验证，号码段未保存",
            ));
        }
        if lease.device_id != device_id {
            return Err(invalid(
                Code::LeaseWrongDevice,
                "lease.device_id",
                format!(
                    "the lease is for device {}, this is {device_id}",
                    lease.device_id
                ),
                format!("号码段属于设备 {}，本设备为 {device_id}", lease.device_id),
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
                format!(
                    "lease {} is already stored with other terms",
                    lease.lease_id
                ),
                format!("号码段 {} 已以不同内容保存", lease.lease_id),
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
                format!("numbers {}..{} of prefix {} overlap lease {other}; a number is never used twice", lease.first, lease.last, lease.prefix),
                format!("前缀 {} 的号码 {}..{} 与号码段 {other} 重叠；发票号码不得重复使用", lease.prefix, lease.first, lease.last),
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
