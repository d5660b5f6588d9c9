//! The page: 210 x 140 mm, the 数电票's own size, laid out as the 数电票 is.
//!
//! ```text
//!  [QR]            电子发票（普通发票）             发票号码：2600…
//!                  ════════════════════             开票日期：2026年12月02日
//!                  (status line)
//! ┌──────────────────────────────┬──────────────────────────────┐
//! │购 名称：…                     │销 名称：…                     │
//! │买 统一社会信用代码/纳税人识别号 │售 统一社会信用代码/纳税人识别号 │
//! ├──────┬────┬──┬───┬───┬───┬──────┬───┤
//! │项目名称│规格型号│单位│数量│单价│金额│税率/征收率│税额│
//! │ …lines, long names wrapped, flowing onto further pages…          │
//! │合计                                   ¥金额        ¥税额        │
//! │价税合计（大写）  ⊗ 壹仟…                    （小写）¥…           │
//! │备注  remarks, outage                                              │
//! └───────────────────────────────────────────────────────────────────┘
//!  开票人：…                                                 第 1 页 / 共 N 页
//! ```
//!
//! The party block, the table header and the title repeat on every page; the totals, the
//! amount in words and the remarks close the last one. A sandbox authority's invoices
//! carry "SANDBOX 样票" across every page. No seal is drawn: the tax bureau's 监制章 is
//! never imitated.

