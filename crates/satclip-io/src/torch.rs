//! The `torch.save` zip format: `<archive>/data.pkl` (the object tree) plus one raw little-endian
//! file per storage, `<archive>/data/<key>`. Storages are read on demand, so opening a 120 MB
//! checkpoint to take the 1 MB location encoder reads only that megabyte; and only the part of a
//! storage that a view covers is kept in memory.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use satclip_core::{Tensor, TensorMap};

use crate::error::{Error, Result};
use crate::pickle::{unpickle, StorageDtype, TensorRef, Value};

/// The object tree (`data.pkl`) is metadata: anything bigger than this is not a checkpoint.
const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// No storage of a SatCLIP checkpoint comes near this; it bounds how much a view may skip.
const MAX_STORAGE_BYTES: usize = 4 << 30;
/// A view may span at most this many times its own size (plus a little) of its storage: enough
/// for the transposes and slices torch writes, too little to make a small tensor read gigabytes.
const MAX_SPAN_FACTOR: usize = 16;

pub struct TorchArchive {
    path: PathBuf,
    storages: Rc<RefCell<Storages>>,
    root: Value,
}

/// The archive's raw storage files, shared with the loaders of deferred tensors.
struct Storages {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
    prefix: String,
}

impl TorchArchive {
    pub fn open(path: &Path) -> Result<Self> {
        let file = crate::open_regular(path)?;
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            Error::format(
                path,
                format!(
                    "not a zip-format torch checkpoint ({e}); files written by torch < 1.6 or with \
                     `_use_new_zipfile_serialization=False` are not supported: re-save them with a current torch"
                ),
            )
        })?;
        // PyTorch's reader and the zip crate could pick different copies of a repeated entry, so
        // the same file could load different weights in each: refuse it.
        if zip.has_duplicate_names() {
            return Err(Error::format(path, "the zip archive repeats an entry name: not a file torch.save writes"));
        }
        let pkl_name = zip
            .file_names()
            .filter_map(|n| n.ok())
            .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .map(|n| n.into_owned())
            .ok_or_else(|| Error::format(path, "zip archive has no `<name>/data.pkl`: not a torch checkpoint"))?;
        let prefix = pkl_name.trim_end_matches("data.pkl").to_owned();
        if let Ok(mut entry) = zip.by_name(&format!("{prefix}byteorder")) {
            let mut order = String::new();
            entry.by_ref().take(16).read_to_string(&mut order).map_err(|e| Error::io(path, e))?;
            if order.trim() != "little" {
                return Err(Error::format(path, format!("byte order `{}` is not supported", order.trim())));
            }
        }
        let pickle = {
            let entry = zip.by_name(&pkl_name).map_err(|e| Error::format(path, e.to_string()))?;
            let mut buf = Vec::new();
            entry.take(MAX_PICKLE_BYTES + 1).read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
            if buf.len() as u64 > MAX_PICKLE_BYTES {
                return Err(Error::format(path, "data.pkl is larger than 64 MiB"));
            }
            buf
        };
        let root = unpickle(&pickle).map_err(|e| Error::format(path, format!("{pkl_name}: {e}")))?;
        let storages = Rc::new(RefCell::new(Storages { path: path.to_path_buf(), zip, prefix }));
        Ok(Self { path: path.to_path_buf(), storages, root })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Reads a tensor's values as f64 now. Integer tensors are refused: weights are floating point.
    pub fn read_f64(&mut self, name: &str, tensor: &TensorRef) -> Result<Tensor> {
        let view = View::check(tensor).map_err(|m| self.tensor_error(name, m))?;
        let data = self.storages.borrow_mut().read(&view, tensor).map_err(|m| self.tensor_error(name, m))?;
        Tensor::new(tensor.shape.clone(), data).map_err(|e| self.tensor_error(name, e.to_string()))
    }

    /// Adds a tensor to `map` under `key`, to be read only if the model takes it with this shape.
    /// The dtype and the view's bounds are checked now.
    pub fn insert_deferred(&self, map: &mut TensorMap, key: &str, name: &str, tensor: &Rc<TensorRef>) -> Result<()> {
        let view = View::check(tensor).map_err(|m| self.tensor_error(name, m))?;
        let (storages, tensor) = (self.storages.clone(), tensor.clone());
        map.insert_deferred(key, tensor.shape.clone(), Box::new(move || storages.borrow_mut().read(&view, &tensor)));
        Ok(())
    }

    fn tensor_error(&self, name: &str, message: String) -> Error {
        Error::format(&self.path, format!("tensor `{name}`: {message}"))
    }
}

