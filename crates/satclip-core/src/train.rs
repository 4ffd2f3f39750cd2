//! The SatCLIP training step, written out: the location network's traced forward and backward
//! (in `network/`), the symmetric CLIP loss with its backward pass, and AdamW. Generic over f32 (speed) and f64 (reference).
//!
//! The image side enters as features: either final image embeddings (no head) or pooled backbone
//! features followed by the trainable projection head, as in the official model where only the
//! last linear layer of the image tower trains.

use rand::RngCore;
use rayon::prelude::*;

use crate::kernels::{gemm, Float, MatRef};
use crate::network::{Linear, Network, Parameter};

/// Rows of the N×N logits computed at a time: the loss never holds more than this many rows.
const LOSS_BLOCK_ROWS: usize = 256;

/// The trainable parts of SatCLIP: location network, optional image projection head, logit scale.
#[derive(Clone, Debug)]
pub struct ClipModel<T> {
    pub location: Network<T>,
    pub head: Option<Linear<T>>,
    /// The raw parameter s; logits are scaled by exp(s). Official initial value ln(1/0.07).
    pub logit_scale: T,
    logits: LogitsBuffer<T>,
}

impl<T> ClipModel<T> {
    pub fn new(location: Network<T>, head: Option<Linear<T>>, logit_scale: T) -> Self {
        Self { location, head, logit_scale, logits: LogitsBuffer::default() }
    }
}

/// The loss's N × N logits, kept from one step to the next: at 8192 rows they are 268 MB, more
/// than the allocator ever reuses, so each step would map them afresh and the kernel zero them
/// (7 % of a step's time in `perf`). A clone starts empty.
struct LogitsBuffer<T>(std::sync::Mutex<Vec<T>>);

impl<T> Default for LogitsBuffer<T> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(Vec::new()))
    }
}

impl<T> Clone for LogitsBuffer<T> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> std::fmt::Debug for LogitsBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogitsBuffer")
    }
}

/// Official initial logit scale parameter, ln(1/0.07).
pub const INITIAL_LOGIT_SCALE: f64 = 2.659_260_036_932_778;

/// One batch: `n` rows of location features (the positional encoding of each point) and image
/// features (pooled backbone features if the model has a head, else image embeddings).
pub struct ClipBatch<'a, T> {
    pub location_features: &'a [T],
    pub image_features: &'a [T],
    pub n: usize,
}

/// Gradients in the order of [`ClipModel::parameters_mut`].
#[derive(Clone, Debug)]
pub struct Gradients<T> {
    pub tensors: Vec<Vec<T>>,
}

impl<T: Float> Gradients<T> {
    /// `self += weight · other`, tensor by tensor: one step's gradient from several micro-batches.
    pub fn add_scaled(&mut self, other: &Self, weight: T) {
        for (mine, theirs) in self.tensors.iter_mut().zip(&other.tensors) {
            mine.iter_mut().zip(theirs).for_each(|(m, t)| *m += weight * *t);
        }
    }
}

#[derive(Clone, Debug)]
pub struct StepOutput<T> {
    pub loss: f64,
    pub gradients: Gradients<T>,
}

