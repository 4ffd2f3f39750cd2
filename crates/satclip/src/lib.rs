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
pub use satclip_eval as eval;
pub use satclip_io as io;
pub use satclip_vision as vision;

pub use satclip_core::Dtype;
pub use satclip_core::{Embeddings, Hyperparameters, LocationEncoder};
pub use satclip_io::tables::ReadOptions;
pub use satclip_io::{Error, Result};

use satclip_io::tables::EmbeddingWriter;
use satclip_io::tables::PointReader;

pub mod builtin;
pub mod dataset;
pub mod evaluate;
pub mod finetune;
pub mod images;
pub mod projection;
pub mod provenance;
pub mod registry;
pub mod spec;

pub use images::{
    collect_tiles, embed_images, embed_images_to_file, load_tower, locate, read_sentinel2, Locator, TileLocation,
};

pub use registry::{
    data_dir, geoclip_weights_path, load_encoder, load_geoclip, FeatureEncoder, PointEncoder, ENCODERS,
    GEOCLIP_WEIGHTS_FILE,
};

pub use dataset::{embed_dataset, DatasetSummary};
pub use provenance::{read_provenance, Provenance};
pub use spec::{resolve_checkpoint, ModelSpec};

/// Fails, with the name that downloads it, when `path` names a released checkpoint that is not
/// there: the one message every command gives for it.
fn require_checkpoint(path: &Path) -> Result<()> {
    if !path.exists() {
        if let Some(entry) = spec::released_file(path) {
            let registry::Origin::Hub { repo, .. } = entry.origin else {
                unreachable!("released files are on the Hub")
            };
            let hint = format!(
                "no such file; it is a released SatCLIP checkpoint: name it `{}` (or `{repo}`) instead, and satclip \
                 downloads it into the Hugging Face cache (`satclip download {}` fetches it ahead)",
                entry.name, entry.name
            );
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, hint)));
        }
    }
    Ok(())
}

pub mod prelude {
    pub use crate::{FromCheckpoint, LocationEncoder};
}

/// Loading an encoder from a file: an official Lightning `.ckpt` or a native model directory.
pub trait FromCheckpoint: Sized {
    fn from_checkpoint(path: &Path) -> Result<Self>;
}

impl FromCheckpoint for LocationEncoder {
    fn from_checkpoint(path: &Path) -> Result<Self> {
        require_checkpoint(path)?;
        satclip_io::load_encoder(path)
    }
}