use crate::text::Metrics;
use crate::{
    qr_payload, title, PaperStatus, PdfError, Printable, AUTHORITY_KEY_FILE, ENVELOPE_FILE, FONT,
    RECEIPT_FILE,
};
use chrono::{Datelike, Timelike};
use kaipiao_core::time::china_time;
use kaipiao_core::{Kind, Line, Party, Treatment};
use krilla::color::rgb;
use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::geom::{PathBuilder, Point, Rect, Transform};
use krilla::metadata::{DateTime as PdfDate, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::{Document, SerializeSettings};

pub const PAGE_WIDTH_MM: f32 = 210.0;
pub const PAGE_HEIGHT_MM: f32 = 140.0;

const PT_PER_MM: f32 = 72.0 / 25.4;
fn mm(v: f32) -> f32 {
    v * PT_PER_MM
}

/// The frame's left and right edges, and where it starts and ends on every page.
const LEFT: f32 = 10.0;
const RIGHT: f32 = 200.0;
const FRAME_TOP: f32 = 31.0;
const FRAME_BOTTOM: f32 = 128.0;
/// The party block's height and the width of its vertical label column.
const PARTY_H: f32 = 19.0;
const LABEL_W: f32 = 6.0;
/// Table rows.
const HEAD_H: f32 = 5.5;
const TEXT: f32 = 7.5;
const LINE_H: f32 = 3.6;
const ROW_PAD: f32 = 1.3;
/// The closing rows of the last page: 合计, 价税合计, 备注.
const TOTAL_H: f32 = 5.5;
const WORDS_H: f32 = 6.5;
const REMARKS_MIN_H: f32 = 11.0;

/// The line table's columns: header, width (mm), right-aligned.
const COLUMNS: [(&str, f32, bool); 8] = [
    ("项目名称", 50.0, false),
    ("规格型号", 21.0, false),
    ("单位", 11.0, false),
    ("数量", 19.0, true),
    ("单价", 23.0, true),
    ("金额", 24.0, true),
    ("税率/征收率", 18.0, true),
    ("税额", 24.0, true),
];

/// 数电票 brown for the form, near-black for what was filled in.
const FORM: (u8, u8, u8) = (150, 75, 40);
const INK: (u8, u8, u8) = (20, 20, 20);
const PENDING: (u8, u8, u8) = (190, 90, 0);
const RED: (u8, u8, u8) = (200, 30, 30);

fn fill(c: (u8, u8, u8)) -> Fill {
    Fill {
        paint: rgb::Color::new(c.0, c.1, c.2).into(),
        ..Default::default()
    }
}

/// Drawing in millimetres from the page's top-left corner, in one font.
struct Pen<'s, 'd> {
    s: &'s mut Surface<'d>,
    font: Font,
    m: &'s Metrics<'static>,
}

impl Pen<'_, '_> {
    fn text(&mut self, x: f32, baseline: f32, size: f32, color: (u8, u8, u8), text: &str) {
        if text.is_empty() {
            return;
        }
        self.s.set_stroke(None);
        self.s.set_fill(Some(fill(color)));
        self.s.draw_text(
            Point::from_xy(mm(x), mm(baseline)),
            self.font.clone(),
            size,
            text,
            false,
            TextDirection::Auto,
        );
    }

    fn width_mm(&self, text: &str, size: f32) -> f32 {
        self.m.width(text, size) / PT_PER_MM
    }

    fn right(&mut self, x_right: f32, baseline: f32, size: f32, color: (u8, u8, u8), text: &str) {
        let w = self.width_mm(text, size);
        self.text(x_right - w, baseline, size, color, text);
    }

    fn centre(&mut self, x_mid: f32, baseline: f32, size: f32, color: (u8, u8, u8), text: &str) {
        let w = self.width_mm(text, size);
        self.text(x_mid - w / 2.0, baseline, size, color, text);
    }

    /// Lines of `text` wrapped to `width` mm at `size`.
    fn wrap(&self, text: &str, width: f32, size: f32) -> Vec<String> {
        self.m.wrap(text, mm(width), size)
    }

    fn line(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, width: f32) {
        let mut pb = PathBuilder::new();
        pb.move_to(mm(x1), mm(y1));
        pb.line_to(mm(x2), mm(y2));
        if let Some(path) = pb.finish() {
            self.s.set_fill(None);
            self.s.set_stroke(Some(Stroke {
                paint: rgb::Color::new(FORM.0, FORM.1, FORM.2).into(),
                width,
                ..Default::default()
            }));
            self.s.draw_path(&path);
            self.s.set_stroke(None);
        }
    }

    fn frame(&mut self, x: f32, y: f32, w: f32, h: f32) {
        self.line(x, y, x + w, y, 0.8);
        self.line(x, y + h, x + w, y + h, 0.8);
        self.line(x, y, x, y + h, 0.8);
        self.line(x + w, y, x + w, y + h, 0.8);
    }

    /// Characters one under the other, centred in a column (the 数电票's side labels).
    fn vertical(&mut self, x_mid: f32, top: f32, bottom: f32, size: f32, text: &str) {
        let n = text.chars().count() as f32;
        let step = (bottom - top) / (n + 1.0);
        for (i, c) in text.chars().enumerate() {
            let s = c.to_string();
            self.centre(
                x_mid,
                top + step * (i as f32 + 1.0) + size / PT_PER_MM / 3.0,
                size,
                FORM,
                &s,
            );
        }
    }
}

/// A line's printed cells, in column order.
fn cells(line: &Line) -> [String; 8] {
    let rate = match line.treatment {
        Treatment::Exempt => "免税".to_string(),
        Treatment::NonTaxable => "不征税".to_string(),
        _ => kaipiao_core::money::rate_percent(&line.tax_rate),
    };
    let tax = match line.treatment {
        Treatment::Exempt | Treatment::NonTaxable => "***".to_string(),
        _ => line.tax.clone(),
    };
    [
        line.name.clone(),
        line.spec.clone(),
        line.unit.clone(),
        line.quantity.clone(),
        line.unit_price.clone(),
        line.amount.clone(),
        rate,
        tax,
    ]
}

/// A laid-out table row: its wrapped cells and its height (mm).
struct Row {
    cells: Vec<Vec<String>>,
    height: f32,
}

fn rows(m: &Metrics<'_>, lines: &[Line]) -> Vec<Row> {
    lines
        .iter()
        .map(|l| {
            let cells: Vec<Vec<String>> = cells(l)
                .iter()
                .zip(COLUMNS)
                .map(|(text, (_, w, _))| m.wrap(text, mm(w - 2.0), TEXT))
                .collect();
            let n = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
            Row {
                cells,
                height: n as f32 * LINE_H + ROW_PAD * 2.0,
            }
        })
        .collect()
}

/// Every text the page prints, checked against the font before anything is drawn.
fn check_coverage(m: &Metrics<'_>, inv: &kaipiao_core::Invoice) -> Result<(), PdfError> {
    let party = |who: &str, p: &Party| -> Result<(), PdfError> {
        m.check(&format!("{who}.name"), &p.name)?;
        m.check(&format!("{who}.tax_id"), &p.tax_id)?;
        m.check(&format!("{who}.address"), &p.address)?;
        m.check(&format!("{who}.bank"), &p.bank)
    };
    party("seller", &inv.seller)?;
    party("buyer", &inv.buyer)?;
    for (i, l) in inv.lines.iter().enumerate() {
        m.check(&format!("lines[{i}].name"), &l.name)?;
        m.check(&format!("lines[{i}].spec"), &l.spec)?;
        m.check(&format!("lines[{i}].unit"), &l.unit)?;
    }
    m.check("remarks", &inv.remarks)?;
    m.check("issuer", &inv.issuer)
}

/// The remarks box's text: the clerk's remarks (a credit note's name its original and
/// reason; where they do not, the original's number is added as the 数电票 adds it), then
/// the outage the invoice was issued during.
fn remarks(p: &Printable<'_>) -> String {
    let inv = &p.envelope.invoice;
    let mut out = inv.remarks.clone();
    if let Some(orig) = inv.original.as_ref().filter(|o| !out.contains(&o.number)) {
        // As the 数电票 names the invoice a red-letter one corrects.
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("被红冲蓝字发票号码：{}", orig.number));
    }
    if let Some(n) = p.outage {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "断网期间开具（第 {n} 次中断） issued during outage #{n}"
        ));
    }
    out
}

