//! Every encoder that can be asked for by name. The CLI's help and errors, evaluation, the maps,
//! the Python bindings and the service all read [`ENCODERS`]: adding an encoder is one entry here
//! plus its code.

use std::path::{Path, PathBuf};

use satclip_core::geoclip::GeoClip;
use satclip_core::{Hyperparameters, LocationEncoder, PositionalEncoding};
use satclip_io::tables::FeatureTable;

use crate::provenance::Provenance;
use crate::spec::{released_file, ModelSpec};
use crate::{builtin, Error, FromCheckpoint, Result};

/// An encoder known by name.
pub struct EncoderEntry {
    pub name: &'static str,
    /// Other names that mean the same encoder.
    pub aliases: &'static [&'static str],
    /// Width of its features.
    pub dim: usize,
    /// Degree of its spherical harmonics, where it has them.
    pub legendre_polys: Option<usize>,
    /// The image tower it was trained against, or what it is when it has none.
    pub tower: &'static str,
    pub licence: &'static str,
    pub description: &'static str,
    pub origin: Origin,
}

/// Where an encoder's weights come from.
pub enum Origin {
    /// Compiled into the binary.
    BuiltIn(fn() -> FeatureEncoder),
    /// A released checkpoint on the Hugging Face Hub, downloaded and cached on first use.
    Hub {
        repo: &'static str,
        file: &'static str,
        /// Approximate size in MB, for the catalogue before the file is cached.
        approx_mb: u32,
    },
    /// A file that `scripts/install-data.sh` installs.
    Installed { path: fn() -> PathBuf, load: fn(&Path) -> Result<FeatureEncoder> },
    /// Computed, nothing learned.
    Computed(fn() -> FeatureEncoder),
}

pub const ENCODERS: &[EncoderEntry] = &[
    EncoderEntry {
        name: "default",
        aliases: &["builtin", builtin::NAME],
        dim: 256,
        legendre_polys: Some(10),
        tower: "random conv. features of Blue Marble",
        licence: "MIT",
        description: "the built-in satclip-bluemarble-l10 model (offline, no download)",
        origin: Origin::BuiltIn(|| FeatureEncoder::new(builtin::encoder(), builtin::NAME)),
    },
    official(
        "resnet18-l10",
        &["satclip-resnet18-l10"],
        10,
        "ResNet18",
        "microsoft/SatCLIP-ResNet18-L10",
        "satclip-resnet18-l10.ckpt",
        57,
    ),
    official(
        "resnet18-l40",
        &["satclip-resnet18-l40"],
        40,
        "ResNet18",
        "microsoft/SatCLIP-ResNet18-L40",
        "satclip-resnet18-l40.ckpt",
        66,
    ),
    official(
        "resnet50-l10",
        &["satclip-resnet50-l10"],
        10,
        "ResNet50",
        "microsoft/SatCLIP-ResNet50-L10",
        "satclip-resnet50-l10.ckpt",
        111,
    ),
    official(
        "resnet50-l40",
        &["satclip-resnet50-l40"],
        40,
        "ResNet50",
        "microsoft/SatCLIP-ResNet50-L40",
        "satclip-resnet50-l40.ckpt",
        120,
    ),
    official(
        "vit16-l10",
        &["satclip-vit16-l10"],
        10,
        "ViT-S/16",
        "microsoft/SatCLIP-ViT16-L10",
        "satclip-vit16-l10.ckpt",
        112,
    ),
    official(
        "vit16-l40",
        &["satclip-vit16-l40"],
        40,
        "ViT-S/16",
        "microsoft/SatCLIP-ViT16-L40",
        "satclip-vit16-l40.ckpt",
        121,
    ),
    EncoderEntry {
        name: "geoclip",
        aliases: &[],
        dim: satclip_core::geoclip::EMBEDDING_DIM,
        legendre_polys: None,
        tower: "CLIP ViT-L/14",
        licence: "MIT",
        description: "GeoCLIP's pretrained location encoder (weights from scripts/install-data.sh)",
        origin: Origin::Installed {
            path: geoclip_weights_path,
            load: |path| Ok(FeatureEncoder::new(load_geoclip(path)?, path)),
        },
    },
    unlearned("direct", 2, None, "unlearned: (lon, lat) in radians", || encoding("direct", 0)),
    unlearned("wrap", 4, None, "unlearned: sin and cos of lon and lat", || encoding("wrap", 0)),
    unlearned("cartesian3d", 3, None, "unlearned: the point on the unit sphere", || encoding("cartesian3d", 0)),
    unlearned("sh-l10", 100, Some(10), "unlearned: spherical harmonics up to L = 10", || {
        encoding("sphericalharmonics", 10)
    }),
    unlearned("sh-l40", 1600, Some(40), "unlearned: spherical harmonics up to L = 40", || {
        encoding("sphericalharmonics", 40)
    }),
];

