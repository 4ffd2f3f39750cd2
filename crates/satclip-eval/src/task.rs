//! Tasks: point tables with columns `lon`, `lat`, `target` and optionally `split` (`train` /
//! `test`), as CSV or Parquet. A target is a number (regression) or a class label
//! (classification); the kind is detected from the values unless given.

use std::path::{Path, PathBuf};

use arrow_array::Array;
use satclip_io::error::{Error, Result};
use satclip_io::tables::{PointReader, ReadOptions};

/// Probes hold a row per class (one-hot targets, per-class weights): more classes than this are
/// refused rather than allocated.
pub const MAX_CLASSES: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Regression,
    Classification,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "regression" => Ok(Self::Regression),
            "classification" => Ok(Self::Classification),
            other => Err(format!("kind `{other}` is neither regression nor classification")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Values(Vec<f64>),
    /// Class index per row, into `names` (sorted, so indices do not depend on row order).
    Classes {
        class: Vec<usize>,
        names: Vec<String>,
    },
}

impl Target {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Values(_) => Kind::Regression,
            Self::Classes { .. } => Kind::Classification,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Task {
    pub path: PathBuf,
    pub points: Vec<[f64; 2]>,
    pub target: Target,
    /// From a `split` column (`train` → true, `test` → false), when the file has one.
    pub split: Option<Vec<bool>>,
}

impl Task {
    /// Reads a task; `kind` forces regression or classification, else it is detected: targets
    /// that all parse as finite numbers are regression, anything else is classification.
    pub fn read(path: &Path, kind: Option<Kind>) -> Result<Self> {
        let reader = PointReader::open(path, &ReadOptions::default())?;
        let schema = reader.schema();
        let col = |name: &str| schema.fields().iter().position(|f| f.name().trim().eq_ignore_ascii_case(name));
        let Some(target_col) = col("target") else {
            return Err(Error::format(path, "a task needs the columns lon, lat and target"));
        };
        let split_col = col("split");
        let (mut points, mut labels, mut split) = (Vec::new(), Vec::<String>::new(), Vec::new());
        for batch in reader {
            let batch = batch?;
            let text = |c: usize| -> Result<arrow_array::StringArray> {
                let cast = arrow_cast::cast(batch.columns.column(c), &arrow_schema::DataType::Utf8)
                    .map_err(|e| Error::format(path, format!("column {}: {e}", schema.field(c).name())))?;
                Ok(cast.as_any().downcast_ref::<arrow_array::StringArray>().expect("cast to Utf8").clone())
            };
            let targets = text(target_col)?;
            let splits = split_col.map(text).transpose()?;
            for (i, point) in batch.coords.iter().enumerate() {
                let row = batch.first_row + i as u64;
                if targets.is_null(i) || targets.value(i).trim().is_empty() {
                    return Err(Error::row(path, row, "target", "empty value"));
                }
                labels.push(targets.value(i).trim().to_owned());
                points.push(*point);
                if let Some(s) = &splits {
                    match if s.is_null(i) { "" } else { s.value(i).trim() } {
                        "train" => split.push(true),
                        "test" => split.push(false),
                        other => {
                            return Err(Error::row(path, row, "split", format!("`{other}` is neither train nor test")))
                        }
                    }
                }
            }
        }
        if points.len() < 10 {
            return Err(Error::format(path, "fewer than 10 rows"));
        }
        // Detection counts anything Rust reads as a number (NaN and inf too), so that one odd value
        // among numbers is reported by row instead of turning the task into classification.
        let parses = |l: &String| l.parse::<f64>().ok();
        let numbers = labels.iter().filter(|l| parses(l).is_some()).count();
        let kind = match kind {
            Some(kind) => kind,
            None if numbers == labels.len() => Kind::Regression,
            None if numbers * 2 > labels.len() => {
                let (i, l) = labels.iter().enumerate().find(|(_, l)| parses(l).is_none()).expect("a non-number");
                return Err(Error::row(
                    path,
                    i as u64 + 1,
                    "target",
                    format!(
                        "`{l}` is not a number, while {numbers} of {} targets are (pass --kind classification \
                         if the targets are labels)",
                        labels.len()
                    ),
                ));
            }
            None => Kind::Classification,
        };
        let target = match kind {
            Kind::Regression => {
                let values = labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        parses(l).filter(|v| v.is_finite()).ok_or_else(|| {
                            Error::row(path, i as u64 + 1, "target", format!("`{l}` is not a finite number"))
                        })
                    })
                    .collect::<Result<Vec<f64>>>()?;
                if values.iter().all(|v| *v == values[0]) {
                    return Err(Error::format(path, format!("every target is {}: nothing to predict", values[0])));
                }
                Target::Values(values)
            }
            Kind::Classification => {
                let mut names = labels.clone();
                names.sort();
                names.dedup();
                if names.len() < 2 {
                    return Err(Error::format(
                        path,
                        format!("every target is `{}`: one class, nothing to classify", names[0]),
                    ));
                }
                if names.len() > MAX_CLASSES {
                    return Err(Error::format(
                        path,
                        format!("{} classes; satclip's probes take at most {MAX_CLASSES}", names.len()),
                    ));
                }
                let class = labels.iter().map(|l| names.binary_search(l).expect("listed")).collect();
                Target::Classes { class, names }
            }
        };
        Ok(Self { path: path.to_path_buf(), points, target, split: split_col.map(|_| split) })
    }

    /// One line saying what the task is, e.g. for the detection message.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Values(_) => format!("{}: regression, {} points", self.path.display(), self.points.len()),
            Target::Classes { names, .. } => {
                format!(
                    "{}: classification, {} points, {} classes",
                    self.path.display(),
                    self.points.len(),
                    names.len()
                )
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegressionMetrics {
    pub r2: f64,
    pub mse: f64,
    pub mae: f64,
}

impl RegressionMetrics {
    pub fn of(truth: &[f64], predicted: &[f64]) -> Self {
        let n = truth.len() as f64;
        let mean = truth.iter().sum::<f64>() / n;
        let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
        let ss_res: f64 = truth.iter().zip(predicted).map(|(t, p)| (t - p).powi(2)).sum();
        let mae = truth.iter().zip(predicted).map(|(t, p)| (t - p).abs()).sum::<f64>() / n;
        Self { r2: 1.0 - ss_res / ss_tot, mse: ss_res / n, mae }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassificationMetrics {
    pub accuracy: f64,
    /// Unweighted mean of per-class F1 over the classes that occur in the truth or the
    /// predictions (scikit-learn's `f1_score(average="macro")`).
    pub macro_f1: f64,
}

impl ClassificationMetrics {
    pub fn of(truth: &[usize], predicted: &[usize]) -> Self {
        let classes = truth.iter().chain(predicted).max().map_or(0, |m| m + 1);
        let (mut tp, mut fp, mut fn_) = (vec![0usize; classes], vec![0usize; classes], vec![0usize; classes]);
        for (&t, &p) in truth.iter().zip(predicted) {
            if t == p {
                tp[t] += 1;
            } else {
                fp[p] += 1;
                fn_[t] += 1;
            }
        }
        let present: Vec<usize> = (0..classes).filter(|&c| tp[c] + fp[c] + fn_[c] > 0).collect();
        let f1 = |c: usize| 2.0 * tp[c] as f64 / (2 * tp[c] + fp[c] + fn_[c]) as f64;
        Self {
            accuracy: tp.iter().sum::<usize>() as f64 / truth.len() as f64,
            macro_f1: present.iter().map(|&c| f1(c)).sum::<f64>() / present.len().max(1) as f64,
        }
    }
}

/// How well class scores (`[rows × classes]`, larger is likelier) rank the true class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankingMetrics {
    /// Share of rows whose true class is among the five best scores. Ties are counted at their
    /// expected value under a random order, so that equal scores (kNN votes) favour no class.
    pub top5_accuracy: f64,
    /// One-vs-rest ROC-AUC averaged over the classes that occur in the truth and are not all of
    /// it (scikit-learn's `roc_auc_score(multi_class="ovr", average="macro")` over those
    /// classes); `None` when no class qualifies.
    pub roc_auc: Option<f64>,
}

impl RankingMetrics {
    pub fn of(truth: &[usize], scores: &[f64], classes: usize) -> Self {
        let rows = scores.chunks_exact(classes);
        let top5 = truth.iter().zip(rows).map(|(&t, row)| top_k_hit(row, t, 5)).sum::<f64>() / truth.len() as f64;
        let mut present = vec![0usize; classes];
        truth.iter().for_each(|&t| present[t] += 1);
        let aucs: Vec<f64> = (0..classes)
            .filter(|&c| present[c] > 0 && present[c] < truth.len())
            .map(|c| {
                let positive: Vec<bool> = truth.iter().map(|&t| t == c).collect();
                let score: Vec<f64> = scores.iter().skip(c).step_by(classes).copied().collect();
                roc_auc(&positive, &score)
            })
            .collect();
        Self { top5_accuracy: top5, roc_auc: (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64) }
    }
}

/// The probability that class `truth` is among the `k` best of `row` when ties fall in a random
/// order.
fn top_k_hit(row: &[f64], truth: usize, k: usize) -> f64 {
    let own = row[truth];
    let above = row.iter().filter(|&&v| v > own).count();
    let level = row.iter().enumerate().filter(|&(c, &v)| c != truth && v == own).count();
    if above >= k {
        0.0
    } else {
        ((k - above) as f64 / (level + 1) as f64).min(1.0)
    }
}

/// Binary ROC-AUC: the chance that a random positive scores above a random negative, ties
/// counting half (the Mann-Whitney U over average ranks, as scikit-learn's `roc_auc_score`).
pub fn roc_auc(positive: &[bool], score: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        rank_sum += order[i..=j].iter().filter(|&&r| positive[r]).count() as f64 * mean_rank;
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_matches_hand_computed_pairs_with_ties() {
        // Positives 0.9, 0.4, 0.4; negatives 0.4, 0.1. Pairs: 0.9 beats both (2), each 0.4
        // ties 0.4 (½) and beats 0.1 (1): (2 + 1.5 + 1.5) / 6.
        let auc = roc_auc(&[true, true, true, false, false], &[0.9, 0.4, 0.4, 0.4, 0.1]);
        assert!((auc - 5.0 / 6.0).abs() < 1e-12, "{auc}");
        assert_eq!(roc_auc(&[false, true], &[0.2, 0.7]), 1.0);
        assert_eq!(roc_auc(&[true, false], &[0.2, 0.7]), 0.0);
    }

    #[test]
    fn top5_and_macro_auc_match_a_hand_computed_case() {
        // Seven classes, three rows. Row 0: truth 6 ranks 1st. Row 1: truth 0 ranks 6th (five
        // classes above). Row 2: truth 3 is tied with every other class at 0: (5 - 0) / 7.
        let scores = [[0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4], [0.0, 0.3, 0.3, 0.2, 0.1, 0.1, 0.0], [0.0; 7]];
        let flat: Vec<f64> = scores.iter().flatten().copied().collect();
        let m = RankingMetrics::of(&[6, 0, 3], &flat, 7);
        assert!((m.top5_accuracy - (1.0 + 0.0 + 5.0 / 7.0) / 3.0).abs() < 1e-12, "{}", m.top5_accuracy);
        // Class 6: positive row 0 (0.4) above 0.0 and 0.0 → 1. Class 0: positive row 1 (0.0)
        // ties both negatives → 0.5. Class 3: positive row 2 (0.0) below 0.1 and 0.2 → 0.
        let auc = m.roc_auc.unwrap();
        assert!((auc - (1.0 + 0.5 + 0.0) / 3.0).abs() < 1e-12, "{auc}");
        // A truth of one class leaves no class with negatives.
        assert_eq!(RankingMetrics::of(&[1, 1], &[0.5, 0.5, 0.2, 0.8], 2).roc_auc, None);
    }

    #[test]
    fn macro_f1_matches_a_hand_computed_case() {
        // Class 0: tp 2, fp 1, fn 0 → F1 0.8; class 1: tp 1, fp 1, fn 1 → 0.5; class 2: fn 1 → 0.
        let m = ClassificationMetrics::of(&[0, 0, 1, 1, 2], &[0, 0, 1, 0, 1]);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert!((m.macro_f1 - (0.8 + 0.5 + 0.0) / 3.0).abs() < 1e-12, "{}", m.macro_f1);
    }

    #[test]
    fn a_parquet_task_with_numeric_targets_reads_like_a_csv_one() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let n = 12;
        let column = |f: &dyn Fn(usize) -> f64| -> arrow_array::ArrayRef {
            Arc::new(arrow_array::Float64Array::from((0..n).map(f).collect::<Vec<_>>()))
        };
        let batch = arrow_array::RecordBatch::try_from_iter([
            ("lon", column(&|i| i as f64 * 10.0 - 60.0)),
            ("lat", column(&|i| i as f64 * 5.0 - 30.0)),
            ("target", column(&|i| i as f64 * 0.5)),
        ])
        .unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let task = Task::read(&path, None).unwrap();
        assert_eq!(task.points[3], [-30.0, -15.0]);
        assert_eq!(task.target, Target::Values((0..n).map(|i| i as f64 * 0.5).collect()));
        assert!(task.split.is_none());
    }

    #[test]
    fn kind_is_detected_and_can_be_forced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut body = String::from("lon,lat,target,split\n");
        for i in 0..12 {
            body.push_str(&format!(
                "{}.5,{},{},{}\n",
                i,
                -(i as i32),
                ["forest", "desert", "3"][i % 3],
                ["train", "test"][i % 2]
            ));
        }
        std::fs::write(&path, &body).unwrap();
        let task = Task::read(&path, None).unwrap();
        let Target::Classes { class, names } = &task.target else { panic!("text labels are classes") };
        assert_eq!(names, &["3", "desert", "forest"]);
        assert_eq!(class[..3], [2, 1, 0]);
        assert_eq!(task.split.as_deref().unwrap()[..2], [true, false]);
        let err = Task::read(&path, Some(Kind::Regression)).unwrap_err().to_string();
        assert!(err.contains("row 1") && err.contains("target") && err.contains("forest"), "{err}");

        std::fs::write(&path, body.replace("forest", "1").replace("desert", "2")).unwrap();
        assert_eq!(Task::read(&path, None).unwrap().target.kind(), Kind::Regression);
        assert_eq!(Task::read(&path, Some(Kind::Classification)).unwrap().target.kind(), Kind::Classification);
    }

    #[test]
    fn degenerate_targets_are_errors_that_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let write = |targets: &dyn Fn(usize) -> String| {
            let mut body = String::from("lon,lat,target\n");
            for i in 0..200 {
                body.push_str(&format!("{},{},{}\n", i as f64 * 0.5, i as f64 * 0.1, targets(i)));
            }
            std::fs::write(&path, body).unwrap();
        };
        write(&|i| if i == 57 { "NaN".into() } else { format!("{}", i as f64 * 0.25) });
        let err = Task::read(&path, None).unwrap_err().to_string();
        assert!(err.contains("row 58") && err.contains("NaN") && err.contains("finite"), "{err}");
        write(&|i| if i == 9 { "n/a".into() } else { i.to_string() });
        let err = Task::read(&path, None).unwrap_err().to_string();
        assert!(err.contains("row 10") && err.contains("--kind classification"), "{err}");
        write(&|_| "NaN".into());
        assert!(Task::read(&path, None).unwrap_err().to_string().contains("row 1"));
        write(&|_| "forest".into());
        assert!(Task::read(&path, None).unwrap_err().to_string().contains("one class"));
        write(&|_| "3".into());
        assert!(Task::read(&path, None).unwrap_err().to_string().contains("nothing to predict"));
    }
}
