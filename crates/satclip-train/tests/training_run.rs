//! End to end on a small synthetic corpus: a resumed run equals an uninterrupted one, and
//! training from cached features equals training with the tower run inside the step.

use std::path::{Path, PathBuf};

use satclip_core::encoding::PositionalEncoding;
use satclip_core::train::ClipBatch;
use satclip_core::Hyperparameters;
use satclip_testkit::synthetic_corpus;
use satclip_train::cache::{featurize, load_tile, FeatureCache};
use satclip_train::trainer::{grouped_step, init_model, step_on_rows, train, validation_loss, Metrics, TrainConfig};
use satclip_vision::rcf::RandomConvFeatures;
use satclip_vision::FeatureExtractor;

fn rcf_for(dir: &Path) -> RandomConvFeatures {
    let ds = satclip_train::open_corpus(dir).unwrap();
    let images: Vec<_> = ds.entries.iter().take(10).map(|e| load_tile(&e.file).unwrap()).collect();
    let mut x = 0.0;
    RandomConvFeatures::from_patches(&images, 16, 3, 0.1, &mut || {
        x = (x + 0.618_033_988_75) % 1.0;
        x
    })
}

fn cache_for(dir: &Path, views: usize) -> (PathBuf, RandomConvFeatures) {
    let corpus = dir.join("corpus");
    synthetic_corpus(&corpus, 120);
    std::fs::write(corpus.join(satclip_train::bluemarble::CORPUS_FILE), "{}").unwrap();
    let rcf = rcf_for(&corpus);
    let ds = satclip_train::open_corpus(&corpus).unwrap();
    let out = dir.join("cache");
    featurize(&ds.entries, &rcf, serde_json::json!({"tower": "rcf"}), views, 3, &out, &mut |_| {}).unwrap();
    (out, rcf)
}

fn config(cache: &Path, out: &Path) -> TrainConfig {
    TrainConfig {
        cache: cache.to_path_buf(),
        out: out.to_path_buf(),
        model: Hyperparameters { legendre_polys: 4, capacity: 32, embed_dim: 16, ..Hyperparameters::default() },
        batch_size: 32,
        epochs: 4,
        learning_rate: 1e-3,
        checkpoint_every: 2,
        ..TrainConfig::default()
    }
}

fn losses(metrics: &[Metrics]) -> Vec<(u64, f64, Option<f64>, f64)> {
    metrics.iter().map(|m| (m.step, m.train_loss, m.val_loss, m.logit_scale)).collect()
}

fn read_log(out: &Path) -> Vec<Metrics> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_resumed_run_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = cache_for(dir.path(), 2);
    let whole = config(&cache, &dir.path().join("whole"));
    let mut seen = Vec::new();
    let outcome = train(&whole, &mut |m| seen.push(m.clone())).unwrap();
    assert!(outcome.finished && outcome.steps == 16, "{} steps", outcome.steps);
    assert!(seen.iter().filter(|m| m.val_loss.is_some()).count() == 4, "a validation loss per epoch");

    let split = config(&cache, &dir.path().join("split"));
    let stopped = train(&TrainConfig { max_steps: Some(7), ..split.clone() }, &mut |_| {}).unwrap();
    assert!(!stopped.finished && stopped.steps == 7);
    train(&split, &mut |_| {}).unwrap();

    assert_eq!(losses(&read_log(&whole.out)), losses(&read_log(&split.out)), "identical loss curves");
    let a = std::fs::read(whole.out.join("model/model.safetensors")).unwrap();
    let b = std::fs::read(split.out.join("model/model.safetensors")).unwrap();
    assert_eq!(a, b, "identical final weights");
    // The exported model loads and embeds.
    let encoder = satclip_io::load_encoder(&whole.out.join("model")).unwrap();
    assert_eq!(encoder.embed(&[[10.0, 20.0]]).unwrap().dim, 16);
}

