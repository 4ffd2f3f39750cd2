//! Where embeddings came from, written into every output (Parquet key-value metadata under
//! `satclip`, a `.json` file beside NPY and CSV outputs) and printed back by `satclip info FILE`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::registry::{EncoderEntry, Origin};
use crate::{Error, Result};

/// The key of the Parquet footer's key-value metadata that holds the provenance.
pub const PARQUET_KEY: &str = "satclip";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The model's name: a registered name, or the checkpoint's file name.
    pub model: String,
    /// The spec as given (`vit16-l40`, a path, …).
    pub spec: String,
    /// `built in`, `file`, `hub`, `installed`, `computed` or `table`.
    pub source: String,
    /// The weights file, when there is one.
    pub path: Option<PathBuf>,
    /// Hub repository and the commit the file was fetched at.
    pub hub_repo: Option<String>,
    pub hub_commit: Option<String>,
    /// SHA-256 of the weights (of `model.safetensors` for a native model directory).
    pub sha256: Option<String>,
    /// Degree of the spherical harmonics, where there are any.
    pub legendre_polys: Option<usize>,
    pub dim: usize,
    /// Precision of the computation and the stored values (`f32`, `f64`), unless `quantisation`
    /// says the values are stored as int8.
    pub dtype: Option<String>,
    pub coordinate_order: String,
    pub crs: String,
    pub satclip_version: String,
    /// Set when the file holds a fine-tuned model's predictions instead of embeddings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<PredictionInfo>,
    /// An int8 COG's `satclip_int8` item, read back with the provenance: how the stored values
    /// map to the computed ones and the error that added. Known only once every tile is written,
    /// so it is a metadata item of its own in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantisation: Option<serde_json::Value>,
}

/// What the values of a prediction file are: the task the head was trained on and its outputs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PredictionInfo {
    /// The task file the model was fine-tuned on.
    pub task: String,
    /// `regression` (one value in the task's units) or `classification`.
    pub kind: String,
    /// Classification: the classes, in the order of the probability columns or bands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

impl Provenance {
    fn base(spec: &str, model: &str, source: &str, dim: usize, legendre_polys: Option<usize>) -> Self {
        Self {
            model: model.into(),
            spec: spec.into(),
            source: source.into(),
            dim,
            legendre_polys,
            coordinate_order: "lon,lat".into(),
            crs: "OGC:CRS84".into(),
            satclip_version: env!("CARGO_PKG_VERSION").into(),
            ..Self::default()
        }
    }

    /// A registered encoder that is not a download (built in, installed or computed).
    pub(crate) fn registered(spec: &str, entry: &EncoderEntry) -> Result<Self> {
        let mut p = Self::base(spec, entry.name, "computed", entry.dim, entry.legendre_polys);
        match entry.origin {
            Origin::BuiltIn(_) => {
                p.source = "built in".into();
                p.sha256 = Some(hex(&Sha256::digest(crate::builtin::WEIGHTS)));
            }
            Origin::Installed { path, .. } => {
                let path = path();
                p.source = "installed".into();
                p.sha256 = Some(sha256_file(&path)?);
                p.path = Some(path);
            }
            Origin::Hub { .. } | Origin::Computed(_) => {}
        }
        Ok(p)
    }

    /// Features read from a table ([`satclip_io::tables::FeatureTable`]).
    pub(crate) fn table(spec: &str, path: &Path, dim: usize) -> Result<Self> {
        let name = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut p = Self::base(spec, &name, "table", dim, None);
        p.sha256 = Some(sha256_file(path)?);
        p.path = Some(path.to_path_buf());
        Ok(p)
    }

    /// A checkpoint file, fetched from the Hub (`hub` = repository) or given by path.
    pub(crate) fn checkpoint(
        spec: &str,
        path: &Path,
        hub: Option<&str>,
        dim: usize,
        legendre_polys: usize,
    ) -> Result<Self> {
        let name =
            path.file_name().map(|n| n.to_string_lossy().trim_end_matches(".ckpt").to_string()).unwrap_or_default();
        let mut p = Self::base(spec, &name, "file", dim, Some(legendre_polys));
        if let Some(repo) = hub {
            p.source = "hub".into();
            p.hub_repo = Some(repo.into());
            // The cache keeps files at snapshots/<commit>/<file>, linked to blobs/<sha256>.
            p.hub_commit = path.parent().and_then(|d| d.file_name()).map(|c| c.to_string_lossy().into_owned());
            if let Some(model) =
                crate::registry::ENCODERS.iter().find(|e| matches!(e.origin, Origin::Hub { repo: r, .. } if r == repo))
            {
                p.model = model.name.into();
            }
            let blob =
                std::fs::read_link(path).ok().and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
            p.sha256 = blob.filter(|b| b.len() == 64 && b.bytes().all(|c| c.is_ascii_hexdigit()));
        }
        if p.sha256.is_none() {
            let weights = if path.is_dir() { path.join("model.safetensors") } else { path.to_path_buf() };
            p.sha256 = Some(sha256_file(&weights)?);
        }
        p.path = Some(path.to_path_buf());
        Ok(p)
    }

    pub fn with_dtype(&self, dtype: satclip_core::Dtype) -> Self {
        let dtype = match dtype {
            satclip_core::Dtype::F32 => "f32",
            satclip_core::Dtype::F64 => "f64",
        };
        Self { dtype: Some(dtype.into()), ..self.clone() }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("provenance serialises")
    }
}

/// The provenance recorded in an output file: a Parquet file's footer, a GeoTIFF's GDAL
/// metadata, or the `.json` beside an NPY or CSV file.
pub fn read_provenance(path: &Path) -> Result<Provenance> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if ext == "tif" || ext == "tiff" {
        let items = satclip_io::geotiff_out::read_gdal_metadata(path)?;
        let item = |key: &str| items.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let text =
            item(PARQUET_KEY).ok_or_else(|| Error::format(path, "has no satclip provenance in its GDAL metadata"))?;
        let mut provenance: Provenance = serde_json::from_str(text)
            .map_err(|e| Error::format(path, format!("unreadable satclip provenance: {e}")))?;
        if let Some(int8) = item(crate::INT8_KEY) {
            let value = serde_json::from_str(int8)
                .map_err(|e| Error::format(path, format!("unreadable {} item: {e}", crate::INT8_KEY)))?;
            provenance.quantisation = Some(value);
        }
        return Ok(provenance);
    }
    let text = match satclip_io::tables::TableFormat::from_path(path)? {
        satclip_io::tables::TableFormat::Parquet => satclip_io::tables::parquet_metadata(path, PARQUET_KEY)?
            .ok_or_else(|| {
                Error::format(path, "has no satclip provenance (written by an older satclip, or another tool)")
            })?,
        _ => {
            // `<file>.json`: an object whose `satclip` member is the provenance.
            let side = side_file(path);
            let text = std::fs::read_to_string(&side).map_err(|e| Error::io(&side, e))?;
            let object: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::format(&side, format!("not JSON: {e}")))?;
            object
                .get(PARQUET_KEY)
                .map(|v| v.to_string())
                .ok_or_else(|| Error::format(&side, "has no `satclip` member"))?
        }
    };
    serde_json::from_str(&text).map_err(|e| Error::format(path, format!("unreadable satclip provenance: {e}")))
}

/// `embeddings.npy` → `embeddings.npy.json`.
pub fn side_file(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    path.with_file_name(name)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
