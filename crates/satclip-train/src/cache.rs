//! The feature cache: the frozen image tower runs once per tile and view, and training reads the
//! pooled features from a memory-mapped file. Exact for SatCLIP, where only the tower's last
//! linear layer trains: the cached features are what that layer would receive.
//!
//! Layout of a cache directory: `features.f32` (little-endian f32, `[tiles × views × dim]`),
//! `index.csv` (lon, lat, file per tile) and `cache.json` (sizes and how the features were made).

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use satclip_io::atomic::AtomicFile;
use satclip_io::error::{Error, Result};
use satclip_io::s2dataset::S2Entry;
use satclip_vision::augment::Augmentation;
use satclip_vision::{FeatureExtractor, Image};
use serde::{Deserialize, Serialize};

pub const FEATURES_FILE: &str = "features.f32";
pub const INDEX_FILE: &str = "index.csv";
pub const META_FILE: &str = "cache.json";
const FORMAT_VERSION: u32 = 1;
/// Tiles featurised per parallel chunk (written in order after each chunk).
const CHUNK: usize = 512;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheMeta {
    pub format_version: u32,
    pub tiles: usize,
    pub views: usize,
    pub dim: usize,
    pub seed: u64,
    /// Whatever describes the extractor (tower name and checkpoint, or the RCF filters).
    pub extractor: serde_json::Value,
}

pub struct FeatureCache {
    /// `dim` is the width of a row's features, all parts together.
    pub meta: CacheMeta,
    pub lon: Vec<f64>,
    pub lat: Vec<f64>,
    pub files: Vec<String>,
    /// The memory-mapped `features.f32` of each cache stacked side by side, with its width.
    parts: Vec<(memmap2::Mmap, usize)>,
}

/// Reads a tile as the towers expect it: 12-band Sentinel-2 (the official preprocessing) or
/// 8-bit RGB scaled to [0, 1].
pub fn load_tile(path: &Path) -> Result<Image> {
    let raster = satclip_io::geotiff::read(path)?;
    match raster.bands {
        12 => Ok(Image::from_sentinel2_l2a(raster.width, raster.height, &raster.data)),
        3 => {
            let plane = raster.width * raster.height;
            let mut data = vec![0f32; 3 * plane];
            for (p, px) in raster.data.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    data[c * plane + p] = px[c] / 255.0;
                }
            }
            Ok(Image { channels: 3, height: raster.height, width: raster.width, data })
        }
        n => Err(Error::format(path, format!("{n} bands: expected 12 (Sentinel-2) or 3 (RGB)"))),
    }
}

/// The augmentation of `view` of tile `row`: none for view 0, seeded random ones otherwise.
pub fn view_augmentation(seed: u64, row: usize, view: usize) -> Option<Augmentation> {
    if view == 0 {
        return None;
    }
    let mut rng = Pcg64::seed_from_u64(seed ^ ((row as u64) << 20) ^ view as u64);
    Some(Augmentation::random(&mut || rng.random::<f64>()))
}

