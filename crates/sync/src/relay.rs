//! The outbox relay: "Sync now" (SPEC 6). Submits the outbox in seq order with the
//! stored bytes and the invoice's idempotency key, stores receipts, retries what may
//! succeed later, stops the queue on integrity failures, and compares heads at the end.

use crate::client::{classify, Answer, Verdict};
use crate::enrol::{needs_lease, take_lease};
use crate::error::SyncError;
use crate::link::{clock, Call, Ended, Link, Signer};
use crate::policy::Recovery;
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
use std::collections::{BTreeSet, HashSet, VecDeque};

/// Outbox rows read at a time when submitting one by one.
const CHUNK: usize = 100;
/// Receipts stored per ledger transaction while draining in batches
/// (`Ledger::store_receipt_groups`): a transaction this short holds an issuance waiting
/// for the write lock for a fraction of a millisecond; 5 was no better for the clerk's
/// p99 within the noise and brought the drain with issuance alongside near 0.5x the
/// import (docs/BENCHMARKS.md).
const RECEIPT_GROUP: usize = 10;
/// Outbox rows read at a time when draining in batches, counted in batches: the outbox
/// is read again only once the receipts in flight are stored, so a longer queue keeps
/// the next batch on the wire more of the time.
const QUEUE_BATCHES: usize = 4;
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

/// The answer about one item as the relay reads it: a receipt that does not parse, an
/// impossible `chain_gap` and a clock complaint (submissions are not device-signed) are
/// failed attempts like a 5xx.
fn judge(item: &Item, verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::Success(answer) => match serde_json::from_str::<Receipt>(&answer.body) {
            Ok(_) => Verdict::Success(answer),
            Err(e) => Verdict::retry(format!("the receipt is malformed: {e}"), true),
        },
        Verdict::ChainGap { expected_seq, .. } if expected_seq == 0 || expected_seq == item.seq => {
            Verdict::retry(
                format!("chain_gap with an impossible expected_seq {expected_seq}"),
                true,
            )
        }
        Verdict::ClockSkew { .. } => {
            Verdict::retry("unexpected clock_skew on an invoice submission", true)
        }
        other => other,
    }
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
    /// Reconciliation's healing ([`resubmit_lost`]): end once the final invoices are
    /// resubmitted instead of going on with the outbox (that is sync's work).
    finals_only: bool,
    /// Seqs of the final invoices resubmitted in this run whose receipts checked out.
    resubmitted: BTreeSet<u64>,
    /// A run of the background loop after an outage: spread the backlog over this long
    /// ([`crate::policy::Recovery`]).
    start_spread: Option<std::time::Duration>,
    /// The recovery plan being followed (with `start_spread`).
    plan: Option<Recovery>,
    /// The current share ends when this many invoices have been answered with a
    /// receipt in this run (`taken`); None: no limit.
    share_until: Option<usize>,
    /// The run's one share was sent (`SyncOptions::max_items`): it ends there, the rest
    /// left for the next.
    paused: bool,
    /// The link's overload refusals when the current share began: one more, and the
    /// share ends there (the rest waits for the next turn of a stretched plan).
    share_overloads: u64,
    /// A second connection to the ledger that stores a batch's receipts on a blocking
    /// thread while the next batch is on the wire (None until first needed, or when it
    /// cannot be opened: then receipts are stored in line).
    writer: Option<Ledger>,
    /// The receipts of the last batch, being stored.
    storing: Option<Storing>,
}

/// The receipts of one batch answer being stored.
struct Storing {
    endpoint: usize,
    items: Vec<Item>,
    work: Work,
}

enum Work {
    /// On the writer connection, off the async thread.
    Writing(tokio::task::JoinHandle<(Ledger, StoreResults)>),
    /// Stored in line already (no writer connection).
    Done(StoreResults),
}

type StoreResults = Result<Vec<Result<Status, LedgerError>>, LedgerError>;

