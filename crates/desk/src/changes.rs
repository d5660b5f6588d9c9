//! The change feed: tells the window when the ledger changed, whoever changed it.
//!
//! A thread of its own polls SQLite's `PRAGMA data_version` on its own connection every
//! 250 ms. The number moves whenever another connection commits: the app issuing, its
//! watcher storing receipts, or a `kaipiao` process issuing into the same data directory.
//! A move is announced as `outbox-changed` with the pending count, so the list, the
//! pending count and the status bar follow within a second, with no click.

use crate::dto::OutboxChanged;
use crate::watcher::Notify;
use kaipiao_ledger::Ledger;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the feed looks: well under the second the window promises.
pub const POLL: Duration = Duration::from_millis(250);

pub struct ChangeFeed {
    stop: mpsc::Sender<()>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ChangeFeed {
    pub fn start(dir: &Path, notify: Arc<dyn Notify>) -> std::io::Result<ChangeFeed> {
        let ledger = Ledger::open(dir).map_err(std::io::Error::other)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kaipiao-changes".into())
            .spawn(move || {
                let mut seen = ledger.data_version().ok();
                // The poll interval is the channel's timeout: a stop ends the wait at once.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(POLL) {
                    let now = ledger.data_version().ok();
                    if now.is_some() && now != seen {
                        seen = now;
                        let pending = crate::status::pending_count(&ledger);
                        notify.outbox(&OutboxChanged { pending });
                    }
                }
            })?;
        Ok(ChangeFeed {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread and waits for it.
    pub fn shutdown(&self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}
