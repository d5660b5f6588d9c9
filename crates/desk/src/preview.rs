//! The preview the entry form shows as the clerk types: each line, the totals and the
//! 大写, computed by kaipiao-core through the ledger's own issuance rules, with the first
//! problem that would stop issuance. Nothing here computes money.

use crate::dto::{DraftDto, LineDto, PreviewDto};
use crate::engine::Engine;
use crate::error::DeskError;
use kaipiao_core::draft::Computed;
use kaipiao_core::words::total_in_words;
use kaipiao_core::Lang;
use kaipiao_ledger::Ledger;

impl Engine {
    /// Lines, totals and 大写 for what the clerk has typed so far.
    pub fn preview(&self, draft: &DraftDto) -> PreviewDto {
        preview(&self.ledger(), draft, self.lang())
    }
}

/// Totals are computed even while the buyer or a line name is still missing
/// (placeholders stand in for text that does not change money); `problem` says what
/// would stop issuance.
pub fn preview(ledger: &Ledger, draft: &DraftDto, lang: Lang) -> PreviewDto {
    let problem = ledger
        .preview(&draft.to_draft())
        .err()
        .map(|e| DeskError::ledger(&e, lang));
    // Best effort: text that does not change money is filled in, blank lines skipped.
    let mut relaxed = draft.clone();
    if relaxed.buyer.name.trim().is_empty() {
        relaxed.buyer.name = "-".into();
    }
    if relaxed.kind != "credit" {
        if kaipiao_core::taxid::check_tax_id(&relaxed.buyer.tax_id).is_err() {
            relaxed.buyer.tax_id.clear();
        }
        relaxed.kind = "ordinary".into();
    }
    relaxed.remarks.clear();
    relaxed.issuer.clear();
    let mut lines: Vec<Option<LineDto>> = vec![None; draft.lines.len()];
    let mut computed: Vec<kaipiao_core::Line> = Vec::new();
    let mut computable: Vec<kaipiao_core::DraftLine> = Vec::new();
    let mut index: Vec<usize> = Vec::new();
    let mut complete = true;
    for (i, l) in relaxed.lines.iter().enumerate() {
        let blank = l.quantity.trim().is_empty() && l.unit_price.trim().is_empty();
        let mut single = relaxed.clone();
        let mut line = l.clone();
        if line.name.trim().is_empty() {
            line.name = "-".into();
        }
        line.tax_code = if line.tax_code.trim().len() == 19 {
            line.tax_code
        } else {
            String::new()
        };
        single.lines = vec![line];
        let d = single.to_draft();
        match ledger.preview(&d) {
            Ok(c) => {
                if let Some(first) = c.lines.first() {
                    lines[i] = Some(LineDto::from(first));
                    computed.push(first.clone());
                }
                computable.push(d.lines[0].clone());
                index.push(i);
            }
            Err(_) => {
                if !blank {
                    complete = false;
                }
            }
        }
    }
    let totals = if computable.is_empty() {
        Computed::summing(Vec::new())
    } else {
        let mut d = relaxed.to_draft();
        d.lines = computable;
        match ledger.preview(&d) {
            Ok(c) => {
                // Whole-invoice computation (tolerances, caps) agrees with the lines.
                for (k, l) in c.lines.iter().enumerate() {
                    if let Some(&i) = index.get(k) {
                        lines[i] = Some(LineDto::from(l));
                    }
                }
                c
            }
            // e.g. over a lease cap: the lines are right, their sum is shown.
            Err(_) => Computed::summing(computed),
        }
    };
    PreviewDto {
        lines,
        total_in_words: total_in_words(&totals.total),
        total_amount: totals.total_amount,
        total_tax: totals.total_tax,
        total: totals.total,
        totals_complete: complete,
        problem,
    }
}
