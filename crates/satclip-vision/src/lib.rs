//! SatCLIP's image towers, loaded from the official checkpoints' `model.visual.*` tensors:
//! timm ResNet18/50 and ViT-S/16 with 13 Sentinel-2 bands, each ending in the trainable linear
//! layer (`fc` / `head`) that maps to the 256-d embedding. Written over satclip-core's GEMM, so no
//! framework is needed at run time.

pub mod augment;
pub mod conv;
pub mod image;
pub mod rcf;
pub mod resnet;
pub mod synthetic;
pub mod vit;

use satclip_core::network::Linear;
use satclip_core::TensorMap;

pub use image::Image;
pub use resnet::{ResNet, ResNetDepth};
pub use vit::VisionTransformer;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image-tower weights: {0}")]
    Weights(String),
    #[error("unknown vision_layers `{0}`; supported: moco_resnet18, moco_resnet50, moco_vit16")]
    UnknownTower(String),
}

/// Input bands of the SSL4EO-S12 towers (12 Sentinel-2 bands plus the zero B10).
pub const IN_CHANNELS: usize = 13;

pub(crate) fn take_f32(t: &mut TensorMap, name: &str, shape: &[usize]) -> Result<Vec<f32>, Error> {
    t.take(name, shape)
        .map(|x| x.data.into_iter().map(|v| v as f32).collect())
        .map_err(|e| Error::Weights(e.to_string()))
}

/// The projection head's width comes from the file: bounded like a location encoder's.
pub(crate) fn check_head_width(width: usize) -> Result<(), Error> {
    if width == 0 || width > 8192 {
        return Err(Error::Weights(format!("projection head has {width} outputs; satclip accepts 1 to 8192")));
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub enum Tower {
    ResNet(ResNet),
    Vit(VisionTransformer),
}

impl Tower {
    /// Builds the tower named by the checkpoint's `vision_layers` from tensors keyed relative to
    /// `model.visual.`. Every tensor must be used.
    pub fn load(vision_layers: &str, mut t: TensorMap) -> Result<Self, Error> {
        let tower = match vision_layers {
            "moco_resnet18" => Self::ResNet(ResNet::load(&mut t, ResNetDepth::R18, IN_CHANNELS)?),
            "moco_resnet50" => Self::ResNet(ResNet::load(&mut t, ResNetDepth::R50, IN_CHANNELS)?),
            "moco_vit16" => Self::Vit(VisionTransformer::load(&mut t, IN_CHANNELS)?),
            other => return Err(Error::UnknownTower(other.to_string())),
        };
        t.finish().map_err(|e| Error::Weights(e.to_string()))?;
        Ok(tower)
    }

    /// Side of the square input: 256 for the ResNets (full S2-100K tiles), 224 for the ViT.
    pub fn input_size(&self) -> usize {
        match self {
            Self::ResNet(_) => 256,
            Self::Vit(_) => vit::IMAGE_SIZE,
        }
    }

    /// Brings a preprocessed tile to the tower's input size (the official centre crop for the ViT).
    pub fn prepare(&self, image: &Image) -> Image {
        let size = self.input_size();
        if image.height == size && image.width == size {
            image.clone()
        } else {
            image.center_crop(size)
        }
    }

    /// Pooled backbone features: the input of the projection head.
    pub fn pooled(&self, image: &Image) -> Vec<f32> {
        let image = self.prepare(image);
        match self {
            Self::ResNet(r) => r.pooled(&image),
            Self::Vit(v) => v.pooled(&image),
        }
    }

    pub fn head(&self) -> &Linear<f32> {
        match self {
            Self::ResNet(r) => &r.fc,
            Self::Vit(v) => &v.head,
        }
    }

    /// The image embedding (not normalised), as `model.visual(image)`.
    pub fn embed(&self, image: &Image) -> Vec<f32> {
        self.head().forward(&self.pooled(image), 1, false)
    }
}

/// Anything that turns a tile into a fixed-length feature vector (the input of a trainable head).
pub trait FeatureExtractor: Sync {
    fn features(&self, image: &Image) -> Vec<f32>;

    /// The smallest side an input may have; `features` may panic on a smaller one.
    fn min_side(&self) -> usize {
        1
    }
}

impl FeatureExtractor for Tower {
    fn features(&self, image: &Image) -> Vec<f32> {
        self.pooled(image)
    }

    fn min_side(&self) -> usize {
        self.input_size()
    }
}

impl FeatureExtractor for rcf::RandomConvFeatures {
    fn features(&self, image: &Image) -> Vec<f32> {
        self.pooled(image)
    }
}
