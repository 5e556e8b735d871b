//! A small line chart written as a PNG with the `png` crate alone: the benchmarks need two
//! lines over time, axes and numbers on them, not a plotting library.

use std::path::Path;

/// One line: its colour and its points (x, y).
pub struct Series {
    pub rgb: [u8; 3],
    pub points: Vec<(f64, f64)>,
}

const WIDTH: usize = 960;
const HEIGHT: usize = 540;
const MARGIN: usize = 60;

struct Canvas {
    pixels: Vec<u8>,
}

impl Canvas {
    fn set(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x < WIDTH && y < HEIGHT {
            let i = (y * WIDTH + x) * 3;
            self.pixels[i..i + 3].copy_from_slice(&rgb);
        }
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), rgb: [u8; 3], thick: usize) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            for dx in 0..thick {
                for dy in 0..thick {
                    self.set(x as usize + dx, y as usize + dy, rgb);
                }
            }
        }
    }

    /// Digits and `.` in a 3×5 font, scaled by 2, with the top-left corner at (x, y).
    fn text(&mut self, x: usize, y: usize, text: &str) {
        const GLYPHS: [(char, [u8; 5]); 11] = [
            ('0', [7, 5, 5, 5, 7]),
            ('1', [2, 6, 2, 2, 7]),
            ('2', [7, 1, 7, 4, 7]),
            ('3', [7, 1, 7, 1, 7]),
            ('4', [5, 5, 7, 1, 1]),
            ('5', [7, 4, 7, 1, 7]),
            ('6', [7, 4, 7, 5, 7]),
            ('7', [7, 1, 1, 1, 1]),
            ('8', [7, 5, 7, 5, 7]),
            ('9', [7, 5, 7, 1, 7]),
            ('.', [0, 0, 0, 0, 2]),
        ];
        for (i, c) in text.chars().enumerate() {
            let Some((_, rows)) = GLYPHS.iter().find(|(g, _)| *g == c) else { continue };
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits >> (2 - col) & 1 == 1 {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set(x + i * 8 + col * 2 + dx, y + row * 2 + dy, [0, 0, 0]);
                        }
                    }
                }
            }
        }
    }
}

/// A round step for about `ticks` ticks up to `max`.
fn tick_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|step| *step >= raw).unwrap_or(raw)
}

/// Draws the series (as steps: each value holds until the next point) on axes from 0, with
/// tick numbers on both, and writes the PNG to `path`.
pub fn write(path: &Path, series: &[Series]) -> std::io::Result<()> {
    let mut canvas = Canvas { pixels: vec![255; WIDTH * HEIGHT * 3] };
    let points = series.iter().flat_map(|s| &s.points);
    let x_max = points.clone().map(|p| p.0).fold(1e-9, f64::max);
    let y_max = points.map(|p| p.1).fold(1.0, f64::max);
    let (plot_w, plot_h) = ((WIDTH - 2 * MARGIN) as f64, (HEIGHT - 2 * MARGIN) as f64);
    let at = |(x, y): (f64, f64)| (MARGIN as f64 + x / x_max * plot_w, (HEIGHT - MARGIN) as f64 - y / y_max * plot_h);
    let (x_step, y_step) = (tick_step(x_max, 10.0), tick_step(y_max, 8.0));
    let grey = [220, 220, 220];
    let mut x = 0.0;
    while x <= x_max + 1e-9 {
        canvas.line(at((x, 0.0)), at((x, y_max)), grey, 1);
        let (px, py) = at((x, 0.0));
        canvas.text(px as usize - 4, py as usize + 8, &format!("{x}"));
        x += x_step;
    }
    let mut y = 0.0;
    while y <= y_max + 1e-9 {
        canvas.line(at((0.0, y)), at((x_max, y)), grey, 1);
        let label = format!("{y}");
        let (px, py) = at((0.0, y));
        canvas.text((px as usize).saturating_sub(10 + label.len() * 8), py as usize - 5, &label);
        y += y_step;
    }
    canvas.line(at((0.0, 0.0)), at((x_max, 0.0)), [0, 0, 0], 2);
    canvas.line(at((0.0, 0.0)), at((0.0, y_max)), [0, 0, 0], 2);
    for s in series {
        for pair in s.points.windows(2) {
            let corner = (pair[1].0, pair[0].1);
            canvas.line(at(pair[0]), at(corner), s.rgb, 2);
            canvas.line(at(corner), at(pair[1]), s.rgb, 2);
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, WIDTH as u32, HEIGHT as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer.write_image_data(&canvas.pixels).map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}
