//! Property: whatever valid drafts the clerk issues (any kind, rates, treatments, prices
//! in or out of tax, credit notes), the ledger still verifies afterwards.

use kaipiao_ledger::Ledger;
use kaipiao_testkit::fixtures::parse_draft as draft;
use kaipiao_testkit::fixtures::*;
use kaipiao_testkit::ids::buyer_tax_id;
use kaipiao_testkit::keys::*;
use kaipiao_testkit::ledger::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct LineSpec {
    qty: (u64, u32),
    price: (u64, u32),
    rate: usize,
    zero_treatment: usize,
}

#[derive(Debug, Clone)]
struct DraftSpec {
    special: bool,
    inclusive: bool,
    lines: Vec<LineSpec>,
    /// Credit this share (in tenths) of the first line of the draft just issued.
    credit_tenths: Option<u64>,
}

fn decimal(units: u64, scale: u32) -> String {
    rust_decimal::Decimal::new(units as i64, scale)
        .normalize()
        .to_string()
}

fn line_spec() -> impl Strategy<Value = LineSpec> {
    (
        (1u64..100_000, 0u32..4),
        (0u64..10_000_000, 0u32..3),
        0usize..kaipiao_core::RATES.len(),
        0usize..3,
    )
        .prop_map(|(qty, price, rate, zero_treatment)| LineSpec {
            qty,
            price,
            rate,
            zero_treatment,
        })
}

fn draft_spec() -> impl Strategy<Value = DraftSpec> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(line_spec(), 1..6),
        prop::option::of(1u64..=10),
    )
        .prop_map(|(special, inclusive, lines, credit_tenths)| DraftSpec {
            special,
            inclusive,
            lines,
            credit_tenths,
        })
}

fn to_draft(spec: &DraftSpec) -> Value {
    let lines: Vec<Value> = spec
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let rate = kaipiao_core::RATES[l.rate];
            let treatment = if rate == "0" {
                // A special invoice takes no exempt or non-taxable lines.
                if spec.special {
                    "zero_rated"
                } else {
                    ["zero_rated", "exempt", "non_taxable"][l.zero_treatment]
                }
            } else {
                ""
            };
            json!({
                "name": format!("商品{i}"),
                "quantity": decimal(l.qty.0, l.qty.1),
                "unit_price": decimal(l.price.0, l.price.1),
                "tax_rate": rate,
                "treatment": treatment
            })
        })
        .collect();
    json!({
        "kind": if spec.special { "special" } else { "ordinary" },
        "buyer": {"name": "买方", "tax_id": if spec.special { buyer_tax_id() } else { String::new() }},
        "price_includes_tax": spec.inclusive,
        "lines": lines,
        "issuer": "prop"
    })
}

#[test]
fn issued_drafts_always_verify() {
    let s = with_lease(&Terms {
        first: 1,
        last: 99_999_999,
        hours: 72,
        cap: "9999999999999999.00",
        single: "9999999999999999.00",
    });
    let mut runner = TestRunner::new(Config {
        // PROPTEST_CASES=1000 for a longer run; 40 keeps `cargo test` quick.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40),
        failure_persistence: None,
        ..Config::default()
    });
    let tick = std::cell::Cell::new(0i64);
    let result = runner.run(&prop::collection::vec(draft_spec(), 1..4), |specs| {
        for spec in &specs {
            tick.set(tick.get() + 1);
            let now = t0() + chrono::Duration::seconds(tick.get());
            let issued = s
                .ledger
                .issue(&draft(to_draft(spec)), &s.key, now)
                .map_err(|e| TestCaseError::fail(format!("refused {spec:?}: {e}")))?;
            if let Some(tenths) = spec.credit_tenths {
                let first = &issued.envelope.invoice.lines[0];
                let qty: rust_decimal::Decimal = first
                    .quantity
                    .parse()
                    .map_err(|_| TestCaseError::fail("qty"))?;
                let part = (qty * rust_decimal::Decimal::new(tenths as i64, 1)).round_dp(8);
                if part.is_zero() {
                    continue;
                }
                let credit = json!({
                    "kind": "credit",
                    "original": issued.envelope.invoice.number,
                    "buyer": {"name": "买方", "tax_id": issued.envelope.invoice.buyer.tax_id},
                    "lines": [{
                        "name": first.name, "quantity": (-part).normalize().to_string(),
                        "tax_rate": first.tax_rate, "treatment": first.treatment.as_str()
                    }]
                });
                s.ledger
                    .issue(&draft(credit), &s.key, now)
                    .map_err(|e| TestCaseError::fail(format!("credit refused: {e}")))?;
            }
        }
        s.ledger
            .verify()
            .map_err(|e| TestCaseError::fail(format!("verify: {e}")))?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // And the same holds for a fresh reader of the file.
    let again = Ledger::open(s.dir.path()).unwrap();
    let report = again.verify().unwrap();
    assert!(
        report.invoices >= u64::from(runner.config().cases),
        "{report:?}"
    );
    let credits = again
        .list(&kaipiao_ledger::ListFilter::default())
        .unwrap()
        .iter()
        .filter(|i| i.kind == "credit")
        .count();
    assert!(credits > 0, "the strategy must produce credit notes too");
}
