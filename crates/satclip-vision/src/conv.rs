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
        let weight = MatRef::row_major(&self.weight, self.out_channels, rows);
        let mut out = vec![0f32; self.out_channels * spatial];
        if k == 1 && s == 1 && p == 0 {
            gemm(&mut out, weight, MatRef::row_major(&x.data, rows, spatial), 1.0, false, false);
            for (plane, b) in out.chunks_exact_mut(spatial).zip(&self.bias) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        } else {
            // The unfolded input of a whole 256² tile would be tens of MB (the stem's is 42 MB):
            // unfolding a band of output rows at a time keeps it in L2 and reuses one buffer per
            // thread instead of page-faulting a fresh one for every convolution.
            let band = (IM2COL_BUDGET / (rows * out_w)).clamp(1, out_h);
            SCRATCH.with_borrow_mut(|(col, product)| {
                for y0 in (0..out_h).step_by(band) {
                    let y1 = (y0 + band).min(out_h);
                    let cols = (y1 - y0) * out_w;
                    col.resize(rows * cols, 0.0);
                    self.unfold(x, y0..y1, out_w, &mut col[..rows * cols]);
                    product.resize(self.out_channels * cols, 0.0);
                    gemm(product, weight, MatRef::row_major(&col[..rows * cols], rows, cols), 1.0, false, false);
                    for ((plane, result), b) in
                        out.chunks_exact_mut(spatial).zip(product.chunks_exact(cols)).zip(&self.bias)
                    {
                        plane[y0 * out_w..y1 * out_w].iter_mut().zip(result).for_each(|(o, v)| *o = v + b);
                    }
                }
            });
        }
        Image { channels: self.out_channels, height: out_h, width: out_w, data: out }
    }

    /// im2col of output rows `ys`: row `(c, ky, kx)` of `col` holds, for each output pixel of
    /// the band, the input value its kernel tap reads (0 in the padding).
    fn unfold(&self, x: &Image, ys: std::ops::Range<usize>, out_w: usize, col: &mut [f32]) {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let cols = ys.len() * out_w;
        for c in 0..self.in_channels {
            let plane = &x.data[c * x.height * x.width..(c + 1) * x.height * x.width];
            for ky in 0..k {
                for kx in 0..k {
                    let dst = &mut col[((c * k + ky) * k + kx) * cols..][..cols];
                    for (line, oy) in dst.chunks_exact_mut(out_w).zip(ys.clone()) {
                        let iy = (oy * s + ky) as isize - p as isize;
                        if iy < 0 || iy >= x.height as isize {
                            line.fill(0.0);
                            continue;
                        }
                        let src = &plane[iy as usize * x.width..(iy as usize + 1) * x.width];
                        for (ox, v) in line.iter_mut().enumerate() {
                            let ix = (ox * s + kx) as isize - p as isize;
                            *v = if ix >= 0 && (ix as usize) < x.width { src[ix as usize] } else { 0.0 };
                        }
                    }
                }
            }
        }
    }
}

/// Floats of unfolded input per band (1 MiB, the L2 of the machines we measure on).
const IM2COL_BUDGET: usize = 1 << 18;

thread_local! {
    /// Per thread: the unfolded band and its product with the weights.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
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

    /// Large enough that the input is unfolded in several bands of output rows, the last one
    /// shorter than the others.
    #[test]
    fn banded_im2col_matches_direct_convolution() {
        let (channels, side, kernel) = (16, 64, 7);
        let x = Image {
            channels,
            height: side,
            width: side - 3,
            data: (0..channels * side * (side - 3)).map(|i| ((i * 37) % 11) as f32 - 5.0).collect(),
        };
        let rows = channels * kernel * kernel;
        assert!(IM2COL_BUDGET / (rows * x.width) < side, "the test needs more than one band");
        assert!(side % (IM2COL_BUDGET / (rows * x.width)) != 0, "and a short last band");
        let conv = Conv2d {
            weight: (0..2 * rows).map(|i| ((i * 13) % 7) as f32 * 0.01 - 0.03).collect(),
            bias: vec![0.25, -0.75],
            in_channels: channels,
            out_channels: 2,
            kernel,
            stride: 1,
            padding: 3,
        };
        let (a, b) = (conv.forward(&x), direct(&conv, &x));
        assert_eq!((a.height, a.width), (b.height, b.width));
        let worst = a.data.iter().zip(&b.data).map(|(u, v)| (u - v).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "{worst}");
    }

    #[test]
    fn max_pool_pads_with_negative_infinity() {
        let x = Image { channels: 1, height: 2, width: 2, data: vec![-4.0, -3.0, -2.0, -1.0] };
        let y = max_pool(&x, 3, 2, 1);
        assert_eq!((y.height, y.width), (1, 1));
        assert_eq!(y.data, vec![-1.0]);
    }
}
