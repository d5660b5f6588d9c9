//! Property: for random valid drafts, `compute_lines` computes exactly what SPEC 2 says
//! (checked against an independent fixed-point computation on i128), or refuses only when
//! the authority's tolerances would really be broken; and what it builds passes the audit.

use kaipiao_core::{compute_lines, rules, Treatment};
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::money::*;
use kaipiao_testkit::strategies::*;
use proptest::prelude::*;

fn is_money(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    matches!(body.split_once('.'), Some((i, f)) if !i.is_empty() && f.len() == 2
        && i.chars().chain(f.chars()).all(|c| c.is_ascii_digit()))
        && s != "-0.00"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn totals_and_rounding_match_an_independent_computation(g in gen_draft(20, DISTINCT_NAMES)) {
        let d = g.draft();
        let expected: Vec<Expected> = g
            .lines
            .iter()
            .map(|l| expected_line(l.q, l.p, &l.rate, g.includes_tax))
            .collect();
        let lines_ok = expected.iter().zip(&g.lines).all(|(e, l)| {
            line_within_tolerance(&e.quantity, &e.unit_price, e.amount_cents, e.tax_cents, &l.rate)
        });
        let invoice_ok = invoice_within_tolerance(
            &expected.iter().zip(&g.lines).map(|(e, l)| (e.amount_cents, e.tax_cents, l.rate.as_str())).collect::<Vec<_>>(),
        );

        match compute_lines(&d, None) {
            Err(e) => {
                // Refused only for the authority's tolerances (or range), and only when the
                // independent computation agrees that a tolerance is broken.
                prop_assert!(
                    e.code == "rounding_tolerance" || e.code == "out_of_range",
                    "unexpected refusal {} ({})", e.code, e
                );
                prop_assert!(!(lines_ok && invoice_ok), "refused although within tolerance: {}", e);
                if !lines_ok {
                    let first_bad = expected.iter().zip(&g.lines).position(|(e, l)| {
                        !line_within_tolerance(&e.quantity, &e.unit_price, e.amount_cents, e.tax_cents, &l.rate)
                    });
                    prop_assert_eq!(e.field, format!("lines[{}].quantity", first_bad.unwrap()));
                } else {
                    prop_assert_eq!(e.field, "lines");
                }
            }
            Ok(c) => {
                prop_assert!(lines_ok && invoice_ok, "accepted although outside tolerance");
                prop_assert_eq!(c.lines.len(), g.lines.len());
                let (mut sum_a, mut sum_t) = (0i128, 0i128);
                for ((l, e), gl) in c.lines.iter().zip(&expected).zip(&g.lines) {
                    prop_assert!(is_money(&l.amount) && is_money(&l.tax), "{:?}", l);
                    prop_assert_eq!(&l.quantity, &e.quantity);
                    prop_assert_eq!(&l.unit_price, &e.unit_price);
                    prop_assert_eq!(cents(&l.amount), e.amount_cents, "amount of {:?}", gl);
                    prop_assert_eq!(cents(&l.tax), e.tax_cents, "tax of {:?}", gl);
                    prop_assert_eq!(&l.tax_rate, &gl.rate);
                    let treatment = if gl.treatment.is_empty() { "standard" } else { gl.treatment.as_str() };
                    prop_assert_eq!(l.treatment.as_str(), treatment);
                    prop_assert!(line_within_tolerance(&l.quantity, &l.unit_price, cents(&l.amount), cents(&l.tax), &l.tax_rate));
                    sum_a += cents(&l.amount);
                    sum_t += cents(&l.tax);
                }
                prop_assert_eq!(&c.total_amount, &money(sum_a));
                prop_assert_eq!(&c.total_tax, &money(sum_t));
                prop_assert_eq!(&c.total, &money(sum_a + sum_t));
                prop_assert!(is_money(&c.total_amount) && is_money(&c.total_tax) && is_money(&c.total));

                let inv = build(&d).expect("compute_lines accepted it, so must build_invoice");
                prop_assert_eq!(&inv.lines, &c.lines);
                prop_assert_eq!(&inv.total, &c.total);
                if g.special {
                    prop_assert!(inv.lines.iter().all(|l| !matches!(l.treatment, Treatment::Exempt | Treatment::NonTaxable)));
                }
                let findings = rules::check_invoice(&inv, None);
                prop_assert!(findings.is_empty(), "audit findings on a built invoice: {:?}", findings);
            }
        }
    }
}

/// The same property with the 0.01 tolerance in play: large quantities at a tax-inclusive
/// price, where round(amount / qty, 8) x qty drifts from the amount.
#[test]
fn large_tax_inclusive_quantities_are_refused_naming_the_line() {
    let mut d = draft(
        "ordinary",
        vec![
            line("纸", "1", "1", "0.13"),
            line("煤", "123456789.12345678", "0.03", "0.13"),
        ],
    );
    d.price_includes_tax = true;
    let q = Fixed::parse("123456789.12345678");
    let e = expected_line(q, Fixed::parse("0.03"), "0.13", true);
    assert!(!line_within_tolerance(
        &e.quantity,
        &e.unit_price,
        e.amount_cents,
        e.tax_cents,
        "0.13"
    ));
    let err = compute_lines(&d, None).unwrap_err();
    assert_eq!(err.code, "rounding_tolerance");
    assert_eq!(err.field, "lines[1].quantity");
    assert!(
        err.en.contains("change the quantity or price"),
        "{}",
        err.en
    );
}

/// The invoice-level tolerance: 2000 lines whose tax each rounds down by 0.004 add up to
/// 8.00 below sum(amount x rate), over the 1.27 the authority allows.
#[test]
fn invoice_tolerance_refuses_naming_lines() {
    // 0.80 x 0.13 = 0.104 -> tax 0.10, 0.004 under amount x rate on every line.
    let lines = vec![line("服务费", "1", "0.8", "0.13"); 2000];
    let err = compute_lines(&draft("ordinary", lines), None).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.field.as_str()),
        ("rounding_tolerance", "lines")
    );
    assert!(err.en.contains("split the invoice"), "{}", err.en);
    // 300 such lines are 1.20 off: still accepted.
    let lines = vec![line("服务费", "1", "0.8", "0.13"); 300];
    let c = compute_lines(&draft("ordinary", lines), None).unwrap();
    assert_eq!(
        (
            c.total_amount.as_str(),
            c.total_tax.as_str(),
            c.total.as_str()
        ),
        ("240.00", "30.00", "270.00")
    );
}
