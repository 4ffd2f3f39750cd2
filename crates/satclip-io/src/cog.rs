//! Cloud-Optimized GeoTIFF: float32 bands in internal tiles, each band its own plane
//! (PlanarConfiguration 2, so that a reader of one band fetches only that band), compressed with
//! ZSTD or DEFLATE after the floating-point predictor, with reduced-resolution overviews.
//!
//! The COG layout: the header, then every IFD (full resolution first, then the overviews from
//! the largest), then the tile data from the smallest overview to the full resolution. The IFDs'
//! size is known from the layout alone, so their room is reserved up front and they are written
//! last, in place: tiles stream to disk as they are computed, memory stays at one tile.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::geotiff::GeoReference;
use crate::geotiff_out::{georeference_fields, metadata_field_with_scales, nodata_field, Field, LONG, LONG8, SHORT};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CogCompression {
    Zstd,
    Deflate,
    None,
}

impl CogCompression {
    fn tag(self) -> u16 {
        match self {
            Self::Zstd => 50000,
            Self::Deflate => 8,
            Self::None => 1,
        }
    }
}

impl std::str::FromStr for CogCompression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" => Ok(Self::Zstd),
            "deflate" => Ok(Self::Deflate),
            "none" => Ok(Self::None),
            _ => Err(format!("`{s}` is not zstd, deflate or none")),
        }
    }
}

/// How a COG stores its samples.
#[derive(Clone, Debug, PartialEq)]
pub enum CogSamples {
    /// float32 as computed, with the floating-point predictor.
    F32,
    /// One signed byte per sample, a scale and offset per band (value ≈ scale · q + offset,
    /// q in −127..=127, [`INT8_NODATA`] where there is no value), with the horizontal predictor.
    Int8(Vec<Int8Band>),
}

/// The stored byte of int8 samples that have no value.
pub const INT8_NODATA: i8 = -128;

/// How one band's values map to int8.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8Band {
    pub scale: f32,
    pub offset: f32,
}

impl Int8Band {
    /// The band whose 255 steps span `[lo, hi]`.
    pub fn covering(lo: f32, hi: f32) -> Self {
        Self { scale: ((hi - lo) / 254.0).max(f32::MIN_POSITIVE), offset: (hi + lo) / 2.0 }
    }

    /// The stored byte of `value`, and whether it was clamped to the band's range.
    fn quantise(&self, value: f32) -> (i8, bool) {
        if value.is_nan() {
            return (INT8_NODATA, false);
        }
        let q = ((value - self.offset) / self.scale).round();
        (q.clamp(-127.0, 127.0) as i8, !(-127.0..=127.0).contains(&q))
    }

    pub fn value(&self, q: i8) -> f32 {
        self.scale * f32::from(q) + self.offset
    }
}

/// What int8 storage changed: values clamped to their band's range, and the largest difference
/// between a value and what the file gives back for it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuantisationError {
    pub clamped: u64,
    pub max_abs: f32,
}

impl QuantisationError {
    fn merge(self, other: Self) -> Self {
        Self { clamped: self.clamped + other.clamped, max_abs: self.max_abs.max(other.max_abs) }
    }
}

/// One resolution level: its size in pixels and where each (tile, band) landed.
struct Level {
    width: usize,
    height: usize,
    tiles_x: usize,
    tiles_y: usize,
    /// Indexed `band · tiles + ty · tiles_x + tx`, as PlanarConfiguration 2 orders them.
    offsets: Vec<u64>,
    counts: Vec<u64>,
}

impl Level {
    fn tiles(&self) -> usize {
        self.tiles_x * self.tiles_y
    }
}

pub struct CogWriter {
    file: AtomicFile,
    out: BufWriter<File>,
    target: PathBuf,
    levels: Vec<Level>,
    bands: usize,
    tile: usize,
    georef: GeoReference,
    nodata: Option<f32>,
    compression: CogCompression,
    samples: CogSamples,
    metadata: Vec<(String, String)>,
    big: bool,
    error: QuantisationError,
    /// Bytes reserved after the header for the IFDs.
    reserved: u64,
    position: u64,
}

