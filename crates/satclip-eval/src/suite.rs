//! One evaluation run: for a task and an encoder's features, every (probe, split, training size)
//! combination is fitted and scored, and each metric becomes one report row.

use std::path::Path;

use satclip_io::Error;
use serde::Serialize;

use satclip_core::LocationEncoder;

use crate::probe::{finetune, fit_predict, CrossValidation, FinetuneConfig, Fitted, Folds, Labels, Predictions, Probe};
use crate::regions::Regions;
use crate::task::{ClassificationMetrics, RankingMetrics, RegressionMetrics, Target, Task};

/// How training and test points are chosen when the task has no `split` column.
pub enum SplitMethod {
    /// A seeded random share of the points is held out.
    Random,
    /// Whole square cells of this many degrees are held out (halved for regional tasks until
    /// the points cover enough cells, see [`crate::block_cell_size`]).
    Block(f64),
    /// Each region (a continent, or a biogeographic realm) with at least 20 points is held out
    /// in turn, training on the points of the other regions; points in no region are not used.
    Continent { regions: Regions, property: String },
}

/// The properties that name a continent-like group, in the order they are looked for: Natural
/// Earth's CONTINENT, then RESOLVE's REALM.
pub const CONTINENT_PROPERTIES: [&str; 2] = ["CONTINENT", "REALM"];

impl SplitMethod {
    /// The continent holdout over `regions` (read from `path`), grouped by `property`, by default
    /// the first of [`CONTINENT_PROPERTIES`] the file has.
    pub fn continent(regions: Regions, property: Option<&str>, path: &Path) -> Result<Self, String> {
        let candidates = property.map_or(CONTINENT_PROPERTIES.to_vec(), |p| vec![p]);
        let Some(property) = candidates.iter().find(|p| regions.has_property(p)) else {
            return Err(format!(
                "{}: no text property `{}` (it has {}); name one with --region-property",
                path.display(),
                candidates.join("` or `"),
                regions.property_names().join(", ")
            ));
        };
        Ok(SplitMethod::Continent { property: property.to_string(), regions })
    }
}

pub struct EvalConfig {
    pub probes: Vec<Probe>,
    pub split: SplitMethod,
    /// Training sizes for a learning curve (seeded subsets); empty means all training points.
    pub n_train: Vec<usize>,
    pub test_fraction: f64,
    pub seed: u64,
    /// The folds in which ridge and kNN choose their hyperparameter.
    pub cv: CrossValidation,
}

/// One line of `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportRow {
    pub task: String,
    pub encoder: String,
    pub probe: String,
    pub split: String,
    pub metric: String,
    pub value: f64,
    pub n_train: usize,
    pub n_test: usize,
    /// The hyperparameter the probe chose by cross-validation (or its fixed setting).
    pub chosen: String,
}

/// A named fold: which points train, which test.
pub struct Fold {
    pub name: String,
    pub train: Vec<bool>,
    pub test: Vec<bool>,
}

/// The folds of a task: its own `split` column if it has one, else those of `method`.
pub fn folds(task: &Task, config: &EvalConfig) -> Vec<Fold> {
    let complement = |t: &[bool]| t.iter().map(|x| !x).collect();
    let n = task.points.len();
    match (&task.split, &config.split) {
        (Some(s), _) => vec![Fold { name: "given".into(), train: s.clone(), test: complement(s) }],
        (None, SplitMethod::Random) => {
            let t = crate::random_split(n, config.test_fraction, config.seed);
            vec![Fold { name: "random".into(), test: complement(&t), train: t }]
        }
        (None, SplitMethod::Block(cell)) => {
            let size = crate::block_cell_size(&task.points, *cell);
            let t = crate::block_split(&task.points, size, config.test_fraction, config.seed);
            vec![Fold { name: format!("block:{size}deg"), test: complement(&t), train: t }]
        }
        (None, SplitMethod::Continent { regions, property }) => {
            let region: Vec<Option<String>> =
                task.points.iter().map(|p| regions.property_at(p[0], p[1], property)).collect();
            let mut names: Vec<String> = region.iter().flatten().cloned().collect();
            names.sort();
            names.dedup();
            let count = |name: &str| region.iter().filter(|x| x.as_deref() == Some(name)).count();
            let placed = region.iter().flatten().count();
            // Each side needs points: a task inside one region (California) has no such fold.
            names
                .iter()
                .filter(|r| count(r) >= 20 && placed - count(r) >= 20)
                .map(|r| Fold {
                    train: region.iter().map(|x| x.as_ref().is_some_and(|x| x != r)).collect(),
                    test: region.iter().map(|x| x.as_deref() == Some(r.as_str())).collect(),
                    name: format!("continent:{r}"),
                })
                .collect()
        }
    }
}

