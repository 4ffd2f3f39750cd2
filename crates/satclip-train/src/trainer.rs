//! The training loop: the official objective and optimiser on cached image features, with atomic
//! checkpoints and a resume that continues exactly where the run stopped. Every random stream
//! (epoch order, coordinate jitter, view choice, dropout) is derived from (seed, epoch or step),
//! so a resumed run draws the same numbers as an uninterrupted one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use satclip_core::network::{Linear, Network};
use satclip_core::train::{AdamW, ClipBatch, ClipModel, Gradients, INITIAL_LOGIT_SCALE};
use satclip_core::{Hyperparameters, LocationEncoder, PositionalEncoding, Tensor, TensorMap};
use satclip_io::error::Error;
use satclip_io::native::{write_safetensors, TensorBytes};
use serde::{Deserialize, Serialize};

use crate::cache::FeatureCache;

/// What stops a run: a file (named), or hyper-parameters that describe no valid model (they come
/// from the configuration and flags, not from any file).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    File(#[from] Error),
    #[error("the model configuration: {0}")]
    Config(#[from] satclip_core::Error),
}

type Result<T, E = TrainError> = std::result::Result<T, E>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Feature cache made by `satclip featurize`.
    pub cache: PathBuf,
    /// Caches of the same tiles whose features are appended to `cache`'s, row by row (e.g. the
    /// same points cut at a coarser scale).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_caches: Vec<PathBuf>,
    /// Run directory: checkpoints, metrics.jsonl, the exported model.
    pub out: PathBuf,
    /// The location encoder (official hyper-parameter names).
    pub model: Hyperparameters,
    pub batch_size: usize,
    /// Splits each step's batch into contrastive groups of this many examples (negatives only
    /// within a group) whose gradients are averaged into the step, as the official recipe's
    /// 16 accumulated micro-batches of 512. Unset: the whole batch is one group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub micro_batch_size: Option<usize>,
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub seed: u64,
    pub val_fraction: f64,
    /// Coordinates move by U[0, jitter) degrees in lon and lat, as the official transform.
    pub jitter_degrees: f64,
    /// SIREN dropout (p = 0.5) in training, as the official model.
    pub dropout: bool,
    /// Steps between checkpoints (one is always written at the end).
    pub checkpoint_every: usize,
    /// Stop after this many steps in total (for tests and time-boxed runs); resume continues.
    pub max_steps: Option<u64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            cache: PathBuf::from("cache"),
            extra_caches: Vec::new(),
            out: PathBuf::from("run"),
            model: Hyperparameters::default(),
            batch_size: 8192,
            micro_batch_size: None,
            epochs: 500,
            learning_rate: 1e-4,
            weight_decay: 0.01,
            seed: 0,
            val_fraction: 0.1,
            jitter_degrees: 0.01,
            dropout: true,
            checkpoint_every: 100,
            max_steps: None,
        }
    }
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub step: u64,
    pub epoch: usize,
    pub train_loss: f64,
    /// Present on the last step of an epoch.
    pub val_loss: Option<f64>,
    pub logit_scale: f64,
    pub lr: f64,
    pub samples_per_s: f64,
    /// Steps the whole run takes (epochs × steps per epoch).
    #[serde(default)]
    pub total_steps: u64,
}

pub struct Outcome {
    pub steps: u64,
    pub finished: bool,
    pub model_dir: Option<PathBuf>,
}

const CHECKPOINT_DIR: &str = "checkpoint";
const LATEST: &str = "latest.json";
const METRICS: &str = "metrics.jsonl";

#[derive(Serialize, Deserialize)]
struct Latest {
    file: String,
    step: u64,
}

fn stream(seed: u64, a: u64, b: u64) -> Pcg64 {
    Pcg64::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ a.wrapping_mul(0xd1b5_4a32_d192_ed03) ^ b)
}

/// Training and validation rows: a seeded shuffle, the first `val_fraction` for validation.
pub fn split(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let order = satclip_core::random::permutation(n, &mut stream(seed, u64::MAX, 0));
    let n_val = ((n as f64) * val_fraction).round() as usize;
    let val = order[..n_val].to_vec();
    (order[n_val..].to_vec(), val)
}

struct Batch {
    features: Vec<f32>,
    images: Vec<f32>,
    n: usize,
}

/// Points encoded at once when a batch is made.
const ENCODE_CHUNK: usize = 256;