impl CogWriter {
    /// Starts `path` for `levels` sizes (full resolution first, then each overview), `bands`
    /// bands stored as `samples` in `tile`-pixel square tiles (a multiple of 16). `nodata` is
    /// the float32 files' (int8 files use [`INT8_NODATA`]).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        path: &Path,
        levels: &[(usize, usize)],
        bands: usize,
        tile: usize,
        georef: GeoReference,
        nodata: Option<f32>,
        compression: CogCompression,
        samples: CogSamples,
        metadata: Vec<(String, String)>,
    ) -> Result<Self> {
        if tile == 0 || tile % 16 != 0 || levels.is_empty() || bands == 0 || bands > u16::MAX as usize {
            return Err(Error::format(path, format!("a {tile}-pixel tile, {} levels, {bands} bands", levels.len())));
        }
        if let CogSamples::Int8(scales) = &samples {
            if scales.len() != bands
                || scales.iter().any(|b| !(b.scale > 0.0 && b.scale.is_finite() && b.offset.is_finite()))
            {
                return Err(Error::format(path, format!("{} int8 scales for {bands} bands", scales.len())));
            }
        }
        let nodata = if matches!(samples, CogSamples::Int8(_)) { Some(f32::from(INT8_NODATA)) } else { nodata };
        let levels: Vec<Level> = levels
            .iter()
            .map(|&(width, height)| {
                let (tiles_x, tiles_y) = (width.div_ceil(tile), height.div_ceil(tile));
                let n = tiles_x * tiles_y * bands;
                Level { width, height, tiles_x, tiles_y, offsets: vec![0; n], counts: vec![0; n] }
            })
            .collect();
        // BigTIFF when the tiles could pass classic TIFF's 4 GiB before compression.
        let raw: u64 = levels.iter().map(|l| (l.tiles() * bands * tile * tile * 4) as u64).sum();
        let big = raw > u32::MAX as u64 - (256 << 20);
        let mut file = AtomicFile::create(path)?;
        let out = file.writer()?;
        let mut writer = Self {
            file,
            out,
            target: path.to_path_buf(),
            levels,
            bands,
            tile,
            georef,
            nodata,
            compression,
            samples,
            metadata,
            big,
            error: QuantisationError::default(),
            reserved: 0,
            position: 0,
        };
        let header_len = if big { 16 } else { 8 };
        writer.reserved = writer.directories(header_len).len() as u64;
        writer.position = header_len + writer.reserved;
        // Room for the header and the IFDs, written by `finish`.
        let room = vec![0u8; writer.position as usize];
        writer.out.write_all(&room).map_err(|e| Error::io(path, e))?;
        Ok(writer)
    }

    /// Writes the tile (`tx`, `ty`) of `level` from its band planes (see [`TileEncoder::encode`]).
    pub fn write_tile(&mut self, level: usize, tx: usize, ty: usize, planes: &[f32]) -> Result<()> {
        let encoded = self.tile_encoder().encode(level, tx, ty, planes, 0..self.bands)?;
        self.write_encoded(encoded)
    }

    /// What encodes tiles for this file, apart from the writer, so that the next tile can be
    /// encoded while this one is written.
    pub fn tile_encoder(&self) -> TileEncoder {
        TileEncoder {
            target: self.target.clone(),
            sizes: self.levels.iter().map(|l| (l.width, l.height)).collect(),
            bands: self.bands,
            tile: self.tile,
            compression: self.compression,
            samples: self.samples.clone(),
        }
    }

    /// What int8 storage changed in the tiles written so far (nothing for float32).
    pub fn quantisation_error(&self) -> QuantisationError {
        self.error
    }

    /// Replaces the value of metadata item `key`: for facts known only at the end. The IFDs'
    /// room was reserved at the start, so the new value must be exactly as long as the old.
    pub fn set_metadata(&mut self, key: &str, value: String) -> Result<()> {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) if old.len() == value.len() => {
                *old = value;
                Ok(())
            }
            _ => Err(Error::format(&self.target, format!("metadata item `{key}` is not there at that length"))),
        }
    }

    /// Appends bands of a tile that [`TileEncoder::encode`] made for this file.
    pub fn write_encoded(&mut self, encoded: EncodedTile) -> Result<()> {
        let EncodedTile { level, tx, ty, first_band, planes, error } = encoded;
        self.error = self.error.merge(error);
        let l = &self.levels[level];
        let (index, tiles) = (ty * l.tiles_x + tx, l.tiles());
        for (band, bytes) in (first_band..).zip(&planes) {
            self.out.write_all(bytes).map_err(|e| Error::io(&self.target, e))?;
            let slot = band * tiles + index;
            self.levels[level].offsets[slot] = self.position;
            self.levels[level].counts[slot] = bytes.len() as u64;
            self.position += bytes.len() as u64;
        }
        Ok(())
    }

    /// Writes the IFDs into their room and renames the file into place; every tile of every
    /// level must have been written.
    pub fn finish(mut self) -> Result<()> {
        if self.levels.iter().any(|l| l.counts.contains(&0)) {
            return Err(Error::format(&self.target, "not every tile was written"));
        }
        if !self.big && self.position > u32::MAX as u64 {
            return Err(Error::format(&self.target, "the tiles passed 4 GiB in a classic TIFF"));
        }
        let header_len = if self.big { 16u64 } else { 8 };
        let directories = self.directories(header_len);
        if directories.len() as u64 != self.reserved {
            return Err(Error::format(&self.target, "the IFDs outgrew the room reserved for them"));
        }
        let io = |e| Error::io(&self.target, e);
        self.out.flush().map_err(io)?;
        let mut header: Vec<u8> = if self.big { vec![b'I', b'I', 43, 0, 8, 0, 0, 0] } else { vec![b'I', b'I', 42, 0] };
        header.extend(self.word(header_len));
        let file = self.file.file();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        file.write_all(&directories).map_err(io)?;
        drop(self.out);
        self.file.commit()
    }

    /// An offset or count as the format stores it.
    fn word(&self, value: u64) -> Vec<u8> {
        if self.big {
            value.to_le_bytes().to_vec()
        } else {
            (value as u32).to_le_bytes().to_vec()
        }
    }

    /// Every IFD, chained, with its out-of-line values after it, placed at `start`.
    fn directories(&self, start: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, level) in self.levels.iter().enumerate() {
            let at = start + out.len() as u64;
            let fields = self.fields(i, level);
            let entry_len = if self.big { 20 } else { 12 };
            let count_len = if self.big { 8 } else { 2 };
            let ifd_len = count_len + fields.len() as u64 * entry_len + self.word(0).len() as u64;
            let mut extra = Vec::new();
            let mut ifd = Vec::new();
            if self.big {
                ifd.extend((fields.len() as u64).to_le_bytes());
            } else {
                ifd.extend((fields.len() as u16).to_le_bytes());
            }
            let inline = if self.big { 8 } else { 4 };
            for (tag, kind, count, bytes) in &fields {
                ifd.extend(tag.to_le_bytes());
                ifd.extend(kind.to_le_bytes());
                ifd.extend(self.word(*count));
                if bytes.len() <= inline {
                    let mut value = bytes.clone();
                    value.resize(inline, 0);
                    ifd.extend(value);
                } else {
                    ifd.extend(self.word(at + ifd_len + extra.len() as u64));
                    extra.extend(bytes);
                    if extra.len() % 2 == 1 {
                        extra.push(0);
                    }
                }
            }
            let next = if i + 1 < self.levels.len() { at + ifd_len + extra.len() as u64 } else { 0 };
            ifd.extend(self.word(next));
            out.extend(ifd);
            out.extend(extra);
        }
        out
    }

    fn fields(&self, index: usize, level: &Level) -> Vec<Field> {
        let short = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let words = |v: &[u64]| v.iter().flat_map(|x| self.word(*x)).collect::<Vec<u8>>();
        let word_type = if self.big { LONG8 } else { LONG };
        let bands = self.bands;
        let int8 = matches!(self.samples, CogSamples::Int8(_));
        let mut fields: Vec<Field> = vec![
            (254, LONG, 1, u32::from(index > 0).to_le_bytes().to_vec()),
            (256, LONG, 1, (level.width as u32).to_le_bytes().to_vec()),
            (257, LONG, 1, (level.height as u32).to_le_bytes().to_vec()),
            (258, SHORT, bands as u64, short(&vec![if int8 { 8 } else { 32 }; bands])),
            (259, SHORT, 1, short(&[self.compression.tag()])),
            (262, SHORT, 1, short(&[1])),
            (277, SHORT, 1, short(&[bands as u16])),
            (284, SHORT, 1, short(&[2])),
            (322, LONG, 1, (self.tile as u32).to_le_bytes().to_vec()),
            (323, LONG, 1, (self.tile as u32).to_le_bytes().to_vec()),
            (324, word_type, level.offsets.len() as u64, words(&level.offsets)),
            (325, word_type, level.counts.len() as u64, words(&level.counts)),
            // Signed integers or IEEE floats.
            (339, SHORT, bands as u64, short(&vec![if int8 { 2 } else { 3 }; bands])),
        ];
        if self.compression != CogCompression::None {
            // Horizontal differencing for bytes, the floating-point predictor (TIFF Technical
            // Note 3) for floats.
            fields.push((317, SHORT, 1, short(&[if int8 { 2 } else { 3 }])));
        }
        if bands > 1 {
            fields.push((338, SHORT, bands as u64 - 1, short(&vec![0; bands - 1])));
        }
        fields.extend(nodata_field(self.nodata));
        if index == 0 {
            fields.extend(georeference_fields(&self.georef));
            let scales: Vec<(f32, f32)> = match &self.samples {
                CogSamples::Int8(bands) => bands.iter().map(|b| (b.scale, b.offset)).collect(),
                CogSamples::F32 => Vec::new(),
            };
            fields.extend(metadata_field_with_scales(&self.metadata, &scales));
        }
        fields.sort_by_key(|f| f.0);
        fields
    }
}

