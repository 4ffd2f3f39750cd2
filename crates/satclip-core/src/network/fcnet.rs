use rand::{Rng, RngCore};

use super::linear::{dropout_half_in_place, relu_in_place, Linear};
use crate::kernels::Float;
use crate::tensor::{Tensor, TensorMap};
use crate::Error;

/// The residual block of `FCNet`: `x + relu(w2 · dropout(relu(w1 · x)))`.
#[derive(Clone, Debug)]
pub struct ResLayer<T = f64> {
    pub w1: Linear<T>,
    pub w2: Linear<T>,
}

/// The official `FCNet` (Mac Aodha et al.): Linear(in, h) + ReLU, four residual blocks, then a
/// bias-free `class_emb` Linear(h, out). It ignores `num_hidden_layers`.
/// Keys: `feats.0.*`, `feats.{2..5}.w1.*`, `feats.{2..5}.w2.*`, `class_emb.weight`.
#[derive(Clone, Debug)]
pub struct FcNet<T = f64> {
    pub input: Linear<T>,
    pub blocks: Vec<ResLayer<T>>,
    pub class_emb: Linear<T>,
}

pub const RES_BLOCKS: usize = 4;

impl FcNet<f64> {
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

    pub fn state_dict(&self, out: &mut Vec<(String, Tensor)>) {
        self.input.state_dict("feats.0.", out);
        for (i, block) in self.blocks.iter().enumerate() {
            block.w1.state_dict(&format!("feats.{}.w1.", i + 2), out);
            block.w2.state_dict(&format!("feats.{}.w2.", i + 2), out);
        }
        self.class_emb.state_dict("class_emb.", out);
    }
}

impl<T: Float> FcNet<T> {
    pub fn cast<U: Float>(&self) -> FcNet<U> {
        FcNet {
            input: self.input.cast(),
            blocks: self.blocks.iter().map(|b| ResLayer { w1: b.w1.cast(), w2: b.w2.cast() }).collect(),
            class_emb: self.class_emb.cast(),
        }
    }

    pub fn forward(&self, x: &[T], n: usize, mut dropout: Option<&mut dyn RngCore>) -> Vec<T> {
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
                *hv += *yv;
            }
        }
        self.class_emb.forward(&h, n)
    }
}
