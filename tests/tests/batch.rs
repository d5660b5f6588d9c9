//! Batch issue from the tax platform's workbook (issue 12, item 2): `kaipiao import --xlsx`
//! against a real taxd, with workbooks written by a second XLSX implementation (openpyxl)
//! in the official layout: title and 必填 rows above the header, columns in another
//! order, an extra column, numbers as numbers, rates as 13% and as 0.13.

use kaipiao_tests::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// One invoice of a fixture workbook: its 基本信息 cells by header and its 明细 lines.
struct Inv {
    serial: String,
    basic: Vec<(&'static str, Value)>,
    lines: Vec<Vec<(&'static str, Value)>>,
}

const BASIC_HEADERS: [&str; 13] = [
    "发票类型",
    "*发票流水号",
    "是否含税",
    "购买方名称",
    "购买方纳税人识别号",
    "购买方地址",
    "购买方电话",
    "购买方开户银行",
    "购买方开户银行账户",
    "备注",
    "购买方邮箱",
    "开票人",
    "特定业务类型",
];
const DETAIL_HEADERS: [&str; 10] = [
    "*发票流水号",
    "项目名称",
    "商品和服务税收分类编码",
    "规格型号",
    "单位",
    "税率",
    "数量",
    "单价",
    "金额",
    "免税类型",
];

/// The workbook, and for each invoice its 基本信息 row and its lines' 明细 rows (as Excel
/// numbers them).
fn write_book(path: &std::path::Path, invoices: &[Inv]) -> Vec<(u32, Vec<u32>)> {
    let row_of = |headers: &[&str], cells: &[(&str, Value)]| -> Value {
        Value::Array(
            headers
                .iter()
                .map(|h| {
                    let h = h.trim_start_matches('*');
                    cells
                        .iter()
                        .find(|(k, _)| *k == h)
                        .map(|(_, v)| v.clone())
                        .unwrap_or(Value::Null)
                })
                .collect(),
        )
    };
    let mut basic = vec![
        json!(["批量开具模板（基本信息）"]),
        json!(BASIC_HEADERS.map(|h| if h.starts_with('*') {
            "必填"
        } else {
            "选填"
        })),
        json!(BASIC_HEADERS),
    ];
    let mut detail = vec![
        json!(["批量开具模板（明细）"]),
        json!(DETAIL_HEADERS.map(|h| if h.starts_with('*') {
            "必填"
        } else {
            "选填"
        })),
        json!(DETAIL_HEADERS),
    ];
    let mut places = Vec::new();
    for inv in invoices {
        let mut b = inv.basic.clone();
        b.push(("发票流水号", json!(inv.serial)));
        basic.push(row_of(&BASIC_HEADERS, &b));
        let mut rows = Vec::new();
        for line in &inv.lines {
            let mut l = line.clone();
            l.push(("发票流水号", json!(inv.serial)));
            detail.push(row_of(&DETAIL_HEADERS, &l));
            rows.push(detail.len() as u32);
        }
        places.push((basic.len() as u32, rows));
    }
    write_xlsx(
        path,
        &json!({"sheets": [{"name": "基本信息", "rows": basic}, {"name": "明细", "rows": detail}]}),
    );
    places
}

fn ordinary(serial: &str, buyer: &str, lines: Vec<Vec<(&'static str, Value)>>) -> Inv {
    Inv {
        serial: serial.to_string(),
        basic: vec![
            ("发票类型", json!("普通发票")),
            ("是否含税", json!("否")),
            ("购买方名称", json!(buyer)),
            ("特定业务类型", json!("（不读）")),
        ],
        lines,
    }
}

fn item(
    name: &str,
    qty: Value,
    price: Value,
    amount: Value,
    rate: Value,
) -> Vec<(&'static str, Value)> {
    vec![
        ("项目名称", json!(name)),
        ("商品和服务税收分类编码", json!("1090511030000000000")),
        ("单位", json!("个")),
        ("数量", qty),
        ("单价", price),
        ("金额", amount),
        ("税率", rate),
    ]
}

/// Ten invoices, 37 lines, four with a problem each (a bad tax ID, 金额 against 单价, an
/// unknown 税率, a 专用发票 without the buyer's tax ID).
fn official_invoices() -> Vec<Inv> {
    let counts = [3, 4, 4, 3, 4, 4, 4, 3, 4, 4];
    let mut out = Vec::new();
    for (i, n) in counts.iter().enumerate() {
        let serial = format!("S{:03}", i + 1);
        let lines = (0..*n)
            .map(|k| {
                let name = format!("*日用杂品*货品{}-{}", i + 1, k + 1);
                match k % 4 {
                    // Numbers as numbers; the rate a 13% formatted number.
                    0 => item(
                        &name,
                        json!(2),
                        json!(120.5),
                        Value::Null,
                        json!({"percent": 0.13}),
                    ),
                    // 金额 only: one unit at that price; the rate as text.
                    1 => item(&name, Value::Null, Value::Null, json!(300), json!("13%")),
                    // 数量 and 金额: the price computed; the rate as a fraction.
                    2 => item(&name, json!(3), Value::Null, json!(100), json!(0.06)),
                    // All three, agreeing.
                    _ => item(&name, json!(4), json!(2.5), json!(10), json!("0.13")),
                }
            })
            .collect();
        out.push(ordinary(&serial, &format!("客户{}", i + 1), lines));
    }
    // S002: prices include the tax; 地址 and 电话 join, as do 开户银行 and 账户.
    out[1].basic[1] = ("是否含税", json!("是"));
    out[1].basic.extend([
        ("购买方地址", json!("北京市海淀区1号")),
        ("购买方电话", json!("010-12345678")),
        ("购买方开户银行", json!("工商银行海淀支行")),
        ("购买方开户银行账户", json!("6222020200112233")),
        ("备注", json!("批量开具")),
        ("开票人", json!("王五")),
    ]);
    // S003: a tax ID whose check digit is wrong.
    out[2]
        .basic
        .push(("购买方纳税人识别号", json!(invalid_tax_id())));
    // S005, second line: 数量 3 × 单价 10 is not 金额 31.
    out[4].lines[1] = item(
        "*日用杂品*错金额",
        json!(3),
        json!(10),
        json!(31),
        json!("13%"),
    );
    // S007, first line: 7% is no rate.
    out[6].lines[0] = item(
        "*日用杂品*错税率",
        json!(1),
        json!(50),
        Value::Null,
        json!("7%"),
    );
    // S009: a 专用发票 with no buyer tax ID.
    out[8].basic[0] = ("发票类型", json!("增值税专用发票"));
    out
}

fn problems(v: &Value) -> Vec<(String, u64, String, String)> {
    v.as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                s(p, "/sheet").to_string(),
                p["row"].as_u64().unwrap(),
                s(p, "/column").to_string(),
                s(p, "/code").to_string(),
            )
        })
        .collect()
}

