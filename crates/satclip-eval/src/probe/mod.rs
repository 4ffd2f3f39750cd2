//! Probes: models fitted on an encoder's features of the training points and scored on the test
//! points. All see standardised features (training mean and deviation); every hyperparameter is
//! either fixed or chosen by 5-fold cross-validation on the training rows ([`Folds`]) from a fixed
//! grid, the same for every encoder and task: nothing adapts to make one row of a table look better.

mod early_stopping;
mod finetune;
mod folds;
mod knn;
mod logistic;
mod mlp;
mod ridge;

pub use finetune::{finetune, FineTuned, FinetuneConfig, Head, HeadTarget};
pub use folds::{CrossValidation, Folds};
pub use knn::NEIGHBOURS;
pub use ridge::ALPHAS;

use crate::standardise::Standardiser;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Ridge regression, or for classes the ridge classifier (one-vs-all ±1 targets, argmax).
    Ridge,
    /// Multinomial logistic regression, L2 as scikit-learn's default (C = 1), L-BFGS.
    Logistic,
    /// Two hidden ReLU layers of 256, Adam, early stopping on a tenth of the training rows.
    Mlp,
    /// k nearest neighbours (Euclidean), k chosen by cross-validation.
    Knn,
    /// The location encoder itself trained end to end with a linear head ([`finetune`]); only
    /// for encoders that can be trained (SatCLIP models).
    Finetune,
}

impl std::str::FromStr for Probe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ridge" => Ok(Self::Ridge),
            "logistic" => Ok(Self::Logistic),
            "mlp" => Ok(Self::Mlp),
            "knn" => Ok(Self::Knn),
            "finetune" => Ok(Self::Finetune),
            other => Err(format!("probe `{other}` is not one of ridge, logistic, mlp, knn, finetune")),
        }
    }
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ridge => "ridge",
            Self::Logistic => "logistic",
            Self::Mlp => "mlp",
            Self::Knn => "knn",
            Self::Finetune => "finetune",
        })
    }
}

