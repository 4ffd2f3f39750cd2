//! The MLP probe: the official MLP with one hidden layer (d → 256 → 256 → k) from satclip-core's
//! networks, trained with Adam and early stopping.

use rand::SeedableRng;
use satclip_core::network::{Mlp, Network, Weights};
use satclip_core::random::{permutation, shuffle};
use satclip_core::train::{AdamW, Gradients};

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
    let (k, y_mean, y_scale) = match labels {
        Labels::Values(v) => {
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            (1, mean, var.sqrt().max(1e-12))
        }
        Labels::Classes { count, .. } => (count, 0.0, 1.0),
    };
    let order = permutation(n, &mut rng);
    let n_val = (n / 10).max(1).min(n - 1);
    let (val_rows, train_rows) = order.split_at(n_val);
    let mut train_rows = train_rows.to_vec();
    // The official MLP with one hidden layer: d → 256 → 256 → k, PyTorch's initialisation.
    let mut net =
        Network::Mlp(Mlp::new(&mut Weights::Init(&mut rng), d, MLP_HIDDEN, k, 1).expect("initialising cannot fail"));
    let gather =
        |rows: &[usize]| -> Vec<f64> { rows.iter().flat_map(|&i| z[i * d..(i + 1) * d].iter().copied()).collect() };
    let z_val = gather(val_rows);
    let val_loss = |net: &Network| -> f64 {
        let mut out = net.trace(&z_val, val_rows.len(), None).output().to_vec();
        loss_and_gradient(&mut out, labels, val_rows, k, y_mean, y_scale)
    };
    let (mut best_loss, mut best_net, mut since) = (val_loss(&net), net.clone(), 0);
    // Plain Adam: AdamW without weight decay.
    let mut adam = AdamW { lr: 1e-3, weight_decay: 0.0, ..AdamW::satclip() };
    for _ in 0..MLP_MAX_EPOCHS {
        shuffle(&mut train_rows, &mut rng);
        for batch in train_rows.chunks(MLP_BATCH) {
            let x = gather(batch);
            let trace = net.trace(&x, batch.len(), None);
            let mut grad = trace.output().to_vec();
            loss_and_gradient(&mut grad, labels, batch, k, y_mean, y_scale);
            let gradients = Gradients { tensors: net.backward(&trace, &x, &grad) };
            let mut parameters = Vec::new();
            net.parameters_mut("", &mut parameters);
            adam.update(parameters, &gradients);
        }
        let loss = val_loss(&net);
        if loss < best_loss {
            (best_loss, best_net, since) = (loss, net.clone(), 0);
        } else {
            since += 1;
            if since >= MLP_PATIENCE {
                break;
            }
        }
    }
    let out = best_net.trace(zt, zt.len() / d, None).output().to_vec();
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

/// Mean loss of `out` (`[rows × k]`) against the labels of `rows`; `out` becomes d loss / d out.
fn loss_and_gradient(out: &mut [f64], labels: Labels, rows: &[usize], k: usize, y_mean: f64, y_scale: f64) -> f64 {
    let m = rows.len() as f64;
    match labels {
        Labels::Values(v) => {
            let mut loss = 0.0;
            for (o, &i) in out.iter_mut().zip(rows) {
                let r = *o - (v[i] - y_mean) / y_scale;
                loss += r * r;
                *o = 2.0 * r / m;
            }
            loss / m
        }
        Labels::Classes { class, .. } => {
            let truth: Vec<usize> = rows.iter().map(|&i| class[i]).collect();
            let loss = softmax_rows(out, k, Some(&truth)) / m;
            for (row, &c) in out.chunks_exact_mut(k).zip(&truth) {
                row[c] -= 1.0;
                row.iter_mut().for_each(|v| *v /= m);
            }
            loss
        }
    }
}
