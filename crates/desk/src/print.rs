//! The invoice as a PDF, for both front ends (`kaipiao pdf`, the app's Preview / Save
//! PDF): the stored record, its status and the authority's word, handed to kaipiao-pdf.
//! A rejected invoice is not printable as an invoice; a pending one says so on the paper.

use crate::dto::{PdfPreviewDto, SavedPdfDto};
use crate::engine::Engine;
use crate::error::{DeskError, DeskResult};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kaipiao_core::{Code, Kind, Msg};
use kaipiao_ledger::{InvoiceRecord, Ledger, LedgerError, Status};
use kaipiao_pdf::{PaperStatus, PdfError, Printable};
use std::path::{Path, PathBuf};

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
    /// For a credit note, the kind of the invoice it credits (its title and QR type).
    pub credited_kind: Option<Kind>,
    /// The authority's code once accepted.
    pub authority_code: Option<String>,
}

/// The PDF of the invoice `number_or_id`.
pub fn invoice_pdf(ledger: &Ledger, number_or_id: &str) -> Result<InvoicePdf, PrintError> {
    record_pdf(ledger, &ledger.show(number_or_id)?)
}

/// The PDF of an invoice record already read.
pub fn record_pdf(ledger: &Ledger, rec: &InvoiceRecord) -> Result<InvoicePdf, PrintError> {
    let inv = &rec.envelope.invoice;
    let authority_code = rec
        .receipt
        .as_ref()
        .and_then(|r| r.get("authority_code"))
        .and_then(|c| c.as_str())
        .map(str::to_string);
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
            authority_code: authority_code.clone().unwrap_or_default(),
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
        file_name: pdf_file_name(&inv.number),
        number: inv.number.clone(),
        credited_kind,
        authority_code,
    })
}

/// The name a saved invoice PDF gets: `发票-NUMBER.pdf`.
pub fn pdf_file_name(number: &str) -> String {
    format!("发票-{number}.pdf")
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`:
/// a crash leaves the old file or the new one, never half of one.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    // A name of its own per write: two writes of one file at once (a double click on
    // Open) never rename each other's half-written file into place.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{:016x}.partial", rand::random::<u64>()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Pixels per PDF point in the app's preview: a 210 mm page is 1,191 px wide, sharp on
/// a high-density screen and still small as PNG.
const PREVIEW_SCALE: f32 = 2.0;

/// The folder (in the data directory) the app writes a PDF to before the system viewer
/// opens it; each is written again from the ledger every time, so it is never stale.
pub const OPEN_DIR: &str = "pdf";

impl Engine {
    fn print_error(&self, e: PrintError) -> DeskError {
        match e {
            PrintError::Ledger(e) => {
                let not_found = matches!(e, LedgerError::NotFound(_));
                let mut e = self.ledger_error(e);
                if not_found {
                    e.field = "number".into();
                }
                e
            }
            PrintError::Refused { code, field, msg } => {
                DeskError::say(code, &field, self.lang(), msg)
            }
            PrintError::Internal(why) => DeskError::internal(why),
        }
    }

    /// The invoice's PDF, made from the ledger as `kaipiao pdf` makes it.
    pub fn invoice_pdf(&self, number: &str) -> DeskResult<InvoicePdf> {
        let ledger = self.reader();
        invoice_pdf(&ledger, number).map_err(|e| self.print_error(e))
    }

    /// Preview: the PDF's own pages rasterised (not an HTML imitation), as PNG data URLs.
    pub fn pdf_preview(&self, number: &str) -> DeskResult<PdfPreviewDto> {
        let pdf = self.invoice_pdf(number)?;
        let pages = kaipiao_pdf::png_pages(&pdf.bytes, PREVIEW_SCALE)
            .map_err(DeskError::internal)?
            .iter()
            .map(|png| format!("data:image/png;base64,{}", B64.encode(png)))
            .collect();
        Ok(PdfPreviewDto {
            number: pdf.number,
            file_name: pdf.file_name,
            pages,
        })
    }

    /// Save PDF…: writes the invoice's PDF to `path` (chosen in the save dialog) whole.
    pub fn save_pdf(&self, number: &str, path: &Path) -> DeskResult<SavedPdfDto> {
        if !path.is_absolute() {
            return Err(DeskError::say(
                Code::InvalidPath,
                "path",
                self.lang(),
                Msg::new("invalid_path-pdf"),
            ));
        }
        let pdf = self.invoice_pdf(number)?;
        write_whole(path, &pdf.bytes)
            .map_err(|e| DeskError::new(Code::Io, "path", format!("{}: {e}", path.display())))?;
        Ok(SavedPdfDto {
            number: pdf.number,
            path: path.display().to_string(),
            bytes: pdf.bytes.len() as u64,
        })
    }

    /// Open: the invoice's PDF written afresh to the data directory's `pdf/` folder, for
    /// the system viewer (which also prints) to open.
    pub fn pdf_to_open(&self, number: &str) -> DeskResult<SavedPdfDto> {
        let pdf = self.invoice_pdf(number)?;
        let dir = self.data_dir().join(OPEN_DIR);
        let path = dir.join(&pdf.file_name);
        std::fs::create_dir_all(&dir)
            .and_then(|()| write_whole(&path, &pdf.bytes))
            .map_err(|e| DeskError::new(Code::Io, "path", format!("{}: {e}", path.display())))?;
        Ok(SavedPdfDto {
            number: pdf.number,
            path: path.display().to_string(),
            bytes: pdf.bytes.len() as u64,
        })
    }
}