fn book_path(shop: &Shop, name: &str) -> PathBuf {
    shop.root().join(name)
}

#[test]
fn an_official_workbook_places_each_problem_at_its_cell_and_issues_the_rest() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.kaipiao(&["till", "set", "--issuer", "张三"])
        .expect_code(0);
    let invoices = official_invoices();
    let book = book_path(&shop, "batch.xlsx");
    let places = write_book(&book, &invoices);
    assert_eq!(invoices.iter().map(|i| i.lines.len()).sum::<usize>(), 37);
    let book = book.to_str().unwrap();
    let expected = vec![
        (
            "S003",
            (
                "基本信息".to_string(),
                places[2].0 as u64,
                "购买方纳税人识别号".to_string(),
                "invalid_tax_id".to_string(),
            ),
        ),
        (
            "S005",
            (
                "明细".to_string(),
                places[4].1[1] as u64,
                "金额".to_string(),
                "invalid_amount".to_string(),
            ),
        ),
        (
            "S007",
            (
                "明细".to_string(),
                places[6].1[0] as u64,
                "税率".to_string(),
                "invalid_tax_rate".to_string(),
            ),
        ),
        (
            "S009",
            (
                "基本信息".to_string(),
                places[8].0 as u64,
                "购买方纳税人识别号".to_string(),
                "missing_field".to_string(),
            ),
        ),
    ];

    // The dry run: every invoice, each problem at its cell, nothing issued.
    let dry = shop.kaipiao(&["--json", "import", "--xlsx", book, "--dry-run"]);
    dry.expect_code(2);
    let doc = dry.json();
    let listed = doc["invoices"].as_array().expect("invoices");
    assert_eq!(listed.len(), 10, "{doc}");
    let mut sum = 0i64;
    for (inv, (i, spec)) in listed.iter().zip(invoices.iter().enumerate()) {
        assert_eq!(s(inv, "/serial"), spec.serial);
        assert_eq!(inv["lines"].as_u64().unwrap() as usize, spec.lines.len());
        let want: Vec<_> = expected
            .iter()
            .filter(|(serial, _)| *serial == spec.serial)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(problems(&inv["problems"]), want, "invoice {i}: {inv}");
        if want.is_empty() {
            sum += cents_of(s(inv, "/total"));
        }
    }
    assert_eq!(doc["count"], json!(6));
    assert_eq!(cents_of(s(&doc, "/total")), sum);
    assert!(shop.list(None).is_empty(), "a dry run issues nothing");
    let mut zh = shop.command(&["import", "--xlsx", book, "--dry-run"]);
    zh.env("LC_ALL", "zh_CN.UTF-8").env("LANG", "zh_CN.UTF-8");
    let text = run_with_deadline(zh, "import --dry-run (zh)".into(), None, COMMAND_DEADLINE);
    text.expect_code(2);
    assert!(
        text.stdout
            .contains(&format!("本次开具 6 份，价税合计 {} 元", s(&doc, "/total"))),
        "{text}"
    );
    assert!(text.stdout.contains("购买方纳税人识别号"), "{text}");

    // The real run: the six issued, the four refused with the same problems.
    let run = shop.kaipiao(&["--json", "import", "--xlsx", book]);
    run.expect_code(2);
    let report = run.json();
    let issued = report["issued"].as_array().expect("issued");
    assert_eq!(issued.len(), 6, "{report}");
    let refused = report["refused"].as_array().expect("refused");
    assert_eq!(refused.len(), 4, "{report}");
    for (serial, p) in &expected {
        let r = refused
            .iter()
            .find(|r| s(r, "/serial") == *serial)
            .unwrap_or_else(|| panic!("{serial} refused: {report}"));
        assert_eq!(problems(&r["problems"]), vec![p.clone()]);
    }
    let listed = shop.list(None);
    assert_eq!(listed.len(), 6);
    let numbers: Vec<(String, String)> = issued
        .iter()
        .map(|i| (s(i, "/serial").to_string(), s(i, "/number").to_string()))
        .collect();

    // What the cells said, as issued: 金额 only is one unit; 数量 and 金额 give the price;
    // 含税 totals are the gross given; the till's 开票人 fills an empty one.
    let s001 = shop.show(&numbers[0].1);
    assert_eq!(s(&s001, "/invoice/issuer"), "张三");
    assert_eq!(s(&s001, "/invoice/lines/0/quantity"), "2");
    assert_eq!(s(&s001, "/invoice/lines/0/unit_price"), "120.5");
    assert_eq!(s(&s001, "/invoice/lines/0/amount"), "241.00");
    assert_eq!(s(&s001, "/invoice/lines/1/quantity"), "1");
    assert_eq!(s(&s001, "/invoice/lines/1/amount"), "300.00");
    assert_eq!(s(&s001, "/invoice/lines/2/unit_price"), "33.33333333");
    assert_eq!(s(&s001, "/invoice/lines/2/amount"), "100.00");
    assert_eq!(s(&s001, "/invoice/lines/2/tax_rate"), "0.06");
    let s002 = shop.show(&numbers[1].1);
    assert_eq!(s(&s002, "/invoice/issuer"), "王五");
    assert_eq!(
        s(&s002, "/invoice/buyer/address"),
        "北京市海淀区1号 010-12345678"
    );
    assert_eq!(
        s(&s002, "/invoice/buyer/bank"),
        "工商银行海淀支行 6222020200112233"
    );
    // Gross: 2 × 120.5 + 300 + 100 + 4 × 2.5 = 651.00, tax included.
    assert_eq!(s(&s002, "/invoice/total"), "651.00");

    // Again: nothing issued twice; the six skipped with their numbers.
    let again = shop.kaipiao(&["--json", "import", "--xlsx", book]);
    again.expect_code(2);
    let doc = again.json();
    assert_eq!(doc["issued"], json!([]));
    let skipped: Vec<(String, String)> = doc["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (s(i, "/serial").to_string(), s(i, "/number").to_string()))
        .collect();
    assert_eq!(skipped, numbers);
    assert_eq!(shop.list(None).len(), 6);

    // The same serial with other content is refused, naming the number it was issued as.
    let mut changed = official_invoices();
    changed[0].basic[2] = ("购买方名称", json!("另一个客户"));
    let book2 = book_path(&shop, "changed.xlsx");
    write_book(&book2, &changed);
    let out = shop.kaipiao(&["--json", "import", "--xlsx", book2.to_str().unwrap()]);
    out.expect_code(2);
    let doc = out.json();
    let r = doc["refused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| s(r, "/serial") == "S001")
        .expect("S001 refused")
        .clone();
    assert_eq!(s(&r, "/problems/0/code"), "serial_conflict");
    assert!(s(&r, "/problems/0/message").contains(&numbers[0].1), "{r}");

    // Filed: the batch's invoices pass the independent verifier.
    shop.sync().expect_code(0);
    let (file, _) = shop.export();
    assert_eq!(verify_export(&file, &taxd.authority_key()), (6, 6));
}

/// kill -9 inside a group's transaction, then the same file again: the committed groups
/// are skipped, the open group was rolled back and is issued now, each serial once.
#[test]
fn a_kill_during_an_import_loses_and_duplicates_nothing() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let invoices: Vec<Inv> = (1..=12)
        .map(|i| {
            ordinary(
                &format!("K{i:02}"),
                &format!("客户{i}"),
                vec![item(
                    "*日用杂品*货品",
                    json!(1),
                    json!(10 + i),
                    Value::Null,
                    json!("13%"),
                )],
            )
        })
        .collect();
    let book = book_path(&shop, "kill.xlsx");
    write_book(&book, &invoices);
    let book = book.to_str().unwrap();
    // Groups of 3; the third group issued in its transaction, and the process held there.
    let mut held = shop.spawn_with_env(
        &["--json", "import", "--xlsx", book],
        &[
            ("KAIPIAO_TEST_IMPORT_GROUP", "3"),
            ("KAIPIAO_TEST_IMPORT_PAUSE", "2"),
        ],
    );
    assert!(
        held.wait_first_stdout_byte(COMMAND_DEADLINE),
        "the import reaches its pause"
    );
    let killed = held.kill9();
    // (The first byte was read by the wait above.)
    assert!(killed.stdout.contains("paused"), "{killed}");
    assert_eq!(killed.code, -9, "{killed}");
    assert_eq!(
        shop.list(None).len(),
        6,
        "two groups durable, the third rolled back"
    );

    let out = shop.kaipiao(&["--json", "import", "--xlsx", book]);
    out.expect_code(0);
    let doc = out.json();
    let serials = |key: &str| -> Vec<String> {
        doc[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| s(i, "/serial").to_string())
            .collect()
    };
    assert_eq!(
        serials("skipped"),
        (1..=6).map(|i| format!("K{i:02}")).collect::<Vec<_>>()
    );
    assert_eq!(
        serials("issued"),
        (7..=12).map(|i| format!("K{i:02}")).collect::<Vec<_>>()
    );
    let listed = shop.list(None);
    assert_eq!(listed.len(), 12, "each serial issued exactly once");
    let buyers: std::collections::BTreeSet<String> = listed
        .iter()
        .map(|i| s(i, "/buyer_name").to_string())
        .collect();
    assert_eq!(buyers.len(), 12, "{listed:?}");
    let dry = shop.kaipiao(&["--json", "import", "--xlsx", book, "--dry-run"]);
    dry.expect_code(0);
    assert_eq!(dry.json()["count"], json!(0), "nothing left to issue");
    shop.kaipiao(&["verify"]).expect_code(0);
}
