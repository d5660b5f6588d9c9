//! Issuance: the one transaction that writes invoices (validate, check the limits, take
//! a number, sign, link, insert invoice and outbox row, advance the lease, commit), and the
//! preview that validates a draft the same way without issuing.

use crate::rows::{self, corrupt};
use crate::{invalid, json_error, Ledger, LedgerError, Result};
use chrono::{DateTime, Utc};
use kaipiao_core::draft::{Computed, IssueContext};
use kaipiao_core::lease::{check_limits, OfflineExposure};
use kaipiao_core::money::parse_money;
use kaipiao_core::{Code, DeviceKey, Draft, Envelope, Kind, LimitWarning};
use rusqlite::params;
use serde::Serialize;

/// What `issue` returns: the signed envelope and the limit warnings to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issued {
    pub envelope: Envelope,
    /// The exact stored JSON bytes of the envelope (what is submitted and exported).
    pub envelope_json: String,
    pub warnings: Vec<LimitWarning>,
}

/// UUID v7 from the issuance time: ids sort like the chain and say when they were made.
fn invoice_id(now: DateTime<Utc>) -> Result<String> {
    let secs = u64::try_from(now.timestamp()).map_err(|_| {
        invalid(
            Code::ClockInvalid,
            "issued_at",
            kaipiao_core::Msg::new("clock_invalid"),
        )
    })?;
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, now.timestamp_subsec_nanos());
    Ok(uuid::Uuid::new_v7(ts).hyphenated().to_string())
}

/// Integer cents of a money string, for summing pending amounts in SQL.
fn cents(amount: rust_decimal::Decimal) -> Result<i64> {
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
    /// Resolves `draft.original` for a credit note: the original and the credits already
    /// issued against it that were not rejected.
    fn credit_context(
        conn: &rusqlite::Connection,
        draft: &Draft,
        kind: Kind,
    ) -> Result<Option<kaipiao_core::CreditContext>> {
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
        let Some((_, original, status)) = rows::invoice_by_number(conn, number)? else {
            return Err(invalid(
                Code::OriginalUnknown,
                "original",
                kaipiao_core::Msg::new("original_unknown-issue").arg("number", number),
            ));
        };
        let prior_credits = rows::prior_credits(conn, &original.id, None)?;
        Ok(Some(kaipiao_core::CreditContext {
            original,
            original_status: status,
            prior_credits,
        }))
    }

    /// The one issuance transaction: validate -> limits -> take a number -> build, hash,
    /// sign, link -> insert invoice and outbox row, advance the lease -> commit.
    pub fn issue(&self, draft: &Draft, key: &DeviceKey, now: DateTime<Utc>) -> Result<Issued> {
        let tx = self.write_tx()?;
        let issuer = rows::issuer(&tx, &mut self.parsed.borrow_mut())?;
        let device_id = issuer.device_id.ok_or(LedgerError::NotEnrolled)?;
        if !key.belongs_to(&issuer.public_key) {
            return Err(LedgerError::Key(
                "this key is not the device's key (its public key differs from the ledger's)"
                    .into(),
            ));
        }
        let kind = draft.kind()?;
        let credit = Self::credit_context(&tx, draft, kind)?;
        let state = rows::chain_state(&tx)?;
        kaipiao_core::draft::check_clock(state.head.as_ref().map(|(_, _, at)| at.as_str()), now)?;
        let (seq, prev_hash) = match &state.head {
            Some((seq, hash, _)) => (seq + 1, hash.clone()),
            None => (1, kaipiao_core::ZERO_HASH.to_string()),
        };
        let ctx = IssueContext {
            id: invoice_id(now)?,
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
            seller: issuer.seller,
        };
        let invoice = kaipiao_core::build_invoice(draft, &ctx, credit.as_ref())?;
        let Some((lease, terms)) = issuer.lease else {
            return Err(LedgerError::NoNumbers);
        };
        let total_amount = parse_money(&invoice.total_amount)
            .ok_or_else(|| corrupt(seq, "the computed total is not money"))?;
        let amount_cents = cents(total_amount)?;
        let warnings = check_limits(&terms, &state.exposure, total_amount, now)?;

        let envelope = kaipiao_core::sign::seal_invoice(key, invoice);
        let envelope_json = serde_json::to_string(&envelope).map_err(json_error)?;
        let inv = &envelope.invoice;
        let original_id = inv.original.as_ref().map(|o| o.id.as_str());
        tx.prepare_cached(
            "INSERT INTO invoices (seq, id, number, kind, issued_at, buyer_name, buyer_tax_id, total,
                                   total_amount, total_amount_cents, hash, envelope, status, original_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending', ?13)",
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
            original_id,
        ])?;
        tx.prepare_cached("INSERT INTO outbox (seq) VALUES (?1)")?
            .execute([inv.seq])?;
        if let Some(outage) = state.outage {
            Self::mark_in_outage(&tx, inv.seq, outage)?;
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
        tx.commit()?;
        Ok(Issued {
            envelope,
            envelope_json,
            warnings,
        })
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
        let invoice = kaipiao_core::build_invoice(draft, &ctx, credit.as_ref())?;
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
