use rand::{Rng, RngCore};

use crate::kernels::{add_bias, add_column_sums, gemm, Float, MatRef};
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
    /// For inference, the weight also as `[in × out]` row-major ([`Linear::for_inference`]): the
    /// GEMM reads its right-hand matrix fastest row by row (gemm's AVX-512 kernels at half speed
    /// otherwise). Made at the first forward pass, so that an encoder holding the network in two
    /// precisions pays the copy only for the one it runs (5.6 MB for the built-in model in
    /// f64). Dropped whenever the weight may change ([`Linear::parameters_mut`]).
    pub weight_t: Option<std::sync::OnceLock<Vec<T>>>,
}

/// Where a network's layers come from: a checkpoint, under their official names, or the official
/// random initialisation. Each network describes its layers once, for both.
pub enum Weights<'a> {
    Load(&'a mut TensorMap),
    Init(&'a mut dyn RngCore),
}

impl Weights<'_> {
    /// The layer `{prefix}weight` (and `{prefix}bias`) of `in_dim → out_dim`; initialised from
    /// U(±`bound`).
    pub fn linear(
        &mut self,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        bound: f64,
    ) -> Result<Linear, Error> {
        match self {
            Self::Load(t) => Linear::load(t, prefix, in_dim, out_dim, bias),
            Self::Init(rng) => Ok(Linear::uniform(*rng, in_dim, out_dim, bias, bound)),
        }
    }
}

/// `torch.nn.Linear`'s default initialisation bound, 1/√fan_in.
pub fn torch_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in as f64).sqrt()
}

impl Linear<f64> {
    /// Takes `{prefix}weight` and, if `bias`, `{prefix}bias`.
    pub fn load(t: &mut TensorMap, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self, Error> {
        let weight = t.take(&format!("{prefix}weight"), &[out_dim, in_dim])?.data;
        let bias = if bias { Some(t.take(&format!("{prefix}bias"), &[out_dim])?.data) } else { None };
        Ok(Self { weight, bias, in_dim, out_dim, weight_t: None })
    }

    /// Weights and biases drawn from U(−bound, bound).
    pub fn uniform<R: Rng + ?Sized>(rng: &mut R, in_dim: usize, out_dim: usize, bias: bool, bound: f64) -> Self {
        let mut draw = |n: usize| -> Vec<f64> {
            (0..n).map(|_| if bound > 0.0 { rng.random_range(-bound..bound) } else { 0.0 }).collect()
        };
        let weight = draw(out_dim * in_dim);
        let bias = bias.then(|| draw(out_dim));
        Self { weight, bias, in_dim, out_dim, weight_t: None }
    }

    /// `torch.nn.Linear`'s default initialisation: U(±1/√fan_in) for weight and bias.
    pub fn torch_default<R: Rng + ?Sized>(rng: &mut R, in_dim: usize, out_dim: usize, bias: bool) -> Self {
        Self::uniform(rng, in_dim, out_dim, bias, torch_bound(in_dim))
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
            weight_t: None,
        }
    }

    /// This layer, keeping an inference copy of its weight once it runs (see
    /// [`Linear::weight_t`]).
    pub fn for_inference(mut self) -> Self {
        self.weight_t = Some(std::sync::OnceLock::new());
        self
    }

    fn transposed_weight(&self) -> Vec<T> {
        let mut t = vec![T::ZERO; self.weight.len()];
        for (o, row) in self.weight.chunks_exact(self.in_dim.max(1)).enumerate() {
            row.iter().enumerate().for_each(|(i, w)| t[i * self.out_dim + o] = *w);
        }
        t
    }

