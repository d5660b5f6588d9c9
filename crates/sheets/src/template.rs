//! The batch-issue template's layout (the tax platform's 批量开具 workbook) and the blank
//! template written from it.

use rust_xlsxwriter::{DataValidation, Format, FormatAlign, Workbook, XlsxError};

pub const BASIC: &str = "基本信息";
pub const DETAIL: &str = "明细";
/// The header cell the header row is found by, on both sheets.
pub const SERIAL: &str = "发票流水号";
/// The header row is looked for within this many rows (title and 必填 rows above it).
pub const HEADER_WITHIN: u32 = 5;

pub const KIND: &str = "发票类型";
pub const INCLUDES_TAX: &str = "是否含税";
pub const BUYER_NAME: &str = "购买方名称";
pub const BUYER_TAX_ID: &str = "购买方纳税人识别号";
pub const BUYER_ADDRESS: &str = "购买方地址";
pub const BUYER_PHONE: &str = "购买方电话";
pub const BUYER_BANK: &str = "购买方开户银行";
pub const BUYER_ACCOUNT: &str = "购买方开户银行账户";
pub const REMARKS: &str = "备注";
pub const BUYER_EMAIL: &str = "购买方邮箱";
pub const ISSUER: &str = "开票人";

pub const NAME: &str = "项目名称";
pub const TAX_CODE: &str = "商品和服务税收分类编码";
pub const SPEC: &str = "规格型号";
pub const UNIT: &str = "单位";
pub const QUANTITY: &str = "数量";
pub const PRICE: &str = "单价";
pub const AMOUNT: &str = "金额";
pub const RATE: &str = "税率";
pub const TREATMENT: &str = "免税类型";

/// 基本信息's columns in the template's order, and whether each is required.
pub const BASIC_COLUMNS: [(&str, bool); 12] = [
    (SERIAL, true),
    (KIND, true),
    (INCLUDES_TAX, true),
    (BUYER_NAME, true),
    (BUYER_TAX_ID, false),
    (BUYER_ADDRESS, false),
    (BUYER_PHONE, false),
    (BUYER_BANK, false),
    (BUYER_ACCOUNT, false),
    (REMARKS, false),
    (BUYER_EMAIL, false),
    (ISSUER, false),
];

/// 明细's columns in the template's order, and whether each is required.
pub const DETAIL_COLUMNS: [(&str, bool); 10] = [
    (SERIAL, true),
    (NAME, true),
    (TAX_CODE, false),
    (SPEC, false),
    (UNIT, false),
    (QUANTITY, false),
    (PRICE, false),
    (AMOUNT, false),
    (RATE, true),
    (TREATMENT, false),
];

pub const KINDS: [(&str, &str); 2] = [("普通发票", "ordinary"), ("增值税专用发票", "special")];
pub const RATES: [&str; 8] = ["13%", "9%", "6%", "5%", "3%", "1.5%", "1%", "0%"];
pub const TREATMENTS: [(&str, &str); 3] = [
    ("免税", "exempt"),
    ("不征税", "non_taxable"),
    ("零税率", "zero_rated"),
];

/// Rows of the template that carry the dropdowns and the text format.
const TEMPLATE_ROWS: u32 = 10_000;

/// The blank template: on each sheet a title row, a 必填/选填 row and the header row (row
/// 3), dropdowns for 发票类型, 是否含税, 税率 and 免税类型, and the columns whose digits
/// matter (serial, tax ID, tax code, account) formatted as text so Excel keeps them whole.
pub fn template() -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let title = Format::new().set_bold().set_font_size(14);
    let header = Format::new()
        .set_bold()
        .set_background_color("#DDEBF7")
        .set_align(FormatAlign::Center);
    let text = Format::new().set_num_format("@");
    let sheets: [(&str, &str, &[(&str, bool)]); 2] = [
        (
            BASIC,
            "批量开具 · 基本信息（每张发票一行，发票流水号在本文件中唯一）",
            &BASIC_COLUMNS,
        ),
        (
            DETAIL,
            "批量开具 · 明细（每个项目一行，发票流水号对应基本信息）",
            &DETAIL_COLUMNS,
        ),
    ];
    for (name, heading, columns) in sheets {
        let sheet = book.add_worksheet();
        sheet.set_name(name)?;
        sheet.write_string_with_format(0, 0, heading, &title)?;
        for (col, (column, required)) in columns.iter().enumerate() {
            let col = u16::try_from(col).unwrap_or(u16::MAX);
            sheet.write_string(1, col, if *required { "必填" } else { "选填" })?;
            sheet.write_string_with_format(2, col, *column, &header)?;
            sheet.set_column_width(col, 18)?;
            let list: Option<Vec<&str>> = match *column {
                KIND => Some(KINDS.iter().map(|(k, _)| *k).collect()),
                INCLUDES_TAX => Some(vec!["是", "否"]),
                RATE => Some(RATES.to_vec()),
                TREATMENT => Some(TREATMENTS.iter().map(|(t, _)| *t).collect()),
                _ => None,
            };
            if let Some(list) = list {
                let rule = DataValidation::new().allow_list_strings(&list)?;
                sheet.add_data_validation(3, col, 3 + TEMPLATE_ROWS, col, &rule)?;
            }
            if matches!(
                *column,
                SERIAL | BUYER_TAX_ID | TAX_CODE | BUYER_ACCOUNT | BUYER_PHONE
            ) {
                sheet.set_column_format(col, &text)?;
            }
        }
        sheet.set_freeze_panes(3, 0)?;
    }
    book.save_to_buffer()
}
