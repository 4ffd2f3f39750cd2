//! Fine-tuning: a SatCLIP location encoder trained end to end, with a linear head, on a task's
//! labels. The head starts as the frozen embedding's linear probe (ridge for values, logistic
//! regression for classes) fitted on the training rows, so that training starts where the
//! frozen probe ends ("linear probe, then fine-tune", Kumar et al., ICLR 2022), and the pretrained
//! features are not scrambled by the gradients of a random head. A seeded share of the training
//! rows judges every epoch. The epoch with the lowest validation loss is kept only if it beats the
//! probe itself (epoch 0) by more than one standard error of the difference over those rows (the
//! one-standard-error rule): with a handful of validation rows, a lower loss is often luck.
//! Under spatial-block cross-validation the validation rows are whole cells, and the head's ridge
//! chooses its strength in blocks: the kept epoch is then the one that carries best to places
//! training has not seen, as the continent holdout asks.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_pcg::Pcg64;
use satclip_core::network::{Linear, Network};
use satclip_core::random::permutation;
use satclip_core::train::{AdamW, Gradients};
use satclip_core::LocationEncoder;

use super::early_stopping::{self, Objective, Schedule};
use super::folds::cell;
use super::{logistic, ridge, softmax_rows, CrossValidation, Folds, Labels, Predictions};
use crate::standardise::Standardiser;

/// How fine-tuning trains. The defaults are the official pretraining's optimiser (AdamW, lr 1e-4,
/// weight decay 0.01) in batches of 256, with early stopping as the MLP probe's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinetuneConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without a better validation loss before training stops.
    pub patience: usize,
    /// Share of the training rows held out to choose the epoch.
    pub val_fraction: f64,
    pub seed: u64,
    /// Folds of the starting ridge head, and how the validation rows are drawn (whole cells under
    /// spatial blocks).
    #[serde(default)]
    pub cv: CrossValidation,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-4,
            weight_decay: 0.01,
            batch_size: 256,
            max_epochs: 100,
            patience: 10,
            val_fraction: 0.1,
            seed: 0,
            cv: CrossValidation::Interleaved,
        }
    }
}

/// What the head's outputs mean.
#[derive(Clone, Debug, PartialEq)]
pub enum HeadTarget {
    /// Standardised values: the prediction is `output · scale + mean`.
    Values { mean: f64, scale: f64 },
    /// One logit per class.
    Classes { count: usize },
}

/// A linear map from the embedding to the task's outputs.
#[derive(Clone, Debug)]
pub struct Head {
    pub linear: Linear<f64>,
    pub target: HeadTarget,
}

impl Head {
    /// Predictions at `points`, through `encoder`'s f64 embeddings (as evaluation scores them).
    pub fn predict_at(
        &self,
        encoder: &LocationEncoder,
        points: &[[f64; 2]],
    ) -> Result<Predictions, satclip_core::Error> {
        let embeddings = encoder.embed(points)?;
        Ok(self.predict(&embeddings.data, embeddings.rows))
    }

    /// Predictions for `n` rows of embeddings: values, or classes with their probabilities.
    pub fn predict(&self, embeddings: &[f64], n: usize) -> Predictions {
        let mut out = self.linear.forward(embeddings, n, true);
        match self.target {
            HeadTarget::Values { mean, scale } => Predictions::Values(out.iter().map(|v| v * scale + mean).collect()),
            HeadTarget::Classes { count } => {
                softmax_rows(&mut out, count, None);
                Predictions::from_scores(out, count)
            }
        }
    }
}

/// A fine-tuned encoder and head, and how training went.
pub struct FineTuned {
    pub encoder: LocationEncoder,
    pub head: Head,
    /// The kept epoch; 0 means the frozen encoder with its linear probe, refitted on all the
    /// training rows.
    pub best_epoch: usize,
    /// The epoch of the lowest validation loss; kept unless it was not one standard error better
    /// than the probe.
    pub lowest_epoch: usize,
    /// Validation loss of the probe (first) and after each epoch run.
    pub val_losses: Vec<f64>,
    pub n_train: usize,
    pub n_val: usize,
    /// How the head started (or, when the frozen encoder is kept, the probe refitted on all the
    /// training rows), e.g. `ridge alpha=1e2`.
    pub head_init: String,
}

impl FineTuned {
    pub fn predict(&self, points: &[[f64; 2]]) -> Result<Predictions, satclip_core::Error> {
        self.head.predict_at(&self.encoder, points)
    }

