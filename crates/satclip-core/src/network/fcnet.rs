use rand::RngCore;

use super::linear::{
    dropout_mask, multiply_in_place, relu_backward, relu_in_place, torch_bound, Linear, Parameter, Weights,
};
use crate::kernels::Float;
use crate::tensor::Tensor;
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
    /// Loaded or with PyTorch's initialisation.
    pub fn new(w: &mut Weights, dim_in: usize, dim_hidden: usize, dim_out: usize) -> Result<Self, Error> {
        let input = w.linear("feats.0.", dim_in, dim_hidden, true, torch_bound(dim_in))?;
        let bound = torch_bound(dim_hidden);
        let blocks = (0..RES_BLOCKS)
            .map(|i| {
                Ok(ResLayer {
                    w1: w.linear(&format!("feats.{}.w1.", i + 2), dim_hidden, dim_hidden, true, bound)?,
                    w2: w.linear(&format!("feats.{}.w2.", i + 2), dim_hidden, dim_hidden, true, bound)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        let class_emb = w.linear("class_emb.", dim_hidden, dim_out, false, bound)?;
        Ok(Self { input, blocks, class_emb })
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

    /// Forward on `n` rows, keeping what [`Self::backward`] needs; with `dropout`, each block
    /// drops half its units between its two layers.
    pub fn trace(&self, x: &[T], n: usize, mut dropout: Option<&mut dyn RngCore>, parallel: bool) -> FcNetTrace<T> {
        let mut first = self.input.forward(x, n, parallel);
        relu_in_place(&mut first);
        let mut inputs = vec![first];
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for ResLayer { w1, w2 } in &self.blocks {
            let h = inputs.last().expect("h0");
            let mut y1 = w1.forward(h, n, parallel);
            relu_in_place(&mut y1);
            let mask: Option<Vec<T>> = dropout.as_deref_mut().map(|rng| dropout_mask(y1.len(), rng));
            let mut dropped = y1.clone();
            if let Some(m) = &mask {
                multiply_in_place(&mut dropped, m);
            }
            let mut y2 = w2.forward(&dropped, n, parallel);
            relu_in_place(&mut y2);
            let next: Vec<T> = h.iter().zip(&y2).map(|(a, b)| *a + *b).collect();
            blocks.push(BlockActivations { y1, mask, dropped, y2 });
            inputs.push(next);
        }
        let output = self.class_emb.forward(inputs.last().expect("h0"), n, parallel);
        FcNetTrace { inputs, blocks, output }
    }

    /// Gradients in the order of [`Self::parameters_mut`].
    pub fn backward(&self, trace: &FcNetTrace<T>, x: &[T], d_output: &[T], n: usize) -> Vec<Vec<T>> {
        let FcNetTrace { inputs, blocks, .. } = trace;
        let d_class_emb = self.class_emb.backward_parameters(inputs.last().expect("h4"), d_output, n);
        let mut dh = self.class_emb.backward_input(d_output, n);
        let mut block_grads = Vec::with_capacity(self.blocks.len());
        for (k, ResLayer { w1, w2 }) in self.blocks.iter().enumerate().rev() {
            let BlockActivations { y1, mask, dropped, y2 } = &blocks[k];
            let mut dy2 = dh.clone();
            relu_backward(&mut dy2, y2);
            let d2 = w2.backward_parameters(dropped, &dy2, n);
            let mut dz1 = w2.backward_input(&dy2, n);
            if let Some(m) = mask {
                multiply_in_place(&mut dz1, m);
            }
            relu_backward(&mut dz1, y1);
            let d1 = w1.backward_parameters(&inputs[k], &dz1, n);
            let through = w1.backward_input(&dz1, n);
            dh.iter_mut().zip(&through).for_each(|(a, b)| *a += *b);
            block_grads.push((d1, d2));
        }
        relu_backward(&mut dh, &inputs[0]);
        let mut grads = Vec::new();
        self.input.push_gradients(self.input.backward_parameters(x, &dh, n), &mut grads);
        for (ResLayer { w1, w2 }, (d1, d2)) in self.blocks.iter().zip(block_grads.into_iter().rev()) {
            w1.push_gradients(d1, &mut grads);
            w2.push_gradients(d2, &mut grads);
        }
        self.class_emb.push_gradients(d_class_emb, &mut grads);
        grads
    }

    pub fn parameters_mut<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, T>>) {
        self.input.parameters_mut(&format!("{prefix}feats.0."), out);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.w1.parameters_mut(&format!("{prefix}feats.{}.w1.", i + 2), out);
            block.w2.parameters_mut(&format!("{prefix}feats.{}.w2.", i + 2), out);
        }
        self.class_emb.parameters_mut(&format!("{prefix}class_emb."), out);
    }
}

/// One residual block's relu(h W1ᵀ + b1), dropout multipliers, dropped-out version, and
/// relu(… W2ᵀ + b2).
#[derive(Debug)]
struct BlockActivations<T> {
    y1: Vec<T>,
    mask: Option<Vec<T>>,
    dropped: Vec<T>,
    y2: Vec<T>,
}

#[derive(Debug)]
pub struct FcNetTrace<T> {
    /// Block inputs h₀ … h₄.
    inputs: Vec<Vec<T>>,
    blocks: Vec<BlockActivations<T>>,
    pub output: Vec<T>,
}
