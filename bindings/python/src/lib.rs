//! `import satclip`: the Rust library's encoders for Python, with NumPy arrays in and out.
//! Thin on purpose: every number comes from the `satclip` crate; this file converts arrays,
//! releases the GIL while Rust computes, and turns errors into Python exceptions.

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::RecordBatchReader;
use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyDict};
use satclip::io::tables::PointReader;
use satclip::{Dtype, EmbedOptions, FeatureEncoder, OnInvalid, ReadOptions};

// Rust's allocations in the host process go to mimalloc, which keeps and reuses its pages. Engine
// workers tune the host's malloc to return memory at once (Dask sets MALLOC_TRIM_THRESHOLD_=65536),
// and under glibc's then every batch's buffers were mapped and faulted in anew: 2.6 s of system
// time per 500 k points written instead of 0.3 s, the same cost Polars avoids with its allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn to_py(e: satclip::Error) -> PyErr {
    // The library's messages name the command line's flags; here they are keyword arguments.
    let message = e
        .to_string()
        .replace("--lon-col", "lon_col=")
        .replace("--lat-col", "lat_col=")
        .replace("--geometry-col", "geometry_col=")
        .replace("--wrap-lon", "wrap_lon=True");
    match &e {
        satclip::Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        _ => PyValueError::new_err(message),
    }
}

