//! GeoTIFF rasters in pure Rust: multi-band uint8/uint16/int16/float, striped or tiled, bands
//! interleaved by pixel or stored as separate planes (as rasterio writes by default, and as
//! satclip's own COGs are), LZW, Deflate, ZSTD or uncompressed, with predictor (decoding by the
//! `tiff` crate, ZSTD chunks inflated here; under limits so that a lying header gives an error
//! instead of a huge allocation), plus the georeferencing needed to
//! place a tile on the globe: pixel scale, tie point and EPSG code, with UTM zones (WGS 84,
//! EPSG 326zz/327zz) and geographic WGS 84 (EPSG 4326) converted to lon/lat.

use std::io::BufReader;
use std::path::Path;

use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;

use crate::error::{Error, Result};

/// Largest decoded raster [`read`] accepts (bytes): an S2-100K tile is 1.5 MB. Callers that know
/// what they need pass a tighter bound to [`read_with_limit`].
pub const MAX_RASTER_BYTES: usize = 256 << 20;

pub(crate) const MODEL_PIXEL_SCALE: u16 = 33550;
pub(crate) const MODEL_TIEPOINT: u16 = 33922;
pub(crate) const GEO_KEY_DIRECTORY: u16 = 34735;
pub(crate) const GEOGRAPHIC_TYPE_KEY: u16 = 2048;
pub(crate) const PROJECTED_CS_TYPE_KEY: u16 = 3072;

/// Band-interleaved-by-pixel samples converted to f32, with their layout.
#[derive(Clone, Debug)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub bands: usize,
    /// `data[(row · width + col) · bands + band]`, the values as stored (no scaling).
    pub data: Vec<f32>,
    pub georef: Option<GeoReference>,
}

/// Where the raster sits: top-left corner, pixel size and coordinate system.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoReference {
    pub epsg: u32,
    /// Model coordinates of the top-left corner of the top-left pixel.
    pub origin: [f64; 2],
    /// Pixel size in model units (x to the east, y to the south).
    pub pixel_size: [f64; 2],
}

impl Raster {
    /// Values of one band, row-major.
    pub fn band(&self, band: usize) -> impl Iterator<Item = f32> + '_ {
        self.data.iter().skip(band).step_by(self.bands).copied()
    }

    /// Lon/lat of the four corners of the raster's bounds, in the order top-left, top-right,
    /// bottom-right, bottom-left.
    pub fn corners_lonlat(&self) -> Option<[[f64; 2]; 4]> {
        let g = self.georef?;
        let (w, h) = (self.width as f64 * g.pixel_size[0], self.height as f64 * g.pixel_size[1]);
        let [x0, y0] = g.origin;
        let corners = [[x0, y0], [x0 + w, y0], [x0 + w, y0 - h], [x0, y0 - h]];
        let mut out = [[0.0; 2]; 4];
        for (o, [x, y]) in out.iter_mut().zip(corners) {
            *o = to_lonlat(g.epsg, x, y)?;
        }
        Some(out)
    }

    /// The tile's location as S2-100K's `index.csv` gives it: the area centroid of the bounds'
    /// four corners reprojected to lon/lat. `None` without a supported georeference.
    pub fn centre_lonlat(&self) -> Option<[f64; 2]> {
        self.corners_lonlat().map(|c| polygon_centroid(&c))
    }
}

pub fn read(path: &Path) -> Result<Raster> {
    read_with_limit(path, MAX_RASTER_BYTES)
}

/// As [`read`], refusing a raster whose decoded samples would take more than `max_bytes`: a
/// compressed bomb declares its size in the header, and is refused before it is inflated.
pub fn read_with_limit(path: &Path, max_bytes: usize) -> Result<Raster> {
    crate::guard_decoder(path, "TIFF", || read_unguarded(path, max_bytes))
}

