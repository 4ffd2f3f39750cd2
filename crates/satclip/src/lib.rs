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

pub mod builtin;
pub mod official;

/// An encoder by name or path: `default` (or `builtin`, or the model's name) is the built-in
/// model; anything else is a checkpoint path (official `.ckpt` or native directory). A missing
/// official checkpoint's error says where to download it.
pub fn load_encoder(spec: &str) -> Result<LocationEncoder> {
    if builtin::is_builtin_name(spec) {
        return Ok(builtin::encoder());
    }
    LocationEncoder::from_checkpoint(Path::new(spec))
}

/// Fails, with the download command, when `path` names a released checkpoint that is not there:
/// the one message every command gives for it.
fn require_checkpoint(path: &Path) -> Result<()> {
    if !path.exists() {
        if let Some(url) = official::download_url(path) {
            let hint =
                format!("no such file; it is a released SatCLIP checkpoint: curl -L -o {} {url}", path.display());
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
    let mut writer = EmbeddingWriter::create(output, &reader.schema(), encoder.dim(), options.dtype)?;
    let mut rows = 0u64;
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch?;
        encoder.embed_into(&batch.coords, options.dtype, &mut values)?;
        writer.write(&batch.columns, &values)?;
        rows += batch.coords.len() as u64;
        progress(Progress::Done(rows));
    }
    if rows == 0 {
        return Err(satclip_io::Error::format(input, "no data rows: nothing to embed"));
    }
    writer.finish()?;
    Ok(EmbedSummary { rows })
}

/// Embeds the centre of every cell of `extent` into a float32 GeoTIFF with one band per
/// embedding dimension (EPSG 4326), streamed a band of rows at a time. With a land mask, cells
/// less than half land are left NaN (the file's nodata value) and not computed. `progress` is
/// told the cell count, then the cells done.
pub fn embed_raster(
    encoder: &FeatureEncoder,
    extent: &satclip_core::geo::GridExtent,
    land: Option<&satclip_io::landmask::LandMask>,
    dtype: OutputDtype,
    output: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let georef = satclip_io::geotiff::GeoReference {
        epsg: 4326,
        origin: [extent.west, extent.north],
        pixel_size: [extent.resolution, extent.resolution],
    };
    let dim = encoder.dim();
    let layout = satclip_io::geotiff_out::RasterLayout {
        width: extent.width,
        height: extent.height,
        bands: dim,
        georef,
        nodata: Some(f32::NAN),
    };
    let mut writer = satclip_io::geotiff_out::GeoTiffWriter::create(output, layout)?;
    progress(Progress::Total((extent.width * extent.height) as u64));
    // Enough cells per batch to keep every core busy, whole rows so that they can be written.
    let rows_per_batch = (16_384 / extent.width).max(1);
    let (mut values, mut wide) = (Vec::new(), Vec::new());
    for first in (0..extent.height).step_by(rows_per_batch) {
        let rows = first..(first + rows_per_batch).min(extent.height);
        let centres = extent.centres(rows.clone());
        let keep: Vec<bool> =
            centres.iter().map(|&[lon, lat]| land.is_none_or(|m| m.land_fraction(lon, lat) >= 0.5)).collect();
        let kept: Vec<[f64; 2]> = centres.iter().zip(&keep).filter(|(_, k)| **k).map(|(p, _)| *p).collect();
        // The file holds float32: computed in f32 it is stored as is, in f64 rounded once.
        match dtype {
            OutputDtype::F32 => encoder.embed_into_f32(&kept, &mut values)?,
            OutputDtype::F64 => {
                encoder.embed_into(&kept, dtype, &mut wide)?;
                values.clear();
                values.extend(wide.iter().map(|v| *v as f32));
            }
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

/// The image tower of an official checkpoint (`vision_layers` and the `model.visual.*` tensors).
pub fn load_tower(checkpoint: &Path) -> Result<Tower> {
    require_checkpoint(checkpoint)?;
    if checkpoint.is_dir() || satclip_io::native::is_native_model(checkpoint) {
        return Err(satclip_io::Error::format(
            checkpoint,
            "is a native model, which holds only a location encoder and no image tower: this command \
             needs an official SatCLIP .ckpt (ResNet18, ResNet50 or ViT16)",
        ));
    }
    let mut ckpt = LightningCheckpoint::open(checkpoint)?;
    let vision_layers = match &ckpt.hyper_parameter("vision_layers") {
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

/// A 12-band Sentinel-2 L2A GeoTIFF (S2-100K format) for a tower that takes `side × side`
/// inputs, preprocessed as the official code does, with the tile's lon/lat when the file is
/// georeferenced. Tiles smaller than the input, or more than 4 times its side, are refused.
pub fn read_sentinel2(path: &Path, side: usize) -> Result<(Image, Option<[f64; 2]>)> {
    let max_side = 4 * side;
    let raster = satclip_io::geotiff::read_with_limit(path, max_side * max_side * 12 * 2)?;
    if raster.width < side || raster.height < side || raster.width > max_side || raster.height > max_side {
        return Err(satclip_io::Error::format(
            path,
            format!(
                "is {}×{} pixels; this image tower takes tiles from {side}×{side} to {max_side}×{max_side}",
                raster.width, raster.height
            ),
        ));
    }
    if raster.bands != 12 {
        return Err(satclip_io::Error::format(
            path,
            format!("has {} bands; Sentinel-2 tiles in the S2-100K format have 12 (B01-B12 without B10)", raster.bands),
        ));
    }
    let image = Image::from_sentinel2_l2a(raster.width, raster.height, &raster.data);
    Ok((image, raster.centre_lonlat()))
}

/// Image embeddings of Sentinel-2 tiles, computed in parallel; each with the tile's lon/lat
/// when the file is georeferenced. The first unreadable file stops the run with its error.
pub fn embed_images(tower: &Tower, files: &[std::path::PathBuf]) -> Result<Vec<(Vec<f32>, Option<[f64; 2]>)>> {
    use rayon::prelude::*;
    files
        .par_iter()
        .map(|path| {
            let (image, centre) = read_sentinel2(path, tower.input_size())?;
            Ok((tower.embed(&image), centre))
        })
        .collect()
}

/// Image → location retrieval, as the official notebook B02: the cosine similarity of an image
/// embedding to the location embeddings of candidate points (a Fibonacci lattice by default).
pub struct Locator {
    pub candidates: Vec<[f64; 2]>,
    /// Unit-norm location embeddings of the candidates, row-major.
    unit_embeddings: Vec<f32>,
    dim: usize,
}

impl Locator {
    pub fn new(encoder: &LocationEncoder, candidates: Vec<[f64; 2]>) -> std::result::Result<Self, satclip_core::Error> {
        let dim = encoder.dim();
        let mut unit_embeddings = vec![0f32; candidates.len() * dim];
        encoder.embed_into_f32(&candidates, &mut unit_embeddings)?;
        for row in unit_embeddings.chunks_exact_mut(dim) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter_mut().for_each(|v| *v /= norm);
        }
        Ok(Self { candidates, unit_embeddings, dim })
    }

    /// The `k` most similar candidates: (lon, lat) and cosine similarity, best first.
    pub fn top_k(&self, image_embedding: &[f32], k: usize) -> Vec<([f64; 2], f32)> {
        assert_eq!(image_embedding.len(), self.dim, "embedding widths differ");
        let norm = image_embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        let mut scored: Vec<(usize, f32)> = self
            .unit_embeddings
            .chunks_exact(self.dim)
            .map(|row| row.iter().zip(image_embedding).map(|(a, b)| a * b).sum::<f32>() / norm)
            .enumerate()
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().map(|(i, s)| (self.candidates[i], s)).collect()
    }
}

/// Tiles to process: the `.tif`/`.tiff` files of each directory given (sorted), and files as given.
pub fn collect_tiles(inputs: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<_> = std::fs::read_dir(input)
                .map_err(|e| satclip_io::Error::io(input, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("tif") || x.eq_ignore_ascii_case("tiff"))
                })
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(satclip_io::Error::format(input, "no .tif files in this directory"));
            }
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// Embeds tiles and writes one row per file: NPY `[N, dim]`, or CSV/Parquet with the columns
/// `file`, `lon`, `lat` (the tile centre; empty when not georeferenced) and the embedding.
pub fn embed_images_to_file(tower: &Tower, files: &[std::path::PathBuf], output: &Path) -> Result<usize> {
    use std::sync::Arc;

    use arrow_array::{Float64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    let inputs: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();
    satclip_io::atomic::check_output(output, &inputs)?;
    let rows = embed_images(tower, files)?;
    let dim = tower.head().out_dim;
    let schema = Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("lon", DataType::Float64, true),
        Field::new("lat", DataType::Float64, true),
    ]));
    let names: Vec<String> =
        files.iter().map(|f| f.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    let columns = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(Float64Array::from(rows.iter().map(|(_, c)| c.map(|c| c[0])).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(rows.iter().map(|(_, c)| c.map(|c| c[1])).collect::<Vec<_>>())),
        ],
    )
    .map_err(|e| satclip_io::Error::format(output, e.to_string()))?;
    let values: Vec<f64> = rows.iter().flat_map(|(e, _)| e.iter().map(|v| *v as f64)).collect();
    let mut writer = EmbeddingWriter::create(output, &schema, dim, OutputDtype::F32)?;
    writer.write(&columns, &values)?;
    writer.finish()?;
    Ok(rows.len())
}

/// Where `geoclip` looks for GeoCLIP's weights unless `SATCLIP_GEOCLIP_WEIGHTS` names the file:
/// the data directory that `scripts/install-data.sh` fills (`$SATCLIP_DATA`, else `./data`).
pub fn geoclip_weights_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("SATCLIP_GEOCLIP_WEIGHTS") {
        return path.into();
    }
    data_dir().join(GEOCLIP_WEIGHTS_FILE)
}

pub const GEOCLIP_WEIGHTS_FILE: &str = "geoclip_location_encoder.pth";

/// The directory of installed open data: `$SATCLIP_DATA`, else `./data`.
pub fn data_dir() -> std::path::PathBuf {
    std::env::var_os("SATCLIP_DATA").map(Into::into).unwrap_or_else(|| "data".into())
}

/// GeoCLIP's location encoder from `location_encoder_weights.pth` of the `geoclip` wheel.
pub fn load_geoclip(path: &Path) -> Result<satclip_core::geoclip::GeoClip> {
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "GeoCLIP's weights are not installed: run scripts/install-data.sh (takes them from the \
                 geoclip 1.3.0 wheel on PyPI) or set SATCLIP_GEOCLIP_WEIGHTS",
            ),
        ));
    }
    let tensors = satclip_io::torch::read_state_dict(path)?;
    satclip_core::geoclip::GeoClip::from_tensors(tensors).map_err(|e| Error::model(path, e))
}

