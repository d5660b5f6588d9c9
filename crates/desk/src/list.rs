//! List queries and paging: a query as the ledger's filter, and the app's paged window
//! over a filter's matches, newest first.
//!
//! A filter change reads the matching seqs once (8 bytes an invoice) and keeps them
//! while the ledger is unchanged; each page then reads its rows by seq, so scrolling
//! anywhere in 100k invoices costs the same as the first page. "Unchanged" is SQLite's
//! `PRAGMA data_version` on the reader connection, which moves whenever any other
//! connection commits: the app's own writer, its watcher, or a `kaipiao` process.

use crate::dto::{InvoicePage, InvoiceRowDto, ListQuery};
use crate::engine::{lock, Engine};
use crate::error::{DeskError, DeskResult};
use kaipiao_core::{Code, Lang, Msg};
use kaipiao_ledger::{ListFilter, Status};
use std::sync::Arc;

/// A query's filter, trimmed, with empty text as no filter: two queries that select the
/// same invoices have equal keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterKey {
    pub status: Option<String>,
    pub search: Option<String>,
    pub buyer: Option<String>,
    /// YYYY-MM-DD, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
}

impl FilterKey {
    pub fn of(q: &ListQuery) -> FilterKey {
        let norm = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        FilterKey {
            status: norm(&q.status),
            search: norm(&q.search),
            buyer: norm(&q.buyer),
            from: norm(&q.from),
            to: norm(&q.to),
        }
    }

    /// The ledger's filter, newest first; an unknown status names the field.
    pub fn to_filter(&self, lang: Lang) -> DeskResult<ListFilter> {
        Ok(ListFilter {
            status: parse_status(self.status.as_deref(), lang)?,
            search: self.search.clone(),
            buyer: self.buyer.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            newest_first: true,
            ..ListFilter::default()
        })
    }
}

/// `pending`, `accepted` or `rejected` (None: all).
pub fn parse_status(status: Option<&str>, lang: Lang) -> DeskResult<Option<Status>> {
    match status {
        None => Ok(None),
        Some(s) => Status::parse(s).map(Some).ok_or_else(|| {
            DeskError::say(
                Code::InvalidStatus,
                "status",
                lang,
                Msg::new("invalid_status"),
            )
        }),
    }
}

/// The seqs a filter matched, newest first, and the ledger's version they were read at.
pub(crate) struct ListIndex {
    key: FilterKey,
    data_version: u64,
    seqs: Arc<Vec<u64>>,
}

/// Pages are at most this many rows.
pub const MAX_PAGE: u32 = 1000;

impl Engine {
    /// One page of the filtered list, newest first, for the virtualized list.
    pub fn list(&self, q: &ListQuery) -> DeskResult<InvoicePage> {
        let lang = self.lang();
        let key = FilterKey::of(q);
        let reader = lock(&self.reader);
        let data_version = reader.data_version().map_err(|e| self.ledger_error(e))?;
        let cached = lock(&self.list_index)
            .as_ref()
            .filter(|c| c.key == key && c.data_version == data_version)
            .map(|c| c.seqs.clone());
        let seqs = match cached {
            Some(seqs) => seqs,
            None => {
                let filter = key.to_filter(lang)?;
                let seqs = Arc::new(
                    reader
                        .list_seqs(&filter)
                        .map_err(|e| self.ledger_error(e))?,
                );
                *lock(&self.list_index) = Some(ListIndex {
                    key,
                    data_version,
                    seqs: seqs.clone(),
                });
                seqs
            }
        };
        let start = (q.offset as usize).min(seqs.len());
        let end = start
            .saturating_add(q.limit.min(MAX_PAGE) as usize)
            .min(seqs.len());
        let rows = reader
            .summaries(&seqs[start..end])
            .map_err(|e| self.ledger_error(e))?;
        drop(reader);
        Ok(InvoicePage {
            total: u32::try_from(seqs.len()).unwrap_or(u32::MAX),
            offset: start as u32,
            rows: rows.iter().map(InvoiceRowDto::from).collect(),
        })
    }
}
