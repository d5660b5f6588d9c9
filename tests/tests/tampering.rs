//! Tampering with the ledger file (SPEC 4, 9 `verify`): one byte changed inside the stored
//! envelope of seq 2, directly in `ledger.sqlite3`, is found and named.

use kaipiao_tests::*;
use serde_json::json;

const MARKER: &str = "remarks-of-invoice-two-7QX";

#[test]
fn one_changed_byte_in_the_ledger_file_is_named_by_verify() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    drop(taxd);
    shop.issue(&small_draft("第一位买方", "10"));
    let mut d2 = small_draft("第二位买方", "20");
    d2["remarks"] = json!(MARKER);
    let e2 = shop.issue(&d2);
    assert_eq!(u(&e2, "/invoice/seq"), 2);
    shop.issue(&small_draft("第三位买方", "30"));
    shop.kaipiao(&["verify"]).expect_code(0);

    // The CLI closed cleanly, so the WAL is checkpointed into the main file.
    let db = shop.ledger_file();
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    if let Ok(meta) = std::fs::metadata(&wal) {
        assert_eq!(
            meta.len(),
            0,
            "{} holds {} bytes after every command returned: pages newer than the main file \
             would hide an edit of it (the CLI should close its connection cleanly)",
            wal.display(),
            meta.len()
        );
    }

    // Every stored copy of invoice 2's envelope text: the marker as the value of "remarks".
    let mut bytes = read_bytes(&db);
    let hits: Vec<usize> = find_all(&bytes, MARKER.as_bytes())
        .into_iter()
        .filter(|&i| {
            let before = &bytes[i.saturating_sub(16)..i];
            find_all(before, b"\"remarks\"").len() == 1
        })
        .collect();
    assert!(
        !hits.is_empty(),
        "the envelope text of seq 2 (with \"remarks\":\"{MARKER}\") is not in {}",
        db.display()
    );
    eprintln!(
        "tampering: {} stored cop(ies) of the envelope of seq 2 edited",
        hits.len()
    );
    for &i in &hits {
        // "...-two-7QX" -> "...-twO-7QX": one byte, the same length.
        let at = i + MARKER.find("two").unwrap() + 2;
        assert_eq!(bytes[at], b'o');
        bytes[at] = b'O';
    }
    std::fs::write(&db, &bytes).expect("write the tampered ledger");

    let out = shop.kaipiao(&["--json", "verify"]);
    out.expect_code(4);
    let named_in_json = json_documents(&out.stdout)
        .ok()
        .and_then(|d| d.into_iter().next())
        .and_then(|d| d.get("seq").and_then(|s| s.as_u64()))
        == Some(2);
    let named_in_stderr = out
        .stderr
        .split(|c: char| !c.is_ascii_digit())
        .any(|tok| tok == "2");
    assert!(
        named_in_json || named_in_stderr,
        "verify must name seq 2\n{out}"
    );
    if let Some(seq) = json_documents(&out.stdout)
        .ok()
        .and_then(|d| d.into_iter().next())
        .and_then(|d| d.get("seq").cloned())
    {
        assert_eq!(seq, json!(2), "verify names the first bad seq\n{out}");
    }
    // Without --json too.
    let plain = shop.kaipiao(&["verify"]);
    plain.expect_code(4);
    assert!(
        format!("{}{}", plain.stdout, plain.stderr)
            .split(|c: char| !c.is_ascii_digit())
            .any(|t| t == "2"),
        "verify names seq 2\n{plain}"
    );
}
