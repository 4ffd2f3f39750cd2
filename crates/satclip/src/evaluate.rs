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
            let (features, d) = encoder.features(&task.points)?;
            let rows = evaluate(task, &contender.label, &features, d, config)?;
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
