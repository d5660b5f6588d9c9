//! The outbox relay: "Sync now" (SPEC 6). Submits the outbox in seq order with the
//! stored bytes and the invoice's idempotency key, stores receipts, retries what may
//! succeed later, stops the queue on integrity failures, and compares heads at the end.

use crate::client::{classify, Answer, Verdict};
use crate::enrol::{needs_lease, take_lease};
use crate::error::SyncError;
use crate::link::{Call, Ended, Link, Signer};
use crate::{Client, Progress, SyncOptions, SyncOutcome, SyncReport};
use chrono::Utc;
use kaipiao_core::sign::{invoice_hash, verify_object, RECEIPT_DOMAIN};
use kaipiao_core::wire::{
    idempotency_header, Head, Receipt, HEADER_IDEMPOTENCY_KEY, MAX_BATCH_BODY, MAX_BATCH_ITEMS,
};
use kaipiao_core::{DeviceKey, Envelope, PublicKey};
use kaipiao_ledger::{Ledger, LedgerError, OutboxItem, Status};
use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{HashSet, VecDeque};

/// Outbox rows read at a time when submitting one by one.
const CHUNK: usize = 100;
/// How many times one run follows a `chain_gap` backwards before it stops trusting the
/// authority's answers (a server that keeps rewinding would otherwise loop forever).
const MAX_REWINDS: u32 = 3;

/// One invoice to submit: a pending outbox item, or an invoice that is already final
/// here but that the authority lost (resubmitted after `chain_gap` or a head behind ours).
#[derive(Debug, Clone)]
struct Item {
    invoice_id: String,
    seq: u64,
    number: String,
    /// The exact stored envelope bytes.
    body: String,
    pending: bool,
}

impl From<&OutboxItem> for Item {
    fn from(o: &OutboxItem) -> Item {
        Item {
            invoice_id: o.invoice_id.clone(),
            seq: o.seq,
            number: o.number.clone(),
            body: o.envelope_json.clone(),
            pending: true,
        }
    }
}

enum Step {
    /// A receipt for the item was stored (or, for a final item, checked).
    Stored,
    /// Go round again (after a wait, a rewind, or an endpoint change).
    Again,
    End(SyncOutcome),
}

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

struct Run<'a> {
    link: Link<'a>,
    ledger: &'a Ledger,
    key: &'a DeviceKey,
    device_id: String,
    authority: PublicKey,
    batch_size: usize,
    report: SyncReport,
    taken: HashSet<String>,
    rewinds: u32,
    /// Resubmit final invoices from this seq before going on with the outbox.
    cursor: Option<u64>,
    after_outage: bool,
}