/// Evaluates one encoder's `features` (`[n × d]`, rows as the task's points) on `task`; the
/// `finetune` probe trains `trainable`, the encoder itself, when it is a SatCLIP location encoder.
/// Probes that do not apply (logistic on regression, finetune without a trainable encoder) are
/// skipped.
pub fn evaluate(
    task: &Task,
    encoder: &str,
    features: &[f64],
    d: usize,
    trainable: Option<&LocationEncoder>,
    config: &EvalConfig,
) -> Result<Vec<ReportRow>, Error> {
    if let Some(at) = features.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(
            &task.path,
            format!(
                "encoder {encoder} gave {} as feature {} of point {}: probes need finite features",
                features[at],
                at % d.max(1),
                at / d.max(1) + 1
            ),
        ));
    }
    let mut rows = Vec::new();
    let n = task.points.len();
    let pick = |mask: &[bool]| -> Vec<usize> { (0..n).filter(|&i| mask[i]).collect() };
    let gather = |idx: &[usize]| -> Vec<f64> {
        idx.iter().flat_map(|&i| features[i * d..(i + 1) * d].iter().copied()).collect()
    };
    for fold in folds(task, config) {
        let available = fold.train.iter().filter(|t| **t).count();
        let sizes: Vec<usize> = if config.n_train.is_empty() {
            vec![available]
        } else {
            let mut s: Vec<usize> = config.n_train.iter().map(|&k| k.min(available)).collect();
            s.dedup();
            s
        };
        let test = pick(&fold.test);
        let x_test = gather(&test);
        for &size in &sizes {
            let train = pick(&crate::subsample_train(&fold.train, size, config.seed));
            let x_train = gather(&train);
            let points = |rows: &[usize]| -> Vec<[f64; 2]> { rows.iter().map(|&i| task.points[i]).collect() };
            let cv_folds = Folds::of_points(config.cv, &points(&train));
            for &probe in &config.probes {
                let (values, classes, count);
                let labels = match &task.target {
                    Target::Values(v) => {
                        if probe == Probe::Logistic {
                            continue;
                        }
                        values = train.iter().map(|&i| v[i]).collect::<Vec<_>>();
                        Labels::Values(&values)
                    }
                    Target::Classes { class, names } => {
                        classes = train.iter().map(|&i| class[i]).collect::<Vec<_>>();
                        count = names.len();
                        Labels::Classes { class: &classes, count }
                    }
                };
                let failed = |e: String| Error::format(&task.path, format!("{encoder} / {probe} / {}: {e}", fold.name));
                let fit = if probe == Probe::Finetune {
                    let Some(trainable) = trainable else { continue };
                    let finetune_config =
                        FinetuneConfig { seed: config.seed, cv: config.cv, ..FinetuneConfig::default() };
                    let tuned = finetune(trainable, &points(&train), labels, &finetune_config).map_err(failed)?;
                    let predictions = tuned.predict(&points(&test)).map_err(|e| failed(e.to_string()))?;
                    Fitted { predictions, chosen: tuned.chosen() }
                } else {
                    let fit =
                        fit_predict(probe, &x_train, labels, &x_test, d, config.seed, &cv_folds).map_err(failed)?;
                    match config.cv {
                        CrossValidation::SpatialBlocks { .. } if matches!(probe, Probe::Ridge | Probe::Knn) => {
                            Fitted { chosen: format!("{} in {}", fit.chosen, config.cv), ..fit }
                        }
                        _ => fit,
                    }
                };
                let metrics: Vec<(&str, f64)> = match (&task.target, &fit.predictions) {
                    (Target::Values(v), Predictions::Values(p)) => {
                        let truth: Vec<f64> = test.iter().map(|&i| v[i]).collect();
                        let m = RegressionMetrics::of(&truth, p);
                        vec![("r2", m.r2), ("mse", m.mse), ("mae", m.mae)]
                    }
                    (Target::Classes { class, names }, Predictions::Classes { class: p, scores }) => {
                        let truth: Vec<usize> = test.iter().map(|&i| class[i]).collect();
                        let m = ClassificationMetrics::of(&truth, p);
                        let ranking = RankingMetrics::of(&truth, scores, names.len());
                        let mut metrics = vec![("accuracy", m.accuracy), ("macro_f1", m.macro_f1)];
                        // With five classes or fewer every row is a top-5 hit.
                        if names.len() > 5 {
                            metrics.push(("top5_accuracy", ranking.top5_accuracy));
                        }
                        metrics.extend(ranking.roc_auc.map(|auc| ("roc_auc", auc)));
                        metrics
                    }
                    _ => unreachable!("probes predict the kind of their labels"),
                };
                for (metric, value) in metrics {
                    rows.push(ReportRow {
                        task: task.path.display().to_string(),
                        encoder: encoder.to_string(),
                        probe: probe.to_string(),
                        split: fold.name.clone(),
                        metric: metric.to_string(),
                        value,
                        n_train: train.len(),
                        n_test: test.len(),
                        chosen: fit.chosen.clone(),
                    });
                }
            }
        }
    }
    Ok(rows)
}

