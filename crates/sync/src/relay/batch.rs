//! The batch wire format (SPEC 7, `POST /v1/invoices:batch`): the request built from the
//! stored envelope bytes, and the answer read back into one verdict per invoice, each as
//! if that invoice had been sent alone.

use super::{submission_verdict, Item, Run, Step};
use crate::client::{read_answer, Answer, Verdict};
use crate::error::SyncError;
use kaipiao_core::wire::{HEADER_ADMISSION, MAX_BATCH_BODY};
use kaipiao_core::PublicKey;
use kaipiao_ledger::OutboxItem;
use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::VecDeque;

#[derive(Deserialize)]
struct RawBatchResponse<'a> {
    #[serde(borrow)]
    results: Vec<RawBatchResult<'a>>,
}

#[derive(Deserialize)]
struct RawBatchResult<'a> {
    idempotency_key: String,
    status: u16,
    /// Kept byte for byte: it is stored exactly as received.
    #[serde(borrow)]
    body: &'a RawValue,
}

/// The request body for up to `take` invoices from the front of `queue`, and the items it
/// carries: the envelopes go in as their stored bytes, not re-serialised, and the body
/// stays under [`MAX_BATCH_BODY`] (a lone envelope goes whatever its size).
fn batch_body(queue: &VecDeque<OutboxItem>, take: usize) -> (String, Vec<Item>) {
    let mut body = String::from("{\"items\":[");
    let mut items: Vec<Item> = Vec::new();
    for o in queue.iter().take(take) {
        let key = serde_json::to_string(&o.invoice_id).unwrap_or_default();
        let entry = format!(
            "{}{{\"idempotency_key\":{key},\"envelope\":{}}}",
            if items.is_empty() { "" } else { "," },
            o.envelope_json
        );
        if !items.is_empty() && body.len() + entry.len() + 2 > MAX_BATCH_BODY {
            break;
        }
        body.push_str(&entry);
        items.push(Item::from(o));
    }
    body.push_str("]}");
    (body, items)
}

/// The verdict on each of `items` from a batch answer (`answer` carries its Retry-After),
/// in seq order, each read as if the item had been sent alone; an item the answer has no
/// result for is a failed attempt.
fn item_verdicts(
    items: &[Item],
    parsed: &RawBatchResponse,
    answer: &Answer,
    endpoint: &str,
    authority: &PublicKey,
) -> Vec<Verdict> {
    items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            let result = parsed
                .results
                .get(k)
                .filter(|r| r.idempotency_key == item.invoice_id)
                .or_else(|| {
                    parsed
                        .results
                        .iter()
                        .find(|r| r.idempotency_key == item.invoice_id)
                });
            let verdict = match result {
                Some(r) => read_answer(
                    Ok(Answer {
                        status: r.status,
                        retry_after: answer.retry_after,
                        replayed: false,
                        body: r.body.get().to_string(),
                    }),
                    201,
                ),
                None => Verdict::retry(
                    format!("the batch answer from {endpoint} has no result for this invoice"),
                    true,
                ),
            };
            submission_verdict(item, verdict, authority)
        })
        .collect()
}

impl Run<'_> {
    /// `POST /v1/invoices:batch` with the invoices at the front of `queue` (at most the
    /// batch size and what is left of the share), while the last batch's receipts are
    /// stored; then what follows from the answer.
    pub(super) async fn send_batch(
        &mut self,
        queue: &mut VecDeque<OutboxItem>,
    ) -> Result<Step, SyncError> {
        let (i, endpoint, timeout) = match self.next_slot().await {
            Ok(slot) => slot,
            Err(outcome) => {
                // Whatever ends the run, the receipts already in hand are stored.
                return match self.flush().await? {
                    Step::End(stopped) => Ok(Step::End(stopped)),
                    _ => Ok(Step::End(outcome)),
                };
            }
        };
        let take = self
            .share_left()
            .map_or(self.batch_size, |n| n.min(self.batch_size));
        let (body, mut items) = batch_body(queue, take);
        let Some(first) = items.first().cloned() else {
            return Ok(Step::Again);
        };
        let headers: Vec<(&str, String)> = self
            .ticket
            .iter()
            .map(|t| (HEADER_ADMISSION, t.clone()))
            .collect();
        let send = self.route.client.send(
            Method::POST,
            &endpoint,
            "/v1/invoices:batch",
            Some(body.into_bytes()),
            &headers,
            timeout,
        );
        // While this request is out, the receipts of the last batch are written.
        let (result, stored) = match self.storing.take() {
            Some(storing) => {
                let (result, stored) = tokio::join!(send, storing.work.collect());
                (result, Some((storing.endpoint, storing.items, stored)))
            }
            None => (send.await, None),
        };
        if let Some((at, items, stored)) = stored {
            if let Step::End(outcome) = self.stored_batch(at, &items, stored)? {
                // This answer is left unread: its items stay pending and the next run
                // gets their receipts as replays.
                return Ok(Step::End(outcome));
            }
        }
        let answer = match read_answer(result, 200) {
            Verdict::Success(answer) => answer,
            other => return self.follow_answer(i, &first, other).await,
        };
        let parsed: RawBatchResponse = match serde_json::from_str(&answer.body) {
            Ok(p) => p,
            Err(e) => {
                let verdict = Verdict::retry(
                    format!("unexpected batch answer from {endpoint}: {e}"),
                    true,
                );
                return self.follow_answer(i, &first, verdict).await;
            }
        };
        let verdicts = item_verdicts(&items, &parsed, &answer, &endpoint, &self.authority);
        // The leading receipts are stored together, a few short transactions for the
        // whole run of them; the first item that is not a receipt is then handled exactly
        // as if it had been sent alone, and ends the round (what follows it goes again).
        let lead = verdicts
            .iter()
            .take_while(|v| matches!(v, Verdict::Success(_)))
            .count();
        let mut verdicts = verdicts.into_iter();
        let bodies: Vec<String> = verdicts
            .by_ref()
            .take(lead)
            .map(|v| match v {
                Verdict::Success(a) => a.body,
                _ => String::new(),
            })
            .collect();
        let rest = items.split_off(lead);
        if lead > 0 {
            // The authority did the work: one accepted request as far as the policy goes.
            let accepted = Answer {
                body: String::new(),
                ..answer
            };
            self.route.note(i, &Verdict::Success(accepted))?;
            for _ in 0..lead {
                queue.pop_front();
            }
            self.store_receipts(i, items, bodies);
            if rest.is_empty() {
                // Stored while the next batch is out.
                return Ok(Step::Again);
            }
            if let Step::End(outcome) = self.flush().await? {
                return Ok(Step::End(outcome));
            }
        }
        match (rest.first(), verdicts.next()) {
            (Some(item), Some(verdict)) => {
                self.route.note(i, &verdict)?;
                // The batch itself was answered with a 200: for the outage record that
                // is a success, whatever this item's answer.
                self.route.served(i)?;
                self.follow_verdict(i, item, verdict).await
            }
            _ => Ok(Step::Again),
        }
    }
}
