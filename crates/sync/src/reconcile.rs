//! Reconciliation: the client and the authority compare notes. For every local invoice,
//! in seq order, the authority is asked for its receipt (`GET /v1/invoices/{id}`,
//! device-signed, a few requests in flight, paced by the same policy as a sync run), the
//! answer is checked against the key pinned at enrolment and the ledger, and each invoice
//! ends up accounted for, mismatched, or missing at the authority; the authority's head
//! says whether it holds invoices this ledger lacks. An authority restored from an older
//! backup (its head behind ours) is healed by resubmitting what it lost through the
//! relay's own resubmission path, and the resubmitted invoices are checked again.
//!
//! What "the same receipt" means: equal as JSON (same fields and values however spaced
//! or ordered), which is what the ledger itself takes as a repeat of a stored receipt.
//! A receipt that verifies and names the same invoice, hash, status and reasons but
//! another `authority_code` / `received_at` is the authority's record of a later filing
//! (after it lost the first, e.g. restored from a backup and healed): accounted for, and
//! listed in `refiled`, because the 校验码 on the invoice the clerk handed out is no longer
//! the authority's. Anything else that differs is a mismatch.
//!
//! It never edits, drops or re-signs anything: a receipt is stored only for an invoice
//! still pending here, through [`Ledger::store_receipt`] exactly as sync stores one, and a
//! final invoice keeps its first receipt.

use crate::client::{read_answer, verdict_error, Answer, TransportError, Verdict};
use crate::error::SyncError;
use crate::relay::{prepare, resubmit_lost, Prepared, Resubmitted};
use crate::route::{Call, Ended, Route, Signer};
use crate::{Client, Progress, SyncOptions, SyncOutcome};
use chrono::Utc;
use kaipiao_core::wire::{Head, Receipt, WireError};
use kaipiao_core::{Code, DeviceKey, PublicKey};
use kaipiao_ledger::{InvoiceSummary, Ledger, LedgerError, ListFilter, Status};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Receipt requests in flight at once: enough to hide the round trip, few enough that a
/// reconciliation is no burst for the authority (and the pacer still decides each one).
const IN_FLIGHT: usize = 8;
/// Invoices read from the ledger at a time.
const PAGE: usize = 500;
/// Alerts raised for single invoices in one run; the rest are summed up in one more.
const MAX_ITEM_ALERTS: usize = 20;

/// What a reconciliation reports while it works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileProgress {
    /// The authority's answer about one more local invoice was read (first pass).
    Checked { checked: u64, total: u64 },
    /// The requests' own events (endpoints, waits) and receipts stored or resubmitted.
    Sync(Progress),
}

/// An invoice whose records differ between the ledger and the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub seq: u64,
    pub number: String,
    pub reason: String,
}

/// An invoice the authority has no receipt for (404 `not_found`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub seq: u64,
    pub number: String,
    /// The local status: `pending` is simply not filed yet; a final one the authority lost.
    pub status: Status,
    /// Resubmitted in this run and found at the authority afterwards.
    pub healed: bool,
}

/// Seqs of this device the authority holds and the ledger does not, inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeqRange {
    pub from_seq: u64,
    pub to_seq: u64,
}

/// A final invoice the authority holds under a later filing than the stored receipt's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refiled {
    pub seq: u64,
    pub number: String,
    /// The authority's 校验码 now.
    pub authority_code: String,
    /// The 校验码 of the receipt stored here (the one on the invoice handed out).
    pub local_authority_code: String,
}

