//! `satclip finetune`: a SatCLIP location encoder trained end to end on a task's labels, written as
//! a model directory that every command loads like any checkpoint (`--checkpoint DIR`,
//! `--encoder DIR`), with the task's head and a report of the training beside it.

use std::collections::HashMap;
use std::path::Path;

pub use satclip_eval::{FinetuneConfig, Kind};

use satclip_eval::{finetune, FineTuned, Labels, Target, Task};
use satclip_io::native::{write_safetensors, TensorBytes};
use serde::Serialize;

use crate::{load_encoder, Error, Result};

/// The head's weights in a fine-tuned model directory: `head.weight` `[outputs × dim]` and
/// `head.bias`, in f64.
pub const HEAD_FILE: &str = "head.safetensors";
/// What was trained, on what, and how it went.
pub const REPORT_FILE: &str = "finetune.json";

/// The content of [`REPORT_FILE`].
#[derive(Clone, Debug, Serialize)]
pub struct FinetuneReport {
    pub task: String,
    /// The model that was fine-tuned, as named on the command line.
    pub model: String,
    pub kind: String,
    /// Regression: the head predicts `output · target_scale + target_mean`.
    pub target_mean: Option<f64>,
    pub target_scale: Option<f64>,
    /// Classification: the class of each of the head's outputs.
    pub classes: Option<Vec<String>>,
    pub n_train: usize,
    pub n_val: usize,
    /// The epoch kept (0: the frozen encoder with its linear probe).
    pub best_epoch: usize,
    /// The epoch of the lowest validation loss: kept only if it beat the linear probe by more than
    /// one standard error over the validation rows.
    pub lowest_epoch: usize,
    pub epochs_run: usize,
    pub head_init: String,
    /// The validation loss of the linear probe, then after each epoch.
    pub val_losses: Vec<f64>,
    /// How it trained (the fields of [`FinetuneConfig`], at the top level of the JSON).
    #[serde(flatten)]
    pub config: FinetuneConfig,
}

/// Fine-tunes `model` (a name or checkpoint, as `--checkpoint`) on the task file `task` and writes
/// the result into the new directory `out`. A task with a `split` column trains on its `train`
/// rows only; the validation share is drawn from those.
pub fn finetune_task(
    task: &Path,
    kind: Option<Kind>,
    model: &str,
    config: &FinetuneConfig,
    out: &Path,
) -> Result<FinetuneReport> {
    if out.exists() && std::fs::read_dir(out).map_err(|e| Error::io(out, e))?.next().is_some() {
        return Err(Error::format(out, "is not empty; fine-tuning writes a new model directory, pass another --out"));
    }
    let task = Task::read(task, kind)?;
    let encoder = load_encoder(model)?;
    let rows: Vec<usize> = (0..task.points.len()).filter(|&i| task.split.as_ref().is_none_or(|s| s[i])).collect();
    let points: Vec<[f64; 2]> = rows.iter().map(|&i| task.points[i]).collect();
    let (values, classes);
    let labels = match &task.target {
        Target::Values(v) => {
            values = rows.iter().map(|&i| v[i]).collect::<Vec<_>>();
            Labels::Values(&values)
        }
        Target::Classes { class, names } => {
            classes = rows.iter().map(|&i| class[i]).collect::<Vec<_>>();
            Labels::Classes { class: &classes, count: names.len() }
        }
    };
    let tuned = finetune(&encoder, &points, labels, config).map_err(|e| Error::format(&task.path, e))?;
    let report = report(&task, model, &tuned, config);
    write(&tuned, &report, out)?;
    Ok(report)
}

fn report(task: &Task, model: &str, tuned: &FineTuned, config: &FinetuneConfig) -> FinetuneReport {
    let (kind, target_mean, target_scale, classes) = match (&task.target, &tuned.head.target) {
        (Target::Classes { names, .. }, _) => ("classification", None, None, Some(names.clone())),
        (_, satclip_eval::probe::HeadTarget::Values { mean, scale }) => ("regression", Some(*mean), Some(*scale), None),
        _ => unreachable!("the head is made for the task's kind"),
    };
    FinetuneReport {
        task: task.path.display().to_string(),
        model: model.to_string(),
        kind: kind.into(),
        target_mean,
        target_scale,
        classes,
        n_train: tuned.n_train,
        n_val: tuned.n_val,
        best_epoch: tuned.best_epoch,
        lowest_epoch: tuned.lowest_epoch,
        epochs_run: tuned.val_losses.len() - 1,
        head_init: tuned.head_init.clone(),
        val_losses: tuned.val_losses.clone(),
        config: config.clone(),
    }
}

/// The head and the report first and the model's config.json last, each file atomically: a
/// directory without config.json is an interrupted run and does not load.
fn write(tuned: &FineTuned, report: &FinetuneReport, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let head = &tuned.head.linear;
    let mut tensors = vec![TensorBytes::f64("head.weight", vec![head.out_dim, head.in_dim], &head.weight)];
    if let Some(bias) = &head.bias {
        tensors.push(TensorBytes::f64("head.bias", vec![head.out_dim], bias));
    }
    write_safetensors(&out.join(HEAD_FILE), &tensors, HashMap::new())?;
    satclip_io::atomic::write_bytes(
        &out.join(REPORT_FILE),
        &serde_json::to_vec_pretty(report).expect("the report serialises"),
    )?;
    satclip_io::native::save(&tuned.encoder, out)
}
