//! The stopped queue, for both front ends: its state with the way forward (`kaipiao
//! queue`, the app's panel) and its resumption (`kaipiao queue resume`, the Resume
//! button), which reconciles first ([`kaipiao_sync::resume_queue`]).

use crate::dto::{AuthorityHeadDto, HeadDto, QueueDto, ResumeDto, SyncOutcomeKind};
use crate::engine::Engine;
use crate::error::DeskResult;
use kaipiao_core::{Code, Lang, Msg};
use kaipiao_ledger::QueueState;
use kaipiao_sync::{ResumeReport, SyncOutcome};

/// What to do about the queue in `state`, in `lang`.
pub fn advice(state: &QueueState, lang: Lang) -> String {
    let behind = state
        .authority_head
        .as_ref()
        .is_some_and(|a| a.seq > state.local_head.seq);
    let msg = if behind || (state.stopped && state.code.as_deref() == Some(Code::ChainGap.as_str()))
    {
        Msg::new("queue_stopped-behind")
    } else if !state.stopped {
        Msg::new("queue_stopped-running")
    } else if state.code.as_deref() == Some(Code::IdempotencyKeyReused.as_str()) {
        Msg::new("queue_stopped-key_reused")
    } else {
        Msg::new("queue_stopped-refused")
    };
    msg.text(lang)
}

/// The queue's state as the panel and `kaipiao queue --json` show it.
pub fn dto(state: QueueState, lang: Lang) -> QueueDto {
    let advice = advice(&state, lang);
    QueueDto {
        stopped: state.stopped,
        reason: state.reason,
        since: state.since,
        alert_id: state.alert_id,
        local_head: HeadDto {
            seq: state.local_head.seq,
            hash: state.local_head.hash,
        },
        authority_head: state.authority_head.map(|a| AuthorityHeadDto {
            seq: a.seq,
            hash: a.hash,
            read_at: a.read_at,
        }),
        advice,
    }
}

/// The Resume button's answer from the report.
pub fn resume_dto(report: &ResumeReport) -> ResumeDto {
    let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let outcome = match report.outcome {
        SyncOutcome::Complete => SyncOutcomeKind::Complete,
        SyncOutcome::Transient(_) => SyncOutcomeKind::Transient,
        SyncOutcome::Stopped(_) => SyncOutcomeKind::Stopped,
    };
    let reconciled = report.reconcile.as_ref();
    let run = report.sync.as_ref();
    ResumeDto {
        was_stopped: report.was_stopped,
        resumed: report.resumed,
        outcome,
        reason: report.reason.clone(),
        accounted_for: reconciled.map_or(0, |r| n(r.accounted_for)),
        mismatched: reconciled.map_or(0, |r| n(r.mismatched.len() as u64)),
        accepted: run.map_or(0, |r| n(r.accepted)),
        rejected: run.map_or(0, |r| n(r.rejected)),
        pending: run.map_or(0, |r| n(r.pending)),
    }
}

impl Engine {
    /// The Resume button (see [`crate::watcher::SyncHandle::resume`]); needs the key.
    pub fn resume_queue(
        &self,
        progress: crate::watcher::ProgressFn,
    ) -> DeskResult<tokio::sync::oneshot::Receiver<DeskResult<ResumeDto>>> {
        self.key()?;
        Ok(self.sync.resume(progress))
    }

    /// The queue panel (never needs the key).
    pub fn queue(&self) -> DeskResult<QueueDto> {
        let state = self
            .ledger()
            .queue_state()
            .map_err(|e| self.ledger_error(e))?;
        Ok(dto(state, self.lang()))
    }
}
