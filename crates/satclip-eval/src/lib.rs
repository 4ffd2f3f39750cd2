//! Downstream evaluation: is an encoder's embedding a good feature for a task? Tasks are point
//! tables (lon, lat, target, optional split); every encoder turns the points into features; a
//! probe (ridge regression with cross-validated strength) is fitted on the training points and
//! scored on the rest. Probes and splits use fixed seeds and never adapt to the encoder.

pub mod build;
pub mod latent;
mod lbfgs;
pub mod linalg;
pub mod maps;
mod plot;
pub mod probe;
pub mod regions;
mod standardise;
pub mod suite;
pub mod task;

pub use probe::{
    finetune, fit_predict, CrossValidation, FineTuned, FinetuneConfig, Fitted, Folds, Labels, Predictions, Probe,
};
pub use task::{ClassificationMetrics, Kind, RankingMetrics, RegressionMetrics, Target, Task};

use rand::SeedableRng;
use rand_pcg::Pcg64;
use satclip_core::random::{permutation, shuffle};

/// A seeded random split: `true` marks training rows; `test_fraction` of the rows are test.
pub fn random_split(n: usize, test_fraction: f64, seed: u64) -> Vec<bool> {
    let order = permutation(n, &mut Pcg64::seed_from_u64(seed));
    let n_test = (n as f64 * test_fraction).round() as usize;
    let mut train = vec![true; n];
    for &i in &order[..n_test] {
        train[i] = false;
    }
    train
}

/// Fewest occupied cells a block split works with: a regional task (California) is cut finer
/// than a global one, so that holding out whole cells still leaves cells to train on.
pub const MIN_BLOCK_CELLS: usize = 20;

/// The cell size a block split uses: `cell_degrees`, halved until the points occupy at least
/// [`MIN_BLOCK_CELLS`] cells (or down to 1/64 of it).
pub fn block_cell_size(points: &[[f64; 2]], cell_degrees: f64) -> f64 {
    let mut size = cell_degrees;
    for _ in 0..6 {
        let cells: std::collections::HashSet<(i64, i64)> =
            points.iter().map(|p| ((p[0] / size).floor() as i64, (p[1] / size).floor() as i64)).collect();
        if cells.len() >= MIN_BLOCK_CELLS {
            break;
        }
        size /= 2.0;
    }
    size
}

/// A seeded spatial block split: the globe is cut into `cell_degrees` squares and whole squares
/// are held out until `test_fraction` of the points are, so test points are never next to
/// training points (a harder, more honest test of generalisation than a random split). A cell
/// that would leave no training point is not held out.
pub fn block_split(points: &[[f64; 2]], cell_degrees: f64, test_fraction: f64, seed: u64) -> Vec<bool> {
    let cell = |p: &[f64; 2]| ((p[0] / cell_degrees).floor() as i64, (p[1] / cell_degrees).floor() as i64);
    let mut counts: std::collections::BTreeMap<(i64, i64), usize> = Default::default();
    points.iter().for_each(|p| *counts.entry(cell(p)).or_default() += 1);
    let mut cells: Vec<((i64, i64), usize)> = counts.into_iter().collect();
    shuffle(&mut cells, &mut Pcg64::seed_from_u64(seed));
    let target = (points.len() as f64 * test_fraction).round() as usize;
    let mut held = std::collections::HashSet::new();
    let mut count = 0;
    for (c, n) in cells {
        if count >= target {
            break;
        }
        if count + n < points.len() {
            count += n;
            held.insert(c);
        }
    }
    points.iter().map(|p| !held.contains(&cell(p))).collect()
}

/// Keeps the first `n` training rows of a seeded shuffle (a learning-curve subset); others become
/// unused (neither train nor test).
pub fn subsample_train(train: &[bool], n: usize, seed: u64) -> Vec<bool> {
    let mut idx: Vec<usize> = (0..train.len()).filter(|&i| train[i]).collect();
    shuffle(&mut idx, &mut Pcg64::seed_from_u64(seed ^ 0x5eed));
    let mut keep = vec![false; train.len()];
    for &i in idx.iter().take(n) {
        keep[i] = true;
    }
    keep
}
