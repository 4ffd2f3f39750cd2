//! timm `vit_small_patch16_224` with 13 input channels: 16×16 patches, a class token, 12
//! pre-norm blocks of 6-head attention and a GELU MLP, a final LayerNorm, and `head` on the class
//! token. Keys relative to `model.visual.`: `patch_embed.proj`, `cls_token`, `pos_embed`,
//! `blocks.{i}.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}`, `norm`, `head`.

use satclip_core::kernels::{gemm, Float, MatRef};
use satclip_core::network::Linear;
use satclip_core::TensorMap;

use crate::conv::Conv2d;
use crate::image::Image;
use crate::{take_f32, Error};

pub const IMAGE_SIZE: usize = 224;
const PATCH: usize = 16;
const WIDTH: usize = 384;
const DEPTH: usize = 12;
const HEADS: usize = 6;
const MLP: usize = 1536;
const LN_EPS: f32 = 1e-6;

#[derive(Clone, Debug)]
struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl LayerNorm {
    fn load(t: &mut TensorMap, prefix: &str) -> Result<Self, Error> {
        Ok(Self {
            weight: take_f32(t, &format!("{prefix}.weight"), &[WIDTH])?,
            bias: take_f32(t, &format!("{prefix}.bias"), &[WIDTH])?,
        })
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = x.to_vec();
        for row in out.chunks_exact_mut(WIDTH) {
            let mean = row.iter().map(|v| *v as f64).sum::<f64>() / WIDTH as f64;
            let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / WIDTH as f64;
            let inv = 1.0 / (var + LN_EPS as f64).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = ((*v as f64 - mean) * inv) as f32 * w + b;
            }
        }
        out
    }
}

fn linear(t: &mut TensorMap, prefix: &str, in_dim: usize, out_dim: usize) -> Result<Linear<f32>, Error> {
    let weight = take_f32(t, &format!("{prefix}.weight"), &[out_dim, in_dim])?;
    let bias = Some(take_f32(t, &format!("{prefix}.bias"), &[out_dim])?);
    Ok(Linear { weight, bias, in_dim, out_dim, weight_t: None }.for_inference())
}

#[derive(Clone, Debug)]
struct Block {
    norm1: LayerNorm,
    qkv: Linear<f32>,
    proj: Linear<f32>,
    norm2: LayerNorm,
    fc1: Linear<f32>,
    fc2: Linear<f32>,
}

#[derive(Clone, Debug)]
pub struct VisionTransformer {
    patch_embed: Conv2d,
    cls_token: Vec<f32>,
    pos_embed: Vec<f32>,
    blocks: Vec<Block>,
    norm: LayerNorm,
    pub head: Linear<f32>,
}

