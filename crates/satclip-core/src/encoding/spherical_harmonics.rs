//! Real spherical harmonics in the convention of the released SatCLIP weights.
//!
//! The official "analytic" mode evaluates sympy-generated, expanded polynomials in cos θ. Their
//! generator has a bracket bug that multiplies every m = 0 harmonic by π, and its m ≠ 0 terms carry
//! no Condon–Shortley phase. The weights were trained on exactly that function, so we reproduce the
//! convention. We do *not* reproduce the expanded-polynomial evaluation: at L = 40 it cancels terms
//! of size 1e14–1e43 in f64 and is off by up to 0.6 near the poles. The three-term recurrence below
//! computes the same function to ~1e-14 everywhere.
//!
//! With x = cos θ and P̄ₗᵐ the orthonormal associated Legendre function without the Condon–Shortley
//! phase:
//!   Yₗ⁰   = π · P̄ₗ⁰(x)
//!   Yₗᵐ   = √2 · P̄ₗᵐ(x) · cos(mφ)      (m > 0)
//!   Yₗ⁻ᵐ  = √2 · P̄ₗᵐ(x) · sin(mφ)      (m > 0)
//! where φ = rad(lon + 180) and θ = rad(lat + 90) (θ = 0 at the *south* pole). Features are ordered
//! by l, then m = −l..l: index l² + l + m.

use std::f64::consts::{PI, SQRT_2};

use crate::kernels::sin_cos_f64;
use crate::Error;

/// Highest supported `legendre_polys` (number of degrees L). The recurrence is stable far beyond
/// this; the limit only bounds the feature count (L² = 10 000) a file can ask for.
pub const MAX_LEGENDRE_POLYS: usize = 100;

#[derive(Clone, Debug)]
pub struct SphericalHarmonics {
    legendre_polys: usize,
    /// √((2m+1)/(2m)) for the diagonal step P̄ₘᵐ = √((2m+1)/(2m)) · sin θ · P̄ₘ₋₁ᵐ⁻¹, indexed by m.
    diagonal: Vec<f64>,
    /// (a, b) for P̄ₗᵐ = a · (x · P̄ₗ₋₁ᵐ − b · P̄ₗ₋₂ᵐ), indexed by l(l+1)/2 + m.
    recurrence: Vec<(f64, f64)>,
}

impl SphericalHarmonics {
    pub fn new(legendre_polys: usize) -> Result<Self, Error> {
        if legendre_polys == 0 || legendre_polys > MAX_LEGENDRE_POLYS {
            return Err(Error::Config(format!(
                "legendre_polys must be between 1 and {MAX_LEGENDRE_POLYS}, got {legendre_polys}"
            )));
        }
        let diagonal = (0..legendre_polys)
            .map(|m| if m == 0 { 0.0 } else { ((2 * m + 1) as f64 / (2 * m) as f64).sqrt() })
            .collect();
        let mut recurrence = Vec::with_capacity(legendre_polys * (legendre_polys + 1) / 2);
        for l in 0..legendre_polys {
            for m in 0..=l {
                let (lf, mf) = (l as f64, m as f64);
                let coeffs = if l == m {
                    (0.0, 0.0)
                } else {
                    let a = ((4.0 * lf * lf - 1.0) / (lf * lf - mf * mf)).sqrt();
                    let b = (((lf - 1.0).powi(2) - mf * mf) / (4.0 * (lf - 1.0).powi(2) - 1.0)).sqrt();
                    (a, b)
                };
                recurrence.push(coeffs);
            }
        }
        Ok(Self { legendre_polys, diagonal, recurrence })
    }

    pub fn legendre_polys(&self) -> usize {
        self.legendre_polys
    }

    pub fn dim(&self) -> usize {
        self.legendre_polys * self.legendre_polys
    }

    /// Writes the L² features of one point (degrees) into `out`.
    pub fn encode_into(&self, lon: f64, lat: f64, out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.dim());
        encode_lanes::<1>(self, &[[lon, lat]], out);
    }

    /// Writes the features of `coords.len()` points into the rows of a row-major
    /// `[coords.len() × L²]` matrix, equal bit for bit to [`Self::encode_into`] row by row.
    pub fn encode_batch(&self, coords: &[[f64; 2]], out: &mut [f64]) {
        debug_assert_eq!(out.len(), coords.len() * self.dim());
        for (points, rows) in coords.chunks(LANES).zip(out.chunks_mut(LANES * self.dim())) {
            if points.len() == LANES {
                encode_eight(self, points, rows);
            } else {
                // Fewer points than lanes (a single point's latency): one lane each, no padding.
                for (&[lon, lat], row) in points.iter().zip(rows.chunks_exact_mut(self.dim())) {
                    self.encode_into(lon, lat, row);
                }
            }
        }
    }
}

