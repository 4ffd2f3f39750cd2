//! The cross-validation folds in which probes choose their hyperparameter.
//!
//! Interleaved rows are the default. Spatial blocks are for extrapolation: when the test points lie
//! in a region the training points never cover (`--split continent`), folds of interleaved rows
//! choose the penalty that interpolates best between neighbours, and a nearby training point is
//! always in another fold. Folds of whole grid cells ask instead how well a penalty carries to
//! places the fit has not seen (Roberts et al. 2017, "Cross-validation strategies for data with
//! temporal, spatial, hierarchical, or phylogenetic structure").

use std::collections::BTreeMap;

/// Folds of the training rows.
pub(crate) const FOLDS: usize = 5;

/// How the training rows are split into cross-validation folds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossValidation {
    /// Row i in fold i mod 5.
    #[default]
    Interleaved,
    /// Cells of `degrees` × `degrees` in longitude and latitude; whole cells go to a fold.
    SpatialBlocks { degrees: f64 },
}

impl CrossValidation {
    /// Spatial blocks of `degrees`, if that is a cell size: a number above 0, at most 360.
    pub fn spatial_blocks(degrees: f64) -> Option<Self> {
        (degrees.is_finite() && degrees > 0.0 && degrees <= 360.0).then_some(Self::SpatialBlocks { degrees })
    }
}

impl std::fmt::Display for CrossValidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Interleaved => f.write_str("interleaved"),
            Self::SpatialBlocks { degrees } => write!(f, "blocks of {degrees}°"),
        }
    }
}

/// The fold of each training row, and how many folds there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folds {
    of: Vec<usize>,
    count: usize,
}

impl Folds {
    /// Row i in fold i mod 5: task rows often arrive sorted by place, and contiguous folds would
    /// be spatial blocks.
    pub fn interleaved(n: usize) -> Self {
        Self { of: (0..n).map(|i| i % FOLDS).collect(), count: FOLDS.min(n) }
    }

    /// Folds for the training points (lon, lat in degrees) under `cv`.
    pub fn of_points(cv: CrossValidation, points: &[[f64; 2]]) -> Self {
        match cv {
            CrossValidation::Interleaved => Self::interleaved(points.len()),
            CrossValidation::SpatialBlocks { degrees } => Self::spatial_blocks(points, degrees),
        }
    }

