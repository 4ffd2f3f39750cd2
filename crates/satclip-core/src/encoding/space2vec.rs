//! The multi-scale sinusoidal encodings of Space2Vec (`theory`, `grid`) and Sphere2Vec (`spherec`,
//! `spherecplus`, `spherem`, `spheremplus`), in the exact layout of the official code.
//!
//! Like the official code, they act on (lon, lat) in raw **degrees** times a geometric frequency
//! schedule (its deg→rad conversion is commented out), and duplicate every sphere* term in pairs.

use crate::Error;

/// `freq_i = 1 / (min_radius · (max_radius/min_radius)^(i/(F−1)))`, i = 0..F−1, as the official
/// `_cal_freq_list("geometric", …)`.
pub fn geometric_frequencies(frequency_num: usize, min_radius: f64, max_radius: f64) -> Result<Vec<f64>, Error> {
    if frequency_num < 2 {
        return Err(Error::Config(format!("frequency_num must be at least 2, got {frequency_num}")));
    }
    if !(min_radius > 0.0 && max_radius > 0.0 && min_radius.is_finite() && max_radius.is_finite()) {
        return Err(Error::Config(format!(
            "min_radius and max_radius must be positive and finite, got {min_radius} and {max_radius}"
        )));
    }
    let increment = (max_radius / min_radius).ln() / (frequency_num as f64 - 1.0);
    Ok((0..frequency_num).map(|i| 1.0 / (min_radius * (i as f64 * increment).exp())).collect())
}

/// Which of the official `GridAndSphere` variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SphereKind {
    Grid,
    SphereC,
    SphereCPlus,
    SphereM,
    SphereMPlus,
}

