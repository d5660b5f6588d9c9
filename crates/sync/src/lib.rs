//! kaipiao-sync: the client side of the wire (SPEC 6 and 7). It enrols the device with
//! the tax authority, takes and tops up leases, drains the ledger's outbox to the
//! authority with idempotency keys (one by one or in batches), paces every request with
//! the sending policy of [`policy`] (backoff with full jitter, Retry-After, a retry
//! budget, adaptive throttling, a circuit breaker per endpoint), fails over between endpoints,
//! resubmits when the authority is behind (`chain_gap`, a restored backup), stores the
//! authority's signed receipts through the ledger and compares chain heads afterwards.
//! [`reconcile()`] asks the authority for the receipt of every local invoice and reports
//! what is accounted for, what differs and what is missing on either side;
//! [`resume_queue`] lifts a stopped queue once a reconciliation explains the stop. Every run,
//! lease top-up and [`probe_health`] keeps the ledger's outage record (what counts as an
//! outage: the `outage` module).
//!
//! It must never drop, skip, edit or re-sign an invoice: an item leaves the outbox only
//! through [`kaipiao_ledger::Ledger::store_receipt`] (or `store_receipts` for the receipts
//! of a batch), after the receipt's signature has
//! verified against the key pinned at enrolment, and every submission is the exact stored
//! bytes under the invoice's own idempotency key, so a retry after an unknown outcome can
//! only be answered with the original receipt. It must never panic on anything a server
//! sends, never log key material, never depend on Tauri, and never talk to the ledger's
//! database except through the ledger's API.

mod client;
mod enrol;
mod error;
mod outage;
pub mod policy;
mod readback;
mod reconcile;
mod relay;
mod restore;
mod resume;
mod route;

pub use client::{is_overload_refusal, normalize_server, normalize_servers, Client};
pub use enrol::{enroll, enroll_pinned, enroll_trusting, top_up_leases, EnrollOutcome, Trust};
pub use error::SyncError;
pub use outage::{probe_health, HealthAnswer};
pub use readback::{fetch_held, fetch_leases, HeldInvoice};
pub use reconcile::{
    reconcile, Mismatch, Missing, ReconcileProgress, ReconcileReport, Refiled, SeqRange,
};
pub use relay::sync_now;
pub use restore::{restore, CaughtUp, FreshLease, RestoreReport, RestoreRequest};
pub use resume::{resume_queue, ResumeReport};

use kaipiao_core::wire::Head;
use serde::Serialize;
use std::time::Duration;

/// Lowers the calling thread's CPU priority (nice 10; Linux only, best effort; threads it
/// starts afterwards inherit it). For a thread that drains the outbox beside a clerk in
/// the same process — the app's background sync thread: on a small shop PC the drain's
/// work (requests, receipt checks and writes) then waits for the till's instead of
/// competing with it (issuance p99 during a drain, docs/BENCHMARKS.md).
pub fn yield_to_clerk() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id, no memory handed over.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// How a run talks to the authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// A run ends (outcome Transient) after this long without progress; a stored receipt
    /// is progress. SPEC 9: 30 s.
    pub give_up_after: Duration,
    /// SPEC 6: 5 s.
    pub connect_timeout: Duration,
    /// SPEC 6: 30 s, and never past the give-up deadline.
    pub request_timeout: Duration,
    /// 0: one `POST /v1/invoices` per invoice; otherwise up to this many per
    /// `POST /v1/invoices:batch` (at most 500). Default [`DEFAULT_BATCH_SIZE`].
    pub batch_size: usize,
    /// A run of the app's background loop, not one a person asked for ("Sync now", the
    /// CLI's `sync`): adaptive throttling may reject requests locally and open circuit
    /// breakers keep their cool-down (SPEC 6). False by default.
    pub background: bool,
    /// A background run after an outage that follows the recovery plan itself
    /// ([`policy::Recovery`]: the backlog in even shares over this long, at most
    /// [`policy::START_SPREAD`], see [`policy::start_spread_after`]; the first share after
    /// a random delay, SPEC 6). The give-up clock restarts at every share's turn. Used
    /// only with `background` (`kaipiao sync --background --start-spread`); "Sync now"
    /// and the plain CLI `sync` leave it None.
    pub start_spread: Option<Duration>,
    /// This run sends at most this many invoices, then ends (outcome complete, the
    /// authority's head left for a later run): one share of a recovery plan that the
    /// caller follows, as the app's background loop does. Such a run also ends at the
    /// first refusal for overload ([`SyncReport::overloaded`]). None: no limit.
    pub max_items: Option<usize>,
    /// When another process holds the outbox lock (the app, another `kaipiao sync`), wait
    /// this long for it, polling, before the run fails with `busy`. Zero (the default):
    /// fail at once; the CLI's `sync` waits (SPEC 9: work that remains for a transient
    /// reason is exit 3 with the summary).
    pub lock_wait: Duration,
    /// Against an authority that paces its recovery (issue 13): wait inside the run for
    /// this shop's turn, asking again when told (`kaipiao sync --background`). False:
    /// end the run at once with the turn in [`SyncReport::turn_at`] ("Sync now", the
    /// CLI's `sync`, and the app's loop, which schedules its own next run for it).
    pub wait_for_turn: bool,
}

