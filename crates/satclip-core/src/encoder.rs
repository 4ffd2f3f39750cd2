use rand::Rng;
use rayon::prelude::*;

use crate::config::Hyperparameters;
use crate::encoding::PositionalEncoding;
use crate::network::Network;
use crate::tensor::{Tensor, TensorMap};
use crate::{check_coordinate, Error};

/// Rows per parallel work item: large enough for the GEMM to reach speed, small enough that a
/// tile's activations (rows × 1600 f64 at L = 40) stay in cache.
const TILE_ROWS: usize = 128;

/// (lon, lat) in degrees → embedding: a positional encoding followed by a network, in f64, exactly
/// as the official `LocationEncoder`. The output is not normalised.
#[derive(Clone, Debug)]
pub struct LocationEncoder {
    hyperparameters: Hyperparameters,
    posenc: PositionalEncoding,
    network: Network,
}

/// Row-major `[rows × dim]` embeddings.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    pub rows: usize,
    pub dim: usize,
    pub data: Vec<f64>,
}

impl Embeddings {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

impl LocationEncoder {
    /// Builds the encoder from tensors keyed relative to the official `nnet.` module. Every
    /// tensor must be used: leftovers mean the weights do not match the hyper-parameters.
    pub fn from_tensors(hyperparameters: Hyperparameters, mut tensors: TensorMap) -> Result<Self, Error> {
        let posenc = PositionalEncoding::from_hyperparameters(&hyperparameters)?;
        let network = Network::load(&hyperparameters, posenc.dim(), &mut tensors)?;
        tensors.finish()?;
        Ok(Self { hyperparameters, posenc, network })
    }

    /// A freshly initialised encoder (official initialisation), e.g. to pretrain.
    pub fn init<R: Rng>(hyperparameters: Hyperparameters, rng: &mut R) -> Result<Self, Error> {
        let posenc = PositionalEncoding::from_hyperparameters(&hyperparameters)?;
        let network = Network::init(&hyperparameters, posenc.dim(), rng)?;
        Ok(Self { hyperparameters, posenc, network })
    }

    pub fn hyperparameters(&self) -> &Hyperparameters {
        &self.hyperparameters
    }

    pub fn positional_encoding(&self) -> &PositionalEncoding {
        &self.posenc
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Width of the embedding.
    pub fn dim(&self) -> usize {
        self.network.output_dim()
    }

    /// Parameters under the official names relative to `nnet.`.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.network.state_dict()
    }

    /// Embeds (lon, lat) points in degrees. Fails, naming the row, on a point outside
    /// [−180, 180] × [−90, 90] or not finite.
    pub fn embed(&self, coords: &[[f64; 2]]) -> Result<Embeddings, Error> {
        let mut data = vec![0.0; coords.len() * self.dim()];
        self.embed_into(coords, &mut data)?;
        Ok(Embeddings { rows: coords.len(), dim: self.dim(), data })
    }

    /// As [`Self::embed`], into a caller-provided `[coords.len() × dim]` buffer. Runs on the
    /// current rayon pool.
    pub fn embed_into(&self, coords: &[[f64; 2]], out: &mut [f64]) -> Result<(), Error> {
        if out.len() != coords.len() * self.dim() {
            return Err(Error::Config(format!(
                "output buffer holds {} values, expected {} rows × {}",
                out.len(),
                coords.len(),
                self.dim()
            )));
        }
        for (index, &[lon, lat]) in coords.iter().enumerate() {
            check_coordinate(lon, lat).map_err(|problem| Error::InvalidCoordinate { index, problem })?;
        }
        let dim = self.dim();
        coords.par_chunks(TILE_ROWS).zip(out.par_chunks_mut(TILE_ROWS * dim)).for_each(|(tile, tile_out)| {
            tile_out.copy_from_slice(&self.forward_unchecked(tile));
        });
        Ok(())
    }

    /// Features → network on one tile, without validation.
    fn forward_unchecked(&self, coords: &[[f64; 2]]) -> Vec<f64> {
        let mut features = vec![0.0; coords.len() * self.posenc.dim()];
        self.posenc.encode_batch(coords, &mut features);
        self.network.forward(&features, coords.len())
    }
}
