//! The outage record, end to end through the real CLI and a real taxd: the authority goes
//! down (admin API), the clerk issues three invoices, `sync` fails (exit 3) and opens an
//! outage that `status` shows; the authority comes back, `sync` succeeds and ends it;
//! `outages --json` then holds one closed outage with exactly those three invoices, and
//! what is issued afterwards is not marked. `status --json` keeps the SPEC 9 shape, and
//! the export still passes the independent verifier.

use kaipiao_tests::*;
use serde_json::{json, Value};

/// `outages --json`, checked to be `{"outages": [...]}`.
#[track_caller]
fn outages(shop: &Shop) -> Vec<Value> {
    let out = shop.kaipiao(&["--json", "outages"]);
    out.expect_code(0);
    let doc = out.json();
    let keys: Vec<&String> = doc
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["outages"], "outages --json\n{out}");
    doc["outages"].as_array().cloned().unwrap_or_default()
}

/// A human command's stdout in English (the harness runs with LC_ALL=C) or Chinese.
#[track_caller]
fn human(shop: &Shop, args: &[&str], zh: bool) -> String {
    let mut cmd = shop.command(args);
    if zh {
        cmd.env("LC_ALL", "zh_CN.UTF-8").env("LANG", "zh_CN.UTF-8");
    }
    let out = run_with_deadline(
        cmd,
        format!("kaipiao {}", args.join(" ")),
        None,
        COMMAND_DEADLINE,
    );
    out.expect_code(0);
    out.stdout
}

#[test]
fn an_outage_is_recorded_with_the_invoices_issued_during_it() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let authority_key = taxd.authority_key();

    // Online: an invoice that reaches the authority is never part of an outage.
    let before = shop.issue(&small_draft("甲公司", "100"));
    shop.sync().expect_code(0);
    assert!(outages(&shop).is_empty());
    assert!(human(&shop, &["outages"], false).contains("No outages recorded"));

    // The authority goes down; the clerk keeps issuing.
    taxd.set_faults(json!({"outage": true}));
    let issued: Vec<Value> = (0..3)
        .map(|i| shop.issue(&small_draft(&format!("乙商店{i}"), "10")))
        .collect();
    let numbers: Vec<String> = issued
        .iter()
        .map(|e| s(e, "/invoice/number").to_string())
        .collect();
    let out = shop.sync();
    out.expect_code(3);
    assert_eq!(out.json()["pending"], json!(3), "{out}");

    // `status` shows the current outage in the clerk's language ...
    let text = human(&shop, &["status"], false);
    assert!(text.contains("Authority outage"), "{text}");
    assert!(text.contains("#1 since"), "{text}");
    assert!(text.contains("3 invoices issued during it"), "{text}");
    let text = human(&shop, &["status"], true);
    assert!(text.contains("税务机关中断"), "{text}");
    assert!(text.contains("期间开具 3 张发票"), "{text}");
    // ... while `status --json` keeps exactly its SPEC 9 shape: the JSON view of the
    // current outage is `outages --json`.
    let st = shop.status();
    for key in [
        "device_id",
        "pending",
        "oldest_pending_at",
        "offline_hours_left",
        "offline_amount_left",
        "numbers_left",
        "head",
        "last_sync_at",
    ] {
        assert!(st.get(key).is_some(), "status --json lacks {key}: {st}");
    }
    assert!(
        st.as_object()
            .is_some_and(|m| m.keys().all(|k| !k.contains("outage"))),
        "status --json must not grow outage keys: {st}"
    );
    let current = outages(&shop);
    assert_eq!(current.len(), 1, "{current:?}");
    let o = &current[0];
    assert_eq!(o["id"], json!(1));
    assert!(o["ended_at"].is_null() && o["ended_by"].is_null(), "{o}");
    assert!(u(o, "/failed_attempts") >= 1, "{o}");
    assert_eq!(s(o, "/failed_endpoint"), taxd.url());
    assert!(s(o, "/reason").contains("503 outage"), "{o}");
    assert_eq!(o["invoices_issued"], json!(3));

    // The authority comes back: the first success ends the outage.
    taxd.set_faults(json!({"outage": false}));
    shop.sync().expect_code(0);
    let after = shop.issue(&small_draft("丙公司", "20"));

    let all = outages(&shop);
    assert_eq!(all.len(), 1, "{all:?}");
    let o = &all[0];
    let (started, ended) = (s(o, "/started_at"), s(o, "/ended_at"));
    assert!(ended >= started, "{o}");
    assert_eq!(s(o, "/ended_by"), taxd.url());
    assert_eq!(o["invoices_issued"], json!(3));
    assert_eq!(s(o, "/first_number"), numbers[0]);
    assert_eq!(s(o, "/last_number"), numbers[2]);
    let seconds = |t: &str| {
        kaipiao_core::time::parse_rfc3339(t)
            .map(|t| t.timestamp())
            .unwrap_or_else(|| panic!("not an RFC 3339 time: {t}"))
    };
    assert_eq!(
        u(o, "/duration_seconds") as i64,
        seconds(ended) - seconds(started)
    );
    let expected_keys = [
        "duration_seconds",
        "ended_at",
        "ended_by",
        "failed_attempts",
        "failed_endpoint",
        "first_number",
        "id",
        "invoices_issued",
        "last_number",
        "reason",
        "started_at",
    ];
    let keys: Vec<&str> = o
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, expected_keys, "{o}");

    // Marked: the three issued during it; not the one before nor the one after.
    for n in &numbers {
        let text = human(&shop, &["show", n], false);
        assert!(text.contains("issued during outage #1"), "{text}");
    }
    for e in [&before, &after] {
        let text = human(&shop, &["show", s(e, "/invoice/number")], false);
        assert!(!text.contains("outage"), "{text}");
    }
    assert!(!human(&shop, &["status"], false).contains("Authority outage"));
    let table = human(&shop, &["outages"], false);
    assert!(table.contains("1 outage, 0 current"), "{table}");
    assert!(
        table.contains(&format!("{}..{}", numbers[0], numbers[2])),
        "{table}"
    );
    assert!(human(&shop, &["outages"], true).contains("共 1 次中断"));

    // The invoices themselves are untouched: the export passes the independent verifier.
    shop.sync().expect_code(0);
    let (file, records) = shop.export();
    assert_eq!(records.len(), 1 + 5);
    let (invoices, receipts) = verify_export(&file, &authority_key);
    assert_eq!((invoices, receipts), (5, 5));
}
