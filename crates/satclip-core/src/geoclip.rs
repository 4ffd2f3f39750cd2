//! GeoCLIP's location encoder (Vivanco Cepeda et al., NeurIPS 2023), as shipped in the `geoclip`
//! 1.3.0 wheel: an Equal Earth projection, random Fourier features at three scales (σ = 1, 16,
//! 256), one MLP per scale, outputs summed to 512 values (not normalised). GeoCLIP's own API takes
//! (lat, lon); this one takes (lon, lat) like everything else here and swaps internally.

use crate::kernels::{gemm, Float, MatRef};
use crate::network::{relu_in_place, Linear};
use crate::tensor::TensorMap;
use crate::Error;

pub const EMBEDDING_DIM: usize = 512;
const FOURIER_FEATURES: usize = 256;
const HIDDEN: usize = 1024;
const BRANCHES: usize = 3;
/// Rows per pass: bounds the 1024-wide activations to a few MB.
const TILE_ROWS: usize = 256;

/// One scale: `capsule.0.b` is the fixed Fourier matrix B, `capsule.{1,3,5}` the ReLU MLP,
/// `head.0` the output layer (the names of GeoCLIP's state dict). The Fourier phases reach
/// ~10³ rad at σ = 256, so B and the cos/sin features stay f64 on both paths.
#[derive(Clone, Debug)]
struct Branch<T = f64> {
    fourier: Vec<f64>,
    layers: [Linear<T>; 3],
    head: Linear<T>,
}

impl<T: Float> Branch<T> {
    /// This branch in precision `U`, ready for inference ([`Linear::for_inference`]).
    fn for_inference<U: Float>(&self) -> Branch<U> {
        let prepare = |l: &Linear<T>| l.cast::<U>().for_inference();
        Branch { fourier: self.fourier.clone(), layers: self.layers.each_ref().map(prepare), head: prepare(&self.head) }
    }
}

#[derive(Clone, Debug)]
pub struct GeoClip {
    branches: Vec<Branch<f64>>,
    /// The same layers in f32 (GeoCLIP's own precision), for [`GeoClip::embed_into_f32`].
    branches_f32: Vec<Branch<f32>>,
}

/// Equal Earth projection of (lon, lat) in degrees, scaled as GeoCLIP does (x in [−1, 1]).
pub fn equal_earth(lon: f64, lat: f64) -> [f64; 2] {
    const A1: f64 = 1.340264;
    const A2: f64 = -0.081106;
    const A3: f64 = 0.000893;
    const A4: f64 = 0.003796;
    const SCALE: f64 = 66.50336;
    let sqrt3 = 3f64.sqrt();
    let theta = (sqrt3 / 2.0 * lat.to_radians().sin()).asin();
    let (t2, t6, t8) = (theta.powi(2), theta.powi(6), theta.powi(8));
    let x = 2.0 * sqrt3 * lon.to_radians() * theta.cos() / (3.0 * (9.0 * A4 * t8 + 7.0 * A3 * t6 + 3.0 * A2 * t2 + A1));
    let y = A4 * theta.powi(9) + A3 * theta.powi(7) + A2 * theta.powi(3) + A1 * theta;
    [x * SCALE / 180.0, y * SCALE / 180.0]
}

impl GeoClip {
    /// From the tensors of `location_encoder_weights.pth`, keyed `LocEnc{i}.capsule.0.b`, ….
    pub fn from_tensors(mut t: TensorMap) -> Result<Self, Error> {
        let mut branches = Vec::with_capacity(BRANCHES);
        for i in 0..BRANCHES {
            let p = format!("LocEnc{i}.");
            let fourier = t.take(&format!("{p}capsule.0.b"), &[FOURIER_FEATURES, 2])?.data;
            let layers = [
                Linear::load(&mut t, &format!("{p}capsule.1."), 2 * FOURIER_FEATURES, HIDDEN, true)?,
                Linear::load(&mut t, &format!("{p}capsule.3."), HIDDEN, HIDDEN, true)?,
                Linear::load(&mut t, &format!("{p}capsule.5."), HIDDEN, HIDDEN, true)?,
            ];
            let head = Linear::load(&mut t, &format!("{p}head.0."), HIDDEN, EMBEDDING_DIM, true)?;
            branches.push(Branch { fourier, layers, head });
        }
        t.finish()?;
        let branches_f32 = branches.iter().map(Branch::for_inference).collect();
        let branches = branches.iter().map(Branch::for_inference).collect();
        Ok(Self { branches, branches_f32 })
    }

