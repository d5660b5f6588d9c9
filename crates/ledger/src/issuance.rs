//! Issuance: the one transaction that writes invoices (validate, check the limits, take
//! a number, sign, link, insert invoice and outbox row, advance the lease, commit), and the
//! preview that validates a draft the same way without issuing.

use crate::lookup;
use crate::rows::{self, corrupt};
use crate::{invalid, json_error, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::draft::{Computed, IssueContext};
use kaipiao_core::lease::{check_limits, OfflineExposure};
use kaipiao_core::money::parse_money;
use kaipiao_core::time::parse_rfc3339;
use kaipiao_core::wire::MAX_INVOICE_BODY;
use kaipiao_core::{Code, DeviceKey, Draft, Envelope, Invoice, Kind, LimitWarning};
use rusqlite::params;
use serde::Serialize;

/// One draft of a group issued by [`Ledger::issue_group`], with its import serial.
#[derive(Debug, Clone, Copy)]
pub struct GroupItem<'a> {
    pub serial: &'a str,
    /// What "the same content" means for this serial on a re-import.
    pub digest: &'a str,
    pub draft: &'a Draft,
}

/// What became of one draft of a group.
#[derive(Debug)]
pub enum GroupOutcome {
    Issued(Box<Issued>),
    /// The serial was issued before with the same content, as `number`.
    Skipped {
        number: String,
    },
    /// The serial was issued before as `number`, with other content.
    Conflict {
        number: String,
    },
    /// The draft was refused; nothing of it was written.
    Refused(LedgerError),
}

/// Forgets the issuing state remembered inside a group's transaction when the group ends
/// without its commit.
struct ForgetUnlessCommitted<'a> {
    parsed: &'a std::cell::RefCell<rows::Parsed>,
    committed: bool,
}

impl Drop for ForgetUnlessCommitted<'_> {
    fn drop(&mut self) {
        if !self.committed {
            if let Ok(mut p) = self.parsed.try_borrow_mut() {
                p.forget_issue();
            }
        }
    }
}

/// The number and digest of the invoice issued under `serial`.
fn serial_issued(conn: &rusqlite::Connection, serial: &str) -> Result<Option<(String, String)>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached(
            "SELECT i.number, s.digest FROM import_serials s JOIN invoices i ON i.seq = s.seq
             WHERE s.serial = ?1",
        )?
        .query_row([serial], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// What `issue` returns: the signed envelope and the limit warnings to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issued {
    pub envelope: Envelope,
    /// The exact stored JSON bytes of the envelope (what is submitted and exported).
    pub envelope_json: String,
    pub warnings: Vec<LimitWarning>,
}

/// Refuses an invoice whose signed envelope (`len` bytes, exactly what is submitted) the
/// authority would refuse as 413 `payload_too_large` on every attempt: issued, it would
/// block the chain behind it for good, since submission goes in seq order.
fn check_wire_size(len: usize) -> Result<()> {
    if len > MAX_INVOICE_BODY {
        return Err(invalid(
            Code::PayloadTooLarge,
            "lines",
            kaipiao_core::Msg::new("payload_too_large-invoice")
                .arg("size", len)
                .arg("limit", MAX_INVOICE_BODY),
        ));
    }
    Ok(())
}

/// Integer cents of a money string, for summing pending amounts in SQL.
pub(crate) fn cents(amount: rust_decimal::Decimal) -> Result<i64> {
    let mut a = amount;
    a.rescale(2);
    i64::try_from(a.mantissa()).map_err(|_| {
        invalid(
            Code::OutOfRange,
            "lines",
            kaipiao_core::Msg::new("out_of_range-record"),
        )
    })
}

