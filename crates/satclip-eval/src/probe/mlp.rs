//! The MLP probe: the official MLP with one hidden layer (d → 256 → 256 → k) from satclip-core's
//! networks, trained with Adam and early stopping.

use rand::SeedableRng;
use satclip_core::network::{Mlp, Network, Weights};
use satclip_core::random::permutation;
use satclip_core::train::{AdamW, Gradients};

use super::early_stopping::{self, Objective, Schedule};
use super::{decode, softmax_rows, Fitted, Labels};

const MLP_HIDDEN: usize = 256;
const MLP_BATCH: usize = 256;
const MLP_MAX_EPOCHS: usize = 200;
const MLP_PATIENCE: usize = 10;

/// A small MLP (d → 256 → 256 → outputs, ReLU), Adam (lr 1e-3), mini-batches of 256; a seeded
/// tenth of the training rows decides when to stop (no improvement for 10 epochs) and which
/// epoch's weights to keep. Regression targets are standardised; classes use softmax.
pub(super) fn fit(z: &[f64], labels: Labels, zt: &[f64], d: usize, seed: u64) -> Fitted {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed ^ 0x6d6c70);
    let n = labels.len();
    let objective = Objective::of(labels);
    let (k, y_mean, y_scale) = (objective.outputs, objective.y_mean, objective.y_scale);
    let order = permutation(n, &mut rng);
    let n_val = (n / 10).max(1).min(n - 1);
    let (val_rows, train_rows) = order.split_at(n_val);
    // The official MLP with one hidden layer: d → 256 → 256 → k, PyTorch's initialisation.
    let net =
        Network::Mlp(Mlp::new(&mut Weights::Init(&mut rng), d, MLP_HIDDEN, k, 1).expect("initialising cannot fail"));
    let gather =
        |rows: &[usize]| -> Vec<f64> { rows.iter().flat_map(|&i| z[i * d..(i + 1) * d].iter().copied()).collect() };
    let z_val = gather(val_rows);
    let val_loss = |net: &Network| -> f64 {
        let mut out = net.trace(&z_val, val_rows.len(), None).output().to_vec();
        objective.loss_and_gradient(&mut out, val_rows)
    };
    // Plain Adam: AdamW without weight decay.
    let mut adam = AdamW { lr: 1e-3, weight_decay: 0.0, ..AdamW::satclip() };
    let step = |net: &mut Network, batch: &[usize]| {
        let x = gather(batch);
        let trace = net.trace(&x, batch.len(), None);
        let mut grad = trace.output().to_vec();
        objective.loss_and_gradient(&mut grad, batch);
        let gradients = Gradients { tensors: net.backward(&trace, &x, &grad) };
        let mut parameters = Vec::new();
        net.parameters_mut("", &mut parameters);
        adam.update(parameters, &gradients);
    };
    let schedule = Schedule { batch: MLP_BATCH, max_epochs: MLP_MAX_EPOCHS, patience: MLP_PATIENCE };
    let best = early_stopping::train(net, train_rows, schedule, &mut rng, val_loss, step).model;
    let out = best.trace(zt, zt.len() / d, None).output().to_vec();
    let out = match labels {
        Labels::Values(_) => out.iter().map(|v| v * y_scale + y_mean).collect(),
        // Probabilities, so that a class's scores compare across rows (ROC-AUC ranks them).
        Labels::Classes { .. } => {
            let mut out = out;
            softmax_rows(&mut out, k, None);
            out
        }
    };
    Fitted { predictions: decode(out, labels, k), chosen: "hidden=256x2".into() }
}
