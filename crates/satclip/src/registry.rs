//! Every encoder that can be asked for by name. The CLI's help and errors, evaluation, the maps,
//! the Python bindings and the service all read [`ENCODERS`]: adding an encoder is one entry here
//! plus its code.

use std::path::Path;

use satclip_core::geoclip::GeoClip;
use satclip_core::{Hyperparameters, LocationEncoder, PositionalEncoding};

use crate::{builtin, official, Error, FromCheckpoint, Result};

/// An encoder known by name.
pub struct EncoderEntry {
    pub name: &'static str,
    /// Other names that mean the same encoder.
    pub aliases: &'static [&'static str],
    /// Width of its features.
    pub dim: usize,
    pub description: &'static str,
    pub load: fn() -> Result<FeatureEncoder>,
}

pub const ENCODERS: &[EncoderEntry] = &[
    EncoderEntry {
        name: "default",
        aliases: &["builtin", builtin::NAME],
        dim: 256,
        description: "the built-in satclip-bluemarble-l10 model (offline, no download)",
        load: || Ok(FeatureEncoder::SatClip { encoder: Box::new(builtin::encoder()), source: builtin::NAME.into() }),
    },
    EncoderEntry {
        name: "geoclip",
        aliases: &[],
        dim: satclip_core::geoclip::EMBEDDING_DIM,
        description: "GeoCLIP's pretrained location encoder (weights from scripts/install-data.sh)",
        load: || Ok(FeatureEncoder::GeoClip(Box::new(load_geoclip(&geoclip_weights_path())?))),
    },
    EncoderEntry {
        name: "direct",
        aliases: &[],
        dim: 2,
        description: "unlearned: (lon, lat) in radians",
        load: || unlearned("direct", None),
    },
    EncoderEntry {
        name: "wrap",
        aliases: &[],
        dim: 4,
        description: "unlearned: sin and cos of lon and lat",
        load: || unlearned("wrap", None),
    },
    EncoderEntry {
        name: "cartesian3d",
        aliases: &[],
        dim: 3,
        description: "unlearned: the point on the unit sphere",
        load: || unlearned("cartesian3d", None),
    },
    EncoderEntry {
        name: "sh-l10",
        aliases: &[],
        dim: 100,
        description: "unlearned: spherical harmonics up to L = 10",
        load: || unlearned("sphericalharmonics", Some(10)),
    },
    EncoderEntry {
        name: "sh-l40",
        aliases: &[],
        dim: 1600,
        description: "unlearned: spherical harmonics up to L = 40",
        load: || unlearned("sphericalharmonics", Some(40)),
    },
];

fn unlearned(le_type: &str, legendre_polys: Option<usize>) -> Result<FeatureEncoder> {
    let defaults = Hyperparameters::default();
    let legendre_polys = legendre_polys.unwrap_or(defaults.legendre_polys);
    let hp = Hyperparameters { le_type: le_type.into(), legendre_polys, ..defaults };
    Ok(FeatureEncoder::Raw(PositionalEncoding::from_hyperparameters(&hp).expect("registered encodings are valid")))
}

/// The entry for a name or alias.
pub fn find(name: &str) -> Option<&'static EncoderEntry> {
    ENCODERS.iter().find(|e| e.name == name || e.aliases.contains(&name))
}

/// One line per encoder, for help texts: `name (dim): description`.
pub fn describe() -> String {
    let lines: Vec<String> =
        ENCODERS.iter().map(|e| format!("  {:<12} {:>5}-d  {}", e.name, e.dim, e.description)).collect();
    lines.join("\n")
}

/// A SatCLIP location encoder: the built-in model by name, or a checkpoint path.
pub fn load_encoder(spec: &str) -> Result<LocationEncoder> {
    match FeatureEncoder::load(spec)? {
        FeatureEncoder::SatClip { encoder, .. } => Ok(*encoder),
        _ => Err(Error::format(
            Path::new(spec),
            "is not a SatCLIP model: this command needs `default` or a SatCLIP checkpoint (.ckpt or native directory)",
        )),
    }
}

/// Levenshtein distance, for "did you mean" on a mistyped name.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Where `geoclip` looks for GeoCLIP's weights unless `SATCLIP_GEOCLIP_WEIGHTS` names the file:
/// the data directory that `scripts/install-data.sh` fills (`$SATCLIP_DATA`, else `./data`).
pub fn geoclip_weights_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("SATCLIP_GEOCLIP_WEIGHTS") {
        return path.into();
    }
    data_dir().join(GEOCLIP_WEIGHTS_FILE)
}