#[derive(Clone, Debug)]
pub struct EmbedOptions {
    pub read: ReadOptions,
    pub dtype: Dtype,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self { read: ReadOptions::default(), dtype: Dtype::F32 }
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
    encoder: &FeatureEncoder,
    input: &Path,
    output: &Path,
    options: &EmbedOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<EmbedSummary> {
    satclip_io::atomic::check_output(output, &[input])?;
    let reader = PointReader::open(input, &options.read)?;
    if let Some(total) = reader.total_rows() {
        progress(Progress::Total(total));
    }
    let provenance = encoder.provenance().with_dtype(options.dtype).to_json();
    let metadata = vec![(provenance::PARQUET_KEY.to_string(), provenance)];
    let mut writer = EmbeddingWriter::create(output, &reader.schema(), encoder.dim(), options.dtype, metadata)?;
    // The writer runs one batch behind on its own thread, so that writing overlaps computing.
    let (send, receive) = std::sync::mpsc::sync_channel::<(arrow_array::RecordBatch, Vec<[f64; 2]>, Embedded)>(1);
    let (computed, written) = std::thread::scope(|scope| {
        let writing = scope.spawn(move || -> Result<EmbeddingWriter> {
            for (columns, points, values) in receive {
                match values {
                    Embedded::F32(v) => writer.write(&columns, &points, &v)?,
                    Embedded::F64(v) => writer.write(&columns, &points, &v)?,
                }
            }
            Ok(writer)
        });
        let computed = (|| -> Result<u64> {
            let mut rows = 0u64;
            for batch in reader {
                let batch = batch?;
                let values = match options.dtype {
                    Dtype::F32 => Embedded::F32(encoder.embed_f32(&batch.coords)?),
                    Dtype::F64 => Embedded::F64(encoder.embed_f64(&batch.coords)?),
                };
                rows += batch.coords.len() as u64;
                if send.send((batch.columns, batch.coords, values)).is_err() {
                    break; // the writer failed: its error is the one to report
                }
                progress(Progress::Done(rows));
            }
            Ok(rows)
        })();
        drop(send);
        (computed, writing.join().expect("the writer thread does not panic"))
    });
    let writer = written?;
    let rows = computed?;
    if rows == 0 {
        return Err(satclip_io::Error::format(input, "no data rows: nothing to embed"));
    }
    writer.finish()?;
    Ok(EmbedSummary { rows })
}

/// One batch's embeddings in the precision they were computed in.
enum Embedded {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// How `embed_raster` lays out its GeoTIFF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RasterFormat {
    /// Cloud-Optimized GeoTIFF: 128-pixel tiles, one plane per band, the floating-point
    /// predictor with this compression, and overviews down to one tile.
    Cog(satclip_io::cog::CogCompression),
    /// The same, stored as int8 with a scale and offset per band: a quarter of the float32
    /// samples. The bands' ranges come from the smallest overview (computed first), widened by
    /// [`INT8_RANGE_MARGIN`] of their span on each side; values beyond are clamped, and the file
    /// states how many and the largest error (`satclip_int8` in its GDAL metadata).
    CogInt8(satclip_io::cog::CogCompression),
    /// One uncompressed strip per row, bands interleaved by pixel, no overviews.
    Striped,
}

/// Tile side of Cloud-Optimized GeoTIFFs, in pixels. A tile of every band is computed and held
/// at once (128² cells × 256 bands × 4 bytes = 16 MB): 256-pixel tiles took 2.8× the memory and
/// no less time for the globe at 0.1°.
pub const COG_TILE: usize = 128;

/// How far beyond the range of the smallest overview's values an int8 COG's bands reach, as a
/// share of that range on each side.
pub const INT8_RANGE_MARGIN: f32 = 0.25;

/// The `satclip_int8` metadata item of an int8 COG: fixed width, so that the numbers known only
/// at the end fit the room reserved at the start.
fn int8_metadata(error: satclip_io::cog::QuantisationError) -> String {
    format!(
        r#"{{"dtype":"int8","value":"scale * stored + offset","nodata":{},"range_margin":{INT8_RANGE_MARGIN},"clamped_values":{:>20},"max_abs_error":{:>16}}}"#,
        satclip_io::cog::INT8_NODATA,
        error.clamped,
        format!("{:.6e}", error.max_abs)
    )
}

/// The int8 band of each embedding dimension, from the values of the first tiles computed.
fn int8_bands(tiles: &[Vec<f32>], dim: usize) -> Vec<satclip_io::cog::Int8Band> {
    let mut range = vec![(f32::INFINITY, f32::NEG_INFINITY); dim];
    for values in tiles {
        for pixel in values.chunks_exact(dim) {
            for (r, &v) in range.iter_mut().zip(pixel).filter(|(_, v)| v.is_finite()) {
                *r = (r.0.min(v), r.1.max(v));
            }
        }
    }
    range
        .into_iter()
        .map(|(lo, hi)| {
            // A band with no values (all water) or one value still gets a usable range.
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (-1.0, 1.0) };
            let margin = ((hi - lo) * INT8_RANGE_MARGIN).max(1e-6);
            satclip_io::cog::Int8Band::covering(lo - margin, hi + margin)
        })
        .collect()
}

/// Cells of a COG tile embedded at once: a quarter of the tile, so that a chunk's embeddings
/// (4 MB) and not a second whole tile's are held beside the tile's.
const COG_EMBED_CHUNK: usize = 4096;

/// Embeds the centre of every cell of `extent` into a float32 GeoTIFF with one band per
/// embedding dimension (EPSG 4326), streamed in bounded memory. With a land mask, cells less
/// than half land are left NaN (the file's nodata value) and not computed. A COG's overviews
/// hold the model's embedding at the centre of each coarser cell (not an average of the finer
/// cells). `progress` is told the cell count (every level), then the cells done.
#[allow(clippy::too_many_arguments)]
pub fn embed_raster(
    encoder: &FeatureEncoder,
    extent: &satclip_core::geo::GridExtent,
    projection: Option<&projection::Projection>,
    land: Option<&satclip_io::landmask::LandMask>,
    dtype: Dtype,
    format: RasterFormat,
    output: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let grid = RasterGrid { extent, projection };
    match format {
        RasterFormat::Striped => embed_raster_striped(encoder, &grid, land, dtype, output, progress),
        RasterFormat::Cog(compression) => {
            embed_raster_cog(encoder, &grid, land, dtype, compression, false, output, progress)
        }
        RasterFormat::CogInt8(compression) => {
            embed_raster_cog(encoder, &grid, land, dtype, compression, true, output, progress)
        }
    }
}