/// A view's extent in its storage, checked against the storage's declared size.
struct View {
    numel: usize,
    /// First and one-past-last storage elements the view touches.
    start: usize,
    end: usize,
}

impl View {
    fn check(tensor: &TensorRef) -> std::result::Result<Self, String> {
        let dtype = tensor.storage.dtype;
        if !dtype.is_float() {
            return Err(format!("dtype {} is not a floating-point type", dtype.name()));
        }
        let numel = tensor.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or("shape overflows")?;
        if tensor.storage.numel.checked_mul(dtype.size_bytes()).is_none_or(|b| b > MAX_STORAGE_BYTES) {
            return Err(format!("storage of {} values is implausibly large", tensor.storage.numel));
        }
        if numel == 0 {
            return Ok(Self { numel, start: 0, end: 0 });
        }
        // Highest storage element the view touches; checked before any read.
        let last = tensor
            .shape
            .iter()
            .zip(&tensor.stride)
            .try_fold(tensor.offset, |acc, (&d, &s)| acc.checked_add((d - 1).checked_mul(s)?));
        let end = match last {
            Some(last) if last < tensor.storage.numel => last + 1,
            _ => {
                return Err(format!("view {:?} runs past its storage of {} values", tensor.shape, tensor.storage.numel))
            }
        };
        let start = tensor.offset;
        if end - start > numel.saturating_mul(MAX_SPAN_FACTOR).saturating_add(1024) {
            return Err(format!("view {:?} is spread over {} storage values", tensor.shape, end - start));
        }
        Ok(Self { numel, start, end })
    }
}

impl Storages {
    /// The view's values as f64, reading only the storage bytes between its first and last element.
    fn read(&mut self, view: &View, tensor: &TensorRef) -> std::result::Result<Vec<f64>, String> {
        let dtype = tensor.storage.dtype;
        let size = dtype.size_bytes();
        let entry_name = format!("{}data/{}", self.prefix, tensor.storage.key);
        let entry = self.zip.by_name(&entry_name).map_err(|e| format!("storage `{entry_name}`: {e}"))?;
        let mut entry = entry.take((view.end * size) as u64);
        let io = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let skipped = std::io::copy(&mut entry.by_ref().take((view.start * size) as u64), &mut std::io::sink());
        let mut raw = Vec::new();
        if skipped.map_err(io)? == (view.start * size) as u64 {
            // Grows with the bytes actually present, not with what the headers claim.
            entry.read_to_end(&mut raw).map_err(io)?;
        }
        if raw.len() != (view.end - view.start) * size {
            return Err(format!(
                "storage `{entry_name}` is shorter than the {} values it declares",
                tensor.storage.numel
            ));
        }
        let value = |i: usize| -> f64 {
            let b = &raw[(i - view.start) * size..];
            match dtype {
                StorageDtype::F64 => f64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
                StorageDtype::F32 => f32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as f64,
                StorageDtype::F16 => f16_to_f64(u16::from_le_bytes([b[0], b[1]])),
                StorageDtype::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64,
                _ => unreachable!("integer dtypes are refused by View::check"),
            }
        };
        let mut data = Vec::with_capacity(view.numel);
        let mut index = vec![0usize; tensor.shape.len()];
        for _ in 0..view.numel {
            let at = tensor.offset + index.iter().zip(&tensor.stride).map(|(i, s)| i * s).sum::<usize>();
            data.push(value(at));
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < tensor.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Ok(data)
    }
}

/// Reads a bare state dict (`torch.save(model.state_dict())`): every floating-point tensor of the
/// top-level dictionary, by name.
pub fn read_state_dict(path: &Path) -> Result<TensorMap> {
    let archive = TorchArchive::open(path)?;
    let items = archive
        .root()
        .dict_items()
        .ok_or_else(|| Error::format(path, format!("the top level is {}, not a state dict", archive.root().kind())))?;
    let mut map = TensorMap::new();
    for (key, value) in items {
        let (Some(name), Value::Tensor(t)) = (key.as_str(), &value) else { continue };
        if t.storage.dtype.is_float() {
            archive.insert_deferred(&mut map, name, name, t)?;
        }
    }
    Ok(map)
}

fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((bits >> 10) & 0x1f) as i32;
    let mantissa = (bits & 0x3ff) as f64;
    match exponent {
        0 => sign * mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_decoding() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
    }
}