impl<T: Float> ClipModel<T> {
    /// Parameters in a fixed order: location network (forward order), head, logit scale.
    pub fn parameters_mut(&mut self) -> Vec<Parameter<'_, T>> {
        let mut out = Vec::new();
        self.location.parameters_mut("location.nnet.", &mut out);
        if let Some(head) = &mut self.head {
            head.parameters_mut("visual.head.", &mut out);
        }
        out.push(Parameter {
            name: "logit_scale".into(),
            values: std::slice::from_mut(&mut self.logit_scale),
            decay: false,
        });
        out
    }

    /// Loss and gradients for one batch. With `dropout`, the SIREN runs in training mode.
    pub fn step(&self, batch: &ClipBatch<T>, dropout: Option<&mut dyn RngCore>) -> StepOutput<T> {
        let n = batch.n;
        let embed_dim = self.location.output_dim();

        // Location branch, keeping what the backward pass needs.
        let trace = self.location.trace(batch.location_features, n, dropout);
        // Image branch.
        let image = match &self.head {
            Some(head) => head.forward(batch.image_features, n, false),
            None => batch.image_features.to_vec(),
        };
        assert_eq!(image.len(), n * embed_dim, "image features do not match the embedding width");

        let (image_unit, image_norm) = normalize_rows(&image, embed_dim);
        let (location_unit, location_norm) = normalize_rows(trace.output(), embed_dim);
        let scale = self.logit_scale.exp();
        let mut logits = self.logits.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let loss = clip_loss_in(&image_unit, &location_unit, n, embed_dim, scale, LOGITS_MEMORY_BUDGET, &mut logits);
        drop(logits);

        let d_image = normalize_rows_backward(&image_unit, &image_norm, &loss.d_image, embed_dim);
        let d_location = normalize_rows_backward(&location_unit, &location_norm, &loss.d_location, embed_dim);

        let mut tensors = self.location.backward(&trace, batch.location_features, &d_location);
        if let Some(head) = &self.head {
            head.push_gradients(head.backward_parameters(batch.image_features, &d_image, n), &mut tensors);
        }
        tensors.push(vec![T::from_f64(loss.d_logit_scale)]);
        StepOutput { loss: loss.value, gradients: Gradients { tensors } }
    }
}

/// Rows divided by their L2 norms (no epsilon, as the official code); returns the norms too.
fn normalize_rows<T: Float>(x: &[T], d: usize) -> (Vec<T>, Vec<T>) {
    let mut unit = x.to_vec();
    let norms = unit
        .chunks_exact_mut(d)
        .map(|row| {
            let norm = row.iter().map(|v| *v * *v).sum::<T>().sqrt();
            row.iter_mut().for_each(|v| *v = *v / norm);
            norm
        })
        .collect();
    (unit, norms)
}

/// For u = x/‖x‖: dx = (du − u (u·du)) / ‖x‖.
fn normalize_rows_backward<T: Float>(unit: &[T], norms: &[T], d_unit: &[T], d: usize) -> Vec<T> {
    let mut dx = d_unit.to_vec();
    for ((row, u), norm) in dx.chunks_exact_mut(d).zip(unit.chunks_exact(d)).zip(norms) {
        let dot: T = row.iter().zip(u).map(|(a, b)| *a * *b).sum();
        row.iter_mut().zip(u).for_each(|(g, uv)| *g = (*g - *uv * dot) / *norm);
    }
    dx
}

pub struct ClipLoss<T> {
    pub value: f64,
    pub d_image: Vec<T>,
    pub d_location: Vec<T>,
    /// d loss / d s for logits = exp(s) · image · locationᵀ.
    pub d_logit_scale: f64,
}

/// Logits are kept between the two passes while n² of them fit in this many bytes (n = 8192 in
/// f32 takes 256 MiB); beyond it each block is recomputed, trading a fourth matrix product for
/// memory that grows only with n.
pub const LOGITS_MEMORY_BUDGET: usize = 1 << 30;
/// Below this logit scale, exp(logit − scale) cannot underflow f32 (|logit| ≤ scale for unit
/// rows), so the softmaxes can use the scale as a fixed shift instead of tracking maxima.
const FIXED_SHIFT_MAX_SCALE: f64 = 40.0;

/// Symmetric CLIP cross-entropy on unit rows, computed in row blocks in parallel. Pass 1 forms
/// the logits and their row and column log-sum-exps; pass 2 turns each block into
/// dlogits = (softmax_row + softmax_col)/(2n) − I/n and multiplies it out. The n×n logits are kept
/// between the passes within [`LOGITS_MEMORY_BUDGET`], recomputed otherwise.
pub fn clip_loss<T: Float>(image: &[T], location: &[T], n: usize, d: usize, scale: T) -> ClipLoss<T> {
    clip_loss_with_budget(image, location, n, d, scale, LOGITS_MEMORY_BUDGET)
}

pub fn clip_loss_with_budget<T: Float>(
    image: &[T],
    location: &[T],
    n: usize,
    d: usize,
    scale: T,
    memory_budget: usize,
) -> ClipLoss<T> {
    clip_loss_in(image, location, n, d, scale, memory_budget, &mut Vec::new())
}

