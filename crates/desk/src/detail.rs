//! One invoice in full for the detail view: the invoice, its status and 大写, the
//! authority's receipt read as the typed wire `Receipt`, the status history and the
//! outbox row while it waits.

use crate::dto::*;
use crate::engine::{lock, Engine};
use crate::error::DeskResult;
use kaipiao_core::wire::Receipt;
use kaipiao_core::words::total_in_words;
use kaipiao_ledger::{InvoiceRecord, Status};

impl Engine {
    pub fn show(&self, number_or_id: &str) -> DeskResult<InvoiceDetailDto> {
        let reader = lock(&self.reader);
        let rec = reader
            .show(number_or_id)
            .map_err(|e| self.ledger_error(e))?;
        let deliveries = reader
            .deliveries(number_or_id)
            .map_err(|e| self.ledger_error(e))?;
        drop(reader);
        let mut dto = detail(&rec);
        dto.deliveries = deliveries.iter().map(DeliveryDto::of).collect();
        Ok(dto)
    }
}

/// The receipt as stored, typed; None while pending. A stored receipt verified against
/// the pinned key when it was stored, so it always reads; one that does not (a
/// tampered database, which `verify` reports) shows its JSON with empty fields.
pub fn receipt(stored: &serde_json::Value) -> ReceiptDto {
    let json = serde_json::to_string_pretty(stored).unwrap_or_default();
    match read_receipt(stored) {
        Some(r) => ReceiptDto {
            status: r.status,
            authority_code: r.authority_code,
            received_at: r.received_at,
            reasons: r
                .reasons
                .into_iter()
                .map(|x| ReasonDto {
                    code: x.code,
                    message: x.message,
                    field: x.field,
                })
                .collect(),
            authority_signature: r.authority_signature,
            json,
        },
        None => ReceiptDto {
            status: String::new(),
            authority_code: String::new(),
            received_at: String::new(),
            reasons: Vec::new(),
            authority_signature: String::new(),
            json,
        },
    }
}

/// The stored receipt as the typed wire `Receipt`; None when it does not read as one.
pub fn read_receipt(stored: &serde_json::Value) -> Option<Receipt> {
    serde_json::from_value(stored.clone()).ok()
}

pub fn detail(rec: &InvoiceRecord) -> InvoiceDetailDto {
    let inv = &rec.envelope.invoice;
    let receipt = rec.receipt.as_ref().map(receipt);
    let history = rec
        .history
        .iter()
        .map(|e| {
            // The receipt holds what an answer's entry says; the number is the invoice's.
            let answer = receipt
                .as_ref()
                .filter(|_| matches!(e.status.as_str(), "accepted" | "rejected"));
            HistoryDto {
                at: e.at.clone(),
                status: e.status.clone(),
                detail: e.detail.clone(),
                number: (e.status == "issued").then(|| inv.number.clone()),
                authority_code: answer
                    .map(|r| r.authority_code.clone())
                    .filter(|c| !c.is_empty()),
                reasons: answer
                    .filter(|_| e.status == "rejected")
                    .map(|r| r.reasons.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    InvoiceDetailDto {
        invoice: InvoiceDto::from(inv),
        hash: rec.envelope.hash.clone(),
        signature: rec.envelope.signature.clone(),
        status: rec.status.as_str().to_string(),
        total_in_words: total_in_words(&inv.total),
        receipt,
        history,
        outbox: rec.outbox.as_ref().map(|o| OutboxDto {
            attempts: o.attempts,
            next_attempt_at: o.next_attempt_at.clone(),
            last_error: o.last_error.clone(),
        }),
        can_credit: inv.kind != kaipiao_core::Kind::Credit && rec.status != Status::Rejected,
        issued_during_outage: rec.issued_during_outage,
        deliveries: Vec::new(),
    }
}
