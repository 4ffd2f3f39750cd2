use serde::{Deserialize, Serialize};

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
