//! The invoice as a PDF, for both front ends (`kaipiao pdf`, the app's Preview / Save
//! PDF): the stored record, its status and the authority's word, handed to kaipiao-pdf.
//! A rejected invoice is not printable as an invoice; a pending one says so on the paper.

use kaipiao_core::{Code, Kind, Msg};
use kaipiao_ledger::{Ledger, LedgerError, Status};
use kaipiao_pdf::{PaperStatus, PdfError, Printable};

/// Why no PDF was made: the ledger's error, or a refusal naming its field with a message.
#[derive(Debug)]
pub enum PrintError {
    Ledger(LedgerError),
    Refused {
        code: Code,
        field: String,
        msg: Msg,
    },
    /// The PDF writer failed (a bug, not the invoice's fault).
    Internal(String),
}

impl From<LedgerError> for PrintError {
    fn from(e: LedgerError) -> Self {
        PrintError::Ledger(e)
    }
}

/// An invoice's PDF and what names it.
#[derive(Debug, Clone)]
pub struct InvoicePdf {
    pub bytes: Vec<u8>,
    /// The invoice's 20-digit number (the caller may have named it by id).
    pub number: String,
    /// A sensible file name: `发票-NUMBER.pdf`.
    pub file_name: String,
}

/// The PDF of the invoice `number_or_id`.
pub fn invoice_pdf(ledger: &Ledger, number_or_id: &str) -> Result<InvoicePdf, PrintError> {
    let rec = ledger.show(number_or_id)?;
    let inv = &rec.envelope.invoice;
    let status = match rec.status {
        Status::Rejected => {
            return Err(PrintError::Refused {
                code: Code::NotPrintable,
                field: "number".into(),
                msg: Msg::new("not_printable-rejected").arg("number", &inv.number),
            })
        }
        Status::Pending => PaperStatus::Pending,
        Status::Accepted => PaperStatus::Accepted {
            authority_code: rec
                .receipt
                .as_ref()
                .and_then(|r| r.get("authority_code"))
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
        },
    };
    let credited_kind = match (&inv.original, inv.kind) {
        (Some(orig), Kind::Credit) => Some(ledger.show(&orig.number)?.envelope.invoice.kind),
        _ => None,
    };
    let device = ledger.device()?.ok_or(LedgerError::NotInitialized)?;
    let printable = Printable {
        envelope: &rec.envelope,
        status,
        receipt_json: rec.receipt_text.as_deref(),
        credited_kind,
        outage: rec.issued_during_outage,
        sandbox: device.authority_sandbox != Some(false),
        authority_public_key: device.authority_public_key.as_deref(),
        device_public_key: Some(device.public_key.as_str()),
    };
    let bytes = kaipiao_pdf::render(&printable).map_err(|e| match e {
        PdfError::MissingGlyph { field, character } => PrintError::Refused {
            code: Code::NotPrintable,
            field,
            msg: Msg::new("not_printable-glyph")
                .arg("character", character.to_string())
                .arg("code", format!("{:04X}", u32::from(character))),
        },
        PdfError::Render(why) => PrintError::Internal(why),
    })?;
    Ok(InvoicePdf {
        bytes,
        file_name: format!("发票-{}.pdf", inv.number),
        number: inv.number.clone(),
    })
}