/// Band planes of one tile, predicted and compressed, in band order from `first_band`.
pub struct EncodedTile {
    level: usize,
    tx: usize,
    ty: usize,
    first_band: usize,
    planes: Vec<Vec<u8>>,
    error: QuantisationError,
}

/// Encodes tiles for one [`CogWriter`]'s file.
pub struct TileEncoder {
    target: PathBuf,
    sizes: Vec<(usize, usize)>,
    bands: usize,
    tile: usize,
    compression: CogCompression,
    samples: CogSamples,
}

impl TileEncoder {
    /// The planes of `band_range` of the tile (`tx`, `ty`) of `level`, from `planes`: every band
    /// of the tile as a whole `tile × tile` plane, row-major (`planes[(band · tile + row) · tile +
    /// col]`), cells outside the image (at the right and bottom edges) holding what the padding
    /// should be, normally nodata. A tile may be encoded and written a range of bands at a time,
    /// in band order, so that its compressed planes are not all held at once.
    pub fn encode(
        &self,
        level: usize,
        tx: usize,
        ty: usize,
        planes: &[f32],
        band_range: std::ops::Range<usize>,
    ) -> Result<EncodedTile> {
        let (tile, bands, compression) = (self.tile, self.bands, self.compression);
        let bad =
            || Error::format(&self.target, format!("tile {tx},{ty} of level {level} has {} values", planes.len()));
        let &(width, height) = self.sizes.get(level).ok_or_else(bad)?;
        if tx >= width.div_ceil(tile) || ty >= height.div_ceil(tile) {
            return Err(bad());
        }
        let area = tile * tile;
        if planes.len() != bands * area || band_range.start >= band_range.end || band_range.end > bands {
            return Err(bad());
        }
        let first_band = band_range.start;
        let encoded: Vec<(Vec<u8>, QuantisationError)> = band_range
            .into_par_iter()
            .map(|band| {
                let plane = &planes[band * area..][..area];
                match &self.samples {
                    CogSamples::F32 => Ok((encode(plane, tile, compression)?, QuantisationError::default())),
                    CogSamples::Int8(scales) => {
                        let (bytes, error) = quantise(plane, scales[band]);
                        Ok((encode_int8(&bytes, tile, compression)?, error))
                    }
                }
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(&self.target, e))?;
        let error = encoded.iter().fold(QuantisationError::default(), |a, (_, e)| a.merge(*e));
        let planes = encoded.into_iter().map(|(p, _)| p).collect();
        Ok(EncodedTile { level, tx, ty, first_band, planes, error })
    }
}

/// ZSTD level -1, the first of its fast levels: on the globe at 0.25° its file was 0.8 %
/// smaller than level 1's, for no more CPU time (the floating-point predictor does most of the
/// work; level 3 took 40 % more time than level 1 for a file 3 % smaller).
const ZSTD_LEVEL: i32 = -1;

thread_local! {
    /// One compression context per thread, reused for every plane (a context is ~1 MB to set up).
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// One float32 band's tile: the floating-point predictor row by row, then the compression.
fn encode(plane: &[f32], tile: usize, compression: CogCompression) -> std::io::Result<Vec<u8>> {
    if compression == CogCompression::None {
        return Ok(plane.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    let mut bytes = vec![0u8; plane.len() * 4];
    let mut shuffled = vec![0u8; tile * 4];
    for (row_values, row) in plane.chunks_exact(tile).zip(bytes.chunks_exact_mut(tile * 4)) {
        float_predictor(row_values, &mut shuffled, row);
    }
    compress(&bytes, compression)
}

/// One int8 band's tile: horizontal differencing row by row, then the compression.
fn encode_int8(plane: &[u8], tile: usize, compression: CogCompression) -> std::io::Result<Vec<u8>> {
    if compression == CogCompression::None {
        return Ok(plane.to_vec());
    }
    let mut bytes = vec![0u8; plane.len()];
    for (row, out) in plane.chunks_exact(tile).zip(bytes.chunks_exact_mut(tile)) {
        // TIFF's Predictor 2 for bytes: each byte minus the one before it in the row.
        out[0] = row[0];
        for ((o, cur), prev) in out[1..].iter_mut().zip(&row[1..]).zip(row) {
            *o = cur.wrapping_sub(*prev);
        }
    }
    compress(&bytes, compression)
}

fn compress(bytes: &[u8], compression: CogCompression) -> std::io::Result<Vec<u8>> {
    match compression {
        CogCompression::Zstd => ZSTD.with_borrow_mut(|zstd| {
            let compressor = match zstd {
                Some(c) => c,
                None => zstd.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
            };
            compressor.compress(bytes)
        }),
        CogCompression::Deflate => {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
            encoder.write_all(bytes)?;
            encoder.finish()
        }
        CogCompression::None => Ok(bytes.to_vec()),
    }
}

/// An int8 band's plane as stored bytes, and what quantising it changed.
fn quantise(plane: &[f32], band: Int8Band) -> (Vec<u8>, QuantisationError) {
    let mut error = QuantisationError::default();
    let bytes = plane
        .iter()
        .map(|&v| {
            let (q, clamped) = band.quantise(v);
            if !v.is_nan() {
                error.clamped += u64::from(clamped);
                error.max_abs = error.max_abs.max((band.value(q) - v).abs());
            }
            q as u8
        })
        .collect();
    (bytes, error)
}

/// TIFF Technical Note 3 as libtiff writes it: the bytes of a row's samples regrouped by
/// significance (most significant first), then each byte minus the one before it. Written as
/// whole-slice passes, which the compiler vectorises; `shuffled` is scratch of the row's size.
fn float_predictor(values: &[f32], shuffled: &mut [u8], row: &mut [u8]) {
    let n = values.len();
    let (high, rest) = shuffled.split_at_mut(n);
    let (upper, rest) = rest.split_at_mut(n);
    let (lower, low) = rest.split_at_mut(n);
    for (i, v) in values.iter().enumerate() {
        let bits = v.to_bits();
        high[i] = (bits >> 24) as u8;
        upper[i] = (bits >> 16) as u8;
        lower[i] = (bits >> 8) as u8;
        low[i] = bits as u8;
    }
    row[0] = shuffled[0];
    for ((out, cur), prev) in row[1..].iter_mut().zip(&shuffled[1..]).zip(&shuffled[..4 * n - 1]) {
        *out = cur.wrapping_sub(*prev);
    }
}

/// The inverse of [`float_predictor`], for the tests.
#[cfg(test)]
fn undo_float_predictor(row: &mut [u8]) -> Vec<f32> {
    for i in 1..row.len() {
        row[i] = row[i].wrapping_add(row[i - 1]);
    }
    let n = row.len() / 4;
    (0..n).map(|i| f32::from_le_bytes([row[3 * n + i], row[2 * n + i], row[n + i], row[i]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_bands_round_within_half_a_step_clamp_beyond_and_keep_nodata() {
        let band = Int8Band::covering(-1.0, 1.5);
        assert!((band.scale - 2.5 / 254.0).abs() < 1e-9 && (band.offset - 0.25).abs() < 1e-7);
        let (bytes, error) = quantise(&[-1.0, 0.3, 1.5, 2.0, f32::NAN], band);
        assert_eq!(bytes[4] as i8, INT8_NODATA);
        assert_eq!([bytes[0] as i8, bytes[2] as i8], [-127, 127], "the range's ends are the extreme steps");
        assert!((band.value(bytes[1] as i8) - 0.3).abs() <= band.scale / 2.0);
        // 2.0 is clamped to 1.5: one clamped value, and the largest error is that clamp's.
        assert_eq!(error.clamped, 1);
        assert!((error.max_abs - 0.5).abs() < 1e-4, "{error:?}");
    }

    #[test]
    fn the_predictor_round_trips() {
        let values: Vec<f32> = (0..32).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        let mut row = vec![0u8; 128];
        float_predictor(&values, &mut vec![0u8; 128], &mut row);
        assert_eq!(undo_float_predictor(&mut row), values);
    }

    #[test]
    fn tiles_and_directories_land_where_the_header_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tif");
        let georef = GeoReference { epsg: 4326, origin: [0.0, 10.0], pixel_size: [0.5, 0.5] };
        let levels = [(40, 20), (20, 10), (10, 5)];
        let mut w = CogWriter::create(
            &path,
            &levels,
            3,
            16,
            georef,
            Some(f32::NAN),
            CogCompression::Zstd,
            CogSamples::F32,
            vec![],
        )
        .unwrap();
        // Smallest overview first, full resolution last.
        for level in (0..3).rev() {
            let (width, height) = levels[level];
            for ty in 0..height.div_ceil(16) {
                for tx in 0..width.div_ceil(16) {
                    let cols = (width - tx * 16).min(16);
                    let rows = (height - ty * 16).min(16);
                    // Band b of pixel (r, c) inside the image holds level·1000 + (r·cols + c)·3 + b.
                    let values: Vec<f32> = (0..3 * 16 * 16)
                        .map(|i| {
                            let (b, r, c) = (i / 256, i / 16 % 16, i % 16);
                            match r < rows && c < cols {
                                true => (level * 1000 + (r * cols + c) * 3 + b) as f32,
                                false => f32::NAN,
                            }
                        })
                        .collect();
                    w.write_tile(level, tx, ty, &values).unwrap();
                }
            }
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], b"II*\0");
        let first_ifd = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
        assert_eq!(first_ifd, 8, "the first IFD follows the header");
        // The full-resolution tile (0, 0), band 1, decodes to what was written.
        let decoder = |tag: u16| -> Vec<u32> {
            let count = u16::from_le_bytes(bytes[8..10].try_into().unwrap()) as usize;
            let entry = (0..count)
                .map(|i| 10 + 12 * i)
                .find(|&e| u16::from_le_bytes(bytes[e..e + 2].try_into().unwrap()) == tag)
                .unwrap();
            let n = u32::from_le_bytes(bytes[entry + 4..entry + 8].try_into().unwrap()) as usize;
            let at = u32::from_le_bytes(bytes[entry + 8..entry + 12].try_into().unwrap()) as usize;
            (0..n).map(|i| u32::from_le_bytes(bytes[at + 4 * i..at + 4 * i + 4].try_into().unwrap())).collect()
        };
        let (offsets, counts) = (decoder(324), decoder(325));
        assert_eq!(offsets.len(), 3 * 3 * 2);
        let tiles = 3 * 2;
        let slot = tiles; // band 1, tile 0
        let raw =
            zstd::bulk::decompress(&bytes[offsets[slot] as usize..][..counts[slot] as usize], 16 * 16 * 4).unwrap();
        let mut row = raw[..64].to_vec();
        let got = undo_float_predictor(&mut row);
        let want: Vec<f32> = (0..16).map(|c| (c * 3 + 1) as f32).collect();
        assert_eq!(got, want);
        // The full resolution's tiles come last: after the overviews' (12 tiles of 3 bands).
        let overview_bytes: usize = 3 * (2 * 1 + 1 * 1) * 4;
        assert!(offsets.iter().all(|&o| o as usize >= overview_bytes), "full-resolution tiles are last");
    }
}
