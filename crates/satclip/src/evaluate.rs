//! `satclip eval` as one library call, so that the CLI, the Python bindings and the service run
//! the same evaluation: every task is read and every encoder loaded first (a bad file fails before
//! any result), then each encoder's features go through every probe and split.

use std::path::{Path, PathBuf};

use satclip_eval::suite::{evaluate, EvalConfig, ReportRow, SplitMethod};
use satclip_eval::{Kind, Probe, Target, Task};

use crate::{Error, FeatureEncoder, Result};

/// An encoder under evaluation: `NAME=SPEC` reports the encoder `SPEC` as `NAME` (e.g. a
/// checkpoint path by its model's name); a spec alone is its own name.
pub struct Contender {
    pub label: String,
    pub spec: String,
}

impl Contender {
    pub fn parse(text: &str) -> Self {
        match text.split_once('=') {
            Some((label, spec)) if !label.is_empty() && !label.contains('/') => {
                Self { label: label.into(), spec: spec.into() }
            }
            _ => Self { label: text.into(), spec: text.into() },
        }
    }
}

/// The split called `random`, `block` (10° cells) or `continent`: regions from `regions`, by
/// default the Natural Earth countries that scripts/install-data.sh installs.
pub fn split_method(name: &str, regions: Option<&Path>, property: Option<&str>) -> Result<SplitMethod> {
    match name {
        "random" => Ok(SplitMethod::Random),
        "block" => Ok(SplitMethod::Block(10.0)),
        "continent" => {
            let path =
                regions.map_or_else(|| crate::data_dir().join(satclip_eval::build::COUNTRIES_FILE), Path::to_path_buf);
            let regions = satclip_eval::regions::Regions::open(&path).map_err(|e| {
                Error::format(
                    &path,
                    format!("{e}; the continent split needs regions: run scripts/install-data.sh, or pass --regions"),
                )
            })?;
            SplitMethod::continent(regions, property, &path).map_err(|e| Error::format(&path, e))
        }
        other => Err(Error::format(Path::new(other), "no such split; use random, block or continent")),
    }
}

/// What an evaluation reports as it goes.
pub enum Event<'a> {
    /// About to evaluate a task.
    Task(&'a Task),
    /// Something the reader should know that is not a result.
    Note(String),
    /// Starting an encoder on a task.
    Encoder(&'a str, &'a Task),
    /// The rows of one encoder on one task.
    Rows(&'a [ReportRow]),
}

/// Evaluates every contender on every task; `kind` overrides the detected kind of the targets.
pub fn evaluate_all(
    tasks: &[PathBuf],
    kind: Option<Kind>,
    contenders: &[Contender],
    config: &EvalConfig,
    on: &mut dyn FnMut(Event),
) -> Result<Vec<ReportRow>> {
    let tasks: Vec<Task> = tasks.iter().map(|path| Task::read(path, kind)).collect::<Result<_>>()?;
    // Each encoder is loaded once (GeoCLIP's weights alone are 38 MB), and a bad one fails the run
    // before any result.
    let encoders: Vec<FeatureEncoder> =
        contenders.iter().map(|c| FeatureEncoder::load(&c.spec)).collect::<Result<_>>()?;
    let mut report = Vec::new();
    for task in &tasks {
        on(Event::Task(task));
        if matches!(task.target, Target::Values(_)) && config.probes.contains(&Probe::Logistic) {
            on(Event::Note(format!("note: logistic is a classifier; skipped for {}", task.path.display())));
        }
        for (contender, encoder) in contenders.iter().zip(&encoders) {
            on(Event::Encoder(&contender.label, task));
            if config.probes.contains(&Probe::Finetune) && encoder.location_encoder().is_none() {
                on(Event::Note(format!(
                    "note: finetune trains a SatCLIP location encoder; skipped for {}",
                    contender.label
                )));
            }
            let (features, d) = encoder.features(&task.points)?;
            let rows = evaluate(task, &contender.label, &features, d, encoder.location_encoder(), config)?;
            if rows.is_empty() {
                let why = "no fold of this split has both training and test points";
                on(Event::Note(format!("note: {}: {why}", task.path.display())));
            }
            on(Event::Rows(&rows));
            report.extend(rows);
        }
    }
    Ok(report)
}

/// What `satclip latent` drew.
#[derive(Clone, Debug)]
pub struct LatentSummary {
    /// Points drawn (the task's, or a seeded sample of `max_points` of them).
    pub points: usize,
    /// By kNN, then by a linear probe.
    pub separability: Vec<satclip_eval::latent::Separability>,
}

/// E.g. `accuracy in the embedding (1000 held out): knn 0.838 (k=1), logistic 0.712 (C=1)`.
pub fn separability_line(scores: &[satclip_eval::latent::Separability]) -> String {
    let Some(first) = scores.first() else { return String::new() };
    let each: Vec<String> = scores.iter().map(|s| format!("{} {:.3} ({})", s.probe, s.value, s.chosen)).collect();
    format!("{} in the embedding ({} held out): {}", first.metric, first.n_test, each.join(", "))
}

/// A picture of an encoder's embedding space: `task`'s points (at most `max_points`, a seeded
/// sample) embedded by `contender`, laid out in 2-D by `method`, coloured by the task's target,
/// written to `out` as PNG, with the kNN separability of the target in the embedding.
pub fn latent(
    task: &Path,
    kind: Option<Kind>,
    contender: &Contender,
    method: satclip_eval::latent::Method,
    max_points: usize,
    seed: u64,
    out: &Path,
) -> Result<LatentSummary> {
    use satclip_eval::latent::{layout, render, separability, Colouring};
    let task = Task::read(task, kind)?;
    let n = task.points.len();
    let sample = satclip_eval::subsample_train(&vec![true; n], max_points, seed);
    let keep: Vec<usize> = (0..n).filter(|&i| sample[i]).collect();
    let points: Vec<[f64; 2]> = keep.iter().map(|&i| task.points[i]).collect();
    let target = match &task.target {
        Target::Values(v) => Target::Values(keep.iter().map(|&i| v[i]).collect()),
        Target::Classes { class, names } => {
            Target::Classes { class: keep.iter().map(|&i| class[i]).collect(), names: names.clone() }
        }
    };
    let (features, d) = FeatureEncoder::load(&contender.spec)?.features(&points)?;
    let fail = |e: String| Error::format(&task.path, format!("{}: {e}", contender.label));
    let separability = separability(&features, d, &target, seed).map_err(fail)?;
    let xy = layout(&features, d, method).map_err(fail)?;
    let what = task.path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let title = vec![
        format!("{}: {what}, {method} of {} points ({d}-d embedding)", contender.label, points.len()),
        separability_line(&separability),
    ];
    let colouring = match &target {
        Target::Values(v) => Colouring::Values(v),
        Target::Classes { class, names } => Colouring::Classes { class, names },
    };
    render(&xy, &colouring, &title, out)?;
    Ok(LatentSummary { points: points.len(), separability })
}
