//! The authority's SQLite database: connections, embedded migrations, the signing key.
//!
//! Every connection runs in WAL mode with synchronous=FULL (an answer that was sent has
//! been persisted), foreign keys on and a busy timeout, so two taxd processes on one file
//! wait for each other instead of failing. Writes use IMMEDIATE transactions: a deferred
//! transaction that upgrades to a write can get SQLITE_BUSY despite the timeout.

use crate::error::TaxdError;
use kaipiao_core::sign::DeviceKey;
use rand::RngCore;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Numbered migrations; `PRAGMA user_version` is the number applied last.
const MIGRATIONS: &[&str] = &[
    // 1: the whole authority.
    r#"
CREATE TABLE authority (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    secret_key  BLOB NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    public_key    TEXT NOT NULL,
    seller        TEXT NOT NULL,
    device_name   TEXT NOT NULL,
    prefix_serial INTEGER NOT NULL UNIQUE,
    prefix        TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL
);
CREATE TABLE chain_heads (
    device_id   TEXT PRIMARY KEY REFERENCES devices(device_id),
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE leases (
    lease_id            TEXT PRIMARY KEY,
    device_id           TEXT NOT NULL REFERENCES devices(device_id),
    prefix              TEXT NOT NULL,
    first               INTEGER NOT NULL,
    last                INTEGER NOT NULL,
    single_invoice_cap  TEXT NOT NULL,
    granted_at          TEXT NOT NULL,
    body                TEXT NOT NULL,
    UNIQUE (device_id, first)
);
CREATE TABLE receipts (
    invoice_id       TEXT PRIMARY KEY,
    device_id        TEXT NOT NULL REFERENCES devices(device_id),
    seq              INTEGER NOT NULL,
    number           TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    original_number  TEXT,
    hash             TEXT NOT NULL,
    signature        TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    status_code      INTEGER NOT NULL,
    authority_code   TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    issued_at        TEXT NOT NULL,
    invoice          TEXT NOT NULL,
    body             BLOB NOT NULL,
    UNIQUE (device_id, seq)
);
CREATE INDEX receipts_by_original ON receipts(device_id, original_number)
    WHERE original_number IS NOT NULL;
CREATE TABLE in_flight (
    idempotency_key  TEXT PRIMARY KEY,
    owner            TEXT NOT NULL,
    started_at_ms    INTEGER NOT NULL
);
"#,
    // 2: lease requests are idempotent: the request id a device sent with a lease.
    r#"
ALTER TABLE leases ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX leases_by_request ON leases(device_id, request_id)
    WHERE request_id IS NOT NULL;
"#,
    // 3: the device-signed requests seen within the skew window, to refuse a replay.
    // In the database, so that two taxd processes on one --db refuse each other's too.
    r#"
CREATE TABLE seen_requests (
    signature  TEXT PRIMARY KEY,
    seen_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_requests_by_time ON seen_requests(seen_at);
"#,
    // 4: the lease terms recomputed at the authority (offline window and amount cap):
    // `exposure_cents`, the running sum of |total_amount| in cents along the device's
    // chain through this seq (so the amount of any run of seqs is one subtraction), and
    // the receipts by arrival time (the newest one received by a given time is one seek).
    r#"
ALTER TABLE receipts ADD COLUMN exposure_cents INTEGER;
UPDATE receipts SET exposure_cents = w.c
FROM (SELECT invoice_id AS id,
             SUM(CAST(ROUND(ABS(CAST(json_extract(invoice, '$.total_amount') AS REAL)) * 100) AS INTEGER))
                 OVER (PARTITION BY device_id ORDER BY seq) AS c
      FROM receipts) AS w
WHERE w.id = receipts.invoice_id;
CREATE INDEX receipts_by_arrival ON receipts(device_id, received_at);
"#,
    // 5: leases a restored device gave up (`POST /v1/leases {"supersede": true}`): when,
    // so that they no longer count against the cap on unexhausted leases.
    r#"
ALTER TABLE leases ADD COLUMN superseded_at TEXT;
"#,
    // 6: the newest receipt received by a given time, with seq as the tie-breaker, read
    // from the index alone. Receipts received within one second tie on `received_at`, and
    // the index of migration 4 made SQLite fetch and sort every receipt of the newest
    // second per submission (thousands during a drain: the drain took 2x the import).
    r#"
DROP INDEX IF EXISTS receipts_by_arrival;
CREATE INDEX IF NOT EXISTS receipts_by_arrival_seq ON receipts(device_id, received_at, seq);
"#,
    // 7: admission (issue 13), here so that two taxd on one --db pace one backlog. The
    // devices waiting, in the order they are served (deadline, then arrival); the grants
    // outstanding; the invoices planned (granted) and taken without a ticket per second.
    r#"
CREATE TABLE IF NOT EXISTS admission_demand (
    device_id   TEXT PRIMARY KEY,
    deadline    INTEGER NOT NULL,
    arrived_ms  INTEGER NOT NULL,
    pending     INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS admission_order ON admission_demand(deadline, arrived_ms, device_id);
CREATE TABLE IF NOT EXISTS admission_grants (
    ticket         TEXT PRIMARY KEY,
    device_id      TEXT NOT NULL UNIQUE,
    second         INTEGER NOT NULL,
    invoices       INTEGER NOT NULL,
    used           INTEGER NOT NULL DEFAULT 0,
    not_before_ms  INTEGER NOT NULL,
    not_after_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS admission_seconds (
    second   INTEGER PRIMARY KEY,
    planned  INTEGER NOT NULL DEFAULT 0,
    live     INTEGER NOT NULL DEFAULT 0
);
"#,
];

/// The WAL is copied back into the database once it holds this many pages (~32 MiB),
/// not SQLite's 1,000: a commit that checkpoints takes several times as long as one that
/// does not, and fewer, larger checkpoints copy a page written many times in between (a
/// chain head, the newest index pages) once. A drain of 10,000 invoices met seven or eight
/// checkpoints at the default and takes ~5% less time now (docs/BENCHMARKS.md).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 8_000;

/// Opens a connection with the pragmas every connection needs.
fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The timeout first: switching to WAL itself can meet another process's lock.
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    // Room for every statement of a submission: parsed once per connection, not per item.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A small pool: connections are taken for one blocking unit of work and put back.
pub(crate) struct Db {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Connections kept open when idle; more are opened under load and closed after use.
const MAX_IDLE: usize = 8;

impl Db {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Db, TaxdError> {
        let mut conn = connect(path).map_err(|source| TaxdError::OpenDb {
            path: path.to_path_buf(),
            source,
        })?;
        migrate(&mut conn, path)?;
        Ok(Db {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![conn]),
        })
    }

    /// Runs `f` on a connection of the pool. Blocking: call from `spawn_blocking`.
    pub fn with<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<TaxdError>,
    {
        let taken = match self.idle.lock() {
            Ok(mut idle) => idle.pop(),
            // A panic elsewhere while holding the lock leaves only a Vec behind: still usable.
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        let mut conn = match taken {
            Some(c) => c,
            None => connect(&self.path).map_err(|e| E::from(TaxdError::Db(e)))?,
        };
        let result = f(&mut conn);
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), TaxdError> {
    let latest = MIGRATIONS.len() as i64;
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > latest {
        return Err(TaxdError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            supported: latest,
        });
    }
    if current == latest {
        return Ok(());
    }
    if current > 0 {
        // A copy of the data as it was, in case a migration goes wrong on real data.
        let mut backup_path = path.as_os_str().to_owned();
        backup_path.push(format!(".before-v{latest}.bak"));
        conn.backup(rusqlite::DatabaseName::Main, Path::new(&backup_path), None)?;
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated while we waited for the write lock.
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > latest {
        return Err(TaxdError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            supported: latest,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

/// The authority's signing key: read from the database, or generated from OS randomness
/// and stored on first start (inside one IMMEDIATE transaction, so two processes starting
/// together agree on one key).
pub(crate) fn authority_key(conn: &mut Connection, now: &str) -> Result<DeviceKey, TaxdError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored: Option<Vec<u8>> = tx
        .query_row("SELECT secret_key FROM authority WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    let key = match stored {
        Some(bytes) => {
            let secret: [u8; 32] = bytes
                .try_into()
                .map_err(|_| TaxdError::Corrupt("the authority key is not 32 bytes".into()))?;
            DeviceKey::from_bytes(&secret)
        }
        None => {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let key = DeviceKey::from_bytes(&secret);
            tx.execute(
                "INSERT INTO authority (id, secret_key, public_key, created_at) VALUES (1, ?1, ?2, ?3)",
                rusqlite::params![secret.to_vec(), key.public().to_base64(), now],
            )?;
            key
        }
    };
    tx.commit()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite chooses for `sql`, one step per line.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let steps = stmt
            .query_map(["device", "2026-01-01T00:00:00Z"], |r| {
                r.get::<_, String>(3)
            })
            .expect("steps")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        steps.join("\n")
    }

    #[test]
    fn the_newest_receipt_received_by_a_time_is_one_index_seek() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("taxd.db")).unwrap();
        let plan = db
            .with(|conn| Ok::<_, TaxdError>(plan(conn, crate::submit::NEWEST_RECEIVED)))
            .unwrap();
        // Every submission runs it: a sort of the newest second's receipts (thousands
        // during a drain) made a drain of 10,000 take 4 s instead of 1 s.
        assert!(
            plan.contains("COVERING INDEX receipts_by_arrival_seq"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