fn make_batch(
    cache: &FeatureCache,
    posenc: &PositionalEncoding,
    rows: &[usize],
    jitter: Option<(&mut Pcg64, f64)>,
    mut view_rng: Option<&mut Pcg64>,
) -> Batch {
    let din = posenc.dim();
    let mut features = Vec::with_capacity(rows.len() * din);
    let mut images = Vec::with_capacity(rows.len() * cache.dim());
    let mut jitter = jitter;
    let mut coords = Vec::with_capacity(rows.len());
    for &row in rows {
        let (mut lon, mut lat) = (cache.lon[row], cache.lat[row]);
        if let Some((rng, amount)) = jitter.as_mut() {
            lon += rng.random::<f64>() * *amount;
            lat += rng.random::<f64>() * *amount;
        }
        // The official step passes coordinates through f32 before the f64 encoder.
        coords.push([(lon as f32) as f64, ((lat as f32) as f64).clamp(-90.0, 90.0)]);
        let view = view_rng.as_deref_mut().map_or(0, |r| r.random_range(0..cache.meta.views));
        cache.append_features(row, view, &mut images);
    }
    // Several points at a time share the harmonics' vector lanes; in chunks, so that the f64
    // features of a large batch at L = 40 are never all held at once.
    let mut point_features = vec![0f64; ENCODE_CHUNK.min(rows.len()) * din];
    for chunk in coords.chunks(ENCODE_CHUNK) {
        let out = &mut point_features[..chunk.len() * din];
        posenc.encode_batch(chunk, out);
        features.extend(out.iter().map(|v| *v as f32));
    }
    Batch { features, images, n: rows.len() }
}

/// Loss and gradients of one step on `batch` split into contrastive groups of `group` examples
/// ([`groups`]): each group's loss has only its own negatives, and the step's loss and gradients
/// are the groups' means weighted by their sizes. One group is exactly [`ClipModel::step`].
pub fn grouped_step(
    model: &ClipModel<f32>,
    batch: &ClipBatch<'_, f32>,
    group: usize,
    mut dropout: Option<&mut dyn rand::RngCore>,
) -> (f64, Gradients<f32>) {
    let (din, dimg) = (batch.location_features.len() / batch.n, batch.image_features.len() / batch.n);
    let (mut loss, mut gradients) = (0.0, None::<Gradients<f32>>);
    for (start, n) in groups(batch.n, group) {
        let part = ClipBatch {
            location_features: &batch.location_features[start * din..(start + n) * din],
            image_features: &batch.image_features[start * dimg..(start + n) * dimg],
            n,
        };
        let out = model.step(&part, dropout.as_mut().map(|r| &mut **r as &mut dyn rand::RngCore));
        if n == batch.n {
            return (out.loss, out.gradients);
        }
        let weight = n as f64 / batch.n as f64;
        loss += out.loss * weight;
        match gradients.as_mut() {
            None => {
                let mut g = out.gradients;
                g.tensors.iter_mut().flatten().for_each(|v| *v *= weight as f32);
                gradients = Some(g);
            }
            Some(g) => g.add_scaled(&out.gradients, weight as f32),
        }
    }
    (loss, gradients.expect("a batch of two or more has a group"))
}

/// (start, length) of the contrastive groups of a batch of `n`: groups of `size`, the last one
/// joined to the one before when it would hold fewer than two examples (a lone example has no
/// negative).
fn groups(n: usize, size: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = (0..n).step_by(size).map(|s| (s, size.min(n - s))).collect();
    if out.len() > 1 && out.last().is_some_and(|&(_, len)| len < 2) {
        let (_, len) = out.pop().expect("checked");
        out.last_mut().expect("checked").1 += len;
    }
    out
}

/// A freshly initialised model for `config`: the location network and, for pooled backbone
/// features of width `image_dim`, the image projection head.
pub fn init_model(config: &TrainConfig, input_dim: usize, image_dim: usize) -> Result<ClipModel<f32>> {
    let mut rng = stream(config.seed, 0, 1);
    let hp = &config.model;
    let network = Network::init(hp, input_dim, &mut rng)?;
    let head = Linear::torch_default(&mut rng, image_dim, hp.embed_dim, true).cast::<f32>();
    Ok(ClipModel::new(network.cast(), Some(head), INITIAL_LOGIT_SCALE as f32))
}

