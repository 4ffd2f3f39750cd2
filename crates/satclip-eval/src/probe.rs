//! Probes: models fitted on an encoder's features of the training points and scored on the test
//! points. All see standardised features (training mean and deviation); every hyperparameter is
//! either fixed or chosen by 5-fold cross-validation on the training rows from a fixed grid, the
//! same for every encoder and task: nothing adapts to make one row of a table look better.

use rand::SeedableRng;
use satclip_core::kernels::{add_bias, add_column_sums, gemm, MatRef};
use satclip_core::network::{Mlp, Network};
use satclip_core::random::{permutation, shuffle};
use satclip_core::train::{AdamW, Gradients};

use crate::linalg::{cholesky, cholesky_solve};

/// Ridge strengths tried: 10^-3 … 10^5.
pub const ALPHAS: [f64; 9] = [1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5];
/// Neighbour counts tried by kNN.
pub const NEIGHBOURS: [usize; 6] = [1, 3, 5, 10, 20, 50];
const FOLDS: usize = 5;

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
}

impl std::str::FromStr for Probe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ridge" => Ok(Self::Ridge),
            "logistic" => Ok(Self::Logistic),
            "mlp" => Ok(Self::Mlp),
            "knn" => Ok(Self::Knn),
            other => Err(format!("probe `{other}` is not one of ridge, logistic, mlp, knn")),
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
    fn len(&self) -> usize {
        match self {
            Self::Values(v) => v.len(),
            Self::Classes { class, .. } => class.len(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Predictions {
    Values(Vec<f64>),
    Classes(Vec<usize>),
}

/// A probe's predictions for the test rows and the hyperparameter it chose, e.g. `alpha=10`.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub predictions: Predictions,
    pub chosen: String,
}

/// Fits `probe` on `x_train` (`[n × d]`) and predicts `x_test`. `seed` drives the MLP's
/// initialisation and batches; the other probes are deterministic.
pub fn fit_predict(
    probe: Probe,
    x_train: &[f64],
    labels: Labels,
    x_test: &[f64],
    d: usize,
    seed: u64,
) -> Result<Fitted, String> {
    if labels.len() < 2 {
        return Err("fewer than 2 training rows".into());
    }
    let scaler = Standardiser::fit(x_train, d, None);
    let (z, zt) = (scaler.apply(x_train), scaler.apply(x_test));
    match probe {
        Probe::Ridge => Ok(ridge(&z, labels, &zt, d)),
        Probe::Logistic => match labels {
            Labels::Values(_) => Err("logistic is a classifier; use ridge, mlp or knn for a regression task".into()),
            Labels::Classes { class, count } => Ok(logistic(&z, class, count, &zt, d)),
        },
        Probe::Mlp => Ok(mlp(&z, labels, &zt, d, seed)),
        Probe::Knn => Ok(knn(&z, labels, &zt, d)),
    }
}

/// Per-column mean and deviation of a row-major matrix, optionally with row weights.
pub(crate) struct Standardiser {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl Standardiser {
    pub(crate) fn fit(x: &[f64], d: usize, weights: Option<&[f64]>) -> Self {
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        let total = weights.map_or((x.len() / d) as f64, |w| w.iter().sum());
        let mut mean = vec![0.0; d];
        for (i, r) in x.chunks_exact(d).enumerate() {
            mean.iter_mut().zip(r).for_each(|(m, v)| *m += weight(i) * v / total);
        }
        let mut scale = vec![0.0; d];
        for (i, r) in x.chunks_exact(d).enumerate() {
            scale.iter_mut().zip(r).zip(&mean).for_each(|((s, v), m)| *s += weight(i) * (v - m).powi(2) / total);
        }
        // Constant features get unit scale: they standardise to zero and drop out.
        scale.iter_mut().for_each(|s| *s = if *s > 1e-24 { s.sqrt() } else { 1.0 });
        Self { mean, scale }
    }

    pub(crate) fn apply(&self, x: &[f64]) -> Vec<f64> {
        x.chunks_exact(self.mean.len())
            .flat_map(|r| r.iter().zip(&self.mean).zip(&self.scale).map(|((v, m), s)| (v - m) / s))
            .collect()
    }
}

/// Interleaved folds: task rows often arrive sorted by place, and contiguous folds would be
/// spatial blocks.
fn fold_of(i: usize) -> usize {
    i % FOLDS
}

/// Regression targets as one column; classes as one-vs-all ±1 columns (the ridge classifier).
fn target_matrix(labels: Labels) -> (Vec<f64>, usize) {
    match labels {
        Labels::Values(v) => (v.to_vec(), 1),
        Labels::Classes { class, count } => {
            let mut y = vec![-1.0; class.len() * count];
            class.iter().enumerate().for_each(|(i, &c)| y[i * count + c] = 1.0);
            (y, count)
        }
    }
}

fn argmax(row: &[f64]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

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

struct LinearMap {
    weights: Vec<f64>,
    intercept: Vec<f64>,
    k: usize,
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

fn rows_where(x: &[f64], width: usize, keep: impl Fn(usize) -> bool) -> Vec<f64> {
    x.chunks_exact(width).enumerate().filter(|(i, _)| keep(*i)).flat_map(|(_, r)| r.iter().copied()).collect()
}

/// Ridge regression or ridge classifier; the strength minimises the cross-validated squared error
/// (regression) or maximises the cross-validated accuracy (classes).
fn ridge(z: &[f64], labels: Labels, zt: &[f64], d: usize) -> Fitted {
    let (y, k) = target_matrix(labels);
    let n = y.len() / k;
    let folds: Vec<Moments> = (0..FOLDS.min(n))
        .map(|f| Moments::of(&rows_where(z, d, |i| fold_of(i) == f), &rows_where(&y, k, |i| fold_of(i) == f), d, k))
        .collect();
    let all = folds.iter().skip(1).fold(folds[0].clone(), |acc, m| acc.combined(m, 1.0));
    let mut best = (f64::INFINITY, ALPHAS[ALPHAS.len() - 1]);
    for &alpha in &ALPHAS {
        let mut loss = 0.0;
        for (f, held) in folds.iter().enumerate() {
            let train = all.combined(held, -1.0);
            if train.n < 2 {
                continue;
            }
            let Ok(map) = train.solve(alpha, d, k) else {
                loss = f64::INFINITY;
                break;
            };
            let predicted = map.apply(&rows_where(z, d, |i| fold_of(i) == f), d);
            let truth = rows_where(&y, k, |i| fold_of(i) == f);
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
    let (alpha, map) = map.expect("the strongest penalty makes the system positive definite");
    let out = map.apply(zt, d);
    Fitted { predictions: decode(out, labels, k), chosen: format!("alpha={alpha:e}") }
}

/// Outputs to predictions: values as they are; classes by the largest score.
fn decode(out: Vec<f64>, labels: Labels, k: usize) -> Predictions {
    match labels {
        Labels::Values(_) => Predictions::Values(out),
        Labels::Classes { .. } => Predictions::Classes(out.chunks_exact(k).map(argmax).collect()),
    }
}

/// Softmax in place over each row of `k` scores; returns Σ −log p[true class] if `class` given.
fn softmax_rows(scores: &mut [f64], k: usize, class: Option<&[usize]>) -> f64 {
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

/// Multinomial logistic regression: mean cross-entropy + ‖W‖²/(2n) (scikit-learn's C = 1),
/// intercept unpenalised, minimised by L-BFGS for at most 100 iterations (scikit-learn's
/// defaults for `lbfgs`).
fn logistic(z: &[f64], class: &[usize], k: usize, zt: &[f64], d: usize) -> Fitted {
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
    let params = lbfgs(vec![0.0; width], objective, 100);
    let (w, b) = params.split_at(d * k);
    let nt = zt.len() / d;
    let mut out = vec![0.0; nt * k];
    gemm(&mut out, MatRef::row_major(zt, nt, d), MatRef::row_major(w, d, k), 1.0, false, true);
    add_bias(&mut out, b);
    Fitted { predictions: Predictions::Classes(out.chunks_exact(k).map(argmax).collect()), chosen: "C=1".into() }
}

/// Largest gradient component at which L-BFGS stops (scikit-learn's `tol` for `lbfgs`).
const GRADIENT_TOLERANCE: f64 = 1e-4;

/// Limited-memory BFGS (m = 10) with a backtracking Armijo line search; stops when every gradient
/// component is within [`GRADIENT_TOLERANCE`], progress stalls, or after `iterations`.
fn lbfgs(mut x: Vec<f64>, mut f: impl FnMut(&[f64], &mut [f64]) -> f64, iterations: usize) -> Vec<f64> {
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

const MLP_HIDDEN: usize = 256;
const MLP_BATCH: usize = 256;
const MLP_MAX_EPOCHS: usize = 200;
const MLP_PATIENCE: usize = 10;

/// A small MLP (d → 256 → 256 → outputs, ReLU), Adam (lr 1e-3), mini-batches of 256; a seeded
/// tenth of the training rows decides when to stop (no improvement for 10 epochs) and which
/// epoch's weights to keep. Regression targets are standardised; classes use softmax.
fn mlp(z: &[f64], labels: Labels, zt: &[f64], d: usize, seed: u64) -> Fitted {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed ^ 0x6d6c70);
    let n = labels.len();
    let (k, y_mean, y_scale) = match labels {
        Labels::Values(v) => {
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            (1, mean, var.sqrt().max(1e-12))
        }
        Labels::Classes { count, .. } => (count, 0.0, 1.0),
    };
    let order = permutation(n, &mut rng);
    let n_val = (n / 10).max(1).min(n - 1);
    let (val_rows, train_rows) = order.split_at(n_val);
    let mut train_rows = train_rows.to_vec();
    // The official MLP with one hidden layer: d → 256 → 256 → k, PyTorch's initialisation.
    let mut net = Network::Mlp(Mlp::init(&mut rng, d, MLP_HIDDEN, k, 1));
    let gather =
        |rows: &[usize]| -> Vec<f64> { rows.iter().flat_map(|&i| z[i * d..(i + 1) * d].iter().copied()).collect() };
    let z_val = gather(val_rows);
    let val_loss = |net: &Network| -> f64 {
        let mut out = net.trace(&z_val, val_rows.len(), None).output().to_vec();
        loss_and_gradient(&mut out, labels, val_rows, k, y_mean, y_scale)
    };
    let (mut best_loss, mut best_net, mut since) = (val_loss(&net), net.clone(), 0);
    // Plain Adam: AdamW without weight decay.
    let mut adam = AdamW { lr: 1e-3, weight_decay: 0.0, ..AdamW::satclip() };
    for _ in 0..MLP_MAX_EPOCHS {
        shuffle(&mut train_rows, &mut rng);
        for batch in train_rows.chunks(MLP_BATCH) {
            let x = gather(batch);
            let trace = net.trace(&x, batch.len(), None);
            let mut grad = trace.output().to_vec();
            loss_and_gradient(&mut grad, labels, batch, k, y_mean, y_scale);
            let gradients = Gradients { tensors: net.backward(&trace, &x, &grad) };
            let mut parameters = Vec::new();
            net.parameters_mut("", &mut parameters);
            adam.update(parameters, &gradients);
        }
        let loss = val_loss(&net);
        if loss < best_loss {
            (best_loss, best_net, since) = (loss, net.clone(), 0);
        } else {
            since += 1;
            if since >= MLP_PATIENCE {
                break;
            }
        }
    }
    let out = best_net.trace(zt, zt.len() / d, None).output().to_vec();
    let out = match labels {
        Labels::Values(_) => out.iter().map(|v| v * y_scale + y_mean).collect(),
        Labels::Classes { .. } => out,
    };
    Fitted { predictions: decode(out, labels, k), chosen: "hidden=256x2".into() }
}

/// Mean loss of `out` (`[rows × k]`) against the labels of `rows`; `out` becomes d loss / d out.
fn loss_and_gradient(out: &mut [f64], labels: Labels, rows: &[usize], k: usize, y_mean: f64, y_scale: f64) -> f64 {
    let m = rows.len() as f64;
    match labels {
        Labels::Values(v) => {
            let mut loss = 0.0;
            for (o, &i) in out.iter_mut().zip(rows) {
                let r = *o - (v[i] - y_mean) / y_scale;
                loss += r * r;
                *o = 2.0 * r / m;
            }
            loss / m
        }
        Labels::Classes { class, .. } => {
            let truth: Vec<usize> = rows.iter().map(|&i| class[i]).collect();
            let loss = softmax_rows(out, k, Some(&truth)) / m;
            for (row, &c) in out.chunks_exact_mut(k).zip(&truth) {
                row[c] -= 1.0;
                row.iter_mut().for_each(|v| *v /= m);
            }
            loss
        }
    }
}

/// For each query row, the training rows sorted by Euclidean distance, nearest `keep` of them.
fn neighbours(train: &[f64], queries: &[f64], d: usize, keep: usize) -> Vec<Vec<usize>> {
    let n = train.len() / d;
    let norms: Vec<f64> = train.chunks_exact(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
    let keep = keep.min(n);
    let mut result = Vec::with_capacity(queries.len() / d);
    let mut dots = Vec::new();
    for block in queries.chunks(512 * d) {
        let m = block.len() / d;
        dots.resize(m * n, 0.0);
        gemm(&mut dots, MatRef::row_major(block, m, d), MatRef::row_major(train, n, d).t(), 1.0, false, true);
        for row in dots.chunks_exact(n) {
            // ‖q − t‖² − ‖q‖² = ‖t‖² − 2 q·t ranks the same; ties go to the earlier row.
            let dist: Vec<f64> = row.iter().zip(&norms).map(|(qt, tt)| tt - 2.0 * qt).collect();
            let mut idx: Vec<usize> = (0..n).collect();
            let by = |a: &usize, b: &usize| dist[*a].total_cmp(&dist[*b]).then(a.cmp(b));
            if keep < n {
                idx.select_nth_unstable_by(keep - 1, by);
                idx.truncate(keep);
            }
            idx.sort_by(by);
            result.push(idx);
        }
    }
    result
}

/// Mean of the neighbours' values, or the most frequent class (ties: the class of the nearer
/// neighbour).
fn vote(near: &[usize], labels: Labels, k: usize) -> (f64, usize) {
    let near = &near[..k.min(near.len())];
    match labels {
        Labels::Values(v) => (near.iter().map(|&i| v[i]).sum::<f64>() / near.len() as f64, 0),
        Labels::Classes { class, .. } => {
            let mut counts: Vec<(usize, usize)> = Vec::new();
            for &i in near {
                match counts.iter_mut().find(|(c, _)| *c == class[i]) {
                    Some(entry) => entry.1 += 1,
                    None => counts.push((class[i], 1)),
                }
            }
            let best = counts.iter().fold(counts[0], |b, c| if c.1 > b.1 { *c } else { b });
            (0.0, best.0)
        }
    }
}

/// k nearest neighbours; k from [`NEIGHBOURS`] by cross-validated squared error or accuracy.
fn knn(z: &[f64], labels: Labels, zt: &[f64], d: usize) -> Fitted {
    let n = labels.len();
    let kmax = *NEIGHBOURS.last().expect("non-empty");
    let mut loss = vec![0.0; NEIGHBOURS.len()];
    for f in 0..FOLDS.min(n) {
        let train_rows: Vec<usize> = (0..n).filter(|&i| fold_of(i) != f).collect();
        let val_rows: Vec<usize> = (0..n).filter(|&i| fold_of(i) == f).collect();
        let near = neighbours(&rows_where(z, d, |i| fold_of(i) != f), &rows_where(z, d, |i| fold_of(i) == f), d, kmax);
        for (q, list) in val_rows.iter().zip(&near) {
            let list: Vec<usize> = list.iter().map(|&j| train_rows[j]).collect();
            for (slot, &k) in NEIGHBOURS.iter().enumerate() {
                let (value, class) = vote(&list, labels, k);
                loss[slot] += match labels {
                    Labels::Values(v) => (value - v[*q]).powi(2),
                    Labels::Classes { class: c, .. } => f64::from(u8::from(class != c[*q])),
                };
            }
        }
    }
    let slot = (0..NEIGHBOURS.len()).fold(0, |b, s| if loss[s] < loss[b] { s } else { b });
    let k = NEIGHBOURS[slot];
    let near = neighbours(z, zt, d, k);
    let predictions = match labels {
        Labels::Values(_) => Predictions::Values(near.iter().map(|l| vote(l, labels, k).0).collect()),
        Labels::Classes { .. } => Predictions::Classes(near.iter().map(|l| vote(l, labels, k).1).collect()),
    };
    Fitted { predictions, chosen: format!("k={k}") }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    fn grid(n: usize, d: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        (0..n * d).map(|_| rng.random_range(-2.0..2.0)).collect()
    }

    #[test]
    fn ridge_recovers_a_linear_function_and_prefers_weak_regularisation_for_it() {
        let d = 3;
        let x = grid(200, d, 1);
        let y: Vec<f64> = x.chunks_exact(d).map(|r| 2.0 * r[0] - r[1] + 0.5 * r[2] + 7.0).collect();
        let fit = fit_predict(Probe::Ridge, &x, Labels::Values(&y), &x, d, 0).unwrap();
        assert!(fit.chosen == "alpha=1e-3", "{}", fit.chosen);
        let Predictions::Values(p) = fit.predictions else { panic!() };
        p.iter().zip(&y).for_each(|(a, b)| assert!((a - b).abs() < 1e-2, "{a} vs {b}"));
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
            let fit = fit_predict(probe, &x, Labels::Classes { class: &class, count: 3 }, &xt, d, 0).unwrap();
            let Predictions::Classes(p) = fit.predictions else { panic!() };
            let m = crate::ClassificationMetrics::of(&class_t, &p);
            // The ridge classifier is linear in ±1 codes and cannot carve the corner exactly.
            let floor = if probe == Probe::Ridge { 0.75 } else { 0.9 };
            assert!(m.accuracy > floor, "{probe}: accuracy {} ({})", m.accuracy, fit.chosen);
            if probe == Probe::Logistic {
                continue;
            }
            let fit = fit_predict(probe, &x, Labels::Values(&y), &xt, d, 0).unwrap();
            let Predictions::Values(p) = fit.predictions else { panic!() };
            let r2 = crate::RegressionMetrics::of(&yt, &p).r2;
            // Ridge sees only linear features: sin(x0) is mostly linear, x1² is not.
            let floor = if probe == Probe::Ridge { 0.3 } else { 0.85 };
            assert!(r2 > floor, "{probe}: R² {r2} ({})", fit.chosen);
        }
        let err = fit_predict(Probe::Logistic, &x, Labels::Values(&y), &xt, d, 0).unwrap_err();
        assert!(err.contains("classifier"), "{err}");
    }

    #[test]
    fn knn_with_one_neighbour_returns_the_nearest_label() {
        let x = vec![0.0, 0.0, 10.0, 10.0, 0.0, 10.0];
        let near = neighbours(&x, &[9.0, 9.5, 0.1, -0.1], 2, 1);
        assert_eq!(near, vec![vec![1], vec![0]]);
    }

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
