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
pub use satclip_io::tables::{OnInvalid, ReadOptions};
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

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EmbedSummary {
    pub rows: u64,
    /// Rows written without an embedding, having no valid point (read with
    /// [`OnInvalid::Null`](satclip_io::tables::OnInvalid)).
    pub nulls: u64,
    /// Why the first of them has no point, naming the file, row and field.
    pub first_null: Option<String>,
}

impl EmbedSummary {
    /// The line that tells a user how many rows were written without an embedding and why
    /// the first was; `None` when every row has one.
    pub fn nulls_message(&self) -> Option<String> {
        let why = self.first_null.as_deref()?;
        Some(format!(
            "{} of {} rows had no valid point and were written with a null embedding; the first: {why}",
            self.nulls, self.rows
        ))
    }
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
    embed_points(encoder, PointReader::open(input, &options.read)?, output, options, progress)
}

/// [`embed_file`] from points already opened: a file, or a stream of Arrow batches
/// ([`PointReader::from_batches`]) such as a Spark task's, so that engines write the files the
/// command line writes.
pub fn embed_points(
    encoder: &FeatureEncoder,
    reader: PointReader,
    output: &Path,
    options: &EmbedOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<EmbedSummary> {
    let input = reader.path().to_path_buf();
    satclip_io::atomic::check_output(output, &[&input])?;
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
            for (columns, points, Embedded { values, valid }) in receive {
                match (values, valid) {
                    (Values::F32(v), None) => writer.write(&columns, &points, &v)?,
                    (Values::F64(v), None) => writer.write(&columns, &points, &v)?,
                    (Values::F32(v), Some(valid)) => writer.write_with_nulls(&columns, &points, &v, &valid)?,
                    (Values::F64(v), Some(valid)) => writer.write_with_nulls(&columns, &points, &v, &valid)?,
                }
            }
            Ok(writer)
        });
        let computed = (|| -> Result<EmbedSummary> {
            let mut summary = EmbedSummary::default();
            for batch in reader {
                let batch = batch?;
                if summary.first_null.is_none() {
                    summary.first_null = batch.first_invalid.map(|e| e.to_string());
                }
                let embedded = Embedded::of(encoder, &batch.coords, options.dtype)?;
                summary.rows += batch.coords.len() as u64;
                summary.nulls += embedded.valid.as_ref().map_or(0, |v| v.iter().filter(|ok| !**ok).count() as u64);
                if send.send((batch.columns, batch.coords, embedded)).is_err() {
                    break; // the writer failed: its error is the one to report
                }
                progress(Progress::Done(summary.rows));
            }
            Ok(summary)
        })();
        drop(send);
        (computed, writing.join().expect("the writer thread does not panic"))
    });
    let writer = written?;
    let summary = computed?;
    if summary.rows == 0 {
        return Err(satclip_io::Error::format(&input, "no data rows: nothing to embed"));
    }
    writer.finish()?;
    Ok(summary)
}

/// One batch's embeddings, and which rows have one.
struct Embedded {
    values: Values,
    /// `None`: every row. Else false for a row without a valid point, whose values are NaN.
    valid: Option<Vec<bool>>,
}

/// Embeddings in the precision they were computed in.
enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Embedded {
    /// Embeds the points of `coords` (NaN for a row without one, which gets NaN values).
    fn of(encoder: &FeatureEncoder, coords: &[[f64; 2]], dtype: Dtype) -> Result<Self> {
        let embed = |points: &[[f64; 2]]| -> Result<Values> {
            Ok(match dtype {
                Dtype::F32 => Values::F32(encoder.embed_f32(points)?),
                Dtype::F64 => Values::F64(encoder.embed_f64(points)?),
            })
        };
        let valid: Vec<bool> = coords.iter().map(satclip_io::tables::is_point).collect();
        if valid.iter().all(|&ok| ok) {
            return Ok(Self { values: embed(coords)?, valid: None });
        }
        let points: Vec<[f64; 2]> = coords.iter().zip(&valid).filter(|(_, &ok)| ok).map(|(p, _)| *p).collect();
        let values = match embed(&points)? {
            Values::F32(v) => Values::F32(scatter_rows(&v, &valid, encoder.dim(), f32::NAN)),
            Values::F64(v) => Values::F64(scatter_rows(&v, &valid, encoder.dim(), f64::NAN)),
        };
        Ok(Self { values, valid: Some(valid) })
    }
}

