use std::path::{Path, PathBuf};

use satclip_io::error::{Error, Result};

/// A regression task: points and a numeric target, with an optional given split.
#[derive(Clone, Debug)]
pub struct Task {
    pub path: PathBuf,
    pub points: Vec<[f64; 2]>,
    pub target: Vec<f64>,
    /// From a `split` column (`train`/`test`), when the file has one.
    pub split: Option<Vec<bool>>,
}

impl Task {
    /// Reads a CSV with columns `lon`, `lat`, `target` and optionally `split`.
    pub fn read_csv(path: &Path) -> Result<Self> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| Error::format(path, e.to_string()))?;
        let headers = reader.headers().map_err(|e| Error::format(path, e.to_string()))?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
        let (Some(lon), Some(lat), Some(target)) = (col("lon"), col("lat"), col("target")) else {
            return Err(Error::format(path, "a task needs the columns lon, lat and target"));
        };
        let split_col = col("split");
        let (mut points, mut values, mut split) = (Vec::new(), Vec::new(), Vec::new());
        for (i, record) in reader.records().enumerate() {
            let row = i as u64 + 1;
            let record = record.map_err(|e| Error::format(path, format!("row {row}: {e}")))?;
            let number = |c: usize, name: &str| {
                let t = record.get(c).unwrap_or("").trim();
                t.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| Error::row(path, row, name, format!("`{t}` is not a finite number")))
            };
            let (x, y) = (number(lon, "lon")?, number(lat, "lat")?);
            satclip_core::check_coordinate(x, y).map_err(|p| Error::row(path, row, p.field(), p.to_string()))?;
            points.push([x, y]);
            values.push(number(target, "target")?);
            if let Some(c) = split_col {
                match record.get(c).unwrap_or("").trim() {
                    "train" => split.push(true),
                    "test" => split.push(false),
                    other => {
                        return Err(Error::row(path, row, "split", format!("`{other}` is neither train nor test")))
                    }
                }
            }
        }
        if points.len() < 10 {
            return Err(Error::format(path, "fewer than 10 rows"));
        }
        Ok(Self { path: path.to_path_buf(), points, target: values, split: split_col.map(|_| split) })
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