/// Mean loss over `rows` in contrastive groups of `batch` (a run's validation loss), without
/// dropout, jitter or augmentation.
pub fn validation_loss(
    model: &ClipModel<f32>,
    cache: &FeatureCache,
    posenc: &PositionalEncoding,
    rows: &[usize],
    batch: usize,
) -> f64 {
    let mut total = 0.0;
    let mut count = 0usize;
    // The contrastive groups of a step: a lone last row joins the chunk before it, as in training.
    for (start, len) in groups(rows.len(), batch.max(2)) {
        let chunk = &rows[start..start + len];
        if len < 2 {
            continue;
        }
        let b = make_batch(cache, posenc, chunk, None, None);
        let out = model.step(&ClipBatch { location_features: &b.features, image_features: &b.images, n: b.n }, None);
        total += out.loss * chunk.len() as f64;
        count += chunk.len();
    }
    if count == 0 {
        f64::NAN
    } else {
        total / count as f64
    }
}

/// The step a run in `config.out` stopped at, if it holds one, after checking that it was started
/// with the same configuration: a run continues only what it would have done uninterrupted.
/// `epochs` and `max_steps` may change (to train longer or stop elsewhere); anything else that
/// differs is an error naming it.
pub fn resume_point(config: &TrainConfig) -> Result<Option<u64>> {
    let latest_path = config.out.join(CHECKPOINT_DIR).join(LATEST);
    let Ok(latest) = std::fs::read(&latest_path) else { return Ok(None) };
    let latest: Latest = serde_json::from_slice(&latest).map_err(|e| Error::format(&latest_path, e.to_string()))?;
    let config_path = config.out.join("config.json");
    let text = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let stored: TrainConfig = serde_json::from_slice(&text).map_err(|e| Error::format(&config_path, e.to_string()))?;
    let comparable = |c: &TrainConfig| {
        let mut value = serde_json::to_value(TrainConfig { epochs: 0, max_steps: None, ..c.clone() }).expect("json");
        value.as_object_mut().expect("a struct").remove("out");
        value
    };
    let (was, now) = (comparable(&stored), comparable(config));
    if was != now {
        let differ: Vec<String> = flatten("", &was)
            .into_iter()
            .zip(flatten("", &now))
            .filter(|(a, b)| a != b)
            .map(|((key, a), (_, b))| format!("{key}: {a} in the run, {b} now"))
            .collect();
        return Err(Error::format(
            &config.out,
            format!(
                "holds a run stopped at step {} with another configuration ({}); pass another --out for a new \
                 run, or the same options to resume it",
                latest.step,
                differ.join("; ")
            ),
        )
        .into());
    }
    Ok(Some(latest.step))
}

/// `(dotted key, value)` of every leaf of a JSON object, in key order.
fn flatten(prefix: &str, value: &serde_json::Value) -> Vec<(String, String)> {
    match value {
        serde_json::Value::Object(map) => map.iter().flat_map(|(k, v)| flatten(&format!("{prefix}{k}."), v)).collect(),
        leaf => vec![(prefix.trim_end_matches('.').to_string(), leaf.to_string())],
    }
}

