//! Bad input through the CLI (SPEC 8, 9): every refusal exits 2, names the field, and
//! changes nothing; the small commands print exactly what SPEC 9 says.

use kaipiao_tests::*;
use serde_json::{json, Value};

fn unchanged(before: &Value, after: &Value) {
    for k in ["head", "numbers_left", "pending"] {
        assert_eq!(before[k], after[k], "`{k}` changed after a refused draft");
    }
}

#[test]
fn refused_drafts_name_the_field_and_change_nothing() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.issue(&small_draft("先开一张", "10"));
    let before = shop.status();
    for k in [
        "device_id", "pending", "oldest_pending_at", "offline_hours_left", "offline_amount_left",
        "numbers_left", "head", "last_sync_at",
    ] {
        assert!(before.get(k).is_some(), "status --json lacks `{k}`: {before}");
    }
    assert_eq!(before["device_id"], json!(shop.device_id));
    assert_eq!(u(&before, "/head/seq"), 1);

    // A rate that does not exist.
    let bad_rate = draft("ordinary", buyer("某人", ""), vec![line("商品", "1", "10", "0.07", "")]);
    let out = shop.try_issue(&bad_rate);
    out.expect_code(2);
    assert!(out.stderr.contains("lines[0].tax_rate"), "names lines[0].tax_rate\n{out}");
    for rate in RATES.iter().filter(|r| **r != "0") {
        assert!(out.stderr.contains(rate), "lists the allowed rate {rate}\n{out}");
    }
    unchanged(&before, &shop.status());

    // A special invoice needs the buyer's tax ID.
    let special = draft("special", buyer("某公司", ""), vec![line("服务", "1", "10", "0.06", "")]);
    let out = shop.try_issue(&special);
    out.expect_code(2);
    assert!(out.stderr.contains("buyer.tax_id"), "names buyer.tax_id\n{out}");
    unchanged(&before, &shop.status());

    // A special invoice with an invalid buyer tax ID.
    let special = draft("special", buyer("某公司", &invalid_tax_id()), vec![line("服务", "1", "10", "0.06", "")]);
    let out = shop.try_issue(&special);
    out.expect_code(2);
    assert!(out.stderr.contains("buyer.tax_id"), "names buyer.tax_id\n{out}");

    // Malformed JSON, from a file and from stdin.
    let p = shop.write_file("broken.json", b"{\"kind\": \"ordinary\", \"lines\": [");
    shop.kaipiao(&["issue", "--file", p.to_str().unwrap()]).expect_code(2);
    shop.kaipiao_stdin(&["issue", "--file", "-"], b"not json at all").expect_code(2);
    unchanged(&before, &shop.status());

    // An unknown flag.
    shop.kaipiao(&["issue", "--no-such-flag", "x"]).expect_code(2);
    shop.kaipiao(&["status", "--bogus"]).expect_code(2);

    // Omitted optional fields take their defaults; a draft from stdin works.
    let minimal = r#"{"kind": "ordinary", "buyer": {"name": "散客"},
        "lines": [{"name": "咖啡", "quantity": "2", "unit_price": "15", "tax_rate": "0.06"}]}"#;
    let out = shop.kaipiao_stdin(&["--json", "issue", "--file", "-"], minimal.as_bytes());
    out.expect_code(0);
    let env = out.json();
    assert_eq!(env["invoice"]["lines"][0]["treatment"], json!("standard"));
    assert_eq!(env["invoice"]["lines"][0]["tax_code"], json!(""));
    assert_eq!(env["invoice"]["buyer"]["tax_id"], json!(""));
    assert_eq!(env["invoice"]["original"], Value::Null);
    assert_eq!(env["invoice"]["total"], json!("31.80"));
    assert_eq!(u(&env, "/invoice/seq"), 2);
}

#[test]
fn check_tax_id_and_words_print_one_line_per_argument() {
    let shop = Shop::init_only();
    let good = buyer_tax_id();
    let bad = invalid_tax_id();
    let out = shop.kaipiao(&["check-tax-id", &good, &bad]);
    out.expect_code(2);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per ID\n{out}");
    assert_eq!(lines[0], format!("{good} valid"));
    let reason = lines[1]
        .strip_prefix(&format!("{bad} invalid: "))
        .unwrap_or_else(|| panic!("`ID invalid: reason`\n{out}"));
    assert!(!reason.trim().is_empty(), "a reason is given\n{out}");
    shop.kaipiao(&["check-tax-id", &good, &seller_tax_id()]).expect_code(0);
    // Normalised before checking: trimmed, upper-cased, inner spaces removed.
    let spaced = format!(" {} {} ", &good[..9].to_lowercase(), &good[9..]);
    shop.kaipiao(&["check-tax-id", &spaced]).expect_code(0);

    let out = shop.kaipiao(&["words", "1234.56", "1005", "-62.33"]);
    out.expect_code(0);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["壹仟贰佰叁拾肆元伍角陆分", "壹仟零伍元整", "负陆拾贰元叁角叁分"],
        "{out}"
    );
    let out = shop.kaipiao(&["words", "100010000", "0.05", "20000.05", "1409.50"]);
    out.expect_code(0);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["壹亿零壹万元整", "伍分", "贰万元零伍分", "壹仟肆佰零玖元伍角"],
        "{out}"
    );
}

#[test]
fn json_output_is_exactly_one_document() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let p = shop.write_draft(&small_draft("一", "1"));
    let p = p.to_str().unwrap();
    // --json is global and accepted anywhere on the line.
    for args in [
        vec!["--json", "issue", "--file", p],
        vec!["issue", "--json", "--file", p],
        vec!["issue", "--file", p, "--json"],
        vec!["--json", "list"],
        vec!["list", "--json"],
        vec!["--json", "list", "--status", "pending"],
        vec!["--json", "status"],
        vec!["status", "--json"],
        vec!["--json", "sync"],
        vec!["sync", "--json"],
        vec!["--json", "verify"],
    ] {
        let out = shop.kaipiao(&args);
        out.expect_code(0);
        let _ = out.json(); // exactly one document, or it panics with the output
    }
    assert_eq!(shop.list(None).len(), 3);
    assert!(shop.list(Some("pending")).is_empty());
    // A failing command with --json still prints one document.
    let out = shop.try_issue(&json!({"kind": "ordinary", "lines": []}));
    out.expect_code(2);
    let _ = out.json();
}