fn read_unguarded(path: &Path, max_bytes: usize) -> Result<Raster> {
    let file = crate::open_regular(path)?;
    let bad = |e: tiff::TiffError| Error::format(path, format!("not a readable TIFF: {e}"));
    let mut limits = Limits::default();
    limits.decoding_buffer_size = max_bytes;
    limits.ifd_value_size = 1 << 20;
    limits.intermediate_buffer_size = chunk_limit(max_bytes);
    let mut decoder = Decoder::new(BufReader::new(file)).map_err(bad)?.with_limits(limits);
    let (width, height) = decoder.dimensions().map_err(bad)?;
    let (width, height) = (width as usize, height as usize);
    let samples = match decoder.find_tag(Tag::SamplesPerPixel).map_err(bad)? {
        Some(v) => v.into_u32().map_err(bad)? as usize,
        None => 1,
    };
    // f32 values after conversion: bound them too, whatever the stored sample width.
    let decoded = width.checked_mul(height).and_then(|p| p.checked_mul(samples)).and_then(|n| n.checked_mul(4));
    if decoded.is_none_or(|b| b > max_bytes.saturating_mul(2)) {
        return Err(Error::format(
            path,
            format!("{width}×{height} pixels × {samples} bands is larger than satclip reads ({max_bytes} bytes)"),
        ));
    }
    let planar = match decoder.find_tag(Tag::PlanarConfiguration).map_err(bad)? {
        Some(v) => v.into_u32().map_err(bad)? == 2,
        None => false,
    };
    let zstd = match decoder.find_tag(Tag::Compression).map_err(bad)? {
        Some(v) => v.into_u16().map_err(bad)? == tiff::tags::CompressionMethod::ZSTD.to_u16(),
        None => false,
    };
    let raw = match zstd {
        true => {
            let per_pixel = if planar { 1 } else { samples };
            Some(RawChunks::read(&mut decoder, path, width, per_pixel, chunk_limit(max_bytes))?)
        }
        false => None,
    };
    let data = match (planar && samples > 1) || raw.is_some() {
        true => read_chunks(&mut decoder, path, [width, height], samples, planar, raw.as_ref())?,
        false => to_f32(path, decoder.read_image().map_err(bad)?)?,
    };
    let pixels = width.checked_mul(height).filter(|&p| p > 0).ok_or_else(|| Error::format(path, "empty raster"))?;
    if data.len() % pixels != 0 {
        return Err(Error::format(path, format!("{} samples do not fill {width}×{height} pixels", data.len())));
    }
    let bands = data.len() / pixels;
    let georef = read_georeference(&mut decoder).map_err(|m| Error::format(path, m))?;
    Ok(Raster { width, height, bands, data, georef })
}

/// The most bytes one chunk may decode to: a header can declare tiles far larger than its image.
fn chunk_limit(max_bytes: usize) -> usize {
    max_bytes.min(64 << 20)
}

