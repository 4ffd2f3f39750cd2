//! The harness is honest: a probe on shuffled targets scores at chance, the same seed gives the
//! same numbers, and a smooth field is learned far better from a good basis than from raw degrees.

use satclip_core::{Hyperparameters, PositionalEncoding};
use satclip_eval::suite::{evaluate, EvalConfig, SplitMethod};
use satclip_eval::{
    fit_predict, random_split, subsample_train, CrossValidation, Folds, Labels, Predictions, Probe, RegressionMetrics,
};
use satclip_eval::{Target, Task};

/// 2000 points with a smooth "temperature" field: warm equator, cold poles, a continent bump.
fn field() -> (Vec<[f64; 2]>, Vec<f64>) {
    let points: Vec<[f64; 2]> = (0..2000)
        .map(|i| {
            [-180.0 + (i as f64 * 137.508) % 360.0, ((i as f64 * 0.618_034) % 1.0 * 2.0 - 1.0).asin().to_degrees()]
        })
        .collect();
    let target =
        points.iter().map(|[lon, lat]| 30.0 * lat.to_radians().cos() + 5.0 * (2.0 * lon.to_radians()).sin()).collect();
    (points, target)
}

fn features(le_type: &str, legendre_polys: usize, points: &[[f64; 2]]) -> (Vec<f64>, usize) {
    let hp = Hyperparameters { le_type: le_type.into(), legendre_polys, ..Hyperparameters::default() };
    let enc = PositionalEncoding::from_hyperparameters(&hp).unwrap();
    let mut out = vec![0.0; points.len() * enc.dim()];
    enc.encode_batch(points, &mut out);
    (out, enc.dim())
}

fn score(x: &[f64], d: usize, y: &[f64], train: &[bool]) -> RegressionMetrics {
    let pick = |want: bool| -> (Vec<f64>, Vec<f64>) {
        let rows: Vec<usize> = (0..y.len()).filter(|&i| train[i] == want).collect();
        (rows.iter().flat_map(|&i| x[i * d..(i + 1) * d].to_vec()).collect(), rows.iter().map(|&i| y[i]).collect())
    };
    let ((xt, yt), (xv, yv)) = (pick(true), pick(false));
    let Predictions::Values(p) =
        fit_predict(Probe::Ridge, &xt, Labels::Values(&yt), &xv, d, 0, &Folds::interleaved(yt.len()))
            .unwrap()
            .predictions
    else {
        panic!("regression predicts values")
    };
    RegressionMetrics::of(&yv, &p)
}

/// The field cut into four bands of a class each, as a classification task.
fn zone_task(shuffle: bool) -> Task {
    let (points, target) = field();
    let mut class: Vec<usize> = target.iter().map(|t| ((t + 35.0) / 18.0).floor().clamp(0.0, 3.0) as usize).collect();
    if shuffle {
        // A seeded random permutation: a permutation by index arithmetic keeps a trace of the
        // quasi-random point order, which the logistic probe's ranking finds (AUC 0.6).
        use rand::SeedableRng;
        satclip_core::random::shuffle(&mut class, &mut rand_pcg::Pcg64::seed_from_u64(11));
    }
    let names = (0..4).map(|c| format!("zone{c}")).collect();
    Task { path: "zones.csv".into(), points, target: Target::Classes { class, names }, split: None }
}

fn config(probes: Vec<Probe>) -> EvalConfig {
    EvalConfig {
        probes,
        split: SplitMethod::Random,
        n_train: vec![],
        test_fraction: 0.5,
        seed: 7,
        cv: CrossValidation::Interleaved,
    }
}

fn metric(rows: &[satclip_eval::suite::ReportRow], probe: &str, name: &str) -> f64 {
    rows.iter().find(|r| r.probe == probe && r.metric == name).unwrap().value
}

#[test]
fn shuffled_classes_score_at_chance_for_every_probe() {
    let probes = vec![Probe::Ridge, Probe::Logistic, Probe::Mlp, Probe::Knn];
    let (real, shuffled) = (zone_task(false), zone_task(true));
    let (x, d) = features("sphericalharmonics", 10, &real.points);
    let Target::Classes { class, .. } = &shuffled.target else { unreachable!() };
    let majority = (0..4).map(|c| class.iter().filter(|&&k| k == c).count()).max().unwrap() as f64 / class.len() as f64;
    let real_rows = evaluate(&real, "sh-l10", &x, d, None, &config(probes.clone())).unwrap();
    let chance_rows = evaluate(&shuffled, "sh-l10", &x, d, None, &config(probes.clone())).unwrap();
    for probe in ["ridge", "logistic", "mlp", "knn"] {
        let (good, chance) = (metric(&real_rows, probe, "accuracy"), metric(&chance_rows, probe, "accuracy"));
        assert!(good > 0.85, "{probe}: the zones are learnable ({good})");
        assert!(chance < majority + 0.04, "{probe}: shuffled classes at chance ({chance} vs majority {majority})");
        let (good, chance) = (metric(&real_rows, probe, "roc_auc"), metric(&chance_rows, probe, "roc_auc"));
        // Ridge's one-vs-all scores and kNN's tied vote shares rank the middle zones less well.
        assert!(good > 0.8, "{probe}: the zones rank well ({good})");
        assert!((chance - 0.5).abs() < 0.05, "{probe}: shuffled classes rank at chance ({chance})");
    }
}

