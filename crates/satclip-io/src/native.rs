//! Our own model format, in the Hugging Face style: a directory with `config.json` (the official
//! hyper-parameter names) and `model.safetensors` (f64 tensors under `location.nnet.*`, the key
//! names of the official `SatCLIP.location` module).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use safetensors::tensor::Metadata;
use safetensors::Dtype;
use satclip_core::{Hyperparameters, LocationEncoder, TensorMap};
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::error::{Error, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const MODEL_TYPE: &str = "satclip-location-encoder";
const FORMAT_VERSION: u32 = 1;
/// Key prefixes accepted in a safetensors file, ours first.
const PREFIXES: [&str; 3] = ["location.nnet.", "model.location.nnet.", "nnet."];
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// A safetensors header is JSON naming each tensor; a location encoder's is a few KB.
const MAX_HEADER_BYTES: u64 = 16 << 20;

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
    let config = crate::open_regular(&config_path)?;
    let len = config.metadata().map_err(|e| Error::io(&config_path, e))?.len();
    if len > MAX_CONFIG_BYTES {
        return Err(Error::format(
            &config_path,
            format!("file is {len} bytes; a model's config.json has a few hundred"),
        ));
    }
    let mut json = Vec::new();
    config.take(MAX_CONFIG_BYTES).read_to_end(&mut json).map_err(|e| Error::io(&config_path, e))?;
    let weights = crate::open_regular(&weights_path)?;
    build(&json, weights, &dir)
}

/// Builds an encoder from the two files' contents (e.g. a model compiled into the binary);
/// `origin` names them in errors.
pub fn from_bytes(config_json: &[u8], weights: &[u8], origin: &Path) -> Result<LocationEncoder> {
    build(config_json, Cursor::new(weights.to_vec()), origin)
}

fn build(config_json: &[u8], weights: impl Read + Seek + 'static, origin: &Path) -> Result<LocationEncoder> {
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
    config.hyperparameters.validate().map_err(|e| Error::model(&config_path, e))?;
    let weights_path = origin.join(WEIGHTS_FILE);
    let tensors = read_safetensors(&weights_path, weights, &PREFIXES, "location-encoder")?;
    LocationEncoder::from_tensors(config.hyperparameters, tensors).map_err(|e| Error::model(&weights_path, e))
}

/// The tensors of the safetensors file `path` whose names start with `prefix` (keyed without it),
/// each read only when taken: e.g. a fine-tuned model's head.
pub fn read_tensors(path: &Path, prefix: &str, what: &str) -> Result<TensorMap> {
    read_tensors_from(path, crate::open_regular(path)?, prefix, what)
}

/// As [`read_tensors`], from `file`'s bytes (`path` names them in errors).
pub fn read_tensors_from<R: Read + Seek + 'static>(
    path: &Path,
    file: R,
    prefix: &str,
    what: &str,
) -> Result<TensorMap> {
    read_safetensors(path, file, &[prefix], what)
}

/// Reads a safetensors header, then defers each tensor under the first of `prefixes` that the
/// file uses (`what` they are, for the error when none is) to a loader that reads only its own
/// bytes, once the model has accepted its name and shape.
fn read_safetensors<R: Read + Seek + 'static>(
    path: &Path,
    mut file: R,
    prefixes: &[&str],
    what: &str,
) -> Result<TensorMap> {
    let bad = |m: String| Error::format(path, format!("not a safetensors file: {m}"));
    let io = |e: std::io::Error| Error::io(path, e);
    let file_len = file.seek(SeekFrom::End(0)).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES || n > file_len - 8 {
        return Err(bad(format!("header of {n} bytes in a file of {file_len}")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let metadata: Metadata = serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let data_start = 8 + n;
    let data_len = file_len - data_start;
    let tensors = metadata.tensors();
    let Some(prefix) = prefixes.iter().find(|p| tensors.keys().any(|n| n.starts_with(*p))) else {
        return Err(Error::format(path, format!("no {what} tensors (`{}*`)", prefixes[0])));
    };
    let file = Rc::new(RefCell::new(file));
    let mut map = TensorMap::new().with_display_prefix(*prefix);
    for (name, info) in tensors {
        let Some(short) = name.strip_prefix(prefix) else { continue };
        let (start, end) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
        if end > data_len {
            return Err(bad(format!("tensor `{name}` ends at byte {end} of a data section of {data_len}")));
        }
        let dtype = info.dtype;
        if !matches!(dtype, Dtype::F64 | Dtype::F32) {
            return Err(Error::format(path, format!("tensor `{name}` has dtype {dtype:?}; expected F64 or F32")));
        }
        let file = file.clone();
        let load = move || -> std::result::Result<Vec<f64>, String> {
            let mut raw = vec![0u8; (end - start) as usize];
            let mut file = file.borrow_mut();
            file.seek(SeekFrom::Start(data_start + start))
                .and_then(|_| file.read_exact(&mut raw))
                .map_err(|e| e.to_string())?;
            Ok(match dtype {
                Dtype::F64 => raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8"))).collect(),
                _ => raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4")) as f64).collect(),
            })
        };
        map.insert_deferred(short, info.shape.clone(), Box::new(load));
    }
    Ok(map)
}

/// A tensor to write: name, dtype, shape and little-endian bytes.
pub struct TensorBytes {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl TensorBytes {
    pub fn f64(name: impl Into<String>, shape: Vec<usize>, values: &[f64]) -> Self {
        Self {
            name: name.into(),
            dtype: Dtype::F64,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Self {
        Self {
            name: name.into(),
            dtype: Dtype::F32,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Writes `tensors` and `metadata` as one safetensors file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[TensorBytes], metadata: HashMap<String, String>) -> Result<()> {
    let views = tensors.iter().map(|t| {
        let view = safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes).expect("sizes match");
        (t.name.as_str(), view)
    });
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::format(path, e.to_string()))?;
    atomic::write_bytes(path, &bytes)
}

/// Writes `dir/config.json` and `dir/model.safetensors`, each atomically.
pub fn save(encoder: &LocationEncoder, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tensors: Vec<TensorBytes> = encoder
        .state_dict()
        .into_iter()
        .map(|(name, t)| TensorBytes::f64(format!("{}{name}", PREFIXES[0]), t.shape, &t.data))
        .collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(&dir.join(WEIGHTS_FILE), &tensors, metadata)?;

    let config = NativeConfig {
        model_type: MODEL_TYPE.into(),
        format_version: FORMAT_VERSION,
        hyperparameters: encoder.hyperparameters().clone(),
    };
    let json = serde_json::to_vec_pretty(&config).expect("config serialises");
    atomic::write_bytes(&dir.join(CONFIG_FILE), &json)
}