/// What `kaipiao reconcile` prints, whatever the outcome. Field names are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Local invoices the authority answered about (receipt or `not_found`).
    pub checked: u64,
    /// Local invoices to check (the ledger when the run started).
    pub total: u64,
    /// Checked invoices whose records agree (after healing and re-checking).
    pub accounted_for: u64,
    /// In seq order.
    pub mismatched: Vec<Mismatch>,
    /// As found, in seq order; `healed` tells which were resubmitted and found afterwards.
    pub missing_at_authority: Vec<Missing>,
    pub missing_locally: Option<SeqRange>,
    /// Final invoices the authority had lost, resubmitted and found afterwards.
    pub healed: u64,
    /// Receipts the authority held for invoices pending here, now stored.
    pub received: u64,
    /// Accounted for, but the authority's 校验码 differs from the stored receipt's.
    pub refiled: Vec<Refiled>,
    /// Invoices still pending here after the run.
    pub pending: u64,
    /// The authority's head for this device (after healing); None if it could not be read.
    pub server_head: Option<Head>,
    #[serde(skip)]
    pub outcome: SyncOutcome,
    /// Alerts raised during this run.
    #[serde(skip)]
    pub alerts: Vec<String>,
}

impl ReconcileReport {
    fn new() -> ReconcileReport {
        ReconcileReport {
            checked: 0,
            total: 0,
            accounted_for: 0,
            mismatched: Vec::new(),
            missing_at_authority: Vec::new(),
            missing_locally: None,
            healed: 0,
            received: 0,
            refiled: Vec::new(),
            pending: 0,
            server_head: None,
            outcome: SyncOutcome::Complete,
            alerts: Vec::new(),
        }
    }

    /// SPEC 9: 0 all accounted for (or healed), 3 transient, 4 a mismatch, invoices
    /// missing here, lost invoices not healed, or a stopped queue.
    pub fn exit_code(&self) -> i32 {
        self.outcome.exit_code()
    }
}

/// One local invoice to ask about.
#[derive(Debug, Clone)]
struct Local {
    seq: u64,
    id: String,
    number: String,
    status: Status,
}

impl From<InvoiceSummary> for Local {
    fn from(s: InvoiceSummary) -> Local {
        Local {
            seq: s.seq,
            id: s.id,
            number: s.number,
            status: s.status,
        }
    }
}

/// The first look at every invoice, or the second at those resubmitted by the healing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Survey,
    Recheck,
}

/// How a receipt compares with what the ledger holds.
enum Finding {
    Accounted,
    Refiled(Refiled),
    Mismatch(String),
}

/// A request that came back.
struct Landed {
    local: Local,
    endpoint: usize,
    /// The clock offset its timestamp was signed with.
    offset: i64,
    result: Result<Answer, TransportError>,
}

type Flight<'f> = Pin<Box<dyn Future<Output = Landed> + 'f>>;

/// The first of `flying` to come back (None when none is in flight).
async fn land(flying: &mut Vec<Flight<'_>>) -> Option<Landed> {
    if flying.is_empty() {
        return None;
    }
    let landed = std::future::poll_fn(|cx| {
        for k in 0..flying.len() {
            if let Poll::Ready(landed) = flying[k].as_mut().poll(cx) {
                drop(flying.swap_remove(k));
                return Poll::Ready(landed);
            }
        }
        Poll::Pending
    })
    .await;
    Some(landed)
}

/// 404 `not_found` from the authority itself (a 404 page from anything else is a failed
/// attempt, as [`read_answer`] reads it).
fn is_not_found(answer: &Answer) -> bool {
    answer.status == 404
        && serde_json::from_str::<WireError>(&answer.body)
            .is_ok_and(|e| e.error.code == Code::NotFound)
}

/// The receipt as JSON and as a receipt; Err when it is neither (a failed attempt, as in
/// sync: garbage from a proxy is not the authority's word).
fn parse_receipt(body: &str) -> Result<(Value, Receipt), String> {
    let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let receipt = serde_json::from_value::<Receipt>(value.clone()).map_err(|e| e.to_string())?;
    Ok((value, receipt))
}

