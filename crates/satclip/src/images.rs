//! The image side: official image towers, Sentinel-2 tiles, and image → location retrieval.

use std::path::{Path, PathBuf};

use satclip_io::tables::EmbeddingWriter;
use satclip_io::LightningCheckpoint;
use satclip_vision::{Image, Tower};

use crate::{require_checkpoint, Dtype, FromCheckpoint, LocationEncoder, Result};

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
pub fn embed_images(tower: &Tower, files: &[PathBuf]) -> Result<Vec<(Vec<f32>, Option<[f64; 2]>)>> {
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

/// Where a tile was placed: its file, its own centre when georeferenced, and the best
/// candidates as (lon, lat), cosine similarity and, with a centre, the distance to it in km.
pub struct TileLocation {
    pub file: PathBuf,
    pub centre: Option<[f64; 2]>,
    pub candidates: Vec<([f64; 2], f32, Option<f64>)>,
}

/// Localises tiles with one checkpoint's two towers: each tile's image embedding against the
/// location embeddings of a Fibonacci lattice of `points` candidates, best `top_k` first.
pub fn locate(checkpoint: &Path, points: usize, top_k: usize, files: &[PathBuf]) -> Result<Vec<TileLocation>> {
    let encoder = LocationEncoder::from_checkpoint(checkpoint)?;
    let tower = load_tower(checkpoint)?;
    if tower.head().out_dim != encoder.dim() {
        return Err(satclip_io::Error::format(
            checkpoint,
            format!(
                "the image head gives {}-d embeddings and the location encoder {}-d: they cannot be compared",
                tower.head().out_dim,
                encoder.dim()
            ),
        ));
    }
    let lattice = satclip_core::geo::fibonacci_lattice(points.max(1));
    let locator = Locator::new(&encoder, lattice).map_err(|e| satclip_io::Error::model(checkpoint, e))?;
    let embeddings = embed_images(&tower, files)?;
    Ok(files
        .iter()
        .zip(embeddings)
        .map(|(file, (embedding, centre))| {
            let candidates = locator
                .top_k(&embedding, top_k)
                .into_iter()
                .map(|(at, score)| (at, score, centre.map(|c| satclip_core::geo::haversine_km(c, at))))
                .collect();
            TileLocation { file: file.clone(), centre, candidates }
        })
        .collect())
}

/// Tiles to process: the `.tif`/`.tiff` files of each directory given (sorted), and files as given.
pub fn collect_tiles(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
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
pub fn embed_images_to_file(tower: &Tower, files: &[PathBuf], output: &Path) -> Result<usize> {
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
    let values: Vec<f32> = rows.iter().flat_map(|(e, _)| e.iter().copied()).collect();
    let mut writer = EmbeddingWriter::create(output, &schema, dim, Dtype::F32, Vec::new())?;
    let points: Vec<[f64; 2]> = rows.iter().map(|(_, c)| c.unwrap_or([f64::NAN; 2])).collect();
    writer.write(&columns, &points, &values)?;
    writer.finish()?;
    Ok(rows.len())
}
