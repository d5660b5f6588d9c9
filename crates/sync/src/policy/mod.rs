//! The sending policy (SPEC 6): how soon, how often and where a client may send, so that
//! one shop drains fast while a fleet of them never re-floods a recovering authority.
//!
//! - [`Backoff`]: exponential backoff with full jitter, never sooner than Retry-After;
//! - [`RetryBudget`]: retries draw from a token bucket and stop while it is under half;
//! - [`Throttle`]: client-side adaptive throttling over the last two minutes;
//! - [`Breaker`]: a circuit breaker per endpoint, for failover and the way back;
//! - [`Pacer`]: all of them together;
//! - [`Recovery`]: after an outage, the backlog in even shares across a random start
//!   spread rather than all at once.
//!
//! Pure on purpose: no clock, no I/O. Time is a `Duration` since an origin of the
//! caller's choosing and randomness an `Rng` the caller passes, so the same code runs in
//! the real client (wall clock, thread RNG) and in the fleet simulator (virtual time,
//! seeded RNG), and every piece is tested exactly. That is also why the retry crates were
//! not used: `backon` sleeps on the real clock and draws its own jitter, and `governor`'s
//! limiter has no success-refilled, stop-at-half budget.

mod backoff;
mod breaker;
mod budget;
mod pacer;
mod recovery;
mod throttle;

pub use backoff::{parse_retry_after, Backoff, BASE, CAP};
pub use breaker::{Breaker, BreakerParams, BreakerState};
pub use budget::{BudgetParams, RetryBudget};
pub use pacer::{
    start_spread_after, EndpointState, Hold, Next, Outcome, Pacer, PacerState, Params, BREAKER,
    BUDGET, START_SPREAD,
};
pub use recovery::{Recovery, Turn, MAX_STRETCH, MIN_INTERVAL, MIN_SHARE};
pub use throttle::Throttle;

#[cfg(test)]
mod tests;
