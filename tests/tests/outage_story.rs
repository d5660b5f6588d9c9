//! The 2023 outage, end to end: the authority goes down after enrolment, the clerk keeps
//! issuing every kind of invoice offline, `sync` reports the outage honestly (exit 3,
//! nothing lost), and once the authority is back on the same address everything is
//! accepted exactly once, the heads agree, and an independent verifier accepts the export.

use kaipiao_tests::*;
use serde_json::{json, Value};

#[test]
fn offline_invoices_survive_an_outage_and_sync_when_the_authority_returns() {
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let authority_key = taxd.authority_key();
    taxd.stop();

    // 1. Ordinary, private buyer; quantity and price written un-normalized on purpose.
    let mut l1 = line("办公用品", "2.0", "50.00", "0.13", "");
    l1["tax_code"] = json!("1090511030000000000");
    l1["spec"] = json!("A4");
    l1["unit"] = json!("箱");
    let e1 = shop.issue(&draft("ordinary", buyer("王小明", ""), vec![l1]));
    // 2. Special (专票) with a valid buyer tax ID.
    let e2 = shop.issue(&draft(
        "special",
        buyer("北京乙科技有限公司", &buyer_tax_id()),
        vec![line("技术服务费", "1", "1000", "0.06", "")],
    ));
    // 3. Tax-inclusive price: gross 3 x 113 = 339.00 -> amount 300.00, tax 39.00.
    let mut d3 = draft(
        "ordinary",
        buyer("丙文具店", ""),
        vec![line("打印纸", "3", "113", "0.13", "")],
    );
    d3["price_includes_tax"] = json!(true);
    let e3 = shop.issue(&d3);
    // 4. Zero-rated and exempt lines at rate 0.
    let e4 = shop.issue(&draft(
        "ordinary",
        buyer("丁贸易公司", ""),
        vec![
            line("出口货物", "1", "200", "0", "zero_rated"),
            line("图书", "5", "20", "0", "exempt"),
        ],
    ));
    // 5. A credit note (红字) for one of the two boxes of invoice 1.
    let number1 = s(&e1, "/invoice/number").to_string();
    let mut cl = line("办公用品", "-1", "50", "0.13", "");
    cl["tax_code"] = json!("1090511030000000000");
    cl["spec"] = json!("A4");
    cl["unit"] = json!("箱");
    let mut d5 = draft("credit", buyer("王小明", ""), vec![cl]);
    d5["original"] = json!(number1);
    let e5 = shop.issue(&d5);
    let envs = [&e1, &e2, &e3, &e4, &e5];

    // The chain, numbering and computed amounts of what was issued offline.
    let mut prev = ZERO_HASH.to_string();
    let mut last_number = 0u128;
    for (i, e) in envs.iter().enumerate() {
        assert_eq!(
            u(e, "/invoice/seq"),
            i as u64 + 1,
            "seq of invoice {}",
            i + 1
        );
        assert_eq!(
            s(e, "/invoice/prev_hash"),
            prev,
            "prev_hash of seq {}",
            i + 1
        );
        assert_eq!(s(e, "/invoice/device_id"), shop.device_id);
        assert_eq!(s(e, "/invoice/seller/tax_id"), seller_tax_id());
        assert_eq!(s(e, "/invoice/currency"), "CNY");
        let n = number_value(s(e, "/invoice/number"));
        assert!(
            n > last_number,
            "numbers must increase: {n} after {last_number}"
        );
        last_number = n;
        prev = s(e, "/hash").to_string();
    }
    let l = |e: &Value, i: usize, f: &str| s(e, &format!("/invoice/lines/{i}/{f}")).to_string();
    assert_eq!(
        (
            l(&e1, 0, "quantity"),
            l(&e1, 0, "unit_price"),
            l(&e1, 0, "amount"),
            l(&e1, 0, "tax")
        ),
        ("2".into(), "50".into(), "100.00".into(), "13.00".into())
    );
    assert_eq!(l(&e1, 0, "treatment"), "standard");
    assert_eq!(s(&e1, "/invoice/total"), "113.00");
    assert_eq!(s(&e2, "/invoice/kind"), "special");
    assert_eq!(s(&e2, "/invoice/buyer/tax_id"), buyer_tax_id());
    assert_eq!(
        (
            s(&e2, "/invoice/total_amount"),
            s(&e2, "/invoice/total_tax")
        ),
        ("1000.00", "60.00")
    );
    assert_eq!(
        (
            l(&e3, 0, "unit_price"),
            l(&e3, 0, "amount"),
            l(&e3, 0, "tax")
        ),
        ("100".into(), "300.00".into(), "39.00".into())
    );
    assert_eq!(s(&e3, "/invoice/total"), "339.00");
    assert_eq!(
        (l(&e4, 0, "treatment"), l(&e4, 1, "treatment")),
        ("zero_rated".into(), "exempt".into())
    );
    assert_eq!(
        (s(&e4, "/invoice/total_tax"), s(&e4, "/invoice/total")),
        ("0.00", "300.00")
    );
    assert_eq!(s(&e5, "/invoice/kind"), "credit");
    assert_eq!(
        e5["invoice"]["original"],
        json!({"id": s(&e1, "/invoice/id"), "number": number1})
    );
    assert_eq!(
        (l(&e5, 0, "quantity"), l(&e5, 0, "amount"), l(&e5, 0, "tax")),
        ("-1".into(), "-50.00".into(), "-6.50".into())
    );
    assert_eq!(s(&e5, "/invoice/total"), "-56.50");

    // Nothing answers: exit 3, every invoice still pending, no server head.
    let out = shop.sync();
    out.expect_code(3);
    let doc = out.json();
    assert_eq!(doc["pending"], json!(5), "sync during the outage\n{out}");
    assert_eq!(doc["accepted"], json!(0), "sync during the outage\n{out}");
    assert!(
        doc["server_head"].is_null(),
        "server_head must be null when no endpoint answered\n{out}"
    );
    let st = shop.status();
    assert_eq!(st["pending"], json!(5));
    assert_eq!(st["head"], json!({"seq": 5, "hash": s(&e5, "/hash")}));
    assert!(
        st["oldest_pending_at"].is_string(),
        "oldest_pending_at while pending: {st}"
    );

    // The authority comes back on the same address and database.
    taxd.restart();
    let out = shop.sync();
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["accepted"], json!(5), "sync after the outage\n{out}");
    assert_eq!(doc["rejected"], json!(0), "sync after the outage\n{out}");
    assert_eq!(doc["pending"], json!(0), "sync after the outage\n{out}");
    let server_head = doc["server_head"].clone();
    assert_eq!(
        server_head,
        json!({"seq": 5, "hash": s(&e5, "/hash")}),
        "server head\n{out}"
    );

    let st = shop.status();
    assert_eq!(st["pending"], json!(0), "status after sync: {st}");
    assert_eq!(
        st["head"], server_head,
        "local head must equal the server's head"
    );
    assert!(st["oldest_pending_at"].is_null(), "nothing pending: {st}");
    assert!(
        st["last_sync_at"].is_string(),
        "last_sync_at after a sync: {st}"
    );
    let accepted = shop.list(Some("accepted"));
    assert_eq!(accepted.len(), 5, "list --status accepted: {accepted:?}");
    assert!(shop.list(Some("pending")).is_empty());

    // 大写 on show.
    assert_eq!(
        shop.show(&number1)["total_in_words"],
        json!("壹佰壹拾叁元整")
    );
    assert_eq!(
        shop.show(s(&e5, "/invoice/id"))["total_in_words"],
        json!("负伍拾陆元伍角")
    );

    // Export, checked by the independent verifier against the authority's key.
    let (file, records) = shop.export();
    assert_eq!(records.len(), 6, "device line + 5 invoices");
    assert_eq!(records[0]["device"]["id"], json!(shop.device_id));
    for (i, rec) in records[1..].iter().enumerate() {
        assert_eq!(rec["status"], json!("accepted"), "export record {}", i + 1);
        assert_eq!(rec["hash"], envs[i]["hash"], "export record {} hash", i + 1);
        assert_eq!(
            rec["invoice"],
            envs[i]["invoice"],
            "export record {} invoice",
            i + 1
        );
    }
    assert_eq!(verify_export(&file, &authority_key), (5, 5));

    let v = shop.kaipiao(&["verify"]);
    v.expect_code(0);
}
