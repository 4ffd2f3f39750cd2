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

/// What a network learns to output for a task's labels: standardised values (one output,
/// `(y − y_mean) / y_scale`) or one logit per class (softmax cross-entropy).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Objective<'a> {
    pub labels: Labels<'a>,
    /// Outputs per row: 1 for values, the class count for classes.
    pub outputs: usize,
    /// The regression targets' mean and deviation (0 and 1 for classes).
    pub y_mean: f64,
    pub y_scale: f64,
}

impl<'a> Objective<'a> {
    pub(crate) fn of(labels: Labels<'a>) -> Self {
        let (outputs, y_mean, y_scale) = match labels {
            Labels::Values(v) => {
                let n = v.len() as f64;
                let mean = v.iter().sum::<f64>() / n;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                (1, mean, var.sqrt().max(1e-12))
            }
            Labels::Classes { count, .. } => (count, 0.0, 1.0),
        };
        Self { labels, outputs, y_mean, y_scale }
    }

    /// Mean loss of `out` (`[rows × outputs]`) against the labels of `rows`; `out` becomes
    /// d loss / d out.
    pub(crate) fn loss_and_gradient(&self, out: &mut [f64], rows: &[usize]) -> f64 {
        self.row_losses_and_gradient(out, rows).iter().sum::<f64>() / rows.len() as f64
    }

    /// As [`Self::loss_and_gradient`], each row's loss.
    pub(crate) fn row_losses_and_gradient(&self, out: &mut [f64], rows: &[usize]) -> Vec<f64> {
        let m = rows.len() as f64;
        match self.labels {
            Labels::Values(v) => out
                .iter_mut()
                .zip(rows)
                .map(|(o, &i)| {
                    let r = *o - (v[i] - self.y_mean) / self.y_scale;
                    *o = 2.0 * r / m;
                    r * r
                })
                .collect(),
            Labels::Classes { class, .. } => out
                .chunks_exact_mut(self.outputs)
                .zip(rows)
                .map(|(row, &i)| {
                    let loss = softmax_rows(row, self.outputs, Some(&[class[i]]));
                    row[class[i]] -= 1.0;
                    row.iter_mut().for_each(|v| *v /= m);
                    loss
                })
                .collect(),
        }
    }
}