/// A raster's cells: a grid in lon/lat, or in a projected CRS whose cell centres are taken back
/// to lon/lat for the encoder.
struct RasterGrid<'a> {
    extent: &'a satclip_core::geo::GridExtent,
    projection: Option<&'a projection::Projection>,
}

impl RasterGrid<'_> {
    fn georeference(&self) -> satclip_io::geotiff::GeoReference {
        satclip_io::geotiff::GeoReference {
            epsg: self.projection.map_or(4326, |p| u32::from(p.epsg())),
            origin: [self.extent.west, self.extent.north],
            pixel_size: [self.extent.resolution, self.extent.resolution],
        }
    }

    /// (lon, lat) of the centre of the cell at `row`, `col` of the level whose cells are
    /// `scale` grid cells wide (NaN where a projected centre has no lon/lat).
    fn centres(&self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>, scale: usize) -> Vec<[f64; 2]> {
        let (e, size) = (self.extent, self.extent.resolution * scale as f64);
        let mut points: Vec<[f64; 2]> = rows
            .flat_map(|r| {
                cols.clone().map(move |c| [e.west + (c as f64 + 0.5) * size, e.north - (r as f64 + 0.5) * size])
            })
            .collect();
        match self.projection {
            Some(projection) => projection.to_lonlat(&mut points),
            // An overview's last cell may reach past the grid: its centre stays on the globe.
            None => points.iter_mut().for_each(|p| *p = [p[0].clamp(-180.0, 180.0), p[1].clamp(-90.0, 90.0)]),
        }
        points
    }
}

/// The embeddings of `centres` as float32 rows, NaN where the land mask says water.
fn embed_cells(
    encoder: &FeatureEncoder,
    centres: &[[f64; 2]],
    land: Option<&satclip_io::landmask::LandMask>,
    dtype: Dtype,
) -> Result<Vec<f32>> {
    let dim = encoder.dim();
    // Cells without a place (outside a projection's domain) stay empty, like water.
    let keep: Vec<bool> = centres
        .iter()
        .map(|&[lon, lat]| lon.is_finite() && land.is_none_or(|m| m.land_fraction(lon, lat) >= 0.5))
        .collect();
    let kept: Vec<[f64; 2]> = centres.iter().zip(&keep).filter(|(_, k)| **k).map(|(p, _)| *p).collect();
    // The file holds float32: computed in f32 it is stored as is, in f64 rounded once.
    let values = match dtype {
        Dtype::F32 => encoder.embed_f32(&kept)?,
        Dtype::F64 => encoder.embed_f64(&kept)?.iter().map(|v| *v as f32).collect(),
    };
    if kept.len() == centres.len() {
        return Ok(values);
    }
    let mut computed = values.chunks_exact(dim);
    let mut cells = Vec::with_capacity(centres.len() * dim);
    for k in keep {
        if k {
            cells.extend_from_slice(computed.next().expect("one row per kept cell"));
        } else {
            cells.extend(std::iter::repeat_n(f32::NAN, dim));
        }
    }
    Ok(cells)
}

