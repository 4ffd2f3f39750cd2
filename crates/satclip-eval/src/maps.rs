//! Maps of an encoder over the globe, as PNG: the first three principal components of the
//! embeddings on a regular grid as RGB, or the cosine similarity to one place. Oceans come from
//! the GLOBE land mask when it is installed, with the coastline drawn where land meets sea.

use std::path::Path;

use satclip_core::geo::GridExtent;
use satclip_core::kernels::{gemm, MatRef};
use satclip_io::error::{Error, Result};
use satclip_io::landmask::LandMask;

const OCEAN: [u8; 3] = [24, 30, 42];
const COAST: [u8; 3] = [235, 235, 235];

/// Projections of every row of `data` (`[n × d]`, row-major) on the top `k` principal axes of its
/// standardised columns, with rows weighted by `weights` (on a lon/lat grid, cos(lat), so that
/// the crowded polar rows do not dominate). Subspace iteration on the weighted covariance.
pub fn principal_components(data: &[f64], d: usize, k: usize, weights: &[f64]) -> Vec<f64> {
    let n = data.len() / d;
    let total: f64 = weights.iter().sum();
    let z = crate::probe::Standardiser::fit(data, d, Some(weights)).apply(data);
    let weighted: Vec<f64> =
        z.chunks_exact(d).zip(weights).flat_map(|(row, w)| row.iter().map(move |v| v * (w / total).sqrt())).collect();
    let mut cov = vec![0.0; d * d];
    let x = MatRef::row_major(&weighted, n, d);
    gemm(&mut cov, x.t(), x, 1.0, false, true);
    // Subspace iteration with Gram–Schmidt: converges to the leading eigenvectors.
    let mut basis: Vec<f64> = (0..d * k).map(|i| ((i * 7919) % 97) as f64 / 97.0 - 0.5).collect();
    for _ in 0..200 {
        let mut next = vec![0.0; d * k];
        gemm(&mut next, MatRef::row_major(&cov, d, d), MatRef::row_major(&basis, d, k), 1.0, false, false);
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
    let mut projected = vec![0.0; n * k];
    gemm(&mut projected, MatRef::row_major(&z, n, d), MatRef::row_major(&basis, d, k), 1.0, false, true);
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
fn ramp(t: f64) -> [u8; 3] {
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

/// The first three principal components of the embeddings as RGB.
pub fn pca_map(embed: &Embedder<'_>, extent: &GridExtent, mask: Option<&LandMask>, out: &Path) -> Result<()> {
    let (width, height, points) = (extent.width, extent.height, extent.centres(0..extent.height));
    let (features, d) = embed(&points)?;
    let weights: Vec<f64> = points.iter().map(|p| p[1].to_radians().cos()).collect();
    let mut pcs = principal_components(&features, d, 3, &weights);
    normalise_columns(&mut pcs, 3);
    render(width, height, &points, mask, &|i| [0, 1, 2].map(|j| (pcs[i * 3 + j] * 255.0).round() as u8), out)
}

/// Cosine similarity of every grid cell's embedding to the embedding at `at`, as a colour ramp,
/// with the reference place marked.
pub fn similarity_map(
    embed: &Embedder<'_>,
    at: [f64; 2],
    extent: &GridExtent,
    mask: Option<&LandMask>,
    out: &Path,
) -> Result<()> {
    let (width, height, points) = (extent.width, extent.height, extent.centres(0..extent.height));
    let (features, d) = embed(&points)?;
    let (reference, _) = embed(&[at])?;
    let sims: Vec<f64> =
        features.chunks_exact(d).map(|row| satclip_core::geo::cosine_similarity(row, &reference)).collect();
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
        let pcs = principal_components(&data, 2, 1, &[1.0; 200]);
        // The projection on the first axis recovers t up to sign.
        let corr: f64 = (0..200).map(|i| pcs[i] * (i as f64 - 100.0)).sum::<f64>().abs();
        let norm =
            (pcs.iter().map(|v| v * v).sum::<f64>() * (0..200).map(|i| (i as f64 - 100.0).powi(2)).sum::<f64>()).sqrt();
        assert!(corr / norm > 0.9999);
    }

    #[test]
    fn ramp_runs_from_viridis_dark_to_light() {
        assert_eq!(ramp(0.0), [68, 1, 84]);
        assert_eq!(ramp(1.0), [253, 231, 37]);
    }
}
