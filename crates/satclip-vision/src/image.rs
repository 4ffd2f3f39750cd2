/// A channels-first f32 image: `data[(c · height + y) · width + x]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// Index of the zero-filled B10 (cirrus) band in the 13-band input of the SSL4EO towers.
pub const B10_INDEX: usize = 10;
/// Sentinel-2 L2A digital numbers are scaled by this to reflectance, as the official transform.
pub const REFLECTANCE_SCALE: f32 = 10_000.0;

impl Image {
    /// The official preprocessing of a 12-band S2-100K tile given band-interleaved-by-pixel
    /// values (`pixels[(y · width + x) · 12 + band]`): value / 10000 in f32, then a zero B10 band
    /// inserted at index 10, giving 13 channels.
    pub fn from_sentinel2_l2a(width: usize, height: usize, pixels: &[f32]) -> Self {
        let bands_in = 12;
        assert_eq!(pixels.len(), width * height * bands_in, "expected 12 interleaved bands");
        let channels = bands_in + 1;
        let mut data = vec![0f32; channels * width * height];
        for (p, px) in pixels.chunks_exact(bands_in).enumerate() {
            for (b, v) in px.iter().enumerate() {
                let c = if b < B10_INDEX { b } else { b + 1 };
                data[c * width * height + p] = *v / REFLECTANCE_SCALE;
            }
        }
        Self { channels, height, width, data }
    }

    /// The centre `size × size` crop, offset as torchvision's `CenterCrop`: round((H − size) / 2).
    pub fn center_crop(&self, size: usize) -> Self {
        assert!(size <= self.height && size <= self.width, "crop larger than the image");
        let top = ((self.height - size) as f64 / 2.0).round() as usize;
        let left = ((self.width - size) as f64 / 2.0).round() as usize;
        let mut data = Vec::with_capacity(self.channels * size * size);
        for c in 0..self.channels {
            for y in top..top + size {
                let row = (c * self.height + y) * self.width;
                data.extend_from_slice(&self.data[row + left..row + left + size]);
            }
        }
        Self { channels: self.channels, height: size, width: size, data }
    }
}
