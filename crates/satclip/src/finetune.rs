//! `satclip finetune`: a SatCLIP location encoder trained end to end on a task's labels, written as
//! a model directory that every command loads like any checkpoint (`--checkpoint DIR`,
//! `--encoder DIR`), with the task's head and a report of the training beside it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use satclip_eval::{CrossValidation, FinetuneConfig, Kind};

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use satclip_core::network::Linear;
use satclip_core::{Dtype, LocationEncoder};
use satclip_eval::probe::{Head, HeadTarget, Predictions};
use satclip_eval::{finetune, FineTuned, Labels, Target, Task};
use satclip_io::native::{write_safetensors, TensorBytes};
use satclip_io::tables::{EmbeddingWriter, OnInvalid, PointReader, ReadOptions, TableFormat};
use serde::{Deserialize, Serialize};

use crate::provenance::{PredictionInfo, Provenance, PARQUET_KEY};
use crate::registry::PointEncoder;
use crate::{load_encoder, EmbedSummary, Error, Progress, Result};

/// The head's weights in a fine-tuned model directory: `head.weight` `[outputs × dim]` and
/// `head.bias`, in f64.
pub const HEAD_FILE: &str = "head.safetensors";
/// What was trained, on what, and how it went.
pub const REPORT_FILE: &str = "finetune.json";

/// The content of [`REPORT_FILE`].
#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// The column of a prediction table that holds the value (regression) or the class.
pub const PREDICTION_COLUMN: &str = "prediction";
/// The column of a classification's prediction table that holds the predicted class's probability.
pub const PROBABILITY_COLUMN: &str = "probability";
/// A fine-tuning report is a few kB per hundred epochs.
const MAX_REPORT_BYTES: u64 = 16 << 20;

/// A model directory written by `satclip finetune`, with its head: predictions in the task's
/// units (regression) or a probability per class, at any point.
pub struct FineTunedModel {
    encoder: LocationEncoder,
    head: Head,
    report: FinetuneReport,
    dir: PathBuf,
    provenance: Provenance,
}

impl FineTunedModel {
    pub fn load(dir: &Path) -> Result<Self> {
        let report_path = dir.join(REPORT_FILE);
        if !report_path.is_file() {
            return Err(Error::format(
                dir,
                format!("has no {REPORT_FILE}: predictions need a model directory written by `satclip finetune`"),
            ));
        }
        let mut text = Vec::new();
        satclip_io::open_regular(&report_path)?
            .take(MAX_REPORT_BYTES)
            .read_to_end(&mut text)
            .map_err(|e| Error::io(&report_path, e))?;
        let report: FinetuneReport = serde_json::from_slice(&text)
            .map_err(|e| Error::format(&report_path, format!("line {}, column {}: {e}", e.line(), e.column())))?;
        let encoder = satclip_io::native::load(dir)?;
        let bad = |why: String| Error::format(&report_path, why);
        let (outputs, target) = match (report.kind.as_str(), &report.classes) {
            ("regression", _) => match (report.target_mean, report.target_scale) {
                (Some(mean), Some(scale)) if mean.is_finite() && scale.is_finite() && scale > 0.0 => {
                    (1, HeadTarget::Values { mean, scale })
                }
                _ => return Err(bad("a regression needs a finite target_mean and a positive target_scale".into())),
            },
            ("classification", Some(classes)) if classes.len() >= 2 => {
                (classes.len(), HeadTarget::Classes { count: classes.len() })
            }
            ("classification", _) => return Err(bad("a classification needs its classes (two or more)".into())),
            (kind, _) => return Err(bad(format!("kind is `{kind}`, expected regression or classification"))),
        };
        let head_path = dir.join(HEAD_FILE);
        let mut tensors = satclip_io::native::read_tensors(&head_path, "head.", "head")?;
        let bias = tensors.shape("bias").is_some();
        let linear = Linear::load(&mut tensors, "", encoder.dim(), outputs, bias)
            .and_then(|linear| tensors.finish().map(|()| linear))
            .map_err(|e| Error::model(&head_path, e))?;
        let spec = dir.display().to_string();
        let l = encoder.hyperparameters().legendre_polys;
        let mut provenance = Provenance::checkpoint(&spec, dir, None, outputs, l)?;
        provenance.prediction = Some(PredictionInfo {
            task: report.task.clone(),
            kind: report.kind.clone(),
            classes: report.classes.clone(),
        });
        Ok(Self { encoder, head: Head { linear, target }, report, dir: dir.to_path_buf(), provenance })
    }

    pub fn report(&self) -> &FinetuneReport {
        &self.report
    }

    /// The fine-tuned location encoder (its embeddings, without the head).
    pub fn encoder(&self) -> &LocationEncoder {
        &self.encoder
    }

