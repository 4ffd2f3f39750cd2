//! The math of SatCLIP's location encoder, free of I/O: positional encodings (spherical harmonics
//! in the convention of the released weights, Space2Vec/Sphere2Vec, raw coordinates), networks
//! (SIREN, MLP, FCNet, linear) and the encoder that chains them.

pub mod config;
pub mod encoder;
pub mod encoding;
pub mod geo;
pub mod geoclip;
pub mod kernels;
pub mod network;
pub mod random;
pub mod tensor;
pub mod train;

pub use config::Hyperparameters;
pub use encoder::{Embeddings, LocationEncoder};
pub use encoding::PositionalEncoding;
pub use kernels::Dtype;
pub use network::Network;
pub use tensor::{Tensor, TensorMap};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid weights: {0}")]
    Weights(String),
    #[error("point {index}: {problem}")]
    InvalidCoordinate { index: usize, problem: CoordinateProblem },
    /// An encoder defined only at some places (e.g. features read from a table) was asked
    /// about another.
    #[error("point {index} (lon {lon}, lat {lat}) is not covered by this encoder")]
    NotCovered { index: usize, lon: f64, lat: f64 },
}

/// What is wrong with a (lon, lat) pair.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum CoordinateProblem {
    #[error("{field} is {value}, not a finite number")]
    NotFinite { field: &'static str, value: f64 },
    #[error("{field} = {value} is outside [-{limit}, {limit}] degrees")]
    OutOfRange { field: &'static str, value: f64, limit: f64 },
}

impl CoordinateProblem {
    pub fn field(&self) -> &'static str {
        match self {
            Self::NotFinite { field, .. } | Self::OutOfRange { field, .. } => field,
        }
    }
}

/// Checks a point in degrees: both finite, |lon| ≤ 180, |lat| ≤ 90.
pub fn check_coordinate(lon: f64, lat: f64) -> Result<(), CoordinateProblem> {
    for (field, value, limit) in [("lon", lon, 180.0), ("lat", lat, 90.0)] {
        if !value.is_finite() {
            return Err(CoordinateProblem::NotFinite { field, value });
        }
        if value.abs() > limit {
            return Err(CoordinateProblem::OutOfRange { field, value, limit });
        }
    }
    Ok(())
}

/// Brings a finite longitude into [−180, 180): 190 → −170, 540 → −180. 180 itself is kept.
pub fn wrap_longitude(lon: f64) -> f64 {
    if (-180.0..=180.0).contains(&lon) || !lon.is_finite() {
        return lon;
    }
    (lon + 180.0).rem_euclid(360.0) - 180.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinate_checks_name_the_field() {
        assert!(check_coordinate(180.0, -90.0).is_ok());
        assert_eq!(check_coordinate(f64::NAN, 0.0).unwrap_err().field(), "lon");
        assert_eq!(check_coordinate(0.0, f64::INFINITY).unwrap_err().field(), "lat");
        let err = check_coordinate(10.0, 90.5).unwrap_err();
        assert_eq!(err, CoordinateProblem::OutOfRange { field: "lat", value: 90.5, limit: 90.0 });
        assert!(err.to_string().contains("90.5"));
        assert_eq!(check_coordinate(-180.01, 0.0).unwrap_err().field(), "lon");
    }

    #[test]
    fn longitudes_wrap_into_range() {
        assert_eq!(wrap_longitude(190.0), -170.0);
        assert_eq!(wrap_longitude(-190.0), 170.0);
        assert_eq!(wrap_longitude(540.0), -180.0);
        assert_eq!(wrap_longitude(180.0), 180.0);
        assert_eq!(wrap_longitude(-45.0), -45.0);
    }
}
