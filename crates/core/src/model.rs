//! The invoice as it is hashed, signed, stored, submitted and exported (SPEC 4).
//!
//! Decimal fields are kept as the exact strings that were signed: a receiver recomputes the
//! hash from these strings, so re-formatting a number would break the chain. Use the
//! `money` module to read them as decimals.

use serde::{Deserialize, Serialize};

/// 普通发票, 专用发票 or 红字发票.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Ordinary,
    Special,
    Credit,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ordinary => "ordinary",
            Kind::Special => "special",
            Kind::Credit => "credit",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "ordinary" => Some(Kind::Ordinary),
            "special" => Some(Kind::Special),
            "credit" => Some(Kind::Credit),
            _ => None,
        }
    }

    /// The name on the paper form.
    pub fn label_zh(self) -> &'static str {
        match self {
            Kind::Ordinary => "增值税普通发票",
            Kind::Special => "增值税专用发票",
            Kind::Credit => "红字发票",
        }
    }
}

/// How a line is taxed: `standard` for non-zero rates, one of the other three for rate 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    Standard,
    ZeroRated,
    Exempt,
    NonTaxable,
}

impl Treatment {
    pub fn as_str(self) -> &'static str {
        match self {
            Treatment::Standard => "standard",
            Treatment::ZeroRated => "zero_rated",
            Treatment::Exempt => "exempt",
            Treatment::NonTaxable => "non_taxable",
        }
    }

    pub fn parse(s: &str) -> Option<Treatment> {
        match s {
            "standard" => Some(Treatment::Standard),
            "zero_rated" => Some(Treatment::ZeroRated),
            "exempt" => Some(Treatment::Exempt),
            "non_taxable" => Some(Treatment::NonTaxable),
            _ => None,
        }
    }
}

/// Seller or buyer. Empty optional text is "".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    pub name: String,
    pub tax_id: String,
    pub address: String,
    pub bank: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub name: String,
    pub tax_code: String,
    pub spec: String,
    pub unit: String,
    /// Normalised decimal, up to 8 places ("2", "0.33", "-1").
    pub quantity: String,
    /// Tax-exclusive unit price, normalised, up to 8 places.
    pub unit_price: String,
    /// Money, exactly 2 places.
    pub amount: String,
    /// One of [`crate::RATES`].
    pub tax_rate: String,
    pub treatment: Treatment,
    /// Money, exactly 2 places.
    pub tax: String,
}

/// The invoice a credit note corrects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginalRef {
    pub id: String,
    pub number: String,
}

/// The signed invoice object; every field is present on the wire (SPEC 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    pub version: u32,
    pub id: String,
    pub device_id: String,
    pub seq: u64,
    pub prev_hash: String,
    pub number: String,
    pub kind: Kind,
    pub issued_at: String,
    pub currency: String,
    pub seller: Party,
    pub buyer: Party,
    pub lines: Vec<Line>,
    pub total_amount: String,
    pub total_tax: String,
    pub total: String,
    pub original: Option<OriginalRef>,
    pub remarks: String,
    pub issuer: String,
}

/// `{"invoice": {...}, "hash": "...", "signature": "..."}`: stored, submitted, exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub invoice: Invoice,
    pub hash: String,
    pub signature: String,
}

/// Invoice number: 12-digit lease prefix + 8-digit sequence number.
pub fn invoice_number(prefix: &str, sequence: u64) -> String {
    format!("{prefix}{sequence:08}")
}
