use rand::{Rng, RngCore};

use super::linear::{dropout_half_in_place, relu_in_place, Linear};
use crate::tensor::{Tensor, TensorMap};
use crate::Error;

/// The residual block of `FCNet`: `x + relu(w2 · dropout(relu(w1 · x)))`.
#[derive(Clone, Debug)]
pub struct ResLayer {
    pub w1: Linear,
    pub w2: Linear,
}

/// The official `FCNet` (Mac Aodha et al.): Linear(in, h) + ReLU, four residual blocks, then a
/// bias-free `class_emb` Linear(h, out). It ignores `num_hidden_layers`.
/// Keys: `feats.0.*`, `feats.{2..5}.w1.*`, `feats.{2..5}.w2.*`, `class_emb.weight`.
#[derive(Clone, Debug)]
pub struct FcNet {
    pub input: Linear,
    pub blocks: Vec<ResLayer>,
    pub class_emb: Linear,
}

const RES_BLOCKS: usize = 4;

impl FcNet {
    pub fn load(t: &mut TensorMap, dim_in: usize, dim_hidden: usize, dim_out: usize) -> Result<Self, Error> {
        let input = Linear::load(t, "feats.0.", dim_in, dim_hidden, true)?;
        let blocks = (0..RES_BLOCKS)
            .map(|i| {
                Ok(ResLayer {
                    w1: Linear::load(t, &format!("feats.{}.w1.", i + 2), dim_hidden, dim_hidden, true)?,
                    w2: Linear::load(t, &format!("feats.{}.w2.", i + 2), dim_hidden, dim_hidden, true)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        let class_emb = Linear::load(t, "class_emb.", dim_hidden, dim_out, false)?;
        Ok(Self { input, blocks, class_emb })
    }

    pub fn init<R: Rng>(rng: &mut R, dim_in: usize, dim_hidden: usize, dim_out: usize) -> Self {
        let input = Linear::torch_default(rng, dim_in, dim_hidden, true);
        let blocks = (0..RES_BLOCKS)
            .map(|_| ResLayer {
                w1: Linear::torch_default(rng, dim_hidden, dim_hidden, true),
                w2: Linear::torch_default(rng, dim_hidden, dim_hidden, true),
            })
            .collect();
        let class_emb = Linear::torch_default(rng, dim_hidden, dim_out, false);
        Self { input, blocks, class_emb }
    }

    pub fn forward(&self, x: &[f64], n: usize, mut dropout: Option<&mut dyn RngCore>) -> Vec<f64> {
        let mut h = self.input.forward(x, n);
        relu_in_place(&mut h);
        for block in &self.blocks {
            let mut y = block.w1.forward(&h, n);
            relu_in_place(&mut y);
            if let Some(rng) = dropout.as_deref_mut() {
                dropout_half_in_place(&mut y, rng);
            }
            let mut y = block.w2.forward(&y, n);
            relu_in_place(&mut y);
            for (hv, yv) in h.iter_mut().zip(&y) {
                *hv += yv;
            }
        }
        self.class_emb.forward(&h, n)
    }

    pub fn state_dict(&self, out: &mut Vec<(String, Tensor)>) {
        self.input.state_dict("feats.0.", out);
        for (i, block) in self.blocks.iter().enumerate() {
            block.w1.state_dict(&format!("feats.{}.w1.", i + 2), out);
            block.w2.state_dict(&format!("feats.{}.w2.", i + 2), out);
        }
        self.class_emb.state_dict("class_emb.", out);
    }
}
