//! Connection settings and the embedded, numbered migrations.
//!
//! Migrations are append-only: a released one is never edited, a change is a new number.
//! They run in one IMMEDIATE transaction; an existing database is first copied with the
//! online backup API, so a failed or buggy migration never costs the clerk their ledger.

use crate::error::LedgerError;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;

/// The schema this program writes. A database with a higher version is refused.
pub const SCHEMA_VERSION: i64 = 13;

/// 1: the tables. STRICT so a value of the wrong type is an error, not a silent coercion.
const V1_TABLES: &str = r#"
CREATE TABLE device (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_id TEXT NOT NULL,
    key_protection TEXT NOT NULL CHECK (key_protection IN ('passphrase_file', 'os_keyring')),
    device_id TEXT,
    device_name TEXT NOT NULL,
    seller TEXT NOT NULL,
    public_key TEXT NOT NULL,
    authority_public_key TEXT,
    servers TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    enrolled_at TEXT,
    clock_offset INTEGER NOT NULL DEFAULT 0,
    last_sync_at TEXT,
    queue_stopped TEXT,
    queue_stopped_at TEXT
) STRICT;

CREATE TABLE leases (
    lease_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    lease_json TEXT NOT NULL,
    prefix TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    next INTEGER NOT NULL,
    stored_at TEXT NOT NULL,
    CHECK (first >= 1 AND first <= last AND next >= first AND next <= last + 1)
) STRICT;

CREATE TABLE invoices (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    number TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    buyer_name TEXT NOT NULL,
    buyer_tax_id TEXT NOT NULL,
    total TEXT NOT NULL,
    total_amount TEXT NOT NULL,
    total_amount_cents INTEGER NOT NULL,
    hash TEXT NOT NULL,
    envelope TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    original_id TEXT REFERENCES invoices(id)
) STRICT;
-- The offline limits read the pending invoices on every issue: keep that an index scan.
CREATE INDEX invoices_pending ON invoices(seq, issued_at, total_amount_cents) WHERE status = 'pending';
CREATE INDEX invoices_original ON invoices(original_id) WHERE original_id IS NOT NULL;

CREATE TABLE outbox (
    invoice_id TEXT PRIMARY KEY REFERENCES invoices(id),
    seq INTEGER NOT NULL UNIQUE,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    last_error TEXT
) STRICT;

CREATE TABLE receipts (
    invoice_id TEXT PRIMARY KEY REFERENCES invoices(id),
    receipt TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    stored_at TEXT NOT NULL
) STRICT;

CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    invoice_id TEXT NOT NULL REFERENCES invoices(id),
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX history_invoice ON history(invoice_id, id);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    invoice_id TEXT,
    dismissed_at TEXT
) STRICT;
"#;

/// 2: the guards that make the ledger append-only, so that no code path (ours or a
/// hand-run UPDATE) can edit or drop an issued invoice, a receipt or a consumed number.
/// `IF NOT EXISTS` lets the migration be re-applied to a restored copy.
const V2_GUARDS: &str = r#"
CREATE TRIGGER IF NOT EXISTS invoices_seq_follows_head BEFORE INSERT ON invoices
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM invoices)
BEGIN SELECT RAISE(ABORT, 'invoice seq must follow the chain head without a gap'); END;

CREATE TRIGGER IF NOT EXISTS invoices_immutable
BEFORE UPDATE OF seq, id, number, kind, issued_at, buyer_name, buyer_tax_id, total,
    total_amount, total_amount_cents, hash, envelope, original_id ON invoices
BEGIN SELECT RAISE(ABORT, 'an issued invoice is never edited: issue a credit note instead'); END;

CREATE TRIGGER IF NOT EXISTS invoices_status_final BEFORE UPDATE OF status ON invoices
WHEN NOT (OLD.status = 'pending' AND NEW.status IN ('accepted', 'rejected'))
BEGIN SELECT RAISE(ABORT, 'an invoice status changes once, from pending to accepted or rejected'); END;

CREATE TRIGGER IF NOT EXISTS invoices_never_deleted BEFORE DELETE ON invoices
BEGIN SELECT RAISE(ABORT, 'an issued invoice is never deleted: issue a credit note instead'); END;

CREATE TRIGGER IF NOT EXISTS receipts_immutable BEFORE UPDATE ON receipts
BEGIN SELECT RAISE(ABORT, 'a stored receipt is never changed'); END;

CREATE TRIGGER IF NOT EXISTS receipts_never_deleted BEFORE DELETE ON receipts
BEGIN SELECT RAISE(ABORT, 'a stored receipt is never deleted'); END;

CREATE TRIGGER IF NOT EXISTS outbox_leaves_with_receipt BEFORE DELETE ON outbox
WHEN NOT EXISTS (SELECT 1 FROM receipts WHERE invoice_id = OLD.invoice_id)
BEGIN SELECT RAISE(ABORT, 'an outbox row is removed only with the receipt of its invoice'); END;

CREATE TRIGGER IF NOT EXISTS leases_immutable
BEFORE UPDATE OF lease_id, position, lease_json, prefix, first, last ON leases
BEGIN SELECT RAISE(ABORT, 'a stored lease is never changed'); END;

