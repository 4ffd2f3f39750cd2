//! `import satclip`: the Rust library's encoders for Python, with NumPy arrays in and out.
//! Thin on purpose: every number comes from the `satclip` crate; this file converts arrays,
//! releases the GIL while Rust computes, and turns errors into Python exceptions.

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray2};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use satclip::{EmbedOptions, FeatureEncoder, OutputDtype, ReadOptions};

fn to_py(e: satclip::Error) -> PyErr {
    match &e {
        satclip::Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn dtype(name: &str) -> PyResult<OutputDtype> {
    match name {
        "float32" => Ok(OutputDtype::F32),
        "float64" => Ok(OutputDtype::F64),
        other => Err(PyValueError::new_err(format!("dtype `{other}`: use \"float32\" or \"float64\""))),
    }
}

/// A location encoder: `"default"` (the built-in model), a SatCLIP `.ckpt` or native model
/// directory, `"geoclip"`, or the unlearned features `"direct"`, `"wrap"`, `"cartesian3d"`,
/// `"sh-l10"`, `"sh-l40"`.
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

    /// Embeddings of `lonlat`, an `[N, 2]` array of (longitude, latitude) in degrees, as an
    /// `[N, dim]` array of `dtype`: `"float32"` runs the float32 path (about twice as fast),
    /// `"float64"` the official one.
    #[pyo3(signature = (lonlat, dtype = "float32"))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        lonlat: PyReadonlyArray2<'py, f64>,
        dtype: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let precision = self::dtype(dtype)?;
        let lonlat = lonlat.as_array();
        if lonlat.ncols() != 2 {
            let shape = lonlat.shape();
            return Err(PyValueError::new_err(format!("lonlat has shape {shape:?}; expected [N, 2] (lon, lat)")));
        }
        let points: Vec<[f64; 2]> = lonlat.rows().into_iter().map(|r| [r[0], r[1]]).collect();
        for (i, &[lon, lat]) in points.iter().enumerate() {
            satclip::core::check_coordinate(lon, lat)
                .map_err(|p| PyValueError::new_err(format!("lonlat[{i}]: {p}")))?;
        }
        let shape = [points.len(), self.inner.dim()];
        Ok(match precision {
            OutputDtype::F64 => {
                let mut out = Vec::new();
                py.detach(|| self.inner.embed_into(&points, precision, &mut out)).map_err(to_py)?;
                out.into_pyarray(py).reshape(shape)?.into_any()
            }
            OutputDtype::F32 => {
                let mut out = Vec::new();
                py.detach(|| self.inner.embed_into_f32(&points, &mut out)).map_err(to_py)?;
                out.into_pyarray(py).reshape(shape)?.into_any()
            }
        })
    }

    fn __repr__(&self) -> String {
        format!("Encoder({:?}, dim={})", self.spec, self.inner.dim())
    }
}

/// Embeds a point table (CSV, Parquet/GeoParquet or NPY) into an embedding table (Parquet, NPY
/// or CSV, by extension), streamed in batches, exactly as `satclip embed` does. Returns the
/// number of rows.
#[pyfunction]
#[pyo3(signature = (input, output, encoder = "default", dtype = "float32", lon_col = None, lat_col = None))]
fn embed_file(
    py: Python<'_>,
    input: std::path::PathBuf,
    output: std::path::PathBuf,
    encoder: &str,
    dtype: &str,
    lon_col: Option<String>,
    lat_col: Option<String>,
) -> PyResult<u64> {
    let options =
        EmbedOptions { read: ReadOptions { lon_col, lat_col, ..ReadOptions::default() }, dtype: self::dtype(dtype)? };
    py.detach(|| {
        let encoder = FeatureEncoder::load(encoder)?;
        satclip::embed_file(&encoder, &input, &output, &options, &mut |_| {}).map(|s| s.rows)
    })
    .map_err(to_py)
}

#[pymodule]
#[pyo3(name = "satclip")]
fn satclip_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Encoder>()?;
    m.add_function(wrap_pyfunction!(embed_file, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