/// Trains (or resumes, see [`resume_point`]) the run described by `config`. `on_metrics` sees
/// every step's metrics.
pub fn train(config: &TrainConfig, on_metrics: &mut dyn FnMut(&Metrics)) -> Result<Outcome> {
    resume_point(config)?;
    let cache = FeatureCache::open_stacked(&config.cache, &config.extra_caches)?;
    let posenc = PositionalEncoding::from_hyperparameters(&config.model)?;
    let (train_rows, val_rows) = split(cache.len(), config.val_fraction, config.seed);
    if train_rows.len() < 2 {
        return Err(Error::format(&config.cache, "fewer than two training samples").into());
    }
    let batch = config.batch_size.clamp(2, train_rows.len());
    let group = config.micro_batch_size.map_or(batch, |m| m.clamp(2, batch));
    let steps_per_epoch = train_rows.len().div_ceil(batch) as u64;
    std::fs::create_dir_all(config.out.join(CHECKPOINT_DIR)).map_err(|e| Error::io(&config.out, e))?;
    satclip_io::atomic::write_bytes(
        &config.out.join("config.json"),
        &serde_json::to_vec_pretty(config).expect("json"),
    )?;

    let mut model = init_model(config, posenc.dim(), cache.dim())?;
    let mut optimizer =
        AdamW::<f32> { lr: config.learning_rate, weight_decay: config.weight_decay, ..AdamW::satclip() };
    let mut step = 0u64;
    if let Some(resumed) = load_checkpoint(&config.out, &mut model, &mut optimizer)? {
        step = resumed;
    }
    truncate_metrics(&config.out.join(METRICS), step)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.out.join(METRICS))
        .map_err(|e| Error::io(&config.out, e))?;

    let total_steps = steps_per_epoch * config.epochs as u64;
    let mut epoch_loss = (0.0, 0usize);
    while step < total_steps {
        if config.max_steps.is_some_and(|m| step >= m) {
            save_checkpoint(&config.out, &mut model, &optimizer, step)?;
            return Ok(Outcome { steps: step, finished: false, model_dir: None });
        }
        let epoch = (step / steps_per_epoch) as usize;
        let in_epoch = (step % steps_per_epoch) as usize;
        if in_epoch == 0 {
            epoch_loss = (0.0, 0);
        }
        let mut order = train_rows.clone();
        satclip_core::random::shuffle(&mut order, &mut stream(config.seed, 1, epoch as u64));
        let rows = &order[in_epoch * batch..((in_epoch + 1) * batch).min(order.len())];
        let started = Instant::now();
        let mut jitter_rng = stream(config.seed, 2, step);
        let mut view_rng = stream(config.seed, 3, step);
        let mut dropout_rng = stream(config.seed, 4, step);
        let b = make_batch(&cache, &posenc, rows, Some((&mut jitter_rng, config.jitter_degrees)), Some(&mut view_rng));
        let clip = ClipBatch { location_features: &b.features, image_features: &b.images, n: b.n };
        let (loss, gradients) =
            grouped_step(&model, &clip, group, config.dropout.then_some(&mut dropout_rng as &mut dyn rand::RngCore));
        optimizer.update(model.parameters_mut(), &gradients);
        step += 1;
        epoch_loss = (epoch_loss.0 + loss * b.n as f64, epoch_loss.1 + b.n);
        let end_of_epoch = step.is_multiple_of(steps_per_epoch);
        let val_loss =
            (end_of_epoch && !val_rows.is_empty()).then(|| validation_loss(&model, &cache, &posenc, &val_rows, group));
        let metrics = Metrics {
            step,
            epoch,
            train_loss: loss,
            val_loss,
            logit_scale: (model.logit_scale as f64).exp(),
            lr: config.learning_rate,
            samples_per_s: b.n as f64 / started.elapsed().as_secs_f64(),
            total_steps,
        };
        writeln!(log, "{}", serde_json::to_string(&metrics).expect("json")).map_err(|e| Error::io(&config.out, e))?;
        on_metrics(&metrics);
        if step.is_multiple_of(config.checkpoint_every.max(1) as u64) {
            save_checkpoint(&config.out, &mut model, &optimizer, step)?;
        }
    }
    save_checkpoint(&config.out, &mut model, &optimizer, step)?;
    let model_dir = config.out.join("model");
    export(&model, &config.model, &model_dir, &config.out.join("model-official-keys.safetensors"))?;
    Ok(Outcome { steps: step, finished: true, model_dir: Some(model_dir) })
}

/// Drops metric lines after `step`, so that a resumed run's log continues the interrupted one.
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> =
        text.lines().filter(|l| serde_json::from_str::<Metrics>(l).is_ok_and(|m| m.step <= step)).collect();
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    Ok(satclip_io::atomic::write_bytes(path, body.as_bytes())?)
}