    /// Embeddings of (lon, lat) points, `[n × 512]` row-major; tiles of rows run in parallel.
    pub fn embed(&self, points: &[[f64; 2]]) -> Vec<f64> {
        let mut out = vec![0.0; points.len() * EMBEDDING_DIM];
        self.embed_into(points, &mut out);
        out
    }

    /// As [`GeoClip::embed`], into `out` (`[n × 512]`).
    pub fn embed_into(&self, points: &[[f64; 2]], out: &mut [f64]) {
        embed_tiles(&self.branches, points, out);
    }

    /// As [`GeoClip::embed_into`] with the MLPs in f32 (f64 Fourier features): about twice as
    /// fast, within ~1e-6 of the f64 path relative to the embedding norm.
    pub fn embed_into_f32(&self, points: &[[f64; 2]], out: &mut [f32]) {
        embed_tiles(&self.branches_f32, points, out);
    }
}

fn embed_tiles<T: Float>(branches: &[Branch<T>], points: &[[f64; 2]], out: &mut [T]) {
    use rayon::prelude::*;
    assert_eq!(out.len(), points.len() * EMBEDDING_DIM, "output is [n × 512]");
    out.fill(T::ZERO);
    out.par_chunks_mut(TILE_ROWS * EMBEDDING_DIM)
        .zip(points.par_chunks(TILE_ROWS))
        .for_each(|(dst, tile)| embed_tile(branches, tile, dst));
}

fn embed_tile<T: Float>(branches: &[Branch<T>], tile: &[[f64; 2]], dst: &mut [T]) {
    let n = tile.len();
    // GeoCLIP scales the projected point by 2π before the product with B.
    let v: Vec<f64> =
        tile.iter().flat_map(|p| equal_earth(p[0], p[1]).map(|c| 2.0 * std::f64::consts::PI * c)).collect();
    let (mut sines, mut cosines, mut features, mut a, mut b) =
        (vec![0.0; n * FOURIER_FEATURES], vec![0.0; n * FOURIER_FEATURES], Vec::new(), Vec::new(), Vec::new());
    for branch in branches {
        let bt = MatRef::row_major(&branch.fourier, FOURIER_FEATURES, 2).t();
        gemm(&mut sines, MatRef::row_major(&v, n, 2), bt, 1.0, false, false);
        f64::sin_cos_scaled(&mut sines, 1.0, Some(&mut cosines));
        features.clear();
        for (cos_row, sin_row) in cosines.chunks_exact(FOURIER_FEATURES).zip(sines.chunks_exact(FOURIER_FEATURES)) {
            features.extend(cos_row.iter().map(|c| T::from_f64(*c)));
            features.extend(sin_row.iter().map(|s| T::from_f64(*s)));
        }
        branch.layers[0].forward_into(&features, n, &mut a, false);
        relu_in_place(&mut a);
        branch.layers[1].forward_into(&a, n, &mut b, false);
        relu_in_place(&mut b);
        branch.layers[2].forward_into(&b, n, &mut a, false);
        relu_in_place(&mut a);
        branch.head.forward_into(&a, n, &mut b, false);
        dst.iter_mut().zip(&b).for_each(|(o, x)| *o += *x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_earth_spans_the_documented_ranges() {
        let [x, _] = equal_earth(180.0, 0.0);
        assert!((x - 1.0).abs() < 1e-4, "x at the antimeridian {x}");
        let [_, y] = equal_earth(0.0, 90.0);
        assert!((y - 0.487).abs() < 1e-3, "y at the pole {y}");
        assert_eq!(equal_earth(0.0, 0.0), [0.0, 0.0]);
        let [x1, y1] = equal_earth(-30.0, -40.0);
        let [x2, y2] = equal_earth(30.0, 40.0);
        assert!((x1 + x2).abs() < 1e-15 && (y1 + y2).abs() < 1e-15, "odd in both coordinates");
    }
}
