//! `kaipiao restore FILE` (issue 10, item 6): a data directory made again from an older
//! backup reuses no number and loses nothing the authority holds; a ledger with pending
//! invoices is not replaced unless asked; nothing changes when the authority cannot be
//! reached or the file is no backup.

use kaipiao_tests::*;
use serde_json::{json, Value};
use std::collections::HashSet;

fn backup(shop: &Shop, name: &str) -> std::path::PathBuf {
    let out = shop.work.join(name);
    shop.kaipiao(&["--json", "backup", "--out", out.to_str().expect("path")])
        .expect_code(0);
    out
}

fn numbers(shop: &Shop) -> Vec<String> {
    shop.list(None)
        .iter()
        .map(|r| s(r, "/number").to_string())
        .collect()
}

/// The sequence number (last 8 digits) of an invoice number.
fn tail(number: &str) -> u64 {
    number[12..].parse().expect("20-digit number")
}

#[test]
fn a_restore_from_an_older_backup_reuses_no_number_and_loses_nothing_the_authority_holds() {
    // Leases of 4 numbers, so the lost copy moves on to a second lease after the backup.
    let taxd = Taxd::start(&["--lease-size", "4"]);
    let shop = Shop::new(&taxd);
    shop.import(&[
        small_draft("客户甲", "10.00"),
        small_draft("客户乙", "20.00"),
    ]);
    shop.sync().expect_code(0);
    let file = backup(&shop, "monday.kaipiao-backup");

    // After the backup: filed (the authority holds them), then issued and never filed.
    shop.import(&[
        small_draft("客户丙", "30.00"),
        small_draft("客户丁", "40.00"),
    ]);
    shop.sync().expect_code(0);
    shop.import(&[small_draft("客户戊", "50.00")]);
    shop.sync().expect_code(0);
    shop.import(&[
        small_draft("丢失甲", "60.00"),
        small_draft("丢失乙", "70.00"),
    ]);
    let used_before = numbers(&shop);
    assert_eq!(used_before.len(), 7);
    let lost: Vec<&String> = used_before[5..].iter().collect();

    // The machine is lost; the backup is restored on a new one.
    let new = shop.elsewhere();
    let run = new.kaipiao(&["--json", "restore", file.to_str().expect("path")]);
    run.expect_code(0);
    let report = run.json();
    assert_eq!(report["backup_head"]["seq"], json!(2), "{report}");
    assert_eq!(report["authority_head"]["seq"], json!(5), "{report}");
    assert_eq!(report["invoices_brought_back"], json!(3), "{report}");
    assert_eq!(report["receipts_brought_back"], json!(0), "{report}");
    assert_eq!(report["head"]["seq"], json!(5), "{report}");
    assert_eq!(report["pending"], json!(0), "{report}");
    assert!(report["replaced"].is_null(), "{report}");
    // The numbers the lost copy used and never filed are among those reported.
    let ranges = report["numbers_possibly_used"].as_array().expect("ranges");
    let reported = |n: &str| {
        ranges.iter().any(|r| {
            let (first, last) = (s(r, "/first"), s(r, "/last"));
            first[..12] == n[..12] && (tail(first)..=tail(last)).contains(&tail(n))
        })
    };
    for n in &lost {
        assert!(reported(n), "{n} is reported as possibly used: {report}");
    }
    for n in &used_before[..5] {
        assert!(
            !reported(n),
            "{n} is held by the authority, not lost: {report}"
        );
    }
    let count: u64 = ranges.iter().map(|r| u(r, "/count")).sum();
    assert_eq!(report["numbers_possibly_used_count"], json!(count));
    // The fresh block lies past every number ever used.
    let fresh_first = tail(s(&report, "/fresh_lease/first"));
    assert!(
        used_before.iter().all(|n| tail(n) < fresh_first),
        "{report}"
    );

    // The gap in the numbering is explained in the ledger: an alert names the ranges.
    let alerts = new.kaipiao(&["--json", "alerts"]).json();
    let given_up = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["code"] == json!("numbers_given_up"))
        .cloned()
        .unwrap_or_else(|| panic!("no numbers_given_up alert: {alerts}"));
    for r in ranges {
        assert!(
            s(&given_up, "/message").contains(s(r, "/first")),
            "{given_up}"
        );
    }

    // The restored shop has everything the authority holds, and verifies.
    let restored = numbers(&new);
    assert_eq!(restored, used_before[..5].to_vec());
    new.kaipiao(&["verify"]).expect_code(0);

    // It issues from the fresh block only: no number of the lost copy comes back.
    new.import(&[
        small_draft("客户己", "80.00"),
        small_draft("客户庚", "90.00"),
    ]);
    let after = numbers(&new);
    let before: HashSet<&String> = used_before.iter().collect();
    for n in &after[5..] {
        assert!(!before.contains(n), "{n} was used before the restore");
        assert!(tail(n) >= fresh_first, "{n} comes from the fresh block");
    }
    new.sync().expect_code(0);
    assert_settled(&new, &taxd, 7, Receipts::Identical);
}

