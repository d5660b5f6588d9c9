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
        "device_id",
        "pending",
        "oldest_pending_at",
        "offline_hours_left",
        "offline_amount_left",
        "numbers_left",
        "head",
        "last_sync_at",
    ] {
        assert!(
            before.get(k).is_some(),
            "status --json lacks `{k}`: {before}"
        );
    }
    assert_eq!(before["device_id"], json!(shop.device_id));
    assert_eq!(u(&before, "/head/seq"), 1);

    // A rate that does not exist.
    let bad_rate = draft(
        "ordinary",
        buyer("某人", ""),
        vec![line("商品", "1", "10", "0.07", "")],
    );
    let out = shop.try_issue(&bad_rate);
    out.expect_code(2);
    assert!(
        out.stderr.contains("lines[0].tax_rate"),
        "names lines[0].tax_rate\n{out}"
    );
    for rate in RATES.iter().filter(|r| **r != "0") {
        assert!(
            out.stderr.contains(rate),
            "lists the allowed rate {rate}\n{out}"
        );
    }
    unchanged(&before, &shop.status());

    // A special invoice needs the buyer's tax ID.
    let special = draft(
        "special",
        buyer("某公司", ""),
        vec![line("服务", "1", "10", "0.06", "")],
    );
    let out = shop.try_issue(&special);
    out.expect_code(2);
    assert!(
        out.stderr.contains("buyer.tax_id"),
        "names buyer.tax_id\n{out}"
    );
    unchanged(&before, &shop.status());

    // A special invoice with an invalid buyer tax ID.
    let special = draft(
        "special",
        buyer("某公司", &invalid_tax_id()),
        vec![line("服务", "1", "10", "0.06", "")],
    );
    let out = shop.try_issue(&special);
    out.expect_code(2);
    assert!(
        out.stderr.contains("buyer.tax_id"),
        "names buyer.tax_id\n{out}"
    );

    // Malformed JSON, from a file and from stdin.
    let p = shop.write_file("broken.json", b"{\"kind\": \"ordinary\", \"lines\": [");
    shop.kaipiao(&["issue", "--file", p.to_str().unwrap()])
        .expect_code(2);
    shop.kaipiao_stdin(&["issue", "--file", "-"], b"not json at all")
        .expect_code(2);
    unchanged(&before, &shop.status());

    // An unknown flag.
    shop.kaipiao(&["issue", "--no-such-flag", "x"])
        .expect_code(2);
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
    shop.kaipiao(&["check-tax-id", &good, &seller_tax_id()])
        .expect_code(0);
    // Normalised before checking: trimmed, upper-cased, inner spaces removed.
    let spaced = format!(" {} {} ", &good[..9].to_lowercase(), &good[9..]);
    shop.kaipiao(&["check-tax-id", &spaced]).expect_code(0);

    let out = shop.kaipiao(&["words", "1234.56", "1005", "-62.33"]);
    out.expect_code(0);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "壹仟贰佰叁拾肆元伍角陆分",
            "壹仟零伍元整",
            "负陆拾贰元叁角叁分"
        ],
        "{out}"
    );
    let out = shop.kaipiao(&["words", "100010000", "0.05", "20000.05", "1409.50"]);
    out.expect_code(0);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "壹亿零壹万元整",
            "伍分",
            "贰万元零伍分",
            "壹仟肆佰零玖元伍角"
        ],
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

#[test]
fn import_stops_at_the_first_refused_line_and_keeps_what_came_before() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let good1 = small_draft("导入一", "10");
    let bad = draft(
        "ordinary",
        buyer("导入二", ""),
        vec![line("商品", "1", "10", "0.07", "")],
    );
    let good3 = small_draft("导入三", "30");
    let text = format!("{good1}\n{bad}\n{good3}\n");
    let p = shop.write_file("drafts.jsonl", text.as_bytes());
    let out = shop.kaipiao(&["--json", "import", "--file", p.to_str().unwrap()]);
    out.expect_code(2);
    let doc = out.json();
    assert_eq!(doc["issued"], json!(1), "{out}");
    assert!(
        doc["first_number"].is_string() && doc["first_number"] == doc["last_number"],
        "{out}"
    );
    assert!(
        out.stderr.contains("line 2") || doc.pointer("/error/line") == Some(&json!(2)),
        "the refused line (2) is named\n{out}"
    );
    assert!(
        out.stderr.contains("lines[0].tax_rate"),
        "and its field\n{out}"
    );
    let rows = shop.list(None);
    assert_eq!(
        rows.len(),
        1,
        "line 1 stays issued, line 3 is not: {rows:?}"
    );
    assert_eq!(rows[0]["number"], doc["first_number"]);
}

