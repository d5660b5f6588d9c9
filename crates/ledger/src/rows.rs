//! Reading rows back into typed values. Everything read from the file is treated as
//! untrusted: a row that does not parse is an integrity failure, never a panic.

use crate::keystore::Protection;
use crate::{LedgerError, LocalDevice, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::lease::{LeaseTerms, OfflineExposure};
use kaipiao_core::time::parse_rfc3339;
use kaipiao_core::{Envelope, Invoice, Lease, Party};
use rusqlite::{Connection, OptionalExtension};

/// An integrity failure not tied to one invoice (seq 0), or tied to `seq`.
pub(crate) fn corrupt(seq: u64, what: impl Into<String>) -> LedgerError {
    LedgerError::Integrity {
        seq,
        what: what.into(),
    }
}

/// The device row, parsed.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRow {
    pub key_id: String,
    pub protection: Protection,
    pub device_id: Option<String>,
    pub device_name: String,
    pub seller: Party,
    pub public_key: String,
    pub authority_public_key: Option<String>,
    pub servers: Vec<String>,
    pub created_at: String,
    pub enrolled_at: Option<String>,
    pub clock_offset: i64,
    pub last_sync_at: Option<String>,
    pub queue_stopped: Option<String>,
    /// Plain-http endpoints allowed on purpose at enrolment.
    pub insecure_servers: Vec<String>,
    /// The authority said at enrolment that it is a sandbox (None: not recorded).
    pub authority_sandbox: Option<bool>,
}

impl DeviceRow {
    pub fn public(&self) -> LocalDevice {
        LocalDevice {
            device_id: self.device_id.clone(),
            device_name: self.device_name.clone(),
            seller: self.seller.clone(),
            public_key: self.public_key.clone(),
            authority_public_key: self.authority_public_key.clone(),
            servers: self.servers.clone(),
            insecure_servers: self.insecure_servers.clone(),
            authority_sandbox: self.authority_sandbox,
            created_at: self.created_at.clone(),
            enrolled_at: self.enrolled_at.clone(),
            key_protection: self.protection,
        }
    }

    /// The authority key pinned at enrolment.
    pub fn pinned_key(&self) -> Result<kaipiao_core::PublicKey> {
        let b64 = self
            .authority_public_key
            .as_deref()
            .ok_or(LedgerError::NotEnrolled)?;
        kaipiao_core::PublicKey::from_base64(b64).map_err(|_| {
            LedgerError::PinnedKeyUnreadable("it is not a base64 Ed25519 public key".into())
        })
    }

    pub fn device_key(&self) -> Result<kaipiao_core::PublicKey> {
        kaipiao_core::PublicKey::from_base64(&self.public_key).map_err(|_| {
            corrupt(
                0,
                "the device public key in the device row is not a valid key",
            )
        })
    }
}

pub(crate) fn load_device(conn: &Connection) -> Result<Option<DeviceRow>> {
    type Raw = (
        String,
        String,
        Option<String>,
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
        String,
        Option<bool>,
    );
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT key_id, key_protection, device_id, device_name, seller, public_key,
                    authority_public_key, servers, created_at, enrolled_at, clock_offset,
                    last_sync_at, queue_stopped, insecure_servers, authority_sandbox
             FROM device WHERE id = 1",
        )?
        .query_row([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
                r.get(13)?,
                r.get(14)?,
            ))
        })
        .optional()?;
    let Some((
        key_id,
        protection,
        device_id,
        device_name,
        seller,
        public_key,
        authority_public_key,
        servers,
        created_at,
        enrolled_at,
        clock_offset,
        last_sync_at,
        queue_stopped,
        insecure_servers,
        authority_sandbox,
    )) = raw
    else {
        return Ok(None);
    };
    let protection = Protection::parse(&protection).ok_or_else(|| {
        corrupt(
            0,
            format!("the device row names an unknown key protection {protection:?}"),
        )
    })?;
    let seller: Party = serde_json::from_str(&seller)
        .map_err(|_| corrupt(0, "the seller in the device row is not valid JSON"))?;
    let servers: Vec<String> = serde_json::from_str(&servers)
        .map_err(|_| corrupt(0, "the server list in the device row is not valid JSON"))?;
    let insecure_servers: Vec<String> = serde_json::from_str(&insecure_servers).map_err(|_| {
        corrupt(
            0,
            "the insecure server list in the device row is not valid JSON",
        )
    })?;
    Ok(Some(DeviceRow {
        key_id,
        protection,
        device_id,
        device_name,
        seller,
        public_key,
        authority_public_key,
        servers,
        created_at,
        enrolled_at,
        clock_offset,
        last_sync_at,
        queue_stopped,
        insecure_servers,
        authority_sandbox,
    }))
}

