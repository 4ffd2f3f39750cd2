//! Networks on top of the positional encoding. The names are the official `pe_type` values.

mod fcnet;
mod linear;
mod mlp;
mod siren;

pub use fcnet::{FcNet, FcNetTrace, ResLayer};
pub use linear::{relu_backward, relu_in_place, torch_bound, Linear, Parameter, Weights};
pub use mlp::{Mlp, MlpTrace};
pub use siren::{Siren, SirenLayer, SirenTrace, W0, W0_INITIAL};

use rand::RngCore;

use crate::config::Hyperparameters;
use crate::kernels::Float;
use crate::tensor::{Tensor, TensorMap};
use crate::Error;

/// A location network in compute precision `T`. Each kind keeps its inference forward, its
/// training forward ([`Network::trace`]) and its backward pass side by side in its own file; the
/// same code serves the encoders, training and the MLP probe.
#[derive(Clone, Debug)]
pub enum Network<T = f64> {
    Linear(Linear<T>),
    Mlp(Mlp<T>),
    Siren(Siren<T>),
    FcNet(FcNet<T>),
}

/// What a network's backward pass needs from its forward pass.
#[derive(Debug)]
pub enum Trace<T> {
    Linear(Vec<T>),
    Mlp(MlpTrace<T>),
    Siren(SirenTrace<T>),
    FcNet(FcNetTrace<T>),
}

impl<T> Trace<T> {
    pub fn output(&self) -> &[T] {
        match self {
            Self::Linear(output) => output,
            Self::Mlp(t) => &t.output,
            Self::Siren(t) => &t.output,
            Self::FcNet(t) => &t.output,
        }
    }
}

impl Network<f64> {
    /// Builds the network named by `pe_type` from tensors keyed as in the official `nnet` module.
    pub fn load(hp: &Hyperparameters, input_dim: usize, t: &mut TensorMap) -> Result<Self, Error> {
        Self::new(hp, input_dim, &mut Weights::Load(t))
    }

    /// A freshly initialised network, with the official initialisation of each kind.
    pub fn init<R: RngCore>(hp: &Hyperparameters, input_dim: usize, rng: &mut R) -> Result<Self, Error> {
        Self::new(hp, input_dim, &mut Weights::Init(rng))
    }

    fn new(hp: &Hyperparameters, input_dim: usize, w: &mut Weights) -> Result<Self, Error> {
        hp.validate()?;
        let (h, out, layers) = (hp.capacity, hp.embed_dim, hp.num_hidden_layers);
        Ok(match hp.pe_type.as_str() {
            "linear" => Self::Linear(w.linear("", input_dim, out, true, torch_bound(input_dim))?),
            "mlp" => Self::Mlp(Mlp::new(w, input_dim, h, out, layers)?),
            "siren" => Self::Siren(Siren::new(w, input_dim, h, out, layers)?),
            "fcnet" => Self::FcNet(FcNet::new(w, input_dim, h, out)?),
            other => return Err(unknown_network(other)),
        })
    }

    /// Parameters under their official key names (relative to `nnet.`).
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        match self {
            Self::Linear(l) => l.state_dict("", &mut out),
            Self::Mlp(m) => m.state_dict(&mut out),
            Self::Siren(s) => s.state_dict(&mut out),
            Self::FcNet(f) => f.state_dict(&mut out),
        }
        out
    }
}

impl<T: Float> Network<T> {
    pub fn cast<U: Float>(&self) -> Network<U> {
        match self {
            Self::Linear(l) => Network::Linear(l.cast()),
            Self::Mlp(m) => Network::Mlp(m.cast()),
            Self::Siren(s) => Network::Siren(s.cast()),
            Self::FcNet(f) => Network::FcNet(f.cast()),
        }
    }

