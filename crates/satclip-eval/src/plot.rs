//! A small RGB canvas for figures: filled rectangles and text in an 8×8 bitmap font, written as
//! PNG. Enough for a scatter plot with a legend, with no font file to find at run time.

use std::path::Path;

use font8x8::{UnicodeFonts, BASIC_FONTS, LATIN_FONTS};
use satclip_io::error::Result;

pub(crate) const WHITE: [u8; 3] = [255, 255, 255];
pub(crate) const INK: [u8; 3] = [33, 33, 33];
pub(crate) const GREY: [u8; 3] = [190, 190, 190];

/// Width of a glyph cell at scale 1 (the font is 8 pixels square).
pub(crate) const GLYPH: usize = 8;

pub(crate) struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    pub(crate) fn new(width: usize, height: usize, background: [u8; 3]) -> Self {
        Self { width, height, rgb: background.repeat(width * height) }
    }

    /// Fills the rectangle at (`x`, `y`) of `w` × `h` pixels, clipped to the canvas.
    pub(crate) fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, colour: [u8; 3]) {
        for row in y..(y + h).min(self.height) {
            for col in x..(x + w).min(self.width) {
                let at = (row * self.width + col) * 3;
                self.rgb[at..at + 3].copy_from_slice(&colour);
            }
        }
    }

    /// Writes `text` with its top-left corner at (`x`, `y`), each font pixel `scale` pixels
    /// square. Characters outside Basic Latin and Latin-1 are drawn as `?`.
    pub(crate) fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, colour: [u8; 3]) {
        for (i, c) in text.chars().enumerate() {
            let glyph = BASIC_FONTS.get(c).or_else(|| LATIN_FONTS.get(c)).or_else(|| BASIC_FONTS.get('?'));
            let left = x + i * GLYPH * scale;
            for (row, bits) in glyph.unwrap_or_default().iter().enumerate() {
                for bit in 0..GLYPH {
                    if bits & (1 << bit) != 0 {
                        self.fill(left + bit * scale, y + row * scale, scale, scale, colour);
                    }
                }
            }
        }
    }

    pub(crate) fn write_png(&self, out: &Path) -> Result<()> {
        crate::maps::write_png(out, self.width, self.height, &self.rgb)
    }

    #[cfg(test)]
    pub(crate) fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let at = (y * self.width + x) * 3;
        [self.rgb[at], self.rgb[at + 1], self.rgb[at + 2]]
    }
}

/// `text` cut to `chars` characters, an ellipsis marking the cut.
pub(crate) fn fit(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        text.chars().take(chars.saturating_sub(3)).chain("...".chars()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sets_the_glyph_pixels_and_nothing_else() {
        let mut canvas = Canvas::new(40, 12, WHITE);
        canvas.text(2, 2, "I", 1, INK);
        // font8x8's `I` is rows 0x1E, 0x0C, …: row 0 has bits 1–4 set, row 1 bits 2–3.
        assert_eq!(canvas.pixel(2 + 1, 2), INK);
        assert_eq!(canvas.pixel(2 + 4, 2), INK);
        assert_eq!(canvas.pixel(2, 2), WHITE, "bit 0 is clear");
        assert_eq!(canvas.pixel(2 + 1, 3), WHITE);
        assert_eq!(canvas.pixel(2 + 2, 3), INK);
        // Scale 2 doubles every font pixel.
        let mut big = Canvas::new(40, 20, WHITE);
        big.text(0, 0, "I", 2, INK);
        assert_eq!([big.pixel(2, 0), big.pixel(3, 1), big.pixel(1, 0)], [INK, INK, WHITE]);
    }

    #[test]
    fn long_labels_are_cut_with_an_ellipsis() {
        assert_eq!(fit("Tundra", 10), "Tundra");
        assert_eq!(fit("Tropical & Subtropical Moist Broadleaf Forests", 20), "Tropical & Subtro...");
    }
}
