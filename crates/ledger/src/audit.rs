//! `verify` and `export`: reading the whole chain back and checking it the way an
//! independent receiver would (SPEC 4, 9). Both run inside one read transaction so they
//! see one consistent snapshot while issuance and sync go on.

use crate::rows::{self, corrupt, require_device};
use crate::{Ledger, Result};
use kaipiao_core::sign::{verify_envelope, SignatureError};
use kaipiao_core::wire::{Receipt, ReceiptProblem};
use kaipiao_core::{CreditContext, Kind, Party, PublicKey};
use rusqlite::Connection;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::io::Write;

/// Result of `verify`: Ok with the count, or the first bad seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub invoices: u64,
    pub receipts: u64,
}

impl Ledger {
    /// Recomputes every hash, signature, link and receipt signature.
    /// Err(LedgerError::Integrity { seq, .. }) names the first bad seq;
    /// Err(LedgerError::PinnedKeyUnreadable(_)) says the pinned authority key itself is damaged.
    pub fn verify(&self) -> Result<VerifyReport> {
        let tx = self.read_tx()?;
        crate::audit::verify(&tx)
    }

    /// Writes the SPEC 9 export (JSON Lines). Returns the number of invoices.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<u64> {
        let tx = self.read_tx()?;
        crate::audit::export(&tx, out)
    }
}

/// One stored invoice row with its receipt and outbox presence.
struct Row {
    seq: u64,
    id: String,
    number: String,
    kind: String,
    issued_at: String,
    buyer_name: String,
    buyer_tax_id: String,
    total: String,
    total_amount: String,
    hash: String,
    envelope: String,
    status: String,
    original_seq: Option<u64>,
    prev_seq: Option<u64>,
    receipt: Option<String>,
    receipt_status: Option<String>,
    in_outbox: bool,
}

const ROWS_SQL: &str =
    "SELECT i.seq, i.id, i.number, i.kind, i.issued_at, i.buyer_name, i.buyer_tax_id,
        i.total, i.total_amount, i.hash, i.envelope, i.status, i.original_seq,
        r.receipt, r.status, o.seq IS NOT NULL, i.prev_seq
 FROM invoices i
 LEFT JOIN receipts r ON r.seq = i.seq
 LEFT JOIN outbox o ON o.seq = i.seq
 ORDER BY i.seq";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        id: r.get(1)?,
        number: r.get(2)?,
        kind: r.get(3)?,
        issued_at: r.get(4)?,
        buyer_name: r.get(5)?,
        buyer_tax_id: r.get(6)?,
        total: r.get(7)?,
        total_amount: r.get(8)?,
        hash: r.get(9)?,
        envelope: r.get(10)?,
        status: r.get(11)?,
        original_seq: r.get(12)?,
        receipt: r.get(13)?,
        receipt_status: r.get(14)?,
        in_outbox: r.get(15)?,
        prev_seq: r.get(16)?,
    })
}

