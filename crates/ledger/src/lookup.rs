//! Finding an invoice's seq from its id or its number without an index on either
//! (schema 6): an issuance writes no index page for them, since each unique index on
//! `invoices` was one more 4 KiB page written and fsync'd in every issuance's commit
//! (docs/BENCHMARKS.md, "Issuance against its floor").
//!
//! - An invoice id is a UUID v7 whose last 40 random bits carry the invoice's seq
//!   (RFC 9562 lets a UUID v7 spend its random bits on a counter); 34 random bits stay.
//! - An invoice number is its lease's prefix and a sequence number in the lease's range.
//!   Leases are used one after the other, each to its end, so the invoices of one lease
//!   have consecutive seqs: the lease row keeps its anchor (the first number taken after
//!   schema 6 and the seq that took it), and a number at or after the anchor sits at
//!   `anchor_seq + (number - anchor_number)`.
//! - Everything else (the invoices issued before schema 6, and any invoice whose id or
//!   number could not be derived) is in `invoice_keys`, a table written only then.
//!
//! Every derived seq is checked against the row it names (`WHERE seq = ? AND id = ?`), so a
//! wrong derivation finds nothing rather than another invoice; `verify` checks that every
//! invoice is found by its id and by its number, which also proves both unique.

use crate::Result;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

/// How many low bits of an invoice id carry its seq.
const SEQ_BITS: u32 = 40;
/// The bytes of a UUID that hold those bits (its last five).
const SEQ_BYTES: std::ops::Range<usize> = 11..16;

/// A new invoice id for `seq`, issued at `now`: a UUID v7 (time-ordered, so ids sort
/// like the chain and say when they were made) whose last 40 bits are the seq. None when
/// the seq does not fit (past 10^12 invoices) or the time is before 1970; the caller
/// then records the id in `invoice_keys`.
pub(crate) fn id_for(now: DateTime<Utc>, seq: u64) -> Option<uuid::Uuid> {
    let secs = u64::try_from(now.timestamp()).ok()?;
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, now.timestamp_subsec_nanos());
    let random = uuid::Uuid::new_v7(ts);
    if seq >> SEQ_BITS != 0 {
        return Some(random);
    }
    let mut bytes = *random.as_bytes();
    bytes[SEQ_BYTES].copy_from_slice(&seq.to_be_bytes()[3..]);
    Some(uuid::Uuid::from_bytes(bytes))
}

/// The seq an id would carry (whether or not it was made by [`id_for`]).
pub(crate) fn seq_in_id(id: &str) -> Option<u64> {
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let mut be = [0u8; 8];
    be[3..].copy_from_slice(&uuid.as_bytes()[SEQ_BYTES]);
    Some(u64::from_be_bytes(be))
}

/// True when `id` is the one [`seq_of_id`] finds at `seq` without `invoice_keys`.
pub(crate) fn id_carries(id: &str, seq: u64) -> bool {
    // In its stored (lowercase hyphenated) form, since the lookup compares the text.
    seq_in_id(id) == Some(seq) && uuid::Uuid::try_parse(id).is_ok_and(|u| u.to_string() == id)
}

/// The seq that number `n` of a lease took, by the lease's anchor (the first number taken
/// since schema 6 and its seq): numbers at or after the anchor follow it seq for seq.
/// None without an anchor or before it. The one rule the lookup, `verify` and issuance
/// share.
pub(crate) fn seq_by_anchor(anchor: Option<(u64, u64)>, n: u64) -> Option<u64> {
    let (anchor_seq, anchor_number) = anchor?;
    anchor_seq.checked_add(n.checked_sub(anchor_number)?)
}

/// Splits a number into its lease prefix and sequence number (the last 8 digits).
pub(crate) fn split_number(number: &str) -> Option<(&str, u64)> {
    if number.len() <= 8 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (prefix, tail) = number.split_at(number.len() - 8);
    Some((prefix, tail.parse().ok()?))
}