pub const TABLE_HEADER: &str =
    "| task | encoder | probe | split | n_train | n_test | r2 | mse | mae | accuracy | macro_f1 | top5_accuracy | roc_auc |\n\
                                |---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// Markdown lines, one per (task, encoder, probe, split, n_train), metrics in columns.
pub fn table_lines(rows: &[ReportRow]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let r = &rows[i];
        let same = |o: &ReportRow| {
            (o.task == r.task)
                && o.encoder == r.encoder
                && o.probe == r.probe
                && o.split == r.split
                && o.n_train == r.n_train
        };
        let group: Vec<&ReportRow> = rows[i..].iter().take_while(|o| same(o)).collect();
        let cell =
            |name: &str| group.iter().find(|o| o.metric == name).map_or(String::new(), |o| format!("{:.4}", o.value));
        lines.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.task,
            r.encoder,
            r.probe,
            r.split,
            r.n_train,
            r.n_test,
            cell("r2"),
            cell("mse"),
            cell("mae"),
            cell("accuracy"),
            cell("macro_f1"),
            cell("top5_accuracy"),
            cell("roc_auc")
        ));
        i += group.len();
    }
    lines
}

/// The headline metric of a kind of task: R² for regression, accuracy for classification.
fn is_headline(metric: &str) -> bool {
    metric == "r2" || metric == "accuracy"
}

/// The table a row belongs to: its probe and split, block splits of any cell size together.
fn group_name(r: &ReportRow) -> String {
    let split = if r.split.starts_with("block:") { "block" } else { &r.split };
    format!("{} · {split}", r.probe)
}

