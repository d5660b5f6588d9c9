//! 统计 (issue 12, item 3): a month's figures for the accountant, the same as `kaipiao
//! summary`, with its days for the chart, and the month exported as a workbook (汇总, 发票,
//! 明细).

use crate::dto::{SavedFileDto, StatsDayDto, StatsDto, StatsRateDto, StatsRowDto};
use crate::engine::Engine;
use crate::error::{DeskError, DeskResult};
use kaipiao_core::money::{money_string, parse_money, rate_percent};
use kaipiao_core::summary::{summarize, MonthInvoice, MonthSummary, Sign};
use kaipiao_core::time::china_date;
use kaipiao_ledger::{Ledger, ListFilter, Result};
use kaipiao_sheets::write::{SheetData, Value};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// A month's summary (China time): accepted invoices by kind, rate and sign, pending
/// apart, rejected left out; and each day's accepted count and 价税合计.
pub fn month_summary(ledger: &Ledger, month: &str) -> Result<(MonthSummary, Vec<StatsDayDto>)> {
    let found = ledger.month_invoices(month)?;
    let input: Vec<MonthInvoice<'_>> = found
        .invoices
        .iter()
        .map(|(invoice, accepted, credited_kind)| MonthInvoice {
            invoice,
            accepted: *accepted,
            credited_kind: *credited_kind,
        })
        .collect();
    let mut days: BTreeMap<String, (u32, Decimal)> = BTreeMap::new();
    for (inv, accepted, _) in &found.invoices {
        if !accepted {
            continue;
        }
        let Some(day) = china_date(&inv.issued_at) else {
            continue;
        };
        let e = days.entry(day.format("%Y-%m-%d").to_string()).or_default();
        e.0 += 1;
        e.1 += parse_money(&inv.total).unwrap_or_default();
    }
    // Every day of the month, so the chart reads as the month (a day without invoices 0).
    if let Some((first, last)) = month_days(&found.month) {
        let (mut d, last) = (
            chrono::NaiveDate::parse_from_str(&first, "%Y-%m-%d").ok(),
            chrono::NaiveDate::parse_from_str(&last, "%Y-%m-%d").ok(),
        );
        while let (Some(day), Some(last)) = (d, last) {
            if day > last {
                break;
            }
            days.entry(day.format("%Y-%m-%d").to_string()).or_default();
            d = day.succ_opt();
        }
    }
    let days = days
        .into_iter()
        .map(|(day, (count, total))| StatsDayDto {
            day,
            count,
            total: money_string(total),
        })
        .collect();
    Ok((summarize(&found.month, &input), days))
}

fn sign_word(s: Sign) -> &'static str {
    match s {
        Sign::Blue => "blue",
        Sign::Red => "red",
    }
}

/// The month's figures as one sheet (汇总) with Chinese headers.
pub fn summary_sheet(s: &MonthSummary) -> SheetData {
    let t = |x: &str| Value::Text(x.to_string());
    let mut rows: Vec<Vec<Value>> = s
        .rows
        .iter()
        .map(|r| {
            vec![
                t(r.kind.label_zh()),
                t(&rate_percent(&r.tax_rate)),
                t(match r.sign {
                    Sign::Blue => "蓝字",
                    Sign::Red => "红字",
                }),
                Value::Number(r.count.to_string()),
                Value::Money(r.amount.clone()),
                Value::Money(r.tax.clone()),
            ]
        })
        .collect();
    rows.push(vec![
        t("合计（已受理）"),
        t(""),
        t(""),
        Value::Number(s.totals.count.to_string()),
        Value::Money(s.totals.amount.clone()),
        Value::Money(s.totals.tax.clone()),
    ]);
    rows.push(vec![
        t("待上传（未计入）"),
        t(""),
        t(""),
        Value::Number(s.pending.count.to_string()),
        Value::Money(s.pending.amount.clone()),
        Value::Money(s.pending.tax.clone()),
    ]);
    SheetData {
        name: "汇总".into(),
        headers: ["发票种类", "税率", "蓝字/红字", "份数", "金额", "税额"]
            .map(String::from)
            .to_vec(),
        rows,
    }
}

