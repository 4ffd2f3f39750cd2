//! Maps of an encoder over the globe, as PNG: the first three principal components of the
//! embeddings on a regular grid as RGB, or the cosine similarity to one place. Oceans come from
//! the GLOBE land mask when it is installed, with the coastline drawn where land meets sea.

use std::path::Path;

use satclip_core::geo::GridExtent;
use satclip_core::kernels::{gemm, MatRef};
use satclip_io::error::{Error, Result};
use satclip_io::landmask::LandMask;

use crate::standardise::Standardiser;

const OCEAN: [u8; 3] = [24, 30, 42];
const COAST: [u8; 3] = [235, 235, 235];

/// Points embedded at once: a map's memory is this many rows of features, whatever its size.
const CHUNK_POINTS: usize = 8192;

/// Weighted first and second moments of feature rows, accumulated chunk by chunk. Rows are
/// shifted by the first chunk's mean before they are summed, so that the covariance does not
/// lose its digits to a large common offset.
pub(crate) struct WeightedMoments {
    d: usize,
    shift: Option<Vec<f64>>,
    total: f64,
    sum: Vec<f64>,
    cross: Vec<f64>,
}

impl WeightedMoments {
    pub(crate) fn new(d: usize) -> Self {
        Self { d, shift: None, total: 0.0, sum: vec![0.0; d], cross: vec![0.0; d * d] }
    }

    pub(crate) fn add(&mut self, rows: &[f64], weights: &[f64]) {
        let d = self.d;
        let shift = self.shift.get_or_insert_with(|| {
            let mut mean = vec![0.0; d];
            rows.chunks_exact(d).for_each(|r| mean.iter_mut().zip(r).for_each(|(m, v)| *m += v));
            mean.iter_mut().for_each(|m| *m /= weights.len().max(1) as f64);
            mean
        });
        let scaled: Vec<f64> = rows
            .chunks_exact(d)
            .zip(weights)
            .flat_map(|(r, w)| {
                self.total += w;
                self.sum.iter_mut().zip(r).zip(shift.iter()).for_each(|((s, v), c)| *s += w * (v - c));
                r.iter().zip(shift.iter()).map(move |(v, c)| (v - c) * w.sqrt())
            })
            .collect();
        let x = MatRef::row_major(&scaled, weights.len(), d);
        gemm(&mut self.cross, x.t(), x, 1.0, true, true);
    }

    /// The weighted standardisation of the columns and the covariance of the standardised columns.
    pub(crate) fn finish(self) -> (Standardiser, Vec<f64>) {
        let d = self.d;
        let shift = self.shift.unwrap_or_else(|| vec![0.0; d]);
        let centre: Vec<f64> = self.sum.iter().map(|s| s / self.total).collect();
        let mut cov: Vec<f64> =
            (0..d * d).map(|i| self.cross[i] / self.total - centre[i / d] * centre[i % d]).collect();
        let scale: Vec<f64> =
            (0..d).map(|i| if cov[i * d + i] > 1e-24 { cov[i * d + i].sqrt() } else { 1.0 }).collect();
        cov.iter_mut().enumerate().for_each(|(i, c)| *c /= scale[i / d] * scale[i % d]);
        let mean = centre.iter().zip(&shift).map(|(c, s)| c + s).collect();
        (Standardiser { mean, scale }, cov)
    }
}

/// The `k` leading eigenvectors (as `[d × k]` columns) of a symmetric `d × d` matrix, by subspace
/// iteration with Gram–Schmidt.
pub(crate) fn leading_eigenvectors(cov: &[f64], d: usize, k: usize) -> Vec<f64> {
    let mut basis: Vec<f64> = (0..d * k).map(|i| ((i * 7919) % 97) as f64 / 97.0 - 0.5).collect();
    for _ in 0..200 {
        let mut next = vec![0.0; d * k];
        gemm(&mut next, MatRef::row_major(cov, d, d), MatRef::row_major(&basis, d, k), 1.0, false, false);
        for j in 0..k {
            for prev in 0..j {
                let dot: f64 = (0..d).map(|i| next[i * k + j] * next[i * k + prev]).sum();
                (0..d).for_each(|i| next[i * k + j] -= dot * next[i * k + prev]);
            }
            let norm = (0..d).map(|i| next[i * k + j].powi(2)).sum::<f64>().sqrt().max(1e-300);
            (0..d).for_each(|i| next[i * k + j] /= norm);
        }
        basis = next;
    }
    basis
}

