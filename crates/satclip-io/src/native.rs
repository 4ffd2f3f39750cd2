//! Our own model format, in the Hugging Face style: a directory with `config.json` (the official
//! hyper-parameter names) and `model.safetensors` (f64 tensors under `location.nnet.*`, the key
//! names of the official `SatCLIP.location` module).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, View};
use satclip_core::{Hyperparameters, LocationEncoder, Tensor, TensorMap};
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::error::{Error, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const MODEL_TYPE: &str = "satclip-location-encoder";
const FORMAT_VERSION: u32 = 1;
/// Key prefixes accepted in a safetensors file, ours first.
const PREFIXES: [&str; 3] = ["location.nnet.", "model.location.nnet.", "nnet."];
const MAX_WEIGHTS_BYTES: u64 = 4 << 30;
const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
struct NativeConfig {
    model_type: String,
    format_version: u32,
    #[serde(flatten)]
    hyperparameters: Hyperparameters,
}

/// Resolves a native model path: the directory, or its `model.safetensors` / `config.json`.
fn model_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

pub fn is_native_model(path: &Path) -> bool {
    model_dir(path).join(CONFIG_FILE).is_file()
        && (path.is_dir() || path.extension().is_some_and(|e| e == "safetensors" || e == "json"))
}

pub fn load(path: &Path) -> Result<LocationEncoder> {
    let dir = model_dir(path);
    let config_path = dir.join(CONFIG_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    let config = read_limited(&config_path, MAX_CONFIG_BYTES)?;
    let weights = read_limited(&weights_path, MAX_WEIGHTS_BYTES)?;
    from_bytes(&config, &weights, &dir)
}

/// Builds an encoder from the two files' contents (e.g. a model compiled into the binary);
/// `origin` names them in errors.
pub fn from_bytes(config_json: &[u8], weights: &[u8], origin: &Path) -> Result<LocationEncoder> {
    let config_path = origin.join(CONFIG_FILE);
    let config: NativeConfig = serde_json::from_slice(config_json)
        .map_err(|e| Error::format(&config_path, format!("line {}, column {}: {e}", e.line(), e.column())))?;
    if config.model_type != MODEL_TYPE {
        return Err(Error::format(
            &config_path,
            format!("model_type is `{}`, expected `{MODEL_TYPE}`", config.model_type),
        ));
    }
    if config.format_version > FORMAT_VERSION {
        return Err(Error::format(
            &config_path,
            format!(
                "format_version {} is newer than this satclip understands ({FORMAT_VERSION})",
                config.format_version
            ),
        ));
    }
    let weights_path = origin.join(WEIGHTS_FILE);
    let tensors = read_safetensors(&weights_path, weights)?;
    LocationEncoder::from_tensors(config.hyperparameters, tensors).map_err(|e| Error::model(&weights_path, e))
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > limit {
        return Err(Error::format(path, format!("file is {len} bytes, more than the {limit} a model file may have")));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<TensorMap> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let names = st.names();
    let Some(prefix) = PREFIXES.iter().find(|p| names.iter().any(|n| n.starts_with(*p))) else {
        return Err(Error::format(path, "no location-encoder tensors (`location.nnet.*`)"));
    };
    let mut map = TensorMap::new().with_display_prefix(*prefix);
    for (name, view) in st.iter() {
        let Some(short) = name.strip_prefix(prefix) else { continue };
        let data: Vec<f64> = match view.dtype() {
            Dtype::F64 => view.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8"))).collect(),
            Dtype::F32 => {
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4")) as f64).collect()
            }
            other => {
                return Err(Error::format(path, format!("tensor `{name}` has dtype {other:?}; expected F64 or F32")))
            }
        };
        let tensor = Tensor::new(view.shape().to_vec(), data).map_err(|e| Error::model(path, e))?;
        map.insert(short, tensor);
    }
    Ok(map)
}

struct F64View<'a>(&'a Tensor, Vec<u8>);

impl View for &F64View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F64
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.1)
    }
    fn data_len(&self) -> usize {
        self.1.len()
    }
}

/// Writes `dir/config.json` and `dir/model.safetensors`, each atomically.
pub fn save(encoder: &LocationEncoder, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let state = encoder.state_dict();
    let views: Vec<(String, F64View)> = state
        .iter()
        .map(|(name, t)| {
            let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (format!("{}{name}", PREFIXES[0]), F64View(t, bytes))
        })
        .collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), Some(metadata))
        .map_err(|e| Error::format(&weights_path, e.to_string()))?;
    atomic::write_bytes(&weights_path, &bytes)?;

    let config = NativeConfig {
        model_type: MODEL_TYPE.into(),
        format_version: FORMAT_VERSION,
        hyperparameters: encoder.hyperparameters().clone(),
    };
    let json = serde_json::to_vec_pretty(&config).expect("config serialises");
    atomic::write_bytes(&dir.join(CONFIG_FILE), &json)
}