fn keyed(conn: &Connection, key: &str) -> Result<Option<u64>> {
    Ok(conn
        .prepare_cached("SELECT seq FROM invoice_keys WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// `seq` when the invoice there has `key` (checked by `sql`, which takes the seq and the
/// key), else the key's entry in `invoice_keys`.
fn confirmed_or_keyed(
    conn: &Connection,
    seq: Option<u64>,
    sql: &str,
    key: &str,
) -> Result<Option<u64>> {
    if let Some(seq) = seq {
        let found: Option<u64> = conn
            .prepare_cached(sql)?
            .query_row(rusqlite::params![seq, key], |r| r.get(0))
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    keyed(conn, key)
}

/// The seq of the invoice with this id.
pub(crate) fn seq_of_id(conn: &Connection, id: &str) -> Result<Option<u64>> {
    confirmed_or_keyed(
        conn,
        seq_in_id(id),
        "SELECT seq FROM invoices WHERE seq = ?1 AND id = ?2",
        id,
    )
}

/// The seq a number would have by its lease's anchor, if a lease covers it.
fn anchored_seq(conn: &Connection, number: &str) -> Result<Option<u64>> {
    let Some((prefix, n)) = split_number(number) else {
        return Ok(None);
    };
    let lease: Option<(u64, Option<u64>, Option<u64>)> = conn
        .prepare_cached(
            "SELECT next, anchor_seq, anchor_number FROM leases
             WHERE prefix = ?1 AND first <= ?2 AND last >= ?2",
        )?
        .query_row(rusqlite::params![prefix, n], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(match lease {
        Some((next, Some(anchor_seq), Some(anchor_number))) if n < next => {
            seq_by_anchor(Some((anchor_seq, anchor_number)), n)
        }
        _ => None,
    })
}

/// The seq of the invoice with this number.
pub(crate) fn seq_of_number(conn: &Connection, number: &str) -> Result<Option<u64>> {
    confirmed_or_keyed(
        conn,
        anchored_seq(conn, number)?,
        "SELECT seq FROM invoices WHERE seq = ?1 AND number = ?2",
        number,
    )
}

/// The seq of the invoice with this number or (case-insensitively) this id.
pub(crate) fn seq_of(conn: &Connection, number_or_id: &str) -> Result<Option<u64>> {
    if let Some(seq) = seq_of_number(conn, number_or_id)? {
        return Ok(Some(seq));
    }
    seq_of_id(conn, &number_or_id.to_ascii_lowercase())
}

/// The same rules over a whole chain at once, for `verify`: `invoice_keys` and the
/// leases read once, then every invoice checked in memory instead of by two to four
/// queries each. Whether an invoice's id or number leads back to it (true) gives the
/// same answer as [`seq_of_id`]/[`seq_of_number`] returning its seq, given that no other
/// invoice has the same id or number, which `verify` checks alongside.
pub(crate) struct Resolver {
    keys: std::collections::HashMap<String, u64>,
    /// (prefix, first, last, next, anchor) of every lease.
    leases: Vec<(String, u64, u64, u64, Option<(u64, u64)>)>,
}

impl Resolver {
    pub fn load(conn: &Connection, leases: &[crate::rows::LeaseRow]) -> Result<Resolver> {
        let mut stmt = conn.prepare("SELECT key, seq FROM invoice_keys")?;
        let keys = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Resolver {
            keys,
            leases: leases
                .iter()
                .map(|l| {
                    (
                        l.lease.prefix.clone(),
                        l.lease.first,
                        l.lease.last,
                        l.next,
                        l.anchor,
                    )
                })
                .collect(),
        })
    }

    fn keyed(&self, key: &str, seq: u64) -> bool {
        self.keys.get(key) == Some(&seq)
    }

    /// True when the invoice at `seq` is found by its `id`.
    pub fn id_leads_to(&self, id: &str, seq: u64) -> bool {
        seq_in_id(id) == Some(seq) || self.keyed(id, seq)
    }

    /// True when the invoice at `seq` is found by its `number`.
    pub fn number_leads_to(&self, number: &str, seq: u64) -> bool {
        let anchored = split_number(number).and_then(|(prefix, n)| {
            let (_, _, _, next, anchor) = self
                .leases
                .iter()
                .find(|(p, first, last, _, _)| p == prefix && *first <= n && n <= *last)?;
            (n < *next).then(|| seq_by_anchor(*anchor, n)).flatten()
        });
        anchored == Some(seq) || self.keyed(number, seq)
    }
}

/// Records a key (an id or a number) the derivations above would not find.
pub(crate) fn record_key(conn: &Connection, key: &str, seq: u64) -> Result<()> {
    conn.prepare_cached("INSERT INTO invoice_keys (key, seq) VALUES (?1, ?2)")?
        .execute(rusqlite::params![key, seq])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_carries_its_seq_and_stays_a_uuid_v7() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T08:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        for seq in [1u64, 255, 256, 1 << 32, (1 << SEQ_BITS) - 1] {
            let id = id_for(now, seq).unwrap();
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let text = id.hyphenated().to_string();
            assert_eq!(seq_in_id(&text), Some(seq), "{text}");
            assert!(id_carries(&text, seq));
            assert!(!id_carries(&text, seq + 1));
            let (ms, _) = id.get_timestamp().unwrap().to_unix();
            assert_eq!(ms, now.timestamp() as u64);
        }
        // Two ids for the same seq and time still differ in their random bits.
        assert_ne!(id_for(now, 7), id_for(now, 7));
        // A seq past 40 bits gets a plain v7 (recorded in invoice_keys by the caller).
        let big = id_for(now, 1 << SEQ_BITS).unwrap().hyphenated().to_string();
        assert!(!id_carries(&big, 1 << SEQ_BITS));
        assert_eq!(seq_in_id("not a uuid"), None);
        assert_eq!(seq_in_id("00000000-0000-4000-8000-000000000001"), None);
        // Upper case is not the stored form.
        let upper = id_for(now, 3)
            .unwrap()
            .hyphenated()
            .to_string()
            .to_uppercase();
        assert!(!id_carries(&upper, 3));
    }

    #[test]
    fn a_number_splits_into_prefix_and_sequence() {
        assert_eq!(
            split_number("12345678901200000042"),
            Some(("123456789012", 42))
        );
        assert_eq!(split_number("00000042"), None);
        assert_eq!(split_number("1234567890120000004x"), None);
        assert_eq!(split_number(""), None);
    }
}
