//! Ridge regression and the ridge classifier, with the strength chosen by cross-validation.

use satclip_core::kernels::{add_bias, gemm, MatRef};

use super::{argmax, decode, rows_where, target_matrix, Fitted, Folds, Labels};
use crate::linalg::{cholesky, cholesky_solve};

/// Ridge strengths tried: 10^-3 … 10^5.
pub const ALPHAS: [f64; 9] = [1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5];

/// Sufficient statistics of a set of rows for ridge: ZᵀZ, ZᵀY, Σz, Σy, n.
#[derive(Clone)]
struct Moments {
    gram: Vec<f64>,
    cross: Vec<f64>,
    z_sum: Vec<f64>,
    y_sum: Vec<f64>,
    n: usize,
}

impl Moments {
    fn of(z: &[f64], y: &[f64], d: usize, k: usize) -> Self {
        let n = y.len() / k;
        let mut gram = vec![0.0; d * d];
        gemm(&mut gram, MatRef::row_major(z, n, d).t(), MatRef::row_major(z, n, d), 1.0, false, true);
        let mut cross = vec![0.0; d * k];
        gemm(&mut cross, MatRef::row_major(z, n, d).t(), MatRef::row_major(y, n, k), 1.0, false, true);
        let mut z_sum = vec![0.0; d];
        z.chunks_exact(d).for_each(|r| z_sum.iter_mut().zip(r).for_each(|(s, v)| *s += v));
        let mut y_sum = vec![0.0; k];
        y.chunks_exact(k).for_each(|r| y_sum.iter_mut().zip(r).for_each(|(s, v)| *s += v));
        Self { gram, cross, z_sum, y_sum, n }
    }

    /// `self + sign · other`, field by field (sign ±1: merging folds or leaving one out).
    fn combined(&self, other: &Self, sign: f64) -> Self {
        let mix = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + sign * y).collect();
        Self {
            gram: mix(&self.gram, &other.gram),
            cross: mix(&self.cross, &other.cross),
            z_sum: mix(&self.z_sum, &other.z_sum),
            y_sum: mix(&self.y_sum, &other.y_sum),
            n: if sign > 0.0 { self.n + other.n } else { self.n - other.n },
        }
    }

    /// Ridge with an unpenalised intercept: returns a predictor `z ↦ (z − z̄) W + ȳ`.
    fn solve(&self, alpha: f64, d: usize, k: usize) -> Result<LinearMap, String> {
        let n = self.n as f64;
        let mean: Vec<f64> = self.z_sum.iter().map(|s| s / n).collect();
        let y_mean: Vec<f64> = self.y_sum.iter().map(|s| s / n).collect();
        // Centred moments: ZᵀZ − n z̄ z̄ᵀ and ZᵀY − n z̄ ȳᵀ.
        let mut a = self.gram.clone();
        for i in 0..d {
            for j in 0..=i {
                a[i * d + j] -= n * mean[i] * mean[j];
            }
            a[i * d + i] += alpha;
        }
        let mut w = self.cross.clone();
        for i in 0..d {
            w[i * k..(i + 1) * k].iter_mut().zip(&y_mean).for_each(|(x, ym)| *x -= n * mean[i] * ym);
        }
        cholesky(&mut a, d)?;
        cholesky_solve(&a, d, &mut w, k);
        // Intercept: ȳ − z̄ W.
        let mut intercept = y_mean;
        for i in 0..d {
            intercept.iter_mut().zip(&w[i * k..(i + 1) * k]).for_each(|(b, wij)| *b -= mean[i] * wij);
        }
        Ok(LinearMap { weights: w, intercept, k })
    }
}

/// `z ↦ z W + b`: weights `[d × k]`, intercepts `[k]`.
pub(super) struct LinearMap {
    pub weights: Vec<f64>,
    pub intercept: Vec<f64>,
    pub k: usize,
}

impl LinearMap {
    fn apply(&self, z: &[f64], d: usize) -> Vec<f64> {
        let n = z.len() / d;
        let mut out = vec![0.0; n * self.k];
        gemm(&mut out, MatRef::row_major(z, n, d), MatRef::row_major(&self.weights, d, self.k), 1.0, false, true);
        add_bias(&mut out, &self.intercept);
        out
    }
}

/// Ridge regression or ridge classifier; the strength minimises the cross-validated squared error
/// (regression) or maximises the cross-validated accuracy (classes).
pub(super) fn fit(z: &[f64], labels: Labels, zt: &[f64], d: usize, folds: &Folds) -> Fitted {
    let (alpha, map) = fit_map(z, labels, d, folds);
    let out = map.apply(zt, d);
    Fitted { predictions: decode(out, labels, map.k), chosen: format!("alpha={alpha:e}") }
}

/// The ridge fit of [`fit`] and the strength it chose.
pub(super) fn fit_map(z: &[f64], labels: Labels, d: usize, folds: &Folds) -> (f64, LinearMap) {
    let (y, k) = target_matrix(labels);
    let in_fold = |f: usize| move |i: usize| folds.of(i) == f;
    let moments: Vec<Moments> = (0..folds.count())
        .map(|f| Moments::of(&rows_where(z, d, in_fold(f)), &rows_where(&y, k, in_fold(f)), d, k))
        .collect();
    let all = moments.iter().skip(1).fold(moments[0].clone(), |acc, m| acc.combined(m, 1.0));
    let mut best = (f64::INFINITY, ALPHAS[ALPHAS.len() - 1]);
    for &alpha in &ALPHAS {
        let mut loss = 0.0;
        for (f, held) in moments.iter().enumerate() {
            let train = all.combined(held, -1.0);
            if train.n < 2 {
                continue;
            }
            let Ok(map) = train.solve(alpha, d, k) else {
                loss = f64::INFINITY;
                break;
            };
            let predicted = map.apply(&rows_where(z, d, in_fold(f)), d);
            let truth = rows_where(&y, k, in_fold(f));
            loss += match labels {
                Labels::Values(_) => predicted.iter().zip(&truth).map(|(p, t)| (p - t).powi(2)).sum::<f64>(),
                Labels::Classes { .. } => {
                    predicted.chunks_exact(k).zip(truth.chunks_exact(k)).filter(|(p, t)| argmax(p) != argmax(t)).count()
                        as f64
                }
            };
        }
        // Ties go to the stronger penalty (the simpler model).
        if loss <= best.0 {
            best = (loss, alpha);
        }
    }
    let map = std::iter::once(best.1)
        .chain(ALPHAS.iter().rev().copied())
        .find_map(|alpha| all.solve(alpha, d, k).ok().map(|m| (alpha, m)));
    map.expect("the strongest penalty makes the system positive definite")
}

#[cfg(test)]
mod tests {
    use crate::probe::tests::grid;
    use crate::probe::{fit_predict, Folds, Labels, Predictions, Probe};

    #[test]
    fn ridge_recovers_a_linear_function_and_prefers_weak_regularisation_for_it() {
        let d = 3;
        let x = grid(200, d, 1);
        let y: Vec<f64> = x.chunks_exact(d).map(|r| 2.0 * r[0] - r[1] + 0.5 * r[2] + 7.0).collect();
        let fit = fit_predict(Probe::Ridge, &x, Labels::Values(&y), &x, d, 0, &Folds::interleaved(y.len())).unwrap();
        assert!(fit.chosen == "alpha=1e-3", "{}", fit.chosen);
        let Predictions::Values(p) = fit.predictions else { panic!() };
        p.iter().zip(&y).for_each(|(a, b)| assert!((a - b).abs() < 1e-2, "{a} vs {b}"));
    }
}
