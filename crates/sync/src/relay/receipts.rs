//! Storing the authority's receipts for pending invoices: a lone receipt in line, a
//! batch's on a second ledger connection off the async thread while the next batch is on
//! the wire (receipt pipelining), and what a stored or refused receipt means for the run.

use super::{Item, Run, Step};
use crate::error::SyncError;
use crate::{Progress, SyncOutcome};
use chrono::Utc;
use kaipiao_core::Code;
use kaipiao_ledger::{Ledger, LedgerError, Status};

/// Receipts stored per ledger transaction while draining in batches
/// (`Ledger::store_receipt_groups`): a transaction this short holds an issuance waiting
/// for the write lock for a fraction of a millisecond; 5 was no better for the clerk's
/// p99 within the noise and brought the drain with issuance alongside near 0.5x the
/// import (docs/BENCHMARKS.md).
const RECEIPT_GROUP: usize = 10;

/// The receipts of one batch answer being stored.
pub(super) struct Storing {
    pub(super) endpoint: usize,
    pub(super) items: Vec<Item>,
    pub(super) work: Work,
}

pub(super) enum Work {
    /// On the writer connection, off the async thread.
    Writing(tokio::task::JoinHandle<(Ledger, StoreResults)>),
    /// Stored in line already (no writer connection).
    Done(StoreResults),
}

pub(super) type StoreResults = Result<Vec<Result<Status, LedgerError>>, LedgerError>;

impl Work {
    /// The results, and the writer connection back.
    pub(super) async fn collect(self) -> (Option<Ledger>, StoreResults) {
        match self {
            Work::Writing(task) => match task.await {
                Ok((writer, results)) => (Some(writer), results),
                Err(e) => (
                    None,
                    Err(LedgerError::Io(std::io::Error::other(format!(
                        "storing receipts failed: {e}"
                    )))),
                ),
            },
            Work::Done(results) => (None, results),
        }
    }
}

/// Stores `receipts` (invoice id, receipt as received) in groups of [`RECEIPT_GROUP`],
/// one transaction each, stopping after a group with a refused receipt; the results are
/// per item, for the items of the groups that were stored.
fn store_groups(ledger: &Ledger, receipts: &[(String, String)]) -> StoreResults {
    let pairs: Vec<(&str, &str)> = receipts
        .iter()
        .map(|(id, text)| (id.as_str(), text.as_str()))
        .collect();
    ledger.store_receipt_groups(&pairs, RECEIPT_GROUP, Utc::now())
}

impl Run<'_> {
    /// Stores the receipt (`body`, exactly as received) endpoint `i` sent for a pending
    /// invoice sent alone.
    pub(super) fn store_receipt(
        &mut self,
        i: usize,
        item: &Item,
        body: &str,
    ) -> Result<Step, SyncError> {
        self.taken.insert(item.invoice_id.clone());
        self.report.submitted = self.taken.len() as u64;
        match self
            .ledger
            .store_receipt(&item.invoice_id, body, Utc::now())
        {
            Ok(status) => {
                self.stored(item, status);
                Ok(Step::Stored)
            }
            Err(LedgerError::BadReceipt(why)) => self.bad_receipt(i, item, &why),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts storing the receipts (`bodies`, exactly as received) of `items` — pending
    /// invoices in seq order, each answered with a receipt by endpoint `i` — on the
    /// writer connection off the async thread ([`Run::flush`] or the next batch's send
    /// collects the results).
    pub(super) fn store_receipts(&mut self, i: usize, items: Vec<Item>, bodies: Vec<String>) {
        for item in &items {
            self.taken.insert(item.invoice_id.clone());
        }
        self.report.submitted = self.taken.len() as u64;
        let receipts: Vec<(String, String)> = items
            .iter()
            .map(|item| item.invoice_id.clone())
            .zip(bodies)
            .collect();
        if self.writer.is_none() {
            self.writer = Ledger::open(self.ledger.dir()).ok();
        }
        let work = match self.writer.take() {
            Some(writer) => Work::Writing(tokio::task::spawn_blocking(move || {
                let results = store_groups(&writer, &receipts);
                (writer, results)
            })),
            // No second connection: in line, on the run's own.
            None => Work::Done(store_groups(self.ledger, &receipts)),
        };
        self.storing = Some(Storing {
            endpoint: i,
            items,
            work,
        });
    }

    /// The seq after the last item whose receipts are being stored, if any: the outbox
    /// reads on from there while they are (the items are pending in seq order, and a
    /// share's end flushes them first).
    pub(super) fn storing_past(&self) -> Option<u64> {
        self.storing
            .as_ref()
            .and_then(|s| s.items.last())
            .map(|item| item.seq + 1)
    }

    /// Collects the receipts being stored, if any: `Stored`, or the end of the run when
    /// one was refused.
    pub(super) async fn flush(&mut self) -> Result<Step, SyncError> {
        match self.storing.take() {
            Some(storing) => {
                let stored = storing.work.collect().await;
                self.stored_batch(storing.endpoint, &storing.items, stored)
            }
            None => Ok(Step::Stored),
        }
    }

    /// Handles the results of a batch's receipts as lone receipts' would be: counted and
    /// announced, or, for the first refused one, an alert and the end of the run.
    pub(super) fn stored_batch(
        &mut self,
        i: usize,
        items: &[Item],
        (writer, results): (Option<Ledger>, StoreResults),
    ) -> Result<Step, SyncError> {
        if writer.is_some() {
            self.writer = writer;
        }
        let mut refused = None;
        for (item, result) in items.iter().zip(results?) {
            match result {
                Ok(status) => self.stored(item, status),
                Err(LedgerError::BadReceipt(why)) => {
                    refused.get_or_insert((item, why));
                }
                Err(e) => return Err(e.into()),
            }
        }
        match refused {
            Some((item, why)) => self.bad_receipt(i, item, &why),
            None => Ok(Step::Stored),
        }
    }

    /// A receipt was stored for a pending item.
    fn stored(&mut self, item: &Item, status: Status) {
        match status {
            Status::Accepted => self.report.accepted += 1,
            Status::Rejected => self.report.rejected += 1,
            Status::Pending => {}
        }
        self.route.emit(Progress::Submitted {
            number: item.number.clone(),
            status: status.as_str().to_string(),
        });
        self.route.progressed();
    }

    /// A receipt the ledger refused (it does not verify or does not match the invoice):
    /// never final; alert, and the run stops for a human.
    fn bad_receipt(&mut self, i: usize, item: &Item, why: &str) -> Result<Step, SyncError> {
        let text = format!(
            "the receipt from {} for invoice {} (seq {}) was refused and not stored: {why}; the invoice stays pending",
            self.route.url(i),
            item.number,
            item.seq
        );
        self.route.alert(
            self.ledger,
            Code::BadReceipt.as_str(),
            &text,
            Some(&item.invoice_id),
        )?;
        self.ledger.record_attempt(&item.invoice_id, &text, None)?;
        Ok(Step::End(SyncOutcome::Stopped(text)))
    }
}