/// [`clip_loss_with_budget`], storing the logits (when they fit the budget) in `buffer`, which
/// keeps its allocation for the next call. Its contents are never read before being written.
fn clip_loss_in<T: Float>(
    image: &[T],
    location: &[T],
    n: usize,
    d: usize,
    scale: T,
    memory_budget: usize,
    buffer: &mut Vec<T>,
) -> ClipLoss<T> {
    let blocks: Vec<usize> = (0..n).step_by(LOSS_BLOCK_ROWS).collect();
    let workers = rayon::current_num_threads().max(1);
    let per_worker = blocks.len().div_ceil(workers).max(1);
    let worker_rows = per_worker * LOSS_BLOCK_ROWS;
    let location_t = MatRef::row_major(location, n, d).t();
    let compute_block = |start: usize, rows: usize, out: &mut [T]| {
        gemm(out, MatRef::row_major(&image[start * d..(start + rows) * d], rows, d), location_t, scale, false, false);
    };
    let stored: &mut [T] = match n * n * std::mem::size_of::<T>() <= memory_budget {
        true => {
            buffer.resize(n * n, T::ZERO);
            buffer
        }
        false => &mut [],
    };
    let fixed_shift = (scale.to_f64() <= FIXED_SHIFT_MAX_SCALE).then_some(scale);
    let neg_inf = T::from_f64(f64::NEG_INFINITY);

    // Pass 1: row LSEs, and per-worker column (max, Σ exp(l − max)) merged afterwards.
    let mut row_lse = vec![T::ZERO; n];
    let partials: Vec<(Vec<T>, Vec<T>)> = blocks
        .par_chunks(per_worker)
        .zip(row_lse.par_chunks_mut(worker_rows))
        .zip(worker_slots(stored, worker_rows * n, blocks.len().div_ceil(per_worker)))
        .map(|((starts, lse_part), mut keep)| {
            let col_start = fixed_shift.unwrap_or(neg_inf);
            let (mut col_max, mut col_sum) = (vec![col_start; n], vec![T::ZERO; n]);
            let (mut scratch, mut tmp) = (Vec::new(), vec![T::ZERO; n]);
            for (b, &start) in starts.iter().enumerate() {
                let rows = LOSS_BLOCK_ROWS.min(n - start);
                let (logits, _) = block_slot(keep.as_deref_mut(), &mut scratch, b, rows, n);
                compute_block(start, rows, logits);
                for (r, row) in logits.chunks_exact(n).enumerate() {
                    if fixed_shift.is_none() {
                        // Rescale the running column sums where a new maximum appears.
                        for j in 0..n {
                            if row[j] > col_max[j] {
                                col_sum[j] = col_sum[j] * (col_max[j] - row[j]).exp();
                                col_max[j] = row[j];
                            }
                        }
                    }
                    tmp.iter_mut().zip(row).zip(&col_max).for_each(|((t, l), m)| *t = *l - *m);
                    T::exp_shifted(&mut tmp, T::ZERO);
                    col_sum.iter_mut().zip(&tmp).for_each(|(s, e)| *s += *e);
                    let shift = fixed_shift.unwrap_or_else(|| row.iter().fold(neg_inf, |m, v| m.max(*v)));
                    tmp.copy_from_slice(row);
                    T::exp_shifted(&mut tmp, shift);
                    lse_part[b * LOSS_BLOCK_ROWS + r] = shift + lane_sum(&tmp).ln();
                }
            }
            (col_max, col_sum)
        })
        .collect();
    let mut col_max = vec![neg_inf; n];
    for (m, _) in &partials {
        col_max.iter_mut().zip(m).for_each(|(a, b)| *a = a.max(*b));
    }
    let mut col_sum = vec![T::ZERO; n];
    for (m, s) in &partials {
        for j in 0..n {
            col_sum[j] += s[j] * (m[j] - col_max[j]).exp();
        }
    }
    let col_lse: Vec<T> = col_max.iter().zip(&col_sum).map(|(m, s)| *m + s.ln()).collect();
    let diagonal: Vec<T> = (0..n)
        .map(|i| {
            scale * image[i * d..(i + 1) * d].iter().zip(&location[i * d..(i + 1) * d]).map(|(a, b)| *a * *b).sum::<T>()
        })
        .collect();
    let value =
        (0..n).map(|i| (row_lse[i] + col_lse[i] - diagonal[i] - diagonal[i]).to_f64()).sum::<f64>() / (2.0 * n as f64);

    // Pass 2: dlogits, then d image = scale · dlogits · location, d location = scale · dlogitsᵀ · image.
    let inv_2n = T::from_f64(0.5 / n as f64);
    let inv_n = T::from_f64(1.0 / n as f64);
    let mut d_image = vec![T::ZERO; n * d];
    let (d_location, d_scale) = blocks
        .par_chunks(per_worker)
        .zip(d_image.par_chunks_mut(worker_rows * d))
        .zip(worker_slots(stored, worker_rows * n, blocks.len().div_ceil(per_worker)))
        .map(|((starts, d_image_part), mut keep)| {
            let mut d_loc = vec![T::ZERO; n * d];
            let mut d_scale = 0.0f64;
            let (mut scratch, mut p_col, mut p_row) = (Vec::new(), vec![T::ZERO; n], vec![T::ZERO; n]);
            for (b, &start) in starts.iter().enumerate() {
                let rows = LOSS_BLOCK_ROWS.min(n - start);
                let (logits, fresh) = block_slot(keep.as_deref_mut(), &mut scratch, b, rows, n);
                if fresh {
                    compute_block(start, rows, logits);
                }
                for (r, row) in logits.chunks_exact_mut(n).enumerate() {
                    let i = start + r;
                    p_col.iter_mut().zip(row.iter()).zip(&col_lse).for_each(|((p, l), c)| *p = *l - *c);
                    T::exp_shifted(&mut p_col, T::ZERO);
                    p_row.copy_from_slice(row);
                    T::exp_shifted(&mut p_row, row_lse[i]);
                    // d loss/d s = Σ dlogits ⊙ logits, since logits = exp(s) · cosines.
                    // dlogits = (p_row + p_col) / 2n, in place of the logits; the scale's gradient
                    // sums them times the logits, in lanes (whole chunks of them vectorise).
                    let mut acc = [T::ZERO; LANES];
                    let dlogit = |(l, (r, c)): (&mut T, (&T, &T)), acc: &mut T| {
                        let g = (*r + *c) * inv_2n;
                        *acc += g * *l;
                        *l = g;
                    };
                    let mut lanes =
                        row.chunks_exact_mut(LANES).zip(p_row.chunks_exact(LANES).zip(p_col.chunks_exact(LANES)));
                    for (l, (r, c)) in &mut lanes {
                        for (k, acc) in acc.iter_mut().enumerate() {
                            dlogit((&mut l[k], (&r[k], &c[k])), acc);
                        }
                    }
                    let tail = n - n % LANES;
                    for (l, rc) in row[tail..].iter_mut().zip(p_row[tail..].iter().zip(&p_col[tail..])) {
                        dlogit((l, rc), &mut acc[0]);
                    }
                    row[i] -= inv_n;
                    d_scale += (lane_sum(&acc) - inv_n * diagonal[i]).to_f64();
                }
                let local = b * LOSS_BLOCK_ROWS * d;
                let dlogits = MatRef::row_major(&logits[..], rows, n);
                gemm(
                    &mut d_image_part[local..local + rows * d],
                    dlogits,
                    MatRef::row_major(location, n, d),
                    scale,
                    false,
                    false,
                );
                let image_rows = MatRef::row_major(&image[start * d..(start + rows) * d], rows, d);
                gemm(&mut d_loc, dlogits.t(), image_rows, scale, true, false);
            }
            (d_loc, d_scale)
        })
        .collect::<Vec<_>>()
        .into_iter()
        // Summed in worker order, so that the result does not depend on thread scheduling.
        .fold((vec![T::ZERO; n * d], 0.0), |(mut a, sa), (b, sb)| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += *y);
            (a, sa + sb)
        });
    ClipLoss { value, d_image, d_location, d_logit_scale: d_scale }
}