/// Projections of standardised rows on `basis` (`[d × k]`).
pub(crate) fn project(rows: &[f64], standardiser: &Standardiser, basis: &[f64], k: usize) -> Vec<f64> {
    let d = standardiser.mean.len();
    let z = standardiser.apply(rows);
    let mut projected = vec![0.0; z.len() / d * k];
    gemm(&mut projected, MatRef::row_major(&z, z.len() / d, d), MatRef::row_major(basis, d, k), 1.0, false, true);
    projected
}

/// Scales each of `k` columns to [0, 1] between its 1st and 99th percentiles.
fn normalise_columns(values: &mut [f64], k: usize) {
    for j in 0..k {
        let mut column: Vec<f64> = values.iter().skip(j).step_by(k).copied().collect();
        column.sort_by(f64::total_cmp);
        let (lo, hi) = (column[column.len() / 100], column[column.len() * 99 / 100]);
        let span = (hi - lo).max(1e-12);
        values.iter_mut().skip(j).step_by(k).for_each(|v| *v = ((*v - lo) / span).clamp(0.0, 1.0));
    }
}

/// Colours of a perceptual ramp (approximately viridis) at t ∈ [0, 1].
pub(crate) fn ramp(t: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] =
        [[68., 1., 84.], [59., 82., 139.], [33., 145., 140.], [94., 201., 98.], [253., 231., 37.]];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let (i, f) = ((x.floor() as usize).min(STOPS.len() - 2), x - x.floor().min((STOPS.len() - 2) as f64));
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = (STOPS[i][c] + f * (STOPS[i + 1][c] - STOPS[i][c])).round() as u8;
    }
    out
}

/// Paints land pixels with `colour(i)` and the rest as ocean with a coastline, then writes a PNG.
fn render(
    width: usize,
    height: usize,
    points: &[[f64; 2]],
    mask: Option<&LandMask>,
    colour: &dyn Fn(usize) -> [u8; 3],
    out: &Path,
) -> Result<()> {
    let land: Vec<bool> =
        points.iter().map(|&[lon, lat]| mask.is_none_or(|m| m.land_fraction(lon, lat) >= 0.5)).collect();
    let mut rgb = Vec::with_capacity(width * height * 3);
    for r in 0..height {
        for c in 0..width {
            let i = r * width + c;
            let pixel = if !land[i] {
                OCEAN
            } else if mask.is_some()
                && [(0isize, 1isize), (1, 0), (0, -1), (-1, 0)].iter().any(|&(dr, dc)| {
                    let (rr, cc) = (r as isize + dr, (c as isize + dc).rem_euclid(width as isize));
                    rr >= 0 && (rr as usize) < height && !land[rr as usize * width + cc as usize]
                })
            {
                COAST
            } else {
                colour(i)
            };
            rgb.extend_from_slice(&pixel);
        }
    }
    write_png(out, width, height, &rgb)
}

pub fn write_png(out: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| Error::format(out, e.to_string()))?;
        writer.write_image_data(rgb).map_err(|e| Error::format(out, e.to_string()))?;
    }
    satclip_io::atomic::write_bytes(out, &bytes)
}

/// Features of a batch of (lon, lat) points, and their width: any encoder.
pub type Embedder<'a> = dyn Fn(&[[f64; 2]]) -> Result<(Vec<f64>, usize)> + 'a;

/// Points embedded so far, of how many (a map of the PCA kind embeds every point twice).
pub type MapProgress<'a> = dyn Fn(u64, u64) + 'a;

