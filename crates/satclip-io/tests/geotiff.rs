//! The GeoTIFF reader: bit-exact decoding of the real S2-100K tiles (against checksums computed
//! once with an independent Python reader), and clean errors on damaged files.

use rand::{RngCore, SeedableRng};
use satclip_io::geotiff;
use satclip_testkit::shared_dir;

#[test]
fn decodes_every_sample_tile_bit_exactly() {
    let Some(dir) = shared_dir().map(|d| d.join("data/s2-samples")) else {
        return;
    };
    let expected = include_str!("data/s2_samples_band_checksums.csv");
    let mut checked = 0;
    let mut current: Option<(String, geotiff::Raster)> = None;
    for line in expected.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (file, band, sum, weighted) =
            (f[0], f[1].parse::<usize>().unwrap(), f[2].parse::<u64>().unwrap(), f[3].parse::<u64>().unwrap());
        if current.as_ref().is_none_or(|(name, _)| name != file) {
            let raster = geotiff::read(&dir.join(file)).unwrap();
            assert_eq!((raster.width, raster.height, raster.bands), (256, 256, 12), "{file}");
            assert!(raster.georef.is_some(), "{file} is georeferenced");
            current = Some((file.to_string(), raster));
        }
        let raster = &current.as_ref().unwrap().1;
        let (mut s, mut w) = (0u64, 0u64);
        for (i, v) in raster.band(band).enumerate() {
            assert!(v >= 0.0 && v.fract() == 0.0 && v <= 65535.0);
            s += v as u64;
            w += v as u64 * ((i as u64) % 65521 + 1);
        }
        assert_eq!((s, w), (sum, weighted), "{file} band {band}");
        checked += 1;
    }
    assert_eq!(checked, 23 * 12);
}

fn sample_tile() -> Option<Vec<u8>> {
    let path = shared_dir()?.join("data/s2-samples/patch_445.tif");
    std::fs::read(path).ok()
}

#[test]
fn truncated_and_damaged_tiffs_are_errors_not_panics() {
    let Some(bytes) = sample_tile() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.tif");
    for cut in [0, 4, 8, 100, bytes.len() / 3, bytes.len() / 2] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        match geotiff::read(&path) {
            Ok(_) => panic!("a file cut at byte {cut} decoded"),
            Err(e) => assert!(e.to_string().contains("bad.tif"), "cut at {cut}: {e}"),
        }
    }
    // Random damage anywhere in the file: decode or fail, never panic.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(2);
    let mut next = move || rng.next_u64();
    let mut failures = 0;
    for _ in 0..300 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + next() % 3 {
            // Mostly the header and directory, where lies about sizes and offsets live.
            let span = if next() % 4 == 0 { damaged.len() } else { 4096.min(damaged.len()) };
            let at = (next() as usize) % span;
            damaged[at] = next() as u8;
        }
        std::fs::write(&path, &damaged).unwrap();
        if geotiff::read(&path).is_err() {
            failures += 1;
        }
    }
    assert!(failures > 0);
}

