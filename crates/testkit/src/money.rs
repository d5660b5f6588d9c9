//! An independent model of the money rules of SPEC 2: fixed-point arithmetic on `i128`
//! (deliberately neither `kaipiao_core::money` nor `rust_decimal`), the amounts and taxes a
//! line must come to, and the authority's tolerances. The property tests hold the product
//! against it.

/// A decimal value `m / 10^s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub m: i128,
    pub s: u32,
}

pub fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// n / d rounded half away from zero; d > 0.
pub fn div_half_up(n: i128, d: i128) -> i128 {
    assert!(d > 0);
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d {
        q + n.signum()
    } else {
        q
    }
}

// Plain methods rather than `std::ops`: the model reads as the arithmetic it does, and the
// property tests call them without importing any trait.
#[allow(clippy::should_implement_trait)]
impl Fixed {
    pub fn new(m: i128, s: u32) -> Fixed {
        Fixed { m, s }
    }

    /// Plain decimal text: `-?digits(.digits)?`.
    pub fn parse(text: &str) -> Fixed {
        let (neg, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        assert!(
            !int.is_empty() && (int.to_owned() + frac).chars().all(|c| c.is_ascii_digit()),
            "not a plain decimal: {text:?}"
        );
        let m: i128 = format!("{int}{frac}").parse().unwrap();
        Fixed::new(if neg { -m } else { m }, frac.len() as u32)
    }

    /// Mantissa at scale `s` (>= self.s).
    pub fn at(self, s: u32) -> i128 {
        assert!(s >= self.s);
        self.m * pow10(s - self.s)
    }

    /// Rounded half away from zero to `dp` places, as a mantissa at scale `dp`.
    pub fn round_to(self, dp: u32) -> i128 {
        if self.s <= dp {
            self.at(dp)
        } else {
            div_half_up(self.m, pow10(self.s - dp))
        }
    }

    pub fn mul(self, o: Fixed) -> Fixed {
        Fixed::new(self.m * o.m, self.s + o.s)
    }

    pub fn neg(self) -> Fixed {
        Fixed::new(-self.m, self.s)
    }

    pub fn sub(self, o: Fixed) -> Fixed {
        let s = self.s.max(o.s);
        Fixed::new(self.at(s) - o.at(s), s)
    }

    pub fn add(self, o: Fixed) -> Fixed {
        self.sub(o.neg())
    }

    pub fn is_positive(self) -> bool {
        self.m > 0
    }

    /// |self| <= |bound| (bound non-negative).
    pub fn abs_le(self, bound: Fixed) -> bool {
        let s = self.s.max(bound.s);
        self.at(s).abs() <= bound.at(s)
    }

    /// Normalised text: no trailing zeros, no exponent, "0" for zero.
    pub fn text(self) -> String {
        let (mut m, mut s) = (self.m, self.s);
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        let digits = m.unsigned_abs().to_string();
        let sign = if m < 0 { "-" } else { "" };
        if s == 0 {
            return format!("{sign}{digits}");
        }
        let s = s as usize;
        let padded = format!("{digits:0>width$}", width = s + 1);
        let (int, frac) = padded.split_at(padded.len() - s);
        format!("{sign}{int}.{frac}")
    }
}

/// Money text with exactly 2 places from a cent count ("-0.04", "0.00").
pub fn money(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

pub fn cents(money_text: &str) -> i128 {
    let f = Fixed::parse(money_text);
    assert_eq!(f.s, 2, "money must have 2 places: {money_text:?}");
    f.m
}

/// A VAT rate in thousandths ("0.015" -> 15).
pub fn rate_milli(rate: &str) -> i128 {
    Fixed::parse(rate).at(3)
}

/// A line as SPEC 2 computes it, by the independent arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub quantity: String,
    pub unit_price: String,
    pub amount_cents: i128,
    pub tax_cents: i128,
}

/// SPEC 2 for a positive (non-credit) line.
pub fn expected_line(q: Fixed, p: Fixed, rate: &str, includes_tax: bool) -> Expected {
    let r = rate_milli(rate);
    let gross_or_amount = q.mul(p).round_to(2);
    if includes_tax {
        let amount = div_half_up(gross_or_amount * 1000, 1000 + r);
        // unit price = round(amount / q, 8) = amount_cents * 10^(qs + 6) / qm
        let unit = div_half_up(amount * pow10(q.s + 6), q.m);
        Expected {
            quantity: q.text(),
            unit_price: Fixed::new(unit, 8).text(),
            amount_cents: amount,
            tax_cents: gross_or_amount - amount,
        }
    } else {
        Expected {
            quantity: q.text(),
            unit_price: p.text(),
            amount_cents: gross_or_amount,
            tax_cents: div_half_up(gross_or_amount * r, 1000),
        }
    }
}

/// The authority's per-line tolerances of SPEC 2, exactly.
pub fn line_within_tolerance(
    q: &str,
    unit_price: &str,
    amount: i128,
    tax: i128,
    rate: &str,
) -> bool {
    let amount_f = Fixed::new(amount, 2);
    let product = Fixed::parse(q).mul(Fixed::parse(unit_price));
    let amount_ok = product.sub(amount_f).abs_le(Fixed::new(1, 2));
    // amount x rate at scale 5, tax at scale 5; tolerance 0.06.
    let tax_off = amount * rate_milli(rate) - tax * 1000;
    amount_ok && tax_off.abs() <= 6_000
}

/// The per-invoice tolerance: |sum(amount x rate) - sum(tax)| <= 1.27.
pub fn invoice_within_tolerance(lines: &[(i128, i128, &str)]) -> bool {
    let off: i128 = lines
        .iter()
        .map(|(a, t, r)| a * rate_milli(r) - t * 1000)
        .sum();
    off.abs() <= 127_000
}

/// A money string ("-12.30") as whole cents; panics on anything else.
#[track_caller]
pub fn cents_of(s: &str) -> i64 {
    let neg = s.starts_with('-');
    let (a, b) = s
        .trim_start_matches('-')
        .split_once('.')
        .unwrap_or_else(|| panic!("{s:?} is not money with 2 places"));
    let c = a.parse::<i64>().expect("digits") * 100 + b.parse::<i64>().expect("digits");
    if neg {
        -c
    } else {
        c
    }
}