#[test]
fn a_backup_with_pending_invoices_gets_their_receipts_back() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.import(&[
        small_draft("客户甲", "10.00"),
        small_draft("客户乙", "20.00"),
    ]);
    let file = backup(&shop, "pending.kaipiao-backup");
    // Filed after the backup was taken: the backup holds them as pending.
    shop.sync().expect_code(0);

    let new = shop.elsewhere();
    let run = new.kaipiao(&["--json", "restore", file.to_str().expect("path")]);
    run.expect_code(0);
    let report = run.json();
    assert_eq!(report["receipts_brought_back"], json!(2), "{report}");
    assert_eq!(report["invoices_brought_back"], json!(0), "{report}");
    assert_eq!(report["pending"], json!(0), "{report}");
    assert_settled(&new, &taxd, 2, Receipts::Identical);
    // Nothing left beside the data directory but what was asked for.
    let beside: Vec<String> = std::fs::read_dir(new.root())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        beside.iter().all(|n| n == "data" || n == "work"),
        "{beside:?}"
    );
}

#[test]
fn a_ledger_with_pending_invoices_is_replaced_only_when_asked_and_kept_aside() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.import(&[small_draft("客户甲", "10.00")]);
    shop.sync().expect_code(0);
    let file = backup(&shop, "before.kaipiao-backup");
    shop.import(&[small_draft("未上传", "20.00")]);
    let pending_number = numbers(&shop)[1].clone();

    let refused = shop.kaipiao(&["--json", "restore", file.to_str().expect("path")]);
    refused.expect_code(2);
    let e = refused.json();
    assert_eq!(e["error"]["code"], json!("pending_invoices"), "{e}");
    assert_eq!(e["error"]["field"], json!("replace_pending"), "{e}");
    assert_eq!(
        shop.status()["pending"],
        json!(1),
        "the ledger is untouched"
    );

    let run = shop.kaipiao(&[
        "--json",
        "restore",
        file.to_str().expect("path"),
        "--replace-pending",
    ]);
    run.expect_code(0);
    let report = run.json();
    let aside = std::path::PathBuf::from(s(&report, "/replaced"));
    assert!(
        aside.join("ledger.sqlite3").is_file(),
        "the replaced ledger is kept: {report}"
    );
    assert_eq!(shop.status()["pending"], json!(0));
    assert_eq!(shop.status()["head"]["seq"], json!(1));
    // The pending invoice's number is reported lost, and never used again.
    let ranges = report["numbers_possibly_used"].as_array().expect("ranges");
    assert!(
        ranges
            .iter()
            .any(|r| (tail(s(r, "/first"))..=tail(s(r, "/last"))).contains(&tail(&pending_number))),
        "{report}"
    );
    shop.import(&[small_draft("客户乙", "30.00")]);
    assert_ne!(numbers(&shop)[1], pending_number);
    shop.sync().expect_code(0);
    assert_settled(&shop, &taxd, 2, Receipts::Identical);
}

#[test]
fn nothing_changes_when_the_authority_is_unreachable_or_the_file_is_no_backup() {
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.import(&[small_draft("客户甲", "10.00")]);
    shop.sync().expect_code(0);
    let file = backup(&shop, "b.kaipiao-backup");

    let new = shop.elsewhere();
    let not_backup = new.write_file(".txt", b"hello");
    let run = new.kaipiao(&["--json", "restore", not_backup.to_str().expect("path")]);
    run.expect_code(2);
    let e: Value = run.json();
    assert_eq!(e["error"]["code"], json!("unreadable_file"), "{e}");
    assert_eq!(e["error"]["field"], json!("file"), "{e}");
    assert!(!new.data.exists());

    taxd.stop();
    let run = new.kaipiao(&["--json", "restore", file.to_str().expect("path")]);
    run.expect_code(3);
    assert!(!new.data.exists(), "no data directory is made");
    let beside: Vec<String> = std::fs::read_dir(new.root())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, vec!["work".to_string()], "nothing staged is left");
}
