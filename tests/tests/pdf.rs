//! `kaipiao pdf NUMBER --out FILE` (issue 11, items 1-3), read back with real readers: the
//! text with `pdftotext`, the QR code with `zbarimg` from `pdftoppm`'s raster. A pending,
//! an accepted, a credit and a 300-line invoice; the sandbox mark and its absence; a
//! rejected invoice and an unknown number refused.

use kaipiao_tests::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Output {
    let mut c = Command::new(cmd);
    c.args(args);
    let out = run_with_deadline(
        c,
        format!("{cmd} {}", args.join(" ")),
        None,
        COMMAND_DEADLINE,
    );
    out.expect_code(0);
    out
}

fn pdf(shop: &Shop, number: &str, name: &str) -> PathBuf {
    let out = shop.work.join(name);
    let run = shop.kaipiao(&[
        "--json",
        "pdf",
        number,
        "--out",
        out.to_str().expect("path"),
    ]);
    run.expect_code(0);
    assert_eq!(run.json()["number"], json!(number));
    out
}

/// The PDF's text, as `pdftotext` reads it.
fn text(file: &Path) -> String {
    run("pdftotext", &[file.to_str().expect("path"), "-"]).stdout
}

/// Every QR code on page `page`, as `zbarimg` reads it from a 300 dpi raster.
fn qr_codes(file: &Path, page: u32) -> Vec<String> {
    let prefix = file.with_extension(format!("p{page}"));
    let p = page.to_string();
    run(
        "pdftoppm",
        &[
            "-r",
            "300",
            "-f",
            &p,
            "-l",
            &p,
            "-png",
            "-singlefile",
            file.to_str().expect("path"),
            prefix.to_str().expect("path"),
        ],
    );
    let png = prefix.with_extension(format!("p{page}.png"));
    let out = run("zbarimg", &["-q", "--raw", png.to_str().expect("path")]);
    out.stdout.lines().map(str::to_string).collect()
}

fn pages(file: &Path) -> u32 {
    let info = run("pdfinfo", &[file.to_str().expect("path")]).stdout;
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo says how many pages")
}

/// The date in China (UTC+8) of an RFC 3339 UTC time, as YYYYMMDD.
fn china_day(issued_at: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(issued_at).expect("rfc3339");
    (t + chrono::TimeDelta::hours(8))
        .format("%Y%m%d")
        .to_string()
}

/// The QR payload the 数电票 convention gives for `shown` (`kaipiao show --json`),
/// worked out here from the invoice and its receipt, independently of the renderer.
fn expected_qr(shown: &Value, qr_type: &str) -> String {
    let inv = &shown["invoice"];
    let check = shown["receipt"]["authority_code"]
        .as_str()
        .map(|c| c[c.len() - 6..].to_string())
        .unwrap_or_default();
    format!(
        "01,{qr_type},,{},{},{},,{check}",
        s(inv, "/number"),
        s(inv, "/total"),
        china_day(s(inv, "/issued_at"))
    )
}

#[track_caller]
fn assert_has(text: &str, want: &str) {
    assert!(text.contains(want), "{want:?} is not in the text:\n{text}");
}