pub(crate) fn render(p: &Printable<'_>) -> Result<Vec<u8>, PdfError> {
    let inv = &p.envelope.invoice;
    let metrics = Metrics::new(FONT)?;
    check_coverage(&metrics, inv)?;
    let font = Font::new(FONT.into(), 0)
        .ok_or_else(|| PdfError::Render("the bundled font is not usable".into()))?;
    let issued = china_time(&inv.issued_at)
        .ok_or_else(|| PdfError::Render(format!("issued_at {} is not a time", inv.issued_at)))?;

    let settings = SerializeSettings {
        configuration: ConfigurationBuilder::new()
            .with_archival_validator(Archival::A3_B)
            .finish()
            .map_err(|e| PdfError::Render(format!("PDF/A-3b: {e:?}")))?,
        ..Default::default()
    };
    let mut doc = Document::new_with(settings);
    // The document's dates are the invoice's own (China time): no clock is read.
    let date = PdfDate::new(u16::try_from(issued.year()).unwrap_or(0))
        .month(issued.month() as u8)
        .day(issued.day() as u8)
        .hour(issued.hour() as u8)
        .minute(issued.minute() as u8)
        .second(issued.second() as u8)
        .utc_offset_hour(8)
        .utc_offset_minute(0);
    doc.set_metadata(
        Metadata::new()
            .title(format!(
                "{} {}",
                title(inv.kind, p.credited_kind),
                inv.number
            ))
            .creator("Kaipiao".into())
            .language("zh-CN".into())
            .creation_date(date.clone()),
    );
    embed(&mut doc, p, &date)?;

    let qr = qrcode::QrCode::with_error_correction_level(
        qr_payload(
            inv,
            p.credited_kind,
            match &p.status {
                PaperStatus::Accepted { authority_code } => Some(authority_code.as_str()),
                PaperStatus::Pending => None,
            },
        ),
        qrcode::EcLevel::M,
    )
    .map_err(|e| PdfError::Render(format!("the QR code: {e}")))?;

    // Measure the rows, then cut them into pages.
    let page_settings = PageSettings::from_wh(mm(PAGE_WIDTH_MM), mm(PAGE_HEIGHT_MM))
        .ok_or_else(|| PdfError::Render("page size".into()))?;
    let laid = rows(&metrics, &inv.lines);
    let remark_lines = metrics.wrap(&remarks(p), mm(RIGHT - LEFT - 14.0), TEXT);
    let pages = paginate(
        &laid,
        FRAME_TOP + PARTY_H + HEAD_H,
        closing_height(remark_lines.len()),
    );
    for index in 0..pages.len() {
        let mut page = doc.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        draw_page(
            &mut surface,
            &font,
            &metrics,
            p,
            &qr,
            &laid,
            &pages,
            index,
            &remark_lines,
        )?;
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| PdfError::Render(format!("{e:?}")))
}

/// The height of the closing rows (合计, 价税合计, 备注) for `remark_lines` lines.
fn closing_height(remark_lines: usize) -> f32 {
    TOTAL_H + WORDS_H + (remark_lines as f32 * LINE_H + 2.0 * ROW_PAD).max(REMARKS_MIN_H)
}