/// (lon, lat) pairs from what NumPy users pass: an `[N, 2]` array of any real dtype, a list of
/// pairs, one pair, or a pandas DataFrame (lon/lat columns by name or `lon_col`/`lat_col`, or a
/// GeoDataFrame's point geometry). The flag says whether a single pair was given.
fn lonlat_pairs(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    lon_col: Option<&str>,
    lat_col: Option<&str>,
) -> PyResult<(Vec<[f64; 2]>, bool)> {
    let np = py.import("numpy")?;
    let values = if obj.hasattr("columns")? {
        let names: Vec<String> =
            obj.getattr("columns")?.try_iter()?.map(|c| c?.str()?.extract()).collect::<PyResult<_>>()?;
        let find = |asked: Option<&str>, known: &[&str]| match asked {
            Some(name) => names.iter().find(|n| *n == name).cloned(),
            None => names.iter().find(|n| known.iter().any(|k| n.trim().eq_ignore_ascii_case(k))).cloned(),
        };
        match (find(lon_col, &satclip::io::tables::LON_NAMES), find(lat_col, &satclip::io::tables::LAT_NAMES)) {
            (Some(lon), Some(lat)) => np.call_method1("column_stack", ((obj.get_item(lon)?, obj.get_item(lat)?),))?,
            _ if lon_col.is_none() && obj.hasattr("geometry")? => {
                let geometry = obj.getattr("geometry")?;
                np.call_method1("column_stack", ((geometry.getattr("x")?, geometry.getattr("y")?),))?
            }
            _ => {
                return Err(PyValueError::new_err(format!(
                    "the frame has no longitude and latitude columns (it has {}); name them lon and lat, or pass \
                     lon_col= and lat_col=",
                    names.join(", ")
                )))
            }
        }
    } else {
        obj.clone()
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", "float64")?;
    let array = np.call_method("asarray", (values,), Some(&kwargs)).map_err(|e| {
        PyValueError::new_err(format!("lonlat must be numbers: (lon, lat) pairs as an array or a list ({e})"))
    })?;
    let array: PyReadonlyArrayDyn<'_, f64> = array.extract()?;
    let (shape, view) = (array.shape().to_vec(), array.as_array());
    let points: Vec<[f64; 2]> = match shape.as_slice() {
        [2] => vec![[view[[0]], view[[1]]]],
        [_, 2] => view.rows().into_iter().map(|r| [r[0], r[1]]).collect(),
        other => {
            return Err(PyValueError::new_err(format!(
                "lonlat has shape {other:?}; expected [N, 2] (lon, lat) pairs or one (lon, lat) pair"
            )))
        }
    };
    for (i, &[lon, lat]) in points.iter().enumerate() {
        satclip::core::check_coordinate(lon, lat).map_err(|p| PyValueError::new_err(format!("lonlat[{i}]: {p}")))?;
    }
    Ok((points, shape.len() == 1))
}

fn dtype(name: &str) -> PyResult<Dtype> {
    name.parse().map_err(PyValueError::new_err)
}

/// Python's words for what an invalid row does, as in the engines' `embed`.
fn on_invalid(name: &str) -> PyResult<OnInvalid> {
    match name {
        "raise" => Ok(OnInvalid::Error),
        "null" => Ok(OnInvalid::Null),
        other => Err(PyValueError::new_err(format!("on_invalid is '{other}'; use 'raise' or 'null'"))),
    }
}

/// A location encoder: a name from `satclip.encoders()` (`"default"` is the built-in model), or
/// a SatCLIP `.ckpt` or native model directory.
#[pyclass(name = "Encoder", frozen)]
struct Encoder {
    inner: FeatureEncoder,
    spec: String,
}

#[pymethods]
impl Encoder {
    #[new]
    #[pyo3(signature = (spec = "default"))]
    fn new(py: Python<'_>, spec: &str) -> PyResult<Self> {
        let inner = py.detach(|| FeatureEncoder::load(spec)).map_err(to_py)?;
        Ok(Self { inner, spec: spec.to_owned() })
    }

    /// Width of the embeddings.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Embeddings of `lonlat` as an `[N, dim]` array of `dtype` (a `[dim]` array for one pair):
    /// `"float32"` runs the float32 path (about twice as fast), `"float64"` the official one.
    /// `lonlat` is (longitude, latitude) in degrees: an `[N, 2]` array of any real dtype, a list
    /// of pairs, one pair, or a pandas DataFrame with lon/lat columns (found by name, or given as
    /// `lon_col`/`lat_col`) or a GeoDataFrame of points.
    #[pyo3(signature = (lonlat, dtype = "float32", lon_col = None, lat_col = None))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        lonlat: &Bound<'py, PyAny>,
        dtype: &str,
        lon_col: Option<&str>,
        lat_col: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let precision = self::dtype(dtype)?;
        let (points, single) = lonlat_pairs(py, lonlat, lon_col, lat_col)?;
        let dim = self.inner.dim();
        let shape = if single { vec![dim] } else { vec![points.len(), dim] };
        Ok(match precision {
            Dtype::F64 => {
                let mut out = Vec::new();
                py.detach(|| self.inner.embed_into_f64(&points, &mut out)).map_err(to_py)?;
                out.into_pyarray(py).reshape(shape)?.into_any()
            }
            Dtype::F32 => {
                let mut out = Vec::new();
                py.detach(|| self.inner.embed_into_f32(&points, &mut out)).map_err(to_py)?;
                out.into_pyarray(py).reshape(shape)?.into_any()
            }
        })
    }

    /// Embeds a stream of point batches into `output` (Parquet, NPY or CSV by extension) and
    /// returns the number of rows: the file `satclip embed` writes for a Parquet file of the
    /// same batches (its columns, GeoParquet metadata and provenance), renamed into place only
    /// when complete. `batches` is anything with `__arrow_c_stream__` (a pyarrow Table or
    /// RecordBatchReader) holding lon/lat columns or a GeoParquet point column. An invalid point
    /// raises, naming `source` and the row, or with `on_invalid="null"` gets a null embedding.
    /// `geometry_col` names a column of WKB points to read instead of lon/lat columns. `threads`
    /// runs this call on a pool of its own of that many threads: a worker process that an engine
    /// reuses for tasks of different CPU shares (Ray does) then uses each task's share.
    #[pyo3(signature = (batches, output, dtype = "float32", lon_col = None, lat_col = None, geometry_col = None, wrap_lon = false, source = "Arrow stream", threads = None, on_invalid = "raise"))]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        batches: &Bound<'_, PyAny>,
        output: std::path::PathBuf,
        dtype: &str,
        lon_col: Option<String>,
        lat_col: Option<String>,
        geometry_col: Option<String>,
        wrap_lon: bool,
        source: &str,
        threads: Option<usize>,
        on_invalid: &str,
    ) -> PyResult<u64> {
        let on_invalid = self::on_invalid(on_invalid)?;
        let options = EmbedOptions {
            read: ReadOptions { lon_col, lat_col, geometry_col, wrap_lon, on_invalid, ..ReadOptions::default() },
            dtype: self::dtype(dtype)?,
        };
        let not_a_stream = || {
            PyTypeError::new_err(
                "batches must be an Arrow stream: a pyarrow Table, RecordBatchReader or anything with \
                 __arrow_c_stream__",
            )
        };
        let capsule = batches.call_method0("__arrow_c_stream__").map_err(|_| not_a_stream())?;
        let capsule = capsule.cast::<PyCapsule>().map_err(|_| not_a_stream())?;
        let stream = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
        // SAFETY: a capsule named `arrow_array_stream` holds an FFI_ArrowArrayStream (the Arrow
        // PyCapsule interface); taking it leaves a released stream for the capsule to drop.
        let stream = unsafe { FFI_ArrowArrayStream::from_raw(stream.as_ptr().cast()) };
        let reader = RecordBatchStreamReader::try_new(stream).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let name = std::path::Path::new(source);
        // The stream's producer takes the GIL itself when it runs Python to make a batch.
        let pool = match threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build()
                    .map_err(|e| PyValueError::new_err(format!("could not start {n} threads: {e}")))?,
            ),
            None => None,
        };
        let schema = reader.schema();
        let run = || {
            let points = PointReader::from_batches(name, schema, Box::new(reader), &options.read)?;
            satclip::embed_points(&self.inner, points, &output, &options, &mut |_| {})
        };
        let summary = py
            .detach(|| match &pool {
                Some(pool) => pool.install(run),
                None => run(),
            })
            .map_err(to_py)?;
        rows_warning_of_nulls(py, summary)
    }

    fn __repr__(&self) -> String {
        format!("Encoder({:?}, dim={})", self.spec, self.inner.dim())
    }
}

