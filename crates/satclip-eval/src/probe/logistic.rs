//! Multinomial logistic regression, as scikit-learn's default `LogisticRegression`.

use satclip_core::kernels::{add_bias, add_column_sums, gemm, MatRef};

use super::{softmax_rows, Fitted, Predictions};
use crate::lbfgs::lbfgs;

/// Multinomial logistic regression: mean cross-entropy + ‖W‖²/(2n) (scikit-learn's C = 1),
/// intercept unpenalised, minimised by L-BFGS for at most 100 iterations (scikit-learn's
/// defaults for `lbfgs`).
pub(super) fn fit(z: &[f64], class: &[usize], k: usize, zt: &[f64], d: usize) -> Fitted {
    let params = fit_parameters(z, class, k, d);
    let (w, b) = params.split_at(d * k);
    let nt = zt.len() / d;
    let mut out = vec![0.0; nt * k];
    gemm(&mut out, MatRef::row_major(zt, nt, d), MatRef::row_major(w, d, k), 1.0, false, true);
    add_bias(&mut out, b);
    softmax_rows(&mut out, k, None);
    Fitted { predictions: Predictions::from_scores(out, k), chosen: "C=1".into() }
}

/// The fit of [`fit`]: weights `[d × k]` followed by intercepts `[k]`.
pub(super) fn fit_parameters(z: &[f64], class: &[usize], k: usize, d: usize) -> Vec<f64> {
    let n = class.len();
    let width = (d + 1) * k; // weights [d × k] then intercepts [k]
    let objective = |params: &[f64], grad: &mut [f64]| -> f64 {
        let (w, b) = params.split_at(d * k);
        let mut p = vec![0.0; n * k];
        gemm(&mut p, MatRef::row_major(z, n, d), MatRef::row_major(w, d, k), 1.0, false, true);
        add_bias(&mut p, b);
        let loss = softmax_rows(&mut p, k, Some(class)) / n as f64;
        for (i, &c) in class.iter().enumerate() {
            p[i * k + c] -= 1.0;
        }
        p.iter_mut().for_each(|v| *v /= n as f64);
        let (gw, gb) = grad.split_at_mut(d * k);
        gemm(gw, MatRef::row_major(z, n, d).t(), MatRef::row_major(&p, n, k), 1.0, false, true);
        gb.fill(0.0);
        add_column_sums(&p, k, gb);
        let lambda = 1.0 / n as f64;
        gw.iter_mut().zip(w).for_each(|(g, wi)| *g += lambda * wi);
        loss + 0.5 * lambda * w.iter().map(|v| v * v).sum::<f64>()
    };
    lbfgs(vec![0.0; width], objective, 100)
}