#[test]
fn pending_accepted_credit_and_long_invoices_read_back_with_pdftotext_and_zbarimg() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let mut special = draft(
        "special",
        buyer("深圳市某某科技有限公司", &buyer_tax_id()),
        vec![
            line("*计算机配套产品*键盘", "10", "120", "0.13", ""),
            line(
                "*信息技术服务*软件维护服务（按年计费，含远程支持与现场巡检）",
                "1",
                "3000",
                "0.06",
                "",
            ),
        ],
    );
    special["remarks"] = json!("合同号 HT-2026-118");
    let issued = shop.issue(&special);
    let number = s(&issued, "/invoice/number").to_string();

    // Pending: it says so, and the QR's check field is empty.
    let pending = pdf(&shop, &number, "pending.pdf");
    let t = text(&pending);
    for want in [
        number.as_str(),
        "电子发票（增值税专用发票）",
        "深圳市某某科技有限公司",
        "¥4200.00",
        "¥336.00",
        "¥4536.00",
        "肆仟伍佰叁拾陆元整",
        "待税务机关确认",
        "合同号 HT-2026-118",
        "测试开票员",
        "SANDBOX 样票",
    ] {
        assert_has(&t, want);
    }
    let shown = shop.show(&number);
    assert_eq!(qr_codes(&pending, 1), [expected_qr(&shown, "31")]);
    assert!(expected_qr(&shown, "31").ends_with(",,"));

    // Accepted: the authority's code on the paper and its last six digits in the QR.
    shop.sync().expect_code(0);
    let shown = shop.show(&number);
    let code = s(&shown, "/receipt/authority_code").to_string();
    let accepted = pdf(&shop, &number, "accepted.pdf");
    let t = text(&accepted);
    assert_has(&t, &code);
    assert!(!t.contains("待税务机关确认"), "{t}");
    assert_eq!(qr_codes(&accepted, 1), [expected_qr(&shown, "31")]);
    // The same invoice and status give the same bytes.
    let again = pdf(&shop, &number, "accepted-again.pdf");
    assert_eq!(read_bytes(&accepted), read_bytes(&again));

    // A credit note for one keyboard: 红字 marked, the original's type in the QR, the
    // remarks naming the original.
    let mut credit = draft(
        "credit",
        buyer("深圳市某某科技有限公司", &buyer_tax_id()),
        vec![line("*计算机配套产品*键盘", "-1", "120", "0.13", "")],
    );
    credit["original"] = json!(number);
    let credit_number = s(&shop.issue(&credit), "/invoice/number").to_string();
    shop.sync().expect_code(0);
    let credit_pdf = pdf(&shop, &credit_number, "credit.pdf");
    let t = text(&credit_pdf);
    assert_has(&t, "红字");
    assert_has(&t, "¥-135.60");
    assert_has(&t, &number);
    let shown = shop.show(&credit_number);
    assert_eq!(qr_codes(&credit_pdf, 1), [expected_qr(&shown, "31")]);
    assert!(s(&shown, "/invoice/total").starts_with('-'));

    // 300 lines flow onto further pages; the totals and the 大写 close the last one, and
    // every page carries the QR code.
    let lines: Vec<Value> = (1..=300)
        .map(|i| line(&format!("*日用杂品*商品{i:03}"), "1", "1", "0.13", ""))
        .collect();
    let long = shop.issue(&draft("ordinary", buyer("王小明", ""), lines));
    let long_number = s(&long, "/invoice/number").to_string();
    let long_pdf = pdf(&shop, &long_number, "long.pdf");
    let n = pages(&long_pdf);
    assert!(n > 5, "{n} pages");
    let t = text(&long_pdf);
    assert_has(&t, "商品001");
    assert_has(&t, "商品300");
    assert_has(&t, "¥300.00");
    assert_has(&t, "¥339.00");
    assert_has(&t, "叁佰叁拾玖元整");
    assert_has(&t, &format!("第 {n} 页 / 共 {n} 页"));
    let shown = shop.show(&long_number);
    assert_eq!(qr_codes(&long_pdf, n), [expected_qr(&shown, "32")]);
}

#[test]
fn a_real_authority_prints_no_sandbox_mark_and_refusals_name_their_field() {
    let taxd = Taxd::start(&["--not-sandbox"]);
    let shop = Shop::new(&taxd);
    // A rejected invoice (dated before its lease: the clock two hours behind) is not
    // printable as an invoice.
    let early = shop.write_draft(&small_draft("客户乙", "20.00"));
    let issued = shop.kaipiao_with_clock(
        -2 * 3600,
        &["--json", "issue", "--file", early.to_str().expect("path")],
    );
    issued.expect_code(0);
    let rejected = s(&issued.json(), "/invoice/number").to_string();
    shop.sync().expect_code(0);
    assert_eq!(shop.show(&rejected)["status"], json!("rejected"));
    let out = shop.work.join("none.pdf");
    let run = shop.kaipiao(&[
        "--json",
        "pdf",
        &rejected,
        "--out",
        out.to_str().expect("path"),
    ]);
    run.expect_code(2);
    let e = run.json();
    assert_eq!(e["error"]["code"], json!("not_printable"), "{e}");
    assert_eq!(e["error"]["field"], json!("number"), "{e}");
    assert!(!out.exists());

    // A real authority's invoice carries no sandbox mark.
    let number = s(
        &shop.issue(&small_draft("客户甲", "10.00")),
        "/invoice/number",
    )
    .to_string();
    let file = pdf(&shop, &number, "plain.pdf");
    let t = text(&file);
    assert!(!t.contains("SANDBOX") && !t.contains("样票"), "{t}");

    // An unknown number: exit 2.
    let run = shop.kaipiao(&[
        "--json",
        "pdf",
        "26000000000199999999",
        "--out",
        out.to_str().expect("path"),
    ]);
    run.expect_code(2);
    assert!(!out.exists());

    // A character the invoice font lacks is named, with its field, before anything is
    // written (U+20000, a CJK Extension B ideograph outside GBK).
    let rare = shop.issue(&small_draft("\u{20000}记商行", "30.00"));
    let rare_number = s(&rare, "/invoice/number").to_string();
    let run = shop.kaipiao(&[
        "--json",
        "pdf",
        &rare_number,
        "--out",
        out.to_str().expect("path"),
    ]);
    run.expect_code(2);
    let e = run.json();
    assert_eq!(e["error"]["code"], json!("not_printable"), "{e}");
    assert_eq!(e["error"]["field"], json!("buyer.name"), "{e}");
    assert!(s(&e, "/error/message").contains("U+20000"), "{e}");
    assert!(!out.exists());
}

