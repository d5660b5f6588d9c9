//! kaipiao-pdf: an invoice as the buyer receives it (issue 11): a PDF laid out like a
//! 数电票 (210 x 140 mm pages), set in the bundled Noto Sans CJK SC subset, with the
//! 数电票 QR code, the invoice's honest status, and its proof embedded as associated files
//! (PDF/A-3b, as Factur-X embeds its XML): the signed envelope, the authority's receipt
//! when there is one, and the authority's public key.
//!
//! Every figure and the 大写 come from kaipiao-core (the envelope's own strings and
//! `total_in_words`); nothing is computed here but positions. The bytes are a function of
//! the invoice, its status and the font: no clock, no random id (docs/FORMATS.md, "The
//! invoice PDF").

mod layout;
mod raster;
mod text;
mod verify;

pub use raster::{png_pages, raster_page, Raster};
pub use verify::{verify_pdf, Check, Verification, DEVICE_KEY_FILE};

use kaipiao_core::time::china_date;
use kaipiao_core::{Envelope, Invoice, Kind};

pub use layout::{PAGE_HEIGHT_MM, PAGE_WIDTH_MM};

/// The names the proof is embedded under.
pub const ENVELOPE_FILE: &str = "invoice-envelope.json";
pub const RECEIPT_FILE: &str = "authority-receipt.json";
pub const AUTHORITY_KEY_FILE: &str = "authority-key.json";

/// The font every page is set in, and its licence (shipped beside it).
pub const FONT: &[u8] = include_bytes!("../fonts/NotoSansCJKsc-Regular-GBK.otf");
pub const FONT_LICENCE: &str = include_str!("../fonts/OFL.txt");

/// Where the invoice stands, as the paper says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaperStatus {
    /// Signed by this device, not yet received by the authority.
    Pending,
    /// Accepted: the authority's 20-digit code.
    Accepted { authority_code: String },
}

/// What a page is made from.
#[derive(Debug, Clone)]
pub struct Printable<'a> {
    pub envelope: &'a Envelope,
    pub status: PaperStatus,
    /// The receipt exactly as stored (embedded), when accepted.
    pub receipt_json: Option<&'a str>,
    /// For a credit note: the kind of the invoice it credits (its QR type and title).
    pub credited_kind: Option<Kind>,
    /// The number of the authority outage it was issued during, if any.
    pub outage: Option<i64>,
    /// The authority is a sandbox: every page carries "SANDBOX 样票".
    pub sandbox: bool,
    /// The authority's public key (standard base64), embedded for `verify-pdf`.
    pub authority_public_key: Option<&'a str>,
    /// The issuing device's public key (standard base64), embedded for `verify-pdf`.
    pub device_public_key: Option<&'a str>,
}

/// Why no PDF was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdfError {
    /// A character of `field` that the bundled font has no glyph for.
    MissingGlyph { field: String, character: char },
    /// The PDF writer refused (a bug, not the invoice's fault).
    Render(String),
}

impl std::fmt::Display for PdfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PdfError::MissingGlyph { field, character } => write!(
                f,
                "{field}: the character {character:?} (U+{:04X}) is not in the invoice font",
                u32::from(*character)
            ),
            PdfError::Render(why) => write!(f, "the PDF could not be written: {why}"),
        }
    }
}

impl std::error::Error for PdfError {}

/// The QR type of an invoice: 31 for 专用, 32 for 普通; a credit note takes its original's.
pub fn qr_type(kind: Kind, credited_kind: Option<Kind>) -> &'static str {
    match (kind, credited_kind) {
        (Kind::Special, _) | (Kind::Credit, Some(Kind::Special)) => "31",
        _ => "32",
    }
}

/// The 数电票 QR payload: `01,{type},,{number},{total},{YYYYMMDD},,{check}`, the check the
/// last 6 digits of the authority code, empty while pending (docs/FORMATS.md).
pub fn qr_payload(
    inv: &Invoice,
    credited_kind: Option<Kind>,
    authority_code: Option<&str>,
) -> String {
    let date = china_date(&inv.issued_at)
        .map(|d| d.format("%Y%m%d").to_string())
        .unwrap_or_default();
    let check = authority_code
        .map(|c| &c[c.len().saturating_sub(6)..])
        .unwrap_or("");
    format!(
        "01,{},,{},{},{date},,{check}",
        qr_type(inv.kind, credited_kind),
        inv.number,
        inv.total
    )
}

/// The title printed at the top of the page.
pub fn title(kind: Kind, credited_kind: Option<Kind>) -> &'static str {
    match qr_type(kind, credited_kind) {
        "31" => "电子发票（增值税专用发票）",
        _ => "电子发票（普通发票）",
    }
}

/// Renders the invoice (see the crate documentation).
pub fn render(p: &Printable<'_>) -> Result<Vec<u8>, PdfError> {
    layout::render(p)
}