/// The samples of a decoded image or chunk as f32.
fn to_f32(path: &Path, image: DecodingResult) -> Result<Vec<f32>> {
    Ok(match image {
        DecodingResult::U8(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::U16(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::I8(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::I16(v) => v.into_iter().map(f32::from).collect(),
        DecodingResult::F32(v) => v,
        DecodingResult::F64(v) => v.into_iter().map(|x| x as f32).collect(),
        DecodingResult::U32(v) => v.into_iter().map(|x| x as f32).collect(),
        DecodingResult::I32(v) => v.into_iter().map(|x| x as f32).collect(),
        other => {
            return Err(Error::format(path, format!("unsupported sample type {:?}", std::mem::discriminant(&other))))
        }
    })
}

/// An image chunk by chunk: its bands interleaved by pixel in each chunk, or stored as separate
/// planes (PlanarConfiguration 2; the decoder's whole-image path does not place the planes'
/// partial edge tiles), into pixel-interleaved samples. The chunks of band `b` of a planar image
/// are `b · chunks_per_plane ..`, each placed by its own size. `raw` is how to read chunks the
/// decoder cannot inflate (ZSTD).
fn read_chunks<R: std::io::Read + std::io::Seek>(
    decoder: &mut Decoder<R>,
    path: &Path,
    [width, height]: [usize; 2],
    bands: usize,
    planar: bool,
    raw: Option<&RawChunks>,
) -> Result<Vec<f32>> {
    let bad = |e: tiff::TiffError| Error::format(path, format!("not a readable TIFF: {e}"));
    let (chunk_width, chunk_height) = decoder.chunk_dimensions();
    let (chunk_width, chunk_height) = (chunk_width as usize, chunk_height as usize);
    if chunk_width == 0 || chunk_height == 0 {
        return Err(Error::format(path, "its tiles or strips are empty"));
    }
    let (across, down) = (width.div_ceil(chunk_width), height.div_ceil(chunk_height));
    let planes = if planar { bands } else { 1 };
    let chunks = match decoder.get_chunk_type() {
        tiff::decoder::ChunkType::Tile => decoder.tile_count().map_err(bad)?,
        tiff::decoder::ChunkType::Strip => decoder.strip_count().map_err(bad)?,
    } as usize;
    if chunks != across * down * planes {
        return Err(Error::format(
            path,
            format!(
                "has {chunks} tiles or strips where {planes} plane(s) of {across}×{down} need {}",
                across * down * planes
            ),
        ));
    }
    // Samples per pixel within a chunk.
    let per_pixel = bands / planes;
    let mut data = vec![0.0f32; width * height * bands];
    for index in 0..chunks {
        let (band, chunk) = (index / (across * down), index % (across * down));
        let (x0, y0) = ((chunk % across) * chunk_width, (chunk / across) * chunk_height);
        let (w, h) = ((width - x0).min(chunk_width), (height - y0).min(chunk_height));
        let values = match raw {
            Some(raw) => raw.chunk(decoder, path, index, [w, h])?,
            None => to_f32(path, decoder.read_chunk(index as u32).map_err(bad)?)?,
        };
        // Rows come `w` pixels wide; the decoder sizes an edge tile of a band after the first as
        // if it were not at the bottom edge, so the rows past the image are dropped here.
        let row = w * per_pixel;
        let rows = values.len() / row;
        if values.len() % row != 0 || rows < h || rows > chunk_height {
            let n = values.len();
            return Err(Error::format(path, format!("tile or strip {index} holds {n} samples, not {w}×{h}")));
        }
        for (r, values) in values.chunks_exact(row).take(h).enumerate() {
            let start = (y0 + r) * width + x0;
            match planar {
                true => {
                    for (c, &v) in values.iter().enumerate() {
                        data[(start + c) * bands + band] = v;
                    }
                }
                false => data[start * bands..][..row].copy_from_slice(values),
            }
        }
    }
    Ok(data)
}

/// What it takes to read chunks whose compression the `tiff` crate is not built with (ZSTD: its
/// own ZSTD support would link a second libzstd beside the one satclip links): where each chunk
/// is, how its samples are stored and which predictor they went through.
struct RawChunks {
    offsets: Vec<u64>,
    counts: Vec<u64>,
    big_endian: bool,
    /// Bytes per sample.
    width: usize,
    /// 1 unsigned integer, 2 signed integer, 3 IEEE float (TIFF's SampleFormat).
    format: u16,
    predictor: u16,
    /// Samples per pixel in one chunk: the bands, or 1 for band planes.
    per_pixel: usize,
    tiled: bool,
    /// Pixels per stored row of a chunk: the tile width, or the image's for strips.
    stored_width: usize,
    /// Rows of a tile.
    tile_rows: usize,
    file_len: u64,
    /// The most bytes a chunk may decode to.
    max_chunk_bytes: usize,
}

impl RawChunks {
    fn read<R: std::io::Read + std::io::Seek>(
        decoder: &mut Decoder<R>,
        path: &Path,
        image_width: usize,
        per_pixel: usize,
        max_chunk_bytes: usize,
    ) -> Result<Self> {
        let bad = |e: tiff::TiffError| Error::format(path, format!("not a readable TIFF: {e}"));
        let tiled = decoder.get_chunk_type() == tiff::decoder::ChunkType::Tile;
        let (offsets, counts) = match tiled {
            true => (Tag::TileOffsets, Tag::TileByteCounts),
            false => (Tag::StripOffsets, Tag::StripByteCounts),
        };
        let offsets = decoder.get_tag_u64_vec(offsets).map_err(bad)?;
        let counts = decoder.get_tag_u64_vec(counts).map_err(bad)?;
        let one = |decoder: &mut Decoder<R>, tag: Tag, default: u16| -> Result<u16> {
            let values = match decoder.find_tag(tag).map_err(bad)? {
                Some(v) => v.into_u16_vec().map_err(bad)?,
                None => vec![default],
            };
            match values.split_first() {
                Some((&first, rest)) if rest.iter().all(|&v| v == first) => Ok(first),
                _ => Err(Error::format(path, format!("{tag:?} differs between bands"))),
            }
        };
        let bits = one(decoder, Tag::BitsPerSample, 1)?;
        let format = one(decoder, Tag::SampleFormat, 1)?;
        let predictor = one(decoder, Tag::Predictor, 1)?;
        let samples_supported = matches!((format, bits), (1 | 2, 8 | 16 | 32) | (3, 32 | 64));
        // Horizontal differencing is for integers, the floating-point predictor for floats.
        let predictor_fits = match predictor {
            1 => true,
            2 => format != 3,
            3 => format == 3,
            _ => false,
        };
        if !samples_supported || !predictor_fits {
            return Err(Error::format(
                path,
                format!("ZSTD with {bits}-bit samples of format {format} and predictor {predictor} is not supported"),
            ));
        }
        let (chunk_width, chunk_rows) = decoder.chunk_dimensions();
        let stored_width = if tiled { chunk_width as usize } else { image_width };
        let file_len = decoder.inner().seek(std::io::SeekFrom::End(0)).map_err(|e| Error::io(path, e))?;
        Ok(Self {
            offsets,
            counts,
            big_endian: decoder.byte_order() == tiff::tags::ByteOrder::BigEndian,
            width: usize::from(bits / 8),
            format,
            predictor,
            per_pixel,
            tiled,
            stored_width,
            tile_rows: chunk_rows as usize,
            file_len,
            max_chunk_bytes,
        })
    }

    /// Chunk `index` as f32 samples, `w` pixels by `h` rows (the part inside the image).
    fn chunk<R: std::io::Read + std::io::Seek>(
        &self,
        decoder: &mut Decoder<R>,
        path: &Path,
        index: usize,
        [w, h]: [usize; 2],
    ) -> Result<Vec<f32>> {
        let bad = |problem: String| Error::format(path, format!("tile or strip {index}: {problem}"));
        let (Some(&offset), Some(&count)) = (self.offsets.get(index), self.counts.get(index)) else {
            return Err(bad("no offset or byte count".into()));
        };
        // A tile is always whole; a strip holds only the image's rows (fewer at the bottom).
        let rows = if self.tiled { self.tile_rows } else { h };
        let row_bytes = self.stored_width * self.per_pixel * self.width;
        let expected =
            row_bytes.checked_mul(rows).filter(|&b| b > 0 && b <= self.max_chunk_bytes).ok_or_else(|| {
                bad(format!("{} × {rows} pixels per chunk is larger than satclip reads", self.stored_width))
            })?;
        // ZSTD's worst case for incompressible data is a little above its size: more than that,
        // or beyond the file, is a lie that is not allocated.
        if count > (expected + expected / 128 + 4096) as u64
            || offset.checked_add(count).is_none_or(|e| e > self.file_len)
        {
            return Err(bad(format!("{count} compressed bytes at {offset} do not fit the chunk or the file")));
        }
        let mut compressed = vec![0u8; count as usize];
        let reader = decoder.inner();
        reader.seek(std::io::SeekFrom::Start(offset)).map_err(|e| Error::io(path, e))?;
        reader.read_exact(&mut compressed).map_err(|e| Error::io(path, e))?;
        let mut bytes =
            zstd::bulk::decompress(&compressed, expected).map_err(|e| bad(format!("bad ZSTD data: {e}")))?;
        if bytes.len() != expected {
            return Err(bad(format!("inflates to {} bytes, not {expected}", bytes.len())));
        }
        let mut values = Vec::with_capacity(w * h * self.per_pixel);
        for row in bytes.chunks_exact_mut(row_bytes).take(h) {
            values.extend(self.decode_row(row).take(w * self.per_pixel));
        }
        Ok(values)
    }

    /// One stored row's samples as f32, its predictor undone.
    fn decode_row(&self, row: &mut [u8]) -> impl Iterator<Item = f32> + '_ {
        let n = row.len() / self.width;
        let mut samples: Vec<u64> = match self.predictor {
            3 => {
                // TIFF Technical Note 3: byte differences over the row, then each sample's bytes
                // gathered from the row's byte planes, most significant first.
                for i in 1..row.len() {
                    row[i] = row[i].wrapping_add(row[i - 1]);
                }
                (0..n).map(|i| (0..self.width).fold(0u64, |v, k| v << 8 | u64::from(row[k * n + i]))).collect()
            }
            _ => row
                .chunks_exact(self.width)
                .map(|b| match self.big_endian {
                    true => b.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)),
                    false => b.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x)),
                })
                .collect(),
        };
        let bits = 8 * self.width as u32;
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        if self.predictor == 2 {
            // Horizontal differencing: each sample minus the same band's in the previous pixel.
            for i in self.per_pixel..n {
                samples[i] = samples[i].wrapping_add(samples[i - self.per_pixel]) & mask;
            }
        }
        let format = self.format;
        samples.into_iter().map(move |v| match (format, bits) {
            (3, 32) => f32::from_bits(v as u32),
            (3, _) => f64::from_bits(v) as f32,
            (2, _) => ((v << (64 - bits)) as i64 >> (64 - bits)) as f32,
            _ => v as f32,
        })
    }
}