/// A model directory written by `satclip finetune` (or `satclip.finetune`), with its head, used
/// as scikit-learn estimators are: `predict(lonlat)` gives values in the task's units, or class
/// names; `predict_proba(lonlat)` gives a probability per class (in the order of `classes`).
#[pyclass(name = "FineTuned", frozen)]
struct FineTuned {
    inner: satclip::finetune::FineTunedModel,
}

impl FineTuned {
    fn run(
        &self,
        py: Python<'_>,
        lonlat: &Bound<'_, PyAny>,
        lon_col: Option<&str>,
        lat_col: Option<&str>,
    ) -> PyResult<(satclip::eval::Predictions, bool)> {
        let (points, single) = lonlat_pairs(py, lonlat, lon_col, lat_col)?;
        Ok((py.detach(|| self.inner.predict(&points)).map_err(to_py)?, single))
    }
}

#[pymethods]
impl FineTuned {
    #[new]
    fn new(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        Ok(Self { inner: py.detach(|| satclip::finetune::FineTunedModel::load(&path)).map_err(to_py)? })
    }

    /// `regression` or `classification`.
    #[getter]
    fn kind(&self) -> String {
        self.inner.report().kind.clone()
    }

    /// The classes of a classification, in the order of `predict_proba`'s columns; else None.
    #[getter]
    fn classes(&self) -> Option<Vec<String>> {
        self.inner.report().classes.clone()
    }

    /// The training report (as `finetune` returned it).
    #[getter]
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = serde_json::to_string(self.inner.report()).expect("the report serialises");
        py.import("json")?.call_method1("loads", (json,))
    }

    /// Predictions at `lonlat` (as `Encoder.embed` takes it): an `[N]` float64 array of values, or
    /// a list of N class names (one value or name for one pair).
    #[pyo3(signature = (lonlat, lon_col = None, lat_col = None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        lonlat: &Bound<'py, PyAny>,
        lon_col: Option<&str>,
        lat_col: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (predictions, single) = self.run(py, lonlat, lon_col, lat_col)?;
        match predictions {
            satclip::eval::Predictions::Values(values) if single => Ok(values[0].into_pyobject(py)?.into_any()),
            satclip::eval::Predictions::Values(values) => Ok(values.into_pyarray(py).into_any()),
            satclip::eval::Predictions::Classes { class, .. } => {
                let names = self.inner.report().classes.as_deref().expect("a classification has classes");
                let names: Vec<&str> = class.iter().map(|&c| names[c].as_str()).collect();
                match single {
                    true => Ok(names[0].into_pyobject(py)?.into_any()),
                    false => Ok(names.into_pyobject(py)?.into_any()),
                }
            }
        }
    }

    /// The probability of each class at `lonlat`: `[N, classes]` (`[classes]` for one pair).
    /// A regression has none and raises ValueError.
    #[pyo3(signature = (lonlat, lon_col = None, lat_col = None))]
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        lonlat: &Bound<'py, PyAny>,
        lon_col: Option<&str>,
        lat_col: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = self.inner.outputs();
        match self.run(py, lonlat, lon_col, lat_col)? {
            (satclip::eval::Predictions::Classes { scores, .. }, single) => {
                let shape = if single { vec![k] } else { vec![scores.len() / k, k] };
                Ok(scores.into_pyarray(py).reshape(shape)?.into_any())
            }
            _ => Err(PyValueError::new_err("a regression predicts values, not class probabilities: use predict")),
        }
    }

    fn __repr__(&self) -> String {
        let r = self.inner.report();
        format!("FineTuned({:?}, {} on {:?})", self.inner.dir().display().to_string(), r.kind, r.task)
    }
}

