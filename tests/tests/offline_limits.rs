//! The authority's offline limits (SPEC 3), granted in the lease at enrolment: the
//! offline amount cap and the single-invoice cap refuse issuance with exit 2, say which
//! limit, how far over and what to do; a refusal consumes no number; a sync restores room.

use kaipiao_tests::*;
use serde_json::json;

/// A refusal names the limit and how far over it the invoice is; `advice` is what the
/// clerk must be told to do (sync for the offline cap; nothing fixed for the single cap,
/// where syncing does not help).
fn assert_refused(out: &Output, over_by: &str, advice: Option<&str>) {
    out.expect_code(2);
    let text = out.stderr.to_lowercase();
    assert!(
        text.contains("cap") || text.contains("limit"),
        "the refusal names the limit\n{out}"
    );
    assert!(
        out.stderr.contains(over_by),
        "the refusal says how far over ({over_by})\n{out}"
    );
    if let Some(a) = advice {
        assert!(text.contains(a), "the refusal says what to do ({a})\n{out}");
    }
}

#[test]
fn amount_caps_refuse_offline_issuance_until_a_sync() {
    let mut taxd = Taxd::start(&[
        "--offline-amount-cap",
        "1000.00",
        "--single-invoice-cap",
        "600.00",
    ]);
    let shop = Shop::new(&taxd);
    taxd.stop();

    let st0 = shop.status();
    assert_eq!(st0["offline_amount_left"], json!("1000.00"), "{st0}");
    let hours = st0["offline_hours_left"]
        .as_f64()
        .unwrap_or_else(|| panic!("offline_hours_left: {st0}"));
    assert!(
        hours > 0.0 && hours <= 72.0,
        "default offline window is 72 h: {st0}"
    );

    // Over the single-invoice cap (|total_amount| 700.00 > 600.00), by 100.00.
    let out = shop.try_issue(&small_draft("大单", "700"));
    assert_refused(&out, "100.00", None);
    let st = shop.status();
    assert_eq!(
        (st["head"].clone(), st["numbers_left"].clone()),
        (st0["head"].clone(), st0["numbers_left"].clone()),
        "a refusal consumes no number"
    );
    // Exactly at the single cap is allowed.
    shop.issue(&small_draft("刚好", "600"));
    assert_eq!(shop.status()["offline_amount_left"], json!("400.00"));

    // The offline amount cap: 600 + 300 = 900 (a 90% warning), then 300 more is 200.00 over.
    let out = shop.try_issue(&small_draft("第二单", "300"));
    out.expect_code(0);
    assert!(
        out.stderr.to_lowercase().contains("warning") || out.stderr.contains("警告"),
        "warns at 90% of the cap\n{out}"
    );
    let before = shop.status();
    assert_eq!(before["offline_amount_left"], json!("100.00"));
    let out = shop.try_issue(&small_draft("超额", "300"));
    assert_refused(&out, "200.00", Some("sync"));
    let after = shop.status();
    assert_eq!(before["head"], after["head"]);
    assert_eq!(before["numbers_left"], after["numbers_left"]);
    // Up to the cap exactly is allowed; one fen more is not.
    shop.issue(&small_draft("补满", "100"));
    assert_eq!(shop.status()["offline_amount_left"], json!("0.00"));
    let out = shop.try_issue(&small_draft("一分钱", "0.01"));
    assert_refused(&out, "0.01", Some("sync"));
    assert_eq!(shop.status()["pending"], json!(3));

    // The authority acknowledges them; there is room again.
    taxd.restart();
    let doc = shop.sync_until_complete(3);
    assert_eq!(doc["accepted"], json!(3), "{doc}");
    let st = shop.status();
    assert_eq!(st["pending"], json!(0));
    assert_eq!(st["offline_amount_left"], json!("1000.00"), "{st}");
    let env = shop.issue(&small_draft("同步之后", "300"));
    assert_eq!(u(&env, "/invoice/seq"), 4);
    // The single-invoice cap still holds online.
    assert_refused(
        &shop.try_issue(&small_draft("大单", "600.01")),
        "0.01",
        None,
    );
}