/// The rows of each page, as ranges: every page holds what fits between the table's top
/// and the frame's bottom; the last must also hold the closing rows (a page of its own
/// when they do not fit beside the last rows). A row taller than a page is cut off at the
/// page (it cannot happen with the SPEC's limits on names: 100 characters wrap to 11
/// lines at most).
fn paginate(rows: &[Row], top: f32, closing: f32) -> Vec<std::ops::Range<usize>> {
    let room = FRAME_BOTTOM - top;
    let mut pages = Vec::new();
    let mut start = 0;
    let mut used = 0.0;
    for (i, r) in rows.iter().enumerate() {
        if used + r.height > room && i > start {
            pages.push(start..i);
            start = i;
            used = 0.0;
        }
        used += r.height;
    }
    if used + closing > room && start < rows.len() {
        pages.push(start..rows.len());
        pages.push(rows.len()..rows.len());
    } else {
        pages.push(start..rows.len());
    }
    pages
}

fn embed(doc: &mut Document, p: &Printable<'_>, date: &PdfDate) -> Result<(), PdfError> {
    let json =
        MimeType::new("application/json").ok_or_else(|| PdfError::Render("mime type".into()))?;
    let envelope = serde_json::to_vec(p.envelope)
        .map_err(|e| PdfError::Render(format!("the envelope: {e}")))?;
    let mut files = vec![(
        ENVELOPE_FILE,
        "The invoice as signed by the issuing device (kaipiao envelope: invoice, hash, signature)",
        envelope,
    )];
    if let Some(receipt) = p.receipt_json {
        files.push((
            RECEIPT_FILE,
            "The tax authority's signed receipt for this invoice",
            receipt.as_bytes().to_vec(),
        ));
    }
    if let Some(key) = p.authority_public_key {
        let doc_key = serde_json::json!({
            "public_key": key,
            "fingerprint": kaipiao_core::PublicKey::from_base64(key)
                .map(|k| k.fingerprint())
                .unwrap_or_default(),
        });
        files.push((
            AUTHORITY_KEY_FILE,
            "The tax authority's public key (Ed25519, standard base64) and its fingerprint",
            doc_key.to_string().into_bytes(),
        ));
    }
    if let Some(key) = p.device_public_key {
        let doc_key = serde_json::json!({
            "device_id": p.envelope.invoice.device_id,
            "public_key": key,
        });
        files.push((
            crate::DEVICE_KEY_FILE,
            "The issuing device's public key (Ed25519, standard base64): the envelope's signature verifies against it",
            doc_key.to_string().into_bytes(),
        ));
    }
    for (name, description, data) in files {
        doc.embed_file(EmbeddedFile {
            path: name.to_string(),
            mime_type: Some(json.clone()),
            description: Some(description.to_string()),
            association_kind: AssociationKind::Data,
            data: data.into(),
            modification_date: Some(date.clone()),
            compress: Some(false),
            location: None,
        })
        .ok_or_else(|| PdfError::Render(format!("{name} embedded twice")))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_page(
    surface: &mut Surface<'_>,
    font: &Font,
    metrics: &Metrics<'static>,
    p: &Printable<'_>,
    qr: &qrcode::QrCode,
    rows: &[Row],
    pages: &[std::ops::Range<usize>],
    index: usize,
    remark_lines: &[String],
) -> Result<(), PdfError> {
    let inv = &p.envelope.invoice;
    let mut pen = Pen {
        s: surface,
        font: font.clone(),
        m: metrics,
    };
    let last = index + 1 == pages.len();

    // 票头: QR left, title centre, number and date right.
    draw_qr(&mut pen, qr, LEFT, 5.0, 22.0);
    let title_text = title(inv.kind, p.credited_kind);
    pen.centre(PAGE_WIDTH_MM / 2.0, 14.0, 15.0, FORM, title_text);
    let tw = pen.width_mm(title_text, 15.0);
    let (x1, x2) = (
        PAGE_WIDTH_MM / 2.0 - tw / 2.0,
        PAGE_WIDTH_MM / 2.0 + tw / 2.0,
    );
    pen.line(x1, 16.2, x2, 16.2, 0.6);
    pen.line(x1, 17.0, x2, 17.0, 0.6);
    if inv.kind == Kind::Credit {
        // 红字 marked before the title, as the red-letter invoice's paper form does.
        let w = pen.width_mm("红字", 10.0);
        pen.text(x1 - w - 3.0, 13.0, 10.0, RED, "红字");
        pen.frame(x1 - w - 3.8, 9.2, w + 1.6, 5.0);
    }
    let (status_text, status_color) = match &p.status {
        PaperStatus::Pending => (
            "待税务机关确认：本机已签名，尚未上传 · Pending: signed locally, awaiting the authority".to_string(),
            PENDING,
        ),
        PaperStatus::Accepted { authority_code } => (
            format!("税务机关已受理 · 确认码 {authority_code}"),
            INK,
        ),
    };
    pen.centre(PAGE_WIDTH_MM / 2.0, 22.5, 7.0, status_color, &status_text);
    if p.sandbox {
        pen.centre(
            PAGE_WIDTH_MM / 2.0,
            27.0,
            7.0,
            RED,
            "SANDBOX 样票：测试环境开具，不是正式发票 · issued by a sandbox authority, not a real invoice",
        );
    }
    let issued = china_time(&inv.issued_at)
        .map(|t| t.format("%Y年%m月%d日").to_string())
        .unwrap_or_default();
    pen.text(142.0, 13.0, 8.5, FORM, "发票号码：");
    pen.text(
        142.0 + pen.width_mm("发票号码：", 8.5),
        13.0,
        8.5,
        INK,
        &inv.number,
    );
    pen.text(142.0, 19.0, 8.5, FORM, "开票日期：");
    pen.text(
        142.0 + pen.width_mm("开票日期：", 8.5),
        19.0,
        8.5,
        INK,
        &issued,
    );

    // The frame and the parties.
    pen.frame(LEFT, FRAME_TOP, RIGHT - LEFT, FRAME_BOTTOM - FRAME_TOP);
    let mid = (LEFT + RIGHT) / 2.0;
    pen.line(mid, FRAME_TOP, mid, FRAME_TOP + PARTY_H, 0.6);
    pen.line(LEFT, FRAME_TOP + PARTY_H, RIGHT, FRAME_TOP + PARTY_H, 0.6);
    for (x, label, party) in [
        (LEFT, "购买方信息", &inv.buyer),
        (mid, "销售方信息", &inv.seller),
    ] {
        pen.line(
            x + LABEL_W,
            FRAME_TOP,
            x + LABEL_W,
            FRAME_TOP + PARTY_H,
            0.4,
        );
        pen.vertical(
            x + LABEL_W / 2.0,
            FRAME_TOP,
            FRAME_TOP + PARTY_H,
            7.0,
            label,
        );
        let fx = x + LABEL_W + 1.5;
        let mut y = FRAME_TOP + 4.0;
        let mut field = |pen: &mut Pen<'_, '_>, name: &str, value: &str| {
            pen.text(fx, y, 7.0, FORM, name);
            let vx = fx + pen.width_mm(name, 7.0);
            let room = mid - LABEL_W - 3.0 - (vx - x);
            let shown = pen
                .wrap(value, room, 7.0)
                .into_iter()
                .next()
                .unwrap_or_default();
            pen.text(vx, y, 7.0, INK, &shown);
            y += 3.7;
        };
        field(&mut pen, "名称：", &party.name);
        field(&mut pen, "统一社会信用代码/纳税人识别号：", &party.tax_id);
        if !party.address.is_empty() {
            field(&mut pen, "地址、电话：", &party.address);
        }
        if !party.bank.is_empty() {
            field(&mut pen, "开户银行及账号：", &party.bank);
        }
    }

    // The table header.
    let head_top = FRAME_TOP + PARTY_H;
    let mut x = LEFT;
    for (name, w, _) in COLUMNS {
        pen.centre(x + w / 2.0, head_top + 3.9, TEXT, FORM, name);
        x += w;
    }
    pen.line(LEFT, head_top + HEAD_H, RIGHT, head_top + HEAD_H, 0.4);

    // The rows of this page.
    let mut y = head_top + HEAD_H;
    for row in &rows[pages[index].clone()] {
        let mut x = LEFT;
        for (lines, (_, w, right)) in row.cells.iter().zip(COLUMNS) {
            for (k, text) in lines.iter().enumerate() {
                let baseline = y + ROW_PAD + LINE_H * (k as f32 + 1.0) - 0.9;
                if right {
                    pen.right(x + w - 1.0, baseline, TEXT, INK, text);
                } else {
                    pen.text(x + 1.0, baseline, TEXT, INK, text);
                }
            }
            x += w;
        }
        y += row.height;
    }

    if last {
        // 合计, 价税合计, 备注 close the last page, right under the last row.
        let closing = closing_height(remark_lines.len());
        let top = (FRAME_BOTTOM - closing).max(y);
        pen.line(LEFT, top, RIGHT, top, 0.6);
        pen.centre(LEFT + COLUMNS[0].1 / 2.0, top + 3.9, TEXT, FORM, "合计");
        let amount_right = LEFT + COLUMNS[..6].iter().map(|c| c.1).sum::<f32>() - 1.0;
        pen.right(
            amount_right,
            top + 3.9,
            TEXT,
            INK,
            &format!("¥{}", inv.total_amount),
        );
        pen.right(
            RIGHT - 1.0,
            top + 3.9,
            TEXT,
            INK,
            &format!("¥{}", inv.total_tax),
        );
        let words_top = top + TOTAL_H;
        pen.line(LEFT, words_top, RIGHT, words_top, 0.6);
        pen.text(LEFT + 1.5, words_top + 4.3, 8.0, FORM, "价税合计（大写）");
        let words = kaipiao_core::words::total_in_words(&inv.total);
        pen.text(
            LEFT + 30.0,
            words_top + 4.3,
            8.5,
            INK,
            &format!("⊗ {words}"),
        );
        pen.text(140.0, words_top + 4.3, 8.0, FORM, "（小写）");
        pen.text(
            140.0 + pen.width_mm("（小写）", 8.0),
            words_top + 4.3,
            8.5,
            INK,
            &format!("¥{}", inv.total),
        );
        let remarks_top = words_top + WORDS_H;
        pen.line(LEFT, remarks_top, RIGHT, remarks_top, 0.6);
        pen.line(LEFT + 10.0, remarks_top, LEFT + 10.0, FRAME_BOTTOM, 0.4);
        pen.vertical(LEFT + 5.0, remarks_top, FRAME_BOTTOM, 7.0, "备注");
        for (k, text) in remark_lines.iter().enumerate() {
            pen.text(
                LEFT + 12.0,
                remarks_top + ROW_PAD + LINE_H * (k as f32 + 1.0) - 0.9,
                TEXT,
                INK,
                text,
            );
        }
    } else {
        pen.centre(mid, FRAME_BOTTOM - 2.0, TEXT, FORM, "（续下页 continued）");
    }

    // Below the frame: the issuer and the page.
    pen.text(LEFT, FRAME_BOTTOM + 6.0, 8.0, FORM, "开票人：");
    pen.text(
        LEFT + pen.width_mm("开票人：", 8.0),
        FRAME_BOTTOM + 6.0,
        8.0,
        INK,
        &inv.issuer,
    );
    pen.right(
        RIGHT,
        FRAME_BOTTOM + 6.0,
        7.0,
        FORM,
        &format!("第 {} 页 / 共 {} 页", index + 1, pages.len()),
    );

    if p.sandbox {
        sandbox_mark(&mut pen);
    }
    Ok(())
}

/// The QR code as vector squares, `size` mm with its 4-module quiet zone, at (x, y).
fn draw_qr(pen: &mut Pen<'_, '_>, qr: &qrcode::QrCode, x: f32, y: f32, size: f32) {
    let w = qr.width();
    let module = size / (w as f32 + 8.0);
    let colors = qr.to_colors();
    let mut pb = PathBuilder::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (cx, cy) = ((i % w) as f32, (i / w) as f32);
            if let Some(r) = Rect::from_xywh(
                mm(x + (cx + 4.0) * module),
                mm(y + (cy + 4.0) * module),
                mm(module),
                mm(module),
            ) {
                pb.push_rect(r);
            }
        }
    }
    if let Some(path) = pb.finish() {
        pen.s.set_stroke(None);
        pen.s.set_fill(Some(fill((0, 0, 0))));
        pen.s.draw_path(&path);
    }
}

/// "SANDBOX 样票" across the page, translucent: never taken for a real invoice.
fn sandbox_mark(pen: &mut Pen<'_, '_>) {
    let text = "SANDBOX 样票";
    let size = 54.0;
    let w = pen.width_mm(text, size);
    pen.s.push_transform(&Transform::from_rotate_at(
        -18.0,
        mm(PAGE_WIDTH_MM / 2.0),
        mm(PAGE_HEIGHT_MM / 2.0),
    ));
    pen.s
        .push_opacity(NormalizedF32::new(0.22).unwrap_or(NormalizedF32::ONE));
    pen.text(
        PAGE_WIDTH_MM / 2.0 - w / 2.0,
        PAGE_HEIGHT_MM / 2.0 + 7.0,
        size,
        RED,
        text,
    );
    pen.s.pop();
    pen.s.pop();
}
