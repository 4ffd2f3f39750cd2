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
use crate::geotiff_out::{georeference_fields, metadata_field, nodata_field, Field, LONG, LONG8, SHORT};

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
    metadata: Vec<(String, String)>,
    big: bool,
    /// Bytes reserved after the header for the IFDs.
    reserved: u64,
    position: u64,
}

impl CogWriter {
    /// Starts `path` for `levels` sizes (full resolution first, then each overview), `bands`
    /// float32 bands in `tile`-pixel square tiles (a multiple of 16).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        path: &Path,
        levels: &[(usize, usize)],
        bands: usize,
        tile: usize,
        georef: GeoReference,
        nodata: Option<f32>,
        compression: CogCompression,
        metadata: Vec<(String, String)>,
    ) -> Result<Self> {
        if tile == 0 || tile % 16 != 0 || levels.is_empty() || bands == 0 || bands > u16::MAX as usize {
            return Err(Error::format(path, format!("a {tile}-pixel tile, {} levels, {bands} bands", levels.len())));
        }
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
            metadata,
            big,
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

    /// Writes the tile (`tx`, `ty`) of `level`: `values[(row · columns + col) · bands + band]`
    /// for the tile's pixels inside the image (`rows × columns`, smaller at the right and bottom
    /// edges); the rest of the tile is padded with nodata.
    pub fn write_tile(&mut self, level: usize, tx: usize, ty: usize, values: &[f32]) -> Result<()> {
        let (tile, bands) = (self.tile, self.bands);
        let l = &self.levels[level];
        let columns = (l.width - tx * tile).min(tile);
        let rows = (l.height - ty * tile).min(tile);
        if values.len() != rows * columns * bands || tx >= l.tiles_x || ty >= l.tiles_y {
            return Err(Error::format(
                &self.target,
                format!("tile {tx},{ty} of level {level} has {} values", values.len()),
            ));
        }
        let fill = self.nodata.unwrap_or(0.0);
        let compression = self.compression;
        // One pass over the pixel-interleaved values, writing 256 sequential streams (one per
        // band), instead of a strided read per band.
        let mut planes = vec![vec![fill; tile * tile]; bands];
        for r in 0..rows {
            for c in 0..columns {
                let pixel = &values[(r * columns + c) * bands..][..bands];
                for (plane, v) in planes.iter_mut().zip(pixel) {
                    plane[r * tile + c] = *v;
                }
            }
        }
        let planes: Vec<Vec<u8>> = planes
            .par_iter()
            .map(|plane| encode(plane, tile, compression))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::io(&self.target, e))?;
        let index = ty * l.tiles_x + tx;
        let tiles = l.tiles();
        for (band, bytes) in planes.iter().enumerate() {
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
        assert_eq!(directories.len() as u64, self.reserved, "the IFDs fill exactly their room");
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
        let mut fields: Vec<Field> = vec![
            (254, LONG, 1, u32::from(index > 0).to_le_bytes().to_vec()),
            (256, LONG, 1, (level.width as u32).to_le_bytes().to_vec()),
            (257, LONG, 1, (level.height as u32).to_le_bytes().to_vec()),
            (258, SHORT, bands as u64, short(&vec![32; bands])),
            (259, SHORT, 1, short(&[self.compression.tag()])),
            (262, SHORT, 1, short(&[1])),
            (277, SHORT, 1, short(&[bands as u16])),
            (284, SHORT, 1, short(&[2])),
            (322, LONG, 1, (self.tile as u32).to_le_bytes().to_vec()),
            (323, LONG, 1, (self.tile as u32).to_le_bytes().to_vec()),
            (324, word_type, level.offsets.len() as u64, words(&level.offsets)),
            (325, word_type, level.counts.len() as u64, words(&level.counts)),
            (339, SHORT, bands as u64, short(&vec![3; bands])),
        ];
        if self.compression != CogCompression::None {
            // The floating-point predictor (TIFF Technical Note 3).
            fields.push((317, SHORT, 1, short(&[3])));
        }
        if bands > 1 {
            fields.push((338, SHORT, bands as u64 - 1, short(&vec![0; bands - 1])));
        }
        fields.extend(nodata_field(self.nodata));
        if index == 0 {
            fields.extend(georeference_fields(&self.georef));
            fields.extend(metadata_field(&self.metadata));
        }
        fields.sort_by_key(|f| f.0);
        fields
    }
}

/// One band's tile: the floating-point predictor row by row, then the compression.
fn encode(plane: &[f32], tile: usize, compression: CogCompression) -> std::io::Result<Vec<u8>> {
    if compression == CogCompression::None {
        return Ok(plane.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    let mut bytes = vec![0u8; plane.len() * 4];
    for (row_values, row) in plane.chunks_exact(tile).zip(bytes.chunks_exact_mut(tile * 4)) {
        float_predictor(row_values, row);
    }
    match compression {
        CogCompression::Zstd => zstd::bulk::compress(&bytes, 3),
        CogCompression::Deflate => {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
            encoder.write_all(&bytes)?;
            encoder.finish()
        }
        CogCompression::None => unreachable!(),
    }
}

/// TIFF Technical Note 3 as libtiff writes it: the bytes of a row's samples regrouped by
/// significance (most significant first), then each byte minus the one before it.
fn float_predictor(values: &[f32], row: &mut [u8]) {
    let n = values.len();
    for (i, v) in values.iter().enumerate() {
        let b = v.to_le_bytes();
        for (k, byte) in b.iter().enumerate() {
            row[(3 - k) * n + i] = *byte;
        }
    }
    for i in (1..row.len()).rev() {
        row[i] = row[i].wrapping_sub(row[i - 1]);
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
    fn the_predictor_round_trips() {
        let values: Vec<f32> = (0..32).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        let mut row = vec![0u8; 128];
        float_predictor(&values, &mut row);
        assert_eq!(undo_float_predictor(&mut row), values);
    }

    #[test]
    fn tiles_and_directories_land_where_the_header_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tif");
        let georef = GeoReference { epsg: 4326, origin: [0.0, 10.0], pixel_size: [0.5, 0.5] };
        let levels = [(40, 20), (20, 10), (10, 5)];
        let mut w =
            CogWriter::create(&path, &levels, 3, 16, georef, Some(f32::NAN), CogCompression::Zstd, vec![]).unwrap();
        // Smallest overview first, full resolution last.
        for level in (0..3).rev() {
            let (width, height) = levels[level];
            for ty in 0..height.div_ceil(16) {
                for tx in 0..width.div_ceil(16) {
                    let cols = (width - tx * 16).min(16);
                    let rows = (height - ty * 16).min(16);
                    let values: Vec<f32> = (0..rows * cols * 3).map(|i| (level * 1000 + i) as f32).collect();
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
