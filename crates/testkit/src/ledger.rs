//! A real ledger in a temp directory, initialised with the test seller: enrolled with the
//! test authority on paper ([`Setup`], for tests that play the authority), or a device that
//! enrols through a real taxd ([`Device`]).

use crate::fixtures::{numbered_draft, seller, t0, DEVICE_ID, DEVICE_NAME, PREFIX};
use crate::keys::{authority, keys, lease, Terms};
use crate::taxd::{Taxd, TOKEN};
use chrono::Utc;
use kaipiao_core::DeviceKey;
use kaipiao_ledger::{Issued, Ledger};
use kaipiao_sync::SyncOptions;
use tempfile::TempDir;

/// A ledger enrolled with the test authority (its enrolment recorded as if it answered).
pub struct Setup {
    pub dir: TempDir,
    pub ledger: Ledger,
    pub key: DeviceKey,
    pub authority: DeviceKey,
}

/// Initialised at [`t0`] and enrolled as [`DEVICE_ID`], without a lease.
pub fn enrolled() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    ledger
        .init(&seller(), DEVICE_NAME, &keys(), t0())
        .expect("init");
    ledger
        .record_enrollment(
            DEVICE_ID,
            &authority().public().to_base64(),
            &["http://127.0.0.1:8787".to_string()],
            t0(),
        )
        .expect("enrol");
    let key = ledger.unseal_key(&keys()).expect("unseal");
    Setup {
        dir,
        ledger,
        key,
        authority: authority(),
    }
}

/// Enrolled, with one lease of these terms on [`PREFIX`].
pub fn with_lease(terms: &Terms) -> Setup {
    let s = enrolled();
    s.ledger
        .store_lease(&lease("lease-1", PREFIX, terms), t0())
        .expect("lease");
    s
}

/// A raw connection to the ledger file, as a tamperer (or the sqlite3 shell) would open it.
pub fn raw(s: &Setup) -> rusqlite::Connection {
    let c =
        rusqlite::Connection::open(s.dir.path().join(kaipiao_ledger::DB_FILE)).expect("raw open");
    c.busy_timeout(std::time::Duration::from_secs(5))
        .expect("timeout");
    c
}

/// A device with a real ledger in a temp directory, initialised now, not yet enrolled.
pub struct Device {
    pub dir: TempDir,
    pub ledger: Ledger,
    pub key: DeviceKey,
}

impl Default for Device {
    fn default() -> Device {
        Device::new()
    }
}

impl Device {
    pub fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        ledger
            .init(&seller(), DEVICE_NAME, &keys(), Utc::now())
            .unwrap();
        let key = ledger.unseal_key(&keys()).unwrap();
        Device { dir, ledger, key }
    }

    /// Opens a copy of this device's data directory (an old backup of the ledger).
    pub fn copy(&self) -> Device {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
        }
        let ledger = Ledger::open(dir.path()).unwrap();
        let key = ledger.unseal_key(&keys()).unwrap();
        Device { dir, ledger, key }
    }

    /// Enrols with `taxd` (and takes its first lease) as the sync engine does.
    pub async fn enroll(&self, taxd: &Taxd) -> kaipiao_sync::EnrollOutcome {
        kaipiao_sync::enroll(
            &self.ledger,
            &self.key,
            &[taxd.url()],
            TOKEN,
            &SyncOptions::default(),
        )
        .await
        .unwrap()
    }

    /// Issues `n` distinct invoices ([`numbered_draft`] 0..n) now.
    pub fn issue(&self, n: usize) -> Vec<Issued> {
        (0..n)
            .map(|i| {
                self.ledger
                    .issue(&numbered_draft(i), &self.key, Utc::now())
                    .unwrap()
            })
            .collect()
    }

    pub fn device_id(&self) -> String {
        self.ledger.device().unwrap().unwrap().device_id.unwrap()
    }

    pub fn pending(&self) -> u64 {
        self.ledger.status(Utc::now()).unwrap().pending
    }
}
