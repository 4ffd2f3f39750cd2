//! Named f64 tensors handed from a weight file to the model constructors.
//!
//! The formats (Lightning `.ckpt`, safetensors) live in `satclip-io`; they fill a [`TensorMap`]
//! and the networks take what they need from it, by the checkpoint's own key names.

use std::collections::BTreeMap;

use crate::Error;

/// A dense row-major f64 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Result<Self, Error> {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(Error::Weights(format!("tensor of shape {shape:?} needs {numel} values, got {}", data.len())));
        }
        Ok(Self { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let numel = shape.iter().product();
        Self { shape, data: vec![0.0; numel] }
    }
}

/// Tensors by name. Constructors `take` what they use, so that whatever is left at the end is,
/// by construction, a key the model does not know.
#[derive(Clone, Debug, Default)]
pub struct TensorMap {
    tensors: BTreeMap<String, Tensor>,
    prefix: String,
}

impl TensorMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Sets a prefix used only in error messages, e.g. `model.location.nnet.`.
    pub fn with_display_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Removes `name` and checks its shape.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, Error> {
        let tensor = self.tensors.remove(name).ok_or_else(|| {
            Error::Weights(format!("missing tensor `{}{name}` (expected shape {shape:?})", self.prefix))
        })?;
        if tensor.shape != shape {
            return Err(Error::Weights(format!(
                "tensor `{}{name}` has shape {:?}, expected {shape:?}",
                self.prefix, tensor.shape
            )));
        }
        Ok(tensor)
    }

    /// Fails if any tensor was not taken: an unknown key means the weights belong to another
    /// architecture than the one the hyper-parameters describe.
    pub fn finish(self) -> Result<(), Error> {
        if self.tensors.is_empty() {
            return Ok(());
        }
        let unknown: Vec<String> = self.tensors.keys().map(|k| format!("`{}{k}`", self.prefix)).collect();
        Err(Error::Weights(format!("unexpected tensor(s) for this architecture: {}", unknown.join(", "))))
    }
}
