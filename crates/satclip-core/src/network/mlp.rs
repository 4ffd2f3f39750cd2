use rand::Rng;

use super::linear::{relu_in_place, Linear};
use crate::kernels::Float;
use crate::tensor::{Tensor, TensorMap};
use crate::Error;

/// The official `MLP`: Linear(in, h) + ReLU, then `[Linear(h, h), ReLU] * num_layers`, then
/// Linear(h, out). Python's list repetition puts the *same* Linear in every hidden slot, so the
/// hidden layers share one weight matrix; the state dict repeats it under every slot's key.
/// Keys: `features.0.*`, `features.{2, 4, …, 2·num_layers}.*` (equal), `features.{2·num_layers+2}.*`.
#[derive(Clone, Debug)]
pub struct Mlp<T = f64> {
    pub input: Linear<T>,
    pub hidden: Option<Linear<T>>,
    pub num_layers: usize,
    pub output: Linear<T>,
}

impl Mlp<f64> {
    pub fn load(
        t: &mut TensorMap,
        dim_in: usize,
        dim_hidden: usize,
        dim_out: usize,
        num_layers: usize,
    ) -> Result<Self, Error> {
        let input = Linear::load(t, "features.0.", dim_in, dim_hidden, true)?;
        let hidden = if num_layers == 0 {
            None
        } else {
            let shared = Linear::load(t, "features.2.", dim_hidden, dim_hidden, true)?;
            for i in 1..num_layers {
                let copy = Linear::load(t, &format!("features.{}.", 2 + 2 * i), dim_hidden, dim_hidden, true)?;
                if copy != shared {
                    return Err(Error::Weights(format!(
                        "mlp hidden layer `features.{}` differs from `features.2`; the official MLP shares one \
                         hidden layer, so these must be equal",
                        2 + 2 * i
                    )));
                }
            }
            Some(shared)
        };
        let output = Linear::load(t, &format!("features.{}.", 2 + 2 * num_layers), dim_hidden, dim_out, true)?;
        Ok(Self { input, hidden, num_layers, output })
    }

    pub fn init<R: Rng>(rng: &mut R, dim_in: usize, dim_hidden: usize, dim_out: usize, num_layers: usize) -> Self {
        let input = Linear::torch_default(rng, dim_in, dim_hidden, true);
        let hidden = (num_layers > 0).then(|| Linear::torch_default(rng, dim_hidden, dim_hidden, true));
        let output = Linear::torch_default(rng, dim_hidden, dim_out, true);
        Self { input, hidden, num_layers, output }
    }

    pub fn state_dict(&self, out: &mut Vec<(String, Tensor)>) {
        self.input.state_dict("features.0.", out);
        if let Some(hidden) = &self.hidden {
            for i in 0..self.num_layers {
                hidden.state_dict(&format!("features.{}.", 2 + 2 * i), out);
            }
        }
        self.output.state_dict(&format!("features.{}.", 2 + 2 * self.num_layers), out);
    }
}

impl<T: Float> Mlp<T> {
    pub fn cast<U: Float>(&self) -> Mlp<U> {
        Mlp {
            input: self.input.cast(),
            hidden: self.hidden.as_ref().map(Linear::cast),
            num_layers: self.num_layers,
            output: self.output.cast(),
        }
    }

    pub fn forward(&self, x: &[T], n: usize) -> Vec<T> {
        let mut h = self.input.forward(x, n);
        relu_in_place(&mut h);
        if let Some(hidden) = &self.hidden {
            for _ in 0..self.num_layers {
                h = hidden.forward(&h, n);
                relu_in_place(&mut h);
            }
        }
        self.output.forward(&h, n)
    }
}
