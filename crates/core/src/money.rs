//! Decimal money: parsing, rounding (half-up, away from zero) and the exact string forms
//! of SPEC 2 — money with 2 places, quantities and prices normalised.

use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// Round half-up, away from zero, to `dp` places.
pub fn round(x: Decimal, dp: u32) -> Decimal {
    x.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

/// Money as written everywhere: exactly 2 decimals ("100.00", "-0.04").
pub fn money_string(x: Decimal) -> String {
    let mut r = round(x, 2);
    r.rescale(2);
    // "-0.00" is not a valid amount: a zero has no sign.
    if r.is_zero() {
        r.set_sign_positive(true);
    }
    r.to_string()
}

/// Quantity or unit price: no exponent, no trailing zeros ("2", "0.33", "-1").
pub fn decimal_string(x: Decimal) -> String {
    let mut n = x.normalize();
    if n.is_zero() {
        n.set_sign_positive(true);
    }
    n.to_string()
}

/// Why a decimal string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecimalProblem {
    NotANumber,
    TooManyPlaces(u32),
}

/// Parses a plain decimal ("12", "-0.5", "3.14159265"): no exponent, no spaces, at most
/// `max_dp` places.
pub fn parse_decimal(s: &str, max_dp: u32) -> Result<Decimal, DecimalProblem> {
    let t = s.trim();
    let body = t.strip_prefix('-').unwrap_or(t);
    let valid_chars = !body.is_empty()
        && body.chars().all(|c| c.is_ascii_digit() || c == '.')
        && body.chars().filter(|&c| c == '.').count() <= 1
        && !body.starts_with('.')
        && !body.ends_with('.');
    if !valid_chars {
        return Err(DecimalProblem::NotANumber);
    }
    let d = Decimal::from_str(t).map_err(|_| DecimalProblem::NotANumber)?;
    if d.scale() > max_dp && d.normalize().scale() > max_dp {
        return Err(DecimalProblem::TooManyPlaces(d.normalize().scale()));
    }
    Ok(d)
}

/// Reads a money string as signed (exactly 2 places). Used on values this program or the
/// authority wrote; returns None when the text is not money.
pub fn parse_money(s: &str) -> Option<Decimal> {
    let (int, frac) = s.strip_prefix('-').unwrap_or(s).split_once('.')?;
    if int.is_empty()
        || frac.len() != 2
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    Decimal::from_str(s).ok()
}

/// True when `s` is a normalised decimal string as [`decimal_string`] writes it.
pub fn is_normalized_decimal(s: &str) -> bool {
    match parse_decimal(s, 28) {
        Ok(d) => decimal_string(d) == s,
        Err(_) => false,
    }
}

/// A tax rate as printed, a percentage: `0.13` -> `13%`, `0.015` -> `1.5%`, `0` -> `0%`
/// (decimal arithmetic, exact); a string that is no decimal is returned as it is.
pub fn rate_percent(rate: &str) -> String {
    match parse_decimal(rate, 8) {
        Ok(d) => format!("{}%", decimal_string(d * Decimal::from(100))),
        Err(_) => rate.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_print_as_percentages() {
        for (rate, shown) in [
            ("0.13", "13%"),
            ("0.09", "9%"),
            ("0.06", "6%"),
            ("0", "0%"),
            ("0.03", "3%"),
            ("0.015", "1.5%"),
            ("0.01", "1%"),
        ] {
            assert_eq!(super::rate_percent(rate), shown, "{rate}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(money_string(d("0.125")), "0.13");
        assert_eq!(money_string(d("-0.125")), "-0.13");
        assert_eq!(money_string(d("0.135")), "0.14");
        assert_eq!(money_string(d("2.5")), "2.50");
        assert_eq!(money_string(d("-0.004")), "0.00");
        assert_eq!(money_string(d("100")), "100.00");
    }

    #[test]
    fn normalises_quantities() {
        assert_eq!(decimal_string(d("2.000")), "2");
        assert_eq!(decimal_string(d("0.330")), "0.33");
        assert_eq!(decimal_string(d("-1.0")), "-1");
        assert_eq!(decimal_string(d("100")), "100");
        assert_eq!(decimal_string(d("-0.0")), "0");
    }

    #[test]
    fn parses_plain_decimals_only() {
        assert_eq!(parse_decimal("1.5", 8), Ok(d("1.5")));
        assert_eq!(parse_decimal("-2", 8), Ok(d("-2")));
        assert_eq!(parse_decimal("1.100000000", 8), Ok(d("1.1")));
        assert_eq!(parse_decimal("1e3", 8), Err(DecimalProblem::NotANumber));
        assert_eq!(parse_decimal("", 8), Err(DecimalProblem::NotANumber));
        assert_eq!(parse_decimal("1.", 8), Err(DecimalProblem::NotANumber));
        assert_eq!(parse_decimal("abc", 8), Err(DecimalProblem::NotANumber));
        assert_eq!(
            parse_decimal("0.123456789", 8),
            Err(DecimalProblem::TooManyPlaces(9))
        );
        assert_eq!(parse_money("12.30"), Some(d("12.30")));
        assert_eq!(parse_money("12.3"), None);
    }

    proptest! {
        #[test]
        fn money_strings_have_two_places(units in -10_000_000_000i64..10_000_000_000i64, scale in 0u32..6) {
            let x = Decimal::new(units, scale);
            let s = money_string(x);
            let (_, frac) = s.split_once('.').unwrap();
            prop_assert_eq!(frac.len(), 2);
            prop_assert!((d(&s) - x).abs() <= d("0.005"));
            prop_assert_eq!(parse_money(&s), Some(round(x, 2)));
        }

        #[test]
        fn decimal_strings_round_trip(units in -10_000_000_000i64..10_000_000_000i64, scale in 0u32..8) {
            let x = Decimal::new(units, scale);
            let s = decimal_string(x);
            prop_assert!(is_normalized_decimal(&s));
            prop_assert_eq!(parse_decimal(&s, 8).unwrap(), x);
        }
    }
}