/// A receipt without what belongs to one filing (code, time, and the signature over them).
fn without_filing(receipt: &Value) -> Value {
    let mut v = receipt.clone();
    if let Some(map) = v.as_object_mut() {
        for field in ["authority_code", "received_at", "authority_signature"] {
            map.remove(field);
        }
    }
    v
}

/// Reconciles the ledger with the authority (see the module documentation): takes the
/// outbox lock, reads the authority's head, asks for the receipt of every local invoice,
/// heals an authority that lost final invoices, and re-checks what it resubmitted.
///
/// `Err` only when nothing could be attempted or the ledger failed; otherwise the report
/// says how far the run got and [`ReconcileReport::outcome`] why it ended.
pub async fn reconcile(
    ledger: &Ledger,
    key: &DeviceKey,
    opts: &SyncOptions,
    progress: &(dyn Fn(ReconcileProgress) + Send + Sync),
) -> Result<ReconcileReport, SyncError> {
    reconcile_with(ledger, key, opts, progress, false).await
}

/// [`reconcile()`]; with `despite_stop`, a stopped queue is not itself a finding (the
/// reconciliation that `queue resume` runs to see whether it explains the stop).
pub(crate) async fn reconcile_with(
    ledger: &Ledger,
    key: &DeviceKey,
    opts: &SyncOptions,
    progress: &(dyn Fn(ReconcileProgress) + Send + Sync),
    despite_stop: bool,
) -> Result<ReconcileReport, SyncError> {
    // Receipts are stored and invoices resubmitted: one drainer per data directory.
    let Prepared {
        lock: _lock,
        servers,
        device_id,
        authority,
    } = prepare(ledger, key, opts, &|p| progress(ReconcileProgress::Sync(p))).await?;
    let client = Client::new(&servers, opts)?;
    let forward = |p: Progress| progress(ReconcileProgress::Sync(p));
    let mut route = Route::new(client, opts, &forward);
    // Lookups that find no endpoint answering are failed attempts like any other.
    route.watch_outages(ledger)?;
    route.resume(ledger.dir());
    let mut check = Check {
        ledger,
        key,
        device_id,
        authority,
        progress,
        report: ReconcileReport::new(),
        despite_stop,
        ended: None,
        stops: Vec::new(),
        skew_corrected: false,
        refused: HashSet::new(),
        item_alerts: 0,
        unalerted: 0,
    };
    let lost = match check.survey(&mut route).await {
        Ok(lost) => lost,
        Err(e) => {
            route.persist(ledger.dir());
            return Err(e);
        }
    };
    let mut healing = None;
    if let Some(head) = lost {
        let (back, result) = resubmit_lost(
            route,
            ledger,
            key,
            check.device_id.clone(),
            authority,
            &head,
        )
        .await;
        route = back;
        healing = Some(result);
    }
    let result = check.finish(&mut route, healing).await;
    if let Some(head) = &check.report.server_head {
        ledger.note_authority_head(head.seq, Some(&head.hash), Utc::now())?;
    }
    let recorded = route.finish_outage();
    route.persist(ledger.dir());
    result?;
    recorded?;
    Ok(check.report)
}

struct Check<'a> {
    ledger: &'a Ledger,
    key: &'a DeviceKey,
    device_id: String,
    authority: PublicKey,
    progress: &'a (dyn Fn(ReconcileProgress) + Send + Sync),
    report: ReconcileReport,
    /// A stopped queue is not a finding (see [`reconcile_with`]).
    despite_stop: bool,
    /// Why the requests stopped before every invoice was checked (the first reason).
    ended: Option<SyncOutcome>,
    /// What a human must look at beyond the lists (a stopped queue, missing invoices).
    stops: Vec<String>,
    skew_corrected: bool,
    /// Endpoints that refused this device (alerted once each).
    refused: HashSet<usize>,
    item_alerts: usize,
    unalerted: usize,
}

