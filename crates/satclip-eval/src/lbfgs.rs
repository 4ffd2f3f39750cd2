//! Limited-memory BFGS, for the logistic probe.

/// Largest gradient component at which L-BFGS stops (scikit-learn's `tol` for `lbfgs`).
const GRADIENT_TOLERANCE: f64 = 1e-4;

/// Limited-memory BFGS (m = 10) with a backtracking Armijo line search; stops when every gradient
/// component is within [`GRADIENT_TOLERANCE`], progress stalls, or after `iterations`.
pub(crate) fn lbfgs(mut x: Vec<f64>, mut f: impl FnMut(&[f64], &mut [f64]) -> f64, iterations: usize) -> Vec<f64> {
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut g = vec![0.0; x.len()];
    let mut fx = f(&x, &mut g);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let (mut x_new, mut g_new) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for _ in 0..iterations {
        if g.iter().all(|v| v.abs() <= GRADIENT_TOLERANCE) {
            break;
        }
        // Two-loop recursion for the direction −H g.
        let mut q = g.clone();
        let mut coeffs = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            coeffs.push(a);
        }
        if let Some((s, y, _)) = history.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y, rho), a) in history.iter().zip(coeffs.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let slope = -dot(&g, &q);
        if slope >= 0.0 || !slope.is_finite() {
            break;
        }
        let mut step = if history.is_empty() { 1.0 / dot(&g, &g).sqrt().max(1e-12) } else { 1.0 };
        let mut accepted = false;
        for _ in 0..30 {
            x_new.iter_mut().zip(&x).zip(&q).for_each(|((xn, xi), qi)| *xn = xi - step * qi);
            let f_new = f(&x_new, &mut g_new);
            if f_new <= fx + 1e-4 * step * slope {
                let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 {
                    if history.len() == 10 {
                        history.pop_front();
                    }
                    history.push_back((s, y, 1.0 / sy));
                }
                let improvement = fx - f_new;
                std::mem::swap(&mut x, &mut x_new);
                std::mem::swap(&mut g, &mut g_new);
                fx = f_new;
                accepted = improvement > 1e-10 * fx.abs().max(1.0);
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::lbfgs;

    #[test]
    fn lbfgs_minimises_a_quadratic() {
        let x = lbfgs(
            vec![0.0, 0.0],
            |p, g| {
                g[0] = 2.0 * (p[0] - 3.0);
                g[1] = 20.0 * (p[1] + 1.0);
                (p[0] - 3.0).powi(2) + 10.0 * (p[1] + 1.0).powi(2)
            },
            100,
        );
        // Stopped by the gradient tolerance: |2(x0 − 3)| ≤ 1e-4 → |x0 − 3| ≤ 5e-5.
        assert!((x[0] - 3.0).abs() <= 5e-5 && (x[1] + 1.0).abs() <= 5e-6, "{x:?}");
    }
}
