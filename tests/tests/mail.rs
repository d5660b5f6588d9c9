//! Delivery by email (issue 11, item 7) end to end: the real `kaipiao` against a real
//! SMTP server (Python's aiosmtpd, with a login) and a real taxd. The message that arrives
//! carries the PDF, which `verify-pdf` passes, and the envelope; a server that is down
//! leaves the delivery queued with its reason until `sync` sends it; nothing is sent
//! twice; a refused address is given up with the server's reason.

use kaipiao_tests::*;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{json, Value};
use std::path::Path;

const USER: &str = "shop@example.com";
const SMTP_PASSWORD: &str = "mail server secret 42";

fn smtp_set(shop: &Shop, port: u16, password: &str) -> Output {
    let port = port.to_string();
    let mut cmd = shop.command(&[
        "--json",
        "smtp",
        "set",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--user",
        USER,
        "--from",
        "invoices@example.com",
    ]);
    cmd.env("KAIPIAO_SMTP_PASSWORD", password);
    run_with_deadline(cmd, "kaipiao smtp set".into(), None, COMMAND_DEADLINE)
}

fn deliver(shop: &Shop, number: &str, email: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--json", "deliver", number, "--email", email];
    args.extend_from_slice(extra);
    shop.kaipiao(&args)
}

/// The attachments of a raw message: (file name, content type, bytes).
fn attachments(raw: &[u8]) -> (mail_parser::Message<'_>, Vec<(String, String, Vec<u8>)>) {
    let msg = MessageParser::default().parse(raw).expect("a MIME message");
    let parts = msg
        .attachments()
        .map(|a| {
            (
                a.attachment_name().unwrap_or_default().to_string(),
                a.content_type()
                    .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
                    .unwrap_or_default(),
                a.contents().to_vec(),
            )
        })
        .collect();
    (msg, parts)
}

fn verify_pdf(shop: &Shop, file: &Path) -> Value {
    let out = shop.kaipiao(&["--json", "verify-pdf", file.to_str().unwrap()]);
    out.expect_code(0);
    out.json()
}