    /// What the eval report shows as the probe's choice, e.g. `epoch=14/24 ridge alpha=1e2`, or
    /// `epoch=0/14 (lowest 4) ...` when the lowest loss was within a standard error of the probe's.
    pub fn chosen(&self) -> String {
        let lowest = if self.lowest_epoch == self.best_epoch {
            String::new()
        } else {
            format!(" (lowest {})", self.lowest_epoch)
        };
        format!("epoch={}/{}{lowest} {}", self.best_epoch, self.val_losses.len() - 1, self.head_init)
    }
}

/// The encoder and the head while they train, in f32 (as pretraining).
#[derive(Clone)]
struct Stack {
    body: Network<f32>,
    head: Linear<f32>,
}

impl Stack {
    fn outputs(&self, x: &[f32], n: usize) -> Vec<f64> {
        let embedding = self.body.trace(x, n, None);
        self.head.forward(embedding.output(), n, true).iter().map(|v| *v as f64).collect()
    }
}

/// Fine-tunes `encoder` with a new head on `points` and their `labels`.
pub fn finetune(
    encoder: &LocationEncoder,
    points: &[[f64; 2]],
    labels: Labels,
    config: &FinetuneConfig,
) -> Result<FineTuned, String> {
    let n = labels.len();
    if points.len() != n {
        return Err(format!("{} points but {n} labels", points.len()));
    }
    if n < 3 {
        return Err("fine-tuning needs at least 3 labelled points (2 to train, 1 to validate)".into());
    }
    if !(config.val_fraction > 0.0 && config.val_fraction < 1.0) {
        return Err(format!("the validation fraction must lie in (0, 1), not {}", config.val_fraction));
    }
    let frozen = encoder.embed(points).map_err(|e| e.to_string())?;
    let d = frozen.dim;
    let mut rng = Pcg64::seed_from_u64(config.seed ^ 0x6669_6e65);
    let n_val = ((n as f64 * config.val_fraction).round() as usize).clamp(1, n - 2);
    let (val_rows, train_rows) = validation_split(points, n_val, config.cv, &mut rng);
    let (val_rows, train_rows) = (val_rows.as_slice(), train_rows.as_slice());

    let objective = Objective::of(labels);
    let (head, head_init) = linear_probe(&frozen.data, d, &objective, train_rows, points, config.cv);

    let din = encoder.positional_encoding().dim();
    let mut features = vec![0.0; n * din];
    encoder.positional_encoding().encode_batch(points, &mut features);
    let gather = |rows: &[usize]| -> Vec<f32> {
        rows.iter().flat_map(|&i| features[i * din..(i + 1) * din].iter().map(|v| *v as f32)).collect()
    };
    let x_val = gather(val_rows);
    let val_loss = |m: &Stack| {
        let mut out = m.outputs(&x_val, val_rows.len());
        objective.loss_and_gradient(&mut out, val_rows)
    };
    let mut adam = AdamW { lr: config.learning_rate, weight_decay: config.weight_decay, ..AdamW::satclip() };
    let step = |m: &mut Stack, batch: &[usize]| {
        let (x, rows) = (gather(batch), batch.len());
        let trace = m.body.trace(&x, rows, None);
        let mut d_out: Vec<f64> = m.head.forward(trace.output(), rows, true).iter().map(|v| *v as f64).collect();
        objective.loss_and_gradient(&mut d_out, batch);
        let d_out: Vec<f32> = d_out.iter().map(|v| *v as f32).collect();
        let d_embedding = m.head.backward_input(&d_out, rows);
        let mut gradients = m.body.backward(&trace, &x, &d_embedding);
        m.head.push_gradients(m.head.backward_parameters(trace.output(), &d_out, rows), &mut gradients);
        let mut parameters = Vec::new();
        m.body.parameters_mut("", &mut parameters);
        m.head.parameters_mut("head.", &mut parameters);
        adam.update(parameters, &Gradients { tensors: gradients });
    };
    let start = Stack { body: encoder.network().cast(), head: head.cast() };
    let schedule = Schedule { batch: config.batch_size, max_epochs: config.max_epochs, patience: config.patience };
    let stopped = early_stopping::train(start.clone(), train_rows, schedule, &mut rng, val_loss, step);
    let row_losses = |m: &Stack| {
        let mut out = m.outputs(&x_val, val_rows.len());
        objective.row_losses_and_gradient(&mut out, val_rows)
    };
    let best_epoch = match stopped.best_epoch {
        0 => 0,
        e if clearly_lower(&row_losses(&stopped.model), &row_losses(&start)) => e,
        _ => 0,
    };

    let (encoder, head, head_init) = if best_epoch == 0 {
        // The probe won: keep the encoder's own (f64) weights rather than their f32 round trip,
        // and refit the probe on every training row, the validation rows included: it is then
        // the frozen linear probe itself.
        let all: Vec<usize> = (0..n).collect();
        let (head, init) = linear_probe(&frozen.data, d, &objective, &all, points, config.cv);
        (encoder.clone(), head, init)
    } else {
        let tuned = encoder.with_network(stopped.model.body.cast()).map_err(|e| e.to_string())?;
        (tuned, stopped.model.head.cast(), head_init)
    };
    let target = match labels {
        Labels::Values(_) => HeadTarget::Values { mean: objective.y_mean, scale: objective.y_scale },
        Labels::Classes { count, .. } => HeadTarget::Classes { count },
    };
    Ok(FineTuned {
        encoder,
        head: Head { linear: head, target },
        best_epoch,
        lowest_epoch: stopped.best_epoch,
        val_losses: stopped.val_losses,
        n_train: train_rows.len(),
        n_val: val_rows.len(),
        head_init,
    })
}

