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

/// The blank template, read by openpyxl: both sheets, the header on row 3 under a title
/// and a 必填 row, dropdowns on the coded columns; and it imports as an empty batch.
#[test]
fn the_template_has_the_layout_and_dropdowns_and_imports_empty() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let path = book_path(&shop, "template.xlsx");
    shop.kaipiao(&["template", "--out", path.to_str().unwrap()])
        .expect_code(0);
    let book = read_xlsx(&path);
    let sheet = |name: &str| -> Value {
        book["sheets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("sheet {name}: {book}"))
            .clone()
    };
    let basic = sheet("基本信息");
    assert_eq!(basic["rows"][2][0], json!("发票流水号"));
    assert_eq!(basic["rows"][1][0], json!("必填"));
    let headers: Vec<&str> = basic["rows"][2]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    for h in [
        "发票类型",
        "是否含税",
        "购买方名称",
        "购买方纳税人识别号",
        "购买方邮箱",
        "开票人",
    ] {
        assert!(headers.contains(&h), "{h} in {headers:?}");
    }
    let lists: Vec<String> = basic["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(v, "/list").to_string())
        .collect();
    assert!(
        lists.iter().any(|l| l.contains("增值税专用发票")),
        "{lists:?}"
    );
    assert!(
        lists.iter().any(|l| l.contains("是") && l.contains("否")),
        "{lists:?}"
    );
    let detail = sheet("明细");
    let lists: Vec<String> = detail["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(v, "/list").to_string())
        .collect();
    assert!(
        lists
            .iter()
            .any(|l| l.contains("13%") && l.contains("1.5%")),
        "{lists:?}"
    );
    assert!(lists.iter().any(|l| l.contains("不征税")), "{lists:?}");

    let dry = shop.kaipiao(&[
        "--json",
        "import",
        "--xlsx",
        path.to_str().unwrap(),
        "--dry-run",
    ]);
    dry.expect_code(0);
    assert_eq!(
        dry.json(),
        json!({"invoices": [], "count": 0, "total": "0.00"})
    );
}

/// A workbook that is not one, or lacks a sheet or a column: exit 2, the problem named,
/// nothing issued.
#[test]
fn a_workbook_without_the_layout_is_refused_naming_what_is_missing() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let not_xlsx = shop.write_file("book.xlsx", b"not a workbook");
    let out = shop.kaipiao(&["--json", "import", "--xlsx", not_xlsx.to_str().unwrap()]);
    out.expect_code(2);
    assert_eq!(out.json()["error"]["code"], json!("invalid_workbook"));

    let path = book_path(&shop, "one-sheet.xlsx");
    write_xlsx(
        &path,
        &json!({"sheets": [{"name": "基本信息", "rows": [["发票流水号", "发票类型", "是否含税"]]}]}),
    );
    let out = shop.kaipiao(&[
        "--json",
        "import",
        "--xlsx",
        path.to_str().unwrap(),
        "--dry-run",
    ]);
    out.expect_code(2);
    let doc = out.json();
    let problems = problems(&doc["problems"]);
    assert!(
        problems.contains(&(
            "基本信息".into(),
            1,
            "购买方名称".into(),
            "invalid_workbook".into()
        )),
        "{doc}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.0 == "明细" && p.3 == "invalid_workbook"),
        "{doc}"
    );
    assert!(shop.list(None).is_empty());
}

/// `export --xlsx` read back by openpyxl matches the JSON Lines export invoice by invoice
/// and line by line; --from/--to/--status select; --csv writes the same two tables.
#[test]
fn the_accountants_workbook_matches_the_jsonl_export() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let special = shop.issue(&draft(
        "special",
        buyer("深圳市某某科技有限公司", &buyer_tax_id()),
        vec![
            line("*计算机配套产品*键盘", "10", "120", "0.13", ""),
            line("*现代服务*咨询费", "1", "300.5", "0.06", ""),
        ],
    ));
    shop.sync().expect_code(0);
    let mut credit = draft(
        "credit",
        buyer("深圳市某某科技有限公司", &buyer_tax_id()),
        vec![line("*计算机配套产品*键盘", "-2", "", "0.13", "")],
    );
    credit["original"] = special["invoice"]["number"].clone();
    shop.issue(&credit);
    shop.sync().expect_code(0);
    taxd.set_faults(json!({"outage": true}));
    shop.issue(&draft(
        "ordinary",
        buyer("个人", ""),
        vec![line("*日用杂品*杯子", "3", "9.99", "0", "exempt")],
    ));

    let xlsx = book_path(&shop, "month.xlsx");
    let out = shop.kaipiao(&["--json", "export", "--xlsx", xlsx.to_str().unwrap()]);
    out.expect_code(0);
    assert_eq!(out.json()["invoices"], json!(3));
    let (_, records) = shop.export();
    let book = read_xlsx(&xlsx);
    let sheets = book["sheets"].as_array().unwrap();
    assert_eq!(sheets[0]["name"], json!("发票"));
    assert_eq!(sheets[1]["name"], json!("明细"));
    let rows = |i: usize| -> Vec<Vec<Value>> {
        sheets[i]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().clone())
            .collect()
    };
    let (invoices, lines) = (rows(0), rows(1));
    let col = |headers: &[Value], name: &str| -> usize {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("column {name} in {headers:?}"))
    };
    let ih = &invoices[0];
    let lh = &lines[0];
    assert_eq!(invoices.len() - 1, 3);
    // Money cells are numbers (shown 0.00); read back as the double's shortest text.
    let money = |v: &Value, want: &str| {
        let got: f64 = v.as_str().expect("a number cell").parse().unwrap();
        let want_f: f64 = want.parse().unwrap();
        assert_eq!(got, want_f, "{v} vs {want}");
    };
    let mut line_row = 1;
    for (rec, row) in records[1..].iter().zip(&invoices[1..]) {
        let inv = &rec["invoice"];
        assert_eq!(row[col(ih, "发票号码")], inv["number"]);
        assert_eq!(row[col(ih, "购买方名称")], inv["buyer"]["name"]);
        assert_eq!(
            row[col(ih, "购买方纳税人识别号")].as_str().unwrap_or(""),
            s(inv, "/buyer/tax_id")
        );
        money(&row[col(ih, "金额")], s(inv, "/total_amount"));
        money(&row[col(ih, "税额")], s(inv, "/total_tax"));
        money(&row[col(ih, "价税合计")], s(inv, "/total"));
        let status = match s(rec, "/status") {
            "accepted" => "已受理",
            "pending" => "待上传",
            _ => "被拒绝",
        };
        assert_eq!(row[col(ih, "状态")], json!(status));
        if let Some(code) = rec["receipt"]["authority_code"].as_str() {
            assert_eq!(row[col(ih, "税务机关代码")], json!(code));
        }
        for (k, l) in inv["lines"].as_array().unwrap().iter().enumerate() {
            let lr = &lines[line_row];
            line_row += 1;
            assert_eq!(lr[col(lh, "发票号码")], inv["number"]);
            assert_eq!(lr[col(lh, "行号")], json!((k + 1).to_string()));
            assert_eq!(lr[col(lh, "项目名称")], l["name"]);
            let qty: f64 = lr[col(lh, "数量")].as_str().unwrap().parse().unwrap();
            assert_eq!(qty, s(l, "/quantity").parse::<f64>().unwrap());
            money(&lr[col(lh, "金额")], s(l, "/amount"));
            money(&lr[col(lh, "税额")], s(l, "/tax"));
        }
    }
    assert_eq!(
        line_row,
        lines.len(),
        "every line of every invoice, no more"
    );
    assert_eq!(sheets[0]["formats"][1][col(ih, "金额")], json!("0.00"));

    // Only the pending one; only today's (China time) and none tomorrow.
    let pending = book_path(&shop, "pending.xlsx");
    let out = shop.kaipiao(&[
        "--json",
        "export",
        "--xlsx",
        pending.to_str().unwrap(),
        "--status",
        "pending",
    ]);
    out.expect_code(0);
    assert_eq!(out.json()["invoices"], json!(1));
    let today = kaipiao_core::time::china_date(s(&records[1], "/invoice/issued_at")).unwrap();
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let out = shop.kaipiao(&[
        "--json",
        "export",
        "--xlsx",
        pending.to_str().unwrap(),
        "--from",
        &day(today),
        "--to",
        &day(today),
    ]);
    assert_eq!(out.json()["invoices"], json!(3));
    let tomorrow = today.succ_opt().unwrap();
    let out = shop.kaipiao(&[
        "--json",
        "export",
        "--xlsx",
        pending.to_str().unwrap(),
        "--from",
        &day(tomorrow),
    ]);
    assert_eq!(out.json()["invoices"], json!(0));
    let out = shop.kaipiao(&[
        "--json",
        "export",
        "--xlsx",
        pending.to_str().unwrap(),
        "--from",
        "yesterday",
    ]);
    out.expect_code(2);
    assert_eq!(out.json()["error"]["field"], json!("from"));

    // CSV: the same two tables, as two files.
    let csv = book_path(&shop, "month.csv");
    let out = shop.kaipiao(&["--json", "export", "--csv", csv.to_str().unwrap()]);
    out.expect_code(0);
    let files = out.json()["out"].clone();
    assert_eq!(files.as_array().unwrap().len(), 2, "{files}");
    let invoices_csv = std::fs::read_to_string(shop.root().join("month-发票.csv")).unwrap();
    let lines_csv = std::fs::read_to_string(shop.root().join("month-明细.csv")).unwrap();
    assert!(
        invoices_csv.starts_with("\u{feff}序号,发票号码,"),
        "{invoices_csv}"
    );
    assert_eq!(invoices_csv.lines().count(), 4);
    assert_eq!(lines_csv.lines().count(), lines.len());
    assert!(invoices_csv.contains(s(&records[1], "/invoice/number")));
}