impl Ledger {
    /// Resolves `draft.original` for a credit note: the original's seq, and the original
    /// with the credits already issued against it that were not rejected.
    fn credit_context(
        conn: &rusqlite::Connection,
        draft: &Draft,
        kind: Kind,
    ) -> Result<Option<(u64, kaipiao_core::CreditContext)>> {
        if kind != Kind::Credit {
            return Ok(None);
        }
        // A missing number is reported by build_invoice / compute_lines, naming `original`.
        let Some(number) = draft
            .original
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        else {
            return Ok(None);
        };
        let Some((original_seq, original, status)) = rows::invoice_by_number(conn, number)? else {
            return Err(invalid(
                Code::OriginalUnknown,
                "original",
                kaipiao_core::Msg::new("original_unknown-issue").arg("number", number),
            ));
        };
        let prior_credits = rows::prior_credits(conn, original_seq, None)?;
        Ok(Some((
            original_seq,
            kaipiao_core::CreditContext {
                original,
                original_status: status,
                prior_credits,
            },
        )))
    }

    /// The one issuance transaction: validate -> limits -> take a number -> build, hash,
    /// sign, link -> insert invoice and outbox row, advance the lease -> commit.
    pub fn issue(&self, draft: &Draft, key: &DeviceKey, now: DateTime<Utc>) -> Result<Issued> {
        self.issue_with_clock(draft, key, || now)
    }

    /// [`Ledger::issue`] at the time `clock` reads once the write lock is held: a process
    /// that waited for another's issuance never dates its invoice before that one (the
    /// chain's `issued_at` never goes back, SPEC 2), which a time read before the wait
    /// could. The CLI and the app issue this way, with the system clock.
    pub fn issue_with_clock(
        &self,
        draft: &Draft,
        key: &DeviceKey,
        clock: impl FnOnce() -> DateTime<Utc>,
    ) -> Result<Issued> {
        let tx = self.write_tx()?;
        let issued = self.issue_in(&tx, draft, key, clock())?;
        self.commit_issued(tx)?;
        Ok(issued)
    }

    /// Commits a transaction that issued; when the commit fails, what the issuances in it
    /// left for the next one to start from is forgotten with them.
    fn commit_issued(&self, tx: rusqlite::Transaction<'_>) -> Result<()> {
        tx.commit().map_err(|e| {
            self.parsed.borrow_mut().forget_issue();
            LedgerError::from(e)
        })
    }

