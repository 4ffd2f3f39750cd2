//! The `torch.save` zip format: `<archive>/data.pkl` (the object tree) plus one raw little-endian
//! file per storage, `<archive>/data/<key>`. Storages are read on demand, so opening a 120 MB
//! checkpoint to take the 1 MB location encoder reads only that megabyte.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use satclip_core::{Tensor, TensorMap};

use crate::error::{Error, Result};
use crate::pickle::{unpickle, StorageDtype, TensorRef, Value};

/// The object tree (`data.pkl`) is metadata: anything bigger than this is not a checkpoint.
const MAX_PICKLE_BYTES: u64 = 256 << 20;
/// No single tensor of a location encoder comes near this; it bounds what a lying header can ask.
const MAX_TENSOR_BYTES: usize = 4 << 30;

pub struct TorchArchive {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
    prefix: String,
    root: Value,
}

impl TorchArchive {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            Error::format(
                path,
                format!(
                    "not a zip-format torch checkpoint ({e}); files written by torch < 1.6 or with \
                     `_use_new_zipfile_serialization=False` are not supported: re-save them with a current torch"
                ),
            )
        })?;
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
                return Err(Error::format(path, "data.pkl is larger than 256 MiB"));
            }
            buf
        };
        let root = unpickle(&pickle).map_err(|e| Error::format(path, format!("{pkl_name}: {e}")))?;
        Ok(Self { path: path.to_path_buf(), zip, prefix, root })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Reads a tensor's values as f64. Integer tensors are refused: weights are floating point.
    pub fn read_f64(&mut self, name: &str, tensor: &TensorRef) -> Result<Tensor> {
        let err = |msg: String| Error::format(&self.path, format!("tensor `{name}`: {msg}"));
        let dtype = tensor.storage.dtype;
        if !dtype.is_float() {
            return Err(err(format!("dtype {} is not a floating-point type", dtype.name())));
        }
        let numel = tensor
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| err("shape overflows".into()))?;
        // Highest storage element the view touches; checked before any read.
        let last = tensor.shape.iter().zip(&tensor.stride).try_fold(tensor.offset, |acc, (&d, &s)| {
            if d == 0 {
                Some(acc)
            } else {
                acc.checked_add((d - 1).checked_mul(s)?)
            }
        });
        match last {
            Some(last) if numel == 0 || last < tensor.storage.numel => {}
            _ => {
                return Err(err(format!(
                    "view {:?} runs past its storage of {} values",
                    tensor.shape, tensor.storage.numel
                )))
            }
        }
        let storage_bytes = tensor
            .storage
            .numel
            .checked_mul(dtype.size_bytes())
            .filter(|&b| b <= MAX_TENSOR_BYTES)
            .ok_or_else(|| err("storage is implausibly large".into()))?;
        let entry_name = format!("{}data/{}", self.prefix, tensor.storage.key);
        let raw = {
            let entry = self.zip.by_name(&entry_name).map_err(|e| err(format!("storage `{entry_name}`: {e}")))?;
            // Grows with the bytes actually present, not with what the headers claim.
            let mut raw = Vec::new();
            entry.take(storage_bytes as u64).read_to_end(&mut raw).map_err(|e| Error::io(&self.path, e))?;
            raw
        };
        if raw.len() != storage_bytes {
            return Err(err(format!("storage `{entry_name}` holds {} bytes, expected {storage_bytes}", raw.len())));
        }
        let value = |i: usize| -> f64 {
            let b = &raw[i * dtype.size_bytes()..];
            match dtype {
                StorageDtype::F64 => f64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
                StorageDtype::F32 => f32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as f64,
                StorageDtype::F16 => f16_to_f64(u16::from_le_bytes([b[0], b[1]])),
                StorageDtype::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64,
                _ => unreachable!("integer dtypes are refused above"),
            }
        };
        let mut data = Vec::with_capacity(numel);
        let mut index = vec![0usize; tensor.shape.len()];
        for _ in 0..numel {
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
        Tensor::new(tensor.shape.clone(), data).map_err(|e| err(e.to_string()))
    }
}

/// Reads a bare state dict (`torch.save(model.state_dict())`): every floating-point tensor of the
/// top-level dictionary, by name.
pub fn read_state_dict(path: &Path) -> Result<TensorMap> {
    let mut archive = TorchArchive::open(path)?;
    let items = archive
        .root()
        .dict_items()
        .ok_or_else(|| Error::format(path, format!("the top level is {}, not a state dict", archive.root().kind())))?;
    let mut map = TensorMap::new();
    for (key, value) in items {
        let (Some(name), Value::Tensor(t)) = (key.as_str(), &value) else { continue };
        if t.storage.dtype.is_float() {
            map.insert(name, archive.read_f64(name, t)?);
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