/// Writes parameters and optimiser moments to a new file, then points `latest.json` at it (an
/// atomic rename), then removes the previous file: a kill at any moment leaves a whole checkpoint.
fn save_checkpoint(out: &Path, model: &mut ClipModel<f32>, optimizer: &AdamW<f32>, step: u64) -> Result<()> {
    let dir = out.join(CHECKPOINT_DIR);
    let mut tensors = Vec::new();
    for (i, p) in model.parameters_mut().into_iter().enumerate() {
        let len = p.values.len();
        tensors.push(TensorBytes::f32(p.name.clone(), vec![len], p.values));
        if let (Some(m), Some(v)) = (optimizer.exp_avg.get(i), optimizer.exp_avg_sq.get(i)) {
            tensors.push(TensorBytes::f32(format!("adam.exp_avg.{}", p.name), vec![len], m));
            tensors.push(TensorBytes::f32(format!("adam.exp_avg_sq.{}", p.name), vec![len], v));
        }
    }
    let meta =
        HashMap::from([("step".to_string(), step.to_string()), ("adam_step".to_string(), optimizer.step.to_string())]);
    let file = format!("state-{step:09}.safetensors");
    write_safetensors(&dir.join(&file), &tensors, meta)?;
    let previous: Option<Latest> = std::fs::read(dir.join(LATEST)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    satclip_io::atomic::write_bytes(
        &dir.join(LATEST),
        &serde_json::to_vec(&Latest { file: file.clone(), step }).expect("json"),
    )?;
    if let Some(prev) = previous.filter(|p| p.file != file) {
        let _ = std::fs::remove_file(dir.join(prev.file));
    }
    Ok(())
}

/// Restores the latest checkpoint of `out`, if any; returns its step.
fn load_checkpoint(out: &Path, model: &mut ClipModel<f32>, optimizer: &mut AdamW<f32>) -> Result<Option<u64>> {
    let dir = out.join(CHECKPOINT_DIR);
    let Ok(latest) = std::fs::read(dir.join(LATEST)) else { return Ok(None) };
    let latest: Latest =
        serde_json::from_slice(&latest).map_err(|e| Error::format(&dir.join(LATEST), e.to_string()))?;
    let path = dir.join(&latest.file);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::format(&path, e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::format(&path, e.to_string()))?;
    let read = |name: &str, into: &mut [f32]| -> Result<()> {
        let view = st.tensor(name).map_err(|e| Error::format(&path, format!("`{name}`: {e}")))?;
        if view.data().len() != into.len() * 4 {
            return Err(Error::format(&path, format!("`{name}` has another size than this model's")).into());
        }
        for (v, b) in into.iter_mut().zip(view.data().chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(())
    };
    let adam_step: u64 =
        meta.metadata().as_ref().and_then(|m| m.get("adam_step")).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut m_all = Vec::new();
    let mut v_all = Vec::new();
    for p in model.parameters_mut() {
        read(&p.name, p.values)?;
        if adam_step > 0 {
            let (mut m, mut v) = (vec![0f32; p.values.len()], vec![0f32; p.values.len()]);
            read(&format!("adam.exp_avg.{}", p.name), &mut m)?;
            read(&format!("adam.exp_avg_sq.{}", p.name), &mut v)?;
            m_all.push(m);
            v_all.push(v);
        }
    }
    optimizer.step = adam_step;
    optimizer.exp_avg = m_all;
    optimizer.exp_avg_sq = v_all;
    Ok(Some(latest.step))
}

/// Writes the trained location encoder in the native format (f64, as the official weights) and
/// as a safetensors file with the official key names (`model.location.nnet.*`,
/// `model.logit_scale`, `model.visual.head.*`) for Python tools.
pub fn export(
    model: &ClipModel<f32>,
    hp: &Hyperparameters,
    native_dir: &Path,
    official: &Path,
) -> Result<LocationEncoder> {
    let official_tensors: Vec<(String, Tensor)> = model.location.cast::<f64>().state_dict();
    let mut tensors = TensorMap::new();
    for (name, t) in &official_tensors {
        tensors.insert(name, t.clone());
    }
    let encoder = LocationEncoder::from_tensors(hp.clone(), tensors).map_err(|e| Error::model(native_dir, e))?;
    satclip_io::native::save(&encoder, native_dir)?;

    let mut named: Vec<TensorBytes> = official_tensors
        .into_iter()
        .map(|(n, t)| TensorBytes::f64(format!("model.location.nnet.{n}"), t.shape, &t.data))
        .collect();
    named.push(TensorBytes::f32("model.logit_scale", vec![], &[model.logit_scale]));
    if let Some(head) = &model.head {
        named.push(TensorBytes::f32("model.visual.head.weight", vec![head.out_dim, head.in_dim], &head.weight));
        if let Some(b) = &head.bias {
            named.push(TensorBytes::f32("model.visual.head.bias", vec![head.out_dim], b));
        }
    }
    let hp_json = serde_json::to_string(hp).expect("json");
    write_safetensors(official, &named, HashMap::from([("hyper_parameters".to_string(), hp_json)]))?;
    Ok(encoder)
}

/// Loss and gradients of one step on the given rows with the model's current weights, without
/// dropout, jitter or augmentation (view 0): the quantity compared in the cache exactness check.
pub fn step_on_rows(
    model: &ClipModel<f32>,
    cache: &FeatureCache,
    hp: &Hyperparameters,
    rows: &[usize],
) -> Result<(f64, Gradients<f32>)> {
    let posenc = PositionalEncoding::from_hyperparameters(hp)?;
    let b = make_batch(cache, &posenc, rows, None, None);
    let out = model.step(&ClipBatch { location_features: &b.features, image_features: &b.images, n: b.n }, None);
    Ok((out.loss, out.gradients))
}
