use serde::{Deserialize, Serialize};

use crate::Error;

/// The location encoder's hyper-parameters, under the official `SatCLIPLightningModule` names
/// (note the official swap: `le_type` names the positional encoding, `pe_type` the network).
/// Defaults are the released configuration with L = 10.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hyperparameters {
    pub le_type: String,
    pub pe_type: String,
    pub legendre_polys: usize,
    pub harmonics_calculation: String,
    pub frequency_num: usize,
    pub min_radius: f64,
    pub max_radius: f64,
    pub embed_dim: usize,
    pub capacity: usize,
    pub num_hidden_layers: usize,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Self {
            le_type: "sphericalharmonics".into(),
            pe_type: "siren".into(),
            legendre_polys: 10,
            harmonics_calculation: "analytic".into(),
            frequency_num: 16,
            min_radius: 1e-5,
            max_radius: 0.01,
            embed_dim: 256,
            capacity: 512,
            num_hidden_layers: 2,
        }
    }
}

impl Hyperparameters {
    /// Refuses values that no trained model has and that would size allocations without bound:
    /// they come from files (a checkpoint's hyper-parameters, a model's `config.json`).
    pub fn validate(&self) -> Result<(), Error> {
        let counts: [(&str, usize, usize); 5] = [
            ("legendre_polys", self.legendre_polys, 100),
            ("frequency_num", self.frequency_num, 1024),
            ("embed_dim", self.embed_dim, 8192),
            ("capacity", self.capacity, 8192),
            ("num_hidden_layers", self.num_hidden_layers, 64),
        ];
        for (name, value, max) in counts {
            if value > max {
                return Err(Error::Config(format!("{name} = {value} is larger than {max}, the most satclip accepts")));
            }
        }
        for (name, value) in [("min_radius", self.min_radius), ("max_radius", self.max_radius)] {
            if !value.is_finite() || value <= 0.0 {
                return Err(Error::Config(format!("{name} = {value} is not a positive finite number")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_sizes_are_refused_by_name() {
        assert!(Hyperparameters::default().validate().is_ok());
        let hp = Hyperparameters { frequency_num: 1 << 40, ..Hyperparameters::default() };
        assert!(hp.validate().unwrap_err().to_string().contains("frequency_num"));
        let hp = Hyperparameters { max_radius: f64::NAN, ..Hyperparameters::default() };
        assert!(hp.validate().unwrap_err().to_string().contains("max_radius"));
    }
}