#[test]
fn an_invoice_mailed_arrives_with_a_pdf_that_verifies_and_is_never_sent_twice() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let number = s(
        &shop.issue(&small_draft("客户甲", "100.00")),
        "/invoice/number",
    )
    .to_string();
    shop.sync().expect_code(0);

    // No settings yet: refused, naming what to do.
    let refused = deliver(&shop, &number, "buyer@example.com", &[]);
    refused.expect_code(2);
    assert_eq!(refused.json()["error"]["code"], json!("mail_not_set"));

    let server = SmtpServer::start(Some((USER, SMTP_PASSWORD)), &[]);
    let set = smtp_set(&shop, server.port, SMTP_PASSWORD);
    set.expect_code(0);
    assert_eq!(set.json()["smtp"]["security"], json!("plain"));
    // The password is sealed: not in the ledger file in plain text.
    assert!(find_all(&read_bytes(&shop.ledger_file()), SMTP_PASSWORD.as_bytes()).is_empty());
    let shown = shop.kaipiao(&["--json", "smtp"]);
    shown.expect_code(0);
    assert!(!shown.stdout.contains(SMTP_PASSWORD));

    // A bad address is named.
    let bad = deliver(&shop, &number, "not an address", &[]);
    bad.expect_code(2);
    assert_eq!(
        (
            bad.json()["error"]["code"].clone(),
            bad.json()["error"]["field"].clone()
        ),
        (json!("invalid_email"), json!("email"))
    );

    let sent = deliver(&shop, &number, "buyer@example.com", &[]);
    sent.expect_code(0);
    let d = sent.json()["delivery"].clone();
    assert_eq!(d["status"], json!("sent"), "{d}");
    assert_eq!(d["attempts"], json!(1));

    let messages = server.wait_for(1);
    let (msg, parts) = attachments(&messages[0]);
    assert_eq!(
        msg.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("buyer@example.com")
    );
    assert!(
        msg.subject().unwrap_or_default().contains(&number),
        "{:?}",
        msg.subject()
    );
    let body = msg.body_text(0).expect("a text body").to_string();
    assert!(body.contains(&number) && body.contains("¥113.00"), "{body}");
    // Both languages, the delivery's (the CLI's, here LANG=C: English) first.
    let (en, zh) = (
        body.find("Hello").expect("en"),
        body.find("您好").expect("zh"),
    );
    assert!(en < zh, "{body}");
    let message_id = msg.message_id().expect("a Message-ID").to_string();
    assert!(
        message_id.starts_with(&format!("kaipiao.{number}.")),
        "{message_id}"
    );

    let names: Vec<&str> = parts.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [format!("发票-{number}.pdf"), format!("发票-{number}.json")]
    );
    assert_eq!(parts[0].1, "application/pdf");
    let pdf = shop.write_file("mailed.pdf", &parts[0].2);
    let doc = verify_pdf(&shop, &pdf);
    assert_eq!(
        (doc["number"].clone(), doc["status"].clone()),
        (json!(number), json!("accepted"))
    );
    let envelope: Value = serde_json::from_slice(&parts[1].2).expect("the envelope as JSON");
    let shown = shop.show(&number);
    for field in ["invoice", "hash", "signature"] {
        assert_eq!(envelope["envelope"][field], shown[field], "{field}");
    }
    assert_eq!(envelope["receipt"], shown["receipt"]);

    // Asking again answers the delivery already sent; sync sends nothing more.
    let again = deliver(&shop, &number, "buyer@example.com", &[]);
    again.expect_code(0);
    assert_eq!(again.json()["delivery"]["id"], d["id"]);
    shop.sync().expect_code(0);
    assert_eq!(server.messages().len(), 1);
    // --again is a new delivery, a second message.
    let second = deliver(&shop, &number, "buyer@example.com", &["--again"]);
    second.expect_code(0);
    assert_ne!(second.json()["delivery"]["id"], d["id"]);
    server.wait_for(2);

    // The stored password goes to no other server, and a login never goes in the clear
    // beyond this machine.
    let mut moved = shop.command(&[
        "--json",
        "smtp",
        "set",
        "--host",
        "localhost",
        "--port",
        &server.port.to_string(),
        "--user",
        USER,
        "--from",
        "invoices@example.com",
    ]);
    moved.env_remove("KAIPIAO_SMTP_PASSWORD");
    let moved = run_with_deadline(moved, "kaipiao smtp set".into(), None, COMMAND_DEADLINE);
    moved.expect_code(2);
    assert_eq!(moved.json()["error"]["field"], json!("password"));
    let mut clear = shop.command(&[
        "--json",
        "smtp",
        "set",
        "--host",
        "mail.example.com",
        "--port",
        "25",
        "--user",
        USER,
        "--from",
        "invoices@example.com",
    ]);
    clear.env("KAIPIAO_SMTP_PASSWORD", SMTP_PASSWORD);
    let clear = run_with_deadline(clear, "kaipiao smtp set".into(), None, COMMAND_DEADLINE);
    clear.expect_code(2);
    assert_eq!(clear.json()["error"]["field"], json!("security"));

    // A login the server refuses is the server's problem: the delivery stays queued with
    // the reason, and is not given up.
    smtp_set(&shop, server.port, "a wrong password").expect_code(0);
    let refused = deliver(&shop, &number, "other@example.com", &[]);
    refused.expect_code(3);
    let d = refused.json()["delivery"].clone();
    assert_eq!(d["status"], json!("queued"), "{d}");
    assert!(
        !d["last_error"].as_str().unwrap_or_default().is_empty(),
        "{d}"
    );
    assert_eq!(d["attempts"], json!(1));
    assert_eq!(server.messages().len(), 2);

    // The invoice shows its deliveries.
    let shown = shop.show(&number);
    let statuses: Vec<&Value> = shown["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| &d["status"])
        .collect();
    assert_eq!(statuses, [&json!("sent"), &json!("sent"), &json!("queued")]);
}

