use rand::Rng;
use rayon::prelude::*;

use crate::config::Hyperparameters;
use crate::encoding::PositionalEncoding;
use crate::kernels::Float;
use crate::network::Network;
use crate::tensor::{Tensor, TensorMap};
use crate::{check_coordinate, Error};

/// Rows per parallel work item: large enough for the GEMM to reach speed, small enough that a
/// tile's activations (rows × 1600 f64 at L = 40) stay in cache.
const TILE_ROWS: usize = 128;
/// Points whose f64 features are computed together before being rounded into the tile: 16 rows
/// of 1 600 features (L = 40) stay within the L1 and L2 caches.
const FEATURE_ROWS: usize = 16;

/// (lon, lat) in degrees → embedding: a positional encoding followed by a network, in f64, exactly
/// as the official `LocationEncoder`. The output is not normalised.
#[derive(Clone, Debug)]
pub struct LocationEncoder {
    hyperparameters: Hyperparameters,
    posenc: PositionalEncoding,
    network: Network,
    /// The same network in f32, for the fast path.
    network_f32: Network<f32>,
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
        Ok(Self::assemble(hyperparameters, posenc, network))
    }

    /// A freshly initialised encoder (official initialisation), e.g. to pretrain.
    pub fn init<R: Rng>(hyperparameters: Hyperparameters, rng: &mut R) -> Result<Self, Error> {
        let posenc = PositionalEncoding::from_hyperparameters(&hyperparameters)?;
        let network = Network::init(&hyperparameters, posenc.dim(), rng)?;
        Ok(Self::assemble(hyperparameters, posenc, network))
    }

    /// This encoder's positional encoding with another network, e.g. this one's after
    /// fine-tuning. Fails if the network does not fit the encoding or the hyper-parameters.
    pub fn with_network(&self, network: Network) -> Result<Self, Error> {
        let mut tensors = TensorMap::new();
        for (name, tensor) in network.state_dict() {
            tensors.insert(&name, tensor);
        }
        Self::from_tensors(self.hyperparameters.clone(), tensors)
    }

    fn assemble(hyperparameters: Hyperparameters, posenc: PositionalEncoding, network: Network) -> Self {
        let network_f32 = network.cast().for_inference();
        Self { hyperparameters, posenc, network: network.for_inference(), network_f32 }
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

    /// As [`Self::embed`], into a caller-provided `[coords.len() × dim]` buffer, in f64 (the
    /// official precision). Runs on the current rayon pool.
    pub fn embed_into(&self, coords: &[[f64; 2]], out: &mut [f64]) -> Result<(), Error> {
        self.embed_tiles(coords, out, |features, n, scratch, result| {
            self.network.forward_into(features, n, scratch, result)
        })
    }

    /// As [`Self::embed_into`], with f32 matrix products on features rounded once from f64: about
    /// twice as fast, within ~1e-6 relative of the f64 result.
    pub fn embed_into_f32(&self, coords: &[[f64; 2]], out: &mut [f32]) -> Result<(), Error> {
        self.embed_tiles(coords, out, |features, n, scratch, result| {
            self.network_f32.forward_into(features, n, scratch, result)
        })
    }

    /// Validates, then runs `forward(features, rows, scratch, result)` on parallel tiles of rows.
    fn embed_tiles<T: Float>(
        &self,
        coords: &[[f64; 2]],
        out: &mut [T],
        forward: impl Fn(&[T], usize, &mut Vec<T>, &mut Vec<T>) + Sync,
    ) -> Result<(), Error> {
        let dim = self.dim();
        if out.len() != coords.len() * dim {
            return Err(Error::Config(format!(
                "output buffer holds {} values, expected {} rows × {dim}",
                out.len(),
                coords.len()
            )));
        }
        for (index, &[lon, lat]) in coords.iter().enumerate() {
            check_coordinate(lon, lat).map_err(|problem| Error::InvalidCoordinate { index, problem })?;
        }
        let din = self.posenc.dim();
        coords.par_chunks(TILE_ROWS).zip(out.par_chunks_mut(TILE_ROWS * dim)).for_each_init(
            // Sized for the call: a single point's latency should not pay for 16 rows of features.
            || (vec![0.0f64; FEATURE_ROWS.min(coords.len()) * din], Vec::new(), Vec::new(), Vec::new()),
            |(points, features, scratch, result), (tile, tile_out)| {
                features.clear();
                for group in tile.chunks(FEATURE_ROWS) {
                    let group_features = &mut points[..group.len() * din];
                    self.posenc.encode_batch(group, group_features);
                    features.extend(group_features.iter().map(|v| T::from_f64(*v)));
                }
                forward(features, tile.len(), scratch, result);
                tile_out.copy_from_slice(result);
            },
        );
        Ok(())
    }
}
