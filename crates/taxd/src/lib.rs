//! taxd: the sandbox tax authority Kaipiao clients talk to in demos and tests (SPEC 7).
//!
//! It enrols devices, grants signed leases of invoice numbers, and answers invoice
//! submissions with signed receipts, applying the same rules from `kaipiao-core` that the
//! client applies, so what the client accepts the authority accepts. Everything it knows
//! (its signing key, devices, leases, receipts, chain heads, in-flight idempotency keys)
//! lives in the SQLite file given by `--db`: it survives restarts, and two taxd processes
//! on one file act as one authority. For fault tests it can refuse under load (503/429
//! with Retry-After), fail or delay requests at random, simulate an outage, commit a
//! submission and then drop the connection, and send receipts signed with the wrong key or
//! as broken JSON (only on the way out: what it stores stays correct) — all switchable at
//! run time through an admin API that answers only on loopback.
//!
//! It must never be mistaken for a real authority: its Ed25519 key is generated on first
//! start and stored in plain text in the database, and enrolment takes a shared token. It
//! must never accept an envelope whose hash or device signature does not verify, never
//! skip or rewrite a device's chain, never reuse an invoice number, never answer a known
//! idempotency key with anything but the bytes it first sent, and never panic on input.
//! It never links `kaipiao-ledger` or `kaipiao-sync`: it is the other side of the wire.
//!
//! Admin API (loopback peers only, else 403 `forbidden`): `GET /admin/faults` answers
//! `{"drop_after_commit": P, "error_rate": P, "delay_ms": [MIN, MAX] | null, "outage": bool,
//! "wrong_signing_key": bool, "malformed_receipt": P}`; `PUT /admin/faults` takes any
//! subset of those fields and answers with the result (a bad or unknown field refuses the
//! whole update with 400 `invalid_request` naming it). Faults are per process (they
//! describe this server, not the authority's records). `wrong_signing_key` signs every
//! receipt sent (a submission's answer and its replays, each batch item, `GET
//! /v1/invoices/{id}`) with a key generated at start instead of the authority key;
//! `malformed_receipt` sends each such receipt, with probability P, as its first half —
//! a lone answer's whole body, a batch item's `body` as a JSON string. Both leave the
//! stored receipt alone, so a replay once they are off returns the good receipt.
//! With `--request-log FILE` every request appends one line
//! `{"time", "device", "method", "path", "status"}` (time with milliseconds, taken when the
//! answer is ready; path as sent, with any query; device from `Kaipiao-Device`, else the
//! submitted envelope's, else ""), plus `"retry_after"` in seconds when the answer has
//! a Retry-After.

mod admin;
mod admission;
mod api;
mod auth;
mod body;
mod check;
mod config;
mod db;
mod error;
mod faults;
mod gate;
mod limits;
mod readback;
mod reqlog;
mod submit;

pub use api::MAX_UNEXHAUSTED_LEASES;
pub use config::{Config, DelayRange};
pub use error::TaxdError;
pub use faults::Faults;

use crate::error::ErrorAnswer;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use kaipiao_core::sign::{DeviceKey, PublicKey};
use kaipiao_core::time::rfc3339;
use rand::RngCore;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// The name `GET /v1/authority` gives.
pub const AUTHORITY_NAME: &str = "Kaipiao sandbox tax authority (not a real authority)";

/// A running authority: database, signing key, limits and faults. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    pub config: Config,
    pub db: db::Db,
    pub authority: DeviceKey,
    pub authority_public: String,
    /// The key of the `wrong_signing_key` fault: this process's own, never stored.
    pub impostor: DeviceKey,
    pub faults: faults::FaultSwitch,
    pub limits: limits::Limits,
    pub request_log: Option<reqlog::RequestLog>,
    /// Device public keys never change once enrolled, so they can be cached forever.
    pub device_keys: RwLock<HashMap<String, PublicKey>>,
}