CREATE TRIGGER IF NOT EXISTS leases_numbers_never_reused BEFORE UPDATE OF next ON leases
WHEN NEW.next < OLD.next
BEGIN SELECT RAISE(ABORT, 'a consumed invoice number is never reused'); END;

CREATE TRIGGER IF NOT EXISTS leases_never_deleted BEFORE DELETE ON leases
BEGIN SELECT RAISE(ABORT, 'a stored lease is never deleted'); END;
"#;

/// 3: the outage record. An outage runs from the first request to the authority that no
/// endpoint answered to the first answer that proves it serves again (`ended_at` NULL
/// while it is current; at most one is). `outage_invoices` marks the invoices issued
/// during one, as RKSV marks receipts issued while its signing unit is down: beside the
/// invoice, since an issued invoice and its canonical bytes never change. Append-only
/// like the rest: an outage only counts attempts and ends, once.
/// Also an index for the app's status filter (`WHERE status = ? ORDER BY seq`).
/// `IF NOT EXISTS` lets the migration be re-applied to a restored copy.
const V3_OUTAGES: &str = r#"
CREATE TABLE IF NOT EXISTS outages (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    failed_endpoint TEXT NOT NULL,
    reason TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL CHECK (failed_attempts >= 1),
    ended_by TEXT,
    CHECK ((ended_at IS NULL) = (ended_by IS NULL)),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
) STRICT;
-- At most one outage is current (every open row has the same key, 1).
CREATE UNIQUE INDEX IF NOT EXISTS outages_current ON outages((ended_at IS NULL)) WHERE ended_at IS NULL;

CREATE TABLE IF NOT EXISTS outage_invoices (
    seq INTEGER PRIMARY KEY REFERENCES invoices(seq),
    outage_id INTEGER NOT NULL REFERENCES outages(id)
) STRICT;
CREATE INDEX IF NOT EXISTS outage_invoices_outage ON outage_invoices(outage_id, seq);

CREATE INDEX IF NOT EXISTS invoices_status_seq ON invoices(status, seq);

CREATE TRIGGER IF NOT EXISTS outages_start_fixed
BEFORE UPDATE OF id, started_at, failed_endpoint, reason ON outages
BEGIN SELECT RAISE(ABORT, 'the start of an outage is never changed'); END;

CREATE TRIGGER IF NOT EXISTS outages_ended_final BEFORE UPDATE ON outages
WHEN OLD.ended_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'an outage that ended is never changed'); END;

CREATE TRIGGER IF NOT EXISTS outages_attempts_only_grow BEFORE UPDATE OF failed_attempts ON outages
WHEN NEW.failed_attempts < OLD.failed_attempts
BEGIN SELECT RAISE(ABORT, 'the failed attempts of an outage only grow'); END;

CREATE TRIGGER IF NOT EXISTS outages_never_deleted BEFORE DELETE ON outages
BEGIN SELECT RAISE(ABORT, 'an outage is never deleted from the record'); END;

CREATE TRIGGER IF NOT EXISTS outage_invoices_immutable BEFORE UPDATE ON outage_invoices
BEGIN SELECT RAISE(ABORT, 'the outage an invoice was issued in is never changed'); END;

CREATE TRIGGER IF NOT EXISTS outage_invoices_never_deleted BEFORE DELETE ON outage_invoices
BEGIN SELECT RAISE(ABORT, 'the outage an invoice was issued in is never deleted'); END;
"#;

/// 4: the pending count and amount kept as a running total, so that the offline limits an
/// issuance checks cost the same with 10 or 100,000 invoices waiting for the authority
/// (summing the pending rows made issuance slower the longer an outage lasted:
/// docs/BENCHMARKS.md). Kept by triggers, so every path that issues or finalises an
/// invoice keeps it without knowing of it; `verify` recomputes it from the invoices.
/// `IF NOT EXISTS`/`OR IGNORE` let the migration be re-applied to a restored copy.
const V4_PENDING_TOTALS: &str = r#"
CREATE TABLE IF NOT EXISTS pending_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL CHECK (count >= 0),
    cents INTEGER NOT NULL CHECK (cents >= 0)
) STRICT;
INSERT OR IGNORE INTO pending_totals (id, count, cents)
    SELECT 1, COUNT(*), COALESCE(SUM(ABS(total_amount_cents)), 0)
    FROM invoices WHERE status = 'pending';

CREATE TRIGGER IF NOT EXISTS pending_totals_on_issue AFTER INSERT ON invoices
WHEN NEW.status = 'pending'
BEGIN
    UPDATE pending_totals
    SET count = count + 1, cents = cents + ABS(NEW.total_amount_cents) WHERE id = 1;
END;

CREATE TRIGGER IF NOT EXISTS pending_totals_on_final AFTER UPDATE OF status ON invoices
WHEN OLD.status = 'pending' AND NEW.status != 'pending'
BEGIN
    UPDATE pending_totals
    SET count = count - 1, cents = cents - ABS(OLD.total_amount_cents) WHERE id = 1;