#[test]
fn a_lying_image_size_is_refused_without_allocating_it() {
    let Some(mut bytes) = sample_tile() else {
        return;
    };
    // Rewrite ImageWidth and ImageLength (tags 256, 257) in the first IFD to 60 000.
    assert_eq!(&bytes[..2], b"II", "little-endian TIFF");
    let ifd = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let count = u16::from_le_bytes(bytes[ifd..ifd + 2].try_into().unwrap()) as usize;
    for e in 0..count {
        let at = ifd + 2 + 12 * e;
        let tag = u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
        if tag == 256 || tag == 257 {
            let field_type = u16::from_le_bytes(bytes[at + 2..at + 4].try_into().unwrap());
            let value =
                if field_type == 3 { 60_000u32.to_le_bytes()[..2].to_vec() } else { 60_000u32.to_le_bytes().to_vec() };
            bytes[at + 8..at + 8 + value.len()].copy_from_slice(&value);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.tif");
    std::fs::write(&path, &bytes).unwrap();
    match geotiff::read(&path) {
        Ok(_) => panic!("a 60000×60000 header over 1.5 MB of data decoded"),
        Err(e) => assert!(e.to_string().contains("huge.tif"), "{e}"),
    }
}

/// Rewrites the value of a SHORT tag in the first IFD of a little-endian TIFF, or adds nothing
/// and returns false when the tag is absent.
fn set_short_tag(bytes: &mut [u8], tag: u16, value: u16) -> bool {
    let ifd = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let count = u16::from_le_bytes(bytes[ifd..ifd + 2].try_into().unwrap()) as usize;
    for e in 0..count {
        let at = ifd + 2 + 12 * e;
        if u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) == tag {
            bytes[at + 8..at + 10].copy_from_slice(&value.to_le_bytes());
            return true;
        }
    }
    false
}

#[test]
fn a_header_that_claims_band_planes_the_file_does_not_have_is_an_error() {
    let Some(mut bytes) = sample_tile() else {
        return;
    };
    assert!(set_short_tag(&mut bytes, 284, 2), "the sample tile states its PlanarConfiguration");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("planar.tif");
    std::fs::write(&path, &bytes).unwrap();
    let err = geotiff::read(&path).unwrap_err().to_string();
    assert!(err.contains("planar.tif"), "{err}");
}

/// A single-level COG of `width × height` pixels and `bands` bands in `tile`-pixel tiles, each
/// pixel `value(row, col, band)`, the padding of the edge tiles nodata.
fn write_cog(
    path: &std::path::Path,
    [width, height, bands, tile]: [usize; 4],
    compression: satclip_io::cog::CogCompression,
    samples: satclip_io::cog::CogSamples,
    value: impl Fn(usize, usize, usize) -> f32,
) -> geotiff::GeoReference {
    let georef = geotiff::GeoReference { epsg: 4326, origin: [5.0, 50.0], pixel_size: [0.5, 0.25] };
    let mut writer = satclip_io::cog::CogWriter::create(
        path,
        &[(width, height)],
        bands,
        tile,
        georef,
        Some(f32::NAN),
        compression,
        samples,
        vec![],
    )
    .unwrap();
    for ty in 0..height.div_ceil(tile) {
        for tx in 0..width.div_ceil(tile) {
            let planes: Vec<f32> = (0..bands * tile * tile)
                .map(|i| {
                    let (b, r, c) = (i / (tile * tile), ty * tile + i / tile % tile, tx * tile + i % tile);
                    if r < height && c < width {
                        value(r, c, b)
                    } else {
                        f32::NAN
                    }
                })
                .collect();
            writer.write_tile(0, tx, ty, &planes).unwrap();
        }
    }
    writer.finish().unwrap();
    georef
}

/// Band planes (PlanarConfiguration 2, as rasterio writes by default and as `satclip raster`
/// writes its COGs) read as the same pixels as bands interleaved by pixel: a tiled file with
/// partial edge tiles, written by the COG writer, read back.
#[test]
fn band_planes_read_as_the_values_written() {
    use satclip_io::cog::{CogCompression, CogSamples};
    let dir = tempfile::tempdir().unwrap();
    let (width, height, bands, tile) = (40, 20, 3, 16);
    let value = |r: usize, c: usize, b: usize| (r * 1000 + c * 10 + b) as f32 - 0.25;
    for compression in [CogCompression::Deflate, CogCompression::None, CogCompression::Zstd] {
        let path = dir.path().join(format!("planes-{compression:?}.tif"));
        let georef = write_cog(&path, [width, height, bands, tile], compression, CogSamples::F32, value);
        let raster = geotiff::read(&path).unwrap();
        assert_eq!((raster.width, raster.height, raster.bands), (width, height, bands));
        assert_eq!(raster.georef, Some(georef));
        for r in 0..height {
            for c in 0..width {
                for b in 0..bands {
                    assert_eq!(raster.data[(r * width + c) * bands + b], value(r, c, b), "({r}, {c}) band {b}");
                }
            }
        }
    }
}

/// An int8 COG (horizontal predictor over signed bytes) reads back as the stored bytes, which
/// its bands' scale and offset take back to within half a step of the values written.
#[test]
fn int8_band_planes_read_as_the_bytes_written() {
    use satclip_io::cog::{CogCompression, CogSamples, Int8Band};
    let dir = tempfile::tempdir().unwrap();
    let (width, height, bands, tile) = (40, 20, 2, 16);
    let value = |r: usize, c: usize, b: usize| ((r * 7 + c * 3 + b * 11) % 50) as f32 - 20.0;
    let band = Int8Band::covering(-20.0, 30.0);
    for compression in [CogCompression::Zstd, CogCompression::Deflate] {
        let path = dir.path().join(format!("int8-{compression:?}.tif"));
        let samples = CogSamples::Int8(vec![band; bands]);
        write_cog(&path, [width, height, bands, tile], compression, samples, value);
        let raster = geotiff::read(&path).unwrap();
        assert_eq!((raster.width, raster.height, raster.bands), (width, height, bands));
        for (i, &q) in raster.data.iter().enumerate() {
            let (r, c, b) = (i / bands / width, i / bands % width, i % bands);
            assert!((-127.0..=127.0).contains(&q) && q.fract() == 0.0, "{compression:?} ({r}, {c}) band {b}: {q}");
            let error = (band.value(q as i8) - value(r, c, b)).abs();
            assert!(error <= band.scale / 2.0 + 1e-4, "{compression:?} ({r}, {c}) band {b}: {q} is off by {error}");
        }
    }
}

#[test]
fn a_decoded_size_beyond_the_callers_limit_is_refused_before_decoding() {
    let Some(bytes) = sample_tile() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tile.tif");
    std::fs::write(&path, &bytes).unwrap();
    // 256 × 256 × 12 uint16 = 1.5 MiB decoded: refused under a 1 MiB limit, read under 2 MiB.
    let err = geotiff::read_with_limit(&path, 1 << 20).unwrap_err().to_string();
    assert!(err.contains("tile.tif") && err.contains("larger than"), "{err}");
    assert_eq!(geotiff::read_with_limit(&path, 2 << 20).unwrap().bands, 12);
}