impl AppState {
    /// Opens (creating and migrating if needed) the database and loads or creates the
    /// authority key. Blocking.
    pub fn open(config: Config) -> Result<AppState, TaxdError> {
        let db = db::Db::open(&config.db)?;
        let now = rfc3339(Utc::now());
        let authority = db.with(|conn| db::authority_key(conn, &now))?;
        let request_log = match &config.request_log {
            Some(path) => Some(reqlog::RequestLog::open(path)?),
            None => None,
        };
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Ok(AppState(Arc::new(Shared {
            authority_public: authority.public().to_base64(),
            authority,
            impostor: DeviceKey::from_bytes(&secret),
            faults: faults::FaultSwitch::new(Faults::from_config(&config)),
            limits: limits::Limits::new(config.capacity, config.device_rate, config.check_rate),
            request_log,
            device_keys: RwLock::new(HashMap::new()),
            db,
            config,
        })))
    }

    /// The receipt- and lease-signing key, standard base64.
    pub fn authority_public_key(&self) -> String {
        self.0.authority_public.clone()
    }

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        self.0.faults.get()
    }

    /// Replaces the faults in force (what `PUT /admin/faults` does).
    pub fn set_faults(&self, faults: Faults) {
        self.0.faults.set(faults)
    }

    /// Runs blocking database work off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T, ErrorAnswer> + Send + 'static,
    ) -> Result<T, ErrorAnswer> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(&state.0))
            .await
            .map_err(|e| ErrorAnswer::from(TaxdError::Task(e.to_string())))?
    }
}

/// All routes of SPEC 7 plus the admin API, with the request log, faults and limits.
/// The admin API needs the peer address: serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` (tests add `MockConnectInfo`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(api::health))
        .route("/v1/authority", get(api::authority))
        .route("/v1/devices", post(api::enroll))
        .route("/v1/leases", post(api::grant_lease))
        .route("/v1/admission", post(admission::ask))
        .route("/v1/devices/{id}/head", get(api::head))
        .route("/v1/devices/{id}/invoices", get(readback::invoices))
        .route("/v1/devices/{id}/leases", get(readback::leases))
        .route("/v1/invoices", post(submit::submit_invoice))
        .route("/v1/invoices:batch", post(submit::submit_batch))
        .route("/v1/invoices/{id}", get(api::receipt))
        .route("/v1/check", get(check::check))
        .route(
            "/admin/faults",
            get(admin::get_faults).put(admin::put_faults),
        )
        .fallback(api::no_route)
        .method_not_allowed_fallback(api::no_method)
        .layer(from_fn_with_state(state.clone(), gate::gate))
        .layer(from_fn_with_state(state.clone(), reqlog::log_request))
        .with_state(state)
}

/// Serves until SIGINT or SIGTERM, then finishes the requests in flight.
pub async fn serve(config: Config, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let state = tokio::task::spawn_blocking(move || AppState::open(config)).await??;
    serve_state(state, listener, shutdown_signal()).await?;
    Ok(())
}

/// Serves an opened state until `shutdown` completes. Prints `taxd listening on
/// http://ADDR` (the real bound address) once the socket accepts, then `taxd authority
/// key fingerprint: HEX`.
pub async fn serve_state(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let fingerprint = kaipiao_core::sign::PublicKey::from_base64(&state.authority_public_key())
        .map(|k| k.fingerprint())
        .unwrap_or_default();
    let app = router(state);
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // Tests wait for this line; a closed stdout must not stop the server.
        let _ = writeln!(out, "taxd listening on http://{addr}");
        // What a shop compares before it trusts this authority (`enroll --authority-key`).
        let _ = writeln!(out, "taxd authority key fingerprint: {fingerprint}");
        let _ = out.flush();
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is
/// called, not when first polled, so a signal sent right after the listening line is seen
/// is never missed (call it inside the runtime, before `serve_state`).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    // No handler could be installed: never complete on this signal.
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(interrupt) => {},
                _ = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    }
}