    /// `out = x Wᵀ + b` for `n` rows of `x` (`[n × in]`); `out` is resized to `[n × out]`. With
    /// `parallel` the product uses the rayon pool (training, probes); the encoders run it on one
    /// thread because they already parallelise over tiles of rows.
    pub fn forward_into(&self, x: &[T], n: usize, out: &mut Vec<T>, parallel: bool) {
        out.resize(n * self.out_dim, T::ZERO);
        let w = match &self.weight_t {
            Some(t) => MatRef::row_major(t.get_or_init(|| self.transposed_weight()), self.in_dim, self.out_dim),
            None => MatRef::row_major(&self.weight, self.out_dim, self.in_dim).t(),
        };
        gemm(out, MatRef::row_major(x, n, self.in_dim), w, T::ONE, false, parallel);
        if let Some(bias) = &self.bias {
            add_bias(out, bias);
        }
    }

    pub fn forward(&self, x: &[T], n: usize, parallel: bool) -> Vec<T> {
        let mut out = Vec::new();
        self.forward_into(x, n, &mut out, parallel);
        out
    }

    /// For `y = x Wᵀ + b`: dW = dYᵀ X and db = Σ dY (db empty without a bias).
    pub fn backward_parameters(&self, x: &[T], dy: &[T], n: usize) -> (Vec<T>, Vec<T>) {
        let mut dw = vec![T::ZERO; self.out_dim * self.in_dim];
        let dy_t = MatRef::row_major(dy, n, self.out_dim).t();
        gemm(&mut dw, dy_t, MatRef::row_major(x, n, self.in_dim), T::ONE, false, true);
        let mut db = vec![T::ZERO; if self.bias.is_some() { self.out_dim } else { 0 }];
        if self.bias.is_some() {
            add_column_sums(dy, self.out_dim, &mut db);
        }
        (dw, db)
    }

    /// For `y = x Wᵀ + b`: dX = dY W.
    pub fn backward_input(&self, dy: &[T], n: usize) -> Vec<T> {
        let mut dx = vec![T::ZERO; n * self.in_dim];
        let w = MatRef::row_major(&self.weight, self.out_dim, self.in_dim);
        gemm(&mut dx, MatRef::row_major(dy, n, self.out_dim), w, T::ONE, false, true);
        dx
    }

    /// The weight (decayed) and the bias (not), named `{prefix}weight` and `{prefix}bias`.
    pub fn parameters_mut<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, T>>) {
        self.weight_t = None;
        out.push(Parameter { name: format!("{prefix}weight"), values: &mut self.weight, decay: true });
        if let Some(b) = &mut self.bias {
            out.push(Parameter { name: format!("{prefix}bias"), values: b, decay: false });
        }
    }

    /// Gradients in the order of [`Self::parameters_mut`].
    pub fn push_gradients(&self, (dw, db): (Vec<T>, Vec<T>), out: &mut Vec<Vec<T>>) {
        out.push(dw);
        if self.bias.is_some() {
            out.push(db);
        }
    }
}

/// One trainable tensor: its values, and whether weight decay applies (weight matrices only).
pub struct Parameter<'a, T> {
    pub name: String,
    pub values: &'a mut [T],
    pub decay: bool,
}

pub fn relu_in_place<T: Float>(x: &mut [T]) {
    for v in x {
        *v = v.max(T::ZERO);
    }
}

/// Zeroes the gradient where the ReLU's output was zero.
pub fn relu_backward<T: Float>(d: &mut [T], output: &[T]) {
    for (g, y) in d.iter_mut().zip(output) {
        if *y <= T::ZERO {
            *g = T::ZERO;
        }
    }
}

/// Multipliers of inverted dropout with p = 0.5, as `F.dropout` in training: 0 or 2.
pub(crate) fn dropout_mask<T: Float>(len: usize, rng: &mut dyn RngCore) -> Vec<T> {
    let two = T::from_f64(2.0);
    (0..len).map(|_| if rng.random::<bool>() { two } else { T::ZERO }).collect()
}

pub(crate) fn multiply_in_place<T: Float>(x: &mut [T], by: &[T]) {
    x.iter_mut().zip(by).for_each(|(a, b)| *a *= *b);
}
