use rand::{Rng, RngCore};

use super::linear::{dropout_half_in_place, Linear};
use crate::kernels::Float;
use crate::tensor::{Tensor, TensorMap};
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
    pub fn load(
        t: &mut TensorMap,
        dim_in: usize,
        dim_hidden: usize,
        dim_out: usize,
        num_layers: usize,
    ) -> Result<Self, Error> {
        let layers = (0..num_layers)
            .map(|i| {
                let layer_in = if i == 0 { dim_in } else { dim_hidden };
                Ok(SirenLayer {
                    linear: Linear::load(t, &format!("layers.{i}."), layer_in, dim_hidden, true)?,
                    w0: if i == 0 { W0_INITIAL } else { W0 },
                    dropout: true,
                })
            })
            .collect::<Result<_, Error>>()?;
        let last_in = if num_layers == 0 { dim_in } else { dim_hidden };
        let last_layer = Linear::load(t, "last_layer.", last_in, dim_out, true)?;
        Ok(Self { layers, last_layer })
    }

    /// The official initialisation: first layer U(±1/dim_in); the others U(±√(6/dim_in)/w0),
    /// for weights and biases alike.
    pub fn init<R: Rng>(rng: &mut R, dim_in: usize, dim_hidden: usize, dim_out: usize, num_layers: usize) -> Self {
        let layers = (0..num_layers)
            .map(|i| {
                let (layer_in, w0) = if i == 0 { (dim_in, W0_INITIAL) } else { (dim_hidden, W0) };
                let bound = if i == 0 { 1.0 / layer_in as f64 } else { (6.0 / layer_in as f64).sqrt() / w0 };
                SirenLayer { linear: Linear::uniform(rng, layer_in, dim_hidden, true, bound), w0, dropout: true }
            })
            .collect();
        let last_in = if num_layers == 0 { dim_in } else { dim_hidden };
        let last_layer = Linear::uniform(rng, last_in, dim_out, true, (6.0 / last_in as f64).sqrt() / W0);
        Self { layers, last_layer }
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

    /// Forward pass; with `dropout`, in training mode.
    pub fn forward(&self, x: &[T], n: usize, dropout: Option<&mut dyn RngCore>) -> Vec<T> {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        self.forward_into(x, n, dropout, &mut scratch, &mut out);
        out
    }

    /// Forward pass on `n` rows reusing two scratch buffers; the result is left in `out`.
    pub fn forward_into(
        &self,
        x: &[T],
        n: usize,
        mut dropout: Option<&mut dyn RngCore>,
        scratch: &mut Vec<T>,
        out: &mut Vec<T>,
    ) {
        let mut input_is_x = true;
        for layer in &self.layers {
            let src: &[T] = if input_is_x { x } else { scratch };
            layer.linear.forward_into(src, n, out);
            if let (true, Some(rng)) = (layer.dropout, dropout.as_deref_mut()) {
                dropout_half_in_place(out, rng);
            }
            T::sin_cos_scaled(out, T::from_f64(layer.w0), None);
            std::mem::swap(scratch, out);
            input_is_x = false;
        }
        let src: &[T] = if input_is_x { x } else { scratch };
        self.last_layer.forward_into(src, n, out);
    }
}