END;

CREATE TRIGGER IF NOT EXISTS pending_totals_one_row BEFORE DELETE ON pending_totals
BEGIN SELECT RAISE(ABORT, 'the pending totals are never deleted'); END;
"#;

/// 5: an issuance writes only what it must (issue 9: docs/BENCHMARKS.md "Issuance against
/// its floor"). Each index or table an issuance touches is one more 4 KiB page written and
/// fsync'd in the WAL at every commit; these rows and indexes cost 12.9 pages an issuance
/// where 6 carry the information:
/// - the outbox is keyed by the invoice's seq (its rowid), not by its id with a second
///   unique index on seq;
/// - the "issued" history entry is no longer written: its time and number are the
///   invoice row's own, and `show` reads them from there;
/// - `invoices_pending` and `invoices_status_seq` go: the pending invoices are the outbox
///   rows, and the rejected ones get a partial index written only when one is rejected;
/// - the pending totals are no longer a row of their own that every issuance updates:
///   each lease counts the amount issued under it (`issued_cents`, in the row that
///   issuance updates anyway for its next number) and `settled_totals` counts the
///   invoices that left pending (updated when a receipt is stored, never at issuance).
///   Pending = issued - settled: count = the chain head's seq - settled count, amount =
///   the leases' issued amounts - settled amount.
///
/// Applied again to a restored copy, it rebuilds the same shape from the same rows.
const V5_LEANER_ISSUANCE: &str = r#"
DROP INDEX IF EXISTS invoices_pending;
DROP INDEX IF EXISTS invoices_status_seq;
CREATE INDEX IF NOT EXISTS invoices_rejected ON invoices(seq) WHERE status = 'rejected';

CREATE TABLE outbox_by_seq (
    seq INTEGER PRIMARY KEY REFERENCES invoices(seq),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    last_error TEXT
) STRICT;
INSERT INTO outbox_by_seq (seq, attempts, next_attempt_ms, last_error)
    SELECT seq, attempts, next_attempt_ms, last_error FROM outbox;
DROP TRIGGER IF EXISTS outbox_leaves_with_receipt;
DROP TABLE outbox;
ALTER TABLE outbox_by_seq RENAME TO outbox;
CREATE TRIGGER outbox_leaves_with_receipt BEFORE DELETE ON outbox
WHEN NOT EXISTS (SELECT 1 FROM receipts r JOIN invoices i ON i.id = r.invoice_id WHERE i.seq = OLD.seq)
BEGIN SELECT RAISE(ABORT, 'an outbox row is removed only with the receipt of its invoice'); END;

DELETE FROM history WHERE status = 'issued';

DROP TRIGGER IF EXISTS pending_totals_on_issue;
DROP TRIGGER IF EXISTS pending_totals_on_final;
DROP TRIGGER IF EXISTS pending_totals_one_row;
DROP TABLE IF EXISTS pending_totals;

UPDATE leases SET issued_cents = (
    SELECT COALESCE(SUM(ABS(i.total_amount_cents)), 0) FROM invoices i
    WHERE length(i.number) = length(leases.prefix) + 8
      AND substr(i.number, 1, length(leases.prefix)) = leases.prefix
      AND CAST(substr(i.number, length(leases.prefix) + 1) AS INTEGER)
          BETWEEN leases.first AND leases.next - 1);
CREATE TRIGGER IF NOT EXISTS leases_issued_only_grows BEFORE UPDATE OF issued_cents ON leases
WHEN NEW.issued_cents < OLD.issued_cents
BEGIN SELECT RAISE(ABORT, 'the amount issued under a lease only grows'); END;

CREATE TABLE IF NOT EXISTS settled_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL CHECK (count >= 0),
    cents INTEGER NOT NULL CHECK (cents >= 0)
) STRICT;
INSERT OR IGNORE INTO settled_totals (id, count, cents) VALUES (1, 0, 0);
UPDATE settled_totals SET
    count = (SELECT COUNT(*) FROM invoices WHERE status != 'pending'),
    cents = (SELECT COALESCE(SUM(ABS(total_amount_cents)), 0) FROM invoices WHERE status != 'pending')
WHERE id = 1;
CREATE TRIGGER IF NOT EXISTS settled_totals_on_final AFTER UPDATE OF status ON invoices
WHEN OLD.status = 'pending' AND NEW.status != 'pending'
BEGIN
    UPDATE settled_totals
    SET count = count + 1, cents = cents + ABS(OLD.total_amount_cents) WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS settled_totals_one_row BEFORE DELETE ON settled_totals
BEGIN SELECT RAISE(ABORT, 'the settled totals are never deleted'); END;
"#;

/// The column migration 5 adds, when it is not there yet (`ALTER TABLE ... ADD COLUMN`
/// has no `IF NOT EXISTS`).
const V5_LEASE_COLUMN: &str =
    "ALTER TABLE leases ADD COLUMN issued_cents INTEGER NOT NULL DEFAULT 0 CHECK (issued_cents >= 0)";

