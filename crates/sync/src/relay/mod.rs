//! The outbox relay: one sync run ("Sync now", SPEC 6). Submits the outbox in seq order
//! with the stored bytes and the invoice's idempotency key, acts on every answer (a
//! receipt stored, a retry, a rewind, a stopped queue), and ends with the head check.
//! The jobs it is made of have a file each: the batch wire format (`batch`), storing
//! receipts while the next batch is on the wire (`receipts`), the shares of a recovery
//! plan within a run (`shares`), resubmitting what the authority lost (`resubmit`) and
//! comparing heads (`head`).

mod admission;
mod batch;
mod head;
mod receipts;
mod resubmit;
mod shares;

pub(crate) use resubmit::{resubmit_lost, Resubmitted};

use crate::client::{read_answer, Verdict};
use crate::enrol::{needs_lease, take_lease};
use crate::error::SyncError;
use crate::policy::Recovery;
use crate::route::{Ended, Route};
use crate::{Client, Progress, SyncOptions, SyncOutcome, SyncReport};
use chrono::Utc;
use kaipiao_core::wire::{
    check_verdict, idempotency_header, Receipt, HEADER_ADMISSION, HEADER_IDEMPOTENCY_KEY,
    MAX_BATCH_ITEMS,
};
use kaipiao_core::{Code, DeviceKey, PublicKey};
use kaipiao_ledger::{Ledger, LedgerError, OutboxItem};
use receipts::Storing;
use reqwest::Method;
use std::collections::{BTreeSet, HashSet, VecDeque};

/// Outbox rows read at a time when submitting one by one.
const CHUNK: usize = 100;
/// Outbox rows read at a time when draining in batches, counted in batches. The rows
/// after the last batch answered are read while its receipts are still being stored.
const QUEUE_BATCHES: usize = 4;

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

