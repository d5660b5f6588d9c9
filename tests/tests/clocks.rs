//! Clocks (issue 10, items 3 and 4), over real processes: the clerk's `kaipiao` runs
//! under libfaketime with its wall clock set wrong, against a real taxd on the right time.
//! A wrong clock may cost the invoices issued under it (rejected, then reissued); it never
//! costs the device: once the clock is right, issuing and syncing work again, with no hand
//! edits, and the chain verifies.

use kaipiao_tests::*;
use serde_json::{json, Value};

const TWO_HOURS: i64 = 2 * 3600;

/// The reasons of the stored receipt of invoice `number` (`show --json`).
fn reasons(shop: &Shop, number: &str) -> Vec<String> {
    let shown = shop.show(number);
    shown["receipt"]["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no receipt reasons: {shown}"))
        .iter()
        .map(|r| r["code"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn number_of(issued: &Value) -> String {
    issued["invoice"]["number"]
        .as_str()
        .unwrap_or_else(|| panic!("no number: {issued}"))
        .to_string()
}

/// The clock two hours ahead, then put right.
#[test]
fn the_clock_going_forward_and_then_back_is_recovered() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let draft = shop.write_draft(&small_draft("客户甲", "10.00"));
    let draft = draft.to_str().expect("path");

    // Two hours ahead: issued locally (nothing says the clock is wrong yet), then filed
    // and rejected as issued_in_future; the sync's signed requests meet 401 clock_skew,
    // and the authority's measure of the clock is kept.
    let out = shop.kaipiao_with_clock(TWO_HOURS, &["--json", "issue", "--file", draft]);
    out.expect_code(0);
    let future = number_of(&out.json());
    shop.kaipiao_with_clock(TWO_HOURS, &["--json", "sync"])
        .expect_code(0);
    assert_eq!(reasons(&shop, &future), ["issued_in_future"]);

    // Still two hours ahead: issuance now refuses, naming the authority's time.
    let out = shop.kaipiao_with_clock(TWO_HOURS, &["--json", "issue", "--file", draft]);
    out.expect_code(2);
    let doc = out.json();
    assert_eq!(doc["error"]["code"], json!("clock_ahead"), "{doc}");
    assert_eq!(doc["error"]["field"], json!("issued_at"), "{doc}");

    // The clock put right: the rejected future invoice holds nothing back, locally or at
    // the authority (SPEC 10), and the device issues and files again.
    let issued = shop.issue(&small_draft("客户乙", "20.00"));
    let fixed = number_of(&issued);
    let out = shop.sync();
    out.expect_code(0);
    assert_eq!(out.json()["accepted"], json!(1), "{out}");
    assert_eq!(shop.show(&fixed)["status"], json!("accepted"));
    let again = shop.issue(&small_draft("客户丙", "30.00"));
    shop.sync().expect_code(0);
    assert_eq!(shop.show(&number_of(&again))["status"], json!("accepted"));

    // Nothing to mend by hand: the chain verifies here and in the independent verifier.
    shop.kaipiao(&["verify"]).expect_code(0);
    assert_settled(&shop, &taxd, 3, Receipts::Identical);
}

/// The clock two hours behind: the invoice is dated before its number's lease was granted
/// and the authority rejects it, naming the rule (item 4); the clock put right, the
/// device goes on.
#[test]
fn an_invoice_dated_before_its_lease_is_rejected_and_the_device_goes_on() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let draft = shop.write_draft(&small_draft("客户甲", "10.00"));
    let out = shop.kaipiao_with_clock(
        -TWO_HOURS,
        &["--json", "issue", "--file", draft.to_str().expect("path")],
    );
    out.expect_code(0);
    let early = number_of(&out.json());
    shop.sync().expect_code(0);
    assert_eq!(shop.show(&early)["status"], json!("rejected"));
    assert_eq!(reasons(&shop, &early), ["issued_before_lease"]);

    let issued = shop.issue(&small_draft("客户乙", "20.00"));
    shop.sync().expect_code(0);
    assert_eq!(shop.show(&number_of(&issued))["status"], json!("accepted"));
    assert_settled(&shop, &taxd, 2, Receipts::Identical);
}
