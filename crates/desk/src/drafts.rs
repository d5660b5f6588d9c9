//! Drafts made from an issued invoice: a credit note (红字发票) against it, or a new
//! invoice pre-filled from a rejected one to correct and issue again.

use crate::dto::{DraftDto, DraftLineDto, InvoiceDto, LineDto};
use crate::engine::Engine;
use crate::error::{DeskError, DeskResult};
use kaipiao_core::{Code, Msg};

impl Engine {
    /// A credit note against `number`, pre-filled: every line with its whole quantity
    /// negated at the original's stored tax-exclusive price. The clerk may reduce
    /// quantities for a partial credit; issuance checks what was credited before.
    pub fn credit_draft(&self, number: &str) -> DeskResult<DraftDto> {
        let detail = self.show(number)?;
        if !detail.can_credit {
            return Err(DeskError::say(
                Code::NotCreditable,
                "original",
                self.lang(),
                Msg::new("not_creditable"),
            ));
        }
        Ok(credit_draft(&detail.invoice))
    }

    /// A new invoice pre-filled from a rejected one, to correct and issue again.
    pub fn reissue_draft(&self, number: &str) -> DeskResult<DraftDto> {
        Ok(reissue_draft(&self.show(number)?.invoice))
    }
}

/// The credit note that cancels all of `inv`.
pub fn credit_draft(inv: &InvoiceDto) -> DraftDto {
    DraftDto {
        kind: "credit".into(),
        buyer: inv.buyer.clone(),
        lines: inv
            .lines
            .iter()
            .map(|l| draft_line(l, negate(&l.quantity)))
            .collect(),
        price_includes_tax: false,
        original: Some(inv.number.clone()),
        remarks: String::new(),
        issuer: inv.issuer.clone(),
        // The clerk picks it (the form asks); it is written into the remarks.
        credit_reason: None,
    }
}

/// `inv` again, as a draft.
pub fn reissue_draft(inv: &InvoiceDto) -> DraftDto {
    DraftDto {
        kind: inv.kind.clone(),
        buyer: inv.buyer.clone(),
        lines: inv
            .lines
            .iter()
            .map(|l| draft_line(l, l.quantity.clone()))
            .collect(),
        price_includes_tax: false,
        original: inv.original.as_ref().map(|o| o.number.clone()),
        // A corrected credit note keeps the reason already written in its remarks.
        remarks: inv.remarks.clone(),
        issuer: inv.issuer.clone(),
        credit_reason: None,
    }
}

/// A stored line as the form's line, at its stored tax-exclusive price.
fn draft_line(l: &LineDto, quantity: String) -> DraftLineDto {
    DraftLineDto {
        name: l.name.clone(),
        tax_code: l.tax_code.clone(),
        spec: l.spec.clone(),
        unit: l.unit.clone(),
        quantity,
        unit_price: l.unit_price.clone(),
        tax_rate: l.tax_rate.clone(),
        treatment: if l.treatment == "standard" {
            String::new()
        } else {
            l.treatment.clone()
        },
    }
}

/// The quantity with its sign flipped, as text (stored quantities are normalised).
fn negate(q: &str) -> String {
    match q.strip_prefix('-') {
        Some(rest) => rest.to_string(),
        None => format!("-{q}"),
    }
}
