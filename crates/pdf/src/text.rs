//! The bundled font's coverage and widths (skrifa), for checking every character before
//! anything is drawn and for aligning and wrapping text in its cells.

use crate::PdfError;
use skrifa::instance::{LocationRef, Size};
use skrifa::raw::TableProvider;
use skrifa::{FontRef, MetadataProvider};

/// Marks that never start a line.
const NO_LINE_START: &str = "，。、；：？！）》」』】〕〉”’…—,.;:?!)]}%";

/// The font's character map and advance widths, read once per render.
pub(crate) struct Metrics<'a> {
    charmap: skrifa::charmap::Charmap<'a>,
    /// Advances in font units.
    advances: skrifa::metrics::GlyphMetrics<'a>,
    upem: f32,
}

impl<'a> Metrics<'a> {
    pub fn new(data: &'a [u8]) -> Result<Metrics<'a>, PdfError> {
        let font = FontRef::from_index(data, 0)
            .map_err(|e| PdfError::Render(format!("the bundled font cannot be read: {e}")))?;
        let upem = f32::from(
            font.head()
                .map_err(|e| PdfError::Render(format!("the bundled font has no head table: {e}")))?
                .units_per_em(),
        );
        Ok(Metrics {
            charmap: font.charmap(),
            advances: font.glyph_metrics(Size::new(upem), LocationRef::default()),
            upem,
        })
    }

    /// Refuses the first character of `text` the font lacks, naming `field`.
    pub fn check(&self, field: &str, text: &str) -> Result<(), PdfError> {
        let charmap = &self.charmap;
        match text
            .chars()
            .find(|c| !c.is_whitespace() && charmap.map(*c).is_none())
        {
            Some(character) => Err(PdfError::MissingGlyph {
                field: field.to_string(),
                character,
            }),
            None => Ok(()),
        }
    }

    /// The width of `text` at `size` points.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        let units: f32 = text
            .chars()
            .map(|c| {
                self.charmap
                    .map(c)
                    .and_then(|g| self.advances.advance_width(g))
                    .unwrap_or(self.upem / 2.0)
            })
            .sum();
        units / self.upem * size
    }

    /// `text` broken into lines no wider than `width` at `size` (at any character: CJK
    /// has no spaces, and a long Latin word must still fit its cell), never before a
    /// closing punctuation mark (the 禁则 of Chinese typesetting: "，" does not start a
    /// line; it stays at the end of the one before, a little over the width). An empty
    /// text is one empty line.
    pub fn wrap(&self, text: &str, width: f32, size: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            let mut used = 0.0;
            for c in paragraph.chars() {
                let w = self.width(c.encode_utf8(&mut [0; 4]), size);
                if used + w > width && !line.is_empty() && !NO_LINE_START.contains(c) {
                    lines.push(std::mem::take(&mut line));
                    used = 0.0;
                }
                line.push(c);
                used += w;
            }
            lines.push(line);
        }
        lines
    }
}
