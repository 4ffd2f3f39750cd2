//! Formats at the edge of SatCLIP: a safe reader of torch/Lightning checkpoints, our native
//! safetensors format and NPY; with the `tables` feature, streaming point tables (CSV, Parquet,
//! NPY) in and out; with `rasters`, GeoTIFF and netCDF.

pub mod atomic;
#[cfg(feature = "rasters")]
pub mod cog;
pub mod error;
#[cfg(feature = "rasters")]
pub mod geotiff;
#[cfg(feature = "rasters")]
pub mod geotiff_out;
#[cfg(feature = "rasters")]
pub mod grid;
pub mod landmask;
pub mod lightning;
pub mod native;
pub mod npy;
pub mod pickle;
#[cfg(feature = "tables")]
pub mod s2dataset;
#[cfg(feature = "tables")]
pub mod tables;
pub mod torch;

use std::path::Path;

pub use error::{Error, Result};
pub use lightning::LightningCheckpoint;
use satclip_core::LocationEncoder;

/// Opens a file for reading only if it is a regular file: a FIFO or a device named as a
/// checkpoint, tile or table would block forever or never end.
pub fn open_regular(path: &Path) -> Result<std::fs::File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file (a pipe, socket or device)" };
        return Err(Error::format(path, format!("is {kind}; satclip reads regular files")));
    }
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// Runs a third-party decoder on untrusted bytes: a panic inside it (the fuzzers found such in
/// the TIFF and Parquet crates) becomes an error about `path`, naming `what` was being read.
#[cfg(any(feature = "tables", feature = "rasters"))]
pub(crate) fn guard_decoder<T>(path: &Path, what: &str, decode: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .unwrap_or_else(|_| Err(Error::format(path, format!("malformed {what} (the decoder gave up)"))))
}

/// Loads a location encoder from an official Lightning `.ckpt` or a native model directory.
pub fn load_encoder(path: &Path) -> Result<LocationEncoder> {
    if !path.exists() {
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory")));
    }
    if native::is_native_model(path) {
        return native::load(path);
    }
    if path.is_dir() {
        return Err(Error::format(
            path,
            format!("a model directory needs `{}` and `{}`", native::CONFIG_FILE, native::WEIGHTS_FILE),
        ));
    }
    LightningCheckpoint::open(path)?.location_encoder()
}
