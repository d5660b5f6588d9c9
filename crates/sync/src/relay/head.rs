//! The head check at the end of a run (SPEC 6): the authority's head for this device is
//! read and compared with the local head; a head behind ours with nothing pending here is
//! healed once by resubmission first, and a difference that remains is reported for a
//! human (`head_mismatch`).

use super::Run;
use crate::error::SyncError;
use crate::route::{Call, Signer};
use crate::SyncOutcome;
use chrono::Utc;
use kaipiao_core::wire::Head;
use kaipiao_core::Code;
use kaipiao_ledger::LedgerStatus;

impl Run<'_> {
    /// The authority's head after the drain (None when no endpoint answered). When it is
    /// behind with nothing pending here (e.g. restored from a backup), what it lost is
    /// resubmitted, once, and the head read again; `outcome` becomes that resubmission's.
    pub(super) async fn read_head(
        &mut self,
        outcome: &mut SyncOutcome,
    ) -> Result<Option<Head>, SyncError> {
        self.route.progressed();
        let server_head = self.fetch_head().await;
        // Pending count and head come from one snapshot: the clerk may be issuing
        // meanwhile.
        if let (SyncOutcome::Complete, Some(head)) = (&*outcome, &server_head) {
            let local = self.ledger.status(Utc::now())?;
            if local.pending == 0 && head.seq < local.head.seq && self.common_prefix(head)? {
                *outcome = self.resubmit_after(head).await?;
                self.route.progressed();
                return Ok(self.fetch_head().await.or(server_head));
            }
        }
        Ok(server_head)
    }

    /// Compares the authority's `head` with the local one in `status` (one snapshot of
    /// the ledger): a difference with nothing pending, or an authority ahead of us, is a
    /// `head_mismatch` alert, and stops a run that was otherwise complete.
    pub(super) fn compare_heads(
        &mut self,
        head: &Head,
        status: &LedgerStatus,
        outcome: &mut SyncOutcome,
    ) -> Result<(), SyncError> {
        let local = &status.head;
        if (status.pending == 0 && head != local) || head.seq > local.seq {
            let text = format!(
                "the authority's head for this device (seq {}, hash {}) differs from the local head (seq {}, hash {})",
                head.seq, head.hash, local.seq, local.hash
            );
            self.route
                .alert(self.ledger, Code::HeadMismatch.as_str(), &text, None)?;
            if *outcome == SyncOutcome::Complete {
                *outcome = SyncOutcome::Stopped(text.clone());
            }
            self.report.head_mismatch = Some(text);
        }
        Ok(())
    }

    /// `GET /v1/devices/{id}/head`, waited for like any request.
    async fn fetch_head(&mut self) -> Option<Head> {
        let path = format!("/v1/devices/{}/head", self.device_id);
        let signer = Signer {
            ledger: self.ledger,
            key: self.key,
            device_id: &self.device_id,
        };
        self.route
            .call(
                // A refusal for overload here is waited out like any other failed
                // request: SPEC 6 wants the heads compared, and server_head null means
                // "no endpoint answered".
                Call::get(&path),
                Some(&signer),
                |b| serde_json::from_str::<Head>(b).map_err(|e| e.to_string()),
            )
            .await
            .ok()
    }
}
