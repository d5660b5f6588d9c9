//! The `kaipiao` command line as a library: its argument grammar ([`args`]), so that
//! `make fuzz` can drive it through clap's `try_parse_from` in process. The command
//! itself is `src/main.rs`.

pub mod args;
