//! `kaipiao backup --out FILE` (issue 10, item 6, first half): an online backup with the
//! device key sealed inside it, never plain, written whole or not at all, never over an
//! existing file. (`restore` itself: tests/restore.rs; here the file is checked by opening
//! it as a data directory's ledger and verifying it.)

use kaipiao_tests::*;
use serde_json::json;

#[test]
fn a_backup_holds_the_ledger_and_the_key_sealed_never_plain() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.import(&[
        small_draft("客户甲", "10.00"),
        small_draft("客户乙", "20.00"),
        small_draft("客户丙", "30.00"),
    ]);
    shop.sync().expect_code(0);
    let out = shop.work.join("shop.kaipiao-backup");
    let run = shop.kaipiao(&["--json", "backup", "--out", out.to_str().expect("path")]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["invoices"], json!(3), "{doc}");
    assert_eq!(doc["head"], shop.status()["head"], "{doc}");
    assert_eq!(doc["key"], json!("device_passphrase"), "{doc}");

    // The key is in it only sealed: neither its bytes nor their hex or base64.
    let bytes = read_bytes(&out);
    let secret = shop.device_key().secret_bytes();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        find_all(&bytes, &secret).is_empty(),
        "the raw key is in the backup"
    );
    assert!(
        find_all(&bytes, hex.as_bytes()).is_empty(),
        "the key in hex is in the backup"
    );
    assert!(
        !find_all(&bytes, b"\"ciphertext\"").is_empty(),
        "the sealed key is in it"
    );
    // One file: no journal or WAL beside it, nothing half written left.
    for suffix in ["-wal", "-journal", ".partial"] {
        let mut name = out.as_os_str().to_owned();
        name.push(suffix);
        assert!(
            !std::path::Path::new(&name).exists(),
            "{suffix} left behind"
        );
    }

    // It is the ledger: opened as a data directory's ledger, it verifies and lists the
    // three invoices as filed.
    let copy = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&out, copy.path().join("ledger.sqlite3")).expect("copy the backup");
    let mut verify = std::process::Command::new(binary("kaipiao"));
    verify
        .arg("--data")
        .arg(copy.path())
        .args(["--json", "verify"]);
    let verified = run_with_deadline(verify, "verify the backup".into(), None, COMMAND_DEADLINE);
    verified.expect_code(0);

    // Never over an existing file.
    let again = shop.kaipiao(&["--json", "backup", "--out", out.to_str().expect("path")]);
    again.expect_code(2);
    assert_eq!(again.json()["error"]["code"], json!("invalid_path"));
    assert_eq!(again.json()["error"]["field"], json!("out"));
    assert_eq!(read_bytes(&out), bytes, "the existing backup is untouched");
}
