//! Ridge regression on standardised features, its strength chosen by k-fold cross-validation on
//! the training rows from a fixed grid (the same grid for every encoder and task).

/// Strengths tried: 10^-3 … 10^5.
pub const ALPHAS: [f64; 9] = [1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5];
const FOLDS: usize = 5;

#[derive(Clone, Debug)]
pub struct RidgeModel {
    pub alpha: f64,
    mean: Vec<f64>,
    scale: Vec<f64>,
    weights: Vec<f64>,
    intercept: f64,
}

impl RidgeModel {
    /// Fits on rows of `x` (`[n × d]`, row-major) with strength `alpha`.
    pub fn fit(x: &[f64], y: &[f64], d: usize, alpha: f64) -> Self {
        let n = y.len();
        let mut mean = vec![0.0; d];
        for row in x.chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v / n as f64);
        }
        let mut scale = vec![0.0; d];
        for row in x.chunks_exact(d) {
            scale.iter_mut().zip(row).zip(&mean).for_each(|((s, v), m)| *s += (v - m).powi(2) / n as f64);
        }
        // Constant features get unit scale (they standardise to zero).
        scale.iter_mut().for_each(|s| *s = if *s > 1e-24 { s.sqrt() } else { 1.0 });
        let z: Vec<f64> = x
            .chunks_exact(d)
            .flat_map(|row| row.iter().zip(&mean).zip(&scale).map(|((v, m), s)| (v - m) / s))
            .collect();
        let y_mean = y.iter().sum::<f64>() / n as f64;
        // Normal equations (ZᵀZ + αI) w = Zᵀ(y − ȳ), solved by Cholesky.
        let mut gram = vec![0.0; d * d];
        satclip_core::kernels::gemm(
            &mut gram,
            satclip_core::kernels::MatRef::row_major(&z, n, d).t(),
            satclip_core::kernels::MatRef::row_major(&z, n, d),
            1.0,
            false,
            true,
        );
        for i in 0..d {
            gram[i * d + i] += alpha;
        }
        let mut rhs = vec![0.0; d];
        for (row, t) in z.chunks_exact(d).zip(y) {
            rhs.iter_mut().zip(row).for_each(|(r, v)| *r += v * (t - y_mean));
        }
        let weights = cholesky_solve(&mut gram, rhs, d);
        Self { alpha, mean, scale, weights, intercept: y_mean }
    }

    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        let d = self.mean.len();
        x.chunks_exact(d)
            .map(|row| {
                self.intercept
                    + row
                        .iter()
                        .zip(&self.mean)
                        .zip(&self.scale)
                        .zip(&self.weights)
                        .map(|(((v, m), s), w)| (v - m) / s * w)
                        .sum::<f64>()
            })
            .collect()
    }
}

/// Solves A w = b for symmetric positive definite A (overwritten by its Cholesky factor).
fn cholesky_solve(a: &mut [f64], mut b: Vec<f64>, d: usize) -> Vec<f64> {
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        let diag = diag.max(1e-300).sqrt();
        a[j * d + j] = diag;
        for i in j + 1..d {
            let (row_i, row_j) = (i * d, j * d);
            let mut v = a[row_i + j];
            for k in 0..j {
                v -= a[row_i + k] * a[row_j + k];
            }
            a[row_i + j] = v / diag;
        }
    }
    for i in 0..d {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * d + k] * b[k];
        }
        b[i] = v / a[i * d + i];
    }
    for i in (0..d).rev() {
        let mut v = b[i];
        for k in i + 1..d {
            v -= a[k * d + i] * b[k];
        }
        b[i] = v / a[i * d + i];
    }
    b
}

/// Ridge with the strength chosen by 5-fold cross-validated MSE on the given rows.
pub fn ridge_cv(x: &[f64], y: &[f64], d: usize) -> RidgeModel {
    let n = y.len();
    // Interleaved folds: rows often arrive sorted by place, and contiguous folds would be spatial.
    let fold_of = |i: usize| i % FOLDS;
    let mut best = (f64::INFINITY, ALPHAS[0]);
    for &alpha in &ALPHAS {
        let mut sse = 0.0;
        for f in 0..FOLDS.min(n) {
            let (mut xt, mut yt, mut xv, mut yv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for i in 0..n {
                let row = &x[i * d..(i + 1) * d];
                if fold_of(i) == f {
                    xv.extend_from_slice(row);
                    yv.push(y[i]);
                } else {
                    xt.extend_from_slice(row);
                    yt.push(y[i]);
                }
            }
            if yt.len() < 2 || yv.is_empty() {
                continue;
            }
            let model = RidgeModel::fit(&xt, &yt, d, alpha);
            sse += model.predict(&xv).iter().zip(&yv).map(|(p, t)| (p - t).powi(2)).sum::<f64>();
        }
        if sse < best.0 {
            best = (sse, alpha);
        }
    }
    RidgeModel::fit(x, y, d, best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_linear_function_and_prefers_weak_regularisation_for_it() {
        let d = 3;
        let x: Vec<f64> = (0..300).map(|i| ((i * 37) % 101) as f64 / 10.0).collect();
        let y: Vec<f64> = x.chunks_exact(d).map(|r| 2.0 * r[0] - r[1] + 0.5 * r[2] + 7.0).collect();
        let model = ridge_cv(&x, &y, d);
        assert!(model.alpha <= 1e-1, "alpha {}", model.alpha);
        let p = model.predict(&x);
        for (a, b) in p.iter().zip(&y) {
            assert!((a - b).abs() < 1e-2);
        }
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let w = cholesky_solve(&mut a, vec![2.0, 1.0], 2);
        // [4 2; 2 3] w = [2 1] → w = [0.5, 0]
        assert!((w[0] - 0.5).abs() < 1e-12 && w[1].abs() < 1e-12);
    }
}