/// (validation rows, training rows): `n_val` rows in a random order, or under spatial blocks the
/// rows of whole cells in a random order until they hold `n_val`, passing over cells that would
/// take them beyond twice that. Where cells cannot fill it (a task inside one or two cells), rows
/// are drawn one by one.
fn validation_split(
    points: &[[f64; 2]],
    n_val: usize,
    cv: CrossValidation,
    rng: &mut Pcg64,
) -> (Vec<usize>, Vec<usize>) {
    let n = points.len();
    if let CrossValidation::SpatialBlocks { degrees } = cv {
        let mut cells: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
        points.iter().enumerate().for_each(|(i, &p)| cells.entry(cell(p, degrees)).or_default().push(i));
        let cells: Vec<Vec<usize>> = cells.into_values().collect();
        let mut val = Vec::new();
        for c in permutation(cells.len(), rng) {
            if val.len() >= n_val {
                break;
            }
            if val.len() + cells[c].len() <= 2 * n_val {
                val.extend_from_slice(&cells[c]);
            }
        }
        if val.len() >= n_val && val.len() + 2 <= n {
            val.sort_unstable();
            let mut held = vec![false; n];
            val.iter().for_each(|&i| held[i] = true);
            return (val, (0..n).filter(|&i| !held[i]).collect());
        }
    }
    let mut order = permutation(n, rng);
    let train = order.split_off(n_val);
    (order, train)
}

/// Whether the losses `a` are lower than `b` (same rows) by more than one standard error of their
/// mean difference.
fn clearly_lower(a: &[f64], b: &[f64]) -> bool {
    let n = a.len() as f64;
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    mean + (var / n).sqrt() < 0.0
}