/// Independent partial sums of a reduction: a single running sum is one dependent add per element
/// (the loss's two sums over its 8192² logits took 6 % of a training step that way), while
/// `LANES` of them vectorise.
const LANES: usize = 16;

/// Σ x, in `LANES` interleaved partial sums.
fn lane_sum<T: Float>(x: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        acc.iter_mut().zip(chunk).for_each(|(a, v)| *a += *v);
    }
    acc.iter_mut().zip(chunks.remainder()).for_each(|(a, v)| *a += *v);
    acc.iter().copied().sum()
}

/// Where block `b` (`rows` rows) of a worker's logits lives: its part of the stored matrix, or the
/// scratch buffer, in which case the flag says the logits must be computed afresh.
fn block_slot<'a, T: Float>(
    keep: Option<&'a mut [T]>,
    scratch: &'a mut Vec<T>,
    b: usize,
    rows: usize,
    n: usize,
) -> (&'a mut [T], bool) {
    match keep {
        Some(part) => (&mut part[b * LOSS_BLOCK_ROWS * n..(b * LOSS_BLOCK_ROWS + rows) * n], false),
        None => {
            scratch.resize(rows * n, T::ZERO);
            (&mut scratch[..], true)
        }
    }
}

/// One mutable slice of the stored logits per worker, or `None` each when they are not stored.
fn worker_slots<T: Send>(stored: &mut [T], chunk: usize, workers: usize) -> rayon::vec::IntoIter<Option<&mut [T]>> {
    let slots: Vec<Option<&mut [T]>> = if stored.is_empty() {
        (0..workers).map(|_| None).collect()
    } else {
        stored.chunks_mut(chunk).map(Some).collect()
    };
    slots.into_par_iter()
}

