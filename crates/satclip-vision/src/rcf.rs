//! Random convolutional features (MOSAIKS, Rolf et al. 2021), which the official code once
//! offered as an image encoder: K filters cut from random patches of the corpus itself, applied
//! with a positive and a negative bias through a ReLU and average-pooled, giving 2K features. They
//! need no pretrained backbone, so any imagery can be used.

use crate::conv::{relu, Conv2d};
use crate::image::Image;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RandomConvFeatures {
    pub channels: usize,
    pub kernel: usize,
    pub bias: f32,
    /// `[filters, channels, kernel, kernel]`, each filter zero-mean and unit-norm.
    pub filters: Vec<f32>,
}

impl RandomConvFeatures {
    /// Cuts `count` filters from random positions of random images, using `next` as the source
    /// of uniform numbers in [0, 1).
    pub fn from_patches(
        images: &[Image],
        count: usize,
        kernel: usize,
        bias: f32,
        next: &mut dyn FnMut() -> f64,
    ) -> Self {
        assert!(!images.is_empty(), "need images to cut filters from");
        let channels = images[0].channels;
        let mut filters = Vec::with_capacity(count * channels * kernel * kernel);
        while filters.len() < count * channels * kernel * kernel {
            let img = &images[(next() * images.len() as f64) as usize % images.len()];
            let y = (next() * (img.height - kernel + 1) as f64) as usize;
            let x = (next() * (img.width - kernel + 1) as f64) as usize;
            let mut patch = Vec::with_capacity(channels * kernel * kernel);
            for c in 0..channels {
                for ky in 0..kernel {
                    let row = (c * img.height + y + ky) * img.width + x;
                    patch.extend_from_slice(&img.data[row..row + kernel]);
                }
            }
            let mean = patch.iter().sum::<f32>() / patch.len() as f32;
            patch.iter_mut().for_each(|v| *v -= mean);
            let norm = patch.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm < 1e-6 {
                continue; // a flat patch carries no pattern; draw another
            }
            filters.extend(patch.iter().map(|v| v / norm));
        }
        Self { channels, kernel, bias, filters }
    }

    pub fn count(&self) -> usize {
        self.filters.len() / (self.channels * self.kernel * self.kernel)
    }

    /// 2K features: mean of relu(w·x − b) and of relu(−w·x − b) over the image, per filter.
    pub fn pooled(&self, image: &Image) -> Vec<f32> {
        let k = self.count();
        let mut weight = self.filters.clone();
        weight.extend(self.filters.iter().map(|v| -v));
        let conv = Conv2d {
            weight,
            bias: vec![-self.bias; 2 * k],
            in_channels: self.channels,
            out_channels: 2 * k,
            kernel: self.kernel,
            stride: 1,
            padding: 0,
        };
        let mut response = conv.forward(image);
        relu(&mut response);
        let spatial = response.height * response.width;
        response.data.chunks_exact(spatial).map(|p| p.iter().sum::<f32>() / spatial as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_respond_to_patterns_with_both_signs() {
        let stripes = Image {
            channels: 1,
            height: 8,
            width: 8,
            data: (0..64).map(|i| if (i % 8) % 2 == 0 { 1.0 } else { 0.0 }).collect(),
        };
        let mut n = 0.0;
        let mut next = || {
            n = (n + 0.37) % 1.0;
            n
        };
        let rcf = RandomConvFeatures::from_patches(std::slice::from_ref(&stripes), 4, 3, 0.1, &mut next);
        assert_eq!(rcf.count(), 4);
        for f in rcf.filters.chunks_exact(9) {
            assert!(f.iter().sum::<f32>().abs() < 1e-5 && (f.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let features = rcf.pooled(&stripes);
        assert_eq!(features.len(), 8);
        assert!(features.iter().all(|v| *v >= 0.0) && features.iter().any(|v| *v > 0.1));
        let flat = Image { channels: 1, height: 8, width: 8, data: vec![0.5; 64] };
        assert!(rcf.pooled(&flat).iter().all(|v| *v == 0.0), "zero-mean filters ignore a flat image");
    }
}
