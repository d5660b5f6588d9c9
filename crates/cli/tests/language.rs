//! The command line's errors in the clerk's language, from the one set of message files
//! (crates/core/locales): a zh-CN clerk reads Chinese with the field named, an English one
//! reads English, and `--json` carries the same message with the code and field.

use std::path::Path;
use std::process::Command;

/// Runs `kaipiao --data <fresh dir> --json <args>` under `locale`; `file` is written to
/// `draft.json` in a scratch directory first (its path replaces "DRAFT" in the args).
fn kaipiao(locale: &str, args: &[&str], file: &str) -> (i32, String, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!(
        "kaipiao-cli-language-{}-{locale}-{}",
        std::process::id(),
        args[0]
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let draft = dir.join("draft.json");
    std::fs::write(&draft, file).unwrap();
    let args: Vec<&str> = args
        .iter()
        .map(|a| {
            if *a == "DRAFT" {
                draft.to_str().unwrap()
            } else {
                a
            }
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_kaipiao"))
        .arg("--data")
        .arg(Path::new(&dir).join("data"))
        .arg("--json")
        .args(&args)
        .env_remove("KAIPIAO_DATA")
        .env_remove("LC_MESSAGES")
        .env("KAIPIAO_PASSPHRASE", "correct horse battery staple")
        .env("LC_ALL", locale)
        .env("LANG", locale)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        doc,
    )
}

/// A seller tax ID whose check digit is wrong (…852F is right).
const INIT: &[&str] = &[
    "init",
    "--seller-name",
    "杭州小店贸易有限公司",
    "--seller-tax-id",
    "91330100716105852X",
    "--device-name",
    "前台 1",
];

#[test]
fn a_chinese_clerk_reads_the_error_in_chinese_with_the_field_named() {
    let (code, stderr, doc) = kaipiao("zh_CN.UTF-8", INIT, "");
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "错误: seller.tax_id: 校验码为 X，应为 F（GB 32100-2015）"
    );
    assert_eq!(doc["error"]["code"], "invalid_tax_id");
    assert_eq!(doc["error"]["field"], "seller.tax_id");
    assert_eq!(
        doc["error"]["message"],
        "seller.tax_id: 校验码为 X，应为 F（GB 32100-2015）"
    );
}

#[test]
fn an_english_clerk_reads_it_in_english() {
    let (code, stderr, doc) = kaipiao("en_US.UTF-8", INIT, "");
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: seller.tax_id: check digit is X, expected F (GB 32100-2015)"
    );
    assert_eq!(doc["error"]["code"], "invalid_tax_id");
}

#[test]
fn a_draft_that_is_not_json_is_said_in_chinese() {
    let (code, stderr, doc) = kaipiao("zh_CN.UTF-8", &["issue", "--file", "DRAFT"], "{not json");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("草稿不是有效的 JSON"), "{stderr}");
    assert_eq!(doc["error"]["code"], "invalid_json");
}

#[test]
fn what_to_run_next_is_the_clerks_language_too() {
    let (code, stderr, doc) = kaipiao("zh_CN.UTF-8", &["status"], "");
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "错误: 此数据目录尚未设置设备，请先运行 `kaipiao init`"
    );
    assert_eq!(doc["error"]["code"], "not_initialized");
}