/// Compact Markdown tables, one per (probe, split): a row per encoder, a column per task, each
/// cell the headline metric (R² or accuracy); with a learning curve, one value per training
/// size, smallest first, separated by " / ".
pub fn summary_tables(rows: &[ReportRow]) -> String {
    let order = |key: &str, seen: &mut Vec<String>| {
        if !seen.iter().any(|k| k == key) {
            seen.push(key.to_string());
        }
    };
    let (mut groups, mut tasks, mut encoders) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows.iter().filter(|r| is_headline(&r.metric)) {
        order(&group_name(r), &mut groups);
        order(&r.task, &mut tasks);
        order(&r.encoder, &mut encoders);
    }
    let mut out = String::new();
    for group in &groups {
        out.push_str(&format!("\n**{group}** (R² for regression, accuracy for classification)\n\n| encoder |"));
        tasks.iter().for_each(|t| {
            let name = Path::new(t).file_stem().map_or(t.clone(), |s| s.to_string_lossy().into_owned());
            out.push_str(&format!(" {name} |"));
        });
        out.push_str(&format!("\n|---|{}\n", "---|".repeat(tasks.len())));
        for encoder in &encoders {
            out.push_str(&format!("| {encoder} |"));
            for task in &tasks {
                let mut cell: Vec<&ReportRow> = rows
                    .iter()
                    .filter(|r| {
                        is_headline(&r.metric) && &r.encoder == encoder && &r.task == task && group_name(r) == *group
                    })
                    .collect();
                cell.sort_by_key(|r| r.n_train);
                // Several training sizes in one cell: each value says its size.
                let values: Vec<String> = match cell.len() {
                    1 => vec![format!("{:.3}", cell[0].value)],
                    _ => cell.iter().map(|r| format!("{:.3} (n={})", r.value, r.n_train)).collect(),
                };
                out.push_str(&format!(" {} |", values.join(" / ")));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_continent_split_holds_out_each_region_with_enough_points() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("realms.geojson");
        let square = |x0: i32, name: &str| {
            format!(
                r#"{{"type":"Feature","properties":{{"REALM":"{name}"}},"geometry":{{"type":"Polygon","coordinates":[[[{x0},0],[{x1},0],[{x1},10],[{x0},10],[{x0},0]]]}}}}"#,
                x1 = x0 + 10
            )
        };
        let squares = [square(0, "A"), square(20, "B"), square(40, "C")].join(",");
        std::fs::write(&path, format!(r#"{{"type":"FeatureCollection","features":[{squares}]}}"#)).unwrap();

        let err = SplitMethod::continent(Regions::open(&path).unwrap(), Some("BIOME"), &path).err().unwrap();
        assert!(err.contains("realms.geojson") && err.contains("`BIOME`") && err.contains("REALM"), "{err}");
        let method = SplitMethod::continent(Regions::open(&path).unwrap(), None, &path).unwrap();
        assert!(matches!(&method, SplitMethod::Continent { property, .. } if property == "REALM"));

        // 25 points in A, 30 in B, 5 in C (too few to hold out) and 4 in no region.
        let mut points = Vec::new();
        points.extend((0..25).map(|i| [1.0 + (i % 5) as f64, 1.0 + (i / 5) as f64]));
        points.extend((0..30).map(|i| [21.0 + (i % 6) as f64, 1.0 + (i / 6) as f64]));
        points.extend((0..5).map(|i| [41.0 + i as f64, 5.0]));
        points.extend((0..4).map(|i| [-50.0, i as f64]));
        let n = points.len();
        let task = Task { path: "t.csv".into(), points, target: Target::Values(vec![0.0; n]), split: None };
        let config = EvalConfig {
            probes: vec![Probe::Ridge],
            split: method,
            n_train: vec![],
            test_fraction: 0.5,
            seed: 0,
            cv: CrossValidation::Interleaved,
        };
        let folds = folds(&task, &config);
        let names: Vec<&str> = folds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["continent:A", "continent:B"]);
        let count = |v: &[bool]| v.iter().filter(|&&x| x).count();
        assert_eq!((count(&folds[0].train), count(&folds[0].test)), (35, 25));
        assert_eq!((count(&folds[1].train), count(&folds[1].test)), (30, 30));
        assert!(folds.iter().all(|f| f.train.iter().zip(&f.test).all(|(a, b)| !(a & b))));
        assert!(folds.iter().all(|f| !f.train[n - 1] && !f.test[n - 1]), "points in no region are not used");
    }

    fn row(task: &str, encoder: &str, metric: &str, n_train: usize, value: f64) -> ReportRow {
        ReportRow {
            task: task.into(),
            encoder: encoder.into(),
            probe: "ridge".into(),
            split: "random".into(),
            metric: metric.into(),
            value,
            n_train,
            n_test: 10,
            chosen: String::new(),
        }
    }

    #[test]
    fn summary_puts_encoders_in_rows_tasks_in_columns_and_sizes_in_order() {
        let rows = vec![
            row("t/temp.csv", "wrap", "r2", 300, 0.8),
            row("t/temp.csv", "wrap", "mse", 300, 9.0),
            row("t/temp.csv", "wrap", "r2", 100, 0.5),
            row("t/biome.csv", "wrap", "accuracy", 100, 0.25),
            row("t/temp.csv", "geoclip", "r2", 100, 0.9),
        ];
        let text = summary_tables(&rows);
        assert!(text.contains("| encoder | temp | biome |"), "{text}");
        assert!(text.contains("| wrap | 0.500 (n=100) / 0.800 (n=300) | 0.250 |"), "{text}");
        assert!(text.contains("| geoclip | 0.900 |  |"), "{text}");
        assert!(!text.contains("9.000"), "only the headline metric: {text}");
        assert_eq!(table_lines(&rows[..2]).len(), 1, "one line per result, metrics in columns");

        // Block splits of different cell sizes (regional and global tasks) share one table.
        let mut blocks = vec![row("t/temp.csv", "wrap", "r2", 100, 0.5), row("t/housing.csv", "wrap", "r2", 100, 0.2)];
        (blocks[0].split, blocks[1].split) = ("block:10deg".into(), "block:1.25deg".into());
        let text = summary_tables(&blocks);
        assert_eq!(text.matches("**ridge · block**").count(), 1, "{text}");
        assert!(text.contains("| wrap | 0.500 | 0.200 |"), "{text}");
    }
}