    /// Values per point: 1 for a regression, one probability per class for a classification.
    pub fn outputs(&self) -> usize {
        self.head.linear.out_dim
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the outputs come from, for the files they are written to.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The prediction at each point (in f64, as `satclip eval` scores the model).
    pub fn predict(&self, points: &[[f64; 2]]) -> Result<Predictions> {
        self.head.predict_at(&self.encoder, points).map_err(|e| Error::model(&self.dir, e))
    }
}

/// The model's outputs as features: the value, or a probability per class. This is how
/// `satclip raster --predict` maps them.
impl PointEncoder for FineTunedModel {
    fn dim(&self) -> usize {
        self.outputs()
    }
    fn embed_f64(&self, points: &[[f64; 2]], out: &mut [f64]) -> std::result::Result<(), satclip_core::Error> {
        match self.head.predict_at(&self.encoder, points)? {
            Predictions::Values(values) => out.copy_from_slice(&values),
            Predictions::Classes { scores, .. } => out.copy_from_slice(&scores),
        }
        Ok(())
    }
}

/// Streams a point table through a fine-tuned model into a table of predictions: CSV or
/// (Geo)Parquet with the input's columns and `prediction` (the value, or the class with its
/// `probability`), or NPY (`[N, 1]` values, or `[N, classes]` probabilities). The output appears
/// only when everything succeeded.
pub fn predict_file(
    model: &FineTunedModel,
    input: &Path,
    output: &Path,
    read: &ReadOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<EmbedSummary> {
    satclip_io::atomic::check_output(output, &[input])?;
    // Every row gets a prediction: a row without a valid point stops the run, naming it.
    let read = ReadOptions { on_invalid: OnInvalid::Error, ..read.clone() };
    let reader = PointReader::open(input, &read)?;
    if let Some(total) = reader.total_rows() {
        progress(Progress::Total(total));
    }
    let metadata = vec![(PARQUET_KEY.to_string(), model.provenance().with_dtype(Dtype::F64).to_json())];
    let input_schema = reader.schema();
    let classes = model.report.classes.as_deref();
    let npy = TableFormat::from_path(output)? == TableFormat::Npy;
    // CSV and Parquet: the input's columns and the predictions'.
    let table = match npy {
        true => None,
        false => {
            let mut fields: Vec<Arc<Field>> = input_schema.fields().iter().cloned().collect();
            let added = match classes {
                None => vec![Field::new(PREDICTION_COLUMN, DataType::Float64, false)],
                Some(_) => vec![
                    Field::new(PREDICTION_COLUMN, DataType::Utf8, false),
                    Field::new(PROBABILITY_COLUMN, DataType::Float64, false),
                ],
            };
            for field in added {
                if input_schema.fields().iter().any(|f| f.name() == field.name()) {
                    return Err(Error::format(
                        input,
                        format!("already has a column named `{}`, where predictions go; rename it first", field.name()),
                    ));
                }
                fields.push(Arc::new(field));
            }
            Some(Arc::new(Schema::new_with_metadata(fields, input_schema.metadata().clone())))
        }
    };
    let mut writer = match &table {
        None => EmbeddingWriter::create(output, &input_schema, model.outputs(), Dtype::F64, metadata)?,
        Some(schema) => EmbeddingWriter::create_table(output, schema, metadata)?,
    };
    let with_columns = |batch: RecordBatch, added: Vec<ArrayRef>| {
        let schema = table.clone().expect("predictions as columns go to a table");
        RecordBatch::try_new(schema, [batch.columns(), &added].concat())
            .map_err(|e| Error::format(input, e.to_string()))
    };
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch?;
        let predictions = model.predict(&batch.coords)?;
        let (columns, values) = match (predictions, npy) {
            (Predictions::Values(values), true) | (Predictions::Classes { scores: values, .. }, true) => {
                (batch.columns, values)
            }
            (Predictions::Values(values), false) => {
                let added: ArrayRef = Arc::new(Float64Array::from(values));
                (with_columns(batch.columns, vec![added])?, Vec::new())
            }
            (Predictions::Classes { class, scores }, false) => {
                let names = classes.expect("a classification has classes");
                let k = names.len();
                let name: ArrayRef = Arc::new(class.iter().map(|&c| Some(names[c].as_str())).collect::<StringArray>());
                let probability: Vec<f64> = class.iter().enumerate().map(|(i, &c)| scores[i * k + c]).collect();
                let probability: ArrayRef = Arc::new(Float64Array::from(probability));
                (with_columns(batch.columns, vec![name, probability])?, Vec::new())
            }
        };
        writer.write(&columns, &batch.coords, &values)?;
        rows += batch.coords.len() as u64;
        progress(Progress::Done(rows));
    }
    if rows == 0 {
        return Err(Error::format(input, "no data rows: nothing to predict"));
    }
    writer.finish()?;
    Ok(EmbedSummary { rows, ..Default::default() })
}