/// The verdict on one invoice's submission, from the verdict on the answer: a receipt
/// that does not parse, an impossible `chain_gap` and a clock complaint (submissions are
/// not device-signed) are failed attempts like a 5xx; an answer that would stop the
/// queue (422 `integrity` or `idempotency_key_reused`, 409 `chain_gap` ahead of the
/// invoice) stands only as the authority's word about this envelope, signed with the
/// key pinned at enrolment ([`kaipiao_core::wire::check_verdict`]), else it is
/// [`Verdict::Forged`].
fn submission_verdict(item: &Item, verdict: Verdict, authority: &PublicKey) -> Verdict {
    match verdict {
        Verdict::Stop {
            code,
            message,
            body,
        } => match authority_word(item, authority, &body) {
            Ok(()) => Verdict::Stop {
                code,
                message,
                body,
            },
            Err(why) => Verdict::Forged { code, why },
        },
        Verdict::ChainGap {
            expected_seq,
            message,
            body,
        } if expected_seq > item.seq => match authority_word(item, authority, &body) {
            Ok(()) => Verdict::ChainGap {
                expected_seq,
                message,
                body,
            },
            Err(why) => Verdict::Forged {
                code: Code::ChainGap.as_str().to_string(),
                why,
            },
        },
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

/// Whether `body` is the authority's signed verdict about `item`'s envelope; Err says why
/// not.
fn authority_word(item: &Item, authority: &PublicKey, body: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Hashed {
        hash: String,
    }
    let hash = serde_json::from_str::<Hashed>(&item.body)
        .map(|h| h.hash)
        .map_err(|e| format!("the stored envelope's hash cannot be read ({e})"))?;
    check_verdict(body, authority, &item.invoice_id, &hash)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

struct Run<'a> {
    route: Route<'a>,
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
    /// The run was limited to one share (`SyncOptions::max_items`, no plan of its own)
    /// and ended when that share did: the rest of the outbox, and the head check, are
    /// left for a later run.
    ended_at_share: bool,
    /// The route's overload refusals when the current share began: one more, and the
    /// share ends there (the rest waits for the next turn of a stretched plan).
    share_overloads: u64,
    /// A second connection to the ledger that stores a batch's receipts on a blocking
    /// thread while the next batch is on the wire (None until first needed, or when it
    /// cannot be opened: then receipts are stored in line).
    writer: Option<Ledger>,
    /// The receipts of the last batch, being stored.
    storing: Option<Storing>,
    /// Whether the authority paces this run (issue 13), found at its start.
    pacing: admission::Pacing,
    /// The admission ticket the current share is sent under.
    ticket: Option<String>,
    /// Waits for its turn ([`SyncOptions::wait_for_turn`]) rather than ending with it.
    background: bool,
}

impl<'a> Run<'a> {
    /// A run over `route` that has not sent anything yet.
    fn new(
        route: Route<'a>,
        ledger: &'a Ledger,
        key: &'a DeviceKey,
        device_id: String,
        authority: PublicKey,
    ) -> Run<'a> {
        Run {
            route,
            ledger,
            key,
            device_id,
            authority,
            batch_size: 0,
            report: SyncReport::new(),
            taken: HashSet::new(),
            rewinds: 0,
            cursor: None,
            finals_only: false,
            resubmitted: BTreeSet::new(),
            start_spread: None,
            plan: None,
            share_until: None,
            ended_at_share: false,
            share_overloads: 0,
            writer: None,
            storing: None,
            pacing: admission::Pacing::Own,
            ticket: None,
            background: false,
        }
    }
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

/// The outbox lock, waiting up to `wait` for another process to release it (polling:
/// a file lock has no wait with a deadline); `busy` when it is still held then.
async fn lock_outbox(
    ledger: &Ledger,
    wait: std::time::Duration,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<kaipiao_ledger::OutboxLock, SyncError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut told = false;
    loop {
        match ledger.lock_outbox() {
            Err(LedgerError::Busy) if tokio::time::Instant::now() < deadline => {
                if !told {
                    progress(Progress::WaitingForLock { up_to: wait });
                    told = true;
                }
                tokio::time::sleep(crate::LOCK_POLL.min(wait)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Takes the outbox lock (waiting up to `opts.lock_wait`) and checks that the device is
/// enrolled and `key` is its key.
pub(crate) async fn prepare(
    ledger: &Ledger,
    key: &DeviceKey,
    opts: &SyncOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Prepared, SyncError> {
    let lock = lock_outbox(ledger, opts.lock_wait, progress).await?;
    let (device, device_id, authority) = enrolled(ledger, key)?;
    Ok(Prepared {
        lock,
        servers: device.servers,
        device_id,
        authority,
    })
}

/// The enrolled device, its id and the authority key pinned at enrolment, once `key` is
/// checked to be the device's key.
pub(crate) fn enrolled(
    ledger: &Ledger,
    key: &DeviceKey,
) -> Result<(kaipiao_ledger::LocalDevice, String, PublicKey), SyncError> {
    let device = ledger.device()?.ok_or(LedgerError::NotInitialized)?;
    let device_id = device.device_id.clone().ok_or(LedgerError::NotEnrolled)?;
    if !key.belongs_to(&device.public_key) {
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
    Ok((device, device_id, authority))
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
    } = prepare(ledger, key, opts, progress).await?;
    let mut report = SyncReport::new();
    if let Some(reason) = ledger.queue_stopped()? {
        report.pending = ledger.status(Utc::now())?.pending;
        report.outcome =
            SyncOutcome::Stopped(format!("the outbox is stopped and needs a human: {reason}"));
        return Ok(report);
    }
    let client = Client::new(&servers, opts)?;
    let mut route = Route::new(client, opts, progress);
    route.watch_outages(ledger)?;
    let run = Run {
        batch_size: opts.batch_size.min(MAX_BATCH_ITEMS),
        start_spread: opts.start_spread.filter(|_| opts.background),
        share_until: opts.max_items,
        background: opts.wait_for_turn,
        ..Run::new(route, ledger, key, device_id, authority)
    };
    run.execute().await
}

impl Run<'_> {
    /// The run, then the policy's state kept for the next one whatever happened.
    async fn execute(mut self) -> Result<SyncReport, SyncError> {
        self.route.resume(self.ledger.dir());
        if let Some(spread) = self.start_spread {
            self.start_plan(spread).await?;
        }
        // Does the authority pace recovery? Asked only for a backlog, and after the
        // plan's first wait, so that a fleet coming back does not ask all at once.
        if !self.finals_only {
            self.probe_pacing().await?;
        }
        let result = self.work().await;
        self.route.persist(self.ledger.dir());
        result.map(|()| self.report)
    }

    async fn work(&mut self) -> Result<(), SyncError> {
        // Leases first (best effort: one try per endpoint, no waiting).
        let leased = !needs_lease(self.ledger)? || self.top_up().await;

        let mut outcome = self.drain().await?;

        // The authority came back during the run: take the lease now.
        if !leased && self.route.answered {
            self.top_up().await;
        }

        // A run that sent only its share leaves the heads for the run that ends the drain.
        let server_head =
            if !self.ended_at_share && (self.route.answered || outcome == SyncOutcome::Complete) {
                self.read_head(&mut outcome).await?
            } else {
                None
            };

        if !self.ended_at_share && server_head.is_none() && outcome == SyncOutcome::Complete {
            // Everything was filed but the heads could not be compared: work remains.
            outcome = SyncOutcome::Transient(
                "the authority's head could not be read, so the chains were not compared".into(),
            );
        }
        // Failed attempts that no answer followed are an outage; recorded before the
        // sync time moves, which bounds the invoices the outage takes in.
        self.route.finish_outage()?;
        let now = Utc::now();
        if self.route.answered {
            self.ledger.set_last_sync(now)?;
        }
        // One snapshot for both: an invoice issued between two reads would look like a
        // head the authority lacks with nothing pending.
        let status = self.ledger.status(now)?;
        if let Some(head) = &server_head {
            self.ledger
                .note_authority_head(head.seq, Some(&head.hash), now)?;
            self.compare_heads(head, &status, &mut outcome)?;
        }
        self.report.pending = status.pending;
        self.report.server_head = server_head;
        self.report.outcome = outcome;
        self.report.alerts = std::mem::take(&mut self.route.alerts);
        self.report.overloaded = self.route.overloads > 0;
        Ok(())
    }

    /// Best-effort lease top-up; true when a lease was stored. A stored lease is
    /// progress: a slow lease answer must not eat the submissions' time.
    async fn top_up(&mut self) -> bool {
        let (ledger, key) = (self.ledger, self.key);
        let device_id = self.device_id.clone();
        let stored = take_lease(&mut self.route, ledger, key, &device_id, false)
            .await
            .is_ok();
        if stored {
            self.route.progressed();
        }
        stored
    }

    async fn drain(&mut self) -> Result<SyncOutcome, SyncError> {
        let mut queue: VecDeque<OutboxItem> = VecDeque::new();
        if let Some(outcome) = self.admit().await? {
            return Ok(outcome);
        }
        loop {
            if queue.is_empty() {
                let rows = (self.batch_size * QUEUE_BATCHES).max(CHUNK);
                // Past the items whose receipts are being stored: the next batch goes
                // out while they are.
                if let Some(from) = self.storing_past() {
                    queue = self.ledger.outbox_from(from, rows)?.into();
                }
                if queue.is_empty() {
                    // The receipts in flight go in before the outbox is read from its
                    // start.
                    if let Step::End(outcome) = self.flush().await? {
                        return Ok(outcome);
                    }
                    queue = self.ledger.outbox(None, rows)?.into();
                }
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
            self.end_share_if_refused();
            if self.share_left() == Some(0) {
                let next = match self.pacing {
                    admission::Pacing::Authority { .. } => self.next_admitted_share().await?,
                    admission::Pacing::Own => self.next_share().await?,
                };
                if let Step::End(outcome) = next {
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

    /// The endpoint and timeout for the next request once the policy lets it go, or how
    /// the run ends.
    async fn next_slot(&mut self) -> Result<(usize, String, std::time::Duration), SyncOutcome> {
        match self.route.slot(true).await {
            Ok(slot) => Ok(slot),
            Err(Ended::NoEndpoint(reason)) => Err(SyncOutcome::Stopped(reason)),
            Err(Ended::GaveUp(reason)) => Err(SyncOutcome::Transient(reason)),
        }
    }

    /// `POST /v1/invoices` with one invoice, and what follows from the answer.
    async fn send_one(&mut self, item: Item) -> Result<Step, SyncError> {
        let (i, endpoint, timeout) = match self.next_slot().await {
            Ok(slot) => slot,
            Err(outcome) => return Ok(Step::End(outcome)),
        };
        let mut headers = vec![(HEADER_IDEMPOTENCY_KEY, idempotency_header(&item.invoice_id))];
        if let Some(ticket) = &self.ticket {
            headers.push((HEADER_ADMISSION, ticket.clone()));
        }
        let result = self
            .route
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
        let verdict = read_answer(result, 201);
        self.follow_answer(i, &item, verdict).await
    }

    /// Follows endpoint `i`'s answer about one invoice sent alone (or a batch that failed
    /// as a whole, for its first invoice): read as a submission's, told to the route,
    /// acted on.
    async fn follow_answer(
        &mut self,
        i: usize,
        item: &Item,
        verdict: Verdict,
    ) -> Result<Step, SyncError> {
        let verdict = submission_verdict(item, verdict, &self.authority);
        self.route.note(i, &verdict)?;
        self.follow_verdict(i, item, verdict).await
    }

    /// Acts on the verdict on one invoice's submission (the route has been told already):
    /// a receipt is stored (or checked, for a resubmitted final invoice), a failed attempt
    /// recorded for the next, a `chain_gap` followed, a stop or refusal raised for a human.
    async fn follow_verdict(
        &mut self,
        i: usize,
        item: &Item,
        verdict: Verdict,
    ) -> Result<Step, SyncError> {
        let endpoint = self.route.url(i).to_string();
        match verdict {
            Verdict::Success(answer) if item.pending => self.store_receipt(i, item, &answer.body),
            Verdict::Success(answer) => self.resubmitted_receipt(&endpoint, item, &answer.body),
            Verdict::Retry { reason, .. } => {
                // The next slot waits as the policy says (backoff, Retry-After, budget,
                // throttling, breakers) or ends the run at the give-up deadline.
                let reason = format!("{endpoint}: {reason}");
                if item.pending {
                    let next = self.route.next_attempt_at();
                    // An outage is recorded with the attempt, in its transaction.
                    match self.route.due_outage() {
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
                    self.route.record_outage()?;
                }
                self.route.last_reason = reason;
                Ok(Step::Again)
            }
            Verdict::ChainGap { expected_seq, .. } if expected_seq < item.seq => {
                Ok(self.rewind(&endpoint, expected_seq))
            }
            Verdict::ChainGap { expected_seq, .. } => {
                // What the authority holds, signed: kept for `kaipiao queue`.
                self.ledger
                    .note_authority_head(expected_seq - 1, None, Utc::now())?;
                let text = format!(
                    "invoice {} (seq {}, id {}): {endpoint} expects seq {expected_seq}, beyond ours: the authority holds invoices of this device that this ledger does not",
                    item.number, item.seq, item.invoice_id
                );
                self.stop(item, Code::Integrity.as_str(), &text)
            }
            Verdict::Stop { code, message, .. } => {
                let text = format!(
                    "invoice {} (seq {}, id {}): {endpoint} answered {code}: {message}",
                    item.number, item.seq, item.invoice_id
                );
                self.stop(item, &code, &text)
            }
            Verdict::Unauthorized { code, message } => {
                let text = format!(
                    "{endpoint} refused this device ({code}: {message}); it is not used again in this run"
                );
                self.route.last_reason = text.clone();
                self.route.alert(self.ledger, &code, &text, None)?;
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
                self.route
                    .alert(self.ledger, &code, &text, Some(&item.invoice_id))?;
                if item.pending {
                    self.ledger.record_attempt(&item.invoice_id, &text, None)?;
                }
                Ok(Step::End(SyncOutcome::Stopped(text)))
            }
            Verdict::Forged { code, why } => {
                let text = format!(
                    "{endpoint} answered {code} about invoice {} (seq {}) without the authority's signature on it ({why}); the queue is not stopped, and {endpoint} is not used again in this run",
                    item.number, item.seq
                );
                self.route.last_reason = text.clone();
                self.route.alert(
                    self.ledger,
                    Code::UnsignedVerdict.as_str(),
                    &text,
                    Some(&item.invoice_id),
                )?;
                if item.pending {
                    self.ledger.record_attempt(&item.invoice_id, &text, None)?;
                }
                Ok(Step::Again)
            }
            Verdict::ClockSkew { .. } => Ok(Step::Again),
        }
    }

    /// Integrity failure or key reuse: stop the queue for a human, with diagnostics.
    /// The stop, its alert and the attempt are one transaction (`stop_queue_with_alert`).
    fn stop(&mut self, item: &Item, code: &str, text: &str) -> Result<Step, SyncError> {
        self.ledger.stop_queue_with_alert(
            code,
            text,
            Some(&item.invoice_id),
            item.pending,
            Utc::now(),
        )?;
        self.route.noted_alert(code, text);
        Ok(Step::End(SyncOutcome::Stopped(text.to_string())))
    }
}
