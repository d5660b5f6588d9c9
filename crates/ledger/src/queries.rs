//! Reading the ledger for the clerk: the status summary, the chain head, the invoice
//! list (and its index for a virtualized view) and one invoice with its history. Nothing
//! here writes.

use crate::outbox::millis_string;
use crate::rows::{self, corrupt};
use crate::{invalid, Alert, Ledger, LedgerError, OutboxItem, Result, Status};
use chrono::{DateTime, Utc};
use kaipiao_core::lease::{check_limits, headroom};
use kaipiao_core::money::money_string;
use kaipiao_core::time::rfc3339;
use kaipiao_core::wire::Head;
use kaipiao_core::{Code, Envelope, LimitWarning};
use rusqlite::OptionalExtension;
use serde::Serialize;

/// `kaipiao status` (SPEC 9), plus what a status bar shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerStatus {
    pub device_id: Option<String>,
    pub pending: u64,
    pub oldest_pending_at: Option<String>,
    /// Hours left in the offline window (2 decimals as a string, e.g. "71.50"); None without a lease.
    pub offline_hours_left: Option<String>,
    /// Money string; None without a lease.
    pub offline_amount_left: Option<String>,
    pub numbers_left: u64,
    pub head: Head,
    pub last_sync_at: Option<String>,
    /// Warnings at 75% / 90% of a limit.
    pub warnings: Vec<LimitWarning>,
    /// Set when the queue was stopped (integrity / key reuse) — needs a human.
    pub queue_stopped: Option<String>,
    pub alerts: Vec<Alert>,
    /// The lease whose terms the limits above are measured against: the first with
    /// numbers left, else the last stored; None before enrolment.
    pub lease_in_force: Option<kaipiao_core::Lease>,
}

/// A row of `kaipiao list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceSummary {
    pub seq: u64,
    pub number: String,
    pub id: String,
    pub kind: String,
    pub issued_at: String,
    pub buyer_name: String,
    pub buyer_tax_id: String,
    pub total: String,
    pub status: Status,
}

/// One invoice as [`Ledger::filtered_invoices`] reads it.
#[derive(Debug, Clone)]
pub struct FilteredInvoice {
    pub seq: u64,
    pub status: Status,
    pub envelope: Envelope,
    /// The authority code of its receipt (accepted invoices).
    pub authority_code: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    /// Case-insensitive substring of number or buyer name / tax ID.
    pub search: Option<String>,
    /// RFC 3339 bounds on issued_at, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// Case-insensitive substring of the buyer name or tax ID (not the number).
    pub buyer: Option<String>,
    /// Newest (highest seq) first instead of oldest first; limit and offset count from
    /// that end.
    pub newest_first: bool,
}

/// One entry of an invoice's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusEvent {
    pub at: String,
    pub status: String,
    pub detail: String,
}

/// Everything about one invoice (`kaipiao show`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvoiceRecord {
    pub envelope: Envelope,
    pub status: Status,
    /// The receipt exactly as received (parsed), None while pending.
    pub receipt: Option<serde_json::Value>,
    /// The same receipt's stored text, byte for byte (embedded in the invoice's PDF).
    #[serde(skip)]
    pub receipt_text: Option<String>,
    pub history: Vec<StatusEvent>,
    pub outbox: Option<OutboxItem>,
    /// The id of the outage the invoice was issued during (see [`Outage`](crate::Outage)), if any.
    pub issued_during_outage: Option<i64>,
}

/// Parses a list bound: RFC 3339, or a date: the whole day in China time (UTC+8), the
/// shop's day, so that an invoice issued at 07:00 in Beijing is on that day, not on the
/// UTC day before.
fn list_bound(field: &str, text: &str, end_of_day: bool) -> Result<String> {
    let t = text.trim();
    if let Some(ts) = kaipiao_core::time::parse_rfc3339(t) {
        return Ok(rfc3339(ts));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let time = if end_of_day {
            chrono::NaiveTime::from_hms_opt(23, 59, 59)
        } else {
            chrono::NaiveTime::from_hms_opt(0, 0, 0)
        };
        if let Some(bound) = time.and_then(|time| china_utc(d.and_time(time))) {
            return Ok(bound);
        }
    }
    Err(invalid(
        Code::InvalidDate,
        field,
        kaipiao_core::Msg::new("invalid_date").arg("value", format!("{t:?}")),
    ))
}