/// 6: no index on the invoice's id or number (issue 9: each was one more 4 KiB page in
/// every issuance's commit). SQLite cannot drop a column's UNIQUE constraint, so
/// `invoices` is rebuilt once, with the tables that referred to it by id rekeyed by seq:
/// - an invoice's id carries its seq, and its number follows its lease's anchor
///   (`leases.anchor_seq`/`anchor_number`, set by the first issuance from the lease);
///   the ids and numbers of the invoices issued before are kept in `invoice_keys`
///   (`lookup.rs`), which an issuance never writes;
/// - `receipts` is keyed by the invoice's seq, `history` names it by seq, and a credit
///   note names its original by `original_seq`;
/// - the guards of migrations 2 and 5 on these tables are created again as they were.
///
/// Runs with foreign keys off (SQLite's procedure for changing a table's shape), and the
/// copy is checked row for row and by `PRAGMA foreign_key_check` before it commits.
const V6_REBUILD: &str = r#"
DROP TRIGGER IF EXISTS outbox_leaves_with_receipt;

CREATE TABLE invoices_v6 (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    number TEXT NOT NULL,
    kind TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    buyer_name TEXT NOT NULL,
    buyer_tax_id TEXT NOT NULL,
    total TEXT NOT NULL,
    total_amount TEXT NOT NULL,
    total_amount_cents INTEGER NOT NULL,
    hash TEXT NOT NULL,
    envelope TEXT NOT NULL,
    -- Not `status IN (...)`: a list after IN makes SQLite build a temporary b-tree each
    -- time the statement runs, about 4 us of every issuance (docs/BENCHMARKS.md).
    status TEXT NOT NULL CHECK (status = 'pending' OR status = 'accepted' OR status = 'rejected'),
    original_seq INTEGER REFERENCES invoices_v6(seq),
    -- The chain has no gap: every invoice but the first names the one before it, which
    -- must exist. (Before, a trigger looked up the head on every insert; a trigger that
    -- fires costs every issuance a few microseconds: docs/BENCHMARKS.md.)
    prev_seq INTEGER REFERENCES invoices_v6(seq),
    CONSTRAINT seq_follows_head CHECK ((seq = 1 AND prev_seq IS NULL) OR prev_seq IS seq - 1)
) STRICT;
INSERT INTO invoices_v6 (seq, id, number, kind, issued_at, buyer_name, buyer_tax_id, total,
                         total_amount, total_amount_cents, hash, envelope, status, original_seq,
                         prev_seq)
    SELECT i.seq, i.id, i.number, i.kind, i.issued_at, i.buyer_name, i.buyer_tax_id, i.total,
           i.total_amount, i.total_amount_cents, i.hash, i.envelope, i.status,
           (SELECT o.seq FROM invoices o WHERE o.id = i.original_id), NULLIF(i.seq - 1, 0)
    FROM invoices i ORDER BY i.seq;

CREATE TABLE invoice_keys (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL REFERENCES invoices_v6(seq)
) STRICT, WITHOUT ROWID;
INSERT INTO invoice_keys (key, seq) SELECT id, seq FROM invoices;
INSERT INTO invoice_keys (key, seq) SELECT number, seq FROM invoices;

CREATE TABLE receipts_v6 (
    seq INTEGER PRIMARY KEY REFERENCES invoices_v6(seq),
    receipt TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status = 'accepted' OR status = 'rejected'),
    stored_at TEXT NOT NULL
) STRICT;
INSERT INTO receipts_v6 (seq, receipt, status, stored_at)
    SELECT i.seq, r.receipt, r.status, r.stored_at
    FROM receipts r JOIN invoices i ON i.id = r.invoice_id ORDER BY i.seq;

CREATE TABLE history_v6 (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL REFERENCES invoices_v6(seq),
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
) STRICT;
INSERT INTO history_v6 (id, seq, at, status, detail)
    SELECT h.id, i.seq, h.at, h.status, h.detail
    FROM history h JOIN invoices i ON i.id = h.invoice_id ORDER BY h.id;
"#;

/// The second half of migration 6, once the copies are checked: the old tables go (with
/// their indexes and triggers), the new ones take their names, and the indexes are
/// created on them.
const V6_SWAP: &str = r#"
DROP TABLE history;
DROP TABLE receipts;
DROP TABLE invoices;
ALTER TABLE invoices_v6 RENAME TO invoices;
ALTER TABLE receipts_v6 RENAME TO receipts;
ALTER TABLE history_v6 RENAME TO history;

CREATE INDEX invoices_original ON invoices(original_seq) WHERE original_seq IS NOT NULL;
CREATE INDEX invoices_rejected ON invoices(seq) WHERE status = 'rejected';
CREATE INDEX history_invoice ON history(seq, id);
CREATE INDEX IF NOT EXISTS leases_numbers ON leases(prefix, first);
"#;