pub(crate) fn require_device(conn: &Connection) -> Result<DeviceRow> {
    load_device(conn)?.ok_or(LedgerError::NotInitialized)
}

/// The last invoice: (seq, hash, issued_at).
pub(crate) fn last_invoice(conn: &Connection) -> Result<Option<(u64, String, String)>> {
    Ok(conn
        .prepare_cached("SELECT seq, hash, issued_at FROM invoices ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

/// Whether the stored receipt `text` rejects its invoice as `issued_in_future`: such an
/// invoice does not set the time the next one may not go back before (SPEC 10).
pub(crate) fn rejected_in_future(text: Option<&str>) -> bool {
    text.and_then(|t| serde_json::from_str::<kaipiao_core::wire::Receipt>(t).ok())
        .is_some_and(|r| r.rejected_in_future())
}

/// The `issued_at` a new invoice may not go back before: that of the last invoice up to
/// `head_seq` not rejected as `issued_in_future` (SPEC 10, the authority's rule too).
/// Only read when the head's own `issued_at` is ahead of the clock, so the scan is short
/// and off the common path.
pub(crate) fn clock_reference(conn: &Connection, head_seq: u64) -> Result<Option<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.issued_at, r.receipt FROM invoices i LEFT JOIN receipts r ON r.seq = i.seq
         WHERE i.seq <= ?1 ORDER BY i.seq DESC",
    )?;
    let mut rows = stmt.query([head_seq])?;
    while let Some(row) = rows.next()? {
        let receipt: Option<String> = row.get(1)?;
        if !rejected_in_future(receipt.as_deref()) {
            return Ok(Some(row.get(0)?));
        }
    }
    Ok(None)
}

/// A stored lease with its use.
#[derive(Debug, Clone)]
pub(crate) struct LeaseRow {
    pub lease: Lease,
    pub next: u64,
    /// (anchor_seq, anchor_number): the first number taken from the lease since schema 6
    /// and the seq that took it (`lookup.rs`); None until then.
    pub anchor: Option<(u64, u64)>,
}

impl LeaseRow {
    pub fn numbers_left(&self) -> u64 {
        self.lease.last.saturating_add(1).saturating_sub(self.next)
    }
}

/// A lease row as read: (lease_id, lease_json, next, anchor).
type RawLease = (String, String, u64, Option<(u64, u64)>);

/// The columns [`lease_row`] reads, in its order.
const LEASE_COLUMNS: &str = "lease_id, lease_json, next, anchor_seq, anchor_number";

fn lease_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawLease> {
    let anchor = match (r.get::<_, Option<u64>>(3)?, r.get::<_, Option<u64>>(4)?) {
        (Some(seq), Some(number)) => Some((seq, number)),
        _ => None,
    };
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, anchor))
}

fn parse_lease((lease_id, json, next, anchor): RawLease) -> Result<LeaseRow> {
    let lease: Lease = serde_json::from_str(&json)
        .map_err(|_| corrupt(0, format!("stored lease {lease_id} is not a valid lease")))?;
    if lease.lease_id != lease_id {
        return Err(corrupt(
            0,
            format!("stored lease {lease_id} carries another id"),
        ));
    }
    Ok(LeaseRow {
        lease,
        next,
        anchor,
    })
}

/// [`lease_in_force`]'s rule over `leases` in stored order, for a caller that has read
/// them all already.
pub(crate) fn in_force(leases: &[LeaseRow]) -> Option<&LeaseRow> {
    leases
        .iter()
        .find(|l| l.numbers_left() > 0)
        .or(leases.last())
}

/// All leases in the order they were stored (the order they are used in).
pub(crate) fn leases(conn: &Connection) -> Result<Vec<LeaseRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {LEASE_COLUMNS} FROM leases ORDER BY position"
    ))?;
    let raw = stmt
        .query_map([], lease_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(parse_lease).collect()
}

/// The first lease with numbers left, unparsed.
fn current_lease_row(conn: &Connection) -> Result<Option<RawLease>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {LEASE_COLUMNS} FROM leases WHERE next <= last ORDER BY position LIMIT 1"
        ))?
        .query_row([], lease_row)
        .optional()?)
}

/// The first lease with numbers left: where the next number comes from.
pub(crate) fn current_lease(conn: &Connection) -> Result<Option<LeaseRow>> {
    current_lease_row(conn)?.map(parse_lease).transpose()
}

/// What an issuance needs of the device and of the lease in use, parsed.
#[derive(Clone)]
pub(crate) struct Issuer {
    pub device_id: Option<String>,
    pub public_key: String,
    pub seller: Party,
    /// The first lease with numbers left, with its parsed terms.
    pub lease: Option<(LeaseRow, LeaseTerms)>,
    /// The device clock's offset from the authority's (seconds to add) as last measured,
    /// and when, on the local clock.
    pub clock_offset: i64,
    pub clock_offset_at: Option<String>,
}