#[test]
fn a_server_that_is_down_leaves_the_delivery_queued_until_sync_sends_it() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    // Pending (the authority is never asked here): the paper says so.
    let number = s(
        &shop.issue(&small_draft("客户乙", "50.00")),
        "/invoice/number",
    )
    .to_string();
    let mut server = SmtpServer::start(Some((USER, SMTP_PASSWORD)), &["nobody@example.com"]);
    smtp_set(&shop, server.port, SMTP_PASSWORD).expect_code(0);
    let port = server.port;
    server.stop();

    // KAIPIAO_MAIL_RETRY_MS=0: the backoff's first delay is nothing, so the retry is due
    // at once (a minute by default).
    let mut cmd = shop.command(&["--json", "deliver", &number, "--email", "buyer@example.com"]);
    cmd.env("KAIPIAO_MAIL_RETRY_MS", "0");
    let queued = run_with_deadline(cmd, "kaipiao deliver".into(), None, COMMAND_DEADLINE);
    queued.expect_code(3);
    let d = queued.json()["delivery"].clone();
    assert_eq!(d["status"], json!("queued"), "{d}");
    assert_eq!(d["attempts"], json!(1));
    assert!(
        d["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{d}"
    );

    // The server is back on the same port: sync drains the outbox, then sends the mail.
    let server = SmtpServer::start_on(port, Some((USER, SMTP_PASSWORD)), &["nobody@example.com"]);
    shop.sync().expect_code(0);
    let messages = server.wait_for(1);
    let (_, parts) = attachments(&messages[0]);
    let pdf = shop.write_file("pending.pdf", &parts[0].2);
    assert_eq!(verify_pdf(&shop, &pdf)["status"], json!("accepted"));
    let shown = shop.show(&number);
    assert_eq!(shown["deliveries"][0]["status"], json!("sent"));
    assert_eq!(shown["deliveries"][0]["attempts"], json!(2));

    // A recipient the server refuses for good: given up at once, with its reason.
    let refused = deliver(&shop, &number, "nobody@example.com", &[]);
    refused.expect_code(4);
    assert_eq!(refused.json()["delivery"]["status"], json!("failed"));
    assert!(refused.json()["delivery"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .contains("550"));
    assert_eq!(server.messages().len(), 1);
}

/// Issue 12, item 2: a batch workbook's 购买方邮箱 queues a delivery when mail is set up;
/// the next `sync` files the invoice and sends it, and the message carries its PDF.
#[test]
fn a_batch_workbooks_buyer_email_is_queued_and_sent_by_sync() {
    let server = SmtpServer::start(Some((USER, SMTP_PASSWORD)), &[]);
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    smtp_set(&shop, server.port, SMTP_PASSWORD).expect_code(0);
    let book = shop.root().join("batch.xlsx");
    write_xlsx(
        &book,
        &json!({"sheets": [
            {"name": "基本信息", "rows": [
                ["发票流水号", "发票类型", "是否含税", "购买方名称", "购买方邮箱"],
                ["M1", "普通发票", "否", "邮件客户", "buyer@example.com"],
                ["M2", "普通发票", "否", "无邮箱客户", null]
            ]},
            {"name": "明细", "rows": [
                ["发票流水号", "项目名称", "数量", "单价", "税率"],
                ["M1", "*日用杂品*杯子", 1, 20, "13%"],
                ["M2", "*日用杂品*杯子", 1, 30, "13%"]
            ]}
        ]}),
    );
    let out = shop.kaipiao(&["--json", "import", "--xlsx", book.to_str().unwrap()]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["deliveries_queued"], json!(1), "{doc}");
    let number = s(&doc, "/issued/0/number").to_string();
    let shown = shop.show(&number);
    assert_eq!(s(&shown, "/deliveries/0/address"), "buyer@example.com");
    assert_eq!(server.messages().len(), 0, "queued, not sent by the import");
    shop.sync().expect_code(0);
    let messages = server.wait_for(1);
    let (msg, parts) = attachments(&messages[0]);
    assert_eq!(
        msg.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("buyer@example.com")
    );
    assert!(
        parts
            .iter()
            .any(|(name, _, _)| name == &format!("发票-{number}.pdf")),
        "{parts:?}"
    );
}