/// The sizes are the released files' (ResNet18-L10: 57.2 MB) or, for the others, the fixture
/// checkpoints' plus the parameters (and their AdamW moments) that differ.
const fn official(
    name: &'static str,
    aliases: &'static [&'static str],
    legendre_polys: usize,
    tower: &'static str,
    repo: &'static str,
    file: &'static str,
    approx_mb: u32,
) -> EncoderEntry {
    EncoderEntry {
        name,
        aliases,
        dim: 256,
        legendre_polys: Some(legendre_polys),
        tower,
        licence: "MIT",
        description: "released SatCLIP checkpoint (Hugging Face Hub; downloaded and cached on first use)",
        origin: Origin::Hub { repo, file, approx_mb },
    }
}

const fn unlearned(
    name: &'static str,
    dim: usize,
    legendre_polys: Option<usize>,
    description: &'static str,
    load: fn() -> FeatureEncoder,
) -> EncoderEntry {
    EncoderEntry {
        name,
        aliases: &[],
        dim,
        legendre_polys,
        tower: "none",
        licence: "-",
        description,
        origin: Origin::Computed(load),
    }
}

/// The positional encoding `le_type` (of degree `legendre_polys` where it has one) on its own.
fn encoding(le_type: &str, legendre_polys: usize) -> FeatureEncoder {
    let hp = Hyperparameters { le_type: le_type.into(), legendre_polys, ..Hyperparameters::default() };
    let encoding = PositionalEncoding::from_hyperparameters(&hp).expect("registered encodings are valid");
    FeatureEncoder::new(encoding, le_type)
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

/// One row of `satclip models`: an encoder and whether it is here to use.
pub struct CatalogueRow {
    pub entry: &'static EncoderEntry,
    /// Bytes of its weights, where it has a file (measured when here, else approximate).
    pub size_mb: Option<f64>,
    /// `built in`, `computed`, `cached`, `not cached`, `installed` or `not installed`.
    pub status: &'static str,
    /// Where its file is, when it is here.
    pub path: Option<PathBuf>,
}

/// Every registered encoder with its status; the Hub cache is only looked at, never fetched.
pub fn catalogue() -> Vec<CatalogueRow> {
    let hub = satclip_hub::Hub::from_env();
    let mb = |path: &Path| std::fs::metadata(path).ok().map(|m| m.len() as f64 / 1e6);
    ENCODERS
        .iter()
        .map(|entry| {
            let (size_mb, status, path) = match entry.origin {
                Origin::BuiltIn(_) => (Some(builtin::WEIGHTS_BYTES as f64 / 1e6), "built in", None),
                Origin::Computed(_) => (None, "computed", None),
                Origin::Hub { repo, file, approx_mb } => {
                    let cached = satclip_hub::HubFile::new(repo, "main", file).ok().and_then(|f| hub.cached(&f));
                    match cached {
                        Some(path) => (mb(&path), "cached", Some(path)),
                        None => (Some(approx_mb as f64), "not cached", None),
                    }
                }
                Origin::Installed { path, .. } => {
                    let path = path();
                    match mb(&path) {
                        Some(size) => (Some(size), "installed", Some(path)),
                        None => (None, "not installed", None),
                    }
                }
            };
            CatalogueRow { entry, size_mb, status, path }
        })
        .collect()
}

/// Where downloads go: the Hugging Face cache the environment names.
pub fn hub_cache() -> PathBuf {
    satclip_hub::HubConfig::from_env().cache
}

/// A SatCLIP location encoder: the built-in model, a released model by name (downloaded and
/// cached), or a checkpoint file.
pub fn load_encoder(spec: &str) -> Result<LocationEncoder> {
    match ModelSpec::parse(spec)? {
        ModelSpec::Registered(entry) if entry.name == "default" => Ok(builtin::encoder()),
        ModelSpec::Registered(_) => Err(Error::format(
            Path::new(spec),
            "is not a SatCLIP model: this command needs `default`, a released model (e.g. vit16-l40) or a SatCLIP \
             checkpoint (.ckpt or native directory)",
        )),
        ModelSpec::Hub(file) => LocationEncoder::from_checkpoint(&ModelSpec::Hub(file).checkpoint(spec)?),
        ModelSpec::File(path) => load_checkpoint(&path),
    }
}

/// A CSV or Parquet file given as an encoder: features to look up by location.
fn is_feature_table(path: &Path) -> bool {
    use satclip_io::tables::TableFormat;
    path.is_file() && matches!(TableFormat::from_path(path), Ok(TableFormat::Csv | TableFormat::Parquet))
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
pub fn geoclip_weights_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SATCLIP_GEOCLIP_WEIGHTS") {
        return path.into();
    }
    data_dir().join(GEOCLIP_WEIGHTS_FILE)
}