#[test]
fn two_runs_with_the_same_seed_give_identical_reports() {
    let task = zone_task(false);
    let (x, d) = features("sphericalharmonics", 10, &task.points);
    let mut cfg = config(vec![Probe::Ridge, Probe::Logistic, Probe::Mlp, Probe::Knn]);
    cfg.n_train = vec![100, 300];
    let first = evaluate(&task, "sh-l10", &x, d, None, &cfg).unwrap();
    assert_eq!(first, evaluate(&task, "sh-l10", &x, d, None, &cfg).unwrap());
    // Four classes: no top-5 accuracy, which every row would score.
    assert_eq!(first.len(), 4 * 2 * 3, "4 probes × 2 sizes × (accuracy, macro_f1, roc_auc)");
    assert!(first.iter().any(|r| r.n_train == 100) && first.iter().any(|r| r.n_train == 300));
}

#[test]
fn shuffled_targets_score_at_chance() {
    let (points, target) = field();
    let (x, d) = features("sphericalharmonics", 10, &points);
    let mut shuffled = target.clone();
    // A fixed derangement-like permutation, unrelated to position.
    let n = shuffled.len();
    for i in 0..n {
        shuffled.swap(i, (i * 7919 + 13) % n);
    }
    let train = random_split(n, 0.5, 0);
    let real = score(&x, d, &target, &train);
    let chance = score(&x, d, &shuffled, &train);
    assert!(real.r2 > 0.95, "the field is learnable: {real:?}");
    assert!(chance.r2 < 0.02 && chance.r2 > -0.05, "shuffled targets give R² ≈ 0: {chance:?}");
}

#[test]
fn same_seed_same_numbers_and_a_basis_beats_raw_degrees() {
    let (points, target) = field();
    let train = random_split(points.len(), 0.5, 3);
    assert_eq!(train, random_split(points.len(), 0.5, 3));
    let (x, d) = features("sphericalharmonics", 10, &points);
    assert_eq!(score(&x, d, &target, &train), score(&x, d, &target, &train));
    let (raw, rd) = features("direct", 10, &points);
    assert!(score(&x, d, &target, &train).r2 > score(&raw, rd, &target, &train).r2 + 0.2);

    let few = subsample_train(&train, 100, 0);
    assert_eq!(few.iter().filter(|t| **t).count(), 100);
    assert!(few.iter().zip(&train).all(|(f, t)| !*f || *t), "a subset of the training rows");
}

#[test]
fn block_cells_shrink_for_a_regional_task_and_always_leave_training_points() {
    // 2000 points inside one 10° cell: the split must cut finer and still train on something.
    let points: Vec<[f64; 2]> =
        (0..2000).map(|i| [-121.0 + (i % 50) as f64 * 0.1, 31.0 + (i / 50) as f64 * 0.1]).collect();
    let size = satclip_eval::block_cell_size(&points, 10.0);
    assert_eq!(size, 1.25, "halved until at least 20 cells are occupied");
    for test_fraction in [0.5, 0.99] {
        let train = satclip_eval::block_split(&points, size, test_fraction, 0);
        let n_train = train.iter().filter(|t| **t).count();
        assert!(n_train > 0 && n_train < 2000, "{test_fraction}: {n_train}");
    }
    assert_eq!(satclip_eval::block_cell_size(&field().0, 10.0), 10.0, "a global task keeps 10° cells");
}

#[test]
fn block_split_holds_out_whole_cells() {
    let (points, _) = field();
    let train = satclip_eval::block_split(&points, 10.0, 0.3, 1);
    let test_share = train.iter().filter(|t| !**t).count() as f64 / points.len() as f64;
    assert!((0.3..0.36).contains(&test_share), "{test_share}");
    let cell = |p: &[f64; 2]| ((p[0] / 10.0).floor() as i64, (p[1] / 10.0).floor() as i64);
    for (i, p) in points.iter().enumerate() {
        for (j, q) in points.iter().enumerate() {
            if cell(p) == cell(q) {
                assert_eq!(train[i], train[j], "a cell is either all train or all test");
            }
        }
    }
}