/// Any encoder `satclip eval` and the maps accept, loaded once.
pub enum FeatureEncoder {
    /// Raw coordinates or untrained spherical harmonics.
    Raw(satclip_core::PositionalEncoding),
    /// A SatCLIP encoder and where it came from (for error messages).
    SatClip {
        encoder: Box<LocationEncoder>,
        source: std::path::PathBuf,
    },
    GeoClip(Box<satclip_core::geoclip::GeoClip>),
}

/// The encoders known by name (besides checkpoint paths).
pub const ENCODER_NAMES: [&str; 7] = ["default", "geoclip", "direct", "wrap", "cartesian3d", "sh-l10", "sh-l40"];

/// Levenshtein distance, for "did you mean" on a mistyped name.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

impl FeatureEncoder {
    /// By name: raw coordinates (`direct`, `wrap`, `cartesian3d`), untrained spherical harmonics
    /// (`sh-l10`, `sh-l40`), GeoCLIP (`geoclip`), the built-in model (`default`), or a
    /// checkpoint path.
    pub fn load(spec: &str) -> Result<Self> {
        let raw = match spec {
            "direct" | "wrap" | "cartesian3d" => {
                Some(Hyperparameters { le_type: spec.into(), ..Hyperparameters::default() })
            }
            "sh-l10" => Some(Hyperparameters { legendre_polys: 10, ..Hyperparameters::default() }),
            "sh-l40" => Some(Hyperparameters { legendre_polys: 40, ..Hyperparameters::default() }),
            _ => None,
        };
        Ok(match raw {
            Some(hp) => {
                Self::Raw(satclip_core::PositionalEncoding::from_hyperparameters(&hp).expect("known encodings"))
            }
            None if spec == "geoclip" => Self::GeoClip(Box::new(load_geoclip(&geoclip_weights_path())?)),
            None if !builtin::is_builtin_name(spec)
                && !Path::new(spec).exists()
                && official::download_url(Path::new(spec)).is_none() =>
            {
                let guess = ENCODER_NAMES
                    .iter()
                    .map(|name| (edit_distance(spec, name), name))
                    .filter(|(d, _)| *d <= 2)
                    .min()
                    .map(|(_, name)| format!("; did you mean `{name}`?"))
                    .unwrap_or_default();
                return Err(Error::io(
                    Path::new(spec),
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("no such file or directory, nor an encoder name ({}){guess}", ENCODER_NAMES.join(", ")),
                    ),
                ));
            }
            None => Self::SatClip { encoder: Box::new(load_encoder(spec)?), source: spec.into() },
        })
    }

    /// The width of the features.
    pub fn dim(&self) -> usize {
        match self {
            Self::Raw(posenc) => posenc.dim(),
            Self::GeoClip(_) => satclip_core::geoclip::EMBEDDING_DIM,
            Self::SatClip { encoder, .. } => encoder.dim(),
        }
    }

    /// Row-major features of `points` into `out` (resized to `[n × dim]`). With `F32` the learned
    /// encoders run their matrix products in f32 (what is computed is what is written); the
    /// unlearned features are computed in f64 either way.
    pub fn embed_into(&self, points: &[[f64; 2]], dtype: OutputDtype, out: &mut Vec<f64>) -> Result<()> {
        if dtype == OutputDtype::F32 {
            let mut narrow = Vec::new();
            self.embed_into_f32(points, &mut narrow)?;
            out.clear();
            out.extend(narrow.iter().map(|v| *v as f64));
            return Ok(());
        }
        out.resize(points.len() * self.dim(), 0.0);
        match self {
            Self::Raw(posenc) => posenc.encode_batch(points, out),
            Self::GeoClip(model) => model.embed_into(points, out),
            Self::SatClip { encoder, source } => {
                encoder.embed_into(points, out).map_err(|e| satclip_io::Error::model(source, e))?
            }
        }
        Ok(())
    }

    /// As [`FeatureEncoder::embed_into`] with `F32`, into f32 storage.
    pub fn embed_into_f32(&self, points: &[[f64; 2]], out: &mut Vec<f32>) -> Result<()> {
        out.resize(points.len() * self.dim(), 0.0);
        match self {
            Self::Raw(posenc) => {
                let mut wide = vec![0.0; out.len()];
                posenc.encode_batch(points, &mut wide);
                out.iter_mut().zip(&wide).for_each(|(o, v)| *o = *v as f32);
            }
            Self::GeoClip(model) => model.embed_into_f32(points, out),
            Self::SatClip { encoder, source } => {
                encoder.embed_into_f32(points, out).map_err(|e| satclip_io::Error::model(source, e))?
            }
        }
        Ok(())
    }

    /// Row-major f64 features of `points` and their width.
    pub fn features(&self, points: &[[f64; 2]]) -> Result<(Vec<f64>, usize)> {
        let mut out = Vec::new();
        self.embed_into(points, OutputDtype::F64, &mut out)?;
        Ok((out, self.dim()))
    }
}

/// Features of `points` from an encoder named as in [`FeatureEncoder::load`].
pub fn encoder_features(spec: &str, points: &[[f64; 2]]) -> Result<(Vec<f64>, usize)> {
    FeatureEncoder::load(spec)?.features(points)
}