pub(crate) fn verify(conn: &Connection) -> Result<VerifyReport> {
    let dev = require_device(conn)?;
    let device_key = dev.device_key()?;
    let pinned: Option<PublicKey> = match dev.authority_public_key {
        Some(_) => Some(dev.pinned_key()?),
        None => None,
    };
    let leases = rows::leases(conn)?;
    for l in &leases {
        let ok = pinned.as_ref().is_some_and(|k| l.lease.verify(k).is_ok());
        if !ok {
            return Err(corrupt(
                0,
                format!(
                    "stored lease {} does not verify against the pinned authority key",
                    l.lease.lease_id
                ),
            ));
        }
    }
    let resolver = crate::lookup::Resolver::load(conn, &leases)?;
    let (mut ids, mut numbers) = (HashSet::new(), HashSet::new());
    let mut stmt = conn.prepare(ROWS_SQL)?;
    let mut rows_iter = stmt.query([])?;
    let mut expected_seq = 1u64;
    let mut prev_hash = kaipiao_core::ZERO_HASH.to_string();
    let mut prev_issued_at = String::new();
    let mut receipts = 0u64;
    while let Some(r) = rows_iter.next()? {
        let row = read_row(r)?;
        if row.seq != expected_seq {
            return Err(corrupt(
                expected_seq,
                format!(
                    "invoice seq {expected_seq} is missing (the chain jumps to seq {})",
                    row.seq
                ),
            ));
        }
        let seq = row.seq;
        let fail = |what: String| corrupt(seq, what);
        if row.prev_seq != seq.checked_sub(1).filter(|p| *p > 0) {
            return Err(fail(format!(
                "its prev_seq column is {:?}, not the invoice before it (edited?)",
                row.prev_seq
            )));
        }
        let env = rows::parse_envelope(seq, &row.envelope)?;
        let inv = &env.invoice;
        match verify_envelope(&device_key, &env) {
            Ok(()) => {}
            Err(SignatureError::HashMismatch) => {
                return Err(fail("hash does not match the invoice (edited?)".into()))
            }
            Err(e) => {
                return Err(fail(format!(
                    "the device signature does not verify ({e}): forged or edited"
                )))
            }
        }
        if env.hash != row.hash {
            return Err(fail(
                "the hash column differs from the signed envelope (edited?)".into(),
            ));
        }
        if inv.prev_hash != prev_hash {
            return Err(fail(format!(
                "prev_hash does not link to seq {} (chain broken)",
                seq - 1
            )));
        }
        let columns = [
            ("seq", inv.seq.to_string(), seq.to_string()),
            ("id", inv.id.clone(), row.id.clone()),
            ("number", inv.number.clone(), row.number.clone()),
            ("kind", inv.kind.as_str().to_string(), row.kind.clone()),
            ("issued_at", inv.issued_at.clone(), row.issued_at.clone()),
            ("buyer_name", inv.buyer.name.clone(), row.buyer_name.clone()),
            (
                "buyer_tax_id",
                inv.buyer.tax_id.clone(),
                row.buyer_tax_id.clone(),
            ),
            ("total", inv.total.clone(), row.total.clone()),
            (
                "total_amount",
                inv.total_amount.clone(),
                row.total_amount.clone(),
            ),
        ];
        for (name, signed, column) in columns {
            if signed != column {
                return Err(fail(format!(
                    "the {name} column ({column}) differs from the signed invoice ({signed})"
                )));
            }
        }
        if Some(&inv.device_id) != dev.device_id.as_ref() {
            return Err(fail(format!(
                "device_id {} is not this device",
                inv.device_id
            )));
        }
        if inv.seller != dev.seller {
            return Err(fail("the seller differs from the device's seller".into()));
        }
        if inv.issued_at < prev_issued_at {
            return Err(fail(format!(
                "issued_at {} goes back before seq {}",
                inv.issued_at,
                seq - 1
            )));
        }
        let in_lease = leases.iter().any(|l| {
            inv.number.len() == 20
                && inv.number.starts_with(&l.lease.prefix)
                && inv
                    .number
                    .get(12..)
                    .and_then(|tail| tail.parse::<u64>().ok())
                    .is_some_and(|n| n >= l.lease.first && n < l.next)
        });
        if !in_lease {
            return Err(fail(format!(
                "number {} lies outside the numbers taken from the stored leases",
                inv.number
            )));
        }
        // No index makes ids and numbers unique (schema 6): each must lead back to its
        // own invoice, which also proves that no other invoice has it.
        if !ids.insert(inv.id.clone()) || !resolver.id_leads_to(&inv.id, seq) {
            return Err(fail(format!(
                "its id {} does not lead back to it (another invoice has it, or its key was edited)",
                inv.id
            )));
        }
        if !numbers.insert(inv.number.clone()) || !resolver.number_leads_to(&inv.number, seq) {
            return Err(fail(format!(
                "its number {} does not lead back to it (another invoice has it, or a lease's anchor or its key was edited)",
                inv.number
            )));
        }
        check_rules(conn, seq, inv, row.original_seq)?;
        check_status(&row, pinned.as_ref(), &env.hash)?;
        if row.receipt.is_some() {
            receipts += 1;
        }
        prev_hash = env.hash.clone();
        // SPEC 10: an invoice rejected as issued_in_future is no reference for the next.
        if !rows::rejected_in_future(row.receipt.as_deref()) {
            prev_issued_at = inv.issued_at.clone();
        }
        expected_seq += 1;
    }
    check_pending_totals(conn)?;
    Ok(VerifyReport {
        invoices: expected_seq - 1,
        receipts,
    })
}

