//! The catalogs (issue 12, item 1) from the CLI: items and buyers saved and checked as an
//! invoice's fields are, round trips through CSV and XLSX (the XLSX also read by openpyxl),
//! imports that place each refused row's problem at its cell, and the type-ahead search.

use kaipiao_tests::*;
use serde_json::{json, Value};

fn add_catalogs(shop: &Shop) {
    for args in [
        vec![
            "items",
            "add",
            "--name",
            "*计算机配套产品*键盘",
            "--tax-code",
            "1090511030000000000",
            "--spec",
            "K-104",
            "--unit",
            "个",
            "--price",
            "120",
            "--rate",
            "13%",
        ],
        vec![
            "items",
            "add",
            "--name",
            "*现代服务*咨询费",
            "--tax-code",
            "3040201000000000000",
            "--price",
            "300",
            "--price-includes-tax",
            "--rate",
            "0.06",
        ],
        vec![
            "items",
            "add",
            "--name",
            "*蔬菜*白菜",
            "--tax-code",
            "1010112000000000000",
            "--unit",
            "斤",
            "--price",
            "2.5",
            "--rate",
            "0",
            "--treatment",
            "exempt",
        ],
        vec![
            "buyers",
            "add",
            "--name",
            "深圳市某某科技有限公司",
            "--tax-id",
            &buyer_tax_id(),
            "--address",
            "深圳市南山区 0755-1234567",
            "--bank",
            "招商银行 6225",
            "--email",
            "ap@example.com",
            "--kind",
            "special",
        ],
        vec!["buyers", "add", "--name", "个人客户"],
    ] {
        shop.kaipiao(&args).expect_code(0);
    }
}

/// The entries without their ids and times, for comparing two shops.
fn entries(shop: &Shop, which: &str) -> Vec<Value> {
    let out = shop.kaipiao(&["--json", which]);
    out.expect_code(0);
    let mut list = out.json()[which].as_array().expect("a list").clone();
    for e in &mut list {
        let o = e.as_object_mut().unwrap();
        o.remove("id");
        o.remove("updated_at");
    }
    list
}

#[test]
fn catalogs_round_trip_through_csv_and_xlsx() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    add_catalogs(&shop);
    let items = entries(&shop, "items");
    let buyers = entries(&shop, "buyers");
    assert_eq!(items.len(), 3);
    assert_eq!(buyers.len(), 2);
    let keyboard = items
        .iter()
        .find(|i| i["spec"] == "K-104")
        .expect("the keyboard");
    assert_eq!(keyboard["tax_rate"], json!("0.13"));
    assert_eq!(keyboard["price"], json!("120"));

    for ext in ["csv", "xlsx"] {
        let other = Shop::new(&taxd);
        for which in ["items", "buyers"] {
            let file = shop.root().join(format!("{which}.{ext}"));
            shop.kaipiao(&[which, "export", "--out", file.to_str().unwrap()])
                .expect_code(0);
            let out = other.kaipiao(&["--json", which, "import", file.to_str().unwrap()]);
            out.expect_code(0);
            let doc = out.json();
            assert_eq!(doc["problems"], json!([]), "{doc}");
            // Importing again updates, adds nothing.
            let again = other.kaipiao(&["--json", which, "import", file.to_str().unwrap()]);
            assert_eq!(again.json()["added"], json!(0));
        }
        assert_eq!(entries(&other, "items"), items, "{ext}");
        assert_eq!(entries(&other, "buyers"), buyers, "{ext}");
    }

    // The XLSX as a second reader sees it: the template's headers, the values as saved.
    let file = shop.root().join("items.xlsx");
    let book = read_xlsx(&file);
    let rows = book["sheets"][0]["rows"].as_array().unwrap();
    assert_eq!(
        rows[0],
        json!([
            "项目名称",
            "商品和服务税收分类编码",
            "规格型号",
            "单位",
            "单价",
            "是否含税",
            "税率",
            "免税类型"
        ])
    );
    assert!(
        rows.iter()
            .any(|r| r[0] == "*蔬菜*白菜" && r[7] == "免税" && r[6] == "0%"),
        "{rows:?}"
    );
    let file = shop.root().join("buyers.xlsx");
    let book = read_xlsx(&file);
    let rows = book["sheets"][0]["rows"].as_array().unwrap();
    assert_eq!(rows[0][0], json!("购买方名称"));
    assert!(
        rows.iter()
            .any(|r| r[7] == "增值税专用发票" && r[1] == json!(buyer_tax_id())),
        "{rows:?}"
    );
}

/// Each problem's (row, column, code).
fn places(doc: &Value) -> Vec<(u64, String, String)> {
    doc["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["row"].as_u64().unwrap(),
                s(p, "/column").to_string(),
                s(p, "/code").to_string(),
            )
        })
        .collect()
}

