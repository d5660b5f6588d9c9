//! kaipiao-testkit: the one test kit of the workspace. It holds the fixtures every test
//! crate shares (tax IDs with valid check digits, the test seller and buyer, drafts and
//! lines, the test authority's key with the leases and receipts it signs, a real ledger in
//! a temp directory), the harness that runs a real `taxd` process on loopback, the runner
//! that drives the `kaipiao` CLI with deadlines, and the helpers that read back what those
//! programs wrote.
//!
//! It is for tests only (`publish = false`, a dev-dependency everywhere). It must never
//! synchronise by sleeping: it waits on output lines, process exits, or polls a condition
//! against a deadline. It must never leave a process behind: everything it starts is
//! killed when its owner is dropped. And it must never weaken what the SPEC says to make a
//! product pass. The engine crates it depends on (core, ledger, sync, taxd) use it from
//! their integration tests (`tests/*.rs`) only, never from `#[cfg(test)]` code in `src/`,
//! where it would bring in a second copy of the crate under test.

pub mod authority;
pub mod cli;
pub mod documents;
pub mod fixtures;
pub mod ids;
pub mod inspect;
pub mod keys;
pub mod ledger;
pub mod money;
pub mod process;
pub mod relay;
pub mod scripted;
pub mod smtp;
pub mod strategies;
pub mod taxd;
pub mod verifier;
pub mod xlsx;
