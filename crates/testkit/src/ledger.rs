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

/// A copy of `s`'s data directory whose ledger is what the release with schema `version`
/// (1 to 5) would hold for the same invoices: the schema of migrations 1..=`version`
/// ([`kaipiao_ledger::create_schema_at`]) filled with `s`'s rows in that version's shapes,
/// through its own triggers (the append-only guards, from version 4 the pending totals,
/// from version 5 the settled totals). Before version 6, receipts, history and a credit
/// note's original named the invoice by id (with unique indexes on id and number);
/// before version 5 the outbox was keyed by invoice id, an "issued" history entry was
/// written at issuance, and leases had no issued amount. Versions before 3 have no
/// outage record, so `s` must have none. `s` stays open.
pub fn copy_at_version(s: &Setup, version: i64) -> TempDir {
    assert!(
        (1..=5).contains(&version),
        "copy_at_version: versions 1 to 5, not {version}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(s.dir.path()).expect("read dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let is_db = name
            .to_str()
            .is_some_and(|n| n.starts_with(kaipiao_ledger::DB_FILE));
        if entry.file_type().expect("type").is_file() && !is_db {
            std::fs::copy(entry.path(), dir.path().join(&name)).expect("copy");
        }
    }
    let c = rusqlite::Connection::open(dir.path().join(kaipiao_ledger::DB_FILE)).expect("open");
    kaipiao_ledger::create_schema_at(&c, version).expect("old schema");
    c.execute(
        "ATTACH DATABASE ?1 AS cur",
        [s.dir
            .path()
            .join(kaipiao_ledger::DB_FILE)
            .to_str()
            .expect("utf-8 path")],
    )
    .expect("attach");
    let tx = c.unchecked_transaction().expect("tx");
    // In the order the old program wrote them, so that its triggers accept every row:
    // each invoice pending at issuance (one seq after the other), with its "issued"
    // entry before version 5; receipts, then the final status (the version 4 and 5
    // totals follow it), then the later history; the outbox rows of what is still
    // pending.
    let leases = if version >= 5 {
        "INSERT INTO main.leases (lease_id, position, lease_json, prefix, first, last, next, stored_at, issued_cents)
             SELECT lease_id, position, lease_json, prefix, first, last, next, stored_at, issued_cents
             FROM cur.leases ORDER BY position;"
    } else {
        "INSERT INTO main.leases (lease_id, position, lease_json, prefix, first, last, next, stored_at)
             SELECT lease_id, position, lease_json, prefix, first, last, next, stored_at
             FROM cur.leases ORDER BY position;"
    };
    let issued_history = if version >= 5 {
        ""
    } else {
        "INSERT INTO main.history (invoice_id, at, status, detail)
             SELECT id, issued_at, 'issued', 'number ' || number FROM cur.invoices ORDER BY seq;"
    };
    let outbox = if version >= 5 {
        "INSERT INTO main.outbox (seq, attempts, next_attempt_ms, last_error)
             SELECT seq, attempts, next_attempt_ms, last_error FROM cur.outbox ORDER BY seq;"
    } else {
        "INSERT INTO main.outbox (invoice_id, seq, attempts, next_attempt_ms, last_error)
             SELECT i.id, o.seq, o.attempts, o.next_attempt_ms, o.last_error
             FROM cur.outbox o JOIN cur.invoices i ON i.seq = o.seq ORDER BY o.seq;"
    };
    tx.execute_batch(&format!(
        "INSERT INTO main.device (id, key_id, key_protection, device_id, device_name, seller,
                                  public_key, authority_public_key, servers, created_at,
                                  enrolled_at, clock_offset, last_sync_at, queue_stopped,
                                  queue_stopped_at)
             SELECT id, key_id, key_protection, device_id, device_name, seller, public_key,
                    authority_public_key, servers, created_at, enrolled_at, clock_offset,
                    last_sync_at, queue_stopped, queue_stopped_at
             FROM cur.device;
         {leases}
         INSERT INTO main.invoices (seq, id, number, kind, issued_at, buyer_name, buyer_tax_id,
                                    total, total_amount, total_amount_cents, hash, envelope,
                                    status, original_id)
             SELECT c.seq, c.id, c.number, c.kind, c.issued_at, c.buyer_name, c.buyer_tax_id,
                    c.total, c.total_amount, c.total_amount_cents, c.hash, c.envelope, 'pending',
                    (SELECT o.id FROM cur.invoices o WHERE o.seq = c.original_seq)
             FROM cur.invoices c ORDER BY c.seq;
         {issued_history}
         INSERT INTO main.receipts (invoice_id, receipt, status, stored_at)
             SELECT i.id, r.receipt, r.status, r.stored_at
             FROM cur.receipts r JOIN cur.invoices i ON i.seq = r.seq ORDER BY r.seq;
         UPDATE main.invoices
             SET status = (SELECT c.status FROM cur.invoices c WHERE c.seq = invoices.seq)
             WHERE seq IN (SELECT seq FROM cur.invoices WHERE status != 'pending');
         INSERT INTO main.history (invoice_id, at, status, detail)
             SELECT i.id, h.at, h.status, h.detail
             FROM cur.history h JOIN cur.invoices i ON i.seq = h.seq ORDER BY h.id;
         {outbox}
         INSERT INTO main.alerts (id, at, code, message, invoice_id, dismissed_at)
             SELECT id, at, code, message, invoice_id, dismissed_at FROM cur.alerts ORDER BY id;"
    ))
    .expect("copy rows");
    if version >= 3 {
        tx.execute_batch(
            "INSERT INTO main.outages (id, started_at, ended_at, failed_endpoint, reason,
                                       failed_attempts, ended_by)
                 SELECT id, started_at, ended_at, failed_endpoint, reason, failed_attempts, ended_by
                 FROM cur.outages ORDER BY id;
             INSERT INTO main.outage_invoices (seq, outage_id)
                 SELECT seq, outage_id FROM cur.outage_invoices ORDER BY seq;",
        )
        .expect("copy outages");
    } else {
        let outages: i64 = tx
            .query_row("SELECT COUNT(*) FROM cur.outages", [], |r| r.get(0))
            .expect("outages");
        assert_eq!(
            outages, 0,
            "a version {version} ledger has no outage record"
        );
    }
    tx.commit().expect("commit");
    c.execute("DETACH DATABASE cur", []).expect("detach");
    dir
}
