//! One module per group of subcommands; each function parses nothing (clap did), calls
//! the ledger, the sync engine or kaipiao-desk, and renders.

pub mod batch;
pub mod catalog;
pub mod issue;
pub mod mail;
pub mod read;
pub mod setup;
pub mod sync;
pub mod tools;