/// Parsed copies of the JSON every issuance reads (the seller, the lease in use and its
/// terms), reused while the stored text is byte for byte the same: comparing the text
/// costs nanoseconds where parsing it costs microseconds (docs/BENCHMARKS.md). The text
/// is still read each time, so an edit by another process, or one that no trigger
/// stopped, is never hidden behind a stale copy.
#[derive(Default)]
pub(crate) struct Parsed {
    seller: Option<(String, Party)>,
    lease: Option<(String, LeaseRow, LeaseTerms)>,
    /// What the last issuance on this connection left behind, and when.
    last_issue: Option<(Stamp, Issuer, ChainState)>,
}

/// When the database was last seen: `PRAGMA data_version` (moves when another connection
/// commits) and this connection's `total_changes` (moves with every row it writes).
/// Equal stamps mean that nothing was written in between, by anyone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    data_version: i64,
    changes: u64,
}

fn stamp(conn: &Connection) -> Result<Stamp> {
    Ok(Stamp {
        data_version: conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?,
        changes: conn.total_changes(),
    })
}

impl Parsed {
    /// Remembers the state an issuance just committed on `conn`, for the next one.
    /// `stamp` is the one its transaction started with: no other connection could commit
    /// while it held the write lock, and this connection's own commit does not move
    /// `data_version`, so only the changes count moved (read without a statement, which
    /// after a commit would open a read transaction of its own).
    pub fn remember(&mut self, conn: &Connection, stamp: Stamp, issuer: Issuer, state: ChainState) {
        let stamp = Stamp {
            changes: conn.total_changes(),
            ..stamp
        };
        self.last_issue = Some((stamp, issuer, state));
    }

    /// After a write on `conn` that leaves the issuing state as it was (an import serial
    /// beside the invoice just issued), what the last issuance left still holds: its
    /// stamp moves with the write.
    pub fn restamp(&mut self, conn: &Connection) {
        if let Some((stamp, _, _)) = self.last_issue.as_mut() {
            stamp.changes = conn.total_changes();
        }
    }

    /// Forgets what the last issuance left: its transaction did not commit.
    pub fn forget_issue(&mut self) {
        self.last_issue = None;
    }
}

/// The issuer and the chain state an issuance starts from, inside its write transaction:
/// what the previous issuance on this connection left when nothing was written since
/// (the common case at the counter: nothing read but the stamp), else read from the file.
pub(crate) fn issuing_state(
    conn: &Connection,
    parsed: &mut Parsed,
) -> Result<(Stamp, Issuer, ChainState)> {
    let now = stamp(conn)?;
    if let Some((then, issuer, state)) = parsed.last_issue.take() {
        if then == now {
            return Ok((now, issuer, state));
        }
    }
    Ok((now, issuer(conn, parsed)?, chain_state(conn)?))
}

/// The device row's issuing fields and the lease in use, parsed through `parsed`.
pub(crate) fn issuer(conn: &Connection, parsed: &mut Parsed) -> Result<Issuer> {
    type Raw = (Option<String>, String, String, i64, Option<String>);
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT device_id, public_key, seller, clock_offset, clock_offset_at
             FROM device WHERE id = 1",
        )?
        .query_row([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((device_id, public_key, seller_text, clock_offset, clock_offset_at)) = raw else {
        return Err(LedgerError::NotInitialized);
    };
    let seller = match &parsed.seller {
        Some((text, party)) if *text == seller_text => party.clone(),
        _ => {
            let party: Party = serde_json::from_str(&seller_text)
                .map_err(|_| corrupt(0, "the seller in the device row is not valid JSON"))?;
            parsed.seller = Some((seller_text, party.clone()));
            party
        }
    };
    let lease = match current_lease_row(conn)? {
        None => None,
        Some((lease_id, json, next, anchor)) => match &parsed.lease {
            Some((text, row, terms)) if *text == json && row.lease.lease_id == lease_id => Some((
                LeaseRow {
                    lease: row.lease.clone(),
                    next,
                    anchor,
                },
                *terms,
            )),
            _ => {
                let row = parse_lease((lease_id, json.clone(), next, anchor))?;
                let terms = row.lease.terms()?;
                parsed.lease = Some((json, row.clone(), terms));
                Some((row, terms))
            }
        },
    };
    Ok(Issuer {
        device_id,
        public_key,
        seller,
        lease,
        clock_offset,
        clock_offset_at,
    })
}

/// The lease whose terms apply now: the one in use (the first with numbers left), else
/// the last one stored. [`in_force`] is the same rule over leases already read.
pub(crate) fn lease_in_force(conn: &Connection) -> Result<Option<LeaseRow>> {
    if let Some(l) = current_lease(conn)? {
        return Ok(Some(l));
    }
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {LEASE_COLUMNS} FROM leases ORDER BY position DESC LIMIT 1"
        ))?
        .query_row([], lease_row)
        .optional()?;
    raw.map(parse_lease).transpose()
}

