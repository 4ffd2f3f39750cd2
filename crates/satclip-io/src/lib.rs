//! Formats at the edge of SatCLIP: a safe reader of torch/Lightning checkpoints, our native
//! safetensors format, NPY, and streaming point tables (CSV, Parquet, NPY) in and out.

pub mod atomic;
pub mod embeddings_out;
pub mod error;
pub mod geotiff;
pub mod geotiff_out;
pub mod grid;
pub mod landmask;
pub mod lightning;
pub mod native;
pub mod npy;
pub mod pickle;
pub mod points;
pub mod s2dataset;
pub mod torch;

use std::path::Path;

pub use error::{Error, Result};
pub use lightning::LightningCheckpoint;
use satclip_core::LocationEncoder;

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