pub const GEOCLIP_WEIGHTS_FILE: &str = "geoclip_location_encoder.pth";

/// The directory of installed open data: `$SATCLIP_DATA`, else `./data`.
pub fn data_dir() -> PathBuf {
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

/// What every encoder does: (lon, lat) points to rows of features, in f64 (the official precision)
/// or with f32 matrix products (about twice as fast). Implement it, add an entry to [`ENCODERS`],
/// and every command, the Python bindings and the service can use the new encoder.
pub trait PointEncoder: Send + Sync {
    /// Width of the features.
    fn dim(&self) -> usize;
    /// Row-major `[points × dim]` features into `out`.
    fn embed_f64(&self, points: &[[f64; 2]], out: &mut [f64]) -> std::result::Result<(), satclip_core::Error>;
    /// As [`Self::embed_f64`] with f32 matrix products; by default computed in f64 and rounded.
    fn embed_f32(&self, points: &[[f64; 2]], out: &mut [f32]) -> std::result::Result<(), satclip_core::Error> {
        let mut wide = vec![0.0; out.len()];
        self.embed_f64(points, &mut wide)?;
        out.iter_mut().zip(&wide).for_each(|(o, v)| *o = *v as f32);
        Ok(())
    }
    /// The SatCLIP location encoder behind the features, if they come from one: what
    /// fine-tuning trains.
    fn location_encoder(&self) -> Option<&LocationEncoder> {
        None
    }
}

/// Unlearned features: computed in f64 on both paths.
impl PointEncoder for PositionalEncoding {
    fn dim(&self) -> usize {
        PositionalEncoding::dim(self)
    }
    fn embed_f64(&self, points: &[[f64; 2]], out: &mut [f64]) -> std::result::Result<(), satclip_core::Error> {
        self.encode_batch(points, out);
        Ok(())
    }
}

impl PointEncoder for GeoClip {
    fn dim(&self) -> usize {
        satclip_core::geoclip::EMBEDDING_DIM
    }
    fn embed_f64(&self, points: &[[f64; 2]], out: &mut [f64]) -> std::result::Result<(), satclip_core::Error> {
        self.embed_into(points, out);
        Ok(())
    }
    fn embed_f32(&self, points: &[[f64; 2]], out: &mut [f32]) -> std::result::Result<(), satclip_core::Error> {
        self.embed_into_f32(points, out);
        Ok(())
    }
}

impl PointEncoder for LocationEncoder {
    fn dim(&self) -> usize {
        LocationEncoder::dim(self)
    }
    fn embed_f64(&self, points: &[[f64; 2]], out: &mut [f64]) -> std::result::Result<(), satclip_core::Error> {
        self.embed_into(points, out)
    }
    fn embed_f32(&self, points: &[[f64; 2]], out: &mut [f32]) -> std::result::Result<(), satclip_core::Error> {
        self.embed_into_f32(points, out)
    }
    fn location_encoder(&self) -> Option<&LocationEncoder> {
        Some(self)
    }
}

/// Features computed elsewhere, looked up by location.
impl PointEncoder for FeatureTable {
    fn dim(&self) -> usize {
        FeatureTable::dim(self)
    }
    fn embed_f64(&self, points: &[[f64; 2]], out: &mut [f64]) -> std::result::Result<(), satclip_core::Error> {
        for (index, (&[lon, lat], out)) in points.iter().zip(out.chunks_exact_mut(self.dim())).enumerate() {
            out.copy_from_slice(self.get(lon, lat).ok_or(satclip_core::Error::NotCovered { index, lon, lat })?);
        }
        Ok(())
    }
}

/// Any encoder, loaded once, with where it came from (named in its errors).
pub struct FeatureEncoder {
    encoder: Box<dyn PointEncoder>,
    source: PathBuf,
    provenance: Provenance,
}

impl FeatureEncoder {
    pub fn new(encoder: impl PointEncoder + 'static, source: impl Into<PathBuf>) -> Self {
        let source = source.into();
        let dim = encoder.dim();
        let provenance = Provenance {
            model: source.display().to_string(),
            spec: source.display().to_string(),
            source: "computed".into(),
            dim,
            coordinate_order: "lon,lat".into(),
            crs: "OGC:CRS84".into(),
            satclip_version: env!("CARGO_PKG_VERSION").into(),
            ..Provenance::default()
        };
        Self { encoder: Box::new(encoder), source, provenance }
    }

    /// A fine-tuned model's predictions as the features: its value, or a probability per class
    /// (`satclip raster --predict` maps them).
    pub fn predictions(model: crate::finetune::FineTunedModel) -> Self {
        let (source, provenance) = (model.dir().to_path_buf(), model.provenance().clone());
        Self { encoder: Box::new(model), source, provenance }
    }

    /// Where this encoder came from, for the outputs' metadata and the service's `/info`.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// An encoder of [`ENCODERS`] by name, or a checkpoint path (official `.ckpt` or native
    /// model directory). A name that is neither gets the list of names and the nearest one.
    pub fn load(spec: &str) -> Result<Self> {
        let (mut loaded, provenance) = match ModelSpec::parse(spec)? {
            ModelSpec::Registered(entry) => {
                let loaded = match entry.origin {
                    Origin::BuiltIn(load) | Origin::Computed(load) => load(),
                    Origin::Installed { path, load } => load(&path())?,
                    Origin::Hub { .. } => unreachable!("Hub entries parse as ModelSpec::Hub"),
                };
                (loaded, Provenance::registered(spec, entry)?)
            }
            hub @ ModelSpec::Hub(_) => {
                let path = hub.checkpoint(spec)?;
                let ModelSpec::Hub(file) = hub else { unreachable!() };
                let encoder = LocationEncoder::from_checkpoint(&path)?;
                let l = encoder.hyperparameters().legendre_polys;
                let provenance = Provenance::checkpoint(spec, &path, Some(&file.repo), encoder.dim(), l)?;
                (Self::new(encoder, &path), provenance)
            }
            ModelSpec::File(path) if is_feature_table(&path) => {
                let table = FeatureTable::open(&path)?;
                let provenance = Provenance::table(spec, &path, table.dim())?;
                (Self::new(table, &path), provenance)
            }
            ModelSpec::File(path) => {
                let encoder = load_checkpoint(&path)?;
                let l = encoder.hyperparameters().legendre_polys;
                let provenance = Provenance::checkpoint(spec, &path, None, encoder.dim(), l)?;
                (Self::new(encoder, &path), provenance)
            }
        };
        loaded.provenance = provenance;
        Ok(loaded)
    }

    /// The width of the features.
    pub fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// The SatCLIP location encoder behind the features, if they come from one.
    pub fn location_encoder(&self) -> Option<&LocationEncoder> {
        self.encoder.location_encoder()
    }

    /// Row-major features of `points` into `out` (resized to `[n × dim]`), in f64.
    pub fn embed_into_f64(&self, points: &[[f64; 2]], out: &mut Vec<f64>) -> Result<()> {
        out.resize(points.len() * self.dim(), 0.0);
        self.encoder.embed_f64(points, out).map_err(|e| Error::model(&self.source, e))
    }

    /// As [`FeatureEncoder::embed_into_f64`] with the learned encoders' matrix products in f32
    /// (about twice as fast); the unlearned features are computed in f64 and rounded.
    pub fn embed_into_f32(&self, points: &[[f64; 2]], out: &mut Vec<f32>) -> Result<()> {
        out.resize(points.len() * self.dim(), 0.0);
        self.encoder.embed_f32(points, out).map_err(|e| Error::model(&self.source, e))
    }

    /// [`Self::embed_into_f64`] into a new buffer.
    pub fn embed_f64(&self, points: &[[f64; 2]]) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        self.embed_into_f64(points, &mut out)?;
        Ok(out)
    }

    /// [`Self::embed_into_f32`] into a new buffer.
    pub fn embed_f32(&self, points: &[[f64; 2]]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.embed_into_f32(points, &mut out)?;
        Ok(out)
    }

    /// Row-major f64 features of `points` and their width.
    pub fn features(&self, points: &[[f64; 2]]) -> Result<(Vec<f64>, usize)> {
        Ok((self.embed_f64(points)?, self.dim()))
    }
}

/// A SatCLIP checkpoint by path; a path that does not exist and names no encoder gets the list
/// of names and the nearest one.
fn load_checkpoint(path: &Path) -> Result<LocationEncoder> {
    let spec = &*path.to_string_lossy();
    if !path.exists() && released_file(path).is_none() {
        let names: Vec<&str> = ENCODERS.iter().map(|e| e.name).collect();
        let guess = names
            .iter()
            .map(|name| (edit_distance(spec, name), name))
            .filter(|(d, _)| *d <= 2)
            .min()
            .map(|(_, name)| format!("; did you mean `{name}`?"))
            .unwrap_or_default();
        let problem = format!(
            "no such file or directory, nor an encoder name ({}) or Hub repository (org/name or \
             hf://org/name/file){guess}",
            names.join(", ")
        );
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, problem)));
    }
    LocationEncoder::from_checkpoint(path)
}