    /// Issues a group of drafts from a workbook (`import --xlsx`) in one IMMEDIATE
    /// transaction, each through the same issuance as [`Ledger::issue`], each with its
    /// import serial: one durable commit for the group instead of one per invoice.
    ///
    /// A serial already issued is not issued again: with the same `digest` it is
    /// [`GroupOutcome::Skipped`] with its number, with another one
    /// [`GroupOutcome::Conflict`]. A draft refused (a bad field, a limit, no numbers
    /// left) is [`GroupOutcome::Refused`] and the others go on, since a refusal writes
    /// nothing. Anything else (storage, a damaged ledger) rolls the whole group back: the
    /// serials are written with their invoices, so a re-import issues exactly what the
    /// group would have. The group's time is `clock` read once the write lock is held.
    /// `before_commit` runs with the group issued and not yet durable.
    pub fn issue_group(
        &self,
        items: &[GroupItem<'_>],
        key: &DeviceKey,
        clock: impl FnOnce() -> DateTime<Utc>,
        before_commit: impl FnOnce(),
    ) -> Result<Vec<GroupOutcome>> {
        let tx = self.write_tx()?;
        // Read with the write lock held, as in `issue_with_clock`.
        let now = clock();
        // Until the group commits, what its issuances remember may be rolled back with it:
        // forgotten on any way out (an error, a panic) but the commit.
        let mut guard = ForgetUnlessCommitted {
            parsed: &self.parsed,
            committed: false,
        };
        let mut outcomes = Vec::with_capacity(items.len());
        let run =
            (|| {
                for item in items {
                    if let Some((number, digest)) = serial_issued(&tx, item.serial)? {
                        outcomes.push(if digest == item.digest {
                            GroupOutcome::Skipped { number }
                        } else {
                            GroupOutcome::Conflict { number }
                        });
                        continue;
                    }
                    match self.issue_in(&tx, item.draft, key, now) {
                        Ok(issued) => {
                            tx.prepare_cached(
                            "INSERT INTO import_serials (serial, digest, seq) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![item.serial, item.digest, issued.envelope.invoice.seq])?;
                            // The serial's row is no issuing state: the next draft of the
                            // group starts from what this issuance left, read from nothing.
                            self.parsed.borrow_mut().restamp(&tx);
                            outcomes.push(GroupOutcome::Issued(Box::new(issued)));
                        }
                        Err(e @ (LedgerError::Invalid(_) | LedgerError::NoNumbers)) => {
                            outcomes.push(GroupOutcome::Refused(e));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            })();
        run?;
        before_commit();
        self.commit_issued(tx)?;
        guard.committed = true;
        Ok(outcomes)
    }

    /// The number and content digest of the invoice issued under an import serial.
    pub fn import_serial(&self, serial: &str) -> Result<Option<(String, String)>> {
        let tx = self.read_tx()?;
        serial_issued(&tx, serial)
    }

    /// Issuance inside `tx`, which the caller commits: validate -> limits -> take a
    /// number -> build, hash, sign, link -> insert invoice and outbox row, advance the
    /// lease. What it leaves is remembered for the next issuance on this connection.
    fn issue_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        draft: &Draft,
        key: &DeviceKey,
        now: DateTime<Utc>,
    ) -> Result<Issued> {
        let (stamp, issuer, state) = rows::issuing_state(tx, &mut self.parsed.borrow_mut())?;
        let device_id = issuer.device_id.clone().ok_or(LedgerError::NotEnrolled)?;
        if !key.belongs_to(&issuer.public_key) {
            return Err(LedgerError::Key(
                "this key is not the device's key (its public key differs from the ledger's)"
                    .into(),
            ));
        }
        let kind = draft.kind()?;
        let credit = Self::credit_context(tx, draft, kind)?;
        kaipiao_core::draft::check_clock_ahead(
            issuer.clock_offset,
            issuer.clock_offset_at.as_deref(),
            now,
        )?;
        let measured_at = issuer.clock_offset_at.as_deref().and_then(parse_rfc3339);
        if measured_at.is_some_and(|m| now < m) {
            // The clock was set back since the authority measured it: taken as corrected,
            // the measurement no longer holds issuance back (the next signed request
            // measures again), also once the clock passes that time again.
            tx.prepare_cached("UPDATE device SET clock_offset_at = NULL WHERE id = 1")?
                .execute([])?;
        }
        if let Some((head_seq, _, head_at)) = &state.head {
            // A head rejected as issued_in_future does not hold the clock back (SPEC 10):
            // only when the head is ahead of the clock is the reference looked for.
            if kaipiao_core::draft::check_clock(Some(head_at.as_str()), now).is_err() {
                let reference = rows::clock_reference(tx, *head_seq)?;
                kaipiao_core::draft::check_clock(reference.as_deref(), now)?;
            }
        }
        let (seq, prev_hash) = match &state.head {
            Some((seq, hash, _)) => (seq + 1, hash.clone()),
            None => (1, kaipiao_core::ZERO_HASH.to_string()),
        };
        let id = lookup::id_for(now, seq).ok_or_else(|| {
            invalid(
                Code::ClockInvalid,
                "issued_at",
                kaipiao_core::Msg::new("clock_invalid"),
            )
        })?;
        let ctx = IssueContext {
            id: id.hyphenated().to_string(),
            device_id,
            seq,
            prev_hash,
            // Without a lease the draft is still validated first, so the clerk fixes the
            // draft and gets numbers in one trip instead of two.
            number: issuer
                .lease
                .as_ref()
                .map(|(l, _)| kaipiao_core::model::invoice_number(&l.lease.prefix, l.next))
                .unwrap_or_default(),
            issued_at: now,
            seller: issuer.seller.clone(),
        };
        let invoice = kaipiao_core::build_invoice(draft, &ctx, credit.as_ref().map(|(_, c)| c))?;
        let Some((lease, terms)) = issuer.lease.clone() else {
            return Err(LedgerError::NoNumbers);
        };
        let total_amount = parse_money(&invoice.total_amount)
            .ok_or_else(|| corrupt(seq, "the computed total is not money"))?;
        let amount_cents = cents(total_amount)?;
        let warnings = check_limits(&terms, &state.exposure, total_amount, now)?;

        let envelope = kaipiao_core::sign::seal_invoice(key, invoice);
        let envelope_json = serde_json::to_string(&envelope).map_err(json_error)?;
        check_wire_size(envelope_json.len())?;
        let inv = &envelope.invoice;
        let original_seq = credit.as_ref().map(|(seq, _)| *seq);
        enter_invoice(
            tx,
            &envelope,
            &envelope_json,
            amount_cents,
            original_seq,
            state.head.as_ref().map(|(head, _, _)| *head),
            &lease,
            lease.next,
        )?;
        if let Some(outage) = state.outage {
            Self::mark_in_outage(tx, inv.seq, outage)?;
        }
        // The number taken and the amount issued under the lease, in the one row (and
        // page) that every issuance updates anyway (schema 5).
        let advanced = tx
            .prepare_cached(
                "UPDATE leases SET next = next + 1, issued_cents = issued_cents + ?3
                 WHERE lease_id = ?1 AND next = ?2",
            )?
            .execute(params![
                lease.lease.lease_id,
                lease.next,
                amount_cents.saturating_abs()
            ])?;
        if advanced != 1 {
            return Err(corrupt(
                seq,
                format!("lease {} moved during issuance", lease.lease.lease_id),
            ));
        }
        self.remember_issue(stamp, issuer, state, lease, &envelope, amount_cents);
        Ok(Issued {
            envelope,
            envelope_json,
            warnings,
        })
    }

    /// Keeps what the issuance of `envelope` from `lease` just committed (the chain head,
    /// the lease's next number and anchor, the pending count and amount) as the state the
    /// next issuance starts from, if nothing is written in between (`rows::issuing_state`).
    /// A lease used up is not carried over: the next issuance reads which lease follows.
    fn remember_issue(
        &self,
        stamp: rows::Stamp,
        issuer: rows::Issuer,
        state: rows::ChainState,
        lease: rows::LeaseRow,
        envelope: &Envelope,
        amount_cents: i64,
    ) {
        let (Some((_, terms)), Some(next)) = (issuer.lease.as_ref(), lease.next.checked_add(1))
        else {
            return;
        };
        if next > lease.lease.last {
            return;
        }
        let inv = &envelope.invoice;
        let terms = *terms;
        let issuer = rows::Issuer {
            lease: Some((
                rows::LeaseRow {
                    next,
                    anchor: lease.anchor.or(Some((inv.seq, lease.next))),
                    lease: lease.lease,
                },
                terms,
            )),
            ..issuer
        };
        let state = rows::ChainState {
            head: Some((inv.seq, envelope.hash.clone(), inv.issued_at.clone())),
            exposure: OfflineExposure {
                oldest_pending_at: state
                    .exposure
                    .oldest_pending_at
                    .or_else(|| kaipiao_core::time::parse_rfc3339(&inv.issued_at)),
                pending_amount: state.exposure.pending_amount
                    + rust_decimal::Decimal::new(amount_cents.saturating_abs(), 2),
            },
            pending: state.pending + 1,
            oldest_pending: state.oldest_pending.or_else(|| Some(inv.issued_at.clone())),
            outage: state.outage,
        };
        self.parsed
            .borrow_mut()
            .remember(&self.conn, stamp, issuer, state);
    }

    /// Lines, totals and capitals for a draft, without issuing (no key needed).
    /// Runs the same validation as `issue` (credit notes against the stored original) and
    /// refuses what the current lease's single-invoice or amount cap would certainly refuse.
    pub fn preview(&self, draft: &Draft) -> Result<Computed> {
        let tx = self.read_tx()?;
        let seller = rows::load_device(&tx)?
            .map(|d| d.seller)
            .unwrap_or_default();
        let kind = draft.kind()?;
        let credit = Self::credit_context(&tx, draft, kind)?;
        let ctx = IssueContext {
            id: String::new(),
            device_id: String::new(),
            seq: 0,
            prev_hash: kaipiao_core::ZERO_HASH.to_string(),
            number: String::new(),
            issued_at: DateTime::<Utc>::UNIX_EPOCH,
            seller,
        };
        let invoice = kaipiao_core::build_invoice(draft, &ctx, credit.as_ref().map(|(_, c)| c))?;
        // The envelope as issuance will size it: the real id, number, time, hash and
        // signature have fixed lengths, so placeholders of those lengths give the same size
        // within a few bytes (the seq's digits).
        let sized = Envelope {
            invoice: Invoice {
                id: "0".repeat(36),
                device_id: "0".repeat(36),
                number: "0".repeat(20),
                seq: u64::from(u32::MAX),
                issued_at: kaipiao_core::time::rfc3339(DateTime::<Utc>::UNIX_EPOCH),
                ..invoice
            },
            hash: kaipiao_core::ZERO_HASH.to_string(),
            signature: "0".repeat(88),
        };
        check_wire_size(serde_json::to_string(&sized).map_err(json_error)?.len())?;
        // Only its lines and totals are used from here on.
        let invoice = sized.invoice;
        if let Some(lease) = rows::lease_in_force(&tx)? {
            let terms = lease.lease.terms()?;
            let total = parse_money(&invoice.total_amount).unwrap_or_default();
            let (exposure, _, _) = rows::exposure(&tx)?;
            // The window depends on the issuing time, which a preview does not have.
            let no_window = OfflineExposure {
                oldest_pending_at: None,
                ..exposure
            };
            check_limits(&terms, &no_window, total, DateTime::<Utc>::UNIX_EPOCH)?;
        }
        Ok(Computed {
            lines: invoice.lines,
            total_amount: invoice.total_amount,
            total_tax: invoice.total_tax,
            total: invoice.total,
        })
    }
}

/// Writes an invoice as issued (pending, with its outbox row) and what finds it again
/// without an index: its id's key when the id does not carry its seq, the anchor of
/// `lease` (the first number taken from it) or the number's key when number `n` does not
/// follow the anchor. Issuance and a restore's adoption of the authority's copy
/// (`restore.rs`) both enter invoices this way; the lease's `next` is the caller's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn enter_invoice(
    tx: &rusqlite::Transaction<'_>,
    envelope: &Envelope,
    envelope_json: &str,
    amount_cents: i64,
    original_seq: Option<u64>,
    prev_seq: Option<u64>,
    lease: &rows::LeaseRow,
    n: u64,
) -> Result<()> {
    let inv = &envelope.invoice;
    let seq = inv.seq;
    tx.prepare_cached(
        "INSERT INTO invoices (seq, id, number, kind, issued_at, buyer_name, buyer_tax_id, total,
                               total_amount, total_amount_cents, hash, envelope, status, original_seq,
                               prev_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending', ?13, ?14)",
    )?
    .execute(params![
        inv.seq,
        inv.id,
        inv.number,
        inv.kind.as_str(),
        inv.issued_at,
        inv.buyer.name,
        inv.buyer.tax_id,
        inv.total,
        inv.total_amount,
        amount_cents,
        envelope.hash,
        envelope_json,
        original_seq,
        prev_seq,
    ])?;
    tx.prepare_cached("INSERT INTO outbox (seq) VALUES (?1)")?
        .execute([seq])?;
    // No index finds the invoice by id or number (schema 6, `lookup.rs`): the id carries
    // the seq, and the number follows the lease's anchor. Only what cannot be derived
    // that way is recorded (never, while leases are used one after the other).
    if !lookup::id_carries(&inv.id, seq) {
        lookup::record_key(tx, &inv.id, seq)?;
    }
    match lease.anchor {
        // The first number taken from a lease anchors it (once per lease).
        None => {
            tx.prepare_cached(
                "UPDATE leases SET anchor_seq = ?2, anchor_number = ?3 WHERE lease_id = ?1",
            )?
            .execute(params![lease.lease.lease_id, seq, n])?;
        }
        Some(_) if lookup::seq_by_anchor(lease.anchor, n) != Some(seq) => {
            lookup::record_key(tx, &inv.number, seq)?;
        }
        Some(_) => {}
    }
    Ok(())
}
