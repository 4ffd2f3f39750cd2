use rand::RngCore;
use rayon::prelude::*;

use super::linear::{dropout_mask, multiply_in_place, Linear, Parameter, Weights};
use crate::kernels::Float;
use crate::tensor::Tensor;
use crate::Error;

/// One SIREN layer: `sin(w0 · dropout(x Wᵀ + b))`. Dropout (training only) acts before the sine.
#[derive(Clone, Debug)]
pub struct SirenLayer<T = f64> {
    pub linear: Linear<T>,
    pub w0: f64,
    pub dropout: bool,
}

/// `SirenNet` of the official code: `num_layers` sine layers (the first with w0 = 30, the others
/// with w0 = 1, all with dropout p = 0.5 in training) and a linear `last_layer`.
/// Keys: `layers.{i}.weight`, `layers.{i}.bias`, `last_layer.weight`, `last_layer.bias`.
#[derive(Clone, Debug)]
pub struct Siren<T = f64> {
    pub layers: Vec<SirenLayer<T>>,
    pub last_layer: Linear<T>,
}

pub const W0_INITIAL: f64 = 30.0;
pub const W0: f64 = 1.0;

impl Siren<f64> {
    /// `num_layers` sine layers and the last layer, loaded or with the official initialisation:
    /// first layer U(±1/dim_in); the others U(±√(6/dim_in)/w0), for weights and biases alike.
    pub fn new(
        w: &mut Weights,
        dim_in: usize,
        dim_hidden: usize,
        dim_out: usize,
        num_layers: usize,
    ) -> Result<Self, Error> {
        let layers = (0..num_layers)
            .map(|i| {
                let (layer_in, w0) = if i == 0 { (dim_in, W0_INITIAL) } else { (dim_hidden, W0) };
                let bound = if i == 0 { 1.0 / layer_in as f64 } else { (6.0 / layer_in as f64).sqrt() / w0 };
                let linear = w.linear(&format!("layers.{i}."), layer_in, dim_hidden, true, bound)?;
                Ok(SirenLayer { linear, w0, dropout: true })
            })
            .collect::<Result<_, Error>>()?;
        let last_in = if num_layers == 0 { dim_in } else { dim_hidden };
        let last_layer = w.linear("last_layer.", last_in, dim_out, true, (6.0 / last_in as f64).sqrt() / W0)?;
        Ok(Self { layers, last_layer })
    }

    pub fn state_dict(&self, out: &mut Vec<(String, Tensor)>) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.linear.state_dict(&format!("layers.{i}."), out);
        }
        self.last_layer.state_dict("last_layer.", out);
    }
}

impl<T: Float> Siren<T> {
    pub fn cast<U: Float>(&self) -> Siren<U> {
        Siren {
            layers: self
                .layers
                .iter()
                .map(|l| SirenLayer { linear: l.linear.cast(), w0: l.w0, dropout: l.dropout })
                .collect(),
            last_layer: self.last_layer.cast(),
        }
    }

    pub fn in_dim(&self) -> usize {
        self.layers.first().map_or(self.last_layer.in_dim, |l| l.linear.in_dim)
    }

    /// Inference on `n` rows, reusing two scratch buffers; the result is left in `out`. Unlike
    /// [`Self::trace`] it keeps no activations: this is the encoder's hot path.
    pub fn forward_into(&self, x: &[T], n: usize, scratch: &mut Vec<T>, out: &mut Vec<T>) {
        let mut input_is_x = true;
        for layer in &self.layers {
            let src: &[T] = if input_is_x { x } else { scratch };
            layer.linear.forward_into(src, n, out, false);
            T::sin_cos_scaled(out, T::from_f64(layer.w0), None);
            std::mem::swap(scratch, out);
            input_is_x = false;
        }
        let src: &[T] = if input_is_x { x } else { scratch };
        self.last_layer.forward_into(src, n, out, false);
    }

    /// Training forward on `n` rows, keeping what [`Self::backward`] needs; with `dropout`,
    /// units are dropped (p = 0.5) before each sine.
    pub fn trace(&self, x: &[T], n: usize, mut dropout: Option<&mut dyn RngCore>) -> SirenTrace<T> {
        let mut layers: Vec<SirenActivations<T>> = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let input = layers.last().map_or(x, |l| l.output.as_slice());
            let mut z = layer.linear.forward(input, n, true);
            let mask = match (layer.dropout, dropout.as_deref_mut()) {
                (true, Some(rng)) => {
                    let mask: Vec<T> = dropout_mask(z.len(), rng);
                    multiply_in_place(&mut z, &mask);
                    Some(mask)
                }
                _ => None,
            };
            let w0 = T::from_f64(layer.w0);
            let mut slope = vec![T::ZERO; z.len()];
            z.par_chunks_mut(1 << 14)
                .zip(slope.par_chunks_mut(1 << 14))
                .for_each(|(zc, cc)| T::sin_cos_scaled(zc, w0, Some(cc)));
            slope.iter_mut().for_each(|c| *c *= w0);
            layers.push(SirenActivations { output: z, slope, mask });
        }
        let input = layers.last().map_or(x, |l| l.output.as_slice());
        let output = self.last_layer.forward(input, n, true);
        SirenTrace { layers, output }
    }

    /// Gradients of every parameter given d(output), in the order of [`Self::parameters_mut`].
    pub fn backward(&self, trace: &SirenTrace<T>, x: &[T], d_output: &[T], n: usize) -> Vec<Vec<T>> {
        let last_input = trace.layers.last().map_or(x, |l| l.output.as_slice());
        let d_last = self.last_layer.backward_parameters(last_input, d_output, n);
        let mut per_layer = Vec::with_capacity(self.layers.len());
        let mut d_act = if self.layers.is_empty() { Vec::new() } else { self.last_layer.backward_input(d_output, n) };
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let SirenActivations { slope, mask, .. } = &trace.layers[i];
            // d z = d act · w0 cos(w0 z) (· dropout multiplier)
            let mut dz = d_act;
            multiply_in_place(&mut dz, slope);
            if let Some(mask) = mask {
                multiply_in_place(&mut dz, mask);
            }
            let input = if i == 0 { x } else { trace.layers[i - 1].output.as_slice() };
            per_layer.push(layer.linear.backward_parameters(input, &dz, n));
            d_act = if i > 0 { layer.linear.backward_input(&dz, n) } else { Vec::new() };
        }
        let mut grads = Vec::new();
        for (layer, g) in self.layers.iter().zip(per_layer.into_iter().rev()) {
            layer.linear.push_gradients(g, &mut grads);
        }
        self.last_layer.push_gradients(d_last, &mut grads);
        grads
    }

    pub fn parameters_mut<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, T>>) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.linear.parameters_mut(&format!("{prefix}layers.{i}."), out);
        }
        self.last_layer.parameters_mut(&format!("{prefix}last_layer."), out);
    }
}

/// Activations of one sine layer: its output sin(w0·z) (the next layer's input), the slope
/// w0·cos(w0·z), and the dropout multipliers (0 or 2) when dropout was on.
#[derive(Debug)]
struct SirenActivations<T> {
    output: Vec<T>,
    slope: Vec<T>,
    mask: Option<Vec<T>>,
}

#[derive(Debug)]
pub struct SirenTrace<T> {
    layers: Vec<SirenActivations<T>>,
    pub output: Vec<T>,
}
