//! The load-over-time chart, drawn into a plain RGB raster and written as PNG.
//!
//! Drawn by hand on purpose: a chart library needs system fonts (or a font file to ship)
//! for its labels; here the labels use the public-domain 8x8 bitmap font of `font8x8`,
//! so `make fleet` draws the same picture on any machine.

use crate::Measured;
use std::io::Write;

type Rgb = [u8; 3];

const BLACK: Rgb = [0, 0, 0];
const GRID: Rgb = [225, 225, 225];
const GREY: Rgb = [120, 120, 120];
/// Naive client, offered / accepted.
const RED: Rgb = [214, 39, 40];
const PINK: Rgb = [245, 160, 160];
/// Kaipiao, offered / accepted.
const BLUE: Rgb = [31, 119, 180];
const GREEN: Rgb = [44, 160, 44];

struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let i = (y as usize * self.width + x as usize) * 3;
        self.pixels[i..i + 3].copy_from_slice(&c);
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }

    /// A line `thick` pixels wide; `dash` > 0 draws dashes of that many pixels.
    fn line(
        &mut self,
        (x0, y0): (f64, f64),
        (x1, y1): (f64, f64),
        c: Rgb,
        thick: i64,
        dash: usize,
    ) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=steps {
            if dash > 0 && (i / dash) % 2 == 1 {
                continue;
            }
            let t = i as f64 / steps as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            let (x, y) = (x.round() as i64, y.round() as i64);
            let h = thick / 2;
            self.rect(x - h, y - h, x - h + thick - 1, y - h + thick - 1, c);
        }
    }

    /// Text at (x, y) (top left), each font pixel `scale` pixels square.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or([0; 8]);
            let gx = x + k as i64 * 8 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let (px, py) = (gx + col * scale, y + row as i64 * scale);
                        self.rect(px, py, px + scale - 1, py + scale - 1, c);
                    }
                }
            }
        }
    }

    /// Text turned a quarter left (reads bottom to top), for a y-axis label.
    fn text_up(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or([0; 8]);
            let gy = y - k as i64 * 8 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let (px, py) = (x + row as i64 * scale, gy - col * scale);
                        self.rect(px, py - scale + 1, px + scale - 1, py, c);
                    }
                }
            }
        }
    }

    fn png(&self, out: impl Write) -> Result<(), png::EncodingError> {
        let mut encoder = png::Encoder::new(out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.pixels)?;
        writer.finish()
    }
}

/// One panel: a frame, axes with ticks, and series of per-second values.
struct Panel {
    left: i64,
    top: i64,
    width: i64,
    height: i64,
    x_max: f64,
    y_max: f64,
}

impl Panel {
    fn x(&self, t: f64) -> f64 {
        self.left as f64 + t / self.x_max * self.width as f64
    }

    fn y(&self, v: f64) -> f64 {
        (self.top + self.height) as f64 - v.min(self.y_max) / self.y_max * self.height as f64
    }

    fn frame(&self, c: &mut Canvas, title: &str, y_label: &str) {
        let (l, t, w, h) = (self.left, self.top, self.width, self.height);
        let y_step = nice_step(self.y_max / 5.0);
        let mut v = 0.0;
        while v <= self.y_max + 1e-9 {
            let y = self.y(v);
            c.line((l as f64, y), ((l + w) as f64, y), GRID, 1, 0);
            let label = format!("{v:.0}");
            c.text(
                l - 10 - 8 * label.len() as i64 * 2,
                y as i64 - 8,
                &label,
                2,
                BLACK,
            );
            v += y_step;
        }
        let x_step = nice_step(self.x_max / 8.0);
        let mut s = 0.0;
        while s <= self.x_max + 1e-9 {
            let x = self.x(s);
            c.line((x, t as f64), (x, (t + h) as f64), GRID, 1, 0);
            let label = format!("{s:.0}");
            c.text(
                x as i64 - 8 * label.len() as i64,
                t + h + 10,
                &label,
                2,
                BLACK,
            );
            s += x_step;
        }
        c.line(
            (l as f64, t as f64),
            (l as f64, (t + h) as f64),
            BLACK,
            2,
            0,
        );
        c.line(
            (l as f64, (t + h) as f64),
            ((l + w) as f64, (t + h) as f64),
            BLACK,
            2,
            0,
        );
        c.text(l, t - 30, title, 2, BLACK);
        c.text_up(
            l - 118,
            t + h / 2 + 8 * y_label.len() as i64,
            y_label,
            2,
            BLACK,
        );
        let x_label = "time since the authority recovered (s)";
        c.text(
            l + w / 2 - 8 * x_label.len() as i64,
            t + h + 34,
            x_label,
            2,
            BLACK,
        );
    }

