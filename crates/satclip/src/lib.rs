//! SatCLIP location embeddings in Rust.
//!
//! ```no_run
//! use satclip::prelude::*;
//!
//! let encoder = LocationEncoder::from_checkpoint("satclip-vit16-l40.ckpt".as_ref())?;
//! let embeddings = encoder.embed(&[[-122.4194, 37.7749], [139.7, 35.7]])?;
//! assert_eq!(embeddings.dim, 256);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

pub use satclip_core as core;
pub use satclip_io as io;
pub use satclip_vision as vision;

pub use satclip_core::{Embeddings, Hyperparameters, LocationEncoder};
pub use satclip_io::embeddings_out::OutputDtype;
pub use satclip_io::points::ReadOptions;
pub use satclip_io::{Error, Result};

use satclip_io::embeddings_out::EmbeddingWriter;
use satclip_io::points::PointReader;
use satclip_io::LightningCheckpoint;
use satclip_vision::{Image, Tower};

pub mod prelude {
    pub use crate::{FromCheckpoint, LocationEncoder};
}

/// Loading an encoder from a file: an official Lightning `.ckpt` or a native model directory.
pub trait FromCheckpoint: Sized {
    fn from_checkpoint(path: &Path) -> Result<Self>;
}

impl FromCheckpoint for LocationEncoder {
    fn from_checkpoint(path: &Path) -> Result<Self> {
        satclip_io::load_encoder(path)
    }
}

#[derive(Clone, Debug)]
pub struct EmbedOptions {
    pub read: ReadOptions,
    pub dtype: OutputDtype,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self { read: ReadOptions::default(), dtype: OutputDtype::F32 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbedSummary {
    pub rows: u64,
}

/// Streams a point table through the encoder into an embedding table. `progress` is told the
/// total row count once (when the format records it) and then the rows done after each batch.
/// The output appears only when everything succeeded.
pub fn embed_file(
    encoder: &LocationEncoder,
    input: &Path,
    output: &Path,
    options: &EmbedOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<EmbedSummary> {
    let reader = PointReader::open(input, &options.read)?;
    if let Some(total) = reader.total_rows() {
        progress(Progress::Total(total));
    }
    let mut writer = EmbeddingWriter::create(output, &reader.schema(), encoder.dim(), options.dtype)?;
    let mut rows = 0u64;
    let (mut wide, mut narrow) = (Vec::new(), Vec::new());
    for batch in reader {
        let batch = batch?;
        let len = batch.coords.len() * encoder.dim();
        let computed = match options.dtype {
            // The precision written is the precision computed: f64 is the official path.
            OutputDtype::F64 => {
                wide.resize(len, 0.0);
                encoder.embed_into(&batch.coords, &mut wide)
            }
            OutputDtype::F32 => {
                narrow.resize(len, 0.0);
                let result = encoder.embed_into_f32(&batch.coords, &mut narrow);
                wide.clear();
                wide.extend(narrow.iter().map(|v| *v as f64));
                result
            }
        };
        computed.map_err(|e| satclip_io::Error::model(input, e))?;
        writer.write(&batch.columns, &wide)?;
        rows += batch.coords.len() as u64;
        progress(Progress::Done(rows));
    }
    if rows == 0 {
        return Err(satclip_io::Error::format(input, "no data rows: nothing to embed"));
    }
    writer.finish()?;
    Ok(EmbedSummary { rows })
}

#[derive(Clone, Copy, Debug)]
pub enum Progress {
    Total(u64),
    Done(u64),
}

/// The image tower of an official checkpoint (`vision_layers` and the `model.visual.*` tensors).
pub fn load_tower(checkpoint: &Path) -> Result<Tower> {
    let mut ckpt = LightningCheckpoint::open(checkpoint)?;
    let vision_layers = match ckpt.hyper_parameter("vision_layers") {
        Some(satclip_io::pickle::Value::Str(s)) => s.to_string(),
        Some(other) => {
            return Err(satclip_io::Error::format(
                checkpoint,
                format!(
                    "vision_layers is {}, not one of the pretrained towers (moco_resnet18, moco_resnet50, moco_vit16)",
                    other.kind()
                ),
            ))
        }
        None => return Err(satclip_io::Error::format(checkpoint, "no vision_layers hyper-parameter")),
    };
    let tensors = ckpt.tensors_with_prefix("model.visual.")?;
    Tower::load(&vision_layers, tensors).map_err(|e| satclip_io::Error::format(checkpoint, e.to_string()))
}

/// A 12-band Sentinel-2 L2A GeoTIFF (S2-100K format), preprocessed as the official code does,
/// with the tile's lon/lat when the file is georeferenced.
pub fn read_sentinel2(path: &Path) -> Result<(Image, Option<[f64; 2]>)> {
    let raster = satclip_io::geotiff::read(path)?;
    if raster.bands != 12 {
        return Err(satclip_io::Error::format(
            path,
            format!("has {} bands; Sentinel-2 tiles in the S2-100K format have 12 (B01-B12 without B10)", raster.bands),
        ));
    }
    let image = Image::from_sentinel2_l2a(raster.width, raster.height, &raster.data);
    Ok((image, raster.centre_lonlat()))
}