/// "Sync now": takes the outbox lock, tops up leases, submits every pending invoice in
/// seq order, then fetches the authority's head and compares it with ours.
///
/// `Err` only when nothing could be attempted or the ledger failed; how far the run got
/// is in the report, and why it ended in [`SyncReport::outcome`].
pub async fn sync_now(
    ledger: &Ledger,
    key: &DeviceKey,
    opts: &SyncOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<SyncReport, SyncError> {
    let _lock = ledger.lock_outbox()?;
    let device = ledger.device()?.ok_or(LedgerError::NotInitialized)?;
    let device_id = device.device_id.clone().ok_or(LedgerError::NotEnrolled)?;
    if key.public().to_base64() != device.public_key {
        return Err(SyncError::WrongKey);
    }
    let mut report = SyncReport::new();
    if let Some(reason) = ledger.queue_stopped()? {
        report.pending = ledger.status(Utc::now())?.pending;
        report.outcome =
            SyncOutcome::Stopped(format!("the outbox is stopped and needs a human: {reason}"));
        return Ok(report);
    }
    let pinned = device
        .authority_public_key
        .as_deref()
        .ok_or(LedgerError::NotEnrolled)?;
    let authority = PublicKey::from_base64(pinned).map_err(|_| LedgerError::Integrity {
        seq: 0,
        what: "the pinned authority key is not a base64 Ed25519 key".into(),
    })?;
    let client = Client::new(&device.servers, opts)?;
    let run = Run {
        link: Link::new(client, opts, progress),
        ledger,
        key,
        device_id,
        authority,
        batch_size: opts.batch_size.min(MAX_BATCH_ITEMS),
        report,
        taken: HashSet::new(),
        rewinds: 0,
        cursor: None,
        after_outage: opts.after_outage,
    };
    run.execute().await
}

impl Run<'_> {
    /// The run, then the policy's state kept for the next one whatever happened.
    async fn execute(mut self) -> Result<SyncReport, SyncError> {
        self.link.resume(self.ledger.dir());
        if self.after_outage {
            self.link.delay_start().await;
        }
        let result = self.work().await;
        self.link.persist(self.ledger.dir());
        result.map(|()| self.report)
    }

    async fn work(&mut self) -> Result<(), SyncError> {
        // Leases first (best effort: one try per endpoint, no waiting).
        let leased = !needs_lease(self.ledger)? || self.top_up().await;

        let mut outcome = self.drain().await?;

        // The authority came back during the run: take the lease now.
        if !leased && self.link.answered {
            self.top_up().await;
        }

        let mut server_head = None;
        if self.link.answered || outcome == SyncOutcome::Complete {
            self.link.progressed();
            server_head = self.fetch_head().await;
            // The authority is behind with nothing pending here (e.g. restored from a
            // backup): resubmit what it lost, once, then look again.
            if let (SyncOutcome::Complete, Some(head)) = (&outcome, &server_head) {
                let local = self.ledger.head()?;
                if head.seq < local.seq && self.common_prefix(head)? {
                    self.cursor = Some(head.seq + 1);
                    self.link.progressed();
                    outcome = self.drain().await?;
                    self.link.progressed();
                    server_head = self.fetch_head().await.or(server_head);
                }
            }
        }

        if server_head.is_none() && outcome == SyncOutcome::Complete {
            // Everything was filed but the heads could not be compared: work remains.
            outcome = SyncOutcome::Transient(
                "the authority's head could not be read, so the chains were not compared".into(),
            );
        }
        let now = Utc::now();
        if self.link.answered {
            self.ledger.set_last_sync(now)?;
        }
        let pending = self.ledger.status(now)?.pending;
        if let Some(head) = &server_head {
            let local = self.ledger.head()?;
            if (pending == 0 && *head != local) || head.seq > local.seq {
                let text = format!(
                    "the authority's head for this device (seq {}, hash {}) differs from the local head (seq {}, hash {})",
                    head.seq, head.hash, local.seq, local.hash
                );
                self.link.alert(self.ledger, "head_mismatch", &text, None)?;
                if outcome == SyncOutcome::Complete {
                    outcome = SyncOutcome::Stopped(text.clone());
                }
                self.report.head_mismatch = Some(text);
            }
        }
        self.report.pending = pending;
        self.report.server_head = server_head;
        self.report.outcome = outcome;
        self.report.alerts = std::mem::take(&mut self.link.alerts);
        Ok(())
    }

    /// Best-effort lease top-up; true when a lease was stored. A stored lease is
    /// progress: a slow lease answer must not eat the submissions' time.
    async fn top_up(&mut self) -> bool {
        let (ledger, key) = (self.ledger, self.key);
        let device_id = self.device_id.clone();
        let stored = take_lease(&mut self.link, ledger, key, &device_id, false)
            .await
            .is_ok();
        if stored {
            self.link.progressed();
        }
        stored
    }

    /// `GET /v1/devices/{id}/head`, one try per endpoint.
    async fn fetch_head(&mut self) -> Option<Head> {
        let path = format!("/v1/devices/{}/head", self.device_id);
        let signer = Signer {
            ledger: self.ledger,
            key: self.key,
            device_id: &self.device_id,
        };
        self.link
            .call(
                Call {
                    method: Method::GET,
                    path: &path,
                    body: None,
                    success: 200,
                    // A 429/503 here is waited out like any other request: SPEC 6 wants
                    // the heads compared, and server_head null means "no endpoint answered".
                    patient: true,
                },
                Some(&signer),
                |b| serde_json::from_str::<Head>(b).map_err(|e| e.to_string()),
            )
            .await
            .ok()
    }

    /// Whether the authority's (shorter) chain is a prefix of ours.
    fn common_prefix(&self, head: &Head) -> Result<bool, SyncError> {
        if head.seq == 0 {
            return Ok(head.hash == kaipiao_core::ZERO_HASH);
        }
        Ok(self
            .final_item(head.seq)?
            .and_then(|item| serde_json::from_str::<Envelope>(&item.body).ok())
            .is_some_and(|env| env.hash == head.hash))
    }

    /// The stored invoice at `seq` for resubmission.
    fn final_item(&self, seq: u64) -> Result<Option<Item>, SyncError> {
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

    async fn drain(&mut self) -> Result<SyncOutcome, SyncError> {
        let mut queue: VecDeque<OutboxItem> = VecDeque::new();
        loop {
            if queue.is_empty() {
                queue = self.ledger.outbox(None, self.batch_size.max(CHUNK))?.into();
            }
            let front = queue.front().map(|o| o.seq);
            if let Some(seq) = self.cursor {
                if front.is_none_or(|f| seq < f) {
                    if let Some(item) = self.final_item(seq)? {
                        match self.send_one(item).await? {
                            Step::End(outcome) => return Ok(outcome),
                            Step::Stored | Step::Again => continue,
                        }
                    }
                }
                self.cursor = None;
            }
            let Some(first) = queue.front() else {
                return Ok(SyncOutcome::Complete);
            };
            let step = if self.batch_size > 0 {
                self.send_batch(&mut queue).await?
            } else {
                let item = Item::from(first);
                match self.send_one(item).await? {
                    Step::Stored => {
                        queue.pop_front();
                        Step::Again
                    }
                    other => other,
                }
            };
            if let Step::End(outcome) = step {
                return Ok(outcome);
            }
        }
    }

    /// The endpoint and timeout for the next request once the policy lets it go, or how
    /// the run ends.
    async fn next_slot(&mut self) -> Result<(usize, String, std::time::Duration), SyncOutcome> {
        match self.link.slot(true).await {
            Ok(slot) => Ok(slot),
            Err(Ended::NoEndpoint(reason)) => Err(SyncOutcome::Stopped(reason)),
            Err(Ended::GaveUp(reason)) => Err(SyncOutcome::Transient(reason)),
        }
    }

    async fn send_one(&mut self, item: Item) -> Result<Step, SyncError> {
        let (i, endpoint, timeout) = match self.next_slot().await {
            Ok(slot) => slot,
            Err(outcome) => return Ok(Step::End(outcome)),
        };
        let headers = [(HEADER_IDEMPOTENCY_KEY, idempotency_header(&item.invoice_id))];
        let result = self
            .link
            .client
            .send(
                Method::POST,
                &endpoint,
                "/v1/invoices",
                Some(item.body.clone().into_bytes()),
                &headers,
                timeout,
            )
            .await;
        let verdict = classify(result, 201);
        self.settle(i, &item, verdict).await
    }

    async fn send_batch(&mut self, queue: &mut VecDeque<OutboxItem>) -> Result<Step, SyncError> {
        let (i, endpoint, timeout) = match self.next_slot().await {
            Ok(slot) => slot,
            Err(outcome) => return Ok(Step::End(outcome)),
        };
        // The envelopes go in as their stored bytes, not re-serialised.
        let mut body = String::from("{\"items\":[");
        let mut items: Vec<Item> = Vec::new();
        for o in queue.iter().take(self.batch_size) {
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
        let Some(first) = items.first().cloned() else {
            return Ok(Step::Again);
        };
        let result = self
            .link
            .client
            .send(
                Method::POST,
                &endpoint,
                "/v1/invoices:batch",
                Some(body.into_bytes()),
                &[],
                timeout,
            )
            .await;
        let answer = match classify(result, 200) {
            Verdict::Success(answer) => answer,
            other => return self.settle(i, &first, other).await,
        };
        let parsed: RawBatchResponse = match serde_json::from_str(&answer.body) {
            Ok(p) => p,
            Err(e) => {
                let verdict = Verdict::retry(
                    format!("unexpected batch answer from {endpoint}: {e}"),
                    true,
                );
                return self.settle(i, &first, verdict).await;
            }
        };
        // Each result is handled as if the item had been sent alone, in seq order; the
        // first that is not a receipt decides what happens next.
        for item in &items {
            let verdict = match parsed
                .results
                .iter()
                .find(|r| r.idempotency_key == item.invoice_id)
            {
                Some(r) => classify(
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
            match self.settle(i, item, verdict).await? {
                Step::Stored => {
                    queue.pop_front();
                }
                other => return Ok(other),
            }
        }
        Ok(Step::Again)
    }

    /// Acts on the authority's answer about one item.
    async fn settle(&mut self, i: usize, item: &Item, verdict: Verdict) -> Result<Step, SyncError> {
        let endpoint = self.link.url(i).to_string();
        let verdict = match verdict {
            Verdict::Success(answer) => match serde_json::from_str::<Receipt>(&answer.body) {
                Ok(_) => Verdict::Success(answer),
                Err(e) => Verdict::retry(format!("the receipt is malformed: {e}"), true),
            },
            Verdict::ChainGap { expected_seq, .. }
                if expected_seq == 0 || expected_seq == item.seq =>
            {
                Verdict::retry(
                    format!("chain_gap with an impossible expected_seq {expected_seq}"),
                    true,
                )
            }
            // Submissions are not device-signed: a clock complaint is nonsense here.
            Verdict::ClockSkew { .. } => {
                Verdict::retry("unexpected clock_skew on an invoice submission", true)
            }
            other => other,
        };
        self.link.note(i, &verdict);
        let now = Utc::now();
        match verdict {
            Verdict::Success(answer) if item.pending => {
                self.taken.insert(item.invoice_id.clone());
                self.report.submitted = self.taken.len() as u64;
                match self
                    .ledger
                    .store_receipt(&item.invoice_id, &answer.body, now)
                {
                    Ok(status) => {
                        match status {
                            Status::Accepted => self.report.accepted += 1,
                            Status::Rejected => self.report.rejected += 1,
                            Status::Pending => {}
                        }
                        self.link.emit(Progress::Submitted {
                            number: item.number.clone(),
                            status: status.as_str().to_string(),
                        });
                        self.link.progressed();
                        Ok(Step::Stored)
                    }
                    Err(LedgerError::BadReceipt(why)) => {
                        let text = format!(
                            "the receipt from {endpoint} for invoice {} (seq {}) was refused and not stored: {why}; the invoice stays pending",
                            item.number, item.seq
                        );
                        self.link.alert(
                            self.ledger,
                            "bad_receipt",
                            &text,
                            Some(&item.invoice_id),
                        )?;
                        self.ledger.record_attempt(&item.invoice_id, &text, None)?;
                        Ok(Step::End(SyncOutcome::Stopped(text)))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Verdict::Success(answer) => match self.check_final_receipt(item, &answer.body) {
                Ok(()) => {
                    self.cursor = Some(item.seq + 1);
                    self.link.progressed();
                    Ok(Step::Stored)
                }
                Err(why) => {
                    let text = format!(
                        "the receipt from {endpoint} for the resubmitted invoice {} (seq {}) does not check out: {why}",
                        item.number, item.seq
                    );
                    self.link
                        .alert(self.ledger, "bad_receipt", &text, Some(&item.invoice_id))?;
                    Ok(Step::End(SyncOutcome::Stopped(text)))
                }
            },
            Verdict::Retry { reason, .. } => {
                // The next slot waits as the policy says (backoff, Retry-After, budget,
                // throttling, breakers) or ends the run at the give-up deadline.
                let reason = format!("{endpoint}: {reason}");
                if item.pending {
                    let next = self.link.next_attempt_at();
                    self.ledger
                        .record_attempt(&item.invoice_id, &reason, next)?;
                }
                self.link.last_reason = reason;
                Ok(Step::Again)
            }
            Verdict::ChainGap { expected_seq, .. } if expected_seq < item.seq => {
                // The authority is behind us (restored from a backup): resubmit from
                // where it is, in order. Nothing is skipped.
                self.rewinds += 1;
                if self.rewinds > MAX_REWINDS {
                    let text = format!(
                        "{endpoint} keeps asking to resubmit from seq {expected_seq}; giving up for this run"
                    );
                    self.link.last_reason = text.clone();
                    return Ok(Step::End(SyncOutcome::Transient(text)));
                }
                self.cursor = Some(self.cursor.map_or(expected_seq, |c| c.min(expected_seq)));
                Ok(Step::Again)
            }
            Verdict::ChainGap { expected_seq, .. } => {
                let text = format!(
                    "invoice {} (seq {}, id {}): {endpoint} expects seq {expected_seq}, beyond ours: the authority holds invoices of this device that this ledger does not",
                    item.number, item.seq, item.invoice_id
                );
                self.stop(item, "integrity", &text).await
            }
            Verdict::Stop { code, message } => {
                let text = format!(
                    "invoice {} (seq {}, id {}): {endpoint} answered {code}: {message}",
                    item.number, item.seq, item.invoice_id
                );
                self.stop(item, &code, &text).await
            }
            Verdict::Unauthorized { code, message } => {
                let text = format!(
                    "{endpoint} refused this device ({code}: {message}); it is not used again in this run"
                );
                self.link.last_reason = text.clone();
                self.link.alert(self.ledger, &code, &text, None)?;
                if item.pending {
                    self.ledger.record_attempt(&item.invoice_id, &text, None)?;
                }
                Ok(Step::Again)
            }
            Verdict::Refused {
                status,
                code,
                message,
                field,
            } => {
                let text = format!(
                    "invoice {} (seq {}): {endpoint} refused the submission (HTTP {status} {code}{}): {message}; it stays pending",
                    item.number,
                    item.seq,
                    if field.is_empty() { String::new() } else { format!(", field {field}") }
                );
                self.link
                    .alert(self.ledger, &code, &text, Some(&item.invoice_id))?;
                if item.pending {
                    self.ledger.record_attempt(&item.invoice_id, &text, None)?;
                }
                Ok(Step::End(SyncOutcome::Stopped(text)))
            }
            Verdict::ClockSkew { .. } => Ok(Step::Again),
        }
    }

    /// Integrity failure or key reuse: stop the queue for a human, with diagnostics.
    async fn stop(&mut self, item: &Item, code: &str, text: &str) -> Result<Step, SyncError> {
        let now = Utc::now();
        self.ledger.stop_queue(text, now)?;
        self.link
            .alert(self.ledger, code, text, Some(&item.invoice_id))?;
        if item.pending {
            self.ledger.record_attempt(&item.invoice_id, text, None)?;
        }
        Ok(Step::End(SyncOutcome::Stopped(text.to_string())))
    }

    /// A receipt for an invoice that is already final here: it must be the authority's,
    /// for this invoice and these bytes; it is not stored (the first receipt stays).
    fn check_final_receipt(&self, item: &Item, body: &str) -> Result<(), String> {
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        verify_object(
            &self.authority,
            RECEIPT_DOMAIN,
            &value,
            "authority_signature",
        )
        .map_err(|e| format!("authority signature: {e}"))?;
        let receipt: Receipt = serde_json::from_value(value).map_err(|e| e.to_string())?;
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
