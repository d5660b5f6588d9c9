//! `taxd`: parses flags, opens the database, binds, serves until SIGINT/SIGTERM.
//! Exit codes: 0 after a clean shutdown, 2 for a bad flag (clap's own, or a --db /
//! --request-log path that cannot be opened), 1 for anything else.

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use taxd::{AppState, Config};

fn main() -> ExitCode {
    let config = Config::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("taxd: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = config.listen.clone();
    let state = match AppState::open(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("taxd: error: {e}");
            return if e.is_bad_flag() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match runtime.block_on(run(state, &listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taxd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(state: AppState, listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("--listen {listen}: cannot listen"))?;
    taxd::serve_state(state, listener, taxd::shutdown_signal())
        .await
        .context("serving")?;
    Ok(())
}
