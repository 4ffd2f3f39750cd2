//! NumPy `.npy` files: the header is parsed without evaluating anything, and its shape is
//! checked against the file's length before any data is read.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use satclip_core::kernels::Float;
use satclip_core::Dtype;

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";
const MAX_HEADER_BYTES: usize = 1 << 16;
/// Header size we reserve when writing, so the final shape can be patched in place.
const WRITE_HEADER_BYTES: usize = 128;

fn descr(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::F64 => "<f8",
        Dtype::F32 => "<f4",
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    pub dtype: Dtype,
    pub big_endian: bool,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the first data byte.
    pub data_offset: u64,
}

impl NpyHeader {
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    pub fn decode(&self, bytes: &[u8]) -> f64 {
        match (self.dtype, self.big_endian) {
            (Dtype::F64, false) => f64::from_le_bytes(bytes.try_into().expect("8 bytes")),
            (Dtype::F64, true) => f64::from_be_bytes(bytes.try_into().expect("8 bytes")),
            (Dtype::F32, false) => f32::from_le_bytes(bytes.try_into().expect("4 bytes")) as f64,
            (Dtype::F32, true) => f32::from_be_bytes(bytes.try_into().expect("4 bytes")) as f64,
        }
    }
}

/// Reads and validates the header; the reader is left at the first data byte.
pub fn read_header<R: Read>(path: &Path, reader: &mut R, file_len: u64) -> Result<NpyHeader> {
    let bad = |m: &str| Error::format(path, format!("not a valid .npy file: {m}"));
    let mut prefix = [0u8; 8];
    reader.read_exact(&mut prefix).map_err(|_| bad("too short"))?;
    if &prefix[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (len_bytes, header_len) = match prefix[6] {
        1 => {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b).map_err(|_| bad("truncated header"))?;
            (2, u16::from_le_bytes(b) as usize)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            reader.read_exact(&mut b).map_err(|_| bad("truncated header"))?;
            (4, u32::from_le_bytes(b) as usize)
        }
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(bad("header longer than 64 KiB"));
    }
    let mut text = vec![0u8; header_len];
    reader.read_exact(&mut text).map_err(|_| bad("truncated header"))?;
    let text = String::from_utf8_lossy(&text);
    let descr = dict_value(&text, "descr").ok_or_else(|| bad("no 'descr'"))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let (big_endian, dtype) = match descr {
        "<f8" | "|f8" | "=f8" => (false, Dtype::F64),
        ">f8" => (true, Dtype::F64),
        "<f4" | "|f4" | "=f4" => (false, Dtype::F32),
        ">f4" => (true, Dtype::F32),
        other => return Err(bad(&format!("dtype {other} is not float64 or float32"))),
    };
    let fortran_order = match dict_value(&text, "fortran_order").map(str::trim) {
        Some("False") => false,
        Some("True") => true,
        _ => return Err(bad("no 'fortran_order'")),
    };
    let shape_text = dict_value(&text, "shape").ok_or_else(|| bad("no 'shape'"))?;
    let shape = shape_text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(&format!("bad shape entry {s:?}"))))
        .collect::<Result<Vec<_>>>()?;
    let header =
        NpyHeader { dtype, big_endian, fortran_order, shape, data_offset: (6 + 2 + len_bytes + header_len) as u64 };
    let data_bytes =
        header.numel().and_then(|n| n.checked_mul(dtype.size())).ok_or_else(|| bad("shape overflows"))? as u64;
    if header.data_offset + data_bytes != file_len {
        return Err(bad(&format!(
            "shape {:?} needs {data_bytes} data bytes but the file holds {}",
            header.shape,
            file_len.saturating_sub(header.data_offset)
        )));
    }
    Ok(header)
}

/// The text after `'key':` up to the next top-level comma (a tuple counts as one value).
fn dict_value<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let start = text.find(&format!("'{key}'")).or_else(|| text.find(&format!("\"{key}\"")))? + key.len() + 2;
    let rest = text[start..].trim_start().strip_prefix(':')?;
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// Reads a whole float array (any rank) into row-major f64: its shape and values.
pub fn read_array<R: Read>(path: &Path, reader: &mut R, len: u64) -> Result<(Vec<usize>, Vec<f64>)> {
    let header = read_header(path, reader, len)?;
    let mut raw = Vec::new();
    reader.read_to_end(&mut raw).map_err(|e| Error::io(path, e))?;
    let values: Vec<f64> = raw.chunks_exact(header.dtype.size()).map(|b| header.decode(b)).collect();
    let data = match header.shape[..] {
        [rows, cols] if header.fortran_order && cols > 1 => {
            (0..rows * cols).map(|i| values[(i % cols) * rows + i / cols]).collect()
        }
        _ if header.fortran_order && header.shape.len() > 2 => {
            return Err(Error::format(path, "Fortran-ordered arrays of rank > 2 are not supported"))
        }
        _ => values,
    };
    Ok((header.shape, data))
}