#[test]
fn credit_notes_are_bounded_by_their_original() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let original = shop.issue(&draft(
        "ordinary",
        buyer("退货客户", ""),
        vec![line("台灯", "2", "80", "0.13", "")],
    ));
    let number = s(&original, "/invoice/number").to_string();
    let credit = |qty: &str| {
        let mut d = draft(
            "credit",
            buyer("退货客户", ""),
            vec![line("台灯", qty, "80", "0.13", "")],
        );
        d["original"] = json!(number);
        d
    };
    // Crediting more than was sold is refused, naming the line.
    let out = shop.try_issue(&credit("-3"));
    out.expect_code(2);
    assert!(
        out.stderr.contains("lines[0]"),
        "names the credit line\n{out}"
    );
    // One lamp, then the other: the second credit takes the exact remainder.
    let c1 = shop.issue(&credit("-1"));
    assert_eq!(s(&c1, "/invoice/total"), "-90.40");
    let c2 = shop.issue(&credit("-1"));
    assert_eq!(s(&c2, "/invoice/total"), "-90.40");
    // Nothing is left to credit, in this process or any later one.
    shop.try_issue(&credit("-1")).expect_code(2);
    // A credit note cannot itself be credited; a line that is not on the original cannot either.
    let mut d = credit("-1");
    d["original"] = c1["invoice"]["number"].clone();
    shop.try_issue(&d).expect_code(2);
    let mut d = credit("-1");
    d["lines"][0]["name"] = json!("不是这件商品");
    shop.try_issue(&d).expect_code(2);
    // A special invoice may not carry an exempt line.
    let special = draft(
        "special",
        buyer("某公司", &buyer_tax_id()),
        vec![line("图书", "1", "10", "0", "exempt")],
    );
    shop.try_issue(&special).expect_code(2);
    assert_eq!(shop.list(None).len(), 3);
    shop.kaipiao(&["verify"]).expect_code(0);
    let doc = shop.sync_until_complete(3);
    assert_eq!(
        (doc["accepted"].clone(), doc["rejected"].clone()),
        (json!(3), json!(0)),
        "{doc}"
    );
}

/// A refusal from the authority is said in the clerk's language with what to do, as the
/// app says it (one message for both front ends), and `--json` carries its code.
#[test]
fn a_refused_enrolment_token_is_said_in_the_clerks_language() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::init_only();
    let url = taxd.url();
    let args = [
        "--json",
        "enroll",
        "--server",
        &url,
        "--token",
        "not-the-token",
    ];
    let mut zh = shop.command(&args);
    zh.env("LC_ALL", "zh_CN.UTF-8").env("LANG", "zh_CN.UTF-8");
    let out = run_with_deadline(zh, "kaipiao enroll (zh)".into(), None, COMMAND_DEADLINE);
    out.expect_code(2);
    assert!(out.stderr.contains("登记令牌"), "{}", out.stderr);
    let doc: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON document");
    assert_eq!(doc["error"]["code"], "enrollment_token_invalid");
    let en = shop.kaipiao(&args);
    en.expect_code(2);
    assert!(en.stderr.contains("enrolment token"), "{}", en.stderr);
}

#[test]
fn an_invoice_too_big_to_file_is_refused_and_the_chain_after_it_files() {
    // 2,000 lines whose name, spec and unit are 100 four-byte characters each: every field is
    // within its limit, but the signed envelope would be over the 2 MiB the authority
    // accepts for one invoice (413 on every attempt, and the chain blocked behind it).
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.issue(&small_draft("先开一张", "10"));
    let before = shop.status();
    let wide = "𠀀".repeat(100);
    let lines: Vec<Value> = (0..2000)
        .map(|i| {
            let mut l = line(&format!("{i}{}", &wide[16..]), "1", "1", "0.13", "");
            l["spec"] = json!(wide);
            l["unit"] = json!(wide);
            l
        })
        .collect();
    let huge = draft("ordinary", buyer("某人", ""), lines);
    let out = shop.try_issue(&huge);
    out.expect_code(2);
    let doc = out.json();
    assert_eq!(doc["error"]["code"], "payload_too_large", "{out}");
    assert_eq!(doc["error"]["field"], "lines", "{out}");
    assert!(
        out.stderr.contains("split") || out.stderr.contains("拆分"),
        "says to split the invoice\n{out}"
    );
    unchanged(&before, &shop.status());

    // What comes next is issued and filed as usual.
    shop.issue(&small_draft("后开一张", "20"));
    let synced = shop.sync_until_complete(3);
    assert_eq!(synced["accepted"], json!(2), "{synced}");
    assert_eq!(synced["pending"], json!(0), "{synced}");
}
