use rand::Rng;

use crate::linalg::matmul_transposed_b;
use crate::tensor::{Tensor, TensorMap};
use crate::Error;

/// `y = x Wᵀ + b`, with PyTorch's `[out, in]` weight layout.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn in_dim(&self) -> usize {
        self.weight.shape[1]
    }

    pub fn out_dim(&self) -> usize {
        self.weight.shape[0]
    }

    /// Takes `{prefix}weight` and, if `bias`, `{prefix}bias`.
    pub fn load(t: &mut TensorMap, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self, Error> {
        let weight = t.take(&format!("{prefix}weight"), &[out_dim, in_dim])?;
        let bias = if bias { Some(t.take(&format!("{prefix}bias"), &[out_dim])?) } else { None };
        Ok(Self { weight, bias })
    }

    /// Weights and biases drawn from U(−bound, bound).
    pub fn uniform<R: Rng>(rng: &mut R, in_dim: usize, out_dim: usize, bias: bool, bound: f64) -> Self {
        let mut draw = |n: usize| -> Vec<f64> {
            (0..n).map(|_| if bound > 0.0 { rng.random_range(-bound..bound) } else { 0.0 }).collect()
        };
        let weight = Tensor { shape: vec![out_dim, in_dim], data: draw(out_dim * in_dim) };
        let bias = bias.then(|| Tensor { shape: vec![out_dim], data: draw(out_dim) });
        Self { weight, bias }
    }

    /// `torch.nn.Linear`'s default initialisation: U(±1/√fan_in) for weight and bias.
    pub fn torch_default<R: Rng>(rng: &mut R, in_dim: usize, out_dim: usize, bias: bool) -> Self {
        Self::uniform(rng, in_dim, out_dim, bias, 1.0 / (in_dim as f64).sqrt())
    }

    /// Applies the layer to `n` rows of `x` (`[n × in]`), returning `[n × out]`.
    pub fn forward(&self, x: &[f64], n: usize) -> Vec<f64> {
        let (k, o) = (self.in_dim(), self.out_dim());
        let mut out = vec![0.0; n * o];
        matmul_transposed_b(x, n, k, &self.weight.data, o, &mut out);
        if let Some(bias) = &self.bias {
            for row in out.chunks_exact_mut(o) {
                for (v, b) in row.iter_mut().zip(&bias.data) {
                    *v += b;
                }
            }
        }
        out
    }

    pub fn named_parameters<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Tensor)>) {
        out.push((format!("{prefix}weight"), &self.weight));
        if let Some(bias) = &self.bias {
            out.push((format!("{prefix}bias"), bias));
        }
    }
}

pub(crate) fn relu_in_place(x: &mut [f64]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// Inverted dropout with p = 0.5, as `F.dropout` in training: zero half, double the rest.
pub(crate) fn dropout_half_in_place<R: Rng + ?Sized>(x: &mut [f64], rng: &mut R) {
    for v in x {
        *v = if rng.random::<bool>() { *v * 2.0 } else { 0.0 };
    }
}
