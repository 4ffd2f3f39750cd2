//! Convolution by im2col + GEMM, with batch norm folded into the weights at load time.

use satclip_core::kernels::{gemm, MatRef};

use crate::image::Image;

/// A 2-D convolution with bias (the folded batch-norm shift), weights `[out, in, k, k]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    /// Folds an eval-mode batch norm, y = (x − mean)/√(var + eps)·γ + β, into the convolution.
    pub fn fold_batch_norm(&mut self, gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f64) {
        let per_out = self.in_channels * self.kernel * self.kernel;
        for o in 0..self.out_channels {
            let inv = (gamma[o] as f64 / (var[o] as f64 + eps).sqrt()) as f32;
            self.weight[o * per_out..(o + 1) * per_out].iter_mut().for_each(|w| *w *= inv);
            self.bias[o] = ((self.bias[o] - mean[o]) as f64 * inv as f64 + beta[o] as f64) as f32;
        }
    }

    pub fn forward(&self, x: &Image) -> Image {
        assert_eq!(x.channels, self.in_channels, "channel count");
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let out_h = (x.height + 2 * p - k) / s + 1;
        let out_w = (x.width + 2 * p - k) / s + 1;
        let spatial = out_h * out_w;
        let rows = self.in_channels * k * k;
        let col_storage;
        let col: &[f32] = if k == 1 && s == 1 && p == 0 {
            &x.data
        } else {
            let mut col = vec![0f32; rows * spatial];
            for c in 0..self.in_channels {
                let plane = &x.data[c * x.height * x.width..(c + 1) * x.height * x.width];
                for ky in 0..k {
                    for kx in 0..k {
                        let dst = &mut col[((c * k + ky) * k + kx) * spatial..][..spatial];
                        for oy in 0..out_h {
                            let iy = (oy * s + ky) as isize - p as isize;
                            let line = &mut dst[oy * out_w..(oy + 1) * out_w];
                            if iy < 0 || iy >= x.height as isize {
                                continue; // stays zero: padding
                            }
                            let src = &plane[iy as usize * x.width..(iy as usize + 1) * x.width];
                            for (ox, v) in line.iter_mut().enumerate() {
                                let ix = (ox * s + kx) as isize - p as isize;
                                if ix >= 0 && (ix as usize) < x.width {
                                    *v = src[ix as usize];
                                }
                            }
                        }
                    }
                }
            }
            col_storage = col;
            &col_storage
        };
        let mut out = vec![0f32; self.out_channels * spatial];
        gemm(
            &mut out,
            MatRef::row_major(&self.weight, self.out_channels, rows),
            MatRef::row_major(col, rows, spatial),
            1.0,
            false,
            false,
        );
        for (plane, b) in out.chunks_exact_mut(spatial).zip(&self.bias) {
            plane.iter_mut().for_each(|v| *v += b);
        }
        Image { channels: self.out_channels, height: out_h, width: out_w, data: out }
    }
}

pub fn relu(x: &mut Image) {
    x.data.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// Max pooling with implicit −∞ padding, as `nn.MaxPool2d`.
pub fn max_pool(x: &Image, kernel: usize, stride: usize, padding: usize) -> Image {
    let out_h = (x.height + 2 * padding - kernel) / stride + 1;
    let out_w = (x.width + 2 * padding - kernel) / stride + 1;
    let mut data = vec![f32::NEG_INFINITY; x.channels * out_h * out_w];
    for c in 0..x.channels {
        let plane = &x.data[c * x.height * x.width..(c + 1) * x.height * x.width];
        for oy in 0..out_h {
            for ox in 0..out_w {
                let mut m = f32::NEG_INFINITY;
                for ky in 0..kernel {
                    let iy = (oy * stride + ky) as isize - padding as isize;
                    if iy < 0 || iy >= x.height as isize {
                        continue;
                    }
                    for kx in 0..kernel {
                        let ix = (ox * stride + kx) as isize - padding as isize;
                        if ix >= 0 && (ix as usize) < x.width {
                            m = m.max(plane[iy as usize * x.width + ix as usize]);
                        }
                    }
                }
                data[(c * out_h + oy) * out_w + ox] = m;
            }
        }
    }
    Image { channels: x.channels, height: out_h, width: out_w, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct (loop) convolution as the reference for im2col.
    fn direct(conv: &Conv2d, x: &Image) -> Image {
        let (k, s, p) = (conv.kernel, conv.stride, conv.padding);
        let out_h = (x.height + 2 * p - k) / s + 1;
        let out_w = (x.width + 2 * p - k) / s + 1;
        let mut data = vec![0f32; conv.out_channels * out_h * out_w];
        for o in 0..conv.out_channels {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let mut acc = conv.bias[o] as f64;
                    for c in 0..conv.in_channels {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) =
                                    ((oy * s + ky) as isize - p as isize, (ox * s + kx) as isize - p as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < x.height && (ix as usize) < x.width {
                                    let w = conv.weight[((o * conv.in_channels + c) * k + ky) * k + kx] as f64;
                                    acc += w * x.data[(c * x.height + iy as usize) * x.width + ix as usize] as f64;
                                }
                            }
                        }
                    }
                    data[(o * out_h + oy) * out_w + ox] = acc as f32;
                }
            }
        }
        Image { channels: conv.out_channels, height: out_h, width: out_w, data }
    }

    #[test]
    fn im2col_matches_direct_convolution() {
        let x =
            Image { channels: 3, height: 9, width: 7, data: (0..189).map(|i| ((i * 37) % 11) as f32 - 5.0).collect() };
        for (kernel, stride, padding) in [(3, 1, 1), (3, 2, 1), (7, 2, 3), (1, 2, 0), (1, 1, 0)] {
            let n = 4 * 3 * kernel * kernel;
            let conv = Conv2d {
                weight: (0..n).map(|i| ((i * 13) % 7) as f32 * 0.1 - 0.3).collect(),
                bias: vec![0.5, -0.5, 0.0, 1.0],
                in_channels: 3,
                out_channels: 4,
                kernel,
                stride,
                padding,
            };
            let (a, b) = (conv.forward(&x), direct(&conv, &x));
            assert_eq!((a.height, a.width), (b.height, b.width));
            for (u, v) in a.data.iter().zip(&b.data) {
                assert!((u - v).abs() < 1e-4, "k{kernel} s{stride} p{padding}: {u} vs {v}");
            }
        }
    }

    #[test]
    fn max_pool_pads_with_negative_infinity() {
        let x = Image { channels: 1, height: 2, width: 2, data: vec![-4.0, -3.0, -2.0, -1.0] };
        let y = max_pool(&x, 3, 2, 1);
        assert_eq!((y.height, y.width), (1, 1));
        assert_eq!(y.data, vec![-1.0]);
    }
}
