//! `kaipiao reconcile` end to end: the authority is restored from an older copy of its
//! database and has lost three of five invoices; reconcile names them, resubmits them,
//! and a second reconcile finds all five accounted for, each exactly once at the
//! authority.

use kaipiao_tests::*;
use serde_json::{json, Value};
use std::path::Path;

/// Copies a stopped taxd's database files (`db` with its WAL) into `to_dir`, removing
/// WAL files there that `db` does not have.
fn copy_db_files(db: &Path, to_dir: &Path) {
    let name = db.file_name().and_then(|n| n.to_str()).expect("db name");
    for suffix in ["", "-wal", "-shm"] {
        let from = db.with_file_name(format!("{name}{suffix}"));
        let to = to_dir.join(format!("{name}{suffix}"));
        if from.exists() {
            std::fs::copy(&from, &to).expect("copy taxd db");
        } else if to.exists() {
            std::fs::remove_file(&to).expect("remove stale db file");
        }
    }
}

fn seqs(list: &Value) -> Vec<u64> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|m| u(m, "/seq"))
        .collect()
}

#[test]
fn a_restored_authority_is_reconciled_and_healed() {
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let drafts: Vec<Value> = (1..=5)
        .map(|i| small_draft(&format!("客户{i}"), &format!("{i}0.00")))
        .collect();
    shop.import(&drafts[..2]);
    shop.sync().expect_code(0);

    // The authority's backup, taken while it holds seq 1..2.
    taxd.stop();
    let backup = tempfile::tempdir().expect("tempdir");
    copy_db_files(&taxd.db, backup.path());
    taxd.restart();
    shop.import(&drafts[2..]);
    let doc = shop.sync_until_complete(3);
    assert_eq!(doc["accepted"], json!(3), "{doc}");

    // Restored from the backup: seq 3..5 are gone.
    taxd.stop();
    let backup_db = backup.path().join(taxd.db.file_name().expect("db name"));
    let db_dir = taxd.db.parent().expect("db dir").to_path_buf();
    copy_db_files(&backup_db, &db_dir);
    taxd.restart();
    let key = shop.device_key();
    let head = taxd.device_get(
        &shop.device_id,
        &key,
        &format!("/v1/devices/{}/head", shop.device_id),
    );
    assert_eq!(
        u(&head.json(), "/seq"),
        2,
        "the restored authority is behind"
    );
    let before = shop.status();

    let out = shop.kaipiao(&["--json", "reconcile"]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(seqs(&doc["missing_at_authority"]), vec![3, 4, 5], "{doc}");
    for m in doc["missing_at_authority"].as_array().expect("list") {
        assert_eq!(m["status"], json!("accepted"), "{doc}");
        assert_eq!(m["healed"], json!(true), "{doc}");
    }
    assert_eq!(doc["healed"], json!(3), "{doc}");
    assert_eq!(doc["checked"], json!(5), "{doc}");
    assert_eq!(doc["accounted_for"], json!(5), "{doc}");
    assert_eq!(doc["mismatched"], json!([]), "{doc}");
    assert_eq!(doc["missing_locally"], Value::Null, "{doc}");
    assert_eq!(doc["pending"], json!(0), "{doc}");
    assert_eq!(doc["server_head"], before["head"], "{doc}");
    assert!(
        out.stderr.contains("checked 5/5"),
        "progress goes to stderr\n{out}"
    );

    let out = shop.kaipiao(&["--json", "reconcile"]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["accounted_for"], json!(5), "{doc}");
    assert_eq!(doc["checked"], json!(5), "{doc}");
    assert_eq!(doc["missing_at_authority"], json!([]), "{doc}");
    assert_eq!(doc["healed"], json!(0), "{doc}");
    assert_eq!(seqs(&doc["refiled"]), vec![3, 4, 5], "{doc}");

    // The authority holds each invoice exactly once: its chain is ours, seq 1..5, and
    // every invoice has its receipt there.
    let head = taxd.device_get(
        &shop.device_id,
        &key,
        &format!("/v1/devices/{}/head", shop.device_id),
    );
    assert_eq!(head.json(), shop.status()["head"]);
    let rows = shop.list(None);
    assert_eq!(rows.len(), 5);
    for row in &rows {
        let id = s(row, "/id");
        let r = taxd.device_get(&shop.device_id, &key, &format!("/v1/invoices/{id}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(s(&r.json(), "/invoice_id"), id);
    }
    let (file, _) = shop.export();
    assert_eq!(verify_export(&file, &taxd.authority_key()), (5, 5));
    shop.kaipiao(&["verify"]).expect_code(0);

    // The human summary follows LANG.
    let mut zh = shop.command(&["reconcile"]);
    zh.env("LC_ALL", "zh_CN.UTF-8");
    let out = run_with_deadline(zh, "kaipiao reconcile (zh)".into(), None, COMMAND_DEADLINE);
    out.expect_code(0);
    assert!(out.stdout.contains("已核对 5/5 张：相符 5"), "{out}");
    let out = shop.kaipiao(&["reconcile"]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("checked 5 of 5: accounted for 5, mismatched 0"),
        "{out}"
    );
}

#[test]
fn an_unreachable_authority_leaves_reconcile_transient() {
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.import(&[small_draft("客户", "10.00")]);
    shop.sync().expect_code(0);
    taxd.stop();

    let out = shop.kaipiao(&["--json", "reconcile"]);
    out.expect_code(3);
    let doc = out.json();
    assert_eq!(doc["checked"], json!(0), "{doc}");
    assert_eq!(doc["total"], json!(1), "{doc}");
    assert_eq!(doc["server_head"], Value::Null, "{doc}");
    assert_eq!(doc["pending"], json!(0), "{doc}");
}