/// Points encoded side by side: each step of the recurrence is one vector operation over them.
const LANES: usize = 8;

#[inline(always)]
fn encode_eight_body(sh: &SphericalHarmonics, points: &[[f64; 2]], out: &mut [f64]) {
    encode_lanes::<LANES>(sh, points, out)
}

crate::kernels::simd_dispatch!(
    encode_eight,
    encode_eight_body,
    (sh: &SphericalHarmonics, points: &[[f64; 2]], out: &mut [f64])
);

/// The features of `N` points (rows of `out`), computed in `N` lanes. The recurrence runs along
/// l for each m, a chain of dependent steps, so lanes are what lets it use the vector units.
#[inline(always)]
fn encode_lanes<const N: usize>(sh: &SphericalHarmonics, points: &[[f64; 2]], out: &mut [f64]) {
    debug_assert_eq!(points.len(), N);
    let dim = sh.dim();
    let (mut s, mut x, mut phi) = ([0.0; N], [0.0; N], [0.0; N]);
    for j in 0..N {
        let [lon, lat] = points[j];
        (s[j], x[j]) = sin_cos_f64((lat + 90.0).to_radians());
        phi[j] = (lon + 180.0).to_radians();
    }
    let l_count = sh.legendre_polys;
    let mut p_mm = [(0.25 / PI).sqrt(); N];
    let (mut cos_factor, mut sin_factor) = ([PI; N], [0.0; N]);
    for m in 0..l_count {
        if m > 0 {
            for j in 0..N {
                p_mm[j] *= sh.diagonal[m] * s[j];
                let (sin_m, cos_m) = sin_cos_f64(m as f64 * phi[j]);
                (cos_factor[j], sin_factor[j]) = (SQRT_2 * cos_m, SQRT_2 * sin_m);
            }
        }
        let mut p_prev = [0.0; N]; // P̄ₗ₋₂ᵐ
        let mut p = p_mm; // P̄ₗ₋₁ᵐ, starting at l = m
        for l in m..l_count {
            if l > m {
                let (a, b) = sh.recurrence[l * (l + 1) / 2 + m];
                for j in 0..N {
                    let next = a * (x[j] * p[j] - b * p_prev[j]);
                    p_prev[j] = p[j];
                    p[j] = next;
                }
            }
            let centre = l * l + l;
            for (j, row) in out.chunks_exact_mut(dim).enumerate() {
                row[centre + m] = cos_factor[j] * p[j];
                if m > 0 {
                    row[centre - m] = sin_factor[j] * p[j];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(l: usize, lon: f64, lat: f64) -> Vec<f64> {
        let sh = SphericalHarmonics::new(l).unwrap();
        let mut out = vec![f64::NAN; sh.dim()];
        sh.encode_into(lon, lat, &mut out);
        out
    }

    /// Golden values computed in high precision from the definition (reference notes, §1.3).
    #[test]
    fn golden_values_at_l10() {
        let cases: [((f64, f64), [f64; 9], f64, f64); 4] = [
            (
                (0.0, 0.0),
                [0.886226925453, 0.0, 0.0, -0.488602511903, 0.0, 0.0, -0.990831824402, 0.0, 0.546274215296],
                0.321687925218,
                12.232347871695,
            ),
            (
                (-122.4, 37.8),
                [
                    0.886226925453,
                    0.325971137684,
                    -0.940806236238,
                    0.206867574417,
                    0.308603521338,
                    -0.446744042633,
                    0.125801130286,
                    -0.283512390518,
                    -0.145217794198,
                ],
                0.760413572243,
                13.369492527838,
            ),
            (
                (139.7, 35.7),
                [
                    0.886226925453,
                    -0.256637162513,
                    -0.895729960152,
                    0.302616154850,
                    -0.355419261685,
                    0.334869874706,
                    0.021363360688,
                    -0.394865002661,
                    0.058839277220,
                ],
                0.673562127610,
                13.162789725758,
            ),
            (
                (10.0, -60.0),
                [
                    0.886226925453,
                    -0.042422467898,
                    1.329340388179,
                    -0.240589770932,
                    0.046709196353,
                    -0.082150755836,
                    1.238539780502,
                    -0.465900088043,
                    0.128332462260,
                ],
                -1.131357584519,
                17.465801077347,
            ),
        ];
        for ((lon, lat), first, sum, sum_sq) in cases {
            let f = features(10, lon, lat);
            assert_eq!(f.len(), 100);
            for (i, (got, want)) in f.iter().zip(first).enumerate() {
                assert!((got - want).abs() < 1e-11, "({lon},{lat}) feature {i}: {got} vs {want}");
            }
            let s: f64 = f.iter().sum();
            let s2: f64 = f.iter().map(|v| v * v).sum();
            assert!((s - sum).abs() < 1e-10, "sum {s} vs {sum}");
            assert!((s2 - sum_sq).abs() < 1e-10, "sum of squares {s2} vs {sum_sq}");
        }
    }

    /// Closed forms of the low degrees, written out by hand.
    #[test]
    fn low_degrees_match_closed_forms() {
        for &(lon, lat) in &[(12.5, 33.0), (-170.0, -81.0), (95.0, 5.0)] {
            let f = features(3, lon, lat);
            let theta = (lat + 90.0f64).to_radians();
            let phi = (lon + 180.0f64).to_radians();
            let (x, s) = (theta.cos(), theta.sin());
            let expect = [
                (0, PI.sqrt() / 2.0),
                (1, 0.48860251190292 * s * phi.sin()),
                (2, 1.53499006191973 * x),
                (3, 0.48860251190292 * s * phi.cos()),
                (6, 2.97249547320451 * x * x - 0.990831824401503),
                // l = 2, m = 2: √2 · √(5/(4π)·1/24) · 3 s² · cos 2φ
                (8, SQRT_2 * (5.0 / (4.0 * PI) / 24.0).sqrt() * 3.0 * s * s * (2.0 * phi).cos()),
                // l = 2, m = -1: √2 · √(5/(4π)·1/6) · 3 x s · sin φ
                (5, SQRT_2 * (5.0 / (4.0 * PI) / 6.0).sqrt() * 3.0 * x * s * phi.sin()),
            ];
            for (i, want) in expect {
                assert!((f[i] - want).abs() < 1e-12, "feature {i}: {} vs {want}", f[i]);
            }
        }
    }

    /// Sectoral and zonal harmonics of high degree against independent formulas: the sectoral
    /// closed form via log-factorials and the zonal Legendre polynomial via Bonnet's recursion.
    #[test]
    fn high_degrees_match_independent_formulas() {
        let ln_factorial = |n: usize| (1..=n).map(|k| (k as f64).ln()).sum::<f64>();
        for &(lon, lat) in &[(40.0, 10.0), (-100.0, 70.0), (3.0, -88.0)] {
            let f = features(40, lon, lat);
            let theta = (lat + 90.0f64).to_radians();
            let phi = (lon + 180.0f64).to_radians();
            let (x, s) = (theta.cos(), theta.sin());
            for l in [5usize, 20, 39] {
                // P_l^l = (2l-1)!! s^l without the phase; (2l-1)!! = (2l)! / (2^l l!)
                let ln_norm = 0.5 * (((2 * l + 1) as f64 / (4.0 * PI)).ln() - ln_factorial(2 * l));
                let ln_dfact = ln_factorial(2 * l) - l as f64 * 2f64.ln() - ln_factorial(l);
                let sectoral = SQRT_2 * (ln_norm + ln_dfact).exp() * s.powi(l as i32);
                let got = f[l * l + 2 * l];
                assert!((got - sectoral * (l as f64 * phi).cos()).abs() < 1e-10 * sectoral.abs().max(1.0));
                let got = f[l * l];
                assert!((got - sectoral * (l as f64 * phi).sin()).abs() < 1e-10 * sectoral.abs().max(1.0));

                let (mut p0, mut p1) = (1.0, x);
                for k in 1..l {
                    let k = k as f64;
                    let p2 = ((2.0 * k + 1.0) * x * p1 - k * p0) / (k + 1.0);
                    p0 = p1;
                    p1 = p2;
                }
                let zonal = PI * ((2 * l + 1) as f64 / (4.0 * PI)).sqrt() * p1;
                let got = f[l * l + l];
                assert!((got - zonal).abs() < 1e-11, "l={l} zonal {got} vs {zonal}");
            }
        }
    }

    #[test]
    fn a_batch_equals_its_points_encoded_one_by_one() {
        let sh = SphericalHarmonics::new(40).unwrap();
        // 21 points: two full groups of lanes and a partial one, poles and the antimeridian.
        let mut coords: Vec<[f64; 2]> = (0..17).map(|i| [-180.0 + i as f64 * 21.7, -90.0 + i as f64 * 11.25]).collect();
        coords.extend([[180.0, 90.0], [-180.0, -90.0], [0.0, 0.0], [179.999, -0.001]]);
        let mut batch = vec![f64::NAN; coords.len() * sh.dim()];
        sh.encode_batch(&coords, &mut batch);
        for (&[lon, lat], row) in coords.iter().zip(batch.chunks_exact(sh.dim())) {
            let one = features(40, lon, lat);
            assert!(row.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()), "({lon}, {lat})");
        }
    }

    #[test]
    fn rejects_unsupported_degrees() {
        assert!(SphericalHarmonics::new(0).is_err());
        assert!(SphericalHarmonics::new(MAX_LEGENDRE_POLYS + 1).is_err());
    }
}