    /// This network with every layer's inference copy of its weight ([`Linear::for_inference`]).
    pub fn for_inference(self) -> Self {
        match self {
            Self::Linear(l) => Self::Linear(l.for_inference()),
            Self::Mlp(m) => Self::Mlp(Mlp {
                input: m.input.for_inference(),
                hidden: m.hidden.map(Linear::for_inference),
                output: m.output.for_inference(),
                ..m
            }),
            Self::Siren(s) => Self::Siren(Siren {
                layers: s.layers.into_iter().map(|l| SirenLayer { linear: l.linear.for_inference(), ..l }).collect(),
                last_layer: s.last_layer.for_inference(),
            }),
            Self::FcNet(f) => Self::FcNet(FcNet {
                input: f.input.for_inference(),
                blocks: f
                    .blocks
                    .into_iter()
                    .map(|b| ResLayer { w1: b.w1.for_inference(), w2: b.w2.for_inference() })
                    .collect(),
                class_emb: f.class_emb.for_inference(),
            }),
        }
    }

    /// Inference on `n` rows of `x` on the calling thread, reusing `scratch`; the result is left
    /// in `out`.
    pub fn forward_into(&self, x: &[T], n: usize, scratch: &mut Vec<T>, out: &mut Vec<T>) {
        match self {
            Self::Siren(s) => s.forward_into(x, n, scratch, out),
            Self::Linear(l) => l.forward_into(x, n, out, false),
            Self::Mlp(m) => *out = m.trace(x, n, false).output,
            Self::FcNet(f) => *out = f.trace(x, n, None, false).output,
        }
    }

    pub fn forward(&self, x: &[T], n: usize) -> Vec<T> {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        self.forward_into(x, n, &mut scratch, &mut out);
        out
    }

    /// Training forward on the rayon pool, keeping the activations for [`Self::backward`]; with
    /// `dropout`, p = 0.5 where the official network has it.
    pub fn trace(&self, x: &[T], n: usize, dropout: Option<&mut dyn RngCore>) -> Trace<T> {
        match self {
            Self::Linear(l) => Trace::Linear(l.forward(x, n, true)),
            Self::Mlp(m) => Trace::Mlp(m.trace(x, n, true)),
            Self::Siren(s) => Trace::Siren(s.trace(x, n, dropout)),
            Self::FcNet(f) => Trace::FcNet(f.trace(x, n, dropout, true)),
        }
    }

    /// Gradients given d(output), in the order of [`Self::parameters_mut`].
    pub fn backward(&self, trace: &Trace<T>, x: &[T], d_output: &[T]) -> Vec<Vec<T>> {
        let n = d_output.len() / self.output_dim();
        match (self, trace) {
            (Self::Linear(l), Trace::Linear(_)) => {
                let mut grads = Vec::new();
                l.push_gradients(l.backward_parameters(x, d_output, n), &mut grads);
                grads
            }
            (Self::Mlp(m), Trace::Mlp(t)) => m.backward(t, x, d_output, n),
            (Self::Siren(s), Trace::Siren(t)) => s.backward(t, x, d_output, n),
            (Self::FcNet(f), Trace::FcNet(t)) => f.backward(t, x, d_output, n),
            _ => unreachable!("a trace is always replayed on the network that made it"),
        }
    }

    /// Trainable tensors named `{prefix}` + their official key (a shared MLP layer once).
    pub fn parameters_mut<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, T>>) {
        match self {
            Self::Linear(l) => l.parameters_mut(prefix, out),
            Self::Mlp(m) => m.parameters_mut(prefix, out),
            Self::Siren(s) => s.parameters_mut(prefix, out),
            Self::FcNet(f) => f.parameters_mut(prefix, out),
        }
    }

    pub fn output_dim(&self) -> usize {
        match self {
            Self::Linear(l) => l.out_dim,
            Self::Mlp(m) => m.output.out_dim,
            Self::Siren(s) => s.last_layer.out_dim,
            Self::FcNet(f) => f.class_emb.out_dim,
        }
    }
}