#[test]
fn imports_place_each_refused_row_at_its_cell_and_save_the_rest() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    // An empty line and a quoted line break: rows are named as an editor numbers lines.
    let csv = "\u{feff}项目名称,商品和服务税收分类编码,单位,单价,税率\r\n\
               *日用杂品*杯子,1090511030000000000,\"个\r\n\",9.9,13%\r\n\
               \r\n\
               杯子,1090511030000000000,个,9.9,13%\r\n\
               *日用杂品*盘子,1090511030000000000,个,-1,13%\r\n\
               *日用杂品*碗,1090511030000000000,个,5,7%\r\n\
               *日用杂品*勺子,,个,5,13%\r\n";
    let file = shop.write_file("items.csv", csv.as_bytes());
    let out = shop.kaipiao(&["--json", "items", "import", file.to_str().unwrap()]);
    out.expect_code(2);
    let doc = out.json();
    assert_eq!(doc["added"], json!(1), "{doc}");
    let found = places(&doc);
    assert_eq!(
        found,
        vec![
            (5, "项目名称".into(), "invalid_text".into()),
            (6, "单价".into(), "invalid_unit_price".into()),
            (7, "税率".into(), "invalid_tax_rate".into()),
            (8, "商品和服务税收分类编码".into(), "missing_field".into()),
        ]
    );

    // A buyers workbook (openpyxl) with a title row: a special buyer without a tax ID and
    // a bad email are refused at their cells; 地址 and 电话 join.
    let path = shop.root().join("buyers.xlsx");
    write_xlsx(
        &path,
        &json!({"sheets": [{"name": "客户信息", "rows": [
            ["客户信息"],
            ["购买方名称", "购买方纳税人识别号", "购买方地址", "购买方电话", "购买方邮箱", "发票类型"],
            ["甲公司", buyer_tax_id(), "杭州市", "0571-1", "a@example.com", "增值税专用发票"],
            ["乙公司", null, null, null, null, "增值税专用发票"],
            ["丙公司", null, null, null, "not-an-address", null]
        ]}]}),
    );
    let out = shop.kaipiao(&["--json", "buyers", "import", path.to_str().unwrap()]);
    out.expect_code(2);
    let doc = out.json();
    assert_eq!(doc["added"], json!(1), "{doc}");
    let found = places(&doc);
    assert_eq!(
        found,
        vec![
            (4, "购买方纳税人识别号".into(), "missing_field".into()),
            (5, "购买方邮箱".into(), "invalid_email".into()),
        ]
    );
    let buyers = entries(&shop, "buyers");
    assert_eq!(buyers[0]["address"], json!("杭州市 0571-1"));
    assert_eq!(buyers[0]["kind"], json!("special"));

    // Not a catalog file: refused whole.
    let out = shop.kaipiao(&["--json", "items", "import", path.to_str().unwrap()]);
    out.expect_code(2);
    assert_eq!(out.json()["error"]["code"], json!("invalid_workbook"));
    let out = shop.kaipiao(&["--json", "items", "export", "--out", "items.txt"]);
    out.expect_code(2);
    assert_eq!(out.json()["error"]["field"], json!("out"));
}

#[test]
fn search_matches_names_pinyin_initials_and_codes() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    add_catalogs(&shop);
    let names = |which: &str, q: &str| -> Vec<String> {
        let out = shop.kaipiao(&["--json", which, "list", "--search", q]);
        out.expect_code(0);
        out.json()[which]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| s(e, "/name").to_string())
            .collect()
    };
    assert_eq!(names("items", "键盘"), vec!["*计算机配套产品*键盘"]);
    assert_eq!(names("items", "jp"), vec!["*计算机配套产品*键盘"]);
    assert_eq!(names("items", "bc"), vec!["*蔬菜*白菜"]);
    assert_eq!(names("items", "304020"), vec!["*现代服务*咨询费"]);
    assert_eq!(names("buyers", "szs"), vec!["深圳市某某科技有限公司"]);
    assert_eq!(
        names("buyers", &buyer_tax_id()[..6]),
        vec!["深圳市某某科技有限公司"]
    );
    assert!(names("buyers", "zzz").is_empty());

    // Removing: gone from the list; an id that is none is named.
    let out = shop.kaipiao(&["--json", "items", "list", "--search", "bc"]);
    let id = out.json()["items"][0]["id"].as_i64().unwrap();
    shop.kaipiao(&["items", "remove", &id.to_string()])
        .expect_code(0);
    assert!(names("items", "bc").is_empty());
    let out = shop.kaipiao(&["--json", "items", "remove", &id.to_string()]);
    out.expect_code(2);
    assert_eq!(out.json()["error"]["code"], json!("not_found"));
}