/// The buyer's check (查验): `kaipiao check-invoice` against taxd's public
/// `GET /v1/check`, with the fields printed on the invoice and in its QR code.
#[test]
fn the_buyer_checks_an_invoice_with_the_authority() {
    let taxd = Taxd::start(&["--check-rate", "1000"]);
    let shop = Shop::new(&taxd);
    let number = s(
        &shop.issue(&small_draft("客户甲", "100.00")),
        "/invoice/number",
    )
    .to_string();
    shop.sync().expect_code(0);
    let shown = shop.show(&number);
    let code = s(&shown, "/receipt/authority_code");
    let code6 = &code[code.len() - 6..];
    let date = china_day(s(&shown, "/invoice/issued_at"));
    let url = taxd.url();

    // A buyer without a data directory of their own: --server.
    let buyer = tempfile::tempdir().expect("tempdir");
    let check = |args: &[&str]| {
        let mut c = Command::new(binary("kaipiao"));
        c.arg("--data")
            .arg(buyer.path())
            .args(["--json", "check-invoice", "--server", &url])
            .args(args);
        run_with_deadline(
            c,
            format!("kaipiao check-invoice {}", args.join(" ")),
            None,
            COMMAND_DEADLINE,
        )
    };
    let ok = check(&[&number, &date, "113.00", code6]);
    ok.expect_code(0);
    assert_eq!(ok.json()["match"], json!(true));
    assert_eq!(ok.json()["status"], json!("accepted"));
    // The total as a buyer may type it.
    check(&[&number, &date, "113", code6]).expect_code(0);
    // Any field off: no match, and nothing said about the invoice.
    for args in [
        [number.as_str(), date.as_str(), "113.01", code6],
        [number.as_str(), "20000101", "113.00", code6],
        [number.as_str(), date.as_str(), "113.00", "000000"],
    ] {
        let no = check(&args);
        no.expect_code(4);
        assert_eq!(no.json()["match"], json!(false), "{args:?}");
        assert_eq!(no.json()["status"], json!(null), "{args:?}");
    }
    // A malformed field is named before anything is sent.
    let bad = check(&[&number, "2026-12-03", "113.00", code6]);
    bad.expect_code(2);
    assert_eq!(bad.json()["error"]["field"], json!("date"));
    // The shop's own data directory knows its authority: no --server needed.
    let own = shop.kaipiao(&["--json", "check-invoice", &number, &date, "113.00", code6]);
    own.expect_code(0);
    // The authority unreachable: exit 3.
    let mut taxd = taxd;
    taxd.stop();
    check(&[&number, &date, "113.00", code6]).expect_code(3);

    // The endpoint is rate-limited per address (`--check-rate`, 2 a second by default):
    // at one check per 1,000 s, the second check at once is refused 429 rate_limited
    // (exit 3: try later).
    let limited = Taxd::start(&["--check-rate", "0.001"]);
    let url = limited.url();
    let at = || {
        let mut c = Command::new(binary("kaipiao"));
        c.arg("--data")
            .arg(buyer.path())
            .args(["--json", "check-invoice", "--server", &url]);
        c.args([number.as_str(), date.as_str(), "113.00", code6]);
        run_with_deadline(c, "kaipiao check-invoice".into(), None, COMMAND_DEADLINE)
    };
    at().expect_code(4);
    let refused = at();
    refused.expect_code(3);
    assert_eq!(refused.json()["error"]["code"], json!("rate_limited"));
}

