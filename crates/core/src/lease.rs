//! Leases: the block of numbers and the offline terms the authority granted (SPEC 3), and
//! the limit checks the issuer runs before every invoice.

use crate::error::FieldError;
use crate::i18n::Msg;
use crate::money::{money_string, parse_money};
use crate::sign::{sign_object, verify_object, DeviceKey, PublicKey, SignatureError, LEASE_DOMAIN};
use crate::{Code, Lang};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A lease as the authority signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub lease_id: String,
    pub device_id: String,
    /// 12 digits.
    pub prefix: String,
    pub first: u64,
    pub last: u64,
    pub offline_hours: u64,
    pub offline_amount_cap: String,
    pub single_invoice_cap: String,
    pub granted_at: String,
    pub signature: String,
}

impl Lease {
    /// Signs the lease (all fields but `signature`) with the authority's key.
    pub fn signed(mut self, authority: &DeviceKey) -> Lease {
        self.signature = String::new();
        let value = serde_json::to_value(&self).unwrap_or_default();
        let signed = sign_object(authority, LEASE_DOMAIN, value, "signature");
        if let Ok(serde_json::Value::Object(map)) = signed {
            if let Some(serde_json::Value::String(s)) = map.get("signature") {
                self.signature = s.clone();
            }
        }
        self
    }

    /// Checks the authority's signature and that the lease is well formed.
    pub fn verify(&self, authority: &PublicKey) -> Result<(), SignatureError> {
        let value = serde_json::to_value(self).map_err(|_| SignatureError::NotAnObject)?;
        verify_object(authority, LEASE_DOMAIN, &value, "signature")
    }

    /// The terms, parsed; an error names the malformed field.
    pub fn terms(&self) -> Result<LeaseTerms, FieldError> {
        let bad = |field: &str, what: &str| {
            FieldError::msg(
                Code::InvalidLease,
                format!("lease.{field}"),
                Msg::new("invalid_lease")
                    .arg("field", field)
                    .arg("what", what),
            )
        };
        if self.prefix.len() != 12 || !self.prefix.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad("prefix", "expected 12 digits"));
        }
        if self.first == 0 || self.first > self.last || self.last > 99_999_999 {
            return Err(bad("first", "expected 1 <= first <= last <= 99999999"));
        }
        let amount_cap = parse_money(&self.offline_amount_cap)
            .filter(|d| !d.is_sign_negative())
            .ok_or_else(|| {
                bad(
                    "offline_amount_cap",
                    "expected money such as \"1000000.00\"",
                )
            })?;
        let single_cap = parse_money(&self.single_invoice_cap)
            .filter(|d| !d.is_sign_negative())
            .ok_or_else(|| bad("single_invoice_cap", "expected money such as \"100000.00\""))?;
        Ok(LeaseTerms {
            offline_hours: self.offline_hours,
            offline_amount_cap: amount_cap,
            single_invoice_cap: single_cap,
        })
    }
}

/// The offline limits of the lease a number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    pub offline_hours: u64,
    pub offline_amount_cap: Decimal,
    pub single_invoice_cap: Decimal,
}

/// What is out there unacknowledged: the state the offline limits are counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OfflineExposure {
    /// issued_at of the oldest invoice without a receipt.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Sum of |total_amount| over invoices without a receipt.
    pub pending_amount: Decimal,
}

/// A limit more than 75% (or 90%) used after this invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitWarning {
    /// `offline_hours` or `offline_amount`.
    pub limit: &'static str,
    /// 75 or 90.
    pub threshold: u32,
    pub en: String,
    pub zh: String,
}

/// What is left of the offline window and amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    /// Hours left in the offline window (fractional), never negative.
    pub hours_left: Decimal,
    pub amount_left: Decimal,
}

pub fn headroom(terms: &LeaseTerms, exposure: &OfflineExposure, now: DateTime<Utc>) -> Headroom {
    let hours_used = exposure
        .oldest_pending_at
        .map(|t| Decimal::from((now - t).num_seconds().max(0)) / Decimal::from(3600))
        .unwrap_or_default();
    let hours_left = (Decimal::from(terms.offline_hours) - hours_used).max(Decimal::ZERO);
    let amount_left = (terms.offline_amount_cap - exposure.pending_amount).max(Decimal::ZERO);
    Headroom {
        hours_left: crate::money::round(hours_left, 2),
        amount_left,
    }
}

