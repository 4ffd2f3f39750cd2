use super::linear::{relu_backward, relu_in_place, torch_bound, Linear, Parameter, Weights};
use crate::kernels::Float;
use crate::tensor::Tensor;
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
    /// Loaded (every hidden slot must hold the same layer) or with PyTorch's initialisation.
    pub fn new(
        w: &mut Weights,
        dim_in: usize,
        dim_hidden: usize,
        dim_out: usize,
        num_layers: usize,
    ) -> Result<Self, Error> {
        let input = w.linear("features.0.", dim_in, dim_hidden, true, torch_bound(dim_in))?;
        let hidden = if num_layers == 0 {
            None
        } else {
            let shared = w.linear("features.2.", dim_hidden, dim_hidden, true, torch_bound(dim_hidden))?;
            if let Weights::Load(t) = w {
                for i in 1..num_layers {
                    let slot = format!("features.{}.", 2 + 2 * i);
                    if Linear::load(t, &slot, dim_hidden, dim_hidden, true)? != shared {
                        return Err(Error::Weights(format!(
                            "mlp hidden layer `{}` differs from `features.2`; the official MLP shares one \
                             hidden layer, so these must be equal",
                            slot.trim_end_matches('.')
                        )));
                    }
                }
            }
            Some(shared)
        };
        let output_prefix = format!("features.{}.", 2 + 2 * num_layers);
        let output = w.linear(&output_prefix, dim_hidden, dim_out, true, torch_bound(dim_hidden))?;
        Ok(Self { input, hidden, num_layers, output })
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

    /// Forward on `n` rows, keeping the post-ReLU activations for [`Self::backward`].
    pub fn trace(&self, x: &[T], n: usize, parallel: bool) -> MlpTrace<T> {
        let mut first = self.input.forward(x, n, parallel);
        relu_in_place(&mut first);
        let mut hidden = vec![first];
        if let Some(shared) = &self.hidden {
            for _ in 0..self.num_layers {
                let mut next = shared.forward(hidden.last().expect("h0"), n, parallel);
                relu_in_place(&mut next);
                hidden.push(next);
            }
        }
        let output = self.output.forward(hidden.last().expect("h0"), n, parallel);
        MlpTrace { hidden, output }
    }

    /// Gradients in the order of [`Self::parameters_mut`]; the shared hidden layer's gradient
    /// sums over every slot it fills.
    pub fn backward(&self, trace: &MlpTrace<T>, x: &[T], d_output: &[T], n: usize) -> Vec<Vec<T>> {
        let hidden = &trace.hidden;
        let d_out_layer = self.output.backward_parameters(hidden.last().expect("h0"), d_output, n);
        let mut dh = self.output.backward_input(d_output, n);
        let mut d_shared: Option<(Vec<T>, Vec<T>)> = None;
        if let Some(shared) = &self.hidden {
            for i in (0..self.num_layers).rev() {
                relu_backward(&mut dh, &hidden[i + 1]);
                let (dw, db) = shared.backward_parameters(&hidden[i], &dh, n);
                d_shared = Some(match d_shared {
                    None => (dw, db),
                    Some((mut sw, mut sb)) => {
                        sw.iter_mut().zip(&dw).for_each(|(a, b)| *a += *b);
                        sb.iter_mut().zip(&db).for_each(|(a, b)| *a += *b);
                        (sw, sb)
                    }
                });
                dh = shared.backward_input(&dh, n);
            }
        }
        relu_backward(&mut dh, &hidden[0]);
        let mut grads = Vec::new();
        self.input.push_gradients(self.input.backward_parameters(x, &dh, n), &mut grads);
        if let (Some(shared), Some(g)) = (&self.hidden, d_shared) {
            shared.push_gradients(g, &mut grads);
        }
        self.output.push_gradients(d_out_layer, &mut grads);
        grads
    }

    /// The shared hidden layer appears once, under its first slot's name.
    pub fn parameters_mut<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, T>>) {
        self.input.parameters_mut(&format!("{prefix}features.0."), out);
        if let Some(shared) = &mut self.hidden {
            shared.parameters_mut(&format!("{prefix}features.2."), out);
        }
        self.output.parameters_mut(&format!("{prefix}features.{}.", 2 + 2 * self.num_layers), out);
    }
}

#[derive(Debug)]
pub struct MlpTrace<T> {
    /// Post-ReLU activations h₀ … h_L.
    hidden: Vec<Vec<T>>,
    pub output: Vec<T>,
}