/// The encoders known by name: a list of `(name, dim, description)`.
#[pyfunction]
fn encoders() -> Vec<(&'static str, usize, &'static str)> {
    satclip::ENCODERS.iter().map(|e| (e.name, e.dim, e.description)).collect()
}

/// Every model known by name, as dicts: name, dim, L, tower, size_mb, licence, status (`built
/// in`, `cached`, `not cached`, `installed`, `not installed`, `computed`), path (when here) and
/// description. Looks at the Hugging Face cache; downloads nothing.
#[pyfunction]
fn models(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    satclip::registry::catalogue()
        .into_iter()
        .map(|row| {
            let d = PyDict::new(py);
            d.set_item("name", row.entry.name)?;
            d.set_item("dim", row.entry.dim)?;
            d.set_item("L", row.entry.legendre_polys)?;
            d.set_item("tower", row.entry.tower)?;
            d.set_item("size_mb", row.size_mb)?;
            d.set_item("licence", row.entry.licence)?;
            d.set_item("status", row.status)?;
            d.set_item("path", row.path.map(|p| p.to_string_lossy().into_owned()))?;
            d.set_item("description", row.entry.description)?;
            Ok(d)
        })
        .collect()
}

/// Fine-tunes a SatCLIP model (`default`, a released name, a `.ckpt` or a model directory) end to
/// end on a task file (CSV or Parquet: lon, lat, target) and writes the new model directory `out`,
/// which `Encoder(out)` loads. Returns the training report (also in `out/finetune.json`). `kind`
/// is `regression` or `classification` (default: detected from the targets). With `cv_blocks`
/// (degrees), the epoch is chosen on whole cells held out and the starting ridge head's strength
/// in such blocks, for a model meant to predict beyond the labelled region.
#[pyfunction]
#[pyo3(signature = (task, out, model = "default", kind = None, learning_rate = 1e-4, weight_decay = 0.01,
    batch_size = 256, epochs = 100, patience = 10, val_fraction = 0.1, seed = 0, cv_blocks = None))]
#[allow(clippy::too_many_arguments)]
fn finetune<'py>(
    py: Python<'py>,
    task: std::path::PathBuf,
    out: std::path::PathBuf,
    model: &str,
    kind: Option<&str>,
    learning_rate: f64,
    weight_decay: f64,
    batch_size: usize,
    epochs: usize,
    patience: usize,
    val_fraction: f64,
    seed: u64,
    cv_blocks: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    use satclip::finetune::{finetune_task, CrossValidation, FinetuneConfig, Kind};
    let kind = kind.map(|k| k.parse::<Kind>()).transpose().map_err(PyValueError::new_err)?;
    let cv = match cv_blocks {
        None => CrossValidation::Interleaved,
        Some(degrees) => CrossValidation::spatial_blocks(degrees)
            .ok_or_else(|| PyValueError::new_err(format!("cv_blocks={degrees} is not in (0, 360] degrees")))?,
    };
    let config = FinetuneConfig {
        learning_rate,
        weight_decay,
        batch_size,
        max_epochs: epochs,
        patience,
        val_fraction,
        seed,
        cv,
    };
    let report = py.detach(|| finetune_task(&task, kind, model, &config, &out)).map_err(to_py)?;
    let json = serde_json::to_string(&report).expect("the report serialises");
    py.import("json")?.call_method1("loads", (json,))
}