/// The frozen embedding's linear probe on `rows`, as a layer on raw embeddings: ridge on
/// standardised values (strength by cross-validation in `cv` folds of the rows' `points`) or
/// logistic regression (C = 1) for classes, with the embedding's standardisation folded into the
/// weights.
fn linear_probe(
    embeddings: &[f64],
    d: usize,
    objective: &Objective,
    rows: &[usize],
    points: &[[f64; 2]],
    cv: CrossValidation,
) -> (Linear<f64>, String) {
    let x: Vec<f64> = rows.iter().flat_map(|&i| embeddings[i * d..(i + 1) * d].iter().copied()).collect();
    let scaler = Standardiser::fit(&x, d, None);
    let z = scaler.apply(&x);
    let (weights, intercept, k, init) = match objective.labels {
        Labels::Values(v) => {
            let y: Vec<f64> = rows.iter().map(|&i| (v[i] - objective.y_mean) / objective.y_scale).collect();
            let row_points: Vec<[f64; 2]> = rows.iter().map(|&i| points[i]).collect();
            let (alpha, map) = ridge::fit_map(&z, Labels::Values(&y), d, &Folds::of_points(cv, &row_points));
            let folds = match cv {
                CrossValidation::Interleaved => String::new(),
                blocks => format!(" in {blocks}"),
            };
            (map.weights, map.intercept, 1, format!("ridge alpha={alpha:e}{folds}"))
        }
        Labels::Classes { class, count } => {
            let c: Vec<usize> = rows.iter().map(|&i| class[i]).collect();
            let mut params = logistic::fit_parameters(&z, &c, count, d);
            let intercept = params.split_off(d * count);
            (params, intercept, count, "logistic C=1".to_string())
        }
    };
    // z W + b with z = (e − μ)/σ is e (W/σ) + (b − Σ μ W/σ); the layer's weight is [k × d].
    let mut weight = vec![0.0; k * d];
    let mut bias = intercept;
    for j in 0..d {
        for o in 0..k {
            let w = weights[j * k + o] / scaler.scale[j];
            weight[o * d + j] = w;
            bias[o] -= scaler.mean[j] * w;
        }
    }
    (Linear { weight, bias: Some(bias), in_dim: d, out_dim: k, weight_t: None }, init)
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use satclip_core::Hyperparameters;

    use super::*;

    fn small_encoder() -> LocationEncoder {
        let hp = Hyperparameters { legendre_polys: 4, capacity: 32, embed_dim: 8, ..Hyperparameters::default() };
        LocationEncoder::init(hp, &mut Pcg64::seed_from_u64(3)).unwrap()
    }

    fn points(n: usize, seed: u64) -> Vec<[f64; 2]> {
        let mut rng = Pcg64::seed_from_u64(seed);
        (0..n).map(|_| [rng.random_range(-180.0..180.0), rng.random_range(-60.0..60.0)]).collect()
    }

    /// Epoch 0 is the frozen probe: its head, applied to the frozen embedding, predicts what the
    /// ridge probe fitted on the same rows in the same folds predicts.
    #[test]
    fn the_head_starts_as_the_frozen_ridge_probe() {
        let encoder = small_encoder();
        let pts = points(300, 1);
        let y: Vec<f64> = pts.iter().map(|p| p[1].to_radians().cos() * 20.0 + 3.0).collect();
        let frozen = encoder.embed(&pts).unwrap();
        let rows: Vec<usize> = (0..300).collect();
        let objective = Objective::of(Labels::Values(&y));
        for (cv, named) in [
            (CrossValidation::Interleaved, ""),
            (CrossValidation::SpatialBlocks { degrees: 30.0 }, " in blocks of 30°"),
        ] {
            let (layer, init) = linear_probe(&frozen.data, 8, &objective, &rows, &pts, cv);
            let (mean, scale) = (objective.y_mean, objective.y_scale);
            assert!(init.starts_with("ridge alpha=") && init.ends_with(named), "{init}");
            let head = Head { linear: layer, target: HeadTarget::Values { mean, scale } };
            let Predictions::Values(ours) = head.predict(&frozen.data, 300) else { panic!() };
            let fitted = super::super::fit_predict(
                super::super::Probe::Ridge,
                &frozen.data,
                Labels::Values(&y),
                &frozen.data,
                8,
                0,
                &Folds::of_points(cv, &pts),
            )
            .unwrap();
            let Predictions::Values(probe) = fitted.predictions else { panic!() };
            for (a, b) in ours.iter().zip(&probe) {
                assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "{cv}: {a} vs {b}");
            }
        }
    }

    /// Under spatial blocks the validation rows are whole cells holding at least the asked share
    /// (and at most twice it); points all in one cell are validated row by row.
    #[test]
    fn spatial_blocks_validate_on_whole_cells() {
        let pts = points(2000, 9);
        let blocks = CrossValidation::SpatialBlocks { degrees: 20.0 };
        let (val, train) = validation_split(&pts, 200, blocks, &mut Pcg64::seed_from_u64(0));
        assert!((200..=400).contains(&val.len()), "{} validation rows", val.len());
        assert_eq!(val.len() + train.len(), 2000);
        let val_cells: std::collections::BTreeSet<_> = val.iter().map(|&i| cell(pts[i], 20.0)).collect();
        assert!(val_cells.len() >= 2, "{val_cells:?}");
        assert!(train.iter().all(|&i| !val_cells.contains(&cell(pts[i], 20.0))), "a cell is split");

        let (interleaved, _) = validation_split(&pts, 200, CrossValidation::Interleaved, &mut Pcg64::seed_from_u64(0));
        let spread: std::collections::BTreeSet<_> = interleaved.iter().map(|&i| cell(pts[i], 20.0)).collect();
        assert!(spread.len() > 2 * val_cells.len(), "random rows reach {} cells", spread.len());

        let one_cell: Vec<[f64; 2]> = (0..100).map(|i| [1.0 + i as f64 * 0.1, 2.0]).collect();
        let (val, train) = validation_split(&one_cell, 10, blocks, &mut Pcg64::seed_from_u64(0));
        assert_eq!((val.len(), train.len()), (10, 90));
    }

    /// A field the frozen random encoder cannot express linearly is learned by training through
    /// the encoder: the validation loss falls well below the probe's, and the fine-tuned model
    /// predicts held-out points better than the frozen probe.
    #[test]
    fn finetuning_beats_the_frozen_probe_on_a_field_it_must_learn() {
        let encoder = small_encoder();
        let field = |p: &[f64; 2]| (p[0].to_radians() * 3.0).sin() * (p[1].to_radians() * 2.0).cos();
        let (train, test) = (points(800, 5), points(300, 6));
        let y: Vec<f64> = train.iter().map(field).collect();
        let truth: Vec<f64> = test.iter().map(field).collect();
        let config = FinetuneConfig { learning_rate: 1e-3, max_epochs: 60, ..FinetuneConfig::default() };
        let tuned = finetune(&encoder, &train, Labels::Values(&y), &config).unwrap();
        assert!(tuned.best_epoch > 0, "{:?}", tuned.val_losses);
        let best = tuned.val_losses[tuned.best_epoch];
        assert!(best < 0.5 * tuned.val_losses[0], "{:?}", tuned.val_losses);
        let Predictions::Values(p) = tuned.predict(&test).unwrap() else { panic!() };
        let r2 = crate::RegressionMetrics::of(&truth, &p).r2;
        let frozen = |pts: &[[f64; 2]]| encoder.embed(pts).unwrap().data;
        let fit = super::super::fit_predict(
            super::super::Probe::Ridge,
            &frozen(&train),
            Labels::Values(&y),
            &frozen(&test),
            8,
            0,
            &Folds::interleaved(y.len()),
        )
        .unwrap();
        let Predictions::Values(q) = fit.predictions else { panic!() };
        let frozen_r2 = crate::RegressionMetrics::of(&truth, &q).r2;
        assert!(r2 > frozen_r2 + 0.1, "fine-tuned R² {r2} vs frozen {frozen_r2}");
        // The kept encoder is what predicts: its embedding differs from the frozen one.
        assert_ne!(tuned.encoder.embed(&test).unwrap().data, frozen(&test));
    }

    #[test]
    fn classes_train_and_predict_probabilities() {
        let encoder = small_encoder();
        let pts = points(400, 7);
        let class: Vec<usize> = pts.iter().map(|p| usize::from(p[0] > 0.0) + 2 * usize::from(p[1] > 20.0)).collect();
        let config = FinetuneConfig { max_epochs: 5, ..FinetuneConfig::default() };
        let tuned = finetune(&encoder, &pts, Labels::Classes { class: &class, count: 4 }, &config).unwrap();
        assert!(tuned.head_init.starts_with("logistic"));
        let Predictions::Classes { class: p, scores } = tuned.predict(&pts).unwrap() else { panic!() };
        assert_eq!(scores.len(), 4 * pts.len());
        for row in scores.chunks_exact(4) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        let accuracy = crate::ClassificationMetrics::of(&class, &p).accuracy;
        assert!(accuracy > 0.6, "{accuracy}");
    }

    #[test]
    fn a_lower_loss_counts_only_beyond_one_standard_error() {
        // Lower on every row: clearly lower.
        assert!(clearly_lower(&[1.0, 2.0, 3.0, 4.0], &[1.5, 2.4, 3.6, 4.5]));
        // Lower on average by less than the noise of the differences.
        assert!(!clearly_lower(&[1.0, 2.0, 3.0, 4.0], &[2.0, 1.0, 4.0, 3.1]));
        assert!(!clearly_lower(&[1.0, 2.0], &[1.0, 2.0]));
    }

    #[test]
    fn too_few_points_or_a_bad_fraction_are_refused() {
        let encoder = small_encoder();
        let pts = points(2, 1);
        let err = finetune(&encoder, &pts, Labels::Values(&[1.0, 2.0]), &FinetuneConfig::default()).err().unwrap();
        assert!(err.contains("at least 3"), "{err}");
        let pts = points(10, 1);
        let y = vec![0.0; 10];
        let config = FinetuneConfig { val_fraction: 1.0, ..FinetuneConfig::default() };
        let err = finetune(&encoder, &pts, Labels::Values(&y), &config).err().unwrap();
        assert!(err.contains("validation fraction"), "{err}");
    }
}