/// Runs `extractor` over every tile and `views` views of it, writing the cache to `out`.
pub fn featurize(
    entries: &[S2Entry],
    extractor: &dyn FeatureExtractor,
    describe: serde_json::Value,
    views: usize,
    seed: u64,
    out: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<FeatureCache> {
    use rayon::prelude::*;
    assert!(views >= 1, "at least one view");
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let features_path = out.join(FEATURES_FILE);
    let mut file = AtomicFile::create(&features_path)?;
    let mut writer = file.writer()?;
    let mut dim = None;
    for (c, chunk) in entries.chunks(CHUNK).enumerate() {
        let rows: Vec<Vec<f32>> = chunk
            .par_iter()
            .enumerate()
            .map(|(i, entry)| -> Result<Vec<f32>> {
                let image = load_tile(&entry.file)?;
                let side = extractor.min_side();
                if image.width < side || image.height < side {
                    return Err(Error::format(
                        &entry.file,
                        format!("is {}×{} pixels; the tower needs at least {side}×{side}", image.width, image.height),
                    ));
                }
                let mut all = Vec::new();
                for view in 0..views {
                    let augmented = match view_augmentation(seed, c * CHUNK + i, view) {
                        Some(a) => a.apply(&image),
                        None => image.clone(),
                    };
                    all.extend(extractor.features(&augmented));
                }
                Ok(all)
            })
            .collect::<Result<_>>()?;
        for (entry, row) in chunk.iter().zip(&rows) {
            let width = row.len() / views;
            if *dim.get_or_insert(width) != width {
                return Err(Error::format(&entry.file, "the extractor gave features of another width"));
            }
            let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
            writer.write_all(&bytes).map_err(|e| Error::io(&features_path, e))?;
        }
        progress((c * CHUNK + chunk.len()).min(entries.len()));
    }
    writer.flush().map_err(|e| Error::io(&features_path, e))?;
    drop(writer);
    file.commit()?;
    let mut index = String::from("lon,lat,file\n");
    for e in entries {
        index.push_str(&format!("{},{},{}\n", e.lon, e.lat, e.file.display()));
    }
    satclip_io::atomic::write_bytes(&out.join(INDEX_FILE), index.as_bytes())?;
    let meta = CacheMeta {
        format_version: FORMAT_VERSION,
        tiles: entries.len(),
        views,
        dim: dim.unwrap_or(0),
        seed,
        extractor: describe,
    };
    satclip_io::atomic::write_bytes(&out.join(META_FILE), &serde_json::to_vec_pretty(&meta).expect("json"))?;
    FeatureCache::open(out)
}

impl FeatureCache {
    pub fn open(dir: &Path) -> Result<Self> {
        let meta_path = dir.join(META_FILE);
        let meta: CacheMeta = serde_json::from_slice(&std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?)
            .map_err(|e| Error::format(&meta_path, e.to_string()))?;
        if meta.format_version > FORMAT_VERSION {
            return Err(Error::format(&meta_path, "made by a newer satclip"));
        }
        let index_path = dir.join(INDEX_FILE);
        let mut reader = csv::Reader::from_path(&index_path).map_err(|e| Error::format(&index_path, e.to_string()))?;
        let (mut lon, mut lat, mut files) = (Vec::new(), Vec::new(), Vec::new());
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| Error::format(&index_path, format!("row {}: {e}", i + 1)))?;
            let number = |k: usize, name: &str| {
                record
                    .get(k)
                    .unwrap_or("")
                    .parse::<f64>()
                    .map_err(|_| Error::row(&index_path, i as u64 + 1, name, "not a number"))
            };
            lon.push(number(0, "lon")?);
            lat.push(number(1, "lat")?);
            files.push(record.get(2).unwrap_or("").to_string());
        }
        let features_path = dir.join(FEATURES_FILE);
        let file = satclip_io::open_regular(&features_path)?;
        // SAFETY: a mapping is sound while no one truncates or rewrites the file in place. satclip
        // writes a cache once and replaces it only by renaming a new file over it (the mapping
        // keeps the old inode), and never edits one in place. Another program that truncated it
        // during training would make reads past the new end raise SIGBUS: the contract of every
        // memory-mapped data set, stated in docs/pretraining.md.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&features_path, e))?;
        let expected = [meta.views, meta.dim, 4].iter().try_fold(meta.tiles, |acc, &f| acc.checked_mul(f));
        let expected = expected.unwrap_or(usize::MAX);
        if map.len() != expected || lon.len() != meta.tiles {
            return Err(Error::format(
                &features_path,
                format!(
                    "holds {} bytes and {} index rows; cache.json promises {expected} bytes and {} rows",
                    map.len(),
                    lon.len(),
                    meta.tiles
                ),
            ));
        }
        let dim = meta.dim;
        Ok(Self { meta, lon, lat, files, parts: vec![(map, dim)] })
    }

    /// `first` with the features of `more` appended to each row's: caches of the same tiles in the
    /// same order and with as many views, made from other images of the same points (e.g. a
    /// corpus cut at a coarser scale around them) or by another tower.
    pub fn open_stacked(first: &Path, more: &[PathBuf]) -> Result<Self> {
        let mut cache = Self::open(first)?;
        for dir in more {
            let other = Self::open(dir)?;
            let index = dir.join(INDEX_FILE);
            if other.len() != cache.len() || other.meta.views != cache.meta.views {
                return Err(Error::format(
                    dir,
                    format!(
                        "holds {} tiles × {} views; {} holds {} × {}: stacked caches must describe the same tiles",
                        other.len(),
                        other.meta.views,
                        first.display(),
                        cache.len(),
                        cache.meta.views
                    ),
                ));
            }
            let same = |a: &[f64], b: &[f64]| a.iter().zip(b).position(|(x, y)| (x - y).abs() > 1e-9);
            if let Some(row) = same(&other.lon, &cache.lon).or(same(&other.lat, &cache.lat)) {
                return Err(Error::row(
                    &index,
                    row as u64 + 1,
                    "lon/lat",
                    format!("is not the point of row {} of {}", row + 1, first.join(INDEX_FILE).display()),
                ));
            }
            cache.meta.dim += other.meta.dim;
            cache.parts.extend(other.parts);
            let extractors = match cache.meta.extractor.take() {
                serde_json::Value::Array(list) => list,
                one => vec![one],
            };
            cache.meta.extractor = serde_json::Value::Array([extractors, vec![other.meta.extractor]].concat());
        }
        Ok(cache)
    }

    pub fn len(&self) -> usize {
        self.meta.tiles
    }

    pub fn is_empty(&self) -> bool {
        self.meta.tiles == 0
    }

    pub fn dim(&self) -> usize {
        self.meta.dim
    }

    /// Appends the features of `row`'s `view` to `out` (every stacked part's, in order).
    pub fn append_features(&self, row: usize, view: usize, out: &mut Vec<f32>) {
        for (map, dim) in &self.parts {
            let start = ((row * self.meta.views + view) * dim) * 4;
            out.extend(
                map[start..start + dim * 4].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
    }

    pub fn path_of(&self, row: usize) -> PathBuf {
        PathBuf::from(&self.files[row])
    }
}

/// Random convolutional features whose filters are cut from up to 1000 seeded tiles of the corpus.
/// The uniform stream is an xorshift64 seeded with `seed + 0x9e3779b97f4a7c15`: it is the stream
/// the built-in model's filters were drawn with, so the documented command reproduces that model.
pub fn rcf_from_corpus(
    entries: &[S2Entry],
    filters: usize,
    kernel: usize,
    bias: f32,
    seed: u64,
) -> Result<satclip_vision::rcf::RandomConvFeatures> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let sample: Vec<Image> = (0..entries.len().min(1000))
        .map(|_| load_tile(&entries[(next() * entries.len() as f64) as usize].file))
        .collect::<Result<_>>()?;
    Ok(satclip_vision::rcf::RandomConvFeatures::from_patches(&sample, filters, kernel, bias, &mut next))
}