#[allow(clippy::too_many_arguments)]
fn embed_raster_cog(
    encoder: &FeatureEncoder,
    grid: &RasterGrid,
    land: Option<&satclip_io::landmask::LandMask>,
    dtype: Dtype,
    compression: satclip_io::cog::CogCompression,
    int8: bool,
    output: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let extent = grid.extent;
    let mut levels = vec![(extent.width, extent.height)];
    while let Some(&(w, h)) = levels.last().filter(|(w, h)| *w > COG_TILE || *h > COG_TILE) {
        levels.push((w.div_ceil(2), h.div_ceil(2)));
    }
    let georef = grid.georeference();
    let provenance = encoder.provenance().with_dtype(dtype).to_json();
    progress(Progress::Total(levels.iter().map(|(w, h)| (w * h) as u64).sum()));
    // The COG layout puts the smallest overview's tiles first and the full resolution's last.
    let tiles: Vec<(usize, usize, usize)> = levels
        .iter()
        .enumerate()
        .rev()
        .flat_map(|(level, &(w, h))| {
            (0..h.div_ceil(COG_TILE)).flat_map(move |ty| (0..w.div_ceil(COG_TILE)).map(move |tx| (level, tx, ty)))
        })
        .collect();
    let embed_tile = |&(level, tx, ty): &(usize, usize, usize), values: &mut Vec<f32>| -> Result<usize> {
        let (width, height) = levels[level];
        let rows = ty * COG_TILE..((ty + 1) * COG_TILE).min(height);
        let cols = tx * COG_TILE..((tx + 1) * COG_TILE).min(width);
        let centres = grid.centres(rows, cols, 1 << level);
        values.clear();
        for chunk in centres.chunks(COG_EMBED_CHUNK) {
            values.extend(embed_cells(encoder, chunk, land, dtype)?);
        }
        Ok(centres.len())
    };
    // An int8 file needs its bands' ranges before its first tile: the smallest overview's tiles
    // (the first to be written) are computed ahead and give them.
    let smallest = levels.len() - 1;
    let mut ahead: Vec<Vec<f32>> = Vec::new();
    if int8 {
        for tile in tiles.iter().take_while(|t| t.0 == smallest) {
            let mut values = Vec::new();
            embed_tile(tile, &mut values)?;
            ahead.push(values);
        }
    }
    let mut metadata = vec![(provenance::PARQUET_KEY.to_string(), provenance)];
    let samples = match int8 {
        false => satclip_io::cog::CogSamples::F32,
        true => {
            metadata.push((INT8_KEY.to_string(), int8_metadata(Default::default())));
            satclip_io::cog::CogSamples::Int8(int8_bands(&ahead, encoder.dim()))
        }
    };
    let mut writer = satclip_io::cog::CogWriter::create(
        output,
        &levels,
        encoder.dim(),
        COG_TILE,
        georef,
        Some(f32::NAN),
        compression,
        samples,
        metadata,
    )?;
    let mut ahead = ahead.into_iter();
    // Each tile's cells are embedded (in chunks, as the bands' planes are gathered per chunk of
    // bands later), then its bands are compressed in parallel; a writer thread appends the
    // compressed tile to the file while the next is computed.
    let encoder_for_tiles = writer.tile_encoder();
    let (send, receive) = std::sync::mpsc::sync_channel::<satclip_io::cog::EncodedTile>(0);
    let (computed, written) = std::thread::scope(|scope| {
        let writing = scope.spawn(move || -> Result<satclip_io::cog::CogWriter> {
            for encoded in receive {
                writer.write_encoded(encoded)?;
            }
            Ok(writer)
        });
        let computed = (|| -> Result<()> {
            let mut done = 0u64;
            let mut values = Vec::with_capacity(COG_TILE * COG_TILE * encoder.dim());
            for tile @ &(level, tx, ty) in &tiles {
                let cells = match ahead.next() {
                    Some(computed) => {
                        values = computed;
                        values.len() / encoder.dim()
                    }
                    None => embed_tile(tile, &mut values)?,
                };
                let encoded = encoder_for_tiles.encode(level, tx, ty, &values)?;
                if send.send(encoded).is_err() {
                    break; // the writer failed: its error is the one to report
                }
                done += cells as u64;
                progress(Progress::Done(done));
            }
            Ok(())
        })();
        drop(send);
        (computed, writing.join().expect("the writer thread does not panic"))
    });
    let mut writer = written?;
    computed?;
    if int8 {
        writer.set_metadata(INT8_KEY, int8_metadata(writer.quantisation_error()))?;
    }
    writer.finish()
}

/// The GDAL metadata item of an int8 COG that states its quantisation and the error it added.
pub const INT8_KEY: &str = "satclip_int8";

fn embed_raster_striped(
    encoder: &FeatureEncoder,
    grid: &RasterGrid,
    land: Option<&satclip_io::landmask::LandMask>,
    dtype: Dtype,
    output: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let (extent, georef) = (grid.extent, grid.georeference());
    let dim = encoder.dim();
    let layout = satclip_io::geotiff_out::RasterLayout {
        width: extent.width,
        height: extent.height,
        bands: dim,
        georef,
        nodata: Some(f32::NAN),
    };
    let provenance = encoder.provenance().with_dtype(dtype).to_json();
    let mut writer = satclip_io::geotiff_out::GeoTiffWriter::create(output, layout)?
        .with_metadata(vec![(provenance::PARQUET_KEY.to_string(), provenance)]);
    progress(Progress::Total((extent.width * extent.height) as u64));
    // Enough cells per batch to keep every core busy, whole rows so that they can be written.
    let rows_per_batch = (16_384 / extent.width).max(1);
    for first in (0..extent.height).step_by(rows_per_batch) {
        let rows = first..(first + rows_per_batch).min(extent.height);
        let cells = embed_cells(encoder, &grid.centres(rows.clone(), 0..extent.width, 1), land, dtype)?;
        writer.write_rows(&cells)?;
        progress(Progress::Done((rows.end * extent.width) as u64));
    }
    writer.finish()
}

#[derive(Clone, Copy, Debug)]
pub enum Progress {
    Total(u64),
    Done(u64),
}