/// The state an issuance starts from, read in one statement: the chain head, what the
/// offline limits are counted against, and the outage in progress.
#[derive(Clone)]
pub(crate) struct ChainState {
    /// The last invoice: (seq, hash, issued_at).
    pub head: Option<(u64, String, String)>,
    pub exposure: OfflineExposure,
    pub pending: u64,
    /// `issued_at` of the oldest pending invoice, as stored.
    pub oldest_pending: Option<String>,
    /// The id of the outage in progress, if one is.
    pub outage: Option<i64>,
}

pub(crate) fn chain_state(conn: &Connection) -> Result<ChainState> {
    // Pending = issued - settled (schema 5): the head's seq and the leases' issued amounts
    // against the totals of the invoices that left pending. The same few rows at any
    // backlog, and nothing an issuance has to write beyond its lease row.
    // Two plain lookups: the head by rowid, and the totals row with single-row
    // subqueries. (One statement joining both made SQLite materialise the head into a
    // temporary b-tree on every issuance: ~14% of its CPU, docs/BENCHMARKS.md.)
    let head = last_invoice(conn)?;
    type Raw = (i64, i64, Option<String>, Option<i64>);
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT s.count, (SELECT COALESCE(SUM(issued_cents), 0) FROM leases) - s.cents,
                    (SELECT i.issued_at FROM outbox o JOIN invoices i ON i.seq = o.seq
                     ORDER BY o.seq LIMIT 1),
                    (SELECT id FROM outages WHERE ended_at IS NULL)
             FROM settled_totals s WHERE s.id = 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((settled, cents, oldest, outage)) = raw else {
        return Err(corrupt(0, "the settled totals row is missing (edited?)"));
    };
    let issued = head.as_ref().map_or(0, |(seq, _, _)| *seq);
    let count = i64::try_from(issued).unwrap_or(i64::MAX) - settled;
    let (Ok(pending), true) = (u64::try_from(count), cents >= 0) else {
        return Err(corrupt(
            0,
            "the settled totals exceed what was issued (edited?); restore the ledger from a backup",
        ));
    };
    let oldest_at: Option<DateTime<Utc>> = match &oldest {
        Some(s) => Some(parse_rfc3339(s).ok_or_else(|| {
            corrupt(
                0,
                format!("a pending invoice has an unreadable issued_at {s:?}"),
            )
        })?),
        None => None,
    };
    Ok(ChainState {
        head,
        exposure: OfflineExposure {
            oldest_pending_at: oldest_at,
            pending_amount: rust_decimal::Decimal::new(cents, 2),
        },
        pending,
        oldest_pending: oldest,
        outage,
    })
}

/// What the offline limits are counted against, plus the pending count.
pub(crate) fn exposure(conn: &Connection) -> Result<(OfflineExposure, u64, Option<String>)> {
    let state = chain_state(conn)?;
    Ok((state.exposure, state.pending, state.oldest_pending))
}

/// Parses a stored envelope; `seq` names the row in the error.
pub(crate) fn parse_envelope(seq: u64, text: &str) -> Result<Envelope> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(
            seq,
            format!("the stored envelope is not a valid envelope ({e})"),
        )
    })
}

/// An invoice by number: (seq, envelope, status).
pub(crate) fn invoice_by_number(
    conn: &Connection,
    number: &str,
) -> Result<Option<(u64, Invoice, String)>> {
    let Some(seq) = crate::lookup::seq_of_number(conn, number)? else {
        return Ok(None);
    };
    let row: Option<(u64, String, String)> = conn
        .prepare_cached("SELECT seq, envelope, status FROM invoices WHERE seq = ?1")?
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match row {
        None => Ok(None),
        Some((seq, text, status)) => Ok(Some((seq, parse_envelope(seq, &text)?.invoice, status))),
    }
}

/// Credit notes against the invoice at `original_seq` that were not rejected, issued
/// before `before_seq` (all of them when None).
pub(crate) fn prior_credits(
    conn: &Connection,
    original_seq: u64,
    before_seq: Option<u64>,
) -> Result<Vec<Invoice>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, envelope FROM invoices
         WHERE original_seq = ?1 AND kind = 'credit' AND status != 'rejected' AND (?2 IS NULL OR seq < ?2)
         ORDER BY seq",
    )?;
    let rows = stmt
        .query_map(rusqlite::params![original_seq, before_seq], |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.iter()
        .map(|(seq, text)| Ok(parse_envelope(*seq, text)?.invoice))
        .collect()
}
