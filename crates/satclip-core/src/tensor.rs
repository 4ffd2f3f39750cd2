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

/// Reads a tensor's values once its shape has been accepted; the error says what went wrong.
pub type TensorLoader = Box<dyn FnOnce() -> Result<Vec<f64>, String>>;

enum Entry {
    Ready(Tensor),
    /// Known by its header's shape only: read when a constructor takes it, never if none does.
    Deferred {
        shape: Vec<usize>,
        load: TensorLoader,
    },
}

impl Entry {
    fn shape(&self) -> &[usize] {
        match self {
            Entry::Ready(t) => &t.shape,
            Entry::Deferred { shape, .. } => shape,
        }
    }
}

/// Tensors by name. Constructors `take` what they use, so that whatever is left at the end is,
/// by construction, a key the model does not know. A weight file's tensors may be inserted
/// unread: each is then read only after its name and shape match the architecture, so memory
/// follows what the model needs, never what a header declares.
#[derive(Default)]
pub struct TensorMap {
    tensors: BTreeMap<String, Entry>,
    prefix: String,
}

impl std::fmt::Debug for TensorMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.tensors.iter().map(|(k, e)| (k, e.shape()))).finish()
    }
}

impl TensorMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), Entry::Ready(tensor));
    }

    /// Adds a tensor known by its shape, read by `load` only if a constructor takes it.
    pub fn insert_deferred(&mut self, name: impl Into<String>, shape: Vec<usize>, load: TensorLoader) {
        self.tensors.insert(name.into(), Entry::Deferred { shape, load });
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The shape of `name`, known without reading it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(Entry::shape)
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Sets a prefix used only in error messages, e.g. `model.location.nnet.`.
    pub fn with_display_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Removes `name`, checks its shape, then reads it and checks that every value is finite: a
    /// NaN or an infinity in a weight would only surface as NaN embeddings.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, Error> {
        let entry = self.tensors.remove(name).ok_or_else(|| {
            Error::Weights(format!("missing tensor `{}{name}` (expected shape {shape:?})", self.prefix))
        })?;
        if entry.shape() != shape {
            return Err(Error::Weights(format!(
                "tensor `{}{name}` has shape {:?}, expected {shape:?}",
                self.prefix,
                entry.shape()
            )));
        }
        let tensor = match entry {
            Entry::Ready(t) => t,
            Entry::Deferred { shape, load } => {
                let data = load().map_err(|e| Error::Weights(format!("tensor `{}{name}`: {e}", self.prefix)))?;
                Tensor::new(shape, data)?
            }
        };
        if let Some(at) = tensor.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Weights(format!(
                "tensor `{}{name}` holds {} at flat index {at}: weights must be finite",
                self.prefix, tensor.data[at]
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