/// The first and last day of `YYYY-MM`, for the export's filter.
fn month_days(month: &str) -> Option<(String, String)> {
    let first =
        chrono::NaiveDate::parse_from_str(&format!("{}-01", month.trim()), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    let last = next.pred_opt()?;
    Some((
        first.format("%Y-%m-%d").to_string(),
        last.format("%Y-%m-%d").to_string(),
    ))
}

impl Engine {
    /// 统计 for `month` (YYYY-MM, China time).
    pub fn month_stats(&self, month: &str) -> DeskResult<StatsDto> {
        let (s, days) = month_summary(&self.reader(), month).map_err(|e| self.ledger_error(e))?;
        let n = |c: u64| u32::try_from(c).unwrap_or(u32::MAX);
        // By rate, blue and red together: each row's stored amounts summed exactly.
        let mut rates: Vec<(String, Decimal, Decimal)> = Vec::new();
        for r in &s.rows {
            let (a, t) = (
                parse_money(&r.amount).unwrap_or_default(),
                parse_money(&r.tax).unwrap_or_default(),
            );
            match rates.iter_mut().find(|(rate, _, _)| *rate == r.tax_rate) {
                Some(e) => {
                    e.1 += a;
                    e.2 += t;
                }
                None => rates.push((r.tax_rate.clone(), a, t)),
            }
        }
        Ok(StatsDto {
            month: s.month.clone(),
            rows: s
                .rows
                .iter()
                .map(|r| StatsRowDto {
                    kind: r.kind.as_str().to_string(),
                    tax_rate: r.tax_rate.clone(),
                    sign: sign_word(r.sign).to_string(),
                    count: n(r.count),
                    amount: r.amount.clone(),
                    tax: r.tax.clone(),
                })
                .collect(),
            pending_count: n(s.pending.count),
            pending_amount: s.pending.amount.clone(),
            pending_tax: s.pending.tax.clone(),
            count: n(s.totals.count),
            amount: s.totals.amount.clone(),
            tax: s.totals.tax.clone(),
            total: s.totals.total.clone(),
            days,
            rates: rates
                .into_iter()
                .map(|(tax_rate, a, t)| StatsRateDto {
                    tax_rate,
                    amount: money_string(a),
                    tax: money_string(t),
                })
                .collect(),
        })
    }

    /// 统计's export: the month as a workbook, 汇总 (the figures), 发票 and 明细 (its
    /// invoices, as `kaipiao export --xlsx --from --to`), written where the clerk chose.
    pub fn export_month(&self, month: &str, path: &std::path::Path) -> DeskResult<SavedFileDto> {
        let lang = self.lang();
        let bytes = {
            let ledger = self.reader();
            let (s, _) = month_summary(&ledger, month).map_err(|e| DeskError::ledger(&e, lang))?;
            let (from, to) = month_days(&s.month).unwrap_or_default();
            let filter = ListFilter {
                from: Some(from),
                to: Some(to),
                ..ListFilter::default()
            };
            let (invoices, lines, _) =
                crate::export::sheets(&ledger, &filter).map_err(|e| DeskError::ledger(&e, lang))?;
            kaipiao_sheets::write::xlsx(&[summary_sheet(&s), invoices, lines])
                .map_err(DeskError::internal)?
        };
        self.write_chosen(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_months_days() {
        assert_eq!(
            super::month_days("2026-02"),
            Some(("2026-02-01".into(), "2026-02-28".into()))
        );
        assert_eq!(
            super::month_days("2026-12"),
            Some(("2026-12-01".into(), "2026-12-31".into()))
        );
        assert_eq!(super::month_days("2026-13"), None);
    }
}