impl Work {
    /// The results, and the writer connection back.
    async fn collect(self) -> (Option<Ledger>, StoreResults) {
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

/// What every run that stores receipts needs before it talks to the authority.
pub(crate) struct Prepared {
    /// The outbox lock: one drainer per data directory (SPEC 5).
    pub lock: kaipiao_ledger::OutboxLock,
    pub servers: Vec<String>,
    pub device_id: String,
    /// The authority key pinned at enrolment: the only key a receipt may verify against.
    pub authority: PublicKey,
}

/// Takes the outbox lock and checks that the device is enrolled and `key` is its key.
pub(crate) fn prepare(ledger: &Ledger, key: &DeviceKey) -> Result<Prepared, SyncError> {
    let lock = ledger.lock_outbox()?;
    let device = ledger.device()?.ok_or(LedgerError::NotInitialized)?;
    let device_id = device.device_id.clone().ok_or(LedgerError::NotEnrolled)?;
    if key.public().to_base64() != device.public_key {
        return Err(SyncError::WrongKey);
    }
    let pinned = device
        .authority_public_key
        .as_deref()
        .ok_or(LedgerError::NotEnrolled)?;
    let authority = PublicKey::from_base64(pinned).map_err(|_| LedgerError::Integrity {
        seq: 0,
        what: "the pinned authority key is not a base64 Ed25519 key".into(),
    })?;
    Ok(Prepared {
        lock,
        servers: device.servers,
        device_id,
        authority,
    })
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
    let Prepared {
        lock: _lock,
        servers,
        device_id,
        authority,
    } = prepare(ledger, key)?;
    let mut report = SyncReport::new();
    if let Some(reason) = ledger.queue_stopped()? {
        report.pending = ledger.status(Utc::now())?.pending;
        report.outcome =
            SyncOutcome::Stopped(format!("the outbox is stopped and needs a human: {reason}"));
        return Ok(report);
    }
    let client = Client::new(&servers, opts)?;
    let mut link = Link::new(client, opts, progress);
    link.watch_outages(ledger)?;
    let run = Run {
        link,
        ledger,
        key,
        device_id,
        authority,
        batch_size: opts.batch_size.min(MAX_BATCH_ITEMS),
        report,
        taken: HashSet::new(),
        rewinds: 0,
        cursor: None,
        finals_only: false,
        resubmitted: BTreeSet::new(),
        start_spread: opts.start_spread.filter(|_| opts.background),
        plan: None,
        share_until: opts.max_items,
        paused: false,
        share_overloads: 0,
        writer: None,
        storing: None,
    };
    run.execute().await
}

/// What [`resubmit_lost`] did.
pub(crate) struct Resubmitted {
    /// Complete once every lost final invoice was resubmitted and its receipt checked.
    pub outcome: SyncOutcome,
    /// Seqs of the final invoices resubmitted whose receipts checked out.
    pub seqs: Vec<u64>,
}

/// Reconciliation's healing ([`crate::reconcile`]): the authority lost invoices that are
/// final here (restored from an older backup, so its `head` is behind ours). Resubmits
/// the stored envelopes from `head.seq + 1` up to the first pending invoice by the path a
/// run takes after a `chain_gap` (same bytes, same keys, receipts checked, the first
/// receipt kept), then stops: the outbox is left to sync. Nothing is sent when the
/// authority's chain is not a prefix of ours. The link (the run's policy state and
/// alerts) is handed back to the caller.
pub(crate) async fn resubmit_lost<'a>(
    link: Link<'a>,
    ledger: &'a Ledger,
    key: &'a DeviceKey,
    device_id: String,
    authority: PublicKey,
    head: &Head,
) -> (Link<'a>, Result<Resubmitted, SyncError>) {
    let mut run = Run {
        link,
        ledger,
        key,
        device_id,
        authority,
        batch_size: 0,
        report: SyncReport::new(),
        taken: HashSet::new(),
        rewinds: 0,
        cursor: None,
        finals_only: true,
        resubmitted: BTreeSet::new(),
        start_spread: None,
        plan: None,
        share_until: None,
        paused: false,
        share_overloads: 0,
        writer: None,
        storing: None,
    };
    let result = run.resubmit_from(head).await;
    (run.link, result)
}

impl Run<'_> {
    /// The run, then the policy's state kept for the next one whatever happened.
    async fn execute(mut self) -> Result<SyncReport, SyncError> {
        self.link.resume(self.ledger.dir());
        if let Some(spread) = self.start_spread {
            let pending = self.ledger.status(Utc::now())?.pending;
            let plan = Recovery::plan(clock(), spread, pending, &mut rand::thread_rng());
            self.link.wait_for_turn(plan.first()).await;
            let share = plan.share(clock(), self.ledger.status(Utc::now())?.pending);
            self.share_until = Some(usize::try_from(share).unwrap_or(usize::MAX));
            self.plan = Some(plan);
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
        // A run that sent only its share leaves the heads for the run that ends the drain.
        if !self.paused && (self.link.answered || outcome == SyncOutcome::Complete) {
            self.link.progressed();
            server_head = self.fetch_head().await;
            // The authority is behind with nothing pending here (e.g. restored from a
            // backup): resubmit what it lost, once, then look again. Pending count and
            // head come from one snapshot: the clerk may be issuing meanwhile.
            if let (SyncOutcome::Complete, Some(head)) = (&outcome, &server_head) {
                let local = self.ledger.status(Utc::now())?;
                if local.pending == 0 && head.seq < local.head.seq && self.common_prefix(head)? {
                    self.cursor = Some(head.seq + 1);
                    self.link.progressed();
                    outcome = self.drain().await?;
                    self.link.progressed();
                    server_head = self.fetch_head().await.or(server_head);
                }
            }
        }

        if !self.paused && server_head.is_none() && outcome == SyncOutcome::Complete {
            // Everything was filed but the heads could not be compared: work remains.
            outcome = SyncOutcome::Transient(
                "the authority's head could not be read, so the chains were not compared".into(),
            );
        }
        // Failed attempts that no answer followed are an outage; recorded before the
        // sync time moves, which bounds the invoices the outage takes in.
        self.link.finish_outage()?;
        let now = Utc::now();
        if self.link.answered {
            self.ledger.set_last_sync(now)?;
        }
        // One snapshot for both: an invoice issued between two reads would look like a
        // head the authority lacks with nothing pending.
        let status = self.ledger.status(now)?;
        let (pending, local) = (status.pending, status.head);
        if let Some(head) = &server_head {
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
        self.report.overloaded = self.link.overloads > 0;
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
        self.cursor = Some(head.seq.saturating_add(1));
        self.link.progressed();
        let outcome = self.drain().await?;
        Ok(Resubmitted {
            outcome,
            seqs: self.resubmitted.iter().copied().collect(),
        })
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
                // The receipts in flight go in before the outbox is read again.
                if let Step::End(outcome) = self.flush().await? {
                    return Ok(outcome);
                }
                let rows = (self.batch_size * QUEUE_BATCHES).max(CHUNK);
                queue = self.ledger.outbox(None, rows)?.into();
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
            if self.finals_only {
                return Ok(SyncOutcome::Complete);
            }
            if queue.is_empty() {
                return Ok(SyncOutcome::Complete);
            }
            if self.share_until.is_some() && self.link.overloads > self.share_overloads {
                // The authority pushed back on this share: the rest of it waits.
                self.share_until = Some(self.taken.len());
            }
            if self.share_left() == Some(0) {
                if let Step::End(outcome) = self.next_share().await? {
                    return Ok(outcome);
                }
                // The outbox is read again for the new share.
                queue.clear();
                continue;
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

    /// Invoices left in the current share; None without a limit.
    fn share_left(&self) -> Option<usize> {
        self.share_until
            .map(|until| until.saturating_sub(self.taken.len()))
    }

    /// The current share is sent. With a recovery plan: wait for the next share's turn
    /// (everything left once the window has ended). With `max_items` alone: the run
    /// ends here, complete as far as it was asked to go.
    async fn next_share(&mut self) -> Result<Step, SyncError> {
        // The receipts in flight go in before the pending count is read.
        if let Step::End(outcome) = self.flush().await? {
            return Ok(Step::End(outcome));
        }
        let refused = self.link.overloads > self.share_overloads;
        self.share_overloads = self.link.overloads;
        let Some(plan) = self.plan.as_mut() else {
            self.paused = true;
            return Ok(Step::End(if refused {
                SyncOutcome::Transient(
                    "the authority refused part of this share for overload: the rest waits for the next"
                        .into(),
                )
            } else {
                SyncOutcome::Complete
            }));
        };
        // Slower where the authority pushed back, back towards the plan where it did not.
        if refused {
            plan.stretch(clock());
        } else {
            plan.relax(clock());
        }
        let plan = *plan;
        match plan.next_after(clock()) {
            Some(at) => {
                self.link.wait_for_turn(at).await;
                let pending = self.ledger.status(Utc::now())?.pending;
                let share = usize::try_from(plan.share(clock(), pending)).unwrap_or(usize::MAX);
                self.share_until = Some(self.taken.len().saturating_add(share));
            }
            None => self.share_until = None,
        }
        Ok(Step::Again)
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
            Err(outcome) => {
                // Whatever ends the run, the receipts already in hand are stored.
                return match self.flush().await? {
                    Step::End(stopped) => Ok(Step::End(stopped)),
                    _ => Ok(Step::End(outcome)),
                };
            }
        };
        // The envelopes go in as their stored bytes, not re-serialised.
        let mut body = String::from("{\"items\":[");
        let mut items: Vec<Item> = Vec::new();
        let take = self
            .share_left()
            .map_or(self.batch_size, |n| n.min(self.batch_size));
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
        let Some(first) = items.first().cloned() else {
            return Ok(Step::Again);
        };
        let send = self.link.client.send(
            Method::POST,
            &endpoint,
            "/v1/invoices:batch",
            Some(body.into_bytes()),
            &[],
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
        // Each result is read as if the item had been sent alone, in seq order.
        let verdicts: Vec<Verdict> = items
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
                judge(item, verdict)
            })
            .collect();
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
            self.link.note(i, &Verdict::Success(accepted))?;
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
                self.link.note(i, &verdict)?;
                // The batch itself was answered with a 200: for the outage record that
                // is a success, whatever this item's answer.
                self.link.served(i)?;
                self.act(i, item, verdict).await
            }
            _ => Ok(Step::Again),
        }
    }

