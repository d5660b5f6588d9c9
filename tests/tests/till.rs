//! Per-till defaults (issue 12, item 5) from the CLI: shown, set, checked, kept in the
//! ledger (so the app on the same data directory starts from them), and never applied
//! by `kaipiao issue`, which takes its draft as written.

use kaipiao_tests::*;
use serde_json::json;

#[test]
fn a_tills_defaults_are_set_once_and_issue_is_unchanged() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let shown = shop.kaipiao(&["--json", "till"]);
    shown.expect_code(0);
    assert_eq!(shown.json(), json!({"issuer": "", "kind": "ordinary"}));

    let set = shop.kaipiao(&[
        "--json",
        "till",
        "set",
        "--issuer",
        "王会计",
        "--kind",
        "special",
    ]);
    set.expect_code(0);
    assert_eq!(set.json(), json!({"issuer": "王会计", "kind": "special"}));
    // One option changes only itself.
    let set = shop.kaipiao(&["--json", "till", "set", "--kind", "ordinary"]);
    assert_eq!(set.json(), json!({"issuer": "王会计", "kind": "ordinary"}));

    let bad = shop.kaipiao(&["--json", "till", "set", "--kind", "credit"]);
    bad.expect_code(2);
    assert_eq!(
        (
            bad.json()["error"]["code"].clone(),
            bad.json()["error"]["field"].clone()
        ),
        (json!("invalid_kind"), json!("kind"))
    );
    let long = "王".repeat(101);
    let bad = shop.kaipiao(&["--json", "till", "set", "--issuer", &long]);
    bad.expect_code(2);
    assert_eq!(bad.json()["error"]["field"], json!("issuer"));
    assert_eq!(
        shop.kaipiao(&["--json", "till"]).json()["issuer"],
        json!("王会计")
    );

    // `issue` takes the draft as written: no issuer in it, none on the invoice.
    let mut draft = small_draft("客户丙", "10.00");
    draft["issuer"] = json!("");
    let issued = shop.issue(&draft);
    assert_eq!(issued["invoice"]["issuer"], json!(""));
    assert_eq!(issued["invoice"]["kind"], json!("ordinary"));
}
