//! Mini-batch training with early stopping, shared by the MLP probe and fine-tuning: the rows the
//! model is judged on while it trains are never rows it trains on, and the epoch it keeps is the
//! one that judged best.

use rand_pcg::Pcg64;
use satclip_core::random::shuffle;

use super::{softmax_rows, Labels};

/// How long to train and in what steps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    pub batch: usize,
    pub max_epochs: usize,
    /// Epochs without a better validation loss before training stops.
    pub patience: usize,
}

/// What training kept and how it went.
pub(crate) struct Stopped<M> {
    pub model: M,
    /// The kept epoch; 0 means the model as it came in.
    pub best_epoch: usize,
    /// Validation loss before training and after each epoch run.
    pub val_losses: Vec<f64>,
}

/// Trains `model` by `step` on seeded shuffles of `train_rows` in batches, one epoch at a time, and
/// keeps the model of the epoch with the lowest `val_loss` (the model as given counts as epoch 0).
pub(crate) fn train<M: Clone>(
    model: M,
    train_rows: &[usize],
    schedule: Schedule,
    rng: &mut Pcg64,
    val_loss: impl Fn(&M) -> f64,
    mut step: impl FnMut(&mut M, &[usize]),
) -> Stopped<M> {
    let mut rows = train_rows.to_vec();
    let mut val_losses = vec![val_loss(&model)];
    let (mut best, mut best_epoch) = (model.clone(), 0);
    let mut model = model;
    for epoch in 1..=schedule.max_epochs {
        shuffle(&mut rows, rng);
        for batch in rows.chunks(schedule.batch.max(1)) {
            step(&mut model, batch);
        }
        let loss = val_loss(&model);
        val_losses.push(loss);
        if loss < val_losses[best_epoch] {
            (best, best_epoch) = (model.clone(), epoch);
        } else if epoch - best_epoch >= schedule.patience {
            break;
        }
    }
    Stopped { model: best, best_epoch, val_losses }
}

/// Mean loss of `out` (`[rows × k]`) against the labels of `rows`: squared error of standardised
/// values (`(y − y_mean) / y_scale`) or softmax cross-entropy; `out` becomes d loss / d out.
pub(crate) fn loss_and_gradient(
    out: &mut [f64],
    labels: Labels,
    rows: &[usize],
    k: usize,
    y_mean: f64,
    y_scale: f64,
) -> f64 {
    let losses = row_losses_and_gradient(out, labels, rows, k, y_mean, y_scale);
    losses.iter().sum::<f64>() / rows.len() as f64
}

/// As [`loss_and_gradient`], each row's loss.
pub(crate) fn row_losses_and_gradient(
    out: &mut [f64],
    labels: Labels,
    rows: &[usize],
    k: usize,
    y_mean: f64,
    y_scale: f64,
) -> Vec<f64> {
    let m = rows.len() as f64;
    match labels {
        Labels::Values(v) => out
            .iter_mut()
            .zip(rows)
            .map(|(o, &i)| {
                let r = *o - (v[i] - y_mean) / y_scale;
                *o = 2.0 * r / m;
                r * r
            })
            .collect(),
        Labels::Classes { class, .. } => out
            .chunks_exact_mut(k)
            .zip(rows)
            .map(|(row, &i)| {
                let loss = softmax_rows(row, k, Some(&[class[i]]));
                row[class[i]] -= 1.0;
                row.iter_mut().for_each(|v| *v /= m);
                loss
            })
            .collect(),
    }
}

/// Mean and deviation of regression targets (0 and 1 for classes), so that a network's outputs
/// are standardised values.
pub(crate) fn target_scaling(labels: Labels) -> (f64, f64) {
    match labels {
        Labels::Values(v) => {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            (mean, var.sqrt().max(1e-12))
        }
        Labels::Classes { .. } => (0.0, 1.0),
    }
}