fn unknown_network(name: &str) -> Error {
    Error::Config(format!("unknown network (pe_type) `{name}`; known: linear, mlp, siren, fcnet"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn hp(pe_type: &str) -> Hyperparameters {
        Hyperparameters {
            pe_type: pe_type.into(),
            capacity: 3,
            embed_dim: 2,
            num_hidden_layers: 2,
            ..Hyperparameters::default()
        }
    }

    fn tensor(shape: &[usize], values: &[f64]) -> Tensor {
        Tensor::new(shape.to_vec(), values.to_vec()).unwrap()
    }

    /// A 2-in, 3-hidden, 2-out SIREN with one hidden layer, evaluated by hand.
    #[test]
    fn siren_forward_by_hand() {
        let mut t = TensorMap::new();
        let w0 = [0.01, -0.02, 0.03, 0.04, -0.05, 0.06];
        let b0 = [0.001, 0.002, -0.003];
        let w1 = [0.1, 0.2, 0.3, -0.1, 0.5, 0.0, 0.2, 0.2, 0.2];
        let b1 = [0.05, -0.05, 0.0];
        let w2 = [1.0, -1.0, 0.5, 0.25, 0.0, 2.0];
        let b2 = [0.1, -0.2];
        t.insert("layers.0.weight", tensor(&[3, 2], &w0));
        t.insert("layers.0.bias", tensor(&[3], &b0));
        t.insert("layers.1.weight", tensor(&[3, 3], &w1));
        t.insert("layers.1.bias", tensor(&[3], &b1));
        t.insert("last_layer.weight", tensor(&[2, 3], &w2));
        t.insert("last_layer.bias", tensor(&[2], &b2));
        let net = Network::load(&hp("siren"), 2, &mut t).unwrap();
        t.finish().unwrap();

        let x = [1.5, -2.0];
        let h1: Vec<f64> = (0..3).map(|j| (30.0 * (w0[2 * j] * x[0] + w0[2 * j + 1] * x[1] + b0[j])).sin()).collect();
        let h2: Vec<f64> = (0..3).map(|j| ((0..3).map(|k| w1[3 * j + k] * h1[k]).sum::<f64>() + b1[j]).sin()).collect();
        let y: Vec<f64> = (0..2).map(|j| (0..3).map(|k| w2[3 * j + k] * h2[k]).sum::<f64>() + b2[j]).collect();
        let got = net.forward(&x, 1);
        for (g, w) in got.iter().zip(&y) {
            assert!((g - w).abs() < 1e-14, "{g} vs {w}");
        }
    }

    #[test]
    fn siren_dropout_acts_only_in_training() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let net = Network::init(
            &Hyperparameters { capacity: 64, num_hidden_layers: 2, ..Hyperparameters::default() },
            100,
            &mut rng,
        )
        .unwrap();
        let x: Vec<f64> = (0..100).map(|i| (i as f64).sin()).collect();
        let a = net.forward(&x, 1);
        assert_eq!(a, net.forward(&x, 1), "inference is deterministic");
        assert_eq!(a, net.trace(&x, 1, None).output(), "a trace without dropout is inference");
        let b = net.trace(&x, 1, Some(&mut rng));
        assert_ne!(a, b.output(), "training mode drops units");
    }

    #[test]
    fn siren_official_initialisation_bounds() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
        let Network::Siren(s) = Network::init(&Hyperparameters::default(), 100, &mut rng).unwrap() else { panic!() };
        let max = |t: &[f64]| t.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(max(&s.layers[0].linear.weight) <= 0.01 && max(&s.layers[0].linear.weight) > 0.009);
        let hidden = (6.0f64 / 512.0).sqrt();
        assert!(max(&s.layers[1].linear.weight) <= hidden && max(&s.layers[1].linear.weight) > 0.9 * hidden);
        assert!(max(&s.last_layer.weight) <= hidden);
        assert_eq!((s.last_layer.out_dim, s.last_layer.in_dim), (256, 512));
    }

    /// The hidden layer of the official MLP is one module repeated: its keys must agree.
    #[test]
    fn mlp_shares_its_hidden_layer() {
        let tensors = || {
            let mut t = TensorMap::new();
            t.insert("features.0.weight", tensor(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]));
            t.insert("features.0.bias", tensor(&[3], &[0.0, 0.0, -10.0]));
            let hidden_w = [0.5, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.5];
            for slot in [2, 4] {
                t.insert(format!("features.{slot}.weight"), tensor(&[3, 3], &hidden_w));
                t.insert(format!("features.{slot}.bias"), tensor(&[3], &[0.0, -1.0, 0.0]));
            }
            t.insert("features.6.weight", tensor(&[2, 3], &[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]));
            t.insert("features.6.bias", tensor(&[2], &[0.0, 3.0]));
            t
        };
        let net = Network::load(&hp("mlp"), 2, &mut tensors()).unwrap();
        // x = (4, 8): h0 = relu(4, 8, 2); the shared layer twice: (2, 3, 1), then (1, 0.5, 0.5).
        let got = net.forward(&[4.0, 8.0], 1);
        assert_eq!(got, vec![2.0, 3.0]);

        let mut t = tensors();
        t.insert("features.4.bias", tensor(&[3], &[0.0, 0.0, 0.0]));
        let err = Network::load(&hp("mlp"), 2, &mut t).unwrap_err().to_string();
        assert!(err.contains("features.4"), "{err}");
    }

    #[test]
    fn weights_are_read_only_when_taken_and_must_be_finite() {
        let mut t = TensorMap::new();
        t.insert_deferred("weight", vec![2, 4], Box::new(|| Ok(vec![0.5; 8])));
        t.insert_deferred("bias", vec![2], Box::new(|| Ok(vec![f64::NAN, 0.0])));
        let err = Network::load(&hp("linear"), 4, &mut t).unwrap_err().to_string();
        assert!(err.contains("`bias`") && err.contains("NaN"), "{err}");
        // A tensor of the wrong shape is refused before its loader runs.
        let mut t = TensorMap::new();
        t.insert_deferred("weight", vec![1 << 40, 4], Box::new(|| panic!("read before its shape was checked")));
        let err = Network::load(&hp("linear"), 4, &mut t).unwrap_err().to_string();
        assert!(err.contains("expected [2, 4]"), "{err}");
    }

    #[test]
    fn fcnet_is_residual_and_bias_free_at_the_end() {
        let mut t = TensorMap::new();
        t.insert("feats.0.weight", tensor(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]));
        t.insert("feats.0.bias", tensor(&[3], &[0.0, 0.0, 1.0]));
        for i in 2..6 {
            for w in ["w1", "w2"] {
                t.insert(format!("feats.{i}.{w}.weight"), Tensor::zeros(vec![3, 3]));
                t.insert(format!("feats.{i}.{w}.bias"), tensor(&[3], &[0.5, 0.0, 0.0]));
            }
        }
        t.insert("class_emb.weight", tensor(&[2, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]));
        let net = Network::load(&hp("fcnet"), 2, &mut t).unwrap();
        t.finish().unwrap();
        // Each block adds relu(0·y + 0.5) = 0.5 to the first unit: 2 + 4·0.5 = 4.
        assert_eq!(net.forward(&[2.0, -3.0], 1), vec![4.0, 1.0]);
    }

    #[test]
    fn loading_reports_missing_and_misshaped_tensors() {
        let mut t = TensorMap::new().with_display_prefix("model.location.nnet.");
        t.insert("weight", Tensor::zeros(vec![2, 5]));
        let err = Network::load(&hp("linear"), 4, &mut t).unwrap_err().to_string();
        assert!(err.contains("model.location.nnet.weight") && err.contains("[2, 5]"), "{err}");
        let mut t = TensorMap::new();
        t.insert("weight", Tensor::zeros(vec![2, 4]));
        let err = Network::load(&hp("linear"), 4, &mut t).unwrap_err().to_string();
        assert!(err.contains("missing tensor `bias`"), "{err}");
    }
}