impl SphereKind {
    /// Features per frequency.
    fn width(self) -> usize {
        match self {
            SphereKind::Grid => 4,
            SphereKind::SphereC => 6,
            SphereKind::SphereCPlus => 12,
            SphereKind::SphereM => 10,
            SphereKind::SphereMPlus => 16,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GridAndSphere {
    kind: SphereKind,
    frequencies: Vec<f64>,
}

impl GridAndSphere {
    pub fn new(kind: SphereKind, frequencies: Vec<f64>) -> Self {
        Self { kind, frequencies }
    }

    pub fn dim(&self) -> usize {
        self.kind.width() * self.frequencies.len()
    }

    pub fn encode_into(&self, lon: f64, lat: f64, out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.dim());
        let f_count = self.frequencies.len();
        if self.kind == SphereKind::Grid {
            // Layout [coordinate][frequency][sin, cos].
            for (c, coord) in [lon, lat].into_iter().enumerate() {
                for (f, freq) in self.frequencies.iter().enumerate() {
                    let (sin, cos) = (coord * freq).sin_cos();
                    out[c * 2 * f_count + 2 * f] = sin;
                    out[c * 2 * f_count + 2 * f + 1] = cos;
                }
            }
            return;
        }
        // sphereM variants mix in the single-scale terms of the raw coordinate.
        let (sin_lon1, cos_lon1) = lon.sin_cos();
        let (_, cos_lat1) = lat.sin_cos();
        let width = self.kind.width();
        for (f, freq) in self.frequencies.iter().enumerate() {
            let (slon, clon) = (lon * freq).sin_cos();
            let (slat, clat) = (lat * freq).sin_cos();
            let terms: &[f64] = match self.kind {
                SphereKind::Grid => unreachable!("handled above"),
                SphereKind::SphereC => &[slat, clat * clon, clat * slon],
                SphereKind::SphereCPlus => &[slat, clat, slon, clon, clat * clon, clat * slon],
                SphereKind::SphereM => &[slat, clat * cos_lon1, cos_lat1 * clon, clat * sin_lon1, cos_lat1 * slon],
                SphereKind::SphereMPlus => {
                    &[slat, clat, slon, clon, clat * cos_lon1, cos_lat1 * clon, clat * sin_lon1, cos_lat1 * slon]
                }
            };
            // Each term appears twice: the official frequency matrix has two identical columns.
            let block = &mut out[f * width..(f + 1) * width];
            for (pair, term) in block.chunks_exact_mut(2).zip(terms) {
                pair[0] = *term;
                pair[1] = *term;
            }
        }
    }
}

/// Space2Vec "theory": projections onto three unit vectors 120° apart, each at F frequencies.
#[derive(Clone, Debug)]
pub struct Theory {
    frequencies: Vec<f64>,
}

const THEORY_UNIT_VECTORS: [[f64; 2]; 3] =
    [[1.0, 0.0], [-0.5, 0.866_025_403_784_438_6], [-0.5, -0.866_025_403_784_438_6]];

impl Theory {
    pub fn new(frequencies: Vec<f64>) -> Self {
        Self { frequencies }
    }

    pub fn dim(&self) -> usize {
        6 * self.frequencies.len()
    }

    pub fn encode_into(&self, lon: f64, lat: f64, out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.dim());
        let projections = THEORY_UNIT_VECTORS.map(|u| lon * u[0] + lat * u[1]);
        // The official code reshapes the [F][6] angles to [2][3F] before taking sin on even and
        // cos on odd positions, so the parity is that of the index within its half.
        let half = 3 * self.frequencies.len();
        for (f, freq) in self.frequencies.iter().enumerate() {
            for k in 0..6 {
                let j = f * 6 + k;
                let angle = projections[k / 2] * freq;
                out[j] = if (j % half) % 2 == 0 { angle.sin() } else { angle.cos() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_schedule_spans_the_radii() {
        let f = geometric_frequencies(3, 1.0, 100.0).unwrap();
        let expect = [1.0, 0.1, 0.01];
        for (got, want) in f.iter().zip(expect) {
            assert!((got - want).abs() < 1e-15);
        }
        assert!(geometric_frequencies(1, 1.0, 2.0).is_err());
        assert!(geometric_frequencies(4, 0.0, 2.0).is_err());
    }

    #[test]
    fn grid_layout_is_coordinate_then_frequency_then_sin_cos() {
        let enc = GridAndSphere::new(SphereKind::Grid, vec![1.0, 0.5]);
        let mut out = vec![0.0; enc.dim()];
        enc.encode_into(2.0, -3.0, &mut out);
        let expect = [
            2f64.sin(),
            2f64.cos(),
            1f64.sin(),
            1f64.cos(),
            (-3f64).sin(),
            (-3f64).cos(),
            (-1.5f64).sin(),
            (-1.5f64).cos(),
        ];
        assert_eq!(out.len(), 8);
        for (got, want) in out.iter().zip(expect) {
            assert!((got - want).abs() < 1e-15);
        }
    }

    #[test]
    fn sphere_variants_follow_the_sphere2vec_equations() {
        let (lon, lat) = (0.7, -0.4);
        let freqs = vec![1.0, 2.0];
        for kind in [SphereKind::SphereC, SphereKind::SphereCPlus, SphereKind::SphereM, SphereKind::SphereMPlus] {
            let enc = GridAndSphere::new(kind, freqs.clone());
            let mut out = vec![0.0; enc.dim()];
            enc.encode_into(lon, lat, &mut out);
            let width = kind.width();
            assert_eq!(out.len(), width * 2);
            let f = 2.0; // check the second frequency block
            let block = &out[width..];
            let expect: Vec<f64> = match kind {
                SphereKind::SphereC => {
                    vec![(lat * f).sin(), (lat * f).cos() * (lon * f).cos(), (lat * f).cos() * (lon * f).sin()]
                }
                SphereKind::SphereCPlus => vec![
                    (lat * f).sin(),
                    (lat * f).cos(),
                    (lon * f).sin(),
                    (lon * f).cos(),
                    (lat * f).cos() * (lon * f).cos(),
                    (lat * f).cos() * (lon * f).sin(),
                ],
                SphereKind::SphereM => vec![
                    (lat * f).sin(),
                    (lat * f).cos() * lon.cos(),
                    lat.cos() * (lon * f).cos(),
                    (lat * f).cos() * lon.sin(),
                    lat.cos() * (lon * f).sin(),
                ],
                SphereKind::SphereMPlus => vec![
                    (lat * f).sin(),
                    (lat * f).cos(),
                    (lon * f).sin(),
                    (lon * f).cos(),
                    (lat * f).cos() * lon.cos(),
                    lat.cos() * (lon * f).cos(),
                    (lat * f).cos() * lon.sin(),
                    lat.cos() * (lon * f).sin(),
                ],
                SphereKind::Grid => unreachable!(),
            };
            for (i, want) in expect.iter().enumerate() {
                assert!((block[2 * i] - want).abs() < 1e-15, "{kind:?} term {i}");
                assert_eq!(block[2 * i], block[2 * i + 1], "{kind:?} terms come in pairs");
            }
        }
    }

    #[test]
    fn theory_projects_on_three_directions() {
        let enc = Theory::new(vec![1.0, 0.25]);
        let (lon, lat) = (10.0, 20.0);
        let mut out = vec![0.0; enc.dim()];
        enc.encode_into(lon, lat, &mut out);
        let p = [lon, -0.5 * lon + 3f64.sqrt() / 2.0 * lat, -0.5 * lon - 3f64.sqrt() / 2.0 * lat];
        // F = 2 is even, so sin sits on even and cos on odd positions throughout.
        for (f, freq) in [1.0, 0.25].iter().enumerate() {
            for k in 0..6 {
                let a = p[k / 2] * freq;
                let want = if k % 2 == 0 { a.sin() } else { a.cos() };
                assert!((out[f * 6 + k] - want).abs() < 1e-12);
            }
        }
        // With odd F the second half flips parity, as the official reshape does.
        let enc = Theory::new(vec![1.0, 0.5, 0.25]);
        let mut out = vec![0.0; enc.dim()];
        enc.encode_into(lon, lat, &mut out);
        // j = 9 is the first element of the second half (3F = 9): sin of p[(9 % 6) / 2] · freq[1].
        assert!((out[9] - (p[1] * 0.5).sin()).abs() < 1e-12);
        assert!((out[8] - (p[1] * 0.5).sin()).abs() < 1e-12, "j = 8 is even in the first half");
    }
}
