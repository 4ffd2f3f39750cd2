//! Positional encodings: (lon, lat) in degrees → a feature vector. The names are the official
//! `le_type` values.

mod space2vec;
mod spherical_harmonics;

pub use space2vec::{geometric_frequencies, GridAndSphere, SphereKind, Theory};
pub use spherical_harmonics::{SphericalHarmonics, MAX_LEGENDRE_POLYS};

use crate::config::Hyperparameters;
use crate::Error;

#[derive(Clone, Debug)]
pub enum PositionalEncoding {
    /// `deg2rad(coords) − π`.
    Direct,
    /// Unit vector on the sphere: (cos lon cos lat, sin lon cos lat, sin lat).
    Cartesian3D,
    /// (cos lon, sin lon, cos lat, sin lat), as Mac Aodha et al.
    Wrap,
    SphericalHarmonics(SphericalHarmonics),
    Theory(Theory),
    GridAndSphere(GridAndSphere),
}

impl PositionalEncoding {
    /// Builds the encoding named by `le_type`, reading its parameters from the hyper-parameters.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<Self, Error> {
        hp.validate()?;
        let frequencies = || geometric_frequencies(hp.frequency_num, hp.min_radius, hp.max_radius);
        Ok(match hp.le_type.as_str() {
            "direct" => Self::Direct,
            "cartesian3d" => Self::Cartesian3D,
            "wrap" => Self::Wrap,
            "sphericalharmonics" => {
                match hp.harmonics_calculation.as_str() {
                    "analytic" => {}
                    other => {
                        return Err(Error::Config(format!(
                            "harmonics_calculation `{other}` is not supported: the released weights use \
                             `analytic` (`closed-form` differs by π and signs; `discretized` is an \
                             approximate grid lookup)"
                        )))
                    }
                }
                Self::SphericalHarmonics(SphericalHarmonics::new(hp.legendre_polys)?)
            }
            "theory" => Self::Theory(Theory::new(frequencies()?)),
            "grid" => Self::GridAndSphere(GridAndSphere::new(SphereKind::Grid, frequencies()?)),
            "spherec" => Self::GridAndSphere(GridAndSphere::new(SphereKind::SphereC, frequencies()?)),
            "spherecplus" => Self::GridAndSphere(GridAndSphere::new(SphereKind::SphereCPlus, frequencies()?)),
            "spherem" => Self::GridAndSphere(GridAndSphere::new(SphereKind::SphereM, frequencies()?)),
            "spheremplus" => Self::GridAndSphere(GridAndSphere::new(SphereKind::SphereMPlus, frequencies()?)),
            other => {
                return Err(Error::Config(format!(
                    "unknown positional encoding (le_type) `{other}`; known: direct, cartesian3d, wrap, \
                     sphericalharmonics, theory, grid, spherec, spherecplus, spherem, spheremplus"
                )))
            }
        })
    }

    pub fn dim(&self) -> usize {
        match self {
            Self::Direct => 2,
            Self::Cartesian3D => 3,
            Self::Wrap => 4,
            Self::SphericalHarmonics(sh) => sh.dim(),
            Self::Theory(t) => t.dim(),
            Self::GridAndSphere(g) => g.dim(),
        }
    }

    /// Writes the features of one point into `out` (length [`Self::dim`]).
    pub fn encode_into(&self, lon: f64, lat: f64, out: &mut [f64]) {
        match self {
            Self::Direct => {
                out[0] = lon.to_radians() - std::f64::consts::PI;
                out[1] = lat.to_radians() - std::f64::consts::PI;
            }
            Self::Cartesian3D => {
                let (sin_lon, cos_lon) = lon.to_radians().sin_cos();
                let (sin_lat, cos_lat) = lat.to_radians().sin_cos();
                out.copy_from_slice(&[cos_lon * cos_lat, sin_lon * cos_lat, sin_lat]);
            }
            Self::Wrap => {
                let (sin_lon, cos_lon) = lon.to_radians().sin_cos();
                let (sin_lat, cos_lat) = lat.to_radians().sin_cos();
                out.copy_from_slice(&[cos_lon, sin_lon, cos_lat, sin_lat]);
            }
            Self::SphericalHarmonics(sh) => sh.encode_into(lon, lat, out),
            Self::Theory(t) => t.encode_into(lon, lat, out),
            Self::GridAndSphere(g) => g.encode_into(lon, lat, out),
        }
    }

    /// Encodes a batch of (lon, lat) points into a row-major `[n × dim]` matrix.
    pub fn encode_batch(&self, coords: &[[f64; 2]], out: &mut [f64]) {
        let dim = self.dim();
        debug_assert_eq!(out.len(), coords.len() * dim);
        if let Self::SphericalHarmonics(sh) = self {
            return sh.encode_batch(coords, out);
        }
        for (point, row) in coords.iter().zip(out.chunks_exact_mut(dim)) {
            self.encode_into(point[0], point[1], row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(le_type: &str, lon: f64, lat: f64) -> Vec<f64> {
        let hp = Hyperparameters { le_type: le_type.into(), ..Hyperparameters::default() };
        let enc = PositionalEncoding::from_hyperparameters(&hp).unwrap();
        let mut out = vec![f64::NAN; enc.dim()];
        enc.encode_into(lon, lat, &mut out);
        out
    }

    #[test]
    fn raw_coordinate_encodings() {
        let pi = std::f64::consts::PI;
        let d = encode("direct", 90.0, -45.0);
        assert!((d[0] - (pi / 2.0 - pi)).abs() < 1e-15 && (d[1] - (-pi / 4.0 - pi)).abs() < 1e-15);

        let c = encode("cartesian3d", 90.0, 0.0);
        assert!(c[0].abs() < 1e-15 && (c[1] - 1.0).abs() < 1e-15 && c[2].abs() < 1e-15);
        let c = encode("cartesian3d", 33.0, -71.0);
        assert!((c.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-15, "a unit vector");

        let w = encode("wrap", 180.0, 90.0);
        assert!((w[0] + 1.0).abs() < 1e-15 && w[1].abs() < 1e-15 && w[2].abs() < 1e-15 && (w[3] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn dimensions_follow_the_official_table() {
        let hp = |le: &str| Hyperparameters { le_type: le.into(), frequency_num: 16, ..Hyperparameters::default() };
        let dims = [
            ("direct", 2),
            ("cartesian3d", 3),
            ("wrap", 4),
            ("theory", 96),
            ("grid", 64),
            ("spherec", 96),
            ("spherecplus", 192),
            ("spherem", 160),
            ("spheremplus", 256),
        ];
        for (le, dim) in dims {
            assert_eq!(PositionalEncoding::from_hyperparameters(&hp(le)).unwrap().dim(), dim, "{le}");
        }
        let sh = Hyperparameters { legendre_polys: 40, ..Hyperparameters::default() };
        assert_eq!(PositionalEncoding::from_hyperparameters(&sh).unwrap().dim(), 1600);
    }

    #[test]
    fn unknown_and_unsupported_encodings_are_errors() {
        let hp = Hyperparameters { le_type: "fourier".into(), ..Hyperparameters::default() };
        let err = PositionalEncoding::from_hyperparameters(&hp).unwrap_err().to_string();
        assert!(err.contains("fourier"), "{err}");
        let hp = Hyperparameters { harmonics_calculation: "closed-form".into(), ..Hyperparameters::default() };
        let err = PositionalEncoding::from_hyperparameters(&hp).unwrap_err().to_string();
        assert!(err.contains("closed-form"), "{err}");
    }
}
