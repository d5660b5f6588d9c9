//! Shares within a run: a run limited to one share ([`crate::SyncOptions::max_items`],
//! the app's loop following a recovery plan) ends with it, and a background run after an
//! outage follows a recovery plan itself ([`crate::SyncOptions::start_spread`]), each
//! share at its turn ([`Recovery::after_share`]). Either way a refusal for overload ends
//! the share there.

use super::{Run, Step};
use crate::error::SyncError;
use crate::policy::{Recovery, Turn};
use crate::route::clock;
use crate::SyncOutcome;
use chrono::Utc;
use std::time::Duration;

impl Run<'_> {
    /// Makes the recovery plan for what is pending over `spread` and waits for its first
    /// turn.
    pub(super) async fn start_plan(&mut self, spread: Duration) -> Result<(), SyncError> {
        let pending = self.ledger.status(Utc::now())?.pending;
        let plan = Recovery::plan(clock(), spread, pending, &mut rand::thread_rng());
        self.plan = Some(plan);
        match plan.first_turn(pending) {
            Some(turn) => self.wait_for_turn(turn).await,
            // Nothing to spread: the plan is over before it began.
            None => self.share_until = None,
        }
        Ok(())
    }

    /// Invoices left in the current share; None without a limit.
    pub(super) fn share_left(&self) -> Option<usize> {
        self.share_until
            .map(|until| until.saturating_sub(self.taken.len()))
    }

    /// The authority refused a request of the current share for overload: the rest of
    /// the share waits (for the next turn, or the next run).
    pub(super) fn end_share_if_refused(&mut self) {
        if self.share_until.is_some() && self.route.overloads > self.share_overloads {
            self.share_until = Some(self.taken.len());
        }
    }

    /// The current share is sent (or was refused for overload). With a recovery plan:
    /// the plan takes its step and the run waits for the next share's turn (or, once the
    /// plan is over, sends everything left). With `max_items` alone: the run ends here,
    /// complete as far as it was asked to go, or transient when the authority refused.
    pub(super) async fn next_share(&mut self) -> Result<Step, SyncError> {
        // The receipts in flight go in before the pending count is read.
        if let Step::End(outcome) = self.flush().await? {
            return Ok(Step::End(outcome));
        }
        let refused = self.route.overloads > self.share_overloads;
        self.share_overloads = self.route.overloads;
        let Some(plan) = self.plan.as_mut() else {
            self.ended_at_share = true;
            return Ok(Step::End(if refused {
                SyncOutcome::Transient(
                    "the authority refused part of this share for overload: the rest waits for the next"
                        .into(),
                )
            } else {
                SyncOutcome::Complete
            }));
        };
        let pending = self.ledger.status(Utc::now())?.pending;
        match plan.after_share(clock(), refused, pending) {
            Some(turn) => self.wait_for_turn(turn).await,
            // The plan is over: whatever is left goes now, without a share limit.
            None => self.share_until = None,
        }
        Ok(Step::Again)
    }

    /// Waits for `turn` (the give-up clock starts afresh), then starts its share.
    async fn wait_for_turn(&mut self, turn: Turn) {
        self.route.wait_for_turn(turn.at).await;
        let share = usize::try_from(turn.share).unwrap_or(usize::MAX);
        self.share_until = Some(self.taken.len().saturating_add(share));
    }
}
