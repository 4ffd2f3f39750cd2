//! timm `resnet18` / `resnet50` with 13 input channels, in eval mode (batch norm on the
//! checkpoint's running statistics, folded into the convolutions). Keys as in the checkpoint,
//! relative to `model.visual.`: `conv1`, `bn1`, `layer{1..4}.{i}.{conv,bn}{1,2,3}`,
//! `layer{2..4}.0.downsample.{0,1}`, `fc`.

use satclip_core::network::Linear;
use satclip_core::TensorMap;

use crate::conv::{max_pool, relu, Conv2d};
use crate::image::Image;
use crate::{take_f32, Error};

const BN_EPS: f64 = 1e-5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResNetDepth {
    R18,
    R50,
}

impl ResNetDepth {
    fn blocks(self) -> [usize; 4] {
        match self {
            Self::R18 => [2, 2, 2, 2],
            Self::R50 => [3, 4, 6, 3],
        }
    }

    fn expansion(self) -> usize {
        match self {
            Self::R18 => 1,
            Self::R50 => 4,
        }
    }
}

#[derive(Clone, Debug)]
struct Block {
    convs: Vec<Conv2d>,
    downsample: Option<Conv2d>,
}

#[derive(Clone, Debug)]
pub struct ResNet {
    pub depth: ResNetDepth,
    stem: Conv2d,
    blocks: Vec<Block>,
    pub fc: Linear<f32>,
}

/// Loads `{prefix}` conv weights and folds `{bn}` into them.
fn conv_bn(
    t: &mut TensorMap,
    conv: &str,
    bn: &str,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
) -> Result<Conv2d, Error> {
    let mut c = Conv2d {
        weight: take_f32(t, &format!("{conv}.weight"), &[cout, cin, kernel, kernel])?,
        bias: vec![0.0; cout],
        in_channels: cin,
        out_channels: cout,
        kernel,
        stride,
        padding: kernel / 2,
    };
    let gamma = take_f32(t, &format!("{bn}.weight"), &[cout])?;
    let beta = take_f32(t, &format!("{bn}.bias"), &[cout])?;
    let mean = take_f32(t, &format!("{bn}.running_mean"), &[cout])?;
    let var = take_f32(t, &format!("{bn}.running_var"), &[cout])?;
    c.fold_batch_norm(&gamma, &beta, &mean, &var, BN_EPS);
    Ok(c)
}

impl ResNet {
    pub fn load(t: &mut TensorMap, depth: ResNetDepth, in_channels: usize) -> Result<Self, Error> {
        let stem = conv_bn(t, "conv1", "bn1", in_channels, 64, 7, 2)?;
        let mut blocks = Vec::new();
        let mut cin = 64;
        for (stage, &count) in depth.blocks().iter().enumerate() {
            let width = 64 << stage;
            let cout = width * depth.expansion();
            for i in 0..count {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let p = format!("layer{}.{i}", stage + 1);
                let convs = match depth {
                    ResNetDepth::R18 => vec![
                        conv_bn(t, &format!("{p}.conv1"), &format!("{p}.bn1"), cin, width, 3, stride)?,
                        conv_bn(t, &format!("{p}.conv2"), &format!("{p}.bn2"), width, width, 3, 1)?,
                    ],
                    // timm puts the stride on the 3×3 convolution.
                    ResNetDepth::R50 => vec![
                        conv_bn(t, &format!("{p}.conv1"), &format!("{p}.bn1"), cin, width, 1, 1)?,
                        conv_bn(t, &format!("{p}.conv2"), &format!("{p}.bn2"), width, width, 3, stride)?,
                        conv_bn(t, &format!("{p}.conv3"), &format!("{p}.bn3"), width, cout, 1, 1)?,
                    ],
                };
                let downsample = if i == 0 && (stride != 1 || cin != cout) {
                    Some(conv_bn(t, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), cin, cout, 1, stride)?)
                } else {
                    None
                };
                blocks.push(Block { convs, downsample });
                cin = cout;
            }
        }
        let fc_out = t
            .shape("fc.weight")
            .and_then(|s| s.first().copied())
            .ok_or_else(|| Error::Weights("missing tensor `fc.weight`".into()))?;
        crate::check_head_width(fc_out)?;
        let fc = Linear {
            weight: take_f32(t, "fc.weight", &[fc_out, cin])?,
            bias: Some(take_f32(t, "fc.bias", &[fc_out])?),
            in_dim: cin,
            out_dim: fc_out,
            weight_t: None,
        };
        Ok(Self { depth, stem, blocks, fc })
    }

    /// Globally average-pooled features before `fc` (512 for ResNet18, 2048 for ResNet50).
    pub fn pooled(&self, image: &Image) -> Vec<f32> {
        let mut x = self.stem.forward(image);
        relu(&mut x);
        let mut x = max_pool(&x, 3, 2, 1);
        for block in &self.blocks {
            let shortcut = match &block.downsample {
                Some(d) => d.forward(&x),
                None => x.clone(),
            };
            let mut y = x;
            for (i, conv) in block.convs.iter().enumerate() {
                y = conv.forward(&y);
                if i + 1 < block.convs.len() {
                    relu(&mut y);
                }
            }
            y.data.iter_mut().zip(&shortcut.data).for_each(|(a, b)| *a = (*a + b).max(0.0));
            x = y;
        }
        let spatial = x.height * x.width;
        x.data
            .chunks_exact(spatial)
            .map(|plane| plane.iter().map(|v| *v as f64).sum::<f64>() as f32 / spatial as f32)
            .collect()
    }
}
