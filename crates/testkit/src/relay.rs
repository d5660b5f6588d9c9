//! The relay as the sync tests run it: options with a give-up time, the two submission
//! modes (and a macro that runs a test in both), a recorder of progress events, and a
//! device-signed read from async code.

use crate::ledger::Device;
use chrono::Utc;
use kaipiao_core::sign::sign_request_with_nonce;
use kaipiao_core::wire::{HEADER_DEVICE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use kaipiao_sync::{Progress, SyncOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The default options, giving up after `give_up_secs`.
pub fn opts(give_up_secs: u64) -> SyncOptions {
    SyncOptions {
        give_up_after: Duration::from_secs(give_up_secs),
        ..SyncOptions::default()
    }
}

/// How the relay submits: one `POST /v1/invoices` per invoice, or batches (the default).
/// Tests of per-answer behaviour run in both, with the same expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Single,
    Batched,
}

impl Mode {
    pub fn opts(self, give_up_secs: u64) -> SyncOptions {
        SyncOptions {
            batch_size: match self {
                Mode::Single => 0,
                Mode::Batched => kaipiao_sync::DEFAULT_BATCH_SIZE,
            },
            ..opts(give_up_secs)
        }
    }
}

/// Generates `single::name` and `batched::name` tests from `async fn name(mode: Mode)`.
/// The calling crate needs tokio (with `macros`) for `#[tokio::test]`.
#[macro_export]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod single {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::relay::Mode::Single).await
                }
            )*
        }
        mod batched {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::relay::Mode::Batched).await
                }
            )*
        }
    };
}

/// Collects progress events.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<Progress>>>);

impl Events {
    pub fn sink(&self) -> impl Fn(Progress) + Send + Sync {
        let events = self.0.clone();
        move |p| events.lock().unwrap().push(p)
    }

    pub fn all(&self) -> Vec<Progress> {
        self.0.lock().unwrap().clone()
    }
}

/// A device-signed GET, as a third party checking the authority would do it.
pub async fn signed_get(base: &str, path: &str, device: &Device) -> (u16, String) {
    let ts = Utc::now().timestamp();
    let nonce = uuid::Uuid::new_v4().to_string();
    let sig = sign_request_with_nonce(&device.key, "GET", path, ts, b"", Some(&nonce));
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header(HEADER_DEVICE, device.device_id())
        .header(HEADER_TIMESTAMP, ts.to_string())
        .header(kaipiao_core::wire::HEADER_NONCE, nonce)
        .header(HEADER_SIGNATURE, sig)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}
