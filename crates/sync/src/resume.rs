//! `kaipiao queue resume` (and the app's Resume button): a stopped queue is lifted only
//! when a reconciliation explains the stop, never on a person's word alone.
//!
//! 1. Reconcile ([`crate::reconcile()`], the stop itself not counted as a finding): every
//!    local invoice checked against the authority's records, an authority that lost final
//!    invoices healed.
//! 2. When it found nothing unexplained (no mismatch, nothing the authority holds that
//!    this ledger lacks, no lost invoice left unhealed), the stop and its alert are lifted
//!    in one transaction, and a sync run follows at once.
//! 3. If the authority then stops the queue again (a fresh signed verdict), the resume
//!    failed: the queue is stopped, with the authority's reason. Otherwise it is resumed,
//!    and the run's own outcome says what is left (exit 3 for work that remains).
//!
//! Where the reconciliation finds the ledger behind the authority (a data directory copied
//! back by hand from an old copy: the authority holds seqs this ledger lacks, and nothing
//! this ledger holds differs from the authority's), the resume brings back what the
//! authority holds and takes a fresh number block exactly as `restore` does
//! ([`crate::restore`]'s `catch_up`), then reconciles again before it lifts the stop.
//!
//! A reconciliation that could not finish (the authority unreachable) leaves the queue
//! stopped, for a transient reason; one with findings leaves it stopped and says which.

use crate::reconcile::reconcile_with;
use crate::{sync_now, Progress, ReconcileProgress, ReconcileReport, SyncError, SyncOptions};
use crate::{SyncOutcome, SyncReport};
use chrono::Utc;
use kaipiao_core::DeviceKey;
use kaipiao_ledger::Ledger;
use serde::Serialize;

/// What `kaipiao queue resume` reports. Field names are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResumeReport {
    /// The queue was stopped when the command began.
    pub was_stopped: bool,
    /// The queue runs now (it was lifted and no fresh verdict stopped it again).
    pub resumed: bool,
    /// The reconciliation run first (None when the queue was not stopped).
    pub reconcile: Option<ReconcileReport>,
    /// The sync run after lifting the stop (None when it was not lifted).
    pub sync: Option<SyncReport>,
    /// What was brought back from the authority for a ledger found behind it (None when
    /// it was not behind).
    pub brought_back: Option<crate::CaughtUp>,
    /// Why the queue was not resumed, or what the sync run left (None when all is done).
    pub reason: Option<String>,
    #[serde(skip)]
    pub outcome: SyncOutcome,
}

impl ResumeReport {
    /// SPEC 9: 0 resumed and drained (or not stopped), 3 work remains for a transient
    /// reason (the reconciliation or the run could not reach the authority), 4 the queue
    /// stays stopped.
    pub fn exit_code(&self) -> i32 {
        self.outcome.exit_code()
    }
}

/// See the module documentation. `Err` only when nothing could be attempted or the ledger
/// failed.
pub async fn resume_queue(
    ledger: &Ledger,
    key: &DeviceKey,
    opts: &SyncOptions,
    progress: &(dyn Fn(ReconcileProgress) + Send + Sync),
) -> Result<ResumeReport, SyncError> {
    // A ledger behind the authority as last heard is resumed too, stopped or not: its
    // sync ends in exit 4 until what the authority holds is brought back.
    let local = ledger.head()?;
    let behind_as_heard = ledger.authority_head()?.is_some_and(|a| a.seq > local.seq);
    let mut report = ResumeReport {
        was_stopped: ledger.queue_stopped()?.is_some(),
        resumed: false,
        reconcile: None,
        sync: None,
        brought_back: None,
        reason: None,
        outcome: SyncOutcome::Complete,
    };
    if !report.was_stopped && !behind_as_heard {
        return Ok(report);
    }
    let mut checked = reconcile_with(ledger, key, opts, progress, true).await?;
    let behind = checked.missing_locally.is_some()
        && checked.mismatched.is_empty()
        && matches!(checked.outcome, SyncOutcome::Stopped(_));
    if behind {
        match crate::restore::catch_up(ledger, key, opts).await {
            Ok(caught) => {
                report.brought_back = Some(caught);
                checked = reconcile_with(ledger, key, opts, progress, true).await?;
            }
            // The authority unreachable meanwhile: the stop stays, for a transient reason.
            Err(e @ SyncError::Http(_)) => {
                let text = format!(
                    "the queue stays stopped: what the authority holds could not be brought back ({e}); try again once the authority answers"
                );
                report.reconcile = Some(checked);
                report.reason = Some(text.clone());
                report.outcome = SyncOutcome::Transient(text);
                return Ok(report);
            }
            // It does not fit this ledger (a fork): said below as what is not explained.
            Err(e) => {
                checked.outcome = SyncOutcome::Stopped(format!(
                    "{}; what the authority holds cannot be brought back: {e}",
                    checked.outcome.reason().unwrap_or("")
                ));
            }
        }
    }
    let verdict = checked.outcome.clone();
    report.reconcile = Some(checked);
    match verdict {
        SyncOutcome::Complete => {}
        SyncOutcome::Transient(why) => {
            let text = format!(
                "the queue stays stopped: the reconciliation could not finish ({why}); try again once the authority answers"
            );
            report.reason = Some(text.clone());
            report.outcome = SyncOutcome::Transient(text);
            return Ok(report);
        }
        SyncOutcome::Stopped(why) => {
            let text = format!(
                "the queue stays stopped: the reconciliation does not explain the stop ({why})"
            );
            report.reason = Some(text.clone());
            report.outcome = SyncOutcome::Stopped(text);
            return Ok(report);
        }
    }
    // Lifted (when it was stopped) only now that the reconciliation explains it.
    ledger.resume_queue(Utc::now())?;
    let forward = |p: Progress| progress(ReconcileProgress::Sync(p));
    let run = sync_now(ledger, key, opts, &forward).await?;
    let stopped_again = ledger.queue_stopped()?;
    report.resumed = stopped_again.is_none();
    report.outcome = match (&stopped_again, &run.outcome) {
        (Some(why), _) => SyncOutcome::Stopped(format!(
            "the authority stopped the queue again as soon as it resumed: {why}"
        )),
        (None, outcome) => outcome.clone(),
    };
    report.reason = report.outcome.reason().map(str::to_string);
    report.sync = Some(run);
    Ok(report)
}