/// The guards of migration 6's tables: the append-only triggers of migrations 2 and 5 on
/// the rebuilt tables (which lost theirs with the old ones), and new ones on the history,
/// the keys and the lease anchors. The two lease guards that every issuance's update
/// fires (next never goes back, the issued amount never shrinks) become one trigger, and
/// the gap guard on the invoices becomes the `seq_follows_head` constraint and the
/// `prev_seq` foreign key: each trigger that fires costs every issuance a few
/// microseconds (docs/BENCHMARKS.md). Dropped and created again so that migrations applied
/// again to a restored copy (whose earlier migrations re-create their own versions of
/// some of them) end with these.
const V6_GUARDS: &str = r#"
DROP TRIGGER IF EXISTS invoices_seq_follows_head;
DROP TRIGGER IF EXISTS invoices_immutable;
DROP TRIGGER IF EXISTS invoices_status_final;
DROP TRIGGER IF EXISTS invoices_never_deleted;
DROP TRIGGER IF EXISTS settled_totals_on_final;
DROP TRIGGER IF EXISTS receipts_immutable;
DROP TRIGGER IF EXISTS receipts_never_deleted;
DROP TRIGGER IF EXISTS outbox_leaves_with_receipt;
DROP TRIGGER IF EXISTS history_immutable;
DROP TRIGGER IF EXISTS history_never_deleted;
DROP TRIGGER IF EXISTS invoice_keys_immutable;
DROP TRIGGER IF EXISTS invoice_keys_never_deleted;
DROP TRIGGER IF EXISTS leases_anchored_once;
DROP TRIGGER IF EXISTS leases_numbers_never_reused;
DROP TRIGGER IF EXISTS leases_issued_only_grows;
DROP TRIGGER IF EXISTS leases_only_advance;

CREATE TRIGGER invoices_immutable
BEFORE UPDATE OF seq, id, number, kind, issued_at, buyer_name, buyer_tax_id, total,
    total_amount, total_amount_cents, hash, envelope, original_seq, prev_seq ON invoices
BEGIN SELECT RAISE(ABORT, 'an issued invoice is never edited: issue a credit note instead'); END;

CREATE TRIGGER invoices_status_final BEFORE UPDATE OF status ON invoices
WHEN NOT (OLD.status = 'pending' AND NEW.status IN ('accepted', 'rejected'))
BEGIN SELECT RAISE(ABORT, 'an invoice status changes once, from pending to accepted or rejected'); END;

CREATE TRIGGER invoices_never_deleted BEFORE DELETE ON invoices
BEGIN SELECT RAISE(ABORT, 'an issued invoice is never deleted: issue a credit note instead'); END;

CREATE TRIGGER settled_totals_on_final AFTER UPDATE OF status ON invoices
WHEN OLD.status = 'pending' AND NEW.status != 'pending'
BEGIN
    UPDATE settled_totals
    SET count = count + 1, cents = cents + ABS(OLD.total_amount_cents) WHERE id = 1;
END;

CREATE TRIGGER receipts_immutable BEFORE UPDATE ON receipts
BEGIN SELECT RAISE(ABORT, 'a stored receipt is never changed'); END;

CREATE TRIGGER receipts_never_deleted BEFORE DELETE ON receipts
BEGIN SELECT RAISE(ABORT, 'a stored receipt is never deleted'); END;

CREATE TRIGGER outbox_leaves_with_receipt BEFORE DELETE ON outbox
WHEN NOT EXISTS (SELECT 1 FROM receipts WHERE seq = OLD.seq)
BEGIN SELECT RAISE(ABORT, 'an outbox row is removed only with the receipt of its invoice'); END;

CREATE TRIGGER history_immutable BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'the status history is never changed'); END;

CREATE TRIGGER history_never_deleted BEFORE DELETE ON history
BEGIN SELECT RAISE(ABORT, 'the status history is never deleted'); END;

CREATE TRIGGER invoice_keys_immutable BEFORE UPDATE ON invoice_keys
BEGIN SELECT RAISE(ABORT, 'the key of an issued invoice is never changed'); END;

CREATE TRIGGER invoice_keys_never_deleted BEFORE DELETE ON invoice_keys
BEGIN SELECT RAISE(ABORT, 'the key of an issued invoice is never deleted'); END;

CREATE TRIGGER leases_only_advance BEFORE UPDATE OF next, issued_cents ON leases
WHEN NEW.next < OLD.next OR NEW.issued_cents < OLD.issued_cents
BEGIN SELECT RAISE(ABORT, 'a consumed invoice number is never reused, and the amount issued under a lease only grows'); END;

CREATE TRIGGER leases_anchored_once BEFORE UPDATE OF anchor_seq, anchor_number ON leases
WHEN OLD.anchor_seq IS NOT NULL OR OLD.anchor_number IS NOT NULL
    OR (NEW.anchor_seq IS NULL) != (NEW.anchor_number IS NULL)
BEGIN SELECT RAISE(ABORT, 'the anchor of a lease is set once'); END;
"#;

/// The columns migration 6 adds to `leases`, when they are not there yet.
const V6_LEASE_COLUMNS: &[&str] = &["anchor_seq", "anchor_number"];