/// The exact (erf) GELU of `nn.GELU()`, in f32 arithmetic as PyTorch computes it.
fn gelu(x: f32) -> f32 {
    x * 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

impl VisionTransformer {
    pub fn load(t: &mut TensorMap, in_channels: usize) -> Result<Self, Error> {
        let patch_embed = Conv2d {
            weight: take_f32(t, "patch_embed.proj.weight", &[WIDTH, in_channels, PATCH, PATCH])?,
            bias: take_f32(t, "patch_embed.proj.bias", &[WIDTH])?,
            in_channels,
            out_channels: WIDTH,
            kernel: PATCH,
            stride: PATCH,
            padding: 0,
        };
        let tokens = (IMAGE_SIZE / PATCH).pow(2) + 1;
        let cls_token = take_f32(t, "cls_token", &[1, 1, WIDTH])?;
        let pos_embed = take_f32(t, "pos_embed", &[1, tokens, WIDTH])?;
        let blocks = (0..DEPTH)
            .map(|i| {
                let p = format!("blocks.{i}");
                Ok(Block {
                    norm1: LayerNorm::load(t, &format!("{p}.norm1"))?,
                    qkv: linear(t, &format!("{p}.attn.qkv"), WIDTH, 3 * WIDTH)?,
                    proj: linear(t, &format!("{p}.attn.proj"), WIDTH, WIDTH)?,
                    norm2: LayerNorm::load(t, &format!("{p}.norm2"))?,
                    fc1: linear(t, &format!("{p}.mlp.fc1"), WIDTH, MLP)?,
                    fc2: linear(t, &format!("{p}.mlp.fc2"), MLP, WIDTH)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        let norm = LayerNorm::load(t, "norm")?;
        let head_out = t
            .shape("head.weight")
            .and_then(|s| s.first().copied())
            .ok_or_else(|| Error::Weights("missing tensor `head.weight`".into()))?;
        crate::check_head_width(head_out)?;
        let head = linear(t, "head", WIDTH, head_out)?;
        Ok(Self { patch_embed, cls_token, pos_embed, blocks, norm, head })
    }

    /// The normalised class token, the input of `head` (384 values). Needs a 224×224 image.
    pub fn pooled(&self, image: &Image) -> Vec<f32> {
        assert_eq!((image.height, image.width), (IMAGE_SIZE, IMAGE_SIZE), "ViT-S/16 takes 224×224 input");
        let patches = self.patch_embed.forward(image); // [WIDTH, 14, 14]
        let n_patches = patches.height * patches.width;
        let n = n_patches + 1;
        let mut x = vec![0f32; n * WIDTH];
        x[..WIDTH].copy_from_slice(&self.cls_token);
        for p in 0..n_patches {
            for c in 0..WIDTH {
                x[(p + 1) * WIDTH + c] = patches.data[c * n_patches + p];
            }
        }
        x.iter_mut().zip(&self.pos_embed).for_each(|(v, p)| *v += p);
        for block in &self.blocks {
            let attended = attention(&block.qkv, &block.proj, &block.norm1.forward(&x), n);
            x.iter_mut().zip(&attended).for_each(|(v, a)| *v += a);
            let mut hidden = block.fc1.forward(&block.norm2.forward(&x), n, false);
            hidden.iter_mut().for_each(|v| *v = gelu(*v));
            let out = block.fc2.forward(&hidden, n, false);
            x.iter_mut().zip(&out).for_each(|(v, o)| *v += o);
        }
        self.norm.forward(&x[..WIDTH])
    }
}

/// Multi-head self-attention: softmax(q kᵀ / √64) v per head, then the output projection. The
/// two products per head are GEMMs on strided views of the fused qkv matrix.
fn attention(qkv: &Linear<f32>, proj: &Linear<f32>, x: &[f32], n: usize) -> Vec<f32> {
    let head_dim = WIDTH / HEADS;
    let qkv_out = qkv.forward(x, n, false); // [n, 3·WIDTH]: q, k, v, each heads × head_dim
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut context = vec![0f32; n * WIDTH];
    let mut scores = vec![0f32; n * n];
    let view = |offset: usize| MatRef::strided(&qkv_out[offset..], n, head_dim, 3 * WIDTH, 1);
    for h in 0..HEADS {
        let (q, k, v) = (view(h * head_dim), view(WIDTH + h * head_dim), view(2 * WIDTH + h * head_dim));
        gemm(&mut scores, q, k.t(), scale, false, false);
        for row in scores.chunks_exact_mut(n) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
            f32::exp_shifted(row, max);
            let total: f32 = row.iter().sum();
            row.iter_mut().for_each(|p| *p /= total);
        }
        let mut head_out = vec![0f32; n * head_dim];
        gemm(&mut head_out, MatRef::row_major(&scores, n, n), v, 1.0, false, false);
        for (i, row) in head_out.chunks_exact(head_dim).enumerate() {
            context[i * WIDTH + h * head_dim..][..head_dim].copy_from_slice(row);
        }
    }
    proj.forward(&context, n, false)
}

#[cfg(test)]
mod tests {
    use super::gelu;

    #[test]
    fn gelu_matches_known_values() {
        // 0.5·x·(1 + erf(x/√2)) at a few points, from tables of erf.
        for (x, want) in [
            (0.0f32, 0.0f64),
            (1.0, 0.841_344_746),
            (-1.0, -0.158_655_254),
            (2.0, 1.954_499_736),
            (-3.0, -0.004_049_694),
        ] {
            assert!((gelu(x) as f64 - want).abs() < 2.5e-7, "gelu({x}) = {}", gelu(x));
        }
    }
}