/// The running totals (schema 5) against the invoices themselves: the offline limits
/// are checked against issued - settled, so an edited total would lift them. Each
/// lease's issued amount is the sum of the invoices numbered from it; the settled totals
/// are the invoices that left pending.
fn check_pending_totals(conn: &Connection) -> Result<()> {
    let edited = |what: String| {
        corrupt(
            0,
            format!(
                "{what}: edited? the offline limits are checked against it; restore the ledger from a backup"
            ),
        )
    };
    let mut stmt = conn.prepare(
        "SELECT l.lease_id, l.issued_cents,
                (SELECT COALESCE(SUM(ABS(i.total_amount_cents)), 0) FROM invoices i
                 WHERE length(i.number) = length(l.prefix) + 8
                   AND substr(i.number, 1, length(l.prefix)) = l.prefix
                   AND CAST(substr(i.number, length(l.prefix) + 1) AS INTEGER)
                       BETWEEN l.first AND l.next - 1)
         FROM leases l ORDER BY l.position",
    )?;
    let leases = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (lease_id, kept, actual) in leases {
        if kept != actual {
            return Err(edited(format!(
                "the amount issued under lease {lease_id} ({}) differs from its invoices ({})",
                Decimal::new(kept, 2),
                Decimal::new(actual, 2)
            )));
        }
    }
    let (kept_count, kept_cents, count, cents): (Option<i64>, Option<i64>, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count FROM settled_totals WHERE id = 1),
                    (SELECT cents FROM settled_totals WHERE id = 1),
                    COUNT(*), COALESCE(SUM(ABS(total_amount_cents)), 0)
             FROM invoices WHERE status != 'pending'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
    if kept_count != Some(count) || kept_cents != Some(cents) {
        let kept = match (kept_count, kept_cents) {
            (Some(n), Some(c)) => format!("{n} invoices, {}", Decimal::new(c, 2)),
            _ => "missing".to_string(),
        };
        return Err(edited(format!(
            "the settled totals ({kept}) differ from the accepted and rejected invoices ({count} invoices, {})",
            Decimal::new(cents, 2)
        )));
    }
    Ok(())
}

/// The authority's business rules (kaipiao_core::rules): what the issuer built always
/// passes them, so a finding means the row was not built by this program.
fn check_rules(
    conn: &Connection,
    seq: u64,
    inv: &kaipiao_core::Invoice,
    original_seq: Option<u64>,
) -> Result<()> {
    let fail = |what: String| corrupt(seq, what);
    let credit = match (&inv.original, inv.kind) {
        (Some(orig), Kind::Credit) => {
            let Some((orig_seq, original, _)) = rows::invoice_by_number(conn, &orig.number)? else {
                return Err(fail(format!(
                    "credits {} which is not in this ledger",
                    orig.number
                )));
            };
            if original_seq != Some(orig_seq) || original.id != orig.id {
                return Err(fail(
                    "the original_seq column differs from the original the signed invoice names"
                        .into(),
                ));
            }
            if orig_seq >= seq {
                return Err(fail(format!(
                    "credits {} which comes later in the chain",
                    orig.number
                )));
            }
            Some(CreditContext {
                prior_credits: rows::prior_credits(conn, orig_seq, Some(seq))?,
                original,
                // The original was not rejected when the credit was issued (issue refuses
                // that); a later rejection does not make the stored credit note invalid.
                original_status: "pending".into(),
            })
        }
        _ => {
            if original_seq.is_some() {
                return Err(fail(
                    "original_seq is set on an invoice that is not a credit note".into(),
                ));
            }
            None
        }
    };
    let findings = kaipiao_core::rules::check_invoice(inv, credit.as_ref());
    if let Some(f) = findings.first() {
        return Err(fail(format!("breaks a business rule: {f}")));
    }
    Ok(())
}

