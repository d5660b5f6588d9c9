//! The device's time against the authority's: the offset added to the local clock for
//! device-signed requests, and when a sync last reached the authority.

use crate::{rows, Ledger, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::time::rfc3339;
use rusqlite::params;

impl Ledger {
    pub fn set_last_sync(&self, now: DateTime<Utc>) -> Result<()> {
        self.update_device(
            "UPDATE device SET last_sync_at = ?1 WHERE id = 1",
            params![rfc3339(now)],
        )
    }

    /// Seconds to add to the local clock for device-signed requests (401 clock_skew).
    pub fn clock_offset(&self) -> Result<i64> {
        Ok(rows::require_device(&self.conn)?.clock_offset)
    }

    /// The offset the authority's clock_skew answer measured, at local time `now`: kept
    /// for signing, and for issuance's clock-ahead rule
    /// ([`kaipiao_core::draft::check_clock_ahead`]).
    pub fn set_clock_offset(&self, secs: i64) -> Result<()> {
        self.update_device(
            "UPDATE device SET clock_offset = ?1, clock_offset_at = ?2 WHERE id = 1",
            params![secs, rfc3339(Utc::now())],
        )
    }
}