#[test]
fn cached_features_give_the_same_step_as_running_the_tower() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, rcf) = cache_for(dir.path(), 1);
    let cache = FeatureCache::open(&cache_dir).unwrap();
    let cfg = config(&cache_dir, &dir.path().join("run"));
    let posenc = PositionalEncoding::from_hyperparameters(&cfg.model).unwrap();
    let model = init_model(&cfg, posenc.dim(), cache.dim()).unwrap();
    let rows: Vec<usize> = (0..40).collect();
    let (cached_loss, cached_grads) = step_on_rows(&model, &cache, &cfg.model, &rows).unwrap();

    // The same batch with the tower inside the step.
    let mut features = Vec::new();
    let mut images = Vec::new();
    let mut point = vec![0f64; posenc.dim()];
    for &r in &rows {
        let (lon, lat) = ((cache.lon[r] as f32) as f64, (cache.lat[r] as f32) as f64);
        posenc.encode_into(lon, lat, &mut point);
        features.extend(point.iter().map(|v| *v as f32));
        images.extend(rcf.features(&load_tile(&cache.path_of(r)).unwrap()));
    }
    let direct = model.step(&ClipBatch { location_features: &features, image_features: &images, n: rows.len() }, None);
    assert_eq!(cached_loss, direct.loss);
    assert_eq!(cached_grads.tensors, direct.gradients.tensors);
}

#[test]
fn any_encoding_and_network_can_be_trained_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = cache_for(dir.path(), 1);
    for (le_type, pe_type) in
        [("wrap", "mlp"), ("theory", "fcnet"), ("spherecplus", "linear"), ("cartesian3d", "siren")]
    {
        let mut cfg = config(&cache, &dir.path().join(format!("{le_type}-{pe_type}")));
        cfg.model.le_type = le_type.into();
        cfg.model.pe_type = pe_type.into();
        cfg.epochs = 2;
        let outcome = train(&cfg, &mut |_| {}).unwrap();
        let encoder = satclip_io::load_encoder(outcome.model_dir.as_ref().unwrap()).unwrap();
        assert_eq!(encoder.hyperparameters().pe_type, pe_type);
        let e = encoder.embed(&[[12.0, 34.0]]).unwrap();
        assert!(e.data.iter().all(|v| v.is_finite()), "{le_type}/{pe_type}");
    }
}

/// Two caches of the same points read as one: each row's features side by side, in order, the
/// width the sum, a run trains on them; a cache of other points is refused naming the row.
#[test]
fn stacked_caches_give_each_row_both_features_and_refuse_other_points() {
    let dir = tempfile::tempdir().unwrap();
    let (fine, _) = cache_for(&dir.path().join("a"), 2);
    let corpus = dir.path().join("a/corpus");
    let ds = satclip_train::open_corpus(&corpus).unwrap();
    let other_rcf = rcf_for(&corpus);
    let coarse = dir.path().join("coarse");
    // Another extractor over the same tiles (4 filters fewer: another width).
    let narrow = RandomConvFeatures { filters: other_rcf.filters[..12 * 27].to_vec(), ..other_rcf };
    featurize(&ds.entries, &narrow, serde_json::json!({"tower": "rcf12"}), 2, 3, &coarse, &mut |_| {}).unwrap();

    let (a, b) = (FeatureCache::open(&fine).unwrap(), FeatureCache::open(&coarse).unwrap());
    let stacked = FeatureCache::open_stacked(&fine, std::slice::from_ref(&coarse)).unwrap();
    assert_eq!(stacked.dim(), a.dim() + b.dim());
    assert_eq!(stacked.meta.extractor, serde_json::json!([{"tower": "rcf"}, {"tower": "rcf12"}]));
    for (row, view) in [(0, 0), (7, 1), (119, 1)] {
        let (mut whole, mut expected) = (Vec::new(), Vec::new());
        stacked.append_features(row, view, &mut whole);
        a.append_features(row, view, &mut expected);
        b.append_features(row, view, &mut expected);
        assert_eq!(whole, expected);
    }
    let cfg = TrainConfig { extra_caches: vec![coarse.clone()], epochs: 1, ..config(&fine, &dir.path().join("run")) };
    assert!(train(&cfg, &mut |_| {}).unwrap().finished);

    // A cache of other points: the first differing row is named.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for file in ["features.f32", "cache.json"] {
        std::fs::copy(coarse.join(file), elsewhere.join(file)).unwrap();
    }
    let index = std::fs::read_to_string(coarse.join("index.csv")).unwrap();
    let mut lines: Vec<String> = index.lines().map(String::from).collect();
    lines[6] = format!("0.5,0.5,{}", lines[6].rsplit(',').next().unwrap());
    std::fs::write(elsewhere.join("index.csv"), lines.join("\n") + "\n").unwrap();
    let err = FeatureCache::open_stacked(&fine, &[elsewhere]).err().unwrap().to_string();
    assert!(err.contains("row 6") && err.contains("lon/lat"), "{err}");
}

