//! The workspace's one way to write and read a moment: RFC 3339 in UTC with a `Z` and
//! whole seconds (`2026-03-01T09:00:00Z`), as SPEC 4 fixes for `issued_at` and every
//! other timestamp the ledger, the wire and the authority write.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};

/// `t` as RFC 3339 UTC with `Z`, whole seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads any RFC 3339 time (any offset) as UTC; None when it is not one.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// China Standard Time (UTC+8, no daylight saving): how a Chinese buyer reads an
/// invoice's date, on paper, in its QR code and in the authority's check (查验).
pub fn china_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is within a day")
}

/// An RFC 3339 time in China Standard Time; None when it is not one.
pub fn china_time(s: &str) -> Option<DateTime<FixedOffset>> {
    parse_rfc3339(s).map(|t| t.with_timezone(&china_offset()))
}

/// The day an RFC 3339 time falls on in China (an invoice issued at 18:40 UTC is dated
/// the next day there).
pub fn china_date(s: &str) -> Option<NaiveDate> {
    china_time(s).map(|t| t.date_naive())
}