fn read_georeference<R: std::io::Read + std::io::Seek>(
    decoder: &mut Decoder<R>,
) -> Result<Option<GeoReference>, String> {
    let scale = decoder.find_tag(Tag::Unknown(MODEL_PIXEL_SCALE)).map_err(|e| e.to_string())?;
    let tie = decoder.find_tag(Tag::Unknown(MODEL_TIEPOINT)).map_err(|e| e.to_string())?;
    let keys = decoder.find_tag(Tag::Unknown(GEO_KEY_DIRECTORY)).map_err(|e| e.to_string())?;
    let (Some(scale), Some(tie), Some(keys)) = (scale, tie, keys) else { return Ok(None) };
    let scale = scale.into_f64_vec().map_err(|e| format!("ModelPixelScale: {e}"))?;
    let tie = tie.into_f64_vec().map_err(|e| format!("ModelTiepoint: {e}"))?;
    let keys = keys.into_u16_vec().map_err(|e| format!("GeoKeyDirectory: {e}"))?;
    if scale.len() < 2 || tie.len() < 6 || !(scale[0] > 0.0 && scale[1] > 0.0) {
        return Err("malformed ModelPixelScale or ModelTiepoint".into());
    }
    // Key directory: header of 4 shorts, then (key, location, count, value) entries.
    let lookup = |key: u16| {
        keys.get(4..).unwrap_or_default().chunks_exact(4).find(|e| e[0] == key && e[1] == 0).map(|e| e[3] as u32)
    };
    let Some(epsg) = lookup(PROJECTED_CS_TYPE_KEY).or_else(|| lookup(GEOGRAPHIC_TYPE_KEY)) else { return Ok(None) };
    // Tie point (i, j, k) ↔ (x, y, z): shift it to the corner of pixel (0, 0).
    let origin = [tie[3] - tie[0] * scale[0], tie[4] + tie[1] * scale[1]];
    Ok(Some(GeoReference { epsg, origin, pixel_size: [scale[0], scale[1]] }))
}