/// `rows` (one per true entry of `valid`, `dim` values each) laid out one per entry of `valid`,
/// `fill` in the rows of the false entries.
fn scatter_rows<T: Copy>(rows: &[T], valid: &[bool], dim: usize, fill: T) -> Vec<T> {
    let mut out = vec![fill; valid.len() * dim];
    let mut next = rows.chunks_exact(dim);
    for (slot, _) in out.chunks_exact_mut(dim).zip(valid).filter(|(_, ok)| **ok) {
        slot.copy_from_slice(next.next().expect("one row per valid entry"));
    }
    out
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

/// The int8 band of each embedding dimension, from the band planes of the first tiles computed.
fn int8_bands(tiles: &[Vec<f32>], dim: usize) -> Vec<satclip_io::cog::Int8Band> {
    let mut range = vec![(f32::INFINITY, f32::NEG_INFINITY); dim];
    for planes in tiles {
        for (r, plane) in range.iter_mut().zip(planes.chunks_exact(COG_TILE * COG_TILE)) {
            for &v in plane.iter().filter(|v| v.is_finite()) {
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

/// Rows of a COG tile one task embeds: 512 cells (384 where a quarter are read back from the
/// coarser level), a whole number of the encoder's 128-row tiles, so that a task's embeddings
/// (0.5 MB) and features are all that is held beside the tile's planes. The tile is one parallel
/// region of 32 such tasks: embedding it in 512-cell chunks, each a parallel region of its own
/// followed by another to scatter it, left a core idle at every one of the 64 barriers a tile
/// had whenever the writer thread took a core (with the scatter below, the globe at 0.1° took
/// 64.3 s at the median that way, 60.8 s now).
const COG_TASK_ROWS: usize = 4;

/// Bands of a tile each thread compresses per batch sent to the writer thread (2 MB of planes
/// in flight on two threads).
const COG_BANDS_PER_THREAD: usize = 16;

/// Embeds the centre of every cell of `extent` into a float32 GeoTIFF with one band per
/// embedding dimension (EPSG 4326), streamed in bounded memory. With a land mask, cells less
/// than half land are left NaN (the file's nodata value) and not computed. A COG's overviews
/// are nearest-neighbour: each coarser cell holds the embedding of its north-west
/// full-resolution cell, so the levels nest and no cell is embedded twice. `progress` is told
/// the cell count (every level), then the cells done.
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

    /// (lon, lat) of the centres of `cells` (row, column) of the level whose cells are `scale`
    /// grid cells wide: each is the centre of its north-west grid cell, so that every level's
    /// cells are grid cells, and each level's cells with even row and column are the next
    /// coarser level's (NaN where a projected centre has no lon/lat).
    fn centres(&self, cells: impl Iterator<Item = (usize, usize)>, scale: usize) -> Vec<[f64; 2]> {
        let e = self.extent;
        let mut points: Vec<[f64; 2]> = cells
            .map(|(r, c)| {
                [
                    e.west + ((c * scale) as f64 + 0.5) * e.resolution,
                    e.north - ((r * scale) as f64 + 0.5) * e.resolution,
                ]
            })
            .collect();
        if let Some(projection) = self.projection {
            projection.to_lonlat(&mut points);
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
    let dim = encoder.dim();
    let tile_size = |level: usize, tx: usize, ty: usize| {
        let (width, height) = levels[level];
        ((height - ty * COG_TILE).min(COG_TILE), (width - tx * COG_TILE).min(COG_TILE))
    };
    // The spool of the cells levels share; a tile reserves its finer tiles' blocks when its own
    // tasks are made (`SharedCells::spool`).
    let mut shared = SharedCells::create(output, dim)?;
    // A tile's cells, into its band planes: those shared with the coarser level (even row and
    // column: tiles start at even ones) read back from `spool.own`, the rest embedded, and the
    // quadrants the finer level shares kept. Each task owns `COG_TASK_ROWS` rows of every plane.
    let embed_tile = |&(level, tx, ty): &(usize, usize, usize),
                      planes: &mut Vec<f32>,
                      shared: &SharedCells,
                      spool: &TileSpool|
     -> Result<()> {
        use rayon::prelude::*;
        let (rows, columns) = tile_size(level, tx, ty);
        planes.resize(dim * COG_TILE * COG_TILE, f32::NAN);
        let mut tasks: Vec<Vec<&mut [f32]>> =
            (0..rows.div_ceil(COG_TASK_ROWS)).map(|_| Vec::with_capacity(dim)).collect();
        for plane in planes.chunks_exact_mut(COG_TILE * COG_TILE) {
            for (bands, task_rows) in tasks.iter_mut().zip(plane.chunks_mut(COG_TASK_ROWS * COG_TILE)) {
                bands.push(task_rows);
            }
        }
        tasks.into_par_iter().enumerate().try_for_each(|(task, mut bands)| {
            let (first, last) = (task * COG_TASK_ROWS, ((task + 1) * COG_TASK_ROWS).min(rows));
            if let Some(block) = spool.own {
                shared.take(block, first, last, &mut bands)?;
            }
            let read_back = spool.own.is_some();
            let cells: Vec<(usize, usize)> = (first..last)
                .flat_map(|r| (0..columns).map(move |c| (r, c)))
                .filter(|&(r, c)| !(read_back && r % 2 == 0 && c % 2 == 0))
                .collect();
            let centres = grid.centres(cells.iter().map(|&(r, c)| (ty * COG_TILE + r, tx * COG_TILE + c)), 1 << level);
            let computed = embed_cells(encoder, &centres, land, dtype)?;
            put_in_planes(&cells, first, &computed, &mut bands);
            for &child in &spool.children {
                shared.keep(child, first, last, &bands)?;
            }
            Ok(())
        })
    };
    // An int8 file needs its bands' ranges before its first tile: the smallest overview's tiles
    // (the first to be written) are computed ahead and give them.
    let smallest = levels.len() - 1;
    let mut ahead: Vec<Vec<f32>> = Vec::new();
    if int8 {
        for tile @ &(level, tx, ty) in tiles.iter().take_while(|t| t.0 == smallest) {
            let mut values = Vec::new();
            let spool = shared.spool(&levels, level, (tx, ty))?;
            embed_tile(tile, &mut values, &shared, &spool)?;
            ahead.push(values);
        }
    }
    let mut metadata = vec![(provenance::PARQUET_KEY.to_string(), provenance)];
    let samples = match int8 {
        false => satclip_io::cog::CogSamples::F32,
        true => {
            metadata.push((INT8_KEY.to_string(), int8_metadata(Default::default())));
            satclip_io::cog::CogSamples::Int8(int8_bands(&ahead, dim))
        }
    };
    let mut writer = satclip_io::cog::CogWriter::create(
        output,
        &levels,
        dim,
        COG_TILE,
        georef,
        Some(f32::NAN),
        compression,
        samples,
        metadata,
    )?;
    let mut ahead = ahead.into_iter();
    // Each tile's cells are embedded (one parallel region), then its bands are compressed in parallel,
    // a batch of band groups at a time, which a writer thread appends to the file while the
    // next batch is compressed.
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
            // The tile's band planes, `COG_TILE` square, NaN (nodata) beyond the image's edges.
            let mut values = Vec::with_capacity(dim * COG_TILE * COG_TILE);
            for tile @ &(level, tx, ty) in &tiles {
                let (rows, columns) = tile_size(level, tx, ty);
                match ahead.next() {
                    Some(computed) => values = computed,
                    None => {
                        // Every cell inside the image is read back or embedded: only the padding
                        // of a tile at the right or bottom edge needs nodata put in first.
                        if rows < COG_TILE || columns < COG_TILE || values.len() != dim * COG_TILE * COG_TILE {
                            values.clear();
                            values.resize(dim * COG_TILE * COG_TILE, f32::NAN);
                        }
                        let spool = shared.spool(&levels, level, (tx, ty))?;
                        embed_tile(tile, &mut values, &shared, &spool)?;
                    }
                }
                // Bands a batch at a time: the writer holds one batch while the next is compressed,
                // never a whole tile's compressed planes.
                let batch = COG_BANDS_PER_THREAD * rayon::current_num_threads();
                for first in (0..dim).step_by(batch) {
                    let encoded = encoder_for_tiles.encode(level, tx, ty, &values, first..(first + batch).min(dim))?;
                    if send.send(encoded).is_err() {
                        return Ok(()); // the writer failed: its error is the one to report
                    }
                }
                done += (rows * columns) as u64;
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

/// The cells each overview tile shares with the next finer level (every level's cells with even
/// row and column are the coarser level's, see `RasterGrid::centres`), kept as float32 in an
/// unnamed temporary file beside the output from when the coarser tile is computed until the
/// finer tile reads them back, so that no cell is embedded twice. A finer tile's shared cells
/// are a quarter of a coarser tile, stored as one block ordered half-row, band, column: the
/// tasks that embed a tile's rows (in parallel) each write or read one contiguous run of it. When
/// one thread copied whole tiles in and out between the parallel regions, the other core idled
/// for a quarter of the overviews' time.
struct SharedCells {
    file: std::fs::File,
    path: std::path::PathBuf,
    dim: usize,
    end: u64,
    blocks: std::collections::HashMap<(usize, usize, usize), SharedBlock>,
}

/// Where the shared cells of one finer tile are kept: `height` half-rows of `width` cells.
#[derive(Clone, Copy, Debug)]
struct SharedBlock {
    start: u64,
    height: usize,
    width: usize,
}

/// The blocks a tile's tasks read (its own shared cells) and write (its quadrants, for each
/// finer tile it covers, with the quadrant's first row and column in this tile).
struct TileSpool {
    own: Option<SharedBlock>,
    children: Vec<(SharedBlock, usize, usize)>,
}

impl SharedCells {
    fn create(output: &Path, dim: usize) -> Result<Self> {
        let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let file = tempfile::tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Self { file, path: dir.to_path_buf(), dim, end: 0, blocks: Default::default() })
    }

    /// The blocks of the tile (`tx`, `ty`) of `level`: its own (reserved when its coarser tile
    /// was) and, reserved now, one for each finer tile it covers. `levels` are the sizes.
    fn spool(&mut self, levels: &[(usize, usize)], level: usize, (tx, ty): (usize, usize)) -> Result<TileSpool> {
        let own = match level + 1 < levels.len() {
            true => Some(self.blocks.remove(&(level, tx, ty)).ok_or_else(|| {
                Error::format(&self.path, format!("no shared cells kept for tile {tx},{ty} of level {level}"))
            })?),
            false => None,
        };
        let mut children = Vec::new();
        if level > 0 {
            let (width, height) = levels[level - 1];
            for (cx, cy) in [(2 * tx, 2 * ty), (2 * tx + 1, 2 * ty), (2 * tx, 2 * ty + 1), (2 * tx + 1, 2 * ty + 1)] {
                if cx * COG_TILE < width && cy * COG_TILE < height {
                    let rows = (height - cy * COG_TILE).min(COG_TILE).div_ceil(2);
                    let cols = (width - cx * COG_TILE).min(COG_TILE).div_ceil(2);
                    let block = SharedBlock { start: self.end, height: rows, width: cols };
                    self.end += (self.dim * rows * cols * 4) as u64;
                    self.blocks.insert((level - 1, cx, cy), block);
                    children.push((block, (cy % 2) * COG_TILE / 2, (cx % 2) * COG_TILE / 2));
                }
            }
        }
        Ok(TileSpool { own, children })
    }

    /// Keeps what rows `first..last` of a coarser tile (`bands`, one slice per band holding
    /// those rows) hold of the quadrant `block` whose first row and column are `r0` and `c0`.
    fn keep(
        &self,
        (block, r0, c0): (SharedBlock, usize, usize),
        first: usize,
        last: usize,
        bands: &[&mut [f32]],
    ) -> Result<()> {
        let rows = first.max(r0)..last.min(r0 + block.height);
        if rows.is_empty() {
            return Ok(());
        }
        let width = block.width;
        let mut bytes = vec![0u8; rows.len() * self.dim * width * 4];
        let mut out = bytes.chunks_exact_mut(width * 4);
        for r in rows.clone() {
            for band in bands {
                let cells = &band[(r - first) * COG_TILE + c0..][..width];
                for (o, v) in out.next().expect("a run per row and band").chunks_exact_mut(4).zip(cells) {
                    o.copy_from_slice(&v.to_ne_bytes());
                }
            }
        }
        let at = block.start + ((rows.start - r0) * self.dim * width * 4) as u64;
        positional::write_all_at(&self.file, &bytes, at).map_err(|e| Error::io(&self.path, e))
    }

    /// Puts the shared cells of rows `first..last` (`first` even) of a finer tile into `bands`,
    /// one slice per band holding those rows: its even rows' even columns.
    fn take(&self, block: SharedBlock, first: usize, last: usize, bands: &mut [&mut [f32]]) -> Result<()> {
        let half_rows = first / 2..last.div_ceil(2).min(block.height);
        if half_rows.is_empty() {
            return Ok(());
        }
        let width = block.width;
        let mut bytes = vec![0u8; half_rows.len() * self.dim * width * 4];
        let at = block.start + (half_rows.start * self.dim * width * 4) as u64;
        positional::read_exact_at(&self.file, &mut bytes, at).map_err(|e| Error::io(&self.path, e))?;
        let mut runs = bytes.chunks_exact(width * 4);
        for i in half_rows {
            for band in bands.iter_mut() {
                let cells = band[(2 * i - first) * COG_TILE..].iter_mut().step_by(2);
                for (v, b) in cells.zip(runs.next().expect("a run per row and band").chunks_exact(4)) {
                    *v = f32::from_ne_bytes(b.try_into().expect("4 bytes"));
                }
            }
        }
        Ok(())
    }
}

/// Reads and writes at an offset without moving a shared cursor, so that tasks on several
/// threads can use one file at once.
mod positional {
    use std::fs::File;
    use std::io::Result;

    #[cfg(unix)]
    pub fn write_all_at(file: &File, bytes: &[u8], at: u64) -> Result<()> {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, at)
    }

    #[cfg(unix)]
    pub fn read_exact_at(file: &File, bytes: &mut [u8], at: u64) -> Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(file, bytes, at)
    }

    #[cfg(windows)]
    pub fn write_all_at(file: &File, mut bytes: &[u8], mut at: u64) -> Result<()> {
        while !bytes.is_empty() {
            let n = std::os::windows::fs::FileExt::seek_write(file, bytes, at)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            (bytes, at) = (&bytes[n..], at + n as u64);
        }
        Ok(())
    }

    #[cfg(windows)]
    pub fn read_exact_at(file: &File, mut bytes: &mut [u8], mut at: u64) -> Result<()> {
        while !bytes.is_empty() {
            let n = std::os::windows::fs::FileExt::seek_read(file, bytes, at)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            bytes = &mut std::mem::take(&mut bytes)[n..];
            at += n as u64;
        }
        Ok(())
    }
}

/// Puts embeddings (`rows`, one per cell, pixel-interleaved) into the rows of a tile's band
/// planes from row `first` on (`bands`, one slice per band) at their `cells` (row, column).
/// Band by band, so that each plane's lines are filled one after another: going cell by cell,
/// the stores to the bands' lines, 64 KB apart, fell in the same few cache sets and missed
/// down to L3 (5.2 % of a COG's `perf` samples; 3.5 % band by band).
fn put_in_planes(cells: &[(usize, usize)], first: usize, rows: &[f32], bands: &mut [&mut [f32]]) {
    let dim = bands.len();
    let at: Vec<usize> = cells.iter().map(|&(r, c)| (r - first) * COG_TILE + c).collect();
    for (band, plane) in bands.iter_mut().enumerate() {
        for (&at, row) in at.iter().zip(rows.chunks_exact(dim)) {
            plane[at] = row[band];
        }
    }
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
        let centres = grid.centres(rows.clone().flat_map(|r| (0..extent.width).map(move |c| (r, c))), 1);
        let cells = embed_cells(encoder, &centres, land, dtype)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every full-resolution cell of a COG with edge tiles on both axes and two overviews (so that
    /// a quarter of its cells are read back from the coarser level) equals the encoder at its
    /// centre, and the padding beyond the image's edge is nodata.
    #[test]
    fn every_cell_of_a_cog_is_the_embedding_at_its_centre() {
        let encoder = FeatureEncoder::load("sh-l10").unwrap();
        let extent = satclip_core::geo::GridExtent::global(1.0).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("globe.tif");
        let format = RasterFormat::Cog(satclip_io::cog::CogCompression::Deflate);
        embed_raster(&encoder, &extent, None, None, Dtype::F32, format, &path, &mut |_| {}).unwrap();
        let raster = satclip_io::geotiff::read(&path).unwrap();
        assert_eq!((raster.width, raster.height, raster.bands), (360, 180, encoder.dim()));
        let centres: Vec<[f64; 2]> =
            (0..180).flat_map(|r| (0..360).map(move |c| [-179.5 + c as f64, 89.5 - r as f64])).collect();
        let want = encoder.embed_f32(&centres).unwrap();
        assert_eq!(raster.data.len(), want.len());
        let differing = raster.data.iter().zip(&want).position(|(got, want)| got != want);
        assert_eq!(differing.map(|i| (i / encoder.dim() / 360, i / encoder.dim() % 360)), None, "cell (row, column)");
    }
}