/// AdamW as `torch.optim.AdamW`: decoupled weight decay, bias-corrected moments.
#[derive(Clone, Debug)]
pub struct AdamW<T> {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub step: u64,
    pub exp_avg: Vec<Vec<T>>,
    pub exp_avg_sq: Vec<Vec<T>>,
}

impl<T: Float> AdamW<T> {
    /// The official settings: lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn satclip() -> Self {
        Self {
            lr: 1e-4,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            step: 0,
            exp_avg: vec![],
            exp_avg_sq: vec![],
        }
    }

    pub fn update(&mut self, parameters: Vec<Parameter<'_, T>>, gradients: &Gradients<T>) {
        assert_eq!(parameters.len(), gradients.tensors.len(), "one gradient per parameter");
        if self.exp_avg.is_empty() {
            self.exp_avg = gradients.tensors.iter().map(|g| vec![T::ZERO; g.len()]).collect();
            self.exp_avg_sq = self.exp_avg.clone();
        }
        self.step += 1;
        let (b1, b2) = self.betas;
        let bias1 = 1.0 - b1.powi(self.step as i32);
        let bias2 = 1.0 - b2.powi(self.step as i32);
        let step_size = T::from_f64(self.lr / bias1);
        let bias2_sqrt = T::from_f64(bias2.sqrt());
        let (b1, b2, eps) = (T::from_f64(b1), T::from_f64(b2), T::from_f64(self.eps));
        let (one_b1, one_b2) = (T::ONE - b1, T::ONE - b2);
        for (((p, g), m), v) in
            parameters.into_iter().zip(&gradients.tensors).zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq)
        {
            let decay = T::from_f64(if p.decay { 1.0 - self.lr * self.weight_decay } else { 1.0 });
            p.values
                .par_iter_mut()
                .zip(g.par_iter())
                .zip(m.par_iter_mut())
                .zip(v.par_iter_mut())
                .with_min_len(4096)
                .for_each(|(((p, g), m), v)| {
                    *p *= decay;
                    *m = *m * b1 + *g * one_b1;
                    *v = *v * b2 + *g * *g * one_b2;
                    *p -= step_size * *m / ((*v).sqrt() / bias2_sqrt + eps);
                });
        }
    }
}
