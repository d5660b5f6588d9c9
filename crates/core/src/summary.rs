//! A month's figures for the accountant (issue 12, item 3): by kind and by rate, blue
//! (蓝字) and red (红字) apart. Pure: the ledger hands in the month's invoices, this sums
//! their own stored amounts (never recomputed), exactly.
//!
//! - Accepted invoices are counted; pending ones are shown apart; rejected ones never
//!   reach here.
//! - A row is (kind, rate, sign): a credit note is red and takes the kind of the
//!   invoice it credits (专票红字 apart from 普票红字).
//! - An invoice with several rates adds each line to its rate's row and counts once in
//!   each row it touches, and once in the totals; the rows' amounts and taxes therefore
//!   add up to the totals exactly (every invoice's totals are the sums of its lines).

use crate::model::{Invoice, Kind};
use crate::money::{money_string, parse_money};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;

/// One invoice of the month as the ledger holds it.
pub struct MonthInvoice<'a> {
    pub invoice: &'a Invoice,
    /// Accepted (counted) or pending (shown apart).
    pub accepted: bool,
    /// For a credit note, the kind of the invoice it credits (None when unknown here:
    /// counted as ordinary).
    pub credited_kind: Option<Kind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sign {
    /// 蓝字: an ordinary or special invoice.
    Blue,
    /// 红字: a credit note.
    Red,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    /// `ordinary` or `special`.
    pub kind: Kind,
    pub tax_rate: String,
    pub sign: Sign,
    pub count: u64,
    pub amount: String,
    pub tax: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: u64,
    pub amount: String,
    pub tax: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub count: u64,
    pub amount: String,
    pub tax: String,
    /// 价税合计: amount + tax.
    pub total: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthSummary {
    /// `YYYY-MM`, China time.
    pub month: String,
    pub rows: Vec<SummaryRow>,
    pub pending: Tally,
    pub totals: Totals,
}

fn money(s: &str) -> Decimal {
    // Stored amounts are checked money strings; a damaged one (which `verify` names)
    // counts as zero rather than stopping the accountant's report.
    parse_money(s).unwrap_or_default()
}

/// The summary of `invoices` (those issued in `month`, China time).
pub fn summarize(month: &str, invoices: &[MonthInvoice<'_>]) -> MonthSummary {
    type Key = (u8, String, Sign);
    let mut rows: BTreeMap<Key, (u64, Decimal, Decimal)> = BTreeMap::new();
    let (mut count, mut amount, mut tax) = (0u64, Decimal::ZERO, Decimal::ZERO);
    let (mut p_count, mut p_amount, mut p_tax) = (0u64, Decimal::ZERO, Decimal::ZERO);
    for m in invoices {
        let inv = m.invoice;
        if !m.accepted {
            p_count += 1;
            p_amount += money(&inv.total_amount);
            p_tax += money(&inv.total_tax);
            continue;
        }
        count += 1;
        amount += money(&inv.total_amount);
        tax += money(&inv.total_tax);
        let (kind, sign) = match inv.kind {
            Kind::Credit => (m.credited_kind.unwrap_or(Kind::Ordinary), Sign::Red),
            k => (k, Sign::Blue),
        };
        let kind_order = if kind == Kind::Special { 1 } else { 0 };
        let mut touched: Vec<Key> = Vec::new();
        for line in &inv.lines {
            let key = (kind_order, line.tax_rate.clone(), sign);
            let row = rows.entry(key.clone()).or_default();
            row.1 += money(&line.amount);
            row.2 += money(&line.tax);
            if !touched.contains(&key) {
                row.0 += 1;
                touched.push(key);
            }
        }
    }
    MonthSummary {
        month: month.to_string(),
        rows: rows
            .into_iter()
            .map(
                |((kind, tax_rate, sign), (count, amount, tax))| SummaryRow {
                    kind: if kind == 1 {
                        Kind::Special
                    } else {
                        Kind::Ordinary
                    },
                    tax_rate,
                    sign,
                    count,
                    amount: money_string(amount),
                    tax: money_string(tax),
                },
            )
            .collect(),
        pending: Tally {
            count: p_count,
            amount: money_string(p_amount),
            tax: money_string(p_tax),
        },
        totals: Totals {
            count,
            amount: money_string(amount),
            tax: money_string(tax),
            total: money_string(amount + tax),
        },
    }
}