    /// Whole cells of `degrees` to a fold, the cells dealt round in a fixed scrambled order so that
    /// neighbouring cells rarely share a fold. With fewer than two occupied cells there is nothing
    /// to hold out, and the rows are interleaved.
    fn spatial_blocks(points: &[[f64; 2]], degrees: f64) -> Self {
        let cell = |p| cell(p, degrees);
        let mut cells: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        points.iter().for_each(|&p| *cells.entry(cell(p)).or_default() += 1);
        if cells.len() < 2 {
            return Self::interleaved(points.len());
        }
        let mut order: Vec<(i64, i64)> = cells.keys().copied().collect();
        order.sort_by_key(|&(x, y)| scramble(x, y));
        let count = FOLDS.min(order.len());
        let fold: BTreeMap<(i64, i64), usize> = order.iter().enumerate().map(|(i, &c)| (c, i % count)).collect();
        Self { of: points.iter().map(|&p| fold[&cell(p)]).collect(), count }
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn of(&self, row: usize) -> usize {
        self.of[row]
    }

    pub(crate) fn len(&self) -> usize {
        self.of.len()
    }
}

/// The `degrees` × `degrees` cell (longitude, latitude) that holds a point.
pub(crate) fn cell([lon, lat]: [f64; 2], degrees: f64) -> (i64, i64) {
    ((lon / degrees).floor() as i64, (lat / degrees).floor() as i64)
}

/// A fixed pseudo-random key of a cell (SplitMix64's finaliser), so the fold order of cells does
/// not follow the map.
fn scramble(x: i64, y: i64) -> u64 {
    let mut z = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (y as u64).wrapping_add(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_folds_deal_rows_round() {
        let folds = Folds::interleaved(7);
        assert_eq!((0..7).map(|i| folds.of(i)).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 0, 1]);
        assert_eq!(Folds::interleaved(3).count(), 3);
    }

    #[test]
    fn spatial_blocks_keep_each_cell_in_one_fold_and_fill_every_fold() {
        // A 1° grid over 60° × 40°: 24 cells of 10°.
        let points: Vec<[f64; 2]> =
            (0..60).flat_map(|i| (0..40).map(move |j| [i as f64 + 0.5 - 30.0, j as f64 + 0.5 - 20.0])).collect();
        let folds = Folds::of_points(CrossValidation::SpatialBlocks { degrees: 10.0 }, &points);
        assert_eq!(folds.count(), FOLDS);
        let mut fold_of_cell = BTreeMap::new();
        for (i, &[lon, lat]) in points.iter().enumerate() {
            let cell = ((lon / 10.0).floor() as i64, (lat / 10.0).floor() as i64);
            assert_eq!(*fold_of_cell.entry(cell).or_insert(folds.of(i)), folds.of(i), "cell {cell:?} split");
        }
        assert_eq!(fold_of_cell.len(), 24);
        for f in 0..FOLDS {
            let cells = fold_of_cell.values().filter(|&&g| g == f).count();
            assert!((4..=5).contains(&cells), "fold {f} has {cells} cells");
        }
    }

    /// A target made of a trend that carries everywhere and a wavy field that a set of random
    /// Fourier features fits inside the training region but cannot continue beyond it. Ridge that
    /// chooses its strength in interleaved folds fits the field (neighbours are always in another
    /// fold) and carries that fit into the unseen region; in 20° blocks it learns that the field
    /// does not carry, and predicts the unseen region better.
    #[test]
    fn spatial_blocks_choose_a_penalty_that_carries_to_an_unseen_region() {
        use crate::probe::{fit_predict, Labels, Predictions, Probe};
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        let waves: Vec<[f64; 3]> = (0..60)
            .map(|_| [rng.random_range(-12.0..12.0), rng.random_range(-12.0..12.0), rng.random_range(0.0..6.3)])
            .collect();
        let features = |[lon, lat]: [f64; 2]| -> Vec<f64> {
            let (x, y) = (lon.to_radians(), lat.to_radians());
            std::iter::once(lon / 90.0).chain(waves.iter().map(|[a, b, c]| (a * x + b * y + c).cos())).collect()
        };
        let target = |[lon, lat]: [f64; 2]| lon / 90.0 + 0.5 * (lon / 9.0).sin() * (lat / 7.0).cos();
        let lattice: Vec<[f64; 2]> = (0..90)
            .flat_map(|i| (0..30).map(move |j| [-90.0 + 2.0 * i as f64 + 1.0, -30.0 + 2.0 * j as f64 + 1.0]))
            .collect();
        let (train, test): (Vec<[f64; 2]>, Vec<[f64; 2]>) = lattice.iter().partition(|p| p[0] < 30.0);
        let x: Vec<f64> = train.iter().flat_map(|&p| features(p)).collect();
        let xt: Vec<f64> = test.iter().flat_map(|&p| features(p)).collect();
        let y: Vec<f64> = train.iter().map(|&p| target(p)).collect();
        let truth: Vec<f64> = test.iter().map(|&p| target(p)).collect();
        let d = waves.len() + 1;
        let score = |cv| {
            let fit =
                fit_predict(Probe::Ridge, &x, Labels::Values(&y), &xt, d, 0, &Folds::of_points(cv, &train)).unwrap();
            let Predictions::Values(p) = fit.predictions else { panic!("regression predicts values") };
            (crate::RegressionMetrics::of(&truth, &p).r2, fit.chosen)
        };
        let (rows, rows_alpha) = score(CrossValidation::Interleaved);
        let (blocks, blocks_alpha) = score(CrossValidation::SpatialBlocks { degrees: 20.0 });
        let alpha = |chosen: &str| chosen.trim_start_matches("alpha=").parse::<f64>().unwrap();
        assert!(alpha(&blocks_alpha) > alpha(&rows_alpha), "{blocks_alpha} vs {rows_alpha}");
        assert!(blocks > rows + 0.1, "unseen region R²: blocks {blocks:.3}, interleaved rows {rows:.3}");
    }

    #[test]
    fn spatial_blocks_fall_back_to_interleaved_rows_within_one_cell() {
        let points = [[1.0, 1.0], [1.5, 1.2], [2.0, 1.9]];
        let folds = Folds::of_points(CrossValidation::SpatialBlocks { degrees: 20.0 }, &points);
        assert_eq!(folds, Folds::interleaved(3));
        let two = Folds::of_points(CrossValidation::SpatialBlocks { degrees: 1.0 }, &points);
        assert_eq!(two.count(), 2);
        assert_eq!(two.of(0), two.of(1));
        assert_ne!(two.of(0), two.of(2));
    }
}