/// Model coordinates to (lon, lat) for WGS 84 geographic and WGS 84 / UTM.
pub fn to_lonlat(epsg: u32, x: f64, y: f64) -> Option<[f64; 2]> {
    match epsg {
        4326 => Some([x, y]),
        32601..=32660 => Some(utm_inverse(x, y, epsg - 32600, true)),
        32701..=32760 => Some(utm_inverse(x, y, epsg - 32700, false)),
        _ => None,
    }
}

/// Inverse transverse Mercator on WGS 84 by Krüger's series to third order in n (Karney 2011):
/// millimetre accuracy within a UTM zone.
pub fn utm_inverse(easting: f64, northing: f64, zone: u32, north: bool) -> [f64; 2] {
    let a = 6_378_137.0;
    let f = 1.0 / 298.257_223_563;
    let k0 = 0.9996;
    let n = f / (2.0 - f);
    let (n2, n3) = (n * n, n * n * n);
    let big_a = a / (1.0 + n) * (1.0 + n2 / 4.0 + n2 * n2 / 64.0);
    let beta = [n / 2.0 - 2.0 * n2 / 3.0 + 37.0 * n3 / 96.0, n2 / 48.0 + n3 / 15.0, 17.0 * n3 / 480.0];
    let delta = [2.0 * n - 2.0 * n2 / 3.0 - 2.0 * n3, 7.0 * n2 / 3.0 - 8.0 * n3 / 5.0, 56.0 * n3 / 15.0];
    let xi = (northing - if north { 0.0 } else { 10_000_000.0 }) / (k0 * big_a);
    let eta = (easting - 500_000.0) / (k0 * big_a);
    let (mut xi_p, mut eta_p) = (xi, eta);
    for (j, b) in beta.iter().enumerate() {
        let k = 2.0 * (j + 1) as f64;
        xi_p -= b * (k * xi).sin() * (k * eta).cosh();
        eta_p -= b * (k * xi).cos() * (k * eta).sinh();
    }
    let chi = (xi_p.sin() / eta_p.cosh()).asin();
    let mut phi = chi;
    for (j, d) in delta.iter().enumerate() {
        phi += d * (2.0 * (j + 1) as f64 * chi).sin();
    }
    let lambda0 = (zone as f64 * 6.0 - 183.0).to_radians();
    let lambda = lambda0 + eta_p.sinh().atan2(xi_p.cos());
    [lambda.to_degrees(), phi.to_degrees()]
}