    /// Starts storing the receipts (`bodies`, exactly as received) of `items` — pending
    /// invoices in seq order, each answered with a receipt by endpoint `i` — on the
    /// writer connection off the async thread ([`Run::flush`] or the next batch's send
    /// collects the results).
    fn store_receipts(&mut self, i: usize, items: Vec<Item>, bodies: Vec<String>) {
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

    /// Collects the receipts being stored, if any: `Stored`, or the end of the run when
    /// one was refused.
    async fn flush(&mut self) -> Result<Step, SyncError> {
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
    fn stored_batch(
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
        self.link.emit(Progress::Submitted {
            number: item.number.clone(),
            status: status.as_str().to_string(),
        });
        self.link.progressed();
    }

    /// A receipt the ledger refused (it does not verify or does not match the invoice):
    /// never final; alert, and the run stops for a human.
    fn bad_receipt(&mut self, i: usize, item: &Item, why: &str) -> Result<Step, SyncError> {
        let text = format!(
            "the receipt from {} for invoice {} (seq {}) was refused and not stored: {why}; the invoice stays pending",
            self.link.url(i),
            item.number,
            item.seq
        );
        self.link
            .alert(self.ledger, "bad_receipt", &text, Some(&item.invoice_id))?;
        self.ledger.record_attempt(&item.invoice_id, &text, None)?;
        Ok(Step::End(SyncOutcome::Stopped(text)))
    }

    /// Acts on the authority's answer about one item sent alone.
    async fn settle(&mut self, i: usize, item: &Item, verdict: Verdict) -> Result<Step, SyncError> {
        let verdict = judge(item, verdict);
        self.link.note(i, &verdict)?;
        self.act(i, item, verdict).await
    }

    /// Acts on a judged verdict about one item (the policy has been told already).
    async fn act(&mut self, i: usize, item: &Item, verdict: Verdict) -> Result<Step, SyncError> {
        let endpoint = self.link.url(i).to_string();
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
                        self.stored(item, status);
                        Ok(Step::Stored)
                    }
                    Err(LedgerError::BadReceipt(why)) => self.bad_receipt(i, item, &why),
                    Err(e) => Err(e.into()),
                }
            }
            Verdict::Success(answer) => match self.check_final_receipt(item, &answer.body) {
                Ok(()) => {
                    self.resubmitted.insert(item.seq);
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
                    // An outage is recorded with the attempt, in its transaction.
                    match self.link.due_outage() {
                        Some(failed) => {
                            self.ledger.record_unanswered_attempt(
                                &item.invoice_id,
                                &reason,
                                next,
                                &failed,
                            )?;
                        }
                        None => self
                            .ledger
                            .record_attempt(&item.invoice_id, &reason, next)?,
                    }
                } else {
                    self.link.record_outage()?;
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
