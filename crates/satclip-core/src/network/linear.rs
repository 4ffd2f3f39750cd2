use rand::Rng;

use crate::kernels::{add_bias, gemm, Float, MatRef};
use crate::tensor::{Tensor, TensorMap};
use crate::Error;

/// `y = x Wᵀ + b`, with PyTorch's `[out, in]` weight layout. `T` is the compute precision: the
/// weights are loaded in f64 and can be cast for the f32 engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear<T = f64> {
    pub weight: Vec<T>,
    pub bias: Option<Vec<T>>,
    pub in_dim: usize,
    pub out_dim: usize,
}

impl Linear<f64> {
    /// Takes `{prefix}weight` and, if `bias`, `{prefix}bias`.
    pub fn load(t: &mut TensorMap, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self, Error> {
        let weight = t.take(&format!("{prefix}weight"), &[out_dim, in_dim])?.data;
        let bias = if bias { Some(t.take(&format!("{prefix}bias"), &[out_dim])?.data) } else { None };
        Ok(Self { weight, bias, in_dim, out_dim })
    }

    /// Weights and biases drawn from U(−bound, bound).
    pub fn uniform<R: Rng>(rng: &mut R, in_dim: usize, out_dim: usize, bias: bool, bound: f64) -> Self {
        let mut draw = |n: usize| -> Vec<f64> {
            (0..n).map(|_| if bound > 0.0 { rng.random_range(-bound..bound) } else { 0.0 }).collect()
        };
        let weight = draw(out_dim * in_dim);
        let bias = bias.then(|| draw(out_dim));
        Self { weight, bias, in_dim, out_dim }
    }

    /// `torch.nn.Linear`'s default initialisation: U(±1/√fan_in) for weight and bias.
    pub fn torch_default<R: Rng>(rng: &mut R, in_dim: usize, out_dim: usize, bias: bool) -> Self {
        Self::uniform(rng, in_dim, out_dim, bias, 1.0 / (in_dim as f64).sqrt())
    }

    /// The parameters as tensors under their official names.
    pub fn state_dict(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        out.push((
            format!("{prefix}weight"),
            Tensor { shape: vec![self.out_dim, self.in_dim], data: self.weight.clone() },
        ));
        if let Some(bias) = &self.bias {
            out.push((format!("{prefix}bias"), Tensor { shape: vec![self.out_dim], data: bias.clone() }));
        }
    }
}

impl<T: Float> Linear<T> {
    pub fn cast<U: Float>(&self) -> Linear<U> {
        let cast = |v: &[T]| v.iter().map(|x| U::from_f64(x.to_f64())).collect();
        Linear {
            weight: cast(&self.weight),
            bias: self.bias.as_deref().map(cast),
            in_dim: self.in_dim,
            out_dim: self.out_dim,
        }
    }

    /// `out = x Wᵀ + b` for `n` rows of `x` (`[n × in]`); `out` is resized to `[n × out]`.
    pub fn forward_into(&self, x: &[T], n: usize, out: &mut Vec<T>) {
        out.resize(n * self.out_dim, T::ZERO);
        let w = MatRef::row_major(&self.weight, self.out_dim, self.in_dim).t();
        gemm(out, MatRef::row_major(x, n, self.in_dim), w, T::ONE, false, false);
        if let Some(bias) = &self.bias {
            add_bias(out, bias);
        }
    }

    pub fn forward(&self, x: &[T], n: usize) -> Vec<T> {
        let mut out = Vec::new();
        self.forward_into(x, n, &mut out);
        out
    }
}

pub(crate) fn relu_in_place<T: Float>(x: &mut [T]) {
    for v in x {
        *v = v.max(T::ZERO);
    }
}

/// Inverted dropout with p = 0.5, as `F.dropout` in training: zero half, double the rest.
pub(crate) fn dropout_half_in_place<T: Float, R: Rng + ?Sized>(x: &mut [T], rng: &mut R) {
    for v in x {
        *v = if rng.random::<bool>() { *v + *v } else { T::ZERO };
    }
}