/// pending iff an outbox row and no receipt; a final status iff a receipt that verifies
/// against the pinned key and matches the invoice.
fn check_status(row: &Row, pinned: Option<&PublicKey>, hash: &str) -> Result<()> {
    let fail = |what: String| corrupt(row.seq, what);
    match (row.status.as_str(), &row.receipt) {
        ("pending", None) => {
            if !row.in_outbox {
                return Err(fail(
                    "pending but missing from the outbox: it would never be submitted".into(),
                ));
            }
            Ok(())
        }
        ("pending", Some(_)) => Err(fail("pending although a receipt is stored".into())),
        ("accepted" | "rejected", None) => {
            Err(fail(format!("{} without a stored receipt", row.status)))
        }
        ("accepted" | "rejected", Some(text)) => {
            if row.in_outbox {
                return Err(fail(format!("{} but still in the outbox", row.status)));
            }
            let Some(key) = pinned else {
                return Err(fail(
                    "a receipt is stored but no authority key is pinned".into(),
                ));
            };
            let (receipt, _) = Receipt::verify_json(text, key).map_err(|p| {
                fail(match p {
                    ReceiptProblem::NotJson(_) => "the stored receipt is not JSON".into(),
                    ReceiptProblem::Signature(e) => {
                        format!("the receipt's authority signature does not verify ({e})")
                    }
                    ReceiptProblem::Shape(e) => format!("the stored receipt is malformed ({e})"),
                })
            })?;
            if receipt.invoice_id != row.id || receipt.number != row.number || receipt.hash != hash
            {
                return Err(fail(
                    "the receipt is for another invoice (id, number or hash differ)".into(),
                ));
            }
            if receipt.status != row.status
                || row.receipt_status.as_deref() != Some(row.status.as_str())
            {
                return Err(fail(format!(
                    "status {} differs from the receipt's {}",
                    row.status, receipt.status
                )));
            }
            Ok(())
        }
        (other, _) => Err(fail(format!("unknown status {other:?}"))),
    }
}

#[derive(Serialize)]
struct DeviceLine<'a> {
    device: DeviceInfo<'a>,
}

#[derive(Serialize)]
struct DeviceInfo<'a> {
    id: Option<&'a str>,
    public_key: &'a str,
    seller: &'a Party,
}

/// The stored envelope with the invoice kept as its exact bytes.
#[derive(Deserialize)]
struct StoredEnvelope<'a> {
    #[serde(borrow)]
    invoice: &'a RawValue,
    hash: String,
    signature: String,
}

#[derive(Serialize)]
struct ExportLine<'a> {
    invoice: &'a RawValue,
    hash: &'a str,
    signature: &'a str,
    status: &'a str,
    receipt: Option<&'a RawValue>,
}

/// JSON Lines needs one record per line, and readers split lines on more than LF
/// (Python's `splitlines` also on CR, NEL, U+2028 and U+2029). A raw CR or LF can only be
/// insignificant whitespace (JSON escapes them inside strings) and becomes a space; NEL,
/// U+2028 and U+2029 can only be inside strings and become their `\u` escapes. Either way
/// the JSON value, and so every hash and signature over it, stays exactly as received.
fn line_safe(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\u{85}' => out.push_str("\\u0085"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

pub(crate) fn export(conn: &Connection, out: &mut dyn Write) -> Result<u64> {
    let dev = require_device(conn)?;
    let mut w = std::io::BufWriter::new(out);
    let head = DeviceLine {
        device: DeviceInfo {
            id: dev.device_id.as_deref(),
            public_key: &dev.public_key,
            seller: &dev.seller,
        },
    };
    serde_json::to_writer(&mut w, &head).map_err(std::io::Error::from)?;
    w.write_all(b"\n")?;
    let mut stmt = conn.prepare(
        "SELECT i.seq, i.envelope, i.status, r.receipt
         FROM invoices i LEFT JOIN receipts r ON r.seq = i.seq
         ORDER BY i.seq",
    )?;
    let mut rows_iter = stmt.query([])?;
    let mut count = 0u64;
    while let Some(r) = rows_iter.next()? {
        let seq: u64 = r.get(0)?;
        let text: String = r.get(1)?;
        let status: String = r.get(2)?;
        let receipt: Option<String> = r.get(3)?;
        let env: StoredEnvelope<'_> = serde_json::from_str(&text).map_err(|e| {
            corrupt(
                seq,
                format!("the stored envelope is not a valid envelope ({e})"),
            )
        })?;
        let invoice = RawValue::from_string(line_safe(env.invoice.get()).into_owned())
            .map_err(|_| corrupt(seq, "the stored invoice is not JSON"))?;
        let receipt = receipt
            .map(|t| {
                RawValue::from_string(line_safe(&t).into_owned())
                    .map_err(|_| corrupt(seq, "the stored receipt is not JSON"))
            })
            .transpose()?;
        let line = ExportLine {
            invoice: &invoice,
            hash: &env.hash,
            signature: &env.signature,
            status: &status,
            receipt: receipt.as_deref(),
        };
        serde_json::to_writer(&mut w, &line).map_err(std::io::Error::from)?;
        w.write_all(b"\n")?;
        count += 1;
    }
    w.flush()?;
    Ok(count)
}
