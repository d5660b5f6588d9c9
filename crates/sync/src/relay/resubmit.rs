//! Resubmitting what the authority lost: after a `chain_gap` whose `expected_seq` is
//! behind ours, or a head behind ours (restored from an older backup), the stored
//! envelopes of invoices final here go again from where the authority is, in order, under
//! their own keys; their receipts are checked, never stored (the first receipt stays).

use super::{Item, Run, Step};
use crate::error::SyncError;
use crate::route::Route;
use crate::SyncOutcome;
use kaipiao_core::sign::invoice_hash;
use kaipiao_core::wire::{Head, Receipt};
use kaipiao_core::{Code, DeviceKey, Envelope, PublicKey};
use kaipiao_ledger::{Ledger, LedgerError};

/// How many times one run follows a `chain_gap` backwards before it stops trusting the
/// authority's answers (a server that keeps rewinding would otherwise loop forever).
const MAX_REWINDS: u32 = 3;

/// What [`resubmit_lost`] did.
pub(crate) struct Resubmitted {
    /// Complete once every lost final invoice was resubmitted and its receipt checked.
    pub outcome: SyncOutcome,
    /// Seqs of the final invoices resubmitted whose receipts checked out.
    pub seqs: Vec<u64>,
}

/// Reconciliation's healing ([`crate::reconcile()`]): the authority lost invoices that are
/// final here (restored from an older backup, so its `head` is behind ours). Resubmits
/// the stored envelopes from `head.seq + 1` up to the first pending invoice by the path a
/// run takes after a `chain_gap` (same bytes, same keys, receipts checked, the first
/// receipt kept), then stops: the outbox is left to sync. Nothing is sent when the
/// authority's chain is not a prefix of ours. The route (the run's policy state and
/// alerts) is handed back to the caller.
pub(crate) async fn resubmit_lost<'a>(
    route: Route<'a>,
    ledger: &'a Ledger,
    key: &'a DeviceKey,
    device_id: String,
    authority: PublicKey,
    head: &Head,
) -> (Route<'a>, Result<Resubmitted, SyncError>) {
    let mut run = Run {
        finals_only: true,
        ..Run::new(route, ledger, key, device_id, authority)
    };
    let result = run.resubmit_from(head).await;
    (run.route, result)
}

impl Run<'_> {
    /// See [`resubmit_lost`].
    async fn resubmit_from(&mut self, head: &Head) -> Result<Resubmitted, SyncError> {
        if !self.common_prefix(head)? {
            let text = format!(
                "the authority's chain for this device (head seq {}, hash {}) is not a prefix of this ledger's; nothing was resubmitted",
                head.seq, head.hash
            );
            return Ok(Resubmitted {
                outcome: SyncOutcome::Stopped(text),
                seqs: Vec::new(),
            });
        }
        let outcome = self.resubmit_after(head).await?;
        Ok(Resubmitted {
            outcome,
            seqs: self.resubmitted.iter().copied().collect(),
        })
    }

    /// Resubmits the final invoices after the authority's `head` (the give-up clock
    /// starts afresh), then goes on as the run would.
    pub(super) async fn resubmit_after(&mut self, head: &Head) -> Result<SyncOutcome, SyncError> {
        self.cursor = Some(head.seq.saturating_add(1));
        self.route.progressed();
        self.drain().await
    }

    /// A `chain_gap` from `endpoint` with an `expected_seq` behind the invoice sent: the
    /// authority is behind us (restored from a backup), so the run resubmits from where
    /// it is, in order. Nothing is skipped.
    pub(super) fn rewind(&mut self, endpoint: &str, expected_seq: u64) -> Step {
        self.rewinds += 1;
        if self.rewinds > MAX_REWINDS {
            let text = format!(
                "{endpoint} keeps asking to resubmit from seq {expected_seq}; giving up for this run"
            );
            self.route.last_reason = text.clone();
            return Step::End(SyncOutcome::Transient(text));
        }
        self.cursor = Some(self.cursor.map_or(expected_seq, |c| c.min(expected_seq)));
        Step::Again
    }

    /// Whether the authority's (shorter) chain is a prefix of ours.
    pub(super) fn common_prefix(&self, head: &Head) -> Result<bool, SyncError> {
        if head.seq == 0 {
            return Ok(head.hash == kaipiao_core::ZERO_HASH);
        }
        Ok(self
            .final_item(head.seq)?
            .and_then(|item| serde_json::from_str::<Envelope>(&item.body).ok())
            .is_some_and(|env| env.hash == head.hash))
    }

    /// The stored invoice at `seq` for resubmission.
    pub(super) fn final_item(&self, seq: u64) -> Result<Option<Item>, SyncError> {
        let Some((a, b)) = self.ledger.envelope_at(seq)? else {
            return Ok(None);
        };
        // The ledger returns the invoice id and the envelope bytes; take the envelope
        // from whichever of the two is one, so the order does not matter.
        for text in [a, b] {
            if let Ok(envelope) = serde_json::from_str::<Envelope>(&text) {
                if envelope.invoice.seq != seq {
                    break;
                }
                return Ok(Some(Item {
                    invoice_id: envelope.invoice.id,
                    seq,
                    number: envelope.invoice.number,
                    body: text,
                    pending: false,
                }));
            }
        }
        Err(LedgerError::Integrity {
            seq,
            what: "the stored envelope cannot be read back".into(),
        }
        .into())
    }

    /// The receipt `endpoint` sent for a resubmitted final invoice: when it checks out,
    /// the next final invoice is due; otherwise the run stops for a human.
    pub(super) fn resubmitted_receipt(
        &mut self,
        endpoint: &str,
        item: &Item,
        body: &str,
    ) -> Result<Step, SyncError> {
        match self.check_final_receipt(item, body) {
            Ok(()) => {
                self.resubmitted.insert(item.seq);
                self.cursor = Some(item.seq + 1);
                self.route.progressed();
                Ok(Step::Stored)
            }
            Err(why) => {
                let text = format!(
                    "the receipt from {endpoint} for the resubmitted invoice {} (seq {}) does not check out: {why}",
                    item.number, item.seq
                );
                self.route.alert(
                    self.ledger,
                    Code::BadReceipt.as_str(),
                    &text,
                    Some(&item.invoice_id),
                )?;
                Ok(Step::End(SyncOutcome::Stopped(text)))
            }
        }
    }

    /// A receipt for an invoice that is already final here: it must be the authority's,
    /// for this invoice and these bytes; it is not stored (the first receipt stays).
    fn check_final_receipt(&self, item: &Item, body: &str) -> Result<(), String> {
        let (receipt, _) =
            Receipt::verify_json(body, &self.authority).map_err(|p| p.to_string())?;
        let envelope: Envelope =
            serde_json::from_str(&item.body).map_err(|e| format!("stored envelope: {e}"))?;
        let (_, hash) = invoice_hash(&envelope.invoice);
        if receipt.invoice_id != item.invoice_id || receipt.number != item.number {
            return Err(format!(
                "it names invoice {} / {}",
                receipt.invoice_id, receipt.number
            ));
        }
        if receipt.hash != hash {
            return Err(format!("it names hash {}, ours is {hash}", receipt.hash));
        }
        Ok(())
    }
}
