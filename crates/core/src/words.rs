//! Chinese capitals (大写金额) for money amounts, as printed on an invoice's total line.
//!
//! The conventions are those of the 支付结算办法 with the fixed choices of SPEC section 2:
//!
//! - a 零 is written for each run of zero digits between non-zero digits (one 零 per run, also
//!   across the 万 and 亿 group boundaries), except that none is written between 元 and 角,
//!   nor after 万 or 亿 when the next digit is a 仟;
//! - 零 is written before 分 when 角 is zero and there are 元 digits;
//! - 整 follows 元 when there are no 角 and 分; an amount under 1 has no 元; zero is 零元整;
//! - the digit before 拾 is always written (10 -> 壹拾元整);
//! - a negative amount starts with 负.
//!
//! The input is first rounded to 2 decimals, half-up away from zero. Amounts of 1 万亿 and
//! more use the usual nested grouping (壹万亿, 壹亿亿, ...), so every `Decimal` has words.

use rust_decimal::{Decimal, RoundingStrategy};

/// 零壹贰叁肆伍陆柒捌玖, indexed by digit value.
const DIGITS: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];

/// The unit of a digit inside a four-digit group: 个, 拾, 佰, 仟 (个 is not written).
const GROUP_UNITS: [&str; 4] = ["", "拾", "佰", "仟"];

/// The Chinese capitals of a stored money string (an invoice's `total`), or "" when the
/// text is not money: what `show`, the app's detail view and a printed invoice write as
/// 价税合计（大写）.
pub fn total_in_words(total: &str) -> String {
    crate::money::parse_money(total)
        .map(amount_in_words)
        .unwrap_or_default()
}

/// The Chinese capitals of `amount`, e.g. `1409.50` -> `壹仟肆佰零玖元伍角`.
///
/// The amount is rounded to 2 decimals (half-up, away from zero) first; an amount that
/// rounds to zero is `零元整` without a sign. Never panics.
pub fn amount_in_words(amount: Decimal) -> String {
    let rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let (yuan, cents) = split_yuan_cents(rounded);
    let jiao = (cents / 10) as usize;
    let fen = (cents % 10) as usize;

    let mut out = String::new();
    if rounded.is_sign_negative() && (yuan != 0 || cents != 0) {
        out.push('负');
    }
    if yuan == 0 && cents == 0 {
        out.push_str("零元整");
        return out;
    }
    if yuan != 0 {
        push_integer(&mut out, yuan);
        out.push('元');
    }
    if jiao == 0 && fen == 0 {
        out.push('整');
        return out;
    }
    if jiao != 0 {
        // No 零 between 元 and 角, even when the 元 digit is zero (10000.10 -> 壹万元壹角).
        out.push(DIGITS[jiao]);
        out.push('角');
    } else if yuan != 0 {
        // 角 is zero between 元 digits and 分 (10.05 -> 壹拾元零伍分).
        out.push('零');
    }
    if fen != 0 {
        out.push(DIGITS[fen]);
        out.push('分');
    }
    out
}

/// Splits the absolute value of an amount (already rounded to 2 dp) into whole yuan and
/// cents (0..=99). Works from the raw mantissa and scale, so it cannot overflow.
fn split_yuan_cents(rounded: Decimal) -> (u128, u32) {
    let mantissa = rounded.mantissa().unsigned_abs();
    let scale = rounded.scale();
    let divisor = pow10(scale);
    let whole = mantissa / divisor;
    let frac = mantissa % divisor;
    let cents = if scale >= 2 {
        frac / pow10(scale - 2)
    } else {
        frac * pow10(2 - scale)
    };
    // `cents` < 100 by construction; the `min` only keeps the conversion obviously total.
    (whole, cents.min(99) as u32)
}

/// 10^exp for the exponents a `Decimal` scale can take (0..=28); saturates beyond that.
fn pow10(exp: u32) -> u128 {
    10u128.checked_pow(exp).unwrap_or(u128::MAX)
}