    fn series(&self, c: &mut Canvas, values: &[u32], colour: Rgb, thick: i64) {
        let mut last: Option<(f64, f64)> = None;
        for (i, v) in values.iter().enumerate() {
            // Each second's value at the middle of that second.
            let point = (self.x(i as f64 + 0.5), self.y(f64::from(*v)));
            if let Some(prev) = last {
                c.line(prev, point, colour, thick, 0);
            }
            last = Some(point);
        }
    }

    fn level(&self, c: &mut Canvas, v: f64, colour: Rgb, dash: usize, label: &str) {
        let y = self.y(v);
        c.line(
            (self.left as f64, y),
            ((self.left + self.width) as f64, y),
            colour,
            2,
            dash,
        );
        c.text(
            self.left + self.width - 8 * 2 * label.len() as i64 - 4,
            y as i64 - 20,
            label,
            2,
            colour,
        );
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-9);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

fn legend(c: &mut Canvas, x: i64, y: i64, entries: &[(Rgb, &str)]) {
    for (k, (colour, label)) in entries.iter().enumerate() {
        let ly = y + k as i64 * 24;
        c.rect(x, ly + 4, x + 30, ly + 9, *colour);
        c.text(x + 40, ly, label, 2, BLACK);
    }
}

/// Draws the naive herd and Kaipiao's policy, offered and accepted requests per second
/// against the capacity, in two panels (the herd's scale would flatten the policy's).
pub fn chart(
    naive: &Measured,
    policy: &Measured,
    out: impl Write,
) -> Result<(), png::EncodingError> {
    let (width, height) = (1400, 1100);
    let mut c = Canvas::new(width, height);
    let capacity = policy.scenario.capacity;
    let seconds = naive.seconds.len().max(policy.seconds.len()) as f64;
    let x_max = (seconds / 10.0).ceil() * 10.0;
    let offered = |m: &Measured| m.seconds.iter().map(|s| s.offered).collect::<Vec<_>>();
    let accepted = |m: &Measured| m.seconds.iter().map(|s| s.accepted).collect::<Vec<_>>();
    let s = &policy.scenario;
    let title = format!(
        "{} clients x {} invoices, capacity {:.0} invoices/s, ideal drain {:.0} s",
        s.clients,
        s.backlog,
        s.capacity,
        s.ideal_drain()
    );
    c.text(130, 14, &title, 2, BLACK);

    let peak = naive.seconds.iter().map(|s| s.offered).max().unwrap_or(0);
    let top = Panel {
        left: 130,
        top: 90,
        width: 1220,
        height: 380,
        x_max,
        y_max: (f64::from(peak) * 1.1).max(capacity * 2.0),
    };
    top.frame(&mut c, "offered load: naive herd vs Kaipiao", "invoices/s");
    top.series(&mut c, &offered(naive), RED, 3);
    top.series(&mut c, &offered(policy), BLUE, 3);
    top.level(&mut c, capacity, BLACK, 8, "capacity");
    legend(
        &mut c,
        top.left + top.width - 560,
        top.top + 20,
        &[
            (RED, "naive: offered (1 s fixed retry)"),
            (BLUE, "Kaipiao policy: offered"),
        ],
    );

    let bottom = Panel {
        left: 130,
        top: 620,
        width: 1220,
        height: 380,
        x_max,
        y_max: capacity * 1.5,
    };
    bottom.frame(
        &mut c,
        "Kaipiao policy close up (naive accepted for scale)",
        "invoices/s",
    );
    bottom.series(&mut c, &accepted(naive), PINK, 2);
    bottom.series(&mut c, &offered(policy), BLUE, 3);
    bottom.series(&mut c, &accepted(policy), GREEN, 2);
    bottom.level(&mut c, capacity, BLACK, 8, "capacity");
    bottom.level(&mut c, capacity * 1.1, GREY, 4, "1.1x capacity");
    legend(
        &mut c,
        bottom.left + 20,
        bottom.top + 15,
        &[
            (BLUE, "Kaipiao: offered"),
            (GREEN, "Kaipiao: accepted"),
            (PINK, "naive: accepted"),
        ],
    );
    c.png(out)
}
