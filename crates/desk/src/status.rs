//! The status composition: what a shop's status line says (pending invoices, the
//! offline window and amount left, numbers left, the lease in force, the current
//! outage, warnings, a stopped queue and alerts), read once from the ledger. The CLI
//! renders it as SPEC 9's `status`, the app as its status bar.

use crate::dto::{AlertDto, StatusDto, WarningDto};
use crate::engine::Engine;
use crate::error::DeskResult;
use chrono::{DateTime, Utc};
use kaipiao_core::Lang;
use kaipiao_ledger::{Ledger, LedgerStatus, Outage};

/// A shop's status at one moment.
#[derive(Debug, Clone)]
pub struct ShopStatus {
    /// Pending, limits left, numbers left, head, alerts, and the lease in force (the one
    /// whose terms the limits are measured against: the ledger's single rule).
    pub ledger: LedgerStatus,
    /// The outage going on now, if the last attempt to reach the authority failed.
    pub current_outage: Option<Outage>,
}

pub fn compose(ledger: &Ledger, now: DateTime<Utc>) -> kaipiao_ledger::Result<ShopStatus> {
    Ok(ShopStatus {
        ledger: ledger.status(now)?,
        current_outage: ledger.current_outage()?,
    })
}

/// Invoices waiting for the authority (0 when the ledger cannot say).
pub fn pending_count(ledger: &Ledger) -> u32 {
    ledger
        .status(Utc::now())
        .map(|s| u32::try_from(s.pending).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// A limit warning in the clerk's language.
pub fn warning(w: &kaipiao_core::LimitWarning, lang: Lang) -> WarningDto {
    WarningDto {
        limit: w.limit.to_string(),
        threshold: w.threshold,
        message: lang.pick(&w.zh, &w.en).to_string(),
    }
}

impl Engine {
    pub fn status(&self) -> DeskResult<StatusDto> {
        let lang = self.lang();
        let now = Utc::now();
        let ledger = self.ledger();
        let shop = compose(&ledger, now).map_err(|e| self.ledger_error(e))?;
        let st = shop.ledger;
        let ledger_behind = ledger
            .authority_head()
            .map_err(|e| self.ledger_error(e))?
            .is_some_and(|a| a.seq > st.head.seq);
        drop(ledger);
        let warnings: Vec<WarningDto> = st.warnings.iter().map(|w| warning(w, lang)).collect();
        let in_force = st.lease_in_force.as_ref();
        Ok(StatusDto {
            pending: u32::try_from(st.pending).unwrap_or(u32::MAX),
            oldest_pending_at: st.oldest_pending_at,
            offline_hours_left: st.offline_hours_left,
            offline_hours: in_force.map(|l| l.offline_hours),
            offline_amount_left: st.offline_amount_left,
            offline_amount_cap: in_force.map(|l| l.offline_amount_cap.clone()),
            warning_level: warnings.iter().map(|w| w.threshold).max().unwrap_or(0),
            warnings,
            numbers_left: st.numbers_left,
            last_sync_at: st.last_sync_at,
            queue_stopped: st.queue_stopped,
            ledger_behind,
            alerts: st
                .alerts
                .iter()
                .map(|a| AlertDto {
                    id: a.id,
                    at: a.at.clone(),
                    code: a.code.clone(),
                    message: a.message.clone(),
                    invoice_id: a.invoice_id.clone(),
                })
                .collect(),
            connectivity: self.shared.connectivity(),
            syncing: self.shared.is_syncing(),
            now: kaipiao_core::time::rfc3339(now),
        })
    }
}
