//! The workspace's one way to write and read a moment: RFC 3339 in UTC with a `Z` and
//! whole seconds (`2026-03-01T09:00:00Z`), as SPEC 4 fixes for `issued_at` and every
//! other timestamp the ledger, the wire and the authority write.

use chrono::{DateTime, SecondsFormat, Utc};

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