/// The PDF's text says one digit where it drew another: the ToUnicode map of the font
/// edited so that every "1" reads as "7" (what a forger changing a printed digit makes a
/// reader see).
fn with_printed_digit_changed(pdf: &[u8]) -> Vec<u8> {
    let mut doc = lopdf::Document::load_mem(pdf).expect("a PDF");
    let mut changed = false;
    for (_, object) in doc.objects.iter_mut() {
        let lopdf::Object::Stream(stream) = object else {
            continue;
        };
        let content = stream
            .decompressed_content()
            .unwrap_or_else(|_| stream.content.clone());
        let text = String::from_utf8_lossy(&content).into_owned();
        if !text.contains("beginbfchar") && !text.contains("beginbfrange") {
            continue;
        }
        // The entry whose Unicode side is "1" (`<GID> <0031>`), never a glyph id that
        // happens to be 0x31: which glyph ids a subset has depends on the invoice's text.
        let edited = match text
            .lines()
            .find(|l| l.len() == 13 && l.starts_with('<') && l.ends_with(" <0031>"))
        {
            Some(line) => text.replacen(line, &line.replace(" <0031>", " <0037>"), 1),
            None => text.clone(),
        };
        if edited != text {
            stream.dict.remove(b"Filter");
            stream.set_content(edited.into_bytes());
            changed = true;
        }
    }
    assert!(changed, "no ToUnicode entry for \"1\" was found");
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

/// `kaipiao verify-pdf` (issue 11, item 4): the proof embedded in the PDF checked offline;
/// one changed printed digit or one changed byte of the embedded envelope fails it.
#[test]
fn verify_pdf_checks_the_embedded_proof_the_page_and_the_qr_code() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let number = s(
        &shop.issue(&small_draft("客户甲", "100.00")),
        "/invoice/number",
    )
    .to_string();
    let pending = pdf(&shop, &number, "pending.pdf");
    shop.sync().expect_code(0);
    let accepted = pdf(&shop, &number, "accepted.pdf");
    let fingerprint = kaipiao_core::PublicKey::from_base64(&taxd.authority_key())
        .expect("the authority key")
        .fingerprint();

    let verify = |dir: &Path, file: &Path, extra: &[&str]| {
        let mut c = Command::new(binary("kaipiao"));
        c.arg("--data")
            .arg(dir)
            .args(["--json", "verify-pdf"])
            .arg(file)
            .args(extra);
        run_with_deadline(
            c,
            format!("kaipiao verify-pdf {}", file.display()),
            None,
            COMMAND_DEADLINE,
        )
    };
    let failed = |out: &Output| -> Vec<String> {
        out.json()["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter(|c| c["ok"] == json!(false))
            .map(|c| s(c, "/name").to_string())
            .collect()
    };

    // In the shop's own data directory the pinned key is trusted: everything holds.
    let ok = verify(&shop.data, &accepted, &[]);
    ok.expect_code(0);
    let doc = ok.json();
    assert_eq!(doc["valid"], json!(true), "{doc}");
    assert_eq!(doc["number"], json!(number));
    assert_eq!(doc["status"], json!("accepted"));
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| s(c, "/name"))
        .collect();
    assert_eq!(
        names,
        ["proof", "device_signature", "receipt", "printed_text", "qr"]
    );
    // A pending invoice verifies too, as pending.
    let p = verify(&shop.data, &pending, &[]);
    p.expect_code(0);
    assert_eq!(p.json()["status"], json!("pending"));

    // A buyer elsewhere: the receipt is unverified until the fingerprint is given.
    let buyer = tempfile::tempdir().expect("tempdir");
    let unverified = verify(buyer.path(), &accepted, &[]);
    unverified.expect_code(4);
    assert_eq!(failed(&unverified), ["receipt"]);
    verify(buyer.path(), &accepted, &["--authority-key", &fingerprint]).expect_code(0);
    let wrong = verify(
        buyer.path(),
        &accepted,
        &["--authority-key", &"0".repeat(64)],
    );
    wrong.expect_code(4);

    // One byte of the embedded envelope changed (its total): the hash no longer holds.
    let bytes = read_bytes(&accepted);
    let needle = b"\"total\":\"113.00\"";
    let at = find_all(&bytes, needle);
    assert_eq!(at.len(), 1, "the envelope is embedded uncompressed, once");
    let mut forged = bytes.clone();
    forged[at[0] + needle.len() - 2] = b'1';
    let forged_file = shop.work.join("forged-envelope.pdf");
    std::fs::write(&forged_file, &forged).expect("write");
    let out = verify(&shop.data, &forged_file, &[]);
    out.expect_code(4);
    assert!(
        failed(&out).contains(&"device_signature".to_string()),
        "{}",
        out.json()
    );

    // One printed digit changed: the page no longer shows the embedded invoice.
    let digit_file = shop.work.join("forged-digit.pdf");
    std::fs::write(&digit_file, with_printed_digit_changed(&bytes)).expect("write");
    let out = verify(&shop.data, &digit_file, &[]);
    out.expect_code(4);
    assert_eq!(failed(&out), ["printed_text"], "{}", out.json());

    // No proof at all (a PDF that is not ours), and not a PDF: exit 4.
    let not_pdf = shop.write_file(".pdf", b"%PDF-1.7 nothing");
    verify(&shop.data, &not_pdf, &[]).expect_code(4);
    // A file that is not there: exit 2, naming it.
    let gone = verify(&shop.data, &shop.work.join("none.pdf"), &[]);
    gone.expect_code(2);
    assert_eq!(gone.json()["error"]["field"], json!("file"));
}