/// Migration 6, in the caller's transaction (foreign keys off): copy, check, swap.
fn rebuild_v6(tx: &Connection) -> Result<(), LedgerError> {
    for column in V6_LEASE_COLUMNS {
        if !has_column(tx, "leases", column)? {
            tx.execute_batch(&format!("ALTER TABLE leases ADD COLUMN {column} INTEGER"))?;
        }
    }
    if !has_column(tx, "invoices", "original_id")? {
        // Already rebuilt: migrations applied again to a restored copy.
        tx.execute_batch("CREATE INDEX IF NOT EXISTS leases_numbers ON leases(prefix, first);")?;
        tx.execute_batch(V6_GUARDS)?;
        return Ok(());
    }
    tx.execute_batch(V6_REBUILD)?;
    for (old, new, what) in [
        ("invoices", "invoices_v6", "invoices"),
        ("receipts", "receipts_v6", "receipts"),
        ("history", "history_v6", "history entries"),
    ] {
        let count = |table: &str| -> Result<i64, LedgerError> {
            Ok(tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
        };
        let (before, after) = (count(old)?, count(new)?);
        if before != after {
            return Err(LedgerError::Integrity {
                seq: 0,
                what: format!(
                    "upgrading the ledger to schema 6 would keep {after} of its {before} {what} \
                     (a row names an invoice that is not in the ledger); the ledger was not changed"
                ),
            });
        }
    }
    let keys: i64 = tx.query_row("SELECT COUNT(*) FROM invoice_keys", [], |r| r.get(0))?;
    let invoices: i64 = tx.query_row("SELECT COUNT(*) FROM invoices", [], |r| r.get(0))?;
    if keys != 2 * invoices {
        return Err(LedgerError::Integrity {
            seq: 0,
            what:
                "upgrading the ledger to schema 6 found two invoices with the same id or number; \
                   the ledger was not changed"
                    .into(),
        });
    }
    tx.execute_batch(V6_SWAP)?;
    tx.execute_batch(V6_GUARDS)?;
    Ok(())
}

/// Migration 7: the authority's head for this device as last heard (`kaipiao queue`),
/// one row; and (in Rust, [`V7_DEVICE_COLUMN`]) when the clock offset was measured.
/// Re-applicable.
const V7_AUTHORITY_HEAD: &str = r#"
CREATE TABLE IF NOT EXISTS authority_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    hash TEXT,
    read_at TEXT NOT NULL
) STRICT;
"#;

/// Migration 7's device column: when the authority last measured the device's clock
/// offset (its 401 `clock_skew`), on the local clock, for the clock-ahead rule of issuance.
const V7_DEVICE_COLUMN: &str = "ALTER TABLE device ADD COLUMN clock_offset_at TEXT";

/// Migration 8 (in Rust, guarded): the plain-`http://` endpoints the shop allowed on
/// purpose at enrolment (`kaipiao enroll --allow-insecure-http`), a JSON list of
/// addresses; every other endpoint is `https://` or this machine.
const V8_DEVICE_COLUMN: &str =
    "ALTER TABLE device ADD COLUMN insecure_servers TEXT NOT NULL DEFAULT '[]'";

/// Migration 9 (in Rust, guarded): whether the authority said at enrolment that it is a
/// sandbox (`/v1/health`'s `sandbox`), for the mark on printed invoices; NULL when not
/// recorded.
const V9_DEVICE_COLUMN: &str = "ALTER TABLE device ADD COLUMN authority_sandbox INTEGER";

/// Migration 10: delivery by email (issue 11, item 7). The SMTP settings, one row, the
/// password sealed under the device key (`mail.rs`); and the deliveries, queued beside
/// the outbox, one per invoice and address, claimed by a sender before it sends.
const V10_MAIL: &str = r#"
CREATE TABLE IF NOT EXISTS mail_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    host TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    user TEXT NOT NULL,
    from_addr TEXT NOT NULL,
    security TEXT NOT NULL CHECK (security IN ('tls', 'starttls', 'plain')),
    password_sealed TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    invoice_seq INTEGER NOT NULL REFERENCES invoices(seq),
    address TEXT NOT NULL,
    lang TEXT NOT NULL CHECK (lang IN ('zh', 'en')),
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_until TEXT,
    last_error TEXT,
    message_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    sent_at TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS deliveries_by_invoice ON deliveries (invoice_seq);
CREATE INDEX IF NOT EXISTS deliveries_queued ON deliveries (next_attempt_at) WHERE status = 'queued';
"#;

/// Migration 11: the till's defaults (issue 12, item 5), one row: the issuer (开票人) and
/// the kind a new invoice starts as.
const V11_TILL: &str = r#"
CREATE TABLE IF NOT EXISTS till_defaults (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    issuer TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('ordinary', 'special')),
    updated_at TEXT NOT NULL
) STRICT;
"#;