/// Reads a whole 1-D or 2-D float array into row-major f64.
pub fn read_matrix(path: &Path) -> Result<(usize, usize, Vec<f64>)> {
    let file = crate::open_regular(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let (shape, data) = read_array(path, &mut std::io::BufReader::new(file), len)?;
    match shape[..] {
        [r, c] => Ok((r, c, data)),
        [r] => Ok((r, 1, data)),
        _ => Err(Error::format(path, format!("expected a 2-D array, found shape {shape:?}"))),
    }
}

/// Reads every array of an `.npz` archive: (name without `.npy`, shape, values).
pub fn read_npz(path: &Path) -> Result<Vec<(String, Vec<usize>, Vec<f64>)>> {
    let file = crate::open_regular(path)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::format(path, format!("not an .npz archive: {e}")))?;
    let mut arrays = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| Error::format(path, e.to_string()))?;
        let name = entry.name().map_err(|e| Error::format(path, e.to_string()))?.to_string();
        let len = entry.size();
        let inner = path.join(&name);
        let (shape, data) = read_array(&inner, &mut entry.take(len), len)?;
        arrays.push((name.trim_end_matches(".npy").to_string(), shape, data));
    }
    Ok(arrays)
}

/// Streams rows of a `[rows × cols]` array; the header's row count is patched in at `finish`.
pub struct NpyWriter<W: Write + Seek> {
    out: W,
    dtype: Dtype,
    cols: usize,
    rows: usize,
}

impl<W: Write + Seek> NpyWriter<W> {
    pub fn new(mut out: W, dtype: Dtype, cols: usize) -> std::io::Result<Self> {
        out.write_all(&header_bytes(dtype, 0, cols))?;
        Ok(Self { out, dtype, cols, rows: 0 })
    }

    /// Appends row-major rows, converted to the file's dtype.
    pub fn write_rows<T: Float>(&mut self, values: &[T]) -> std::io::Result<()> {
        debug_assert_eq!(values.len() % self.cols.max(1), 0);
        let mut buf = Vec::with_capacity(values.len() * self.dtype.size());
        match self.dtype {
            Dtype::F64 => values.iter().for_each(|v| buf.extend_from_slice(&v.to_f64().to_le_bytes())),
            Dtype::F32 => values.iter().for_each(|v| buf.extend_from_slice(&(v.to_f64() as f32).to_le_bytes())),
        }
        self.out.write_all(&buf)?;
        self.rows += values.len() / self.cols.max(1);
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header_bytes(self.dtype, self.rows, self.cols))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn header_bytes(dtype: Dtype, rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}", descr(dtype));
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    let header_len = WRITE_HEADER_BYTES - out.len() - 2;
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(WRITE_HEADER_BYTES - 1, b' ');
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_patched_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = NpyWriter::new(file, Dtype::F64, 3).unwrap();
        w.write_rows(&[1.0, 2.0, 3.0]).unwrap();
        w.write_rows(&[4.0, 5.0, 6.0, 7.0, 8.0, 9.5]).unwrap();
        w.finish().unwrap();
        let (rows, cols, data) = read_matrix(&path).unwrap();
        assert_eq!((rows, cols), (3, 3));
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.5]);
        assert_eq!(std::fs::read(&path).unwrap().len(), WRITE_HEADER_BYTES + 72);
    }

    #[test]
    fn lying_shapes_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let mut bytes = header_bytes(Dtype::F64, 1_000_000_000_000, 2);
        bytes.extend_from_slice(&[0u8; 16]);
        std::fs::write(&path, &bytes).unwrap();
        let err = read_matrix(&path).unwrap_err().to_string();
        assert!(err.contains("needs") && err.contains("a.npy"), "{err}");

        std::fs::write(&path, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<i8'").unwrap();
        assert!(read_matrix(&path).is_err());
        std::fs::write(&path, b"PK\x03\x04 not numpy at all").unwrap();
        assert!(read_matrix(&path).unwrap_err().to_string().contains("magic"));
    }
}