pub const GEOCLIP_WEIGHTS_FILE: &str = "geoclip_location_encoder.pth";

/// The directory of installed open data: `$SATCLIP_DATA`, else `./data`.
pub fn data_dir() -> std::path::PathBuf {
    std::env::var_os("SATCLIP_DATA").map(Into::into).unwrap_or_else(|| "data".into())
}

/// GeoCLIP's location encoder from `location_encoder_weights.pth` of the `geoclip` wheel.
pub fn load_geoclip(path: &Path) -> Result<GeoClip> {
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "GeoCLIP's weights are not installed: run scripts/install-data.sh (takes them from the \
                 geoclip 1.3.0 wheel on PyPI) or set SATCLIP_GEOCLIP_WEIGHTS",
            ),
        ));
    }
    let tensors = satclip_io::torch::read_state_dict(path)?;
    GeoClip::from_tensors(tensors).map_err(|e| Error::model(path, e))
}

/// Any encoder `satclip eval` and the maps accept, loaded once.
pub enum FeatureEncoder {
    /// Raw coordinates or untrained spherical harmonics.
    Raw(PositionalEncoding),
    /// A SatCLIP encoder and where it came from (for error messages).
    SatClip {
        encoder: Box<LocationEncoder>,
        source: std::path::PathBuf,
    },
    GeoClip(Box<GeoClip>),
}

impl FeatureEncoder {
    /// An encoder of [`ENCODERS`] by name, or a checkpoint path (official `.ckpt` or native
    /// model directory). A name that is neither gets the list of names and the nearest one.
    pub fn load(spec: &str) -> Result<Self> {
        if let Some(entry) = find(spec) {
            return (entry.load)();
        }
        let path = Path::new(spec);
        if !path.exists() && official::download_url(path).is_none() {
            let names: Vec<&str> = ENCODERS.iter().map(|e| e.name).collect();
            let guess = names
                .iter()
                .map(|name| (edit_distance(spec, name), name))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, name)| format!("; did you mean `{name}`?"))
                .unwrap_or_default();
            let problem = format!("no such file or directory, nor an encoder name ({}){guess}", names.join(", "));
            return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, problem)));
        }
        Ok(Self::SatClip { encoder: Box::new(LocationEncoder::from_checkpoint(path)?), source: spec.into() })
    }

    /// The width of the features.
    pub fn dim(&self) -> usize {
        match self {
            Self::Raw(posenc) => posenc.dim(),
            Self::GeoClip(_) => satclip_core::geoclip::EMBEDDING_DIM,
            Self::SatClip { encoder, .. } => encoder.dim(),
        }
    }

    /// Row-major features of `points` into `out` (resized to `[n × dim]`), computed in f64: the
    /// official precision.
    pub fn embed_into_f64(&self, points: &[[f64; 2]], out: &mut Vec<f64>) -> Result<()> {
        out.resize(points.len() * self.dim(), 0.0);
        match self {
            Self::Raw(posenc) => posenc.encode_batch(points, out),
            Self::GeoClip(model) => model.embed_into(points, out),
            Self::SatClip { encoder, source } => {
                encoder.embed_into(points, out).map_err(|e| Error::model(source, e))?
            }
        }
        Ok(())
    }

    /// As [`FeatureEncoder::embed_into_f64`] with the learned encoders' matrix products in f32
    /// (about twice as fast); the unlearned features are computed in f64 and rounded.
    pub fn embed_into_f32(&self, points: &[[f64; 2]], out: &mut Vec<f32>) -> Result<()> {
        out.resize(points.len() * self.dim(), 0.0);
        match self {
            Self::Raw(posenc) => {
                let mut wide = vec![0.0; out.len()];
                posenc.encode_batch(points, &mut wide);
                out.iter_mut().zip(&wide).for_each(|(o, v)| *o = *v as f32);
            }
            Self::GeoClip(model) => model.embed_into_f32(points, out),
            Self::SatClip { encoder, source } => {
                encoder.embed_into_f32(points, out).map_err(|e| Error::model(source, e))?
            }
        }
        Ok(())
    }

    /// Row-major f64 features of `points` and their width.
    pub fn features(&self, points: &[[f64; 2]]) -> Result<(Vec<f64>, usize)> {
        let mut out = Vec::new();
        self.embed_into_f64(points, &mut out)?;
        Ok((out, self.dim()))
    }
}

/// Features of `points` from an encoder named as in [`FeatureEncoder::load`].
pub fn encoder_features(spec: &str, points: &[[f64; 2]]) -> Result<(Vec<f64>, usize)> {
    FeatureEncoder::load(spec)?.features(points)
}