/// Runs `each` on the features of consecutive chunks of the grid's cell centres, with the chunk's
/// first cell index, reporting progress as `done` of `total` (offset by `before`).
fn for_each_chunk(
    embed: &Embedder<'_>,
    points: &[[f64; 2]],
    progress: &MapProgress<'_>,
    (before, total): (u64, u64),
    mut each: impl FnMut(usize, &[f64], usize),
) -> Result<()> {
    for (c, chunk) in points.chunks(CHUNK_POINTS).enumerate() {
        let (features, d) = embed(chunk)?;
        each(c * CHUNK_POINTS, &features, d);
        progress(before + (c * CHUNK_POINTS + chunk.len()) as u64, total);
    }
    Ok(())
}

/// The first three principal components of the embeddings as RGB. Embeddings are computed chunk
/// by chunk twice (moments, then projections), so memory stays at a chunk of features.
pub fn pca_map(
    embed: &Embedder<'_>,
    extent: &GridExtent,
    mask: Option<&LandMask>,
    out: &Path,
    progress: &MapProgress<'_>,
) -> Result<()> {
    let (width, height, points) = (extent.width, extent.height, extent.centres(0..extent.height));
    // Cells weighted by cos(lat): the crowded polar rows of a lon/lat grid must not dominate.
    let weight = |p: &[f64; 2]| p[1].to_radians().cos();
    let total = 2 * points.len() as u64;
    let mut moments = None;
    for_each_chunk(embed, &points, progress, (0, total), |at, features, d| {
        let weights: Vec<f64> = points[at..at + features.len() / d].iter().map(weight).collect();
        moments.get_or_insert_with(|| WeightedMoments::new(d)).add(features, &weights);
    })?;
    let Some(moments) = moments else { return Err(Error::format(out, "an empty grid")) };
    let (standardiser, cov) = moments.finish();
    let basis = leading_eigenvectors(&cov, standardiser.mean.len(), 3);
    let mut pcs = Vec::with_capacity(points.len() * 3);
    for_each_chunk(embed, &points, progress, (points.len() as u64, total), |_, features, _| {
        pcs.extend(project(features, &standardiser, &basis, 3));
    })?;
    normalise_columns(&mut pcs, 3);
    render(width, height, &points, mask, &|i| [0, 1, 2].map(|j| (pcs[i * 3 + j] * 255.0).round() as u8), out)
}