/// Migration 12: the 发票流水号 of invoices issued by `import --xlsx` (issue 12, item 2),
/// beside the invoice and outside its signed bytes: the import's idempotency key, written
/// in the transaction that issues the invoice. `digest` is the SHA-256 of the serial's
/// cells as the workbook had them, so a re-import tells "the same invoice" (skipped) from
/// "another invoice under a used serial" (refused). Like the invoice, never changed.
const V12_IMPORT_SERIALS: &str = r#"
CREATE TABLE IF NOT EXISTS import_serials (
    serial TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    seq INTEGER NOT NULL UNIQUE REFERENCES invoices(seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS import_serials_immutable BEFORE UPDATE ON import_serials
BEGIN SELECT RAISE(ABORT, 'an import serial is never changed'); END;

CREATE TRIGGER IF NOT EXISTS import_serials_never_deleted BEFORE DELETE ON import_serials
BEGIN SELECT RAISE(ABORT, 'an import serial is never deleted'); END;
"#;

/// Migration 13: the catalogs (issue 12, item 1), items (项目信息) by name and 规格型号
/// and buyers (客户信息) by tax ID (by name when they have none), and a version that moves
/// with every change. An issued invoice copies what it was issued with: no invoice refers
/// to a catalog row, so entries may change and go.
const V13_CATALOGS: &str = r#"
CREATE TABLE IF NOT EXISTS catalog_items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    tax_code TEXT NOT NULL,
    spec TEXT NOT NULL,
    unit TEXT NOT NULL,
    price TEXT NOT NULL,
    price_includes_tax INTEGER NOT NULL CHECK (price_includes_tax IN (0, 1)),
    tax_rate TEXT NOT NULL,
    treatment TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (name, spec)
) STRICT;

CREATE TABLE IF NOT EXISTS catalog_buyers (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    tax_id TEXT NOT NULL,
    address TEXT NOT NULL,
    bank TEXT NOT NULL,
    email TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('ordinary', 'special')),
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS catalog_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT OR IGNORE INTO catalog_version (id, version) VALUES (1, 0);
"#;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, V1_TABLES),
    (2, V2_GUARDS),
    (3, V3_OUTAGES),
    (4, V4_PENDING_TOTALS),
    (5, V5_LEANER_ISSUANCE),
    // Applied by `rebuild_v6`, in steps checked from Rust.
    (6, ""),
    (7, V7_AUTHORITY_HEAD),
    (8, ""),
    (9, ""),
    (10, V10_MAIL),
    (11, V11_TILL),
    (12, V12_IMPORT_SERIALS),
    (13, V13_CATALOGS),
];

/// Prepared statements kept per connection (all of the ledger's fit).
const STATEMENT_CACHE: usize = 128;

/// How long a writer waits for SQLite's write lock before [`LedgerError::Busy`].
const BUSY_TIMEOUT_MS: u32 = 5000;
/// Tries in which the wait is short: the lock is held by a transaction that takes well
/// under a millisecond (an issuance, a group of receipts) far more often than by one
/// that takes longer.
const BUSY_SHORT_TRIES: i32 = 100;
const BUSY_SHORT_WAIT: std::time::Duration = std::time::Duration::from_micros(100);
const BUSY_LONG_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// The busy handler: SQLite calls it with the number of times it already did for this
/// lock; true means "try again". SQLite's own `busy_timeout` sleeps 1, 2, 5, 10, 15 ms...
/// between tries, so a clerk's issuance that meets a receipt group holding the lock for
/// half a millisecond waited 1-8 ms; here it polls every 0.1 ms for the first 10 ms, then
/// every 1 ms, up to the same 5 s in total (issuance p99 during a drain: docs/BENCHMARKS.md).
fn busy_wait(tries: i32) -> bool {
    let short = tries.min(BUSY_SHORT_TRIES) as u32;
    let long = (tries - BUSY_SHORT_TRIES).max(0) as u32;
    let waited = BUSY_SHORT_WAIT * short + BUSY_LONG_WAIT * long;
    if waited >= std::time::Duration::from_millis(u64::from(BUSY_TIMEOUT_MS)) {
        return false;
    }
    std::thread::sleep(if tries < BUSY_SHORT_TRIES {
        BUSY_SHORT_WAIT
    } else {
        BUSY_LONG_WAIT
    });
    true
}

/// Settings every connection needs (STYLE: SQLite). The busy handler comes first so that
/// switching to WAL waits for a concurrent opener instead of failing.
pub(crate) fn configure(conn: &Connection) -> Result<(), LedgerError> {
    conn.busy_handler(Some(busy_wait))?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LedgerError::Storage(format!(
            "the database refused WAL mode (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // rusqlite keeps 16 prepared statements by default; the ledger's modules use more
    // than that between them, and a statement evicted is parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// The recorded schema version; 0 for a new, empty database.
pub(crate) fn version(conn: &Connection) -> Result<i64, LedgerError> {
    let has_table: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !has_table {
        return Ok(0);
    }
    let v: Option<i64> =
        conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?;
    Ok(v.unwrap_or(0))
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, LedgerError> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.is_some())
}

/// Brings the database at `db_path` to [`SCHEMA_VERSION`], backing an older one up first.
pub(crate) fn migrate(conn: &Connection, db_path: &Path) -> Result<(), LedgerError> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(LedgerError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if found > 0 {
        let mut backup = db_path.as_os_str().to_owned();
        backup.push(format!(".bak-v{found}"));
        conn.backup(rusqlite::DatabaseName::Main, Path::new(&backup), None)?;
    }
    with_foreign_keys_off(conn, |conn| {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        // Another process may have migrated between our read and our write lock.
        let current = version(&tx)?;
        if current > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                found: current,
                known: SCHEMA_VERSION,
            });
        }
        apply(&tx, current, SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    })
}