/// How often a run waiting for the outbox lock tries it again.
pub const LOCK_POLL: Duration = Duration::from_millis(100);

/// Invoices per `POST /v1/invoices:batch` unless a caller asks otherwise: the CLI's
/// `sync`, "Sync now" and the app's background loop all drain in batches of this size.
/// Each item is answered exactly as if it had been sent alone, so this changes the cost
/// of a drain (one request, one authority transaction and a couple of ledger
/// transactions per batch instead of one each per invoice), not its outcome.
/// docs/BENCHMARKS.md has the measurements behind the figure.
pub const DEFAULT_BATCH_SIZE: usize = 200;

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            give_up_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            batch_size: DEFAULT_BATCH_SIZE,
            background: false,
            start_spread: None,
            max_items: None,
            lock_wait: Duration::ZERO,
            wait_for_turn: false,
        }
    }
}

/// What a run reports while it works (for a progress bar or the CLI's stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// First use of an endpoint in this run.
    Connecting { endpoint: String },
    /// A receipt was stored: `status` is `accepted` or `rejected`.
    Submitted { number: String, status: String },
    /// Waiting before the next attempt.
    Retrying {
        #[serde(rename = "after_ms", serialize_with = "as_millis")]
        after: Duration,
        reason: String,
    },
    /// Waiting by plan, not because anything failed: the next share of a recovery plan
    /// after an outage ([`policy::Recovery`]).
    Waiting {
        #[serde(rename = "after_ms", serialize_with = "as_millis")]
        after: Duration,
        reason: String,
    },
    /// An endpoint answered (`up`) or failed (not `up`); sent when that changes.
    Endpoint { endpoint: String, up: bool },
    /// Not this shop's turn yet: the authority paces its recovery (issue 13) and expects
    /// this device's turn `after` from now, at `turn_at` (this device's clock), with
    /// `ahead` invoices of other shops before it, for `reason`.
    Turn {
        #[serde(rename = "after_ms", serialize_with = "as_millis")]
        after: Duration,
        turn_at: String,
        ahead: u64,
        reason: String,
    },
    /// Another process is draining this outbox; the run waits up to `up_to` for it to
    /// finish ([`SyncOptions::lock_wait`]). Sent once.
    WaitingForLock {
        #[serde(rename = "up_to_ms", serialize_with = "as_millis")]
        up_to: Duration,
    },
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Nothing is left to send (exit 0), or the run sent the share it was limited to
    /// ([`SyncOptions::max_items`]).
    Complete,
    /// Work remains for a transient reason: no endpoint answered, 5xx, 429, or no
    /// progress within `give_up_after` (exit 3).
    Transient(String),
    /// A human must look: integrity failure, idempotency key reuse, a receipt whose
    /// signature does not verify, a device the authority does not accept, a stopped
    /// queue, a head mismatch (exit 4).
    Stopped(String),
}

impl SyncOutcome {
    /// SPEC 9 exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            SyncOutcome::Complete => 0,
            SyncOutcome::Transient(_) => 3,
            SyncOutcome::Stopped(_) => 4,
        }
    }

    /// The reason, None when complete.
    pub fn reason(&self) -> Option<&str> {
        match self {
            SyncOutcome::Complete => None,
            SyncOutcome::Transient(r) | SyncOutcome::Stopped(r) => Some(r),
        }
    }
}

/// What `sync` prints (SPEC 9), whatever the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Invoices of the outbox the authority answered with a receipt in this run.
    pub submitted: u64,
    /// Receipts stored in this run with status accepted / rejected.
    pub accepted: u64,
    pub rejected: u64,
    /// Invoices still without a receipt.
    pub pending: u64,
    /// The authority's head for this device; None when no endpoint answered.
    pub server_head: Option<Head>,
    #[serde(skip)]
    pub outcome: SyncOutcome,
    /// Set when the heads differ with nothing pending (both heads named).
    pub head_mismatch: Option<String>,
    /// Alerts raised during this run.
    pub alerts: Vec<String>,
    /// The authority refused a request of this run for overload (429, 503 `overloaded`:
    /// [`is_overload_refusal`]). A run
    /// limited to a share ([`SyncOptions::max_items`]) ends at the first such refusal,
    /// outcome transient, so that its caller's recovery plan can slow down
    /// ([`policy::Recovery::stretch`]).
    #[serde(skip)]
    pub overloaded: bool,
    /// When this shop's turn is expected (this device's clock, RFC 3339) while the
    /// authority paces its recovery (issue 13); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_at: Option<String>,
    /// With `turn_at`: when the authority said to ask again, from the end of the run.
    #[serde(skip)]
    pub ask_again_after: Option<Duration>,
}

impl SyncReport {
    fn new() -> SyncReport {
        SyncReport {
            submitted: 0,
            accepted: 0,
            rejected: 0,
            pending: 0,
            server_head: None,
            outcome: SyncOutcome::Complete,
            head_mismatch: None,
            alerts: Vec::new(),
            overloaded: false,
            turn_at: None,
            ask_again_after: None,
        }
    }

    /// SPEC 9 exit code of the run.
    pub fn exit_code(&self) -> i32 {
        self.outcome.exit_code()
    }
}