/// Fetches a released model (`vit16-l40`, `microsoft/SatCLIP-ViT16-L40[@revision]`,
/// `hf://org/name/file[@revision]`) into the Hugging Face cache, unless it is there, and returns
/// its path. The download is reported on stderr.
#[pyfunction]
fn download(py: Python<'_>, spec: &str) -> PyResult<String> {
    py.detach(|| satclip::resolve_checkpoint(spec)).map(|p| p.to_string_lossy().into_owned()).map_err(to_py)
}

/// (lon, lat) of WKB (or EWKB) points as an `[N, 2]` float64 array. A `None` or a geometry that
/// is not a 2-D point raises `ValueError` naming its index, or with `strict=False` gives a NaN row.
#[pyfunction]
#[pyo3(signature = (geometries, strict = true))]
fn points_from_wkb<'py>(
    py: Python<'py>,
    geometries: Vec<Option<Vec<u8>>>,
    strict: bool,
) -> PyResult<Bound<'py, numpy::PyArray2<f64>>> {
    let mut out = numpy::ndarray::Array2::<f64>::from_elem((geometries.len(), 2), f64::NAN);
    for (i, geometry) in geometries.iter().enumerate() {
        let point = match geometry {
            Some(bytes) => satclip::io::tables::wkb::point(bytes),
            None => Err("is null".to_string()),
        };
        match point {
            Ok([lon, lat]) => {
                out[[i, 0]] = lon;
                out[[i, 1]] = lat;
            }
            Err(why) if strict => return Err(PyValueError::new_err(format!("geometry[{i}]: {why}"))),
            Err(_) => {}
        }
    }
    Ok(out.into_pyarray(py))
}

/// Embeds a point table (CSV, Parquet/GeoParquet or NPY) into an embedding table (Parquet, NPY
/// or CSV, by extension), streamed in batches, exactly as `satclip embed` does. Returns the
/// number of rows. A row without a valid point raises ValueError naming the file, row and
/// field, or with `on_invalid="null"` is written with a null embedding (NaN in NPY).
#[pyfunction]
#[pyo3(signature = (input, output, encoder = "default", dtype = "float32", lon_col = None, lat_col = None, wrap_lon = false, geometry_col = None, on_invalid = "raise"))]
#[allow(clippy::too_many_arguments)]
fn embed_file(
    py: Python<'_>,
    input: std::path::PathBuf,
    output: std::path::PathBuf,
    encoder: &str,
    dtype: &str,
    lon_col: Option<String>,
    lat_col: Option<String>,
    wrap_lon: bool,
    geometry_col: Option<String>,
    on_invalid: &str,
) -> PyResult<u64> {
    let on_invalid = self::on_invalid(on_invalid)?;
    let options = EmbedOptions {
        read: ReadOptions { lon_col, lat_col, geometry_col, wrap_lon, on_invalid, ..ReadOptions::default() },
        dtype: self::dtype(dtype)?,
    };
    let summary = py
        .detach(|| {
            let encoder = FeatureEncoder::load(encoder)?;
            satclip::embed_file(&encoder, &input, &output, &options, &mut |_| {})
        })
        .map_err(to_py)?;
    rows_warning_of_nulls(py, summary)
}

/// The rows written; rows written without an embedding (`on_invalid="null"`) are counted in a
/// UserWarning that names the first, as `satclip embed` says them on stderr.
fn rows_warning_of_nulls(py: Python<'_>, summary: satclip::EmbedSummary) -> PyResult<u64> {
    if let Some(message) = summary.nulls_message() {
        let message = std::ffi::CString::new(message.replace('\0', "\\0")).expect("no NUL left");
        PyErr::warn(py, &py.get_type::<pyo3::exceptions::PyUserWarning>(), &message, 1)?;
    }
    Ok(summary.rows)
}

#[pymodule]
#[pyo3(name = "_native")]
fn satclip_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Encoder>()?;
    m.add_class::<FineTuned>()?;
    m.add_function(wrap_pyfunction!(embed_file, m)?)?;
    m.add_function(wrap_pyfunction!(encoders, m)?)?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add_function(wrap_pyfunction!(download, m)?)?;
    m.add_function(wrap_pyfunction!(finetune, m)?)?;
    m.add_function(wrap_pyfunction!(points_from_wkb, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
