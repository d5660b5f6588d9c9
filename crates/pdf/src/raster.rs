//! The PDF's pages rasterised in pure Rust (hayro): the app's Preview shows the real bytes
//! this way (WebKitGTK has no PDF viewer), and `verify-pdf` reads the QR code as drawn.

use hayro::hayro_syntax::Pdf;

/// One rasterised page: RGBA8, row by row.
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
}

fn settings(scale: f32) -> hayro::PixmapSettings {
    hayro::PixmapSettings {
        x_scale: scale,
        y_scale: scale,
        bg_color: hayro::vello_cpu::color::palette::css::WHITE,
    }
}

fn open(bytes: &[u8]) -> Result<Pdf, String> {
    Pdf::new(bytes.to_vec()).map_err(|e| format!("the PDF cannot be read: {e:?}"))
}

fn render_page(page: &hayro::hayro_syntax::page::Page<'_>, scale: f32) -> hayro::vello_cpu::Pixmap {
    hayro::render(
        page,
        &hayro::RenderCache::new(),
        &hayro::hayro_interpret::InterpreterSettings::default(),
        &hayro::RenderSettings::default(),
        &settings(scale),
    )
}

/// Page `index` (from 0) at `scale` pixels per point, as RGBA.
pub fn raster_page(bytes: &[u8], index: usize, scale: f32) -> Result<Raster, String> {
    let pdf = open(bytes)?;
    let pages = pdf.pages();
    let page = pages
        .get(index)
        .ok_or_else(|| format!("the PDF has no page {}", index + 1))?;
    let pix = render_page(page, scale);
    let (width, height) = (pix.width() as usize, pix.height() as usize);
    let rgba = pix.take_rgba8(hayro::vello_cpu::peniko::ImageAlphaType::Alpha);
    Ok(Raster {
        width,
        height,
        rgba,
    })
}

/// Every page at `scale` pixels per point, each as PNG bytes.
pub fn png_pages(bytes: &[u8], scale: f32) -> Result<Vec<Vec<u8>>, String> {
    let pdf = open(bytes)?;
    pdf.pages()
        .iter()
        .map(|page| {
            render_page(page, scale)
                .into_png()
                .map_err(|e| format!("a page could not be encoded as PNG: {e}"))
        })
        .collect()
}