/// A row of `SELECT seq, number, id, kind, issued_at, buyer_name, buyer_tax_id, total,
/// status`, the status still as text.
fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(InvoiceSummary, String)> {
    Ok((
        InvoiceSummary {
            seq: r.get(0)?,
            number: r.get(1)?,
            id: r.get(2)?,
            kind: r.get(3)?,
            issued_at: r.get(4)?,
            buyer_name: r.get(5)?,
            buyer_tax_id: r.get(6)?,
            total: r.get(7)?,
            status: Status::Pending,
        },
        r.get(8)?,
    ))
}

fn with_status((mut s, status): (InvoiceSummary, String)) -> Result<InvoiceSummary> {
    s.status = Status::parse(&status)
        .ok_or_else(|| corrupt(s.seq, format!("unknown status {status:?}")))?;
    Ok(s)
}

/// A text condition that was given: trimmed, None when empty.
fn given(t: &Option<String>) -> Option<String> {
    t.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whether `filter` has no condition besides its status.
fn status_only(filter: &ListFilter) -> bool {
    given(&filter.search).is_none()
        && given(&filter.buyer).is_none()
        && filter.from.is_none()
        && filter.to.is_none()
}

/// `select` with the WHERE clause of `filter` (no order, limit or offset) and its arguments.
fn list_query(select: &str, filter: &ListFilter) -> Result<(String, Vec<rusqlite::types::Value>)> {
    let mut sql = format!("{select} WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let like = |text: &str| {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    };
    let text = given;
    // Written out, not bound: SQLite uses the partial index `invoices_rejected` only for
    // a literal it can match, and the pending invoices are the outbox rows (schema 5).
    // Accepted has no index (most invoices are): alone it is counted by `list_seqs`
    // without reading the rows; with other conditions the rows are read anyway.
    match filter.status {
        Some(Status::Pending) => sql.push_str(" AND seq IN (SELECT seq FROM outbox)"),
        Some(Status::Rejected) => sql.push_str(" AND status = 'rejected'"),
        Some(Status::Accepted) => sql.push_str(" AND status = 'accepted'"),
        None => {}
    }
    if let Some(search) = text(&filter.search) {
        args.push(like(&search).into());
        let n = args.len();
        sql.push_str(&format!(
            " AND (number LIKE ?{n} ESCAPE '\\' OR buyer_name LIKE ?{n} ESCAPE '\\' OR buyer_tax_id LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some(buyer) = text(&filter.buyer) {
        args.push(like(&buyer).into());
        let n = args.len();
        sql.push_str(&format!(
            " AND (buyer_name LIKE ?{n} ESCAPE '\\' OR buyer_tax_id LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some(from) = &filter.from {
        args.push(list_bound("from", from, false)?.into());
        sql.push_str(&format!(" AND issued_at >= ?{}", args.len()));
    }
    if let Some(to) = &filter.to {
        args.push(list_bound("to", to, true)?.into());
        sql.push_str(&format!(" AND issued_at <= ?{}", args.len()));
    }
    Ok((sql, args))
}

impl Ledger {
    pub fn status(&self, now: DateTime<Utc>) -> Result<LedgerStatus> {
        let tx = self.read_tx()?;
        let dev = rows::require_device(&tx)?;
        let (exposure, pending, oldest) = rows::exposure(&tx)?;
        let leases = rows::leases(&tx)?;
        let numbers_left = leases
            .iter()
            .map(|l| l.numbers_left())
            .fold(0u64, u64::saturating_add);
        // The rule issuance uses for the lease whose terms apply, over the leases read.
        let in_force = rows::in_force(&leases);
        let (mut hours_left, mut amount_left, mut warnings) = (None, None, Vec::new());
        if let Some(lease) = in_force {
            let terms = lease.lease.terms()?;
            let room = headroom(&terms, &exposure, now);
            hours_left = Some(money_string(room.hours_left));
            amount_left = Some(money_string(room.amount_left));
            warnings = match check_limits(&terms, &exposure, rust_decimal::Decimal::ZERO, now) {
                Ok(w) => w,
                // Used up: shown as a 100% warning, since nothing more can be issued offline.
                Err(e) => vec![LimitWarning {
                    limit: if e.code == Code::OfflineHoursExceeded {
                        "offline_hours"
                    } else {
                        "offline_amount"
                    },
                    threshold: 100,
                    en: e.text(kaipiao_core::Lang::En),
                    zh: e.text(kaipiao_core::Lang::Zh),
                }],
            };
        }
        let head = Self::head_in(&tx)?;
        let alerts = Self::alerts_in(&tx)?;
        Ok(LedgerStatus {
            device_id: dev.device_id,
            pending,
            oldest_pending_at: oldest,
            offline_hours_left: hours_left,
            offline_amount_left: amount_left,
            numbers_left,
            head,
            last_sync_at: dev.last_sync_at,
            warnings,
            queue_stopped: dev.queue_stopped,
            alerts,
            lease_in_force: in_force.map(|l| l.lease.clone()),
        })
    }

    /// The stored envelope bytes of the invoice at `seq` (any status), for resubmitting
    /// to an authority whose head is behind ours (chain_gap / restored backup).
    /// Returns `(invoice_id, envelope_json)`.
    pub fn envelope_at(&self, seq: u64) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, envelope FROM invoices WHERE seq = ?1")?
            .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    pub(crate) fn head_in(conn: &rusqlite::Connection) -> Result<Head> {
        Ok(match rows::last_invoice(conn)? {
            Some((seq, hash, _)) => Head { seq, hash },
            None => Head {
                seq: 0,
                hash: kaipiao_core::ZERO_HASH.to_string(),
            },
        })
    }

    pub fn head(&self) -> Result<Head> {
        Self::head_in(&self.conn)
    }

    /// The invoices `filter` selects (status, dates; in chain order), whole, each with its
    /// status and the authority code of its receipt: what the accountant's export writes.
    pub fn filtered_invoices(&self, filter: &ListFilter) -> Result<Vec<FilteredInvoice>> {
        let (mut sql, args) = list_query("SELECT seq, envelope, status FROM invoices", filter)?;
        sql.push_str(" ORDER BY seq");
        let tx = self.read_tx()?;
        let found: Vec<(u64, String, String)> = tx
            .prepare(&sql)?
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(found.len());
        for (seq, text, status) in found {
            let envelope = rows::parse_envelope(seq, &text)?;
            let receipt: Option<String> = tx
                .prepare_cached("SELECT receipt FROM receipts WHERE seq = ?1")?
                .query_row([seq], |r| r.get(0))
                .optional()?;
            let authority_code = receipt
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("authority_code")?.as_str().map(str::to_string));
            out.push(FilteredInvoice {
                seq,
                status: Status::parse(&status)
                    .ok_or_else(|| corrupt(seq, format!("status {status:?} is not one")))?,
                envelope,
                authority_code,
            });
        }
        Ok(out)
    }

    pub fn list(&self, filter: &ListFilter) -> Result<Vec<InvoiceSummary>> {
        let (mut sql, mut args) = list_query(
            "SELECT seq, number, id, kind, issued_at, buyer_name, buyer_tax_id, total, status FROM invoices",
            filter,
        )?;
        sql.push_str(if filter.newest_first {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq"
        });
        let limit = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = filter
            .offset
            .map_or(0, |o| i64::try_from(o).unwrap_or(i64::MAX));
        args.push(limit.into());
        sql.push_str(&format!(" LIMIT ?{}", args.len()));
        args.push(offset.into());
        sql.push_str(&format!(" OFFSET ?{}", args.len()));
        let mut stmt = self.conn.prepare(&sql)?;
        let raw = stmt
            .query_map(rusqlite::params_from_iter(args), summary_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raw.into_iter().map(with_status).collect()
    }

    /// The seqs of what `list` returns for `filter`, in the same order and window, read
    /// without the rows: the index of a virtualized list (8 bytes an invoice), whose pages
    /// [`Ledger::summaries`] then reads by seq.
    pub fn list_seqs(&self, filter: &ListFilter) -> Result<Vec<u64>> {
        // The chain has no gap (the `seq_follows_head` constraint, checked by `verify`), so
        // every seq is 1 to the head's: no row is read for it. (The table's rows carry the
        // whole envelope, and since schema 6 no narrow index on `invoices` holds every seq:
        // scanning the table for them took 120 ms at 100,000 invoices.)
        let every_seq = |conn: &rusqlite::Connection| -> Result<Vec<u64>> {
            let head: Option<u64> = conn
                .prepare_cached("SELECT MAX(seq) FROM invoices")?
                .query_row([], |r| r.get(0))?;
            Ok((1..=head.unwrap_or(0)).collect())
        };
        let mut seqs = if filter.status.is_none() && status_only(filter) {
            every_seq(&self.conn)?
        } else if filter.status == Some(Status::Accepted) && status_only(filter) {
            // Every seq less the pending (the outbox) and the rejected (their partial
            // index): the accepted without reading a row.
            let tx = self.read_tx()?;
            let seqs_of = |sql: &str| -> Result<Vec<u64>> {
                Ok(tx
                    .prepare_cached(sql)?
                    .query_map([], |r| r.get::<_, u64>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?)
            };
            let mut not_accepted = seqs_of("SELECT seq FROM outbox")?;
            not_accepted.extend(seqs_of(
                "SELECT seq FROM invoices WHERE status = 'rejected'",
            )?);
            not_accepted.sort_unstable();
            let mut all = every_seq(&tx)?;
            // Both sorted: one pass drops the pending and the rejected.
            let mut skip = not_accepted.into_iter().peekable();
            all.retain(|seq| {
                while skip.next_if(|s| s < seq).is_some() {}
                skip.next_if_eq(seq).is_none()
            });
            all
        } else {
            let (sql, args) = list_query("SELECT seq FROM invoices", filter)?;
            self.conn
                .prepare(&sql)?
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, u64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        seqs.sort_unstable();
        if filter.newest_first {
            seqs.reverse();
        }
        let offset = usize::try_from(filter.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = filter
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(seqs.into_iter().skip(offset).take(limit).collect())
    }

    /// The list rows of `seqs`, in the order given; a seq the ledger does not hold is
    /// skipped.
    pub fn summaries(&self, seqs: &[u64]) -> Result<Vec<InvoiceSummary>> {
        let tx = self.read_tx()?;
        let mut stmt = tx.prepare_cached(
            "SELECT seq, number, id, kind, issued_at, buyer_name, buyer_tax_id, total, status FROM invoices WHERE seq = ?1",
        )?;
        let mut rows = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(raw) = stmt.query_row([seq], summary_row).optional()? {
                rows.push(with_status(raw)?);
            }
        }
        Ok(rows)
    }

    /// By 20-digit number or invoice id.
    pub fn show(&self, number_or_id: &str) -> Result<InvoiceRecord> {
        let key = number_or_id.trim();
        let tx = self.read_tx()?;
        let row: Option<(u64, String, String, String)> = match crate::lookup::seq_of(&tx, key)? {
            None => None,
            Some(seq) => tx
                .prepare_cached("SELECT seq, id, envelope, status FROM invoices WHERE seq = ?1")?
                .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?,
        };
        let Some((seq, id, text, status)) = row else {
            return Err(LedgerError::NotFound(key.to_string()));
        };
        let envelope = rows::parse_envelope(seq, &text)?;
        let status = Status::parse(&status)
            .ok_or_else(|| corrupt(seq, format!("unknown status {status:?}")))?;
        let receipt: Option<String> = tx
            .prepare_cached("SELECT receipt FROM receipts WHERE seq = ?1")?
            .query_row([seq], |r| r.get(0))
            .optional()?;
        let receipt_text = receipt;
        let receipt = receipt_text
            .as_deref()
            .map(|t| {
                serde_json::from_str(t).map_err(|_| corrupt(seq, "the stored receipt is not JSON"))
            })
            .transpose()?;
        // The first entry is the issuance, read from the invoice itself (schema 5 stopped
        // copying its time and number into the history table); later ones are stored.
        let mut history = vec![StatusEvent {
            at: envelope.invoice.issued_at.clone(),
            status: "issued".into(),
            detail: format!("number {}", envelope.invoice.number),
        }];
        history.extend(
            tx.prepare_cached("SELECT at, status, detail FROM history WHERE seq = ?1 ORDER BY id")?
                .query_map([seq], |r| {
                    Ok(StatusEvent {
                        at: r.get(0)?,
                        status: r.get(1)?,
                        detail: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
        let outbox = tx
            .prepare_cached(
                "SELECT seq, attempts, next_attempt_ms, last_error FROM outbox WHERE seq = ?1",
            )?
            .query_row([seq], |r| {
                Ok(OutboxItem {
                    invoice_id: id.clone(),
                    seq: r.get(0)?,
                    number: envelope.invoice.number.clone(),
                    envelope_json: text.clone(),
                    attempts: r.get::<_, i64>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
                    next_attempt_at: r.get::<_, Option<i64>>(2)?.and_then(millis_string),
                    last_error: r.get(3)?,
                })
            })
            .optional()?;
        let issued_during_outage = Self::outage_of(&tx, seq)?;
        Ok(InvoiceRecord {
            receipt_text,
            envelope,
            status,
            receipt,
            history,
            outbox,
            issued_during_outage,
        })
    }
}

impl Ledger {
    /// SQLite's `PRAGMA data_version` on this connection: it moves whenever another
    /// connection (another `Ledger` in this process, or another process) commits a change
    /// to the ledger, and never for this connection's own writes. A reader connection
    /// polls it to learn that the list or the status is stale.
    pub fn data_version(&self) -> Result<u64> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(u64::try_from(v).unwrap_or(0))
    }
}

/// A month's invoices for the accountant's summary: each not rejected, with whether it
/// is accepted and, for a credit note, the kind of the invoice it credits.
pub struct MonthInvoices {
    /// `YYYY-MM` as given.
    pub month: String,
    pub invoices: Vec<(kaipiao_core::Invoice, bool, Option<kaipiao_core::Kind>)>,
}

/// `YYYY-MM` as the UTC bounds of that month in China time: [first day 00:00 +08:00,
/// next month's first day 00:00 +08:00).
fn month_bounds(month: &str) -> Option<(String, String)> {
    let first =
        chrono::NaiveDate::parse_from_str(&format!("{}-01", month.trim()), "%Y-%m-%d").ok()?;
    if month.trim().len() != 7 {
        return None;
    }
    let next = first.checked_add_months(chrono::Months::new(1))?;
    let at = |d: chrono::NaiveDate| china_utc(d.and_hms_opt(0, 0, 0)?);
    Some((at(first)?, at(next)?))
}

/// A wall-clock time in China as the ledger writes moments (RFC 3339 UTC).
fn china_utc(local: chrono::NaiveDateTime) -> Option<String> {
    local
        .and_local_timezone(kaipiao_core::time::china_offset())
        .single()
        .map(|t| rfc3339(t.with_timezone(&chrono::Utc)))
}

impl Ledger {
    /// The invoices issued in `month` (`YYYY-MM`, China time) that were not rejected, in
    /// chain order (`kaipiao summary`).
    pub fn month_invoices(&self, month: &str) -> Result<MonthInvoices> {
        let (from, to) = month_bounds(month).ok_or_else(|| {
            invalid(
                Code::InvalidDate,
                "month",
                kaipiao_core::Msg::new("invalid_date-month").arg("value", month.trim()),
            )
        })?;
        let tx = self.read_tx()?;
        let found: Vec<(u64, String, String)> = tx
            .prepare_cached(
                "SELECT seq, envelope, status FROM invoices
                 WHERE issued_at >= ?1 AND issued_at < ?2 AND status != 'rejected' ORDER BY seq",
            )?
            .query_map([&from, &to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut kinds: std::collections::HashMap<String, Option<kaipiao_core::Kind>> =
            std::collections::HashMap::new();
        let mut invoices = Vec::with_capacity(found.len());
        for (seq, text, status) in found {
            let inv = rows::parse_envelope(seq, &text)?.invoice;
            let credited = match &inv.original {
                Some(o) => match kinds.get(&o.number) {
                    Some(k) => *k,
                    None => {
                        let k: Option<String> = tx
                            .prepare_cached("SELECT kind FROM invoices WHERE number = ?1")?
                            .query_row([&o.number], |r| r.get(0))
                            .optional()?;
                        let k = k.and_then(|k| kaipiao_core::Kind::parse(&k));
                        kinds.insert(o.number.clone(), k);
                        k
                    }
                },
                None => None,
            };
            invoices.push((inv, status == "accepted", credited));
        }
        Ok(MonthInvoices {
            month: month.trim().to_string(),
            invoices,
        })
    }
}