/// Training labels.
#[derive(Clone, Copy, Debug)]
pub enum Labels<'a> {
    Values(&'a [f64]),
    Classes { class: &'a [usize], count: usize },
}

impl Labels<'_> {
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Values(v) => v.len(),
            Self::Classes { class, .. } => class.len(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Predictions {
    Values(Vec<f64>),
    /// The predicted class of each row, and every class's score (`[rows × classes]`, larger
    /// is likelier: probabilities, ridge outputs or neighbour votes), which top-k accuracy and
    /// ROC-AUC rank.
    Classes {
        class: Vec<usize>,
        scores: Vec<f64>,
    },
}

impl Predictions {
    /// Classes by the largest score of each row of `k`.
    pub(super) fn from_scores(scores: Vec<f64>, k: usize) -> Self {
        Self::Classes { class: scores.chunks_exact(k).map(argmax).collect(), scores }
    }
}

/// A probe's predictions for the test rows and the hyperparameter it chose, e.g. `alpha=10`.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub predictions: Predictions,
    pub chosen: String,
}

/// Fits `probe` on `x_train` (`[n × d]`) and predicts `x_test`; ridge and kNN choose their
/// hyperparameter in `folds` of the training rows. `seed` drives the MLP's initialisation and
/// batches; the other probes are deterministic.
pub fn fit_predict(
    probe: Probe,
    x_train: &[f64],
    labels: Labels,
    x_test: &[f64],
    d: usize,
    seed: u64,
    folds: &Folds,
) -> Result<Fitted, String> {
    if labels.len() < 2 {
        return Err("fewer than 2 training rows".into());
    }
    assert_eq!(folds.len(), labels.len(), "one fold per training row");
    let scaler = Standardiser::fit(x_train, d, None);
    let (z, zt) = (scaler.apply(x_train), scaler.apply(x_test));
    match probe {
        Probe::Ridge => Ok(ridge::fit(&z, labels, &zt, d, folds)),
        Probe::Logistic => match labels {
            Labels::Values(_) => Err("logistic is a classifier; use ridge, mlp or knn for a regression task".into()),
            Labels::Classes { class, count } => Ok(logistic::fit(&z, class, count, &zt, d)),
        },
        Probe::Mlp => Ok(mlp::fit(&z, labels, &zt, d, seed)),
        Probe::Knn => Ok(knn::fit(&z, labels, &zt, d, folds)),
        Probe::Finetune => Err("finetune trains the encoder, not its features: see probe::finetune".into()),
    }
}

/// Regression targets as one column; classes as one-vs-all ±1 columns (the ridge classifier).
pub(super) fn target_matrix(labels: Labels) -> (Vec<f64>, usize) {
    match labels {
        Labels::Values(v) => (v.to_vec(), 1),
        Labels::Classes { class, count } => {
            let mut y = vec![-1.0; class.len() * count];
            class.iter().enumerate().for_each(|(i, &c)| y[i * count + c] = 1.0);
            (y, count)
        }
    }
}

pub(super) fn argmax(row: &[f64]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

pub(super) fn rows_where(x: &[f64], width: usize, keep: impl Fn(usize) -> bool) -> Vec<f64> {
    x.chunks_exact(width).enumerate().filter(|(i, _)| keep(*i)).flat_map(|(_, r)| r.iter().copied()).collect()
}

/// Outputs to predictions: values as they are; classes by the largest score.
pub(super) fn decode(out: Vec<f64>, labels: Labels, k: usize) -> Predictions {
    match labels {
        Labels::Values(_) => Predictions::Values(out),
        Labels::Classes { .. } => Predictions::from_scores(out, k),
    }
}

/// Softmax in place over each row of `k` scores; returns Σ −log p[true class] if `class` given.
pub(super) fn softmax_rows(scores: &mut [f64], k: usize, class: Option<&[usize]>) -> f64 {
    let mut loss = 0.0;
    for (i, row) in scores.chunks_exact_mut(k).enumerate() {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        row.iter_mut().for_each(|v| {
            *v = (*v - max).exp();
            sum += *v;
        });
        row.iter_mut().for_each(|v| *v /= sum);
        if let Some(c) = class {
            loss -= row[c[i]].max(1e-300).ln();
        }
    }
    loss
}

#[cfg(test)]
pub(super) mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    pub(crate) fn grid(n: usize, d: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        (0..n * d).map(|_| rng.random_range(-2.0..2.0)).collect()
    }

    /// Three classes split by the sign of two features: every classifier must learn it, and
    /// the regression probes must learn a smooth function of the features.
    #[test]
    fn every_probe_learns_separable_classes_and_a_smooth_function() {
        let d = 4;
        let (x, xt) = (grid(600, d, 2), grid(300, d, 3));
        let label = |r: &[f64]| {
            if r[0] > 0.5 {
                0
            } else if r[1] > 0.0 {
                1
            } else {
                2
            }
        };
        let (class, class_t): (Vec<usize>, Vec<usize>) =
            (x.chunks_exact(d).map(label).collect(), xt.chunks_exact(d).map(label).collect());
        let value = |r: &[f64]| (r[0]).sin() + r[1] * r[1] * 0.5;
        let (y, yt): (Vec<f64>, Vec<f64>) =
            (x.chunks_exact(d).map(value).collect(), xt.chunks_exact(d).map(value).collect());
        for probe in [Probe::Ridge, Probe::Logistic, Probe::Mlp, Probe::Knn] {
            let fit = fit_predict(
                probe,
                &x,
                Labels::Classes { class: &class, count: 3 },
                &xt,
                d,
                0,
                &Folds::interleaved(class.len()),
            )
            .unwrap();
            let Predictions::Classes { class: p, scores } = fit.predictions else { panic!() };
            assert_eq!(scores.len(), p.len() * 3, "{probe}: a score per class and row");
            let m = crate::ClassificationMetrics::of(&class_t, &p);
            // The ridge classifier is linear in ±1 codes and cannot carve the corner exactly.
            let floor = if probe == Probe::Ridge { 0.75 } else { 0.9 };
            assert!(m.accuracy > floor, "{probe}: accuracy {} ({})", m.accuracy, fit.chosen);
            if probe == Probe::Logistic {
                continue;
            }
            let fit = fit_predict(probe, &x, Labels::Values(&y), &xt, d, 0, &Folds::interleaved(y.len())).unwrap();
            let Predictions::Values(p) = fit.predictions else { panic!() };
            let r2 = crate::RegressionMetrics::of(&yt, &p).r2;
            // Ridge sees only linear features: sin(x0) is mostly linear, x1² is not.
            let floor = if probe == Probe::Ridge { 0.3 } else { 0.85 };
            assert!(r2 > floor, "{probe}: R² {r2} ({})", fit.chosen);
        }
        let err =
            fit_predict(Probe::Logistic, &x, Labels::Values(&y), &xt, d, 0, &Folds::interleaved(y.len())).unwrap_err();
        assert!(err.contains("classifier"), "{err}");
    }
}
