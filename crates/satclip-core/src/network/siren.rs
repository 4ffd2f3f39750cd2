use rand::{Rng, RngCore};

use super::linear::{dropout_half_in_place, Linear};
use crate::tensor::{Tensor, TensorMap};
use crate::Error;

/// One SIREN layer: `sin(w0 · dropout(x Wᵀ + b))`. Dropout (training only) acts before the sine.
#[derive(Clone, Debug)]
pub struct SirenLayer {
    pub linear: Linear,
    pub w0: f64,
    pub dropout: bool,
}

/// `SirenNet` of the official code: `num_layers` sine layers (the first with w0 = 30, the others
/// with w0 = 1, all with dropout p = 0.5 in training) and a linear `last_layer`.
/// Keys: `layers.{i}.weight`, `layers.{i}.bias`, `last_layer.weight`, `last_layer.bias`.
#[derive(Clone, Debug)]
pub struct Siren {
    pub layers: Vec<SirenLayer>,
    pub last_layer: Linear,
}

pub const W0_INITIAL: f64 = 30.0;
pub const W0: f64 = 1.0;

impl Siren {
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

    pub fn forward(&self, x: &[f64], n: usize, mut dropout: Option<&mut dyn RngCore>) -> Vec<f64> {
        let mut h = None;
        for layer in &self.layers {
            let mut z = layer.linear.forward(h.as_deref().unwrap_or(x), n);
            if let (true, Some(rng)) = (layer.dropout, dropout.as_deref_mut()) {
                dropout_half_in_place(&mut z, rng);
            }
            for v in &mut z {
                *v = (layer.w0 * *v).sin();
            }
            h = Some(z);
        }
        self.last_layer.forward(h.as_deref().unwrap_or(x), n)
    }

    pub fn named_parameters<'a>(&'a self, out: &mut Vec<(String, &'a Tensor)>) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.linear.named_parameters(&format!("layers.{i}."), out);
        }
        self.last_layer.named_parameters("last_layer.", out);
    }
}
