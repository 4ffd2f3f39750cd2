//! `satclip`: argument parsing and progress only; the work lives in the library crates.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use satclip::{embed_file, Dtype, EmbedOptions, OnInvalid, Progress, ReadOptions};

#[derive(Parser)]
#[command(name = "satclip", version, about = "SatCLIP location embeddings: official checkpoints, no Python")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed (lon, lat) points from a CSV, Parquet, GeoParquet or NPY file.
    Embed(EmbedArgs),
    /// Convert an official Lightning .ckpt to the native format (config.json + model.safetensors).
    Convert {
        /// Official SatCLIP checkpoint (.ckpt), a released model's name (e.g. vit16-l40), or
        /// `default` for the built-in model.
        #[arg(long)]
        checkpoint: String,
        /// Directory to write config.json and model.safetensors into.
        #[arg(long, visible_alias = "out")]
        output: PathBuf,
    },
    /// Embed Sentinel-2 tiles (12-band S2-100K GeoTIFFs) with a checkpoint's image tower.
    EmbedImages {
        /// Official SatCLIP checkpoint with its image tower: a .ckpt, or a released model's name
        /// (e.g. vit16-l40, microsoft/SatCLIP-ViT16-L40[@revision]).
        #[arg(long)]
        checkpoint: String,
        /// Tiles, or directories of .tif tiles.
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        /// .npy [N, 256], or .parquet / .csv with file, lon, lat (tile centre) and the embedding.
        #[arg(long, visible_alias = "out")]
        output: PathBuf,
    },
    /// Localise tiles on the globe: their image embeddings against the location embeddings of a
    /// Fibonacci lattice (official notebook B02).
    Locate {
        /// Official SatCLIP checkpoint: a .ckpt, or a released model's name (e.g. vit16-l40).
        #[arg(long)]
        checkpoint: String,
        /// Candidate points on the sphere (at most 10 million).
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        points: u32,
        /// Candidates reported per tile.
        #[arg(long, default_value_t = 1)]
        top_k: usize,
        /// Tiles, or directories of .tif tiles.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Build a pretraining corpus from open data (see scripts/install-data.sh).
    Corpus {
        #[command(subcommand)]
        source: CorpusSource,
    },
    /// Run a frozen image tower once over a corpus (K augmented views per tile) and cache the
    /// pooled features for training.
    Featurize(FeaturizeArgs),
    /// Pretrain a location encoder with the SatCLIP objective on cached image features.
    Train(TrainArgs),
    /// Build downstream task files from real data.
    Tasks {
        #[command(subcommand)]
        action: TasksAction,
    },
    /// Probe encoders on tasks: fit on training points, score on held-out ones.
    Eval(EvalArgs),
    /// Fine-tune a SatCLIP location encoder end to end on a task's labels (a linear head, started
    /// as the frozen linear probe; early stopping on a share of the labels). Writes a model
    /// directory that every command loads as a checkpoint.
    Finetune(FinetuneArgs),
    /// Predict with a fine-tuned model (a directory `satclip finetune` wrote): the input table's
    /// rows with the predicted value, or class and its probability. For a map of predictions,
    /// see `satclip raster --predict`.
    Predict(PredictArgs),
    /// Picture an encoder's embedding space: a task's points laid out in 2-D (t-SNE, or PCA),
    /// coloured by the task's labels, with the kNN separability of the labels in the embedding.
    Latent(LatentArgs),
    /// Map an encoder: its first three principal components over the globe as RGB (PNG).
    Map(MapArgs),
    /// Map the cosine similarity of every place's embedding to one place's (PNG).
    Similarity {
        /// The reference place, `LON,LAT`.
        #[arg(long, value_parser = parse_lonlat, allow_hyphen_values = true)]
        at: [f64; 2],
        #[command(flatten)]
        map: MapArgs,
    },
    /// Embed every cell of a lon/lat grid into a GeoTIFF, one float32 band per embedding
    /// dimension (EPSG 4326), for GIS tools and rasterio.
    Raster(RasterArgs),
    /// The models known by name: the built-in model, the six released checkpoints, GeoCLIP and
    /// the unlearned features, with width, L, tower, size, licence and whether each is here.
    #[command(visible_alias = "encoders")]
    Models,
    /// Serve embeddings over HTTP: POST /embed (JSON, Arrow IPC or NPY), /similarity, /locate;
    /// GET /health, /info, /metrics, /openapi.json. Requests are batched per model.
    Serve(ServeArgs),
    /// Fetch released models into the Hugging Face cache ahead of use (names as in `satclip
    /// models`, `org/name[@revision]`, or `hf://org/name/file[@revision]`).
    Download {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print a model's hyper-parameters and parameter count, or, given an output file (.parquet,
    /// .npy, .csv), the provenance recorded in it: model, source, SHA-256 of the weights, L,
    /// dimension, dtype, coordinate order and satclip version.
    Info {
        /// Official .ckpt, native model directory, or `default` for the built-in model.
        #[arg(long, default_value = "default")]
        checkpoint: String,
        /// An embedding file written by satclip, or a model directory (as --checkpoint).
        file: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// A model as NAME=SPEC, repeatable; the first is the default. SPEC is anything --checkpoint
    /// takes (default, vit16-l40, microsoft/SatCLIP-ResNet50-L10, a .ckpt, geoclip, sh-l10, ...);
    /// a bare SPEC is served under its own name.
    #[arg(long = "model", default_value = "default")]
    models: Vec<String>,
    /// A batch closes at this many points...
    #[arg(long, default_value_t = 8192)]
    max_batch_points: usize,
    /// ...or this many milliseconds after its first request arrived.
    #[arg(long, default_value_t = 0.5)]
    max_wait_ms: f64,
    /// Points queued per model beyond which requests get 429 (with Retry-After).
    #[arg(long, default_value_t = 1 << 20)]
    max_queue_points: usize,
    /// Larger request bodies get 413.
    #[arg(long, default_value_t = 2 << 20)]
    max_body_bytes: usize,
    /// Seconds after which an unanswered request gets 503.
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
    /// Require `Authorization: Bearer <key>` on every route but /health.
    #[arg(long, env = "SATCLIP_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Candidate points of /locate (embedded once per model, on first use).
    #[arg(long, default_value_t = 100_000)]
    locate_points: usize,
}

#[derive(Subcommand)]
enum CorpusSource {
    /// (lon, lat, RGB patch) pairs from NASA Blue Marble at uniform points over land.
    Bluemarble {
        /// Directory with bmng.jpg and globe_combined_mask_compressed.npz.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Output corpus directory (index.csv + images/).
        #[arg(long, visible_alias = "output")]
        out: PathBuf,
        /// Patches to sample.
        #[arg(long, default_value_t = 100_000)]
        samples: usize,
        /// Seed of every random draw, for reproducible results.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Patch side in pixels.
        #[arg(long, default_value_t = 32)]
        patch: usize,
        /// Ground size of a patch pixel in km.
        #[arg(long, default_value_t = 8.0)]
        pixel_km: f64,
    },
}

#[derive(Subcommand)]
enum TasksAction {
    /// The task suite: air temperature, precipitation, median income, California housing,
    /// elevation, population density, country, biome and ecoregion (see docs/evaluation.md).
    /// Tasks whose sources are missing are skipped with the reason.
    Build {
        /// The folder with the tables no package carries: air-temperature/stationDataAll.csv,
        /// us-counties/{county-centroids,income}.csv and
        /// ecoregions/resolve-ecoregions-2017.geojson.gz; without it, their tasks are skipped.
        #[arg(long)]
        data: Option<PathBuf>,
        /// The folder scripts/install-data.sh fills (land mask, ETOPO5, GeoNames, Natural Earth,
        /// California housing); default $SATCLIP_DATA, else ./data.
        #[arg(long, default_value_os_t = satclip::data_dir())]
        open_data: PathBuf,
        /// Output directory for the task files.
        #[arg(long, visible_alias = "output", default_value = "tasks")]
        out: PathBuf,
        /// Points sampled uniformly over land for the elevation, population, country, biome and
        /// ecoregion tasks.
        #[arg(long, default_value_t = 10_000)]
        land_points: usize,
        /// Seed of every random draw, for reproducible results.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// What both maps take.
#[derive(clap::Args)]
struct MapArgs {
    /// An encoder name (`satclip encoders` lists them) or a checkpoint.
    #[arg(long, default_value = "default")]
    encoder: String,
    /// Output image (.png).
    #[arg(long, visible_alias = "output")]
    out: PathBuf,
    /// Grid step in degrees.
    #[arg(long, default_value_t = 0.5)]
    resolution: f64,
    /// Directory with globe_combined_mask_compressed.npz (scripts/install-data.sh) to draw
    /// oceans; default $SATCLIP_DATA, else ./data.
    #[arg(long, default_value_os_t = satclip::data_dir())]
    data: PathBuf,
}

#[derive(clap::Args)]
struct RasterArgs {
    /// An encoder name (`satclip encoders` lists them) or a checkpoint.
    #[arg(long, visible_alias = "checkpoint", default_value = "default")]
    encoder: String,
    /// The GeoTIFF to write (BigTIFF past 4 GiB).
    #[arg(long, visible_alias = "output")]
    out: PathBuf,
    /// Cell size in degrees (in the --crs's units with --crs); the bounds must span a whole
    /// number of cells.
    #[arg(long, default_value_t = 0.5)]
    resolution: f64,
    /// `WEST,SOUTH,EAST,NORTH` in degrees (in the --crs's units with --crs); default the whole
    /// globe.
    #[arg(long, value_parser = parse_bounds, allow_hyphen_values = true)]
    bounds: Option<[f64; 4]>,
    /// A projected grid: `EPSG:CODE`, e.g. EPSG:32633 (UTM zone 33N) or EPSG:3035 (Europe, LAEA).
    /// Each cell's centre is taken back to lon/lat and embedded; cells outside the projection's
    /// domain stay empty.
    #[arg(long)]
    crs: Option<String>,
    /// Store the COG's bands as int8 with a scale and offset each (a quarter of float32): the
    /// ranges come from the smallest overview widened by a quarter on each side, and the file's
    /// `satclip_int8` metadata states the values clamped and the largest error added.
    #[arg(long)]
    int8: bool,
    /// Leave cells that are mostly water empty (NaN, the nodata value), using the land mask
    /// that scripts/install-data.sh puts in --data; they are not computed.
    #[arg(long)]
    land_only: bool,
    /// Directory with globe_combined_mask_compressed.npz; default $SATCLIP_DATA, else ./data.
    #[arg(long, default_value_os_t = satclip::data_dir())]
    data: PathBuf,
    /// Precision of the computation (the file holds float32 either way).
    #[arg(long, default_value = "f32", value_parser = dtype_parser())]
    dtype: Dtype,
    /// `cog`: a Cloud-Optimized GeoTIFF (128-pixel tiles, a plane per band, overviews);
    /// `striped`: one uncompressed strip per row, bands interleaved, no overviews.
    #[arg(long, default_value = "cog", value_parser = ["cog", "striped"])]
    layout: String,
    /// Compression of a COG's tiles, after the floating-point predictor: zstd, deflate or none.
    #[arg(long, default_value = "zstd")]
    compress: satclip::io::cog::CogCompression,
    /// Map a fine-tuned model's predictions (--encoder names the directory `satclip finetune`
    /// wrote) instead of its embedding: one band of values, or a probability band per class.
    #[arg(long)]
    predict: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Task file (CSV or Parquet: lon, lat, target, optional split); repeatable.
    #[arg(long, required = true)]
    task: Vec<PathBuf>,
    /// An encoder name (`satclip encoders` lists them), a checkpoint, or a CSV/Parquet table of
    /// embeddings computed elsewhere (looked up by lon/lat); `NAME=SPEC` reports it as NAME;
    /// repeatable.
    #[arg(long, required = true)]
    encoder: Vec<String>,
    /// ridge (ridge classifier for classes), logistic (classes only), mlp, knn, finetune (trains
    /// a SatCLIP encoder end to end, as `satclip finetune`; other encoders are skipped);
    /// repeatable.
    #[arg(long, default_value = "ridge")]
    probe: Vec<satclip_eval::Probe>,
    /// regression or classification; default: detected from the targets (and printed).
    #[arg(long)]
    kind: Option<satclip_eval::Kind>,
    /// Training labels to use (learning curve): a number or `all`; repeatable; default all.
    #[arg(long, value_parser = parse_count_or_all)]
    n_train: Vec<usize>,
    /// random, block (whole 10° cells held out), or continent (each continent held out in turn,
    /// reported per continent); ignored when the task has a split column.
    #[arg(long, default_value = "random")]
    split: String,
    /// Regions for the continent split: a zipped shapefile or a GeoJSON, e.g. RESOLVE Ecoregions
    /// 2017 for biogeographic realms; default the Natural Earth countries that
    /// scripts/install-data.sh puts in $SATCLIP_DATA (else ./data), grouped by CONTINENT.
    #[arg(long)]
    regions: Option<PathBuf>,
    /// The regions' property that names the held-out groups; default CONTINENT, else REALM.
    #[arg(long)]
    region_property: Option<String>,
    /// Share of points held out when the task has no split column.
    #[arg(long, default_value_t = 0.5)]
    test_fraction: f64,
    /// Choose ridge's strength and kNN's k by cross-validation over whole cells of DEG degrees
    /// of the training points (spatial blocks) instead of interleaved rows: the honest choice
    /// when the test points lie outside the training region (`--split continent` or `block`),
    /// e.g. `--cv-blocks 20`. Fine-tuning then starts from that ridge head and validates its
    /// epochs on whole cells.
    #[arg(long, value_name = "DEG", value_parser = parse_block_degrees)]
    cv_blocks: Option<satclip_eval::CrossValidation>,
    /// Seed of every random draw, for reproducible results.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// report.json: a list of {task, encoder, probe, split, metric, value, n_train, n_test}.
    #[arg(long, visible_alias = "out")]
    output: Option<PathBuf>,
    /// After the full table, print compact ones: encoders × tasks per probe and split.
    #[arg(long)]
    summary: bool,
}

#[derive(clap::Args)]
struct FinetuneArgs {
    /// Task file (CSV or Parquet: lon, lat, target; with a split column only its train rows are
    /// used).
    #[arg(long)]
    task: PathBuf,
    /// The model to fine-tune: `default` (built in), a released model's name (e.g. vit16-l40) or
    /// a SatCLIP checkpoint (.ckpt or native directory).
    #[arg(long, default_value = "default")]
    checkpoint: String,
    /// New directory for the model (config.json, model.safetensors), its head
    /// (head.safetensors) and the training report (finetune.json).
    #[arg(long, visible_alias = "output")]
    out: PathBuf,
    /// regression or classification; default: detected from the targets.
    #[arg(long)]
    kind: Option<satclip_eval::Kind>,
    #[arg(long, default_value_t = satclip_eval::FinetuneConfig::default().learning_rate)]
    learning_rate: f64,
    #[arg(long, default_value_t = satclip_eval::FinetuneConfig::default().weight_decay)]
    weight_decay: f64,
    #[arg(long, default_value_t = satclip_eval::FinetuneConfig::default().batch_size)]
    batch_size: usize,
    /// At most this many passes over the training labels.
    #[arg(long, default_value_t = satclip_eval::FinetuneConfig::default().max_epochs)]
    epochs: usize,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long, default_value_t = satclip_eval::FinetuneConfig::default().patience)]
    patience: usize,
    /// Share of the labels held out to choose the epoch.
    #[arg(long, default_value_t = satclip_eval::FinetuneConfig::default().val_fraction)]
    val_fraction: f64,
    /// Hold out whole cells of DEG degrees to choose the epoch, and choose the starting ridge
    /// head's strength in such blocks: for a model meant to predict beyond the labelled region.
    #[arg(long, value_name = "DEG", value_parser = parse_block_degrees)]
    cv_blocks: Option<satclip_eval::CrossValidation>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// A model directory written by `satclip finetune`.
    #[arg(long)]
    model: PathBuf,
    /// Points: .csv or .parquet with lon/lat columns, or .npy of shape [N, 2] (lon, lat).
    #[arg(long)]
    input: PathBuf,
    /// .csv or .parquet: the input's columns and `prediction` (and `probability` for classes);
    /// .npy: `[N, 1]` values or `[N, classes]` probabilities (the classes in `<file>.json`).
    #[arg(long, visible_alias = "out")]
    output: PathBuf,
    /// Longitude column (default: lon, lng, long, longitude or lon_deg, any case).
    #[arg(long)]
    lon_col: Option<String>,
    /// Latitude column (default: lat, latitude or lat_deg, any case).
    #[arg(long)]
    lat_col: Option<String>,
    /// Wrap longitudes outside [-180, 180] into range instead of rejecting them.
    #[arg(long)]
    wrap_lon: bool,
}

#[derive(clap::Args)]
struct LatentArgs {
    /// Task file whose points are drawn and whose target colours them (e.g. tasks/biome.csv).
    #[arg(long)]
    task: PathBuf,
    /// An encoder name or a checkpoint, as in `satclip eval`; `NAME=SPEC` titles it NAME.
    #[arg(long, default_value = "default")]
    encoder: String,
    /// tsne (Barnes-Hut t-SNE from a PCA start) or pca (first two principal components).
    #[arg(long, default_value = "tsne")]
    method: satclip_eval::latent::Method,
    /// Draw a seeded sample of at most this many of the task's points.
    #[arg(long, default_value_t = 5000)]
    max_points: usize,
    /// regression or classification; default: detected from the targets.
    #[arg(long)]
    kind: Option<satclip_eval::Kind>,
    /// Seed of the sample and of the separability probe's split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The picture (.png).
    #[arg(long, visible_alias = "output")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct FeaturizeArgs {
    /// Corpus directory (index.csv with lat, lon, fn, and the tiles).
    #[arg(long)]
    corpus: PathBuf,
    /// Cache directory to write.
    #[arg(long, visible_alias = "output")]
    out: PathBuf,
    /// `rcf` (random convolutional features), or an official checkpoint whose image tower to use.
    #[arg(long, default_value = "rcf")]
    tower: String,
    /// Views per tile: view 0 is the tile itself, the others random flips, rotations and blur.
    #[arg(long, default_value_t = 1)]
    views: usize,
    /// Seed of every random draw, for reproducible results.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// RCF: number of filters (features = 2 × filters).
    #[arg(long, default_value_t = 256)]
    rcf_filters: usize,
    /// RCF: filter side in pixels.
    #[arg(long, default_value_t = 3)]
    rcf_kernel: usize,
    /// RCF: the bias applied with both signs.
    #[arg(long, default_value_t = 0.1)]
    rcf_bias: f32,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// TOML file with any of the options below (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Feature cache made by `satclip featurize` (default ./cache). Repeat it to stack caches of
    /// the same points (e.g. patches at two scales): each row's features are theirs side by side.
    #[arg(long)]
    cache: Vec<PathBuf>,
    /// Run directory: checkpoints, metrics.jsonl and the final model (default ./run). A run with the same configuration resumes; another configuration is refused.
    #[arg(long, visible_alias = "output")]
    out: Option<PathBuf>,
    /// Passes over the training set (default 500).
    #[arg(long)]
    epochs: Option<usize>,
    /// Examples per step (default 8192, the paper's).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Contrastive groups of this many examples within a step, their gradients averaged (the
    /// official code: 512, 16 accumulated per step of 8192). Default: the whole batch is one.
    #[arg(long)]
    micro_batch_size: Option<usize>,
    /// AdamW learning rate (default 1e-4).
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Seed of the split, shuffles, jitter, views and dropout (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Spherical-harmonics degree L (default 10; 40 for the L40 models).
    #[arg(long)]
    legendre_polys: Option<usize>,
    /// Positional encoding (official le_type).
    #[arg(long)]
    le_type: Option<String>,
    /// Steps between checkpoints (default 100; one is always written at the end).
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Stop after this many steps (a later run resumes).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Train without the SIREN's dropout.
    #[arg(long)]
    no_dropout: bool,
}

#[derive(clap::Args)]
struct EmbedArgs {
    /// Official .ckpt, native model directory, or an encoder name (`satclip encoders` lists
    /// them; `default` is the built-in satclip-bluemarble-l10 model).
    #[arg(long, visible_alias = "encoder", default_value = "default")]
    checkpoint: String,
    /// Points: .csv or .parquet with lon/lat columns, or .npy of shape [N, 2] (lon, lat). A
    /// directory (hive-partitioned or not) or a glob (`data/year=*/*.parquet`, `**` for any
    /// depth) of Parquet files is a dataset: every file is embedded into the same relative path
    /// under --output, a directory; files already there are skipped, so a rerun resumes.
    #[arg(long)]
    input: String,
    /// Embeddings: .parquet (input columns + `embedding`), .npy [N, dim] or .csv (input columns + emb_0..).
    #[arg(long, visible_alias = "out")]
    output: PathBuf,
    /// Dataset input: files embedded at the same time.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Longitude column (default: lon, lng, long, longitude or lon_deg, any case).
    #[arg(long)]
    lon_col: Option<String>,
    /// Latitude column (default: lat, latitude or lat_deg, any case).
    #[arg(long)]
    lat_col: Option<String>,
    /// Parquet: a column of WKB points to read instead of lon/lat columns (default: the
    /// GeoParquet primary column, when the file has no longitude column).
    #[arg(long, conflicts_with_all = ["lon_col", "lat_col"])]
    geometry_col: Option<String>,
    /// Precision of the computation and of the written embeddings: f64 is the official path,
    /// f32 (float32 matrix products on f64 features, for SatCLIP and GeoCLIP) is about twice as
    /// fast. The unlearned features are computed in f64 and written in this precision.
    #[arg(long, default_value = "f32", value_parser = dtype_parser())]
    dtype: Dtype,
    /// Rows read and embedded per batch.
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    batch_size: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Wrap longitudes outside [-180, 180] into range instead of rejecting them.
    #[arg(long)]
    wrap_lon: bool,
    /// A row without a valid point (empty, null, text, NaN, out of range, not a point): `error`
    /// stops and names it; `null` writes the row with a null embedding (empty cells in CSV, NaN
    /// in NPY) and counts such rows on stderr.
    #[arg(long, default_value = "error", value_parser = on_invalid_parser())]
    on_invalid: OnInvalid,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The service writes no files and stops on signals itself, finishing accepted requests.
    if !matches!(cli.command, Command::Serve(_)) {
        satclip::io::atomic::remove_temporaries_on_signal();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Embed(args) => embed(args),
        Command::Convert { checkpoint, output } => {
            let encoder = satclip::load_encoder(&checkpoint)?;
            satclip::io::native::save(&encoder, &output)?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::EmbedImages { checkpoint, input, output } => {
            let tower = satclip::load_tower(&satclip::resolve_checkpoint(&checkpoint)?)?;
            let files = satclip::collect_tiles(&input)?;
            let n = satclip::embed_images_to_file(&tower, &files, &output)?;
            eprintln!("embedded {n} tiles into {}", output.display());
            Ok(())
        }
        Command::Locate { checkpoint, points, top_k, images } => {
            locate(&satclip::resolve_checkpoint(&checkpoint)?, points as usize, top_k, &images)
        }
        Command::Corpus { source: CorpusSource::Bluemarble { data, out, samples, seed, patch, pixel_km } } => {
            let spec = satclip_train::bluemarble::CorpusSpec { samples, seed, patch, pixel_km, ..Default::default() };
            let bar = progress_bar(Some(samples as u64), "patches");
            let n = satclip_train::bluemarble::build(&data, &out, &spec, &|done| bar.set_position(done as u64))?;
            bar.finish_and_clear();
            eprintln!("wrote {n} patches to {}", out.display());
            Ok(())
        }
        Command::Featurize(args) => featurize(args),
        Command::Tasks { action: TasksAction::Build { data, open_data, out, land_points, seed } } => {
            let started = std::time::Instant::now();
            let spec =
                satclip_eval::build::BuildSpec { shared_data: data, open_data, out: out.clone(), land_points, seed };
            let report = satclip_eval::build::build_tasks(&spec)?;
            for (name, rows) in &report.written {
                eprintln!("wrote {} ({rows} points)", out.join(name).display());
            }
            for (name, why) in &report.skipped {
                eprintln!("skipped {name}: {why}");
            }
            eprintln!("{} tasks in {:.1} s", report.written.len(), started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Eval(args) => eval(args),
        Command::Finetune(args) => finetune(args),
        Command::Predict(args) => predict(args),
        Command::Latent(args) => latent(args),
        Command::Map(map) => draw_map(&map, None),
        Command::Similarity { at, map } => draw_map(&map, Some(at)),
        Command::Train(args) => train(args),
        Command::Raster(args) => raster(args),
        Command::Serve(args) => serve(args),
        Command::Models => {
            print_models();
            Ok(())
        }
        Command::Download { names } => {
            for name in names {
                let path = satclip::resolve_checkpoint(&name)?;
                println!("{name}: {}", path.display());
            }
            Ok(())
        }
        // A model directory given as the file is a checkpoint.
        Command::Info { file: Some(file), .. } if !file.is_dir() => {
            println!("{}", serde_json::to_string_pretty(&satclip::read_provenance(&file)?)?);
            Ok(())
        }
        Command::Info { checkpoint, file } => {
            let spec = file.map_or(checkpoint, |dir| dir.display().to_string());
            let encoder = satclip::load_encoder(&spec)?;
            let params: usize = encoder.state_dict().iter().map(|(_, t)| t.data.len()).sum();
            println!("{}", serde_json::to_string_pretty(encoder.hyperparameters())?);
            println!("input features: {}", encoder.positional_encoding().dim());
            println!("embedding dim: {}", encoder.dim());
            println!("parameters: {params}");
            let report = std::path::Path::new(&spec).join(satclip::finetune::REPORT_FILE);
            if let Ok(text) = std::fs::read(&report) {
                let r: serde_json::Value =
                    serde_json::from_slice(&text).with_context(|| format!("{}", report.display()))?;
                println!(
                    "fine-tuned from {} on {} ({}, {} labels), kept epoch {} of {}; head in {}",
                    r["model"],
                    r["task"],
                    r["kind"].as_str().unwrap_or("?"),
                    r["n_train"].as_u64().unwrap_or(0) + r["n_val"].as_u64().unwrap_or(0),
                    r["best_epoch"],
                    r["epochs_run"],
                    satclip::finetune::HEAD_FILE
                );
            }
            Ok(())
        }
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let models: Vec<(String, String)> = args
        .models
        .iter()
        .map(|m| match m.split_once('=') {
            Some((name, spec)) if !name.is_empty() && !spec.is_empty() => (name.to_string(), spec.to_string()),
            _ => (m.clone(), m.clone()),
        })
        .collect();
    for (what, value) in [("--max-wait-ms", args.max_wait_ms), ("--request-timeout", args.request_timeout)] {
        if !(value.is_finite() && value >= 0.0) {
            anyhow::bail!("{what} must be a number of at least 0, not {value}");
        }
    }
    let config = satclip_serve::ServeConfig {
        max_batch_points: args.max_batch_points.max(1),
        max_wait: std::time::Duration::from_secs_f64(args.max_wait_ms / 1e3),
        max_queue_points: args.max_queue_points.max(1),
        max_body_bytes: args.max_body_bytes,
        request_timeout: std::time::Duration::from_secs_f64(args.request_timeout),
        api_key: args.api_key.filter(|k| !k.is_empty()),
        locate_points: args.locate_points,
    };
    let service = satclip_serve::Service::load(&models, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("could not listen on {}", args.addr))?;
        let names: Vec<String> = service.models().iter().map(|(n, d)| format!("{n} ({d}-d)")).collect();
        eprintln!(
            "serving {} on http://{} (default {}); stop with Ctrl-C or SIGTERM",
            names.join(", "),
            listener.local_addr()?,
            models[0].0
        );
        satclip_serve::serve(listener, &service, shutdown_signal()).await?;
        eprintln!("stopped");
        Ok(())
    })
}

/// Ctrl-C or SIGTERM: stop accepting, finish what was accepted.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

fn print_models() {
    println!("| name | dim | L | tower | size | licence | status | what |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in satclip::registry::catalogue() {
        let e = row.entry;
        let legendre = e.legendre_polys.map_or("-".into(), |l| l.to_string());
        let size = match (row.size_mb, row.path.is_some() || row.status == "built in") {
            (Some(mb), true) => format!("{mb:.1} MB"),
            (Some(mb), false) => format!("~{mb:.0} MB"),
            (None, _) => "-".into(),
        };
        let what = match e.origin {
            satclip::registry::Origin::Hub { repo, .. } => format!("{repo} on the Hugging Face Hub"),
            _ => e.description.to_string(),
        };
        println!(
            "| {} | {} | {legendre} | {} | {size} | {} | {} | {what} |",
            e.name, e.dim, e.tower, e.licence, row.status
        );
    }
    println!();
    println!(
        "Also: a Hub repository (org/name[@revision], hf://org/name/file[@revision]), an official .ckpt or a native"
    );
    println!("model directory. Downloads go to the Hugging Face cache ({}).", satclip::registry::hub_cache().display());
}

fn embed(args: EmbedArgs) -> Result<()> {
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build_global()
            .context("could not start the thread pool")?;
    }
    let encoder = satclip::FeatureEncoder::load(&args.checkpoint)?;
    let options = EmbedOptions {
        read: ReadOptions {
            lon_col: args.lon_col,
            lat_col: args.lat_col,
            geometry_col: args.geometry_col,
            batch_size: args.batch_size as usize,
            wrap_lon: args.wrap_lon,
            on_invalid: args.on_invalid,
        },
        dtype: args.dtype,
    };
    let bar = progress_bar(None, "points");
    if satclip::dataset::is_dataset(&args.input) {
        let summary = satclip::embed_dataset(&encoder, &args.input, &args.output, &options, args.jobs, &|p| {
            if let Progress::Done(n) = p {
                bar.set_position(n)
            }
        })?;
        bar.finish_and_clear();
        eprintln!(
            "embedded {} files ({} points) into {}; {} already there, skipped",
            summary.files,
            summary.rows,
            args.output.display(),
            summary.skipped
        );
        warn_nulls(summary.nulls_message());
        return Ok(());
    }
    let summary = embed_file(&encoder, args.input.as_ref(), &args.output, &options, &mut follow(&bar))?;
    bar.finish_and_clear();
    if std::io::stderr().is_terminal() {
        eprintln!("embedded {} points into {}", summary.rows, args.output.display());
    }
    warn_nulls(summary.nulls_message());
    Ok(())
}

/// Rows written without an embedding are said on stderr, even when it is not a terminal: a
/// pipeline's log is where a user finds out that some of their points were not usable.
fn warn_nulls(message: Option<String>) {
    if let Some(message) = message {
        eprintln!("{message} (--on-invalid null)");
    }
}

fn locate(checkpoint: &std::path::Path, points: usize, top_k: usize, images: &[PathBuf]) -> Result<()> {
    let files = satclip::collect_tiles(images)?;
    let located = satclip::locate(checkpoint, points, top_k, &files)?;
    println!("| tile | rank | lon | lat | cosine | tile lon | tile lat | error (km) |");
    println!("|---|---|---|---|---|---|---|---|");
    for tile in &located {
        let name = tile.file.file_name().unwrap_or_default().to_string_lossy();
        let truth = tile.centre.map_or("- | -".to_string(), |c| format!("{:.4} | {:.4}", c[0], c[1]));
        for (rank, ([lon, lat], score, km)) in tile.candidates.iter().enumerate() {
            let error = km.map_or("-".to_string(), |km| format!("{km:.1}"));
            println!("| {name} | {} | {lon:.4} | {lat:.4} | {score:.4} | {truth} | {error} |", rank + 1);
        }
    }
    let mut errors: Vec<f64> = located.iter().filter_map(|t| t.candidates.first()?.2).collect();
    if !errors.is_empty() {
        errors.sort_by(f64::total_cmp);
        println!(
            "\nmedian error of the best candidate over {} georeferenced tiles: {:.1} km",
            errors.len(),
            errors[errors.len() / 2]
        );
    }
    Ok(())
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(total: Option<u64>, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = format!(
        "{{spinner}} {{human_pos}}/{{human_len}} {unit} [{{elapsed_precise}}, ETA {{eta}}] {{per_sec}} {{wide_bar}} {{msg}}"
    );
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}

/// A library call's progress, shown on `bar`.
fn follow(bar: &ProgressBar) -> impl FnMut(Progress) + '_ {
    |p| match p {
        Progress::Total(n) => bar.set_length(n),
        Progress::Done(n) => bar.set_position(n),
    }
}

fn featurize(args: FeaturizeArgs) -> Result<()> {
    use satclip::vision::FeatureExtractor;
    // A checkpoint's tower is loaded first: a wrong path fails before the corpus is read.
    let tower = match args.tower.as_str() {
        "rcf" => None,
        spec => Some(satclip::load_tower(&satclip::resolve_checkpoint(spec)?)?),
    };
    let dataset = satclip_train::open_corpus(&args.corpus)?;
    let (extractor, describe): (Box<dyn FeatureExtractor>, serde_json::Value) = if let Some(tower) = tower {
        (Box::new(tower), serde_json::json!({ "tower": "checkpoint", "checkpoint": args.tower }))
    } else {
        let rcf = satclip_train::cache::rcf_from_corpus(
            &dataset.entries,
            args.rcf_filters,
            args.rcf_kernel,
            args.rcf_bias,
            args.seed,
        )?;
        let describe = serde_json::json!({ "tower": "rcf", "rcf": rcf });
        (Box::new(rcf), describe)
    };
    let bar = progress_bar(Some(dataset.entries.len() as u64), "tiles");
    let cache = satclip_train::cache::featurize(
        &dataset.entries,
        extractor.as_ref(),
        describe,
        args.views,
        args.seed,
        &args.out,
        &mut |done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    eprintln!(
        "cached {} tiles × {} views × {} features in {}",
        cache.len(),
        cache.meta.views,
        cache.dim(),
        args.out.display()
    );
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            toml::from_str::<satclip_train::trainer::TrainConfig>(&text)
                .with_context(|| format!("{}", path.display()))?
        }
        None => satclip_train::trainer::TrainConfig::default(),
    };
    // Flags override the file.
    if let Some((first, more)) = args.cache.split_first() {
        config.cache = first.clone();
        config.extra_caches = more.to_vec();
    }
    override_with(&mut config.out, args.out);
    override_with(&mut config.epochs, args.epochs);
    override_with(&mut config.batch_size, args.batch_size);
    if args.micro_batch_size.is_some() {
        config.micro_batch_size = args.micro_batch_size;
    }
    override_with(&mut config.learning_rate, args.learning_rate);
    override_with(&mut config.seed, args.seed);
    override_with(&mut config.model.legendre_polys, args.legendre_polys);
    override_with(&mut config.model.le_type, args.le_type);
    override_with(&mut config.checkpoint_every, args.checkpoint_every);
    if args.max_steps.is_some() {
        config.max_steps = args.max_steps;
    }
    if args.no_dropout {
        config.dropout = false;
    }
    match satclip_train::trainer::resume_point(&config)? {
        Some(step) => eprintln!("resuming the run in {} from step {step}", config.out.display()),
        None => eprintln!("starting a new run in {}", config.out.display()),
    }
    let bar = progress_bar(None, "steps");
    let outcome = satclip_train::trainer::train(&config, &mut |m| {
        bar.set_length(m.total_steps);
        bar.set_position(m.step);
        bar.set_message(format!(
            "loss {:.4} scale {:.2}{}",
            m.train_loss,
            m.logit_scale,
            m.val_loss.map(|v| format!(" val {v:.4}")).unwrap_or_default()
        ));
    })?;
    bar.finish_and_clear();
    match outcome.model_dir {
        Some(dir) => eprintln!("trained {} steps; model in {}", outcome.steps, dir.display()),
        None => eprintln!("stopped after {} steps; run again to resume", outcome.steps),
    }
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    use satclip::evaluate::{evaluate_all, split_method, Contender, Event};
    use satclip_eval::suite::{table_lines, EvalConfig, TABLE_HEADER};
    if let Some(output) = &args.output {
        let tasks: Vec<&std::path::Path> = args.task.iter().map(|t| t.as_path()).collect();
        satclip::io::atomic::check_output(output, &tasks)?;
        require_extension(output, &["json"], "reports")?;
    }
    let split = split_method(&args.split, args.regions.as_deref(), args.region_property.as_deref())?;
    let config = EvalConfig {
        probes: args.probe,
        split,
        n_train: args.n_train,
        test_fraction: args.test_fraction,
        seed: args.seed,
        cv: args.cv_blocks.unwrap_or_default(),
    };
    let contenders: Vec<Contender> = args.encoder.iter().map(|e| Contender::parse(e)).collect();
    let started = std::time::Instant::now();
    let bar = progress_bar(Some((args.task.len() * contenders.len()) as u64), "task × encoder");
    let how = if args.kind.is_some() { "as given" } else { "detected" };
    // Lines go out under the bar, never through it; the table starts once every task is read.
    let mut started_table = false;
    let report = evaluate_all(&args.task, args.kind, &contenders, &config, &mut |event| match event {
        Event::Task(task) => {
            if !std::mem::replace(&mut started_table, true) {
                println!("{TABLE_HEADER}");
            }
            bar.suspend(|| eprintln!("{} ({how})", task.describe()));
        }
        Event::Note(line) => bar.suspend(|| eprintln!("{line}")),
        Event::Encoder(label, task) => bar.set_message(format!("{label} on {}", task.path.display())),
        Event::Rows(rows) => {
            bar.suspend(|| table_lines(rows).iter().for_each(|line| println!("{line}")));
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    if args.summary {
        println!("{}", satclip_eval::suite::summary_tables(&report));
    }
    eprintln!("{} results in {:.1} s", report.len(), started.elapsed().as_secs_f64());
    if let Some(path) = args.output {
        satclip::io::atomic::write_bytes(&path, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

fn predict(args: PredictArgs) -> Result<()> {
    let model = satclip::finetune::FineTunedModel::load(&args.model)?;
    let read =
        ReadOptions { lon_col: args.lon_col, lat_col: args.lat_col, wrap_lon: args.wrap_lon, ..ReadOptions::default() };
    let bar = progress_bar(None, "points");
    let summary = satclip::finetune::predict_file(&model, &args.input, &args.output, &read, &mut follow(&bar))?;
    bar.finish_and_clear();
    let r = model.report();
    eprintln!("predicted {} ({}) at {} points into {}", r.task, r.kind, summary.rows, args.output.display());
    Ok(())
}

fn finetune(args: FinetuneArgs) -> Result<()> {
    let config = satclip_eval::FinetuneConfig {
        learning_rate: args.learning_rate,
        weight_decay: args.weight_decay,
        batch_size: args.batch_size,
        max_epochs: args.epochs,
        patience: args.patience,
        val_fraction: args.val_fraction,
        seed: args.seed,
        cv: args.cv_blocks.unwrap_or_default(),
    };
    let started = std::time::Instant::now();
    let r = satclip::finetune::finetune_task(&args.task, args.kind, &args.checkpoint, &config, &args.out)?;
    let kept = match (r.best_epoch, r.lowest_epoch) {
        (0, 0) => "the frozen encoder with its linear probe (no epoch improved on it)".to_string(),
        (0, lowest) => format!(
            "the frozen encoder with its linear probe (epoch {lowest} had a lower validation loss, {:.4}, but not by one \
             standard error)",
            r.val_losses[lowest]
        ),
        (e, _) => format!("epoch {e}"),
    };
    eprintln!(
        "{} labels ({} to train, {} to validate), {} epochs in {:.1} s; kept {kept}: validation loss {:.4} (linear \
         probe {:.4}, head started as {})",
        r.n_train + r.n_val,
        r.n_train,
        r.n_val,
        r.epochs_run,
        started.elapsed().as_secs_f64(),
        r.val_losses[r.best_epoch],
        r.val_losses[0],
        r.head_init
    );
    eprintln!("wrote {} (load it with --checkpoint {0})", args.out.display());
    Ok(())
}

fn latent(args: LatentArgs) -> Result<()> {
    satclip::io::atomic::check_output(&args.out, &[args.task.as_path()])?;
    require_extension(&args.out, &["png"], "latent pictures")?;
    let contender = satclip::evaluate::Contender::parse(&args.encoder);
    let started = std::time::Instant::now();
    let s = &satclip::evaluate::latent(
        &args.task,
        args.kind,
        &contender,
        args.method,
        args.max_points,
        args.seed,
        &args.out,
    )?;
    println!(
        "{}: {} {} of {} points; {}",
        args.out.display(),
        contender.label,
        args.method,
        s.points,
        satclip::evaluate::separability_line(&s.separability)
    );
    eprintln!("{:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

const MAX_MAP_CELLS: usize = 1 << 22;

/// The PCA map of an encoder, or with `at` its similarity to that place.
/// Refuses an output whose extension is not one of `allowed` (compared case-insensitively):
/// the format follows the extension, so `map.jpg` would be a PNG under a wrong name.
fn require_extension(path: &std::path::Path, allowed: &[&str], what: &str) -> Result<()> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if !allowed.contains(&ext.as_str()) {
        let list: Vec<String> = allowed.iter().map(|e| format!(".{e}")).collect();
        anyhow::bail!(
            "{}: {what} are written as {}; give the output that extension",
            path.display(),
            list.join(" or ")
        );
    }
    Ok(())
}

fn draw_map(args: &MapArgs, at: Option<[f64; 2]>) -> Result<()> {
    satclip::io::atomic::check_output(&args.out, &[])?;
    require_extension(&args.out, &["png"], "maps")?;
    let extent = satclip::core::geo::GridExtent::global(args.resolution).map_err(anyhow::Error::msg)?;
    // A map holds every cell's features in memory; finer grids are what `satclip raster` streams.
    if extent.width * extent.height > MAX_MAP_CELLS {
        anyhow::bail!(
            "a {}×{} map is more than {MAX_MAP_CELLS} cells: use a coarser --resolution, or `satclip raster` for fine grids",
            extent.width,
            extent.height
        );
    }
    let mask = land_mask(&args.data)?;
    let encoder = satclip::FeatureEncoder::load(&args.encoder)?;
    let embed = |p: &[[f64; 2]]| encoder.features(p);
    let bar = progress_bar(None, "points");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    match at {
        None => satclip_eval::maps::pca_map(&embed, &extent, mask.as_ref(), &args.out, &progress)?,
        Some(at) => satclip_eval::maps::similarity_map(&embed, at, &extent, mask.as_ref(), &args.out, &progress)?,
    }
    bar.finish_and_clear();
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn dtype_parser() -> impl TypedValueParser<Value = Dtype> {
    clap::builder::PossibleValuesParser::new(["f32", "f64"]).map(|s| s.parse::<Dtype>().expect("a listed dtype"))
}

fn on_invalid_parser() -> impl TypedValueParser<Value = OnInvalid> {
    clap::builder::PossibleValuesParser::new(["error", "null"])
        .map(|s| s.parse::<OnInvalid>().expect("a listed choice"))
}

fn parse_count_or_all(text: &str) -> std::result::Result<usize, String> {
    match text {
        "all" => Ok(usize::MAX),
        n => n.parse().map_err(|_| format!("`{n}` is neither a number nor `all`")),
    }
}

fn parse_block_degrees(text: &str) -> std::result::Result<satclip_eval::CrossValidation, String> {
    text.parse::<f64>()
        .ok()
        .and_then(satclip_eval::CrossValidation::spatial_blocks)
        .ok_or_else(|| format!("`{text}` is not a cell size in degrees (a number above 0, at most 360)"))
}

fn raster(args: RasterArgs) -> Result<()> {
    satclip::io::atomic::check_output(&args.out, &[])?;
    require_extension(&args.out, &["tif", "tiff"], "rasters (GeoTIFF)")?;
    let projection = args.crs.as_deref().map(satclip::projection::Projection::parse).transpose()?;
    let extent = match (&projection, args.bounds) {
        (None, bounds) => {
            let bounds = bounds.unwrap_or([-180.0, -90.0, 180.0, 90.0]);
            satclip::core::geo::GridExtent::new(bounds, args.resolution)
        }
        (Some(_), Some(bounds)) => satclip::core::geo::GridExtent::projected(bounds, args.resolution),
        (Some(p), None) => anyhow::bail!("a grid in EPSG:{} needs --bounds in its units (metres for UTM)", p.epsg()),
    }
    .map_err(anyhow::Error::msg)?;
    let mask = match args.land_only {
        false => None,
        true => {
            let path = args.data.join(satclip::io::landmask::LAND_MASK_FILE);
            let mask = satclip::io::landmask::LandMask::read_npz(&path, 12);
            Some(mask.context("--land-only needs the land mask: run scripts/install-data.sh or pass --data")?)
        }
    };
    let encoder = match args.predict {
        true => satclip::FeatureEncoder::predictions(satclip::finetune::FineTunedModel::load(args.encoder.as_ref())?),
        false => satclip::FeatureEncoder::load(&args.encoder)?,
    };
    let bar = progress_bar(None, "cells");
    if args.int8 && args.layout == "striped" {
        anyhow::bail!("--int8 is for Cloud-Optimized GeoTIFFs (--layout cog)");
    }
    let format = match args.layout.as_str() {
        "striped" => satclip::RasterFormat::Striped,
        _ if args.int8 => satclip::RasterFormat::CogInt8(args.compress),
        _ => satclip::RasterFormat::Cog(args.compress),
    };
    let (projection, land) = (projection.as_ref(), mask.as_ref());
    satclip::embed_raster(&encoder, &extent, projection, land, args.dtype, format, &args.out, &mut follow(&bar))?;
    bar.finish_and_clear();
    eprintln!("wrote {} ({} × {} cells, {} bands)", args.out.display(), extent.width, extent.height, encoder.dim());
    Ok(())
}

fn parse_bounds(text: &str) -> std::result::Result<[f64; 4], String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>().map_err(|_| format!("`{}` is not a number", v.trim())))
        .collect::<std::result::Result<_, _>>()?;
    values.try_into().map_err(|_| "expected WEST,SOUTH,EAST,NORTH, e.g. -125,32,-114,42".to_string())
}

fn parse_lonlat(text: &str) -> std::result::Result<[f64; 2], String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    match parts[..] {
        [lon, lat] => {
            let lon: f64 = lon.parse().map_err(|_| format!("`{lon}` is not a longitude"))?;
            let lat: f64 = lat.parse().map_err(|_| format!("`{lat}` is not a latitude"))?;
            satclip::core::check_coordinate(lon, lat).map_err(|e| e.to_string())?;
            Ok([lon, lat])
        }
        _ => Err("expected LON,LAT, e.g. -122.42,37.77".into()),
    }
}

/// The land mask if it is installed in `data`; maps without it show no oceans.
fn land_mask(data: &std::path::Path) -> Result<Option<satclip::io::landmask::LandMask>> {
    let path = data.join(satclip::io::landmask::LAND_MASK_FILE);
    if !path.exists() {
        eprintln!("note: {} not found (scripts/install-data.sh installs it); drawing without oceans", path.display());
        return Ok(None);
    }
    Ok(Some(satclip::io::landmask::LandMask::read_npz(&path, 12)?))
}

fn override_with<T>(target: &mut T, flag: Option<T>) {
    if let Some(v) = flag {
        *target = v;
    }
}