/// Area centroid of a simple polygon in the plane (the shoelace formula).
pub fn polygon_centroid(points: &[[f64; 2]]) -> [f64; 2] {
    let (mut area2, mut cx, mut cy) = (0.0, 0.0, 0.0);
    for i in 0..points.len() {
        let [x0, y0] = points[i];
        let [x1, y1] = points[(i + 1) % points.len()];
        let cross = x0 * y1 - x1 * y0;
        area2 += cross;
        cx += (x0 + x1) * cross;
        cy += (y0 + y1) * cross;
    }
    [cx / (3.0 * area2), cy / (3.0 * area2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_inverse_of_known_points() {
        // The central meridian at the equator.
        let [lon, lat] = utm_inverse(500_000.0, 0.0, 31, true);
        assert!((lon - 3.0).abs() < 1e-12 && lat.abs() < 1e-12);
        // Mirror symmetry about the central meridian; one degree of latitude is ~110.6 km there.
        let [east, lat_e] = utm_inverse(510_000.0, 4_000_000.0, 33, true);
        let [west, lat_w] = utm_inverse(490_000.0, 4_000_000.0, 33, true);
        assert!((east - 15.0 + (west - 15.0)).abs() < 1e-12 && (lat_e - lat_w).abs() < 1e-12);
        let [_, lat1] = utm_inverse(500_000.0, 1_000_000.0, 31, true);
        let [_, lat2] = utm_inverse(500_000.0, 1_110_000.0, 31, true);
        assert!((lat2 - lat1 - 110_000.0 / 0.9996 / 110_574.0).abs() < 2e-3, "{}", lat2 - lat1);
        // Southern hemisphere false northing: the equator in zone 37S.
        let [_, lat] = utm_inverse(500_000.0, 10_000_000.0, 37, false);
        assert!(lat.abs() < 1e-12);
    }

    #[test]
    fn centroid_of_a_square() {
        let c = polygon_centroid(&[[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]);
        assert_eq!(c, [1.0, 1.0]);
    }
}