/// Checks the offline limits for a new invoice of `total_amount` issued at `now`.
/// Ok carries the warnings to show; Err names the limit, how far over, and what to do.
pub fn check_limits(
    terms: &LeaseTerms,
    exposure: &OfflineExposure,
    total_amount: Decimal,
    now: DateTime<Utc>,
) -> Result<Vec<LimitWarning>, FieldError> {
    let amount = total_amount.abs();
    if amount > terms.single_invoice_cap {
        return Err(FieldError::msg(
            Code::SingleInvoiceCap,
            "lines",
            Msg::new("single_invoice_cap-issue")
                .arg("amount", money_string(amount))
                .arg("cap", money_string(terms.single_invoice_cap))
                .arg("over", money_string(amount - terms.single_invoice_cap)),
        ));
    }
    let window_secs = i64::try_from(terms.offline_hours)
        .unwrap_or(i64::MAX / 3600)
        .saturating_mul(3600);
    let mut warnings = Vec::new();
    if let Some(oldest) = exposure.oldest_pending_at {
        let used = (now - oldest).num_seconds().max(0);
        if used > window_secs {
            let over_h = Decimal::from(used - window_secs) / Decimal::from(3600);
            return Err(FieldError::msg(
                Code::OfflineHoursExceeded,
                "",
                Msg::new("offline_hours_exceeded")
                    .arg("hours", terms.offline_hours.to_string())
                    .arg("over", crate::money::round(over_h, 1).to_string()),
            ));
        }
        if window_secs > 0 {
            push_warning(
                &mut warnings,
                "offline_hours",
                Decimal::from(used) / Decimal::from(window_secs),
            );
        }
    }
    let after = exposure.pending_amount + amount;
    if after > terms.offline_amount_cap {
        let over = after - terms.offline_amount_cap;
        return Err(FieldError::msg(
            Code::OfflineAmountExceeded,
            "lines",
            Msg::new("offline_amount_exceeded")
                .arg("total", money_string(after))
                .arg("cap", money_string(terms.offline_amount_cap))
                .arg("over", money_string(over)),
        ));
    }
    if !terms.offline_amount_cap.is_zero() {
        push_warning(
            &mut warnings,
            "offline_amount",
            after / terms.offline_amount_cap,
        );
    }
    Ok(warnings)
}

fn push_warning(warnings: &mut Vec<LimitWarning>, limit: &'static str, used: Decimal) {
    let threshold = if used >= Decimal::new(90, 2) {
        90
    } else if used >= Decimal::new(75, 2) {
        75
    } else {
        return;
    };
    let pct = crate::money::round(used * Decimal::from(100), 0);
    let msg = match limit {
        "offline_hours" => Msg::new("warning-offline_hours"),
        _ => Msg::new("warning-offline_amount"),
    }
    .arg("percent", pct.to_string());
    warnings.push(LimitWarning {
        limit,
        threshold,
        en: msg.text(Lang::En),
        zh: msg.text(Lang::Zh),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::str::FromStr;

    fn terms() -> LeaseTerms {
        LeaseTerms {
            offline_hours: 72,
            offline_amount_cap: Decimal::from_str("1000.00").unwrap(),
            single_invoice_cap: Decimal::from_str("500.00").unwrap(),
        }
    }

    #[test]
    fn single_invoice_cap_counts_credit_notes_by_magnitude() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let e = OfflineExposure::default();
        assert!(check_limits(&terms(), &e, Decimal::from(500), now).is_ok());
        let err = check_limits(&terms(), &e, Decimal::from(-501), now).unwrap_err();
        assert_eq!(err.code, "single_invoice_cap");
        assert!(err.en.contains("1.00"), "{}", err.en);
    }

    #[test]
    fn amount_cap_and_warnings() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut e = OfflineExposure {
            oldest_pending_at: Some(now),
            pending_amount: Decimal::from(700),
        };
        let w = check_limits(&terms(), &e, Decimal::from(100), now).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].limit, w[0].threshold), ("offline_amount", 75));
        let w = check_limits(&terms(), &e, Decimal::from(200), now).unwrap();
        assert_eq!(w[0].threshold, 90);
        e.pending_amount = Decimal::from(900);
        let err =
            check_limits(&terms(), &e, Decimal::from_str("100.01").unwrap(), now).unwrap_err();
        assert_eq!(err.code, "offline_amount_exceeded");
        assert!(err.en.contains("over by 0.01"), "{}", err.en);
    }

    #[test]
    fn offline_window_counts_from_the_oldest_pending_invoice() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let e = OfflineExposure {
            oldest_pending_at: Some(t0),
            pending_amount: Decimal::ZERO,
        };
        let at = |h: i64| t0 + chrono::Duration::hours(h);
        assert!(check_limits(&terms(), &e, Decimal::ONE, at(10))
            .unwrap()
            .is_empty());
        assert_eq!(
            check_limits(&terms(), &e, Decimal::ONE, at(55)).unwrap()[0].threshold,
            75
        );
        assert_eq!(
            check_limits(&terms(), &e, Decimal::ONE, at(66)).unwrap()[0].threshold,
            90
        );
        assert!(check_limits(&terms(), &e, Decimal::ONE, at(72)).is_ok());
        let err = check_limits(&terms(), &e, Decimal::ONE, at(73)).unwrap_err();
        assert_eq!(err.code, "offline_hours_exceeded");
        let h = headroom(&terms(), &e, at(70));
        assert_eq!(h.hours_left, Decimal::from(2));
    }

    #[test]
    fn lease_signature_round_trip_and_tamper() {
        let key = DeviceKey::from_bytes(&[7u8; 32]);
        let lease = Lease {
            lease_id: "l1".into(),
            device_id: "d1".into(),
            prefix: "260000000001".into(),
            first: 1,
            last: 1000,
            offline_hours: 72,
            offline_amount_cap: "1000000.00".into(),
            single_invoice_cap: "100000.00".into(),
            granted_at: "2026-01-01T00:00:00Z".into(),
            signature: String::new(),
        }
        .signed(&key);
        assert!(lease.verify(&key.public()).is_ok());
        assert!(lease.terms().is_ok());
        let mut bad = lease.clone();
        bad.last = 2000;
        assert!(bad.verify(&key.public()).is_err());
    }
}
