//! The accountant's export (`kaipiao export --xlsx|--csv`, the app's 统计 view): the
//! invoices a filter selects, one row each on sheet 发票 and one row per line on sheet 明细,
//! with Chinese headers, amounts as numbers. The JSON Lines export of SPEC 9 is another
//! thing and unchanged.

use kaipiao_core::money::rate_percent;
use kaipiao_core::time::china_time;
use kaipiao_core::Treatment;
use kaipiao_ledger::{FilteredInvoice, Ledger, ListFilter, Result, Status};
use kaipiao_sheets::write::{SheetData, Value};

pub const INVOICES_SHEET: &str = "发票";
pub const LINES_SHEET: &str = "明细";

pub const INVOICE_HEADERS: [&str; 17] = [
    "序号",
    "发票号码",
    "开票日期",
    "发票种类",
    "状态",
    "购买方名称",
    "购买方纳税人识别号",
    "购买方地址电话",
    "购买方开户行及账号",
    "金额",
    "税额",
    "价税合计",
    "原发票号码",
    "备注",
    "开票人",
    "税务机关代码",
    "发票ID",
];

pub const LINE_HEADERS: [&str; 12] = [
    "发票号码",
    "行号",
    "项目名称",
    "商品和服务税收分类编码",
    "规格型号",
    "单位",
    "数量",
    "单价",
    "金额",
    "税率",
    "税额",
    "免税类型",
];

pub fn status_zh(s: Status) -> &'static str {
    match s {
        Status::Pending => "待上传",
        Status::Accepted => "已受理",
        Status::Rejected => "被拒绝",
    }
}

pub fn treatment_zh(t: Treatment) -> &'static str {
    match t {
        Treatment::Standard => "",
        Treatment::Exempt => "免税",
        Treatment::NonTaxable => "不征税",
        Treatment::ZeroRated => "零税率",
    }
}

/// The two sheets of the invoices `filter` selects.
pub fn sheets(ledger: &Ledger, filter: &ListFilter) -> Result<(SheetData, SheetData, usize)> {
    let found = ledger.filtered_invoices(filter)?;
    Ok(tables(&found))
}

/// The two sheets of `found`, and how many invoices they hold.
pub fn tables(found: &[FilteredInvoice]) -> (SheetData, SheetData, usize) {
    let text = |s: &str| Value::Text(s.to_string());
    let mut invoices = SheetData {
        name: INVOICES_SHEET.into(),
        headers: INVOICE_HEADERS.iter().map(|h| h.to_string()).collect(),
        rows: Vec::with_capacity(found.len()),
    };
    let mut lines = SheetData {
        name: LINES_SHEET.into(),
        headers: LINE_HEADERS.iter().map(|h| h.to_string()).collect(),
        rows: Vec::new(),
    };
    for f in found {
        let inv = &f.envelope.invoice;
        let date = china_time(&inv.issued_at)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| inv.issued_at.clone());
        invoices.rows.push(vec![
            Value::Number(f.seq.to_string()),
            text(&inv.number),
            text(&date),
            text(inv.kind.label_zh()),
            text(status_zh(f.status)),
            text(&inv.buyer.name),
            text(&inv.buyer.tax_id),
            text(&inv.buyer.address),
            text(&inv.buyer.bank),
            Value::Money(inv.total_amount.clone()),
            Value::Money(inv.total_tax.clone()),
            Value::Money(inv.total.clone()),
            text(
                inv.original
                    .as_ref()
                    .map(|o| o.number.as_str())
                    .unwrap_or(""),
            ),
            text(&inv.remarks),
            text(&inv.issuer),
            text(f.authority_code.as_deref().unwrap_or("")),
            text(&inv.id),
        ]);
        for (i, l) in inv.lines.iter().enumerate() {
            lines.rows.push(vec![
                text(&inv.number),
                Value::Number((i + 1).to_string()),
                text(&l.name),
                text(&l.tax_code),
                text(&l.spec),
                text(&l.unit),
                Value::Number(l.quantity.clone()),
                Value::Number(l.unit_price.clone()),
                Value::Money(l.amount.clone()),
                text(&rate_percent(&l.tax_rate)),
                Value::Money(l.tax.clone()),
                text(treatment_zh(l.treatment)),
            ]);
        }
    }
    (invoices, lines, found.len())
}