/// Appends the capitals of a positive integer (without 元).
///
/// Digits are written from the most significant down. Every fourth position (counting from
/// the units) closes a group: at positions 4, 12, 20, ... a 万 is written when that group
/// has a non-zero digit; at positions 8, 16, 24, ... a 亿 is written when any digit at or
/// above it is non-zero. That is the nested reading (1e12 = 壹万亿, 1e16 = 壹亿亿).
fn push_integer(out: &mut String, value: u128) {
    let digits: Vec<u8> = {
        let mut v = Vec::new();
        let mut n = value;
        while n > 0 {
            v.push((n % 10) as u8);
            n /= 10;
        }
        v // least significant first
    };

    let mut seen_non_zero = false;
    let mut zero_pending = false;
    let mut last_was_group_unit = false;

    for pos in (0..digits.len()).rev() {
        let digit = digits[pos] as usize;
        if digit == 0 {
            if seen_non_zero {
                zero_pending = true;
            }
        } else {
            // One 零 per run of zeros between non-zero digits, except right after 万 or 亿
            // when this digit is a 仟 (1001000 -> 壹佰万壹仟元整).
            let after_group_unit_before_qian = last_was_group_unit && pos % 4 == 3;
            if zero_pending && !after_group_unit_before_qian {
                out.push('零');
            }
            out.push(DIGITS[digit]);
            out.push_str(GROUP_UNITS[pos % 4]);
            seen_non_zero = true;
            zero_pending = false;
            last_was_group_unit = false;
        }

        if pos > 0 && pos % 4 == 0 {
            if pos % 8 == 4 {
                let group_non_zero = digits[pos..digits.len().min(pos + 4)]
                    .iter()
                    .any(|&d| d != 0);
                if group_non_zero {
                    out.push('万');
                    last_was_group_unit = true;
                }
            } else if seen_non_zero {
                // Any digit at or above `pos` is non-zero.
                out.push('亿');
                last_was_group_unit = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn w(s: &str) -> String {
        match Decimal::from_str(s) {
            Ok(d) => amount_in_words(d),
            Err(e) => panic!("bad test literal {s}: {e}"),
        }
    }

    fn check(cases: &[(&str, &str)]) {
        for (input, expected) in cases {
            assert_eq!(w(input), *expected, "amount {input}");
        }
    }

    #[test]
    fn spec_examples() {
        check(&[
            ("1234.56", "壹仟贰佰叁拾肆元伍角陆分"),
            ("1005", "壹仟零伍元整"),
            ("10", "壹拾元整"),
            ("10.05", "壹拾元零伍分"),
            ("1409.50", "壹仟肆佰零玖元伍角"),
            ("10000.10", "壹万元壹角"),
            ("20000.05", "贰万元零伍分"),
            ("100100", "壹拾万零壹佰元整"),
            ("1001000", "壹佰万壹仟元整"),
            ("107000.53", "壹拾万柒仟元伍角叁分"),
            ("1000010", "壹佰万零壹拾元整"),
            ("100010000", "壹亿零壹万元整"),
            ("300001000", "叁亿壹仟元整"),
            ("100000001.01", "壹亿零壹元零壹分"),
            ("0.50", "伍角"),
            ("0.05", "伍分"),
            ("0", "零元整"),
            ("-62.33", "负陆拾贰元叁角叁分"),
        ]);
    }

    #[test]
    fn small_amounts_and_fractions() {
        check(&[
            ("0.00", "零元整"),
            ("0.01", "壹分"),
            ("0.10", "壹角"),
            ("0.11", "壹角壹分"),
            ("0.99", "玖角玖分"),
            ("1", "壹元整"),
            ("1.00", "壹元整"),
            ("1.01", "壹元零壹分"),
            ("1.10", "壹元壹角"),
            ("1.11", "壹元壹角壹分"),
            ("9.99", "玖元玖角玖分"),
            ("10.50", "壹拾元伍角"),
            ("10.55", "壹拾元伍角伍分"),
            ("1000.01", "壹仟元零壹分"),
            ("1010.50", "壹仟零壹拾元伍角"),
        ]);
    }

    #[test]
    fn integers_and_zero_runs() {
        check(&[
            ("11", "壹拾壹元整"),
            ("20", "贰拾元整"),
            ("100.00", "壹佰元整"),
            ("101", "壹佰零壹元整"),
            ("110", "壹佰壹拾元整"),
            ("1000", "壹仟元整"),
            ("1001", "壹仟零壹元整"),
            ("1010", "壹仟零壹拾元整"),
            ("1100", "壹仟壹佰元整"),
            ("9999", "玖仟玖佰玖拾玖元整"),
            ("10000", "壹万元整"),
            ("10001", "壹万零壹元整"),
            ("10010", "壹万零壹拾元整"),
            ("10100", "壹万零壹佰元整"),
            ("11000", "壹万壹仟元整"),
            ("40000.00", "肆万元整"),
            ("100000", "壹拾万元整"),
            ("101000.00", "壹拾万壹仟元整"),
            ("110000", "壹拾壹万元整"),
            ("1010000", "壹佰零壹万元整"),
            ("1000000", "壹佰万元整"),
            ("10000000", "壹仟万元整"),
            ("10001000", "壹仟万壹仟元整"),
            ("10000100", "壹仟万零壹佰元整"),
            ("12345678", "壹仟贰佰叁拾肆万伍仟陆佰柒拾捌元整"),
            ("100000000", "壹亿元整"),
            ("1000000000", "壹拾亿元整"),
            ("1000001000", "壹拾亿壹仟元整"),
            ("1010000000", "壹拾亿壹仟万元整"),
            ("1001000000", "壹拾亿零壹佰万元整"),
            ("110000000", "壹亿壹仟万元整"),
            ("100000010", "壹亿零壹拾元整"),
            ("100100000", "壹亿零壹拾万元整"),
            (
                "999999999999.99",
                "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分",
            ),
            (
                "123456789012.34",
                "壹仟贰佰叁拾肆亿伍仟陆佰柒拾捌万玖仟零壹拾贰元叁角肆分",
            ),
        ]);
    }

    #[test]
    fn ten_thousand_yi_and_beyond() {
        check(&[
            ("1000000000000", "壹万亿元整"),
            ("1000000000001", "壹万亿零壹元整"),
            ("1234500000000", "壹万贰仟叁佰肆拾伍亿元整"),
            ("1000100000000", "壹万零壹亿元整"),
            ("1000010000000", "壹万亿壹仟万元整"),
            ("10000000000000000", "壹亿亿元整"),
            ("10000000100000000", "壹亿零壹亿元整"),
            ("10000000010000000", "壹亿亿壹仟万元整"),
        ]);
    }

    #[test]
    fn rounding_is_half_up_away_from_zero() {
        check(&[
            ("0.005", "壹分"),
            ("0.004", "零元整"),
            ("0.015", "贰分"),
            ("0.025", "叁分"),
            ("1.995", "贰元整"),
            ("9999.995", "壹万元整"),
            ("-0.005", "负壹分"),
            ("-0.004", "零元整"),
            ("-0.00", "零元整"),
        ]);
    }

    #[test]
    fn negative_amounts() {
        check(&[
            ("-0.01", "负壹分"),
            ("-0.50", "负伍角"),
            ("-1", "负壹元整"),
            ("-10.05", "负壹拾元零伍分"),
            ("-100010000", "负壹亿零壹万元整"),
        ]);
    }

    #[test]
    fn extremes_do_not_panic() {
        let max = amount_in_words(Decimal::MAX);
        assert!(max.starts_with('柒'), "{max}");
        assert!(max.ends_with("元整"), "{max}");
        let min = amount_in_words(Decimal::MIN);
        assert_eq!(min, format!("负{max}"));
        // 1e28: nested grouping, 万 亿 亿 亿.
        assert_eq!(w("10000000000000000000000000000"), "壹万亿亿亿元整");
        // Smallest positive Decimal rounds to zero.
        assert_eq!(amount_in_words(Decimal::new(1, 28)), "零元整");
    }

    /// An independent, recursive reading of the SPEC rule, used as an oracle: a group
    /// boundary gets a 零 exactly when the lower part is non-zero and its leading digit is
    /// not at a 仟 position (of the lower part's top group).
    fn reference_integer(n: u128) -> String {
        fn four(n: u128) -> String {
            // 1..=9999, zeros between non-zero digits collapse to one 零.
            let ds = [n / 1000, n / 100 % 10, n / 10 % 10, n % 10];
            let units = ["仟", "佰", "拾", ""];
            let mut s = String::new();
            let mut zero = false;
            let mut started = false;
            for (d, u) in ds.iter().zip(units) {
                if *d == 0 {
                    zero = started;
                } else {
                    if zero {
                        s.push('零');
                    }
                    s.push(DIGITS[*d as usize]);
                    s.push_str(u);
                    started = true;
                    zero = false;
                }
            }
            s
        }
        fn eight(n: u128) -> String {
            // 1..=99_999_999
            let (hi, lo) = (n / 10_000, n % 10_000);
            if hi == 0 {
                return four(lo);
            }
            let mut s = four(hi) + "万";
            if lo != 0 {
                if lo < 1000 {
                    s.push('零');
                }
                s += &four(lo);
            }
            s
        }
        fn full(n: u128) -> String {
            let (hi, lo) = (n / 100_000_000, n % 100_000_000);
            if hi == 0 {
                return eight(lo);
            }
            let mut s = full(hi) + "亿";
            if lo != 0 {
                // Leading digit of `lo` at a 仟 position: 仟万 (>= 1e7) or 仟 (1000..=9999).
                let at_qian = lo >= 10_000_000 || (1000..10_000).contains(&lo);
                if !at_qian {
                    s.push('零');
                }
                s += &eight(lo);
            }
            s
        }
        full(n)
    }

    fn reference(yuan: u128, cents: u32) -> String {
        let (jiao, fen) = ((cents / 10) as usize, (cents % 10) as usize);
        let mut s = String::new();
        if yuan == 0 && cents == 0 {
            return "零元整".into();
        }
        if yuan > 0 {
            s += &reference_integer(yuan);
            s.push('元');
        }
        match (jiao, fen) {
            (0, 0) => s.push('整'),
            (0, f) => {
                if yuan > 0 {
                    s.push('零');
                }
                s.push(DIGITS[f]);
                s.push('分');
            }
            (j, 0) => {
                s.push(DIGITS[j]);
                s.push('角');
            }
            (j, f) => {
                s.push(DIGITS[j]);
                s.push('角');
                s.push(DIGITS[f]);
                s.push('分');
            }
        }
        s
    }

    fn any_decimal() -> impl Strategy<Value = Decimal> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            0u32..=28,
        )
            .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale))
    }

    /// Amounts with many zero digits, which is where the 零 rules matter.
    fn sparse_amount() -> impl Strategy<Value = (u128, u32)> {
        (
            proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => 1u8..=9], 1..=20),
            prop_oneof![2 => Just(0u32), 1 => 0u32..100, 1 => Just(5u32), 1 => Just(50u32)],
        )
            .prop_map(|(ds, cents)| {
                let yuan = ds.iter().fold(0u128, |acc, &d| acc * 10 + u128::from(d));
                (yuan, cents)
            })
    }

    proptest! {
        #[test]
        fn never_panics_and_sign_is_only_a_prefix(x in any_decimal()) {
            let pos = amount_in_words(x.abs());
            let neg = amount_in_words(-x.abs());
            prop_assert!(!pos.starts_with('负'));
            prop_assert!(pos.ends_with('整') || pos.ends_with('角') || pos.ends_with('分'));
            let rounds_to_zero = x
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
                .is_zero();
            if rounds_to_zero {
                prop_assert_eq!(&pos, "零元整");
                prop_assert_eq!(&neg, "零元整");
            } else {
                prop_assert_eq!(neg, format!("负{pos}"));
            }
        }

        #[test]
        fn matches_recursive_reference((yuan, cents) in sparse_amount()) {
            let d = Decimal::from_i128_with_scale((yuan * 100 + u128::from(cents)) as i128, 2);
            prop_assert_eq!(amount_in_words(d), reference(yuan, cents), "amount {}", d);
        }

        #[test]
        fn matches_reference_on_dense_amounts(yuan in 0u128..1_000_000_000_000_000_000, cents in 0u32..100) {
            let d = Decimal::from_i128_with_scale((yuan * 100 + u128::from(cents)) as i128, 2);
            prop_assert_eq!(amount_in_words(d), reference(yuan, cents), "amount {}", d);
        }

        #[test]
        fn no_double_zero_and_no_zero_next_to_units(x in any_decimal()) {
            let s = amount_in_words(x);
            prop_assert!(!s.contains("零零"), "{}", s);
            prop_assert!(!s.contains("零元") || s == "零元整", "{}", s);
            prop_assert!(!s.contains("零万") && !s.contains("零亿"), "{}", s);
            // After 万 or 亿 a 仟 digit never gets a 零: no "万零X仟" / "亿零X仟".
            let cs: Vec<char> = s.chars().collect();
            for win in cs.windows(4) {
                let bad = matches!(win[0], '万' | '亿') && win[1] == '零' && win[3] == '仟';
                prop_assert!(!bad, "{}", s);
            }
            prop_assert!(!s.contains("元零角"), "{}", s);
        }
    }
}