/// Runs `f` with foreign keys off, and turns them on again whatever it returns: a table
/// is rebuilt (migration 6) with them off, as SQLite's ALTER TABLE procedure asks, and
/// `apply` checks them all before its transaction commits. (The pragma cannot change
/// inside a transaction, hence around it.)
fn with_foreign_keys_off<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, LedgerError>,
) -> Result<T, LedgerError> {
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let out = f(conn);
    let on = conn.pragma_update(None, "foreign_keys", "ON");
    let out = out?;
    on?;
    Ok(out)
}

/// `PRAGMA foreign_key_check` as an error: what a migration leaves must hold them all.
fn check_foreign_keys(tx: &Connection) -> Result<(), LedgerError> {
    let broken: Option<(String, i64, String)> = tx
        .query_row("PRAGMA foreign_key_check", [], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                r.get(2)?,
            ))
        })
        .optional()?;
    match broken {
        None => Ok(()),
        Some((table, row, parent)) => Err(LedgerError::Integrity {
            seq: 0,
            what: format!(
                "after the upgrade, row {row} of {table} names a missing row of {parent}; the ledger was not changed"
            ),
        }),
    }
}

/// Applies the migrations numbered `after + 1 ..= upto` inside the caller's transaction,
/// recording each in `schema_version`.
fn apply(tx: &Connection, after: i64, upto: i64) -> Result<(), LedgerError> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL
         ) STRICT;",
    )?;
    for (number, sql) in MIGRATIONS.iter().filter(|(n, _)| *n > after && *n <= upto) {
        if *number == 5 && !has_column(tx, "leases", "issued_cents")? {
            tx.execute_batch(V5_LEASE_COLUMN)?;
        }
        if *number == 6 {
            rebuild_v6(tx)?;
        }
        if *number == 7 && !has_column(tx, "device", "clock_offset_at")? {
            tx.execute_batch(V7_DEVICE_COLUMN)?;
        }
        if *number == 8 && !has_column(tx, "device", "insecure_servers")? {
            tx.execute_batch(V8_DEVICE_COLUMN)?;
        }
        if *number == 9 && !has_column(tx, "device", "authority_sandbox")? {
            tx.execute_batch(V9_DEVICE_COLUMN)?;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            [number],
        )?;
    }
    check_foreign_keys(tx)
}

/// For migration tests only: gives the empty database on `conn` the schema exactly as
/// an older release wrote it, migrations 1..=`version` recorded in `schema_version`, so
/// that a test can fill it with rows of that version's shapes and open it with
/// [`Ledger::open`](crate::Ledger::open) to migrate it. Not for production use: the
/// program only ever writes [`SCHEMA_VERSION`]. Refuses a database that already has a
/// schema, and a version this program does not know.
#[doc(hidden)]
pub fn create_schema_at(conn: &Connection, version: i64) -> Result<(), LedgerError> {
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(LedgerError::Storage(format!(
            "there is no schema version {version} (this program knows 1 to {SCHEMA_VERSION})"
        )));
    }
    let found = self::version(conn)?;
    if found != 0 {
        return Err(LedgerError::Storage(format!(
            "the database already has schema version {found}"
        )));
    }
    with_foreign_keys_off(conn, |conn| {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        apply(&tx, 0, version)?;
        tx.commit()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_refuses_wal_is_a_storage_error_not_an_integrity_one() {
        // SQLite keeps an in-memory database in journal_mode "memory" whatever is asked.
        let conn = Connection::open_in_memory().unwrap();
        let e = configure(&conn).unwrap_err();
        assert!(
            matches!(&e, LedgerError::Storage(w) if w.contains("refused WAL mode (journal_mode is memory)")),
            "{e}"
        );
        assert_eq!(e.code(), "storage");
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("local disk"), "{e}");
    }

    #[test]
    fn create_schema_at_writes_an_older_schema_once_and_only_a_known_one() {
        let conn = Connection::open_in_memory().unwrap();
        create_schema_at(&conn, 4).unwrap();
        assert_eq!(version(&conn).unwrap(), 4);
        let recorded: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(recorded, 4);
        assert!(has_column(&conn, "outbox", "invoice_id").unwrap());
        assert!(!has_column(&conn, "leases", "issued_cents").unwrap());
        let pending: i64 = conn
            .query_row("SELECT count FROM pending_totals", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pending, 0);
        let e = create_schema_at(&conn, 4).unwrap_err();
        assert!(
            e.to_string().contains("already has schema version 4"),
            "{e}"
        );
        for unknown in [0, SCHEMA_VERSION + 1] {
            let fresh = Connection::open_in_memory().unwrap();
            let e = create_schema_at(&fresh, unknown).unwrap_err();
            assert!(e.to_string().contains("no schema version"), "{e}");
            assert_eq!(version(&fresh).unwrap(), 0);
        }
    }
}