/// Cosine similarity of every grid cell's embedding to the embedding at `at`, as a colour ramp,
/// with the reference place marked. Computed chunk by chunk.
pub fn similarity_map(
    embed: &Embedder<'_>,
    at: [f64; 2],
    extent: &GridExtent,
    mask: Option<&LandMask>,
    out: &Path,
    progress: &MapProgress<'_>,
) -> Result<()> {
    let (width, height, points) = (extent.width, extent.height, extent.centres(0..extent.height));
    let (reference, _) = embed(&[at])?;
    let mut sims = Vec::with_capacity(points.len());
    for_each_chunk(embed, &points, progress, (0, points.len() as u64), |_, features, d| {
        sims.extend(features.chunks_exact(d).map(|row| satclip_core::geo::cosine_similarity(row, &reference)));
    })?;
    let mut sorted = sims.clone();
    sorted.sort_by(f64::total_cmp);
    let (lo, hi) = (sorted[sorted.len() / 100], sorted[sorted.len() - 1]);
    let (mc, mr) =
        (((at[0] - extent.west) / extent.resolution) as isize, ((extent.north - at[1]) / extent.resolution) as isize);
    render(
        width,
        height,
        &points,
        mask,
        &|i| {
            let (r, c) = ((i / width) as isize, (i % width) as isize);
            if (r - mr).abs() <= 2 && (c - mc).abs() <= 2 && ((r - mr).abs() == 2 || (c - mc).abs() == 2) {
                return [255, 40, 40];
            }
            ramp((sims[i] - lo) / (hi - lo).max(1e-12))
        },
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_components_find_the_dominant_direction() {
        // Points along (3, 4)/5 with small noise in the orthogonal direction (equal column scales).
        let data: Vec<f64> = (0..200)
            .flat_map(|i| {
                let t = i as f64 - 100.0;
                let e = ((i * 37) % 11) as f64 * 0.01;
                [0.6 * t - 0.8 * e, 0.8 * t + 0.6 * e]
            })
            .collect();
        let mut moments = WeightedMoments::new(2);
        moments.add(&data, &[1.0; 200]);
        let (standardiser, cov) = moments.finish();
        let pcs = project(&data, &standardiser, &leading_eigenvectors(&cov, 2, 1), 1);
        // The projection on the first axis recovers t up to sign.
        let corr: f64 = (0..200).map(|i| pcs[i] * (i as f64 - 100.0)).sum::<f64>().abs();
        let norm =
            (pcs.iter().map(|v| v * v).sum::<f64>() * (0..200).map(|i| (i as f64 - 100.0).powi(2)).sum::<f64>()).sqrt();
        assert!(corr / norm > 0.9999);
    }

    #[test]
    fn moments_over_chunks_equal_the_standardised_covariance_of_all_rows() {
        let d = 3;
        let data: Vec<f64> =
            (0..500).flat_map(|i| [1e4 + (i as f64 * 0.37).sin(), (i as f64 * 0.11).cos() * 3.0, 7.0]).collect();
        let weights: Vec<f64> = (0..500).map(|i| 0.5 + (i % 7) as f64 / 7.0).collect();
        let mut chunked = WeightedMoments::new(d);
        for (rows, w) in data.chunks(3 * 64).zip(weights.chunks(64)) {
            chunked.add(rows, w);
        }
        let (Standardiser { mean, scale }, cov) = chunked.finish();
        let reference = Standardiser::fit(&data, d, Some(&weights));
        let z = reference.apply(&data);
        let total: f64 = weights.iter().sum();
        for i in 0..d {
            for j in 0..d {
                let want: f64 = z.chunks_exact(d).zip(&weights).map(|(r, w)| w * r[i] * r[j]).sum::<f64>() / total;
                assert!((cov[i * d + j] - want).abs() < 1e-9, "cov[{i}][{j}] {} vs {want}", cov[i * d + j]);
            }
        }
        assert_eq!(scale[2], 1.0, "a constant column keeps unit scale");
        assert!((mean[0] - data.iter().step_by(3).zip(&weights).map(|(v, w)| v * w).sum::<f64>() / total).abs() < 1e-9);
    }

    #[test]
    fn maps_embed_in_bounded_chunks_and_report_progress_to_the_end() {
        use std::cell::Cell;
        let dir = tempfile::tempdir().unwrap();
        let extent = GridExtent::global(1.0).unwrap();
        let largest = Cell::new(0);
        let embed = |points: &[[f64; 2]]| -> Result<(Vec<f64>, usize)> {
            largest.set(largest.get().max(points.len()));
            Ok((
                points
                    .iter()
                    .flat_map(|[lon, lat]| [lon.to_radians().sin(), lat.to_radians().sin(), lon * lat])
                    .collect(),
                3,
            ))
        };
        let last = Cell::new((0, 0));
        let progress = |done: u64, total: u64| last.set((done, total));
        pca_map(&embed, &extent, None, &dir.path().join("pca.png"), &progress).unwrap();
        assert!(largest.get() <= CHUNK_POINTS, "a chunk of {} points", largest.get());
        assert_eq!(last.get(), (2 * 360 * 180, 2 * 360 * 180), "PCA embeds every cell twice");
        similarity_map(&embed, [10.0, 50.0], &extent, None, &dir.path().join("sim.png"), &progress).unwrap();
        assert_eq!(last.get(), (360 * 180, 360 * 180));
        assert!(largest.get() <= CHUNK_POINTS);
        assert!(std::fs::metadata(dir.path().join("pca.png")).unwrap().len() > 1000);
    }

    #[test]
    fn ramp_runs_from_viridis_dark_to_light() {
        assert_eq!(ramp(0.0), [68, 1, 84]);
        assert_eq!(ramp(1.0), [253, 231, 37]);
    }
}
