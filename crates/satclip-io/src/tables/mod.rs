//! Point tables in and embedding tables out: CSV, Parquet/GeoParquet and NPY, one file per
//! format, chosen by extension ([`TableFormat`]).

mod csv_points;
mod embeddings;
mod feature_table;
pub mod ipc;
mod npy_points;
mod parquet_guard;
mod parquet_points;
mod points;
pub mod wkb;

use std::path::Path;

pub use embeddings::{EmbeddingWriter, EMBEDDING_COLUMN};
pub use feature_table::{FeatureTable, MATCH_DEGREES};
pub use points::{is_point, Batches, OnInvalid, PointBatch, PointReader, ReadOptions};

use crate::error::{Error, Result};

/// Column names recognised as longitude / latitude (compared case-insensitively).
pub const LON_NAMES: [&str; 5] = ["lon", "lng", "long", "longitude", "lon_deg"];
pub const LAT_NAMES: [&str; 3] = ["lat", "latitude", "lat_deg"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Parquet,
    Npy,
}

impl TableFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(Self::Csv),
            "parquet" | "pq" | "geoparquet" => Ok(Self::Parquet),
            "npy" => Ok(Self::Npy),
            _ => Err(Error::format(
                path,
                "unknown file type: use a .csv, .parquet (or .pq, .geoparquet) or .npy extension",
            )),
        }
    }
}

/// The value of `key` in a Parquet file's footer key-value metadata.
pub fn parquet_metadata(path: &Path, key: &str) -> Result<Option<String>> {
    let mut file = crate::open_regular(path)?;
    parquet_guard::check_footer(path, &mut file)?;
    let reader = crate::guard_decoder(path, "Parquet footer", || {
        parquet::file::reader::SerializedFileReader::new(file)
            .map_err(|e| Error::format(path, format!("not a readable Parquet file: {e}")))
    })?;
    use parquet::file::reader::FileReader;
    let found = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|pairs| pairs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()));
    Ok(found)
}

/// Input columns travel to the output; more than this many is not a table of points.
pub const MAX_COLUMNS: usize = 4096;

/// The output repeats the input's columns: names must be unique (Parquet readers refuse
/// duplicates) and their number bounded (each costs memory in every batch).
fn check_column_names(path: &Path, names: &[String]) -> Result<()> {
    if names.len() > MAX_COLUMNS {
        return Err(Error::format(
            path,
            format!("has {} columns; satclip carries at most {MAX_COLUMNS} input columns to its output", names.len()),
        ));
    }
    let mut seen = std::collections::HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(first) = seen.insert(name.as_str(), i) {
            return Err(Error::format(
                path,
                format!("columns {} and {} are both named `{name}`; column names must be unique", first + 1, i + 1),
            ));
        }
    }
    Ok(())
}

/// Finds the lon/lat column: the name asked for, else the first recognised spelling.
fn find_column(
    path: &Path,
    names: &[String],
    asked: Option<&str>,
    known: &[&str],
    what: &str,
    flag: &str,
) -> Result<usize> {
    let found = match asked {
        Some(name) => {
            names.iter().position(|n| n == name).or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(name)))
        }
        None => known.iter().find_map(|k| names.iter().position(|n| n.eq_ignore_ascii_case(k))),
    };
    found.ok_or_else(|| {
        let looked = match asked {
            Some(name) => format!("`{name}`"),
            None => known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
        };
        Error::format(
            path,
            format!("no {what} column (looked for {looked}; the file has: {}); name it with {flag}", names.join(", ")),
        )
    })
}