impl Check<'_> {
    fn end(&mut self, outcome: SyncOutcome) {
        self.ended.get_or_insert(outcome);
    }

    /// The head, then every invoice; the authority's head to heal from when it lost final
    /// invoices that can be resubmitted.
    async fn survey(&mut self, route: &mut Route<'_>) -> Result<Option<Head>, SyncError> {
        if let Some(reason) = self.ledger.queue_stopped()?.filter(|_| !self.despite_stop) {
            self.stops
                .push(format!("the outbox is stopped and needs a human: {reason}"));
        }
        let head = match self.fetch_head(route).await? {
            Ok(head) => head,
            Err(outcome) => {
                self.end(outcome);
                self.report.total = self.ledger.list_seqs(&ListFilter::default())?.len() as u64;
                return Ok(None);
            }
        };
        self.report.server_head = Some(head.clone());
        // Read after the authority's: the clerk may be issuing meanwhile, and a head read
        // before would make a fresh invoice look like one the authority holds and we lack.
        let local = self.ledger.head()?;
        if head.seq > local.seq {
            self.report.missing_locally = Some(SeqRange {
                from_seq: local.seq + 1,
                to_seq: head.seq,
            });
            let text = format!(
                "the authority holds invoices of this device up to seq {} (hash {}) but this ledger ends at seq {} (hash {}): seq {}..{} are missing here (was the ledger restored from an older backup?)",
                head.seq,
                head.hash,
                local.seq,
                local.hash,
                local.seq + 1,
                head.seq
            );
            route.alert(self.ledger, Code::HeadMismatch.as_str(), &text, None)?;
            self.stops.push(text);
        }
        let seqs = self.ledger.list_seqs(&ListFilter::default())?;
        self.report.total = seqs.len() as u64;
        self.pass(route, &seqs, Pass::Survey).await?;
        let lost = self
            .report
            .missing_at_authority
            .iter()
            .any(|m| m.status != Status::Pending && m.seq > head.seq);
        let heal = lost && self.ended.is_none() && self.stops.is_empty();
        Ok(heal.then_some(head))
    }

    /// `GET /v1/devices/{id}/head`, waiting out 429/503 like any request. The inner `Err`
    /// is how the run ends when it cannot be read.
    async fn fetch_head(
        &mut self,
        route: &mut Route<'_>,
    ) -> Result<Result<Head, SyncOutcome>, SyncError> {
        let path = format!("/v1/devices/{}/head", self.device_id);
        let signer = Signer {
            ledger: self.ledger,
            key: self.key,
            device_id: &self.device_id,
        };
        let call = Call {
            method: Method::GET,
            path: &path,
            body: None,
            success: 200,
            patient: true,
        };
        let parse = |b: &str| serde_json::from_str::<Head>(b).map_err(|e| e.to_string());
        match route.call(call, Some(&signer), parse).await {
            Ok(head) => Ok(Ok(head)),
            Err(SyncError::Http(reason)) => Ok(Err(SyncOutcome::Transient(reason))),
            Err(SyncError::Authority {
                status: 401,
                message,
                ..
            }) => Ok(Err(SyncOutcome::Stopped(message))),
            Err(e) => Err(e),
        }
    }

    /// Asks about the invoices at `seqs`, [`IN_FLIGHT`] at a time, each request when the
    /// policy lets it go; a failed one is asked again. Stops sending when the policy
    /// gives up (the answers in flight are still read).
    async fn pass(
        &mut self,
        route: &mut Route<'_>,
        seqs: &[u64],
        pass: Pass,
    ) -> Result<(), SyncError> {
        let client = route.client.clone();
        let key = self.key;
        let device_id = self.device_id.clone();
        let mut offset = self.ledger.clock_offset()?;
        let mut queue: VecDeque<Local> = VecDeque::new();
        let mut next = 0usize;
        let mut ended = None;
        let mut flying: Vec<Flight<'_>> = Vec::new();
        loop {
            while ended.is_none() && flying.len() < IN_FLIGHT {
                if queue.is_empty() && next < seqs.len() {
                    let end = next.saturating_add(PAGE).min(seqs.len());
                    let page = seqs.get(next..end).unwrap_or_default();
                    next = end;
                    queue.extend(self.ledger.summaries(page)?.into_iter().map(Local::from));
                    continue;
                }
                let Some(local) = queue.pop_front() else {
                    break;
                };
                // With requests in flight, a wait is not taken here: their answers are
                // read first (and may change what the policy says).
                let (i, endpoint, timeout) = match route.slot(flying.is_empty()).await {
                    Ok(slot) => slot,
                    Err(Ended::GaveUp(_)) if !flying.is_empty() => {
                        queue.push_front(local);
                        break;
                    }
                    Err(Ended::GaveUp(reason)) => {
                        ended = Some(SyncOutcome::Transient(reason));
                        break;
                    }
                    Err(Ended::NoEndpoint(reason)) => {
                        ended = Some(SyncOutcome::Stopped(reason));
                        break;
                    }
                };
                let path = format!("/v1/invoices/{}", local.id);
                let timestamp = Utc::now().timestamp().saturating_add(offset);
                let (client, device_id) = (&client, device_id.as_str());
                flying.push(Box::pin(async move {
                    let result = client
                        .send_signed(
                            Method::GET,
                            &endpoint,
                            &path,
                            None,
                            key,
                            device_id,
                            timestamp,
                            timeout,
                        )
                        .await;
                    Landed {
                        local,
                        endpoint: i,
                        offset,
                        result,
                    }
                }));
            }
            let Some(landed) = land(&mut flying).await else {
                break;
            };
            if let Some(again) = self.read(route, landed, &mut offset, pass)? {
                queue.push_front(again);
            }
        }
        if let Some(outcome) = ended {
            self.end(outcome);
        }
        Ok(())
    }

    /// Acts on one answer; `Some` when the invoice must be asked about again.
    fn read(
        &mut self,
        route: &mut Route<'_>,
        landed: Landed,
        offset: &mut i64,
        pass: Pass,
    ) -> Result<Option<Local>, SyncError> {
        let Landed {
            local,
            endpoint: i,
            offset: signed_with,
            result,
        } = landed;
        let url = route.url(i).to_string();
        if let Ok(answer) = &result {
            if is_not_found(answer) {
                // The authority answered: as good as a receipt for the policy.
                route.note(i, &Verdict::Success(answer.clone()))?;
                route.progressed();
                self.not_found(route, local, pass)?;
                return Ok(None);
            }
        }
        let mut parsed = None;
        let verdict = match read_answer(result, 200) {
            Verdict::Success(answer) => match parse_receipt(&answer.body) {
                Ok(receipt) => {
                    parsed = Some(receipt);
                    Verdict::Success(answer)
                }
                Err(why) => Verdict::retry(
                    format!(
                        "the receipt for invoice {} (seq {}) is malformed: {why}",
                        local.number, local.seq
                    ),
                    true,
                ),
            },
            Verdict::ClockSkew { server_time } if signed_with == *offset => {
                if self.skew_corrected {
                    Verdict::retry(
                        format!("still reports clock skew after correcting the clock offset (its time: {server_time})"),
                        true,
                    )
                } else {
                    // SPEC 6: store the offset and try again.
                    self.skew_corrected = true;
                    *offset = server_time.timestamp() - Utc::now().timestamp();
                    self.ledger.set_clock_offset(*offset)?;
                    Verdict::ClockSkew { server_time }
                }
            }
            other => other,
        };
        route.note(i, &verdict)?;
        match verdict {
            Verdict::Success(answer) => {
                let Some((value, receipt)) = parsed else {
                    return Ok(Some(local));
                };
                route.progressed();
                self.receipt(route, &url, local, &answer.body, &value, &receipt, pass)?;
                Ok(None)
            }
            // Signed with an offset that has been corrected since, or just corrected.
            Verdict::ClockSkew { .. } => Ok(Some(local)),
            Verdict::Retry { reason, .. } => {
                // The next slot waits as the policy says (backoff, Retry-After, budget,
                // breakers), or the run gives up.
                route.last_reason = format!("{url}: {reason}");
                Ok(Some(local))
            }
            Verdict::Unauthorized { code, message } => {
                let text = format!(
                    "{url} refused this device ({code}: {message}); it is not used again in this run"
                );
                if self.refused.insert(i) {
                    route.alert(self.ledger, &code, &text, None)?;
                }
                route.last_reason = text;
                Ok(Some(local))
            }
            // Nothing a receipt lookup should get (a chain gap, an integrity stop, a
            // refusal): not retried and not guessed at, but the authority does not
            // account for this invoice — a mismatch, and the other lookups go on.
            other => {
                let why = format!(
                    "{url} answered the receipt lookup unexpectedly: {}",
                    verdict_error(other)
                );
                if pass != Pass::Recheck {
                    self.checked();
                }
                self.mismatch(route, &local, &why, Code::UnexpectedAnswer)?;
                Ok(None)
            }
        }
    }

    /// The authority has no receipt for `local`.
    fn not_found(
        &mut self,
        route: &mut Route<'_>,
        local: Local,
        pass: Pass,
    ) -> Result<(), SyncError> {
        if pass == Pass::Recheck {
            // Resubmitted, and still not there: it stays missing (healed: false).
            return Ok(());
        }
        self.checked();
        if let Some(head) = self.report.server_head.clone() {
            if local.seq <= head.seq {
                let why = format!(
                    "the authority has no receipt for it although its chain for this device reaches seq {} (hash {}): another invoice holds this place there (a forked chain)",
                    head.seq, head.hash
                );
                return self.mismatch(route, &local, &why, Code::ReceiptMismatch);
            }
        }
        self.report.missing_at_authority.push(Missing {
            seq: local.seq,
            number: local.number,
            status: local.status,
            healed: false,
        });
        Ok(())
    }

    /// The authority's receipt for `local` (verified as JSON and shape only so far).
    #[allow(clippy::too_many_arguments)]
    fn receipt(
        &mut self,
        route: &mut Route<'_>,
        url: &str,
        local: Local,
        body: &str,
        value: &Value,
        receipt: &Receipt,
        pass: Pass,
    ) -> Result<(), SyncError> {
        if pass == Pass::Survey {
            self.checked();
        }
        if local.status == Status::Pending {
            // A successful receipt fetch: stored exactly as sync stores one (verified
            // against the pinned key and the invoice, final status, outbox row gone).
            return match self.ledger.store_receipt(&local.id, body, Utc::now()) {
                Ok(status) => {
                    self.report.received += 1;
                    self.accounted(&local, pass);
                    route.emit(Progress::Submitted {
                        number: local.number.clone(),
                        status: status.as_str().to_string(),
                    });
                    Ok(())
                }
                Err(LedgerError::BadReceipt(why)) => {
                    let text = format!(
                        "the receipt from {url} for invoice {} (seq {}) was refused and not stored: {why}; the invoice stays pending",
                        local.number, local.seq
                    );
                    self.ledger.record_attempt(&local.id, &text, None)?;
                    self.mismatch(route, &local, &why, Code::BadReceipt)
                }
                Err(e) => Err(e.into()),
            };
        }
        match self.compare(&local, value, receipt)? {
            Finding::Accounted => self.accounted(&local, pass),
            Finding::Refiled(refiled) => {
                self.accounted(&local, pass);
                self.report.refiled.push(refiled);
            }
            Finding::Mismatch(why) => {
                let why = format!("{why} (receipt from {url})");
                self.mismatch(route, &local, &why, Code::ReceiptMismatch)?;
            }
        }
        Ok(())
    }

    /// The authority's receipt against the one stored for a final invoice.
    fn compare(
        &self,
        local: &Local,
        value: &Value,
        receipt: &Receipt,
    ) -> Result<Finding, SyncError> {
        if let Err(e) = Receipt::verify(value, &self.authority) {
            return Ok(Finding::Mismatch(e.to_string()));
        }
        if receipt.invoice_id != local.id || receipt.number != local.number {
            return Ok(Finding::Mismatch(format!(
                "the receipt names invoice {} / number {}",
                receipt.invoice_id, receipt.number
            )));
        }
        let record = self.ledger.show(&local.id)?;
        if receipt.hash != record.envelope.hash {
            return Ok(Finding::Mismatch(format!(
                "the receipt names hash {}, the invoice's is {}: the authority holds other bytes",
                receipt.hash, record.envelope.hash
            )));
        }
        let Some(stored_value) = record.receipt else {
            return Ok(Finding::Mismatch(format!(
                "the invoice is {} here but no receipt is stored for it",
                local.status.as_str()
            )));
        };
        let stored: Receipt =
            serde_json::from_value(stored_value.clone()).map_err(|e| LedgerError::Integrity {
                seq: local.seq,
                what: format!("the stored receipt cannot be read back: {e}"),
            })?;
        if receipt.status != stored.status {
            return Ok(Finding::Mismatch(format!(
                "the authority's receipt says {}, the stored one {}",
                receipt.status, stored.status
            )));
        }
        if receipt.reasons != stored.reasons {
            return Ok(Finding::Mismatch(
                "the authority's rejection reasons differ from the stored receipt's".into(),
            ));
        }
        if *value == stored_value {
            return Ok(Finding::Accounted);
        }
        if without_filing(value) == without_filing(&stored_value) {
            return Ok(Finding::Refiled(Refiled {
                seq: local.seq,
                number: local.number.clone(),
                authority_code: receipt.authority_code.clone(),
                local_authority_code: stored.authority_code,
            }));
        }
        Ok(Finding::Mismatch(
            "the authority's receipt differs from the stored one".into(),
        ))
    }

    fn checked(&mut self) {
        self.report.checked += 1;
        (self.progress)(ReconcileProgress::Checked {
            checked: self.report.checked,
            total: self.report.total,
        });
    }

    fn accounted(&mut self, local: &Local, pass: Pass) {
        self.report.accounted_for += 1;
        if pass == Pass::Recheck {
            self.report.healed += 1;
            if let Some(m) = self
                .report
                .missing_at_authority
                .iter_mut()
                .find(|m| m.seq == local.seq)
            {
                m.healed = true;
            }
        }
    }

    /// Records a mismatch and raises an alert with diagnostics (up to [`MAX_ITEM_ALERTS`]
    /// per run; the rest are summed up at the end).
    fn mismatch(
        &mut self,
        route: &mut Route<'_>,
        local: &Local,
        why: &str,
        code: Code,
    ) -> Result<(), SyncError> {
        self.report.mismatched.push(Mismatch {
            seq: local.seq,
            number: local.number.clone(),
            reason: why.to_string(),
        });
        if self.item_alerts < MAX_ITEM_ALERTS {
            self.item_alerts += 1;
            let text = format!(
                "reconciliation: invoice {} (seq {}, id {}): {why}",
                local.number, local.seq, local.id
            );
            route.alert(self.ledger, code.as_str(), &text, Some(&local.id))?;
        } else {
            self.unalerted += 1;
        }
        Ok(())
    }

    /// Re-checks what the healing resubmitted, then sums up.
    async fn finish(
        &mut self,
        route: &mut Route<'_>,
        healing: Option<Result<Resubmitted, SyncError>>,
    ) -> Result<(), SyncError> {
        if let Some(result) = healing {
            let resubmitted = result?;
            match resubmitted.outcome {
                SyncOutcome::Complete => {}
                SyncOutcome::Transient(reason) => self.end(SyncOutcome::Transient(reason)),
                SyncOutcome::Stopped(reason) => self.stops.push(reason),
            }
            if !resubmitted.seqs.is_empty() {
                route.progressed();
                self.pass(route, &resubmitted.seqs, Pass::Recheck).await?;
                if let Ok(head) = self.fetch_head(route).await? {
                    self.report.server_head = Some(head);
                }
            }
        }
        if self.unalerted > 0 {
            let text = format!(
                "reconciliation: {} more invoices do not match the authority's records; `kaipiao reconcile` lists them",
                self.unalerted
            );
            route.alert(self.ledger, Code::ReceiptMismatch.as_str(), &text, None)?;
        }
        self.report.pending = self.ledger.status(Utc::now())?.pending;
        self.report.mismatched.sort_by_key(|m| m.seq);
        self.report.missing_at_authority.sort_by_key(|m| m.seq);
        self.report.refiled.sort_by_key(|r| r.seq);
        self.report.alerts = std::mem::take(&mut route.alerts);

        let mut stops = std::mem::take(&mut self.stops);
        if let Some(first) = self.report.mismatched.first() {
            stops.push(format!(
                "{} invoice(s) do not match the authority's records (first: {} at seq {}: {})",
                self.report.mismatched.len(),
                first.number,
                first.seq,
                first.reason
            ));
        }
        let mut transient = None;
        match self.ended.take() {
            Some(SyncOutcome::Stopped(reason)) => stops.push(reason),
            Some(SyncOutcome::Transient(reason)) => transient = Some(reason),
            Some(SyncOutcome::Complete) | None => {}
        }
        let lost: Vec<&Missing> = self
            .report
            .missing_at_authority
            .iter()
            .filter(|m| m.status != Status::Pending && !m.healed)
            .collect();
        self.report.outcome = if !stops.is_empty() {
            SyncOutcome::Stopped(stops.join("; "))
        } else if let Some(reason) = transient {
            SyncOutcome::Transient(reason)
        } else if let Some(first) = lost.first() {
            SyncOutcome::Stopped(format!(
                "{} final invoice(s) are missing at the authority and were not resubmitted (first: {} at seq {})",
                lost.len(),
                first.number,
                first.seq
            ))
        } else {
            SyncOutcome::Complete
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            replayed: false,
            body: body.to_string(),
        }
    }

    #[test]
    fn only_the_authoritys_not_found_is_a_missing_receipt() {
        let not_found = r#"{"error": {"code": "not_found", "message": "m", "field": ""}}"#;
        assert!(is_not_found(&answer(404, not_found)));
        // A 404 page from a proxy or a misrouted path is a failed attempt, not an answer.
        assert!(!is_not_found(&answer(404, "<html>Not Found</html>")));
        assert!(!is_not_found(&answer(
            404,
            r#"{"error": {"code": "no_route", "message": "m", "field": ""}}"#
        )));
        assert!(!is_not_found(&answer(200, not_found)));
    }

    #[test]
    fn a_filing_is_code_time_and_signature() {
        let a = serde_json::json!({"invoice_id": "i", "number": "n", "hash": "h",
            "status": "accepted", "reasons": [], "authority_code": "1", "received_at": "t1",
            "authority_signature": "s1"});
        let mut b = a.clone();
        b["authority_code"] = "2".into();
        b["received_at"] = "t2".into();
        b["authority_signature"] = "s2".into();
        assert_ne!(a, b);
        assert_eq!(without_filing(&a), without_filing(&b));
        b["status"] = "rejected".into();
        assert_ne!(without_filing(&a), without_filing(&b));
    }

    #[test]
    fn garbage_is_not_a_receipt() {
        assert!(parse_receipt("<html>").is_err());
        assert!(parse_receipt(r#"{"invoice_id": 5}"#).is_err());
    }
}