#[test]
fn micro_batches_average_the_steps_of_their_contrastive_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, _) = cache_for(dir.path(), 1);
    let cache = FeatureCache::open(&cache_dir).unwrap();
    let cfg = config(&cache_dir, &dir.path().join("run"));
    let posenc = PositionalEncoding::from_hyperparameters(&cfg.model).unwrap();
    let model = init_model(&cfg, posenc.dim(), cache.dim()).unwrap();
    let rows: Vec<usize> = (0..40).collect();
    let (mut features, mut images, mut point) = (Vec::new(), Vec::new(), vec![0f64; posenc.dim()]);
    for &r in &rows {
        posenc.encode_into((cache.lon[r] as f32) as f64, (cache.lat[r] as f32) as f64, &mut point);
        features.extend(point.iter().map(|v| *v as f32));
        cache.append_features(r, 0, &mut images);
    }
    let batch = ClipBatch { location_features: &features, image_features: &images, n: rows.len() };

    // One group is the plain step, bit for bit.
    let (whole_loss, whole) = step_on_rows(&model, &cache, &cfg.model, &rows).unwrap();
    let (loss, grads) = grouped_step(&model, &batch, 64, None);
    assert_eq!((loss, &grads.tensors), (whole_loss, &whole.tensors));

    // Groups of 16, 16 and 8: each its own contrastive set, weighted by its size.
    let (loss, grads) = grouped_step(&model, &batch, 16, None);
    let parts: Vec<_> =
        [0..16, 16..32, 32..40].map(|r| (r.len(), step_on_rows(&model, &cache, &cfg.model, &rows[r]).unwrap())).into();
    let expected: f64 = parts.iter().map(|(n, (l, _))| l * *n as f64 / 40.0).sum();
    assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
    assert!(loss < whole_loss, "fewer negatives, an easier task: {loss} vs {whole_loss}");
    for (t, tensor) in grads.tensors.iter().enumerate() {
        for (i, g) in tensor.iter().enumerate() {
            let e: f32 = parts.iter().map(|(n, (_, p))| p.tensors[t][i] * *n as f32 / 40.0).sum();
            assert!((g - e).abs() <= 1e-6 * (1.0 + e.abs()), "tensor {t}[{i}]: {g} vs {e}");
        }
    }

    // The validation loss scores every row: a lone last row joins the group before it.
    let val_rows = &rows[..13];
    let (one_group, _) = step_on_rows(&model, &cache, &cfg.model, val_rows).unwrap();
    assert!((validation_loss(&model, &cache, &posenc, val_rows, 12) - one_group).abs() < 1e-12);
    let (first, _) = step_on_rows(&model, &cache, &cfg.model, &rows[..6]).unwrap();
    let (second, _) = step_on_rows(&model, &cache, &cfg.model, &rows[6..13]).unwrap();
    let mean = (first * 6.0 + second * 7.0) / 13.0;
    assert!((validation_loss(&model, &cache, &posenc, val_rows, 6) - mean).abs() < 1e-12);

    // Through a run: a micro-batch as large as the batch changes nothing; a smaller one trains.
    let plain = config(&cache_dir, &dir.path().join("plain"));
    let same = TrainConfig { micro_batch_size: Some(32), ..config(&cache_dir, &dir.path().join("same")) };
    let grouped = TrainConfig { micro_batch_size: Some(8), ..config(&cache_dir, &dir.path().join("grouped")) };
    for c in [&plain, &same, &grouped] {
        train(c, &mut |_| {}).unwrap();
    }
    assert_eq!(losses(&read_log(&plain.out)), losses(&read_log(&same.out)));
    let g = read_log(&grouped.out);
    assert!(g.iter().all(|m| m.train_loss.is_finite()) && g.len() == 16);
    assert!(g[0].train_loss < read_log(&plain.out)[0].train_loss);
}
