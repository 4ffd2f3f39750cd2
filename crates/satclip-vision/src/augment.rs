//! Training augmentations of the official pipeline (horizontal and vertical flips, GaussianBlur
//! with a 3×3 kernel and σ ∈ [0.1, 2]) plus 90° rotations, applied to channels-first images.

use crate::image::Image;

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augmentation {
    pub hflip: bool,
    pub vflip: bool,
    /// Quarter turns counter-clockwise (square images only).
    pub rot90: u8,
    pub blur_sigma: Option<f32>,
}

impl Augmentation {
    /// Draws an augmentation from uniform numbers in [0, 1): each flip with probability ½, a
    /// rotation of 0–3 quarter turns, and a blur with σ uniform in [0.1, 2] (as torchvision's
    /// `GaussianBlur(3)`, always applied).
    pub fn random(next: &mut dyn FnMut() -> f64) -> Self {
        Self {
            hflip: next() < 0.5,
            vflip: next() < 0.5,
            rot90: (next() * 4.0) as u8 % 4,
            blur_sigma: Some((0.1 + 1.9 * next()) as f32),
        }
    }

    pub fn apply(&self, image: &Image) -> Image {
        let mut out = image.clone();
        if self.hflip {
            out = remap(&out, out.height, out.width, |y, x, _h, w| (y, w - 1 - x));
        }
        if self.vflip {
            out = remap(&out, out.height, out.width, |y, x, h, _w| (h - 1 - y, x));
        }
        for _ in 0..self.rot90 % 4 {
            // Counter-clockwise: the output pixel (y, x) comes from (x, W − 1 − y).
            out = remap(&out, out.width, out.height, |y, x, _h, w| (x, w - 1 - y));
        }
        if let Some(sigma) = self.blur_sigma {
            out = gaussian_blur3(&out, sigma);
        }
        out
    }
}

/// New image of `height × width` whose pixel (y, x) is the source pixel `from(y, x, H, W)`.
fn remap(
    src: &Image,
    height: usize,
    width: usize,
    from: impl Fn(usize, usize, usize, usize) -> (usize, usize),
) -> Image {
    let mut data = Vec::with_capacity(src.data.len());
    for c in 0..src.channels {
        for y in 0..height {
            for x in 0..width {
                let (sy, sx) = from(y, x, src.height, src.width);
                data.push(src.data[(c * src.height + sy) * src.width + sx]);
            }
        }
    }
    Image { channels: src.channels, height, width, data }
}

/// Separable 3-tap Gaussian with reflect padding, as torchvision's `gaussian_blur`.
pub fn gaussian_blur3(src: &Image, sigma: f32) -> Image {
    let w = [(-0.5 / (sigma * sigma)).exp(), 1.0, (-0.5 / (sigma * sigma)).exp()];
    let total: f32 = w.iter().sum();
    let w = w.map(|v| v / total);
    let reflect = |i: isize, n: usize| -> usize {
        if i < 0 {
            (-i) as usize
        } else if i as usize >= n {
            2 * n - 2 - i as usize
        } else {
            i as usize
        }
    };
    let (h, wd) = (src.height, src.width);
    let mut tmp = vec![0f32; src.data.len()];
    let mut out = vec![0f32; src.data.len()];
    for c in 0..src.channels {
        let plane = &src.data[c * h * wd..(c + 1) * h * wd];
        for y in 0..h {
            for x in 0..wd {
                tmp[c * h * wd + y * wd + x] =
                    (0..3).map(|k| w[k] * plane[y * wd + reflect(x as isize + k as isize - 1, wd)]).sum();
            }
        }
        for y in 0..h {
            for x in 0..wd {
                out[c * h * wd + y * wd + x] =
                    (0..3).map(|k| w[k] * tmp[c * h * wd + reflect(y as isize + k as isize - 1, h) * wd + x]).sum();
            }
        }
    }
    Image { channels: src.channels, height: h, width: wd, data: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> Image {
        // 1 channel, 2×3: [[0, 1, 2], [3, 4, 5]]
        Image { channels: 1, height: 2, width: 3, data: (0..6).map(|v| v as f32).collect() }
    }

    #[test]
    fn flips_and_rotations_move_pixels_as_expected() {
        let h = Augmentation { hflip: true, ..Default::default() }.apply(&img());
        assert_eq!(h.data, vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        let v = Augmentation { vflip: true, ..Default::default() }.apply(&img());
        assert_eq!(v.data, vec![3.0, 4.0, 5.0, 0.0, 1.0, 2.0]);
        let r = Augmentation { rot90: 1, ..Default::default() }.apply(&img());
        assert_eq!((r.height, r.width), (3, 2));
        // Counter-clockwise: the right column becomes the top row.
        assert_eq!(r.data, vec![2.0, 5.0, 1.0, 4.0, 0.0, 3.0]);
        let full = Augmentation { rot90: 4, ..Default::default() }.apply(&img());
        assert_eq!(full, img());
    }

    #[test]
    fn blur_preserves_constants_and_mean_of_a_symmetric_image() {
        let flat = Image { channels: 2, height: 4, width: 4, data: vec![0.3; 32] };
        let b = gaussian_blur3(&flat, 1.0);
        assert!(b.data.iter().all(|v| (v - 0.3).abs() < 1e-6));
        // A centred impulse spreads into the 3×3 neighbourhood with the Gaussian weights.
        let mut data = vec![0.0; 25];
        data[12] = 1.0;
        let b = gaussian_blur3(&Image { channels: 1, height: 5, width: 5, data }, 0.5);
        let e = (-2.0f32).exp();
        let side = e / (1.0 + 2.0 * e);
        assert!((b.data[12] - (1.0 / (1.0 + 2.0 * e)).powi(2)).abs() < 1e-6);
        assert!((b.data[11] - side / (1.0 + 2.0 * e)).abs() < 1e-6);
        assert!((b.data.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
