//! Drafts as the JSON documents the CLI reads (every field written out), and the SPEC's
//! constants written down independently of kaipiao-core.

use serde_json::{json, Value};

/// The hash of "no previous invoice" (SPEC 4).
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The eight VAT rates of SPEC 2.
pub const RATES: [&str; 8] = ["0.13", "0.09", "0.06", "0.05", "0.03", "0.015", "0.01", "0"];

/// A buyer; `tax_id` may be empty (a person, or an ordinary invoice).
pub fn buyer(name: &str, tax_id: &str) -> Value {
    json!({"name": name, "tax_id": tax_id, "address": "", "bank": ""})
}

/// A draft line; `treatment` "" means `standard` for a non-zero rate.
pub fn line(
    name: &str,
    quantity: &str,
    unit_price: &str,
    tax_rate: &str,
    treatment: &str,
) -> Value {
    json!({
        "name": name, "tax_code": "", "spec": "", "unit": "个",
        "quantity": quantity, "unit_price": unit_price,
        "tax_rate": tax_rate, "treatment": treatment,
    })
}

/// A draft of SPEC 9 with every field written out.
pub fn draft(kind: &str, buyer: Value, lines: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "buyer": buyer,
        "lines": lines,
        "price_includes_tax": false,
        "original": null,
        "remarks": "",
        "issuer": "测试开票员",
    })
}

/// A small ordinary invoice: one line `amount` (excluding tax) at 13%.
pub fn small_draft(buyer_name: &str, amount: &str) -> Value {
    draft(
        "ordinary",
        buyer(buyer_name, ""),
        vec![line("办公用品", "1", amount, "0.13", "")],
    )
}
