//! Official SatCLIP checkpoints: Lightning `.ckpt` files of `SatCLIPLightningModule`.

use std::path::Path;

use satclip_core::{Hyperparameters, LocationEncoder, Tensor, TensorMap};

use crate::error::{Error, Result};
use crate::pickle::Value;
use crate::torch::TorchArchive;

/// Where the location network's tensors live. `SatCLIP` registers the same `nnet` twice, so the
/// state dict holds both (sharing storage); the first present wins.
const LOCATION_PREFIXES: [&str; 2] = ["model.location.nnet.", "model.nnet."];

pub struct LightningCheckpoint {
    archive: TorchArchive,
}

impl LightningCheckpoint {
    pub fn open(path: &Path) -> Result<Self> {
        let archive = TorchArchive::open(path)?;
        let ckpt = Self { archive };
        for key in ["state_dict", "hyper_parameters"] {
            if ckpt.archive.root().get(key).is_none() {
                return Err(Error::format(
                    path,
                    format!("no `{key}` entry: not a Lightning checkpoint of SatCLIPLightningModule"),
                ));
            }
        }
        Ok(ckpt)
    }

    pub fn path(&self) -> &Path {
        self.archive.path()
    }

    /// A raw hyper-parameter, e.g. `vision_layers`.
    pub fn hyper_parameter(&self, key: &str) -> Option<Value> {
        self.archive.root().get("hyper_parameters")?.get(key)
    }

    /// The location encoder's hyper-parameters. A key the file lacks takes the default of
    /// `SatCLIPLightningModule.__init__`, as the official loader would.
    pub fn hyperparameters(&self) -> Result<Hyperparameters> {
        let path = self.path();
        let mut hp = Hyperparameters {
            le_type: "grid".into(),
            pe_type: "siren".into(),
            legendre_polys: 16,
            harmonics_calculation: "analytic".into(),
            frequency_num: 16,
            min_radius: 1.0,
            max_radius: 260.0,
            embed_dim: 512,
            capacity: 256,
            num_hidden_layers: 2,
        };
        let wrong = |key: &str, v: &Value, want: &str| {
            Error::format(path, format!("hyper_parameters[`{key}`] is {}, expected {want}", v.kind()))
        };
        let string = |key: &str, target: &mut String| -> Result<()> {
            match &self.hyper_parameter(key) {
                None => Ok(()),
                Some(Value::Str(s)) => {
                    *target = s.to_string();
                    Ok(())
                }
                Some(v) => Err(wrong(key, v, "a string")),
            }
        };
        string("le_type", &mut hp.le_type)?;
        string("pe_type", &mut hp.pe_type)?;
        string("harmonics_calculation", &mut hp.harmonics_calculation)?;
        let count = |key: &str, target: &mut usize| -> Result<()> {
            match &self.hyper_parameter(key) {
                None => Ok(()),
                Some(Value::Int(i)) if *i >= 0 => {
                    *target = *i as usize;
                    Ok(())
                }
                Some(v) => Err(wrong(key, v, "a non-negative integer")),
            }
        };
        count("legendre_polys", &mut hp.legendre_polys)?;
        count("frequency_num", &mut hp.frequency_num)?;
        count("embed_dim", &mut hp.embed_dim)?;
        count("capacity", &mut hp.capacity)?;
        count("num_hidden_layers", &mut hp.num_hidden_layers)?;
        let real = |key: &str, target: &mut f64| -> Result<()> {
            match &self.hyper_parameter(key) {
                None => Ok(()),
                Some(Value::Float(f)) => {
                    *target = *f;
                    Ok(())
                }
                Some(Value::Int(i)) => {
                    *target = *i as f64;
                    Ok(())
                }
                Some(v) => Err(wrong(key, v, "a number")),
            }
        };
        real("min_radius", &mut hp.min_radius)?;
        real("max_radius", &mut hp.max_radius)?;
        Ok(hp)
    }

    /// Names of all tensors in the state dict, in file order.
    pub fn tensor_names(&self) -> Vec<String> {
        self.state_dict_items().into_iter().filter_map(|(k, _)| k.as_str().map(str::to_owned)).collect()
    }

    fn state_dict_items(&self) -> Vec<(Value, Value)> {
        self.archive.root().get("state_dict").and_then(|s| s.dict_items()).unwrap_or_default()
    }

    /// Reads one state-dict tensor as f64.
    pub fn tensor(&mut self, name: &str) -> Result<Tensor> {
        let found = self.state_dict_items().into_iter().find(|(k, _)| k.as_str() == Some(name));
        match &found {
            Some((_, Value::Tensor(t))) => self.archive.read_f64(name, t),
            Some((_, other)) => Err(Error::format(self.path(), format!("state_dict[`{name}`] is {}", other.kind()))),
            None => Err(Error::format(self.path(), format!("state_dict has no tensor `{name}`"))),
        }
    }

    /// The location network's tensors, keyed relative to `nnet.`.
    pub fn location_tensors(&mut self) -> Result<TensorMap> {
        let names = self.tensor_names();
        let Some(prefix) = LOCATION_PREFIXES.iter().find(|p| names.iter().any(|n| n.starts_with(*p))) else {
            return Err(Error::format(
                self.path(),
                "state_dict has no location encoder (`model.location.nnet.*` or `model.nnet.*`)",
            ));
        };
        self.tensors_with_prefix(prefix)
    }

    /// Every tensor whose name starts with `prefix`, keyed by the rest of its name, as f64, each
    /// read only when a model takes it. Batch norm's integer step counters (`num_batches_tracked`)
    /// are left out; any other integer tensor is a dtype error.
    pub fn tensors_with_prefix(&mut self, prefix: &str) -> Result<TensorMap> {
        let mut map = TensorMap::new().with_display_prefix(prefix);
        for (key, value) in self.state_dict_items() {
            let (Some(name), Value::Tensor(t)) = (key.as_str(), &value) else { continue };
            if !name.starts_with(prefix) || (name.ends_with(".num_batches_tracked") && !t.storage.dtype.is_float()) {
                continue;
            }
            self.archive.insert_deferred(&mut map, &name[prefix.len()..], name, t)?;
        }
        Ok(map)
    }

    pub fn location_encoder(&mut self) -> Result<LocationEncoder> {
        let hp = self.hyperparameters()?;
        let tensors = self.location_tensors()?;
        LocationEncoder::from_tensors(hp, tensors).map_err(|e| Error::model(self.path(), e))
    }
}
