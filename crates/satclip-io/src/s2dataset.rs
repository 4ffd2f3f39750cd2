//! S2-100K-style datasets: a directory with `index.csv` (columns `lat`, `lon`, `fn`; note
//! latitude first) and the tiles under `images/` (or beside the index).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Files below this size are skipped, as the official loader does ("probably contained nodata
/// pixels").
pub const MIN_FILE_BYTES: u64 = 10_000;

#[derive(Clone, Debug, PartialEq)]
pub struct S2Entry {
    pub file: PathBuf,
    pub lon: f64,
    pub lat: f64,
}

#[derive(Clone, Debug)]
pub struct S2Dataset {
    pub root: PathBuf,
    pub entries: Vec<S2Entry>,
    /// Indexed files left out for being under [`MIN_FILE_BYTES`].
    pub skipped_small: Vec<PathBuf>,
}

impl S2Dataset {
    /// Opens with the official rule that files under [`MIN_FILE_BYTES`] are skipped.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with_min_bytes(root, MIN_FILE_BYTES)
    }

    pub fn open_with_min_bytes(root: &Path, min_file_bytes: u64) -> Result<Self> {
        let index = root.join("index.csv");
        let images = if root.join("images").is_dir() { root.join("images") } else { root.to_path_buf() };
        let mut reader = csv::Reader::from_path(&index).map_err(|e| Error::format(&index, e.to_string()))?;
        let headers = reader.headers().map_err(|e| Error::format(&index, e.to_string()))?.clone();
        let column = |name: &str| {
            headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
                Error::format(&index, format!("no `{name}` column (the S2-100K index has lat, lon, fn)"))
            })
        };
        let (lat_col, lon_col, fn_col) = (column("lat")?, column("lon")?, column("fn")?);
        let (mut entries, mut skipped_small) = (Vec::new(), Vec::new());
        for (i, record) in reader.records().enumerate() {
            let row = i as u64 + 1;
            let record = record.map_err(|e| Error::format(&index, format!("row {row}: {e}")))?;
            let number = |col: usize, name: &str| -> Result<f64> {
                let text = record.get(col).unwrap_or("").trim();
                text.parse::<f64>().map_err(|_| Error::row(&index, row, name, format!("`{text}` is not a number")))
            };
            let (lat, lon) = (number(lat_col, "lat")?, number(lon_col, "lon")?);
            satclip_core::check_coordinate(lon, lat).map_err(|p| Error::row(&index, row, p.field(), p.to_string()))?;
            let file = images.join(record.get(fn_col).unwrap_or("").trim());
            let size = std::fs::metadata(&file)
                .map_err(|e| Error::row(&index, row, "fn", format!("{}: {e}", file.display())))?
                .len();
            if size < min_file_bytes {
                skipped_small.push(file);
            } else {
                entries.push(S2Entry { file, lon, lat });
            }
        }
        if entries.is_empty() {
            return Err(Error::format(&index, "no usable tiles"));
        }
        Ok(Self { root: root.to_path_buf(), entries, skipped_small })
    }
}
