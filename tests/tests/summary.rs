//! `kaipiao summary --month` (issue 12, item 3) over a real ledger filed with a real
//! taxd: accepted invoices by kind, rate and sign; a credit note under the kind it
//! credits, red; pending apart; rejected left out; the rows add up to the totals, and the
//! totals to the ledger's own invoices (the export).

use kaipiao_tests::*;
use serde_json::{json, Value};

fn cents(v: &Value) -> i64 {
    cents_of(v.as_str().expect("money"))
}

#[test]
fn a_months_summary_adds_up_to_the_ledger() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    // Rejected (dated before its lease: the clock two hours behind): left out.
    let early = shop.write_draft(&small_draft("客户乙", "20.00"));
    shop.kaipiao_with_clock(
        -2 * 3600,
        &["--json", "issue", "--file", early.to_str().unwrap()],
    )
    .expect_code(0);
    // Ordinary, two rates: counts once in each rate's row, once in the totals.
    let mixed = shop.issue(&draft(
        "ordinary",
        buyer("客户甲", ""),
        vec![
            line("*日用杂品*收纳盒", "2", "50", "0.13", ""),
            line("*现代服务*咨询费", "1", "300", "0.06", ""),
        ],
    ));
    // Special at 13%, then a credit note against part of it.
    let special = shop.issue(&draft(
        "special",
        buyer("深圳市某某科技有限公司", &buyer_tax_id()),
        vec![line("*计算机配套产品*键盘", "10", "120", "0.13", "")],
    ));
    shop.sync().expect_code(0);
    let mut credit = draft(
        "credit",
        buyer("深圳市某某科技有限公司", &buyer_tax_id()),
        vec![line("*计算机配套产品*键盘", "-2", "", "0.13", "")],
    );
    credit["original"] = special["invoice"]["number"].clone();
    credit["credit_reason"] = json!("02");
    shop.issue(&credit);
    shop.sync().expect_code(0);
    // Pending: issued while the authority is down.
    taxd.set_faults(json!({"outage": true}));
    shop.issue(&small_draft("客户丁", "10.00"));

    let issued_at = s(&mixed, "/invoice/issued_at").to_string();
    let month = kaipiao_core::time::china_date(&issued_at)
        .expect("a date")
        .format("%Y-%m")
        .to_string();
    let out = shop.kaipiao(&["--json", "summary", "--month", &month]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["month"], json!(month));
    let rows: Vec<(String, String, String, u64, String, String)> = doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                s(r, "/kind").to_string(),
                s(r, "/tax_rate").to_string(),
                s(r, "/sign").to_string(),
                r["count"].as_u64().unwrap(),
                s(r, "/amount").to_string(),
                s(r, "/tax").to_string(),
            )
        })
        .collect();
    let row = |k: &str, rate: &str, sign: &str, n: u64, a: &str, t: &str| {
        (
            k.to_string(),
            rate.to_string(),
            sign.to_string(),
            n,
            a.to_string(),
            t.to_string(),
        )
    };
    assert_eq!(
        rows,
        [
            row("ordinary", "0.06", "blue", 1, "300.00", "18.00"),
            row("ordinary", "0.13", "blue", 1, "100.00", "13.00"),
            row("special", "0.13", "blue", 1, "1200.00", "156.00"),
            row("special", "0.13", "red", 1, "-240.00", "-31.20"),
        ]
    );
    assert_eq!(
        doc["pending"],
        json!({"count": 1, "amount": "10.00", "tax": "1.30"})
    );
    assert_eq!(
        doc["totals"],
        json!({"count": 3, "amount": "1360.00", "tax": "155.80", "total": "1515.80"})
    );
    // The rows add up to the totals exactly...
    let sum = |f: &str| rows_sum(&doc, f);
    assert_eq!(sum("amount"), cents(&doc["totals"]["amount"]));
    assert_eq!(sum("tax"), cents(&doc["totals"]["tax"]));
    // ...and the totals are the ledger's accepted invoices of the month.
    let (_, lines) = shop.export();
    let accepted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["status"] == json!("accepted"))
        .collect();
    let ledger_amount: i64 = accepted
        .iter()
        .map(|l| cents(&l["invoice"]["total_amount"]))
        .sum();
    let ledger_tax: i64 = accepted
        .iter()
        .map(|l| cents(&l["invoice"]["total_tax"]))
        .sum();
    assert_eq!(
        (ledger_amount, ledger_tax, accepted.len() as u64),
        (
            cents(&doc["totals"]["amount"]),
            cents(&doc["totals"]["tax"]),
            doc["totals"]["count"].as_u64().unwrap()
        )
    );

    // Another month has nothing; a malformed one is named.
    let empty = shop.kaipiao(&["--json", "summary", "--month", "2020-01"]);
    empty.expect_code(0);
    assert_eq!(empty.json()["totals"]["count"], json!(0));
    assert_eq!(empty.json()["rows"], json!([]));
    for bad in ["2026-13", "202611", "2026-1", "last month"] {
        let out = shop.kaipiao(&["--json", "summary", "--month", bad]);
        out.expect_code(2);
        assert_eq!(out.json()["error"]["field"], json!("month"), "{bad}");
    }
}

fn rows_sum(doc: &Value, field: &str) -> i64 {
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| cents(&r[field]))
        .sum()
}
