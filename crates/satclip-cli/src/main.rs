//! `satclip`: argument parsing and progress only; the work lives in the library crates.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use satclip::prelude::*;
use satclip::{embed_file, EmbedOptions, OutputDtype, Progress, ReadOptions};

#[derive(Parser)]
#[command(name = "satclip", version, about = "SatCLIP location embeddings: official checkpoints, no Python")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed (lon, lat) points from a CSV, Parquet or NPY file.
    Embed(EmbedArgs),
    /// Convert an official Lightning .ckpt to the native format (config.json + model.safetensors).
    Convert {
        /// Official SatCLIP checkpoint (.ckpt).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Directory to write config.json and model.safetensors into.
        #[arg(long)]
        output: PathBuf,
    },
    /// Embed Sentinel-2 tiles (12-band S2-100K GeoTIFFs) with a checkpoint's image tower.
    EmbedImages {
        /// Official SatCLIP checkpoint (.ckpt) with its image tower.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Tiles, or directories of .tif tiles.
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        /// .npy [N, 256], or .parquet / .csv with file, lon, lat (tile centre) and the embedding.
        #[arg(long)]
        output: PathBuf,
    },
    /// Localise tiles on the globe: their image embeddings against the location embeddings of a
    /// Fibonacci lattice (official notebook B02).
    Locate {
        /// Official SatCLIP checkpoint (.ckpt).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Candidate points on the sphere.
        #[arg(long, default_value_t = 100_000)]
        points: usize,
        /// Candidates reported per tile.
        #[arg(long, default_value_t = 1)]
        top_k: usize,
        /// Tiles, or directories of .tif tiles.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Print a model's hyper-parameters and parameter count.
    Info {
        /// Official .ckpt or native model directory.
        #[arg(long)]
        checkpoint: PathBuf,
    },
}

#[derive(clap::Args)]
struct EmbedArgs {
    /// Official .ckpt or native model directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Points: .csv or .parquet with lon/lat columns, or .npy of shape [N, 2] (lon, lat).
    #[arg(long)]
    input: PathBuf,
    /// Embeddings: .parquet (input columns + `embedding`), .npy [N, dim] or .csv (input columns + emb_0..).
    #[arg(long)]
    output: PathBuf,
    /// Longitude column (default: lon, lng, long, longitude or lon_deg, any case).
    #[arg(long)]
    lon_col: Option<String>,
    /// Latitude column (default: lat, latitude or lat_deg, any case).
    #[arg(long)]
    lat_col: Option<String>,
    /// Precision of the computation and of the written embeddings: f64 is the official path,
    /// f32 (float32 matrix products on f64 features) is about twice as fast.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
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
}

#[derive(Clone, Copy, ValueEnum)]
enum Dtype {
    F32,
    F64,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
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
            let encoder = LocationEncoder::from_checkpoint(&checkpoint)?;
            satclip::io::native::save(&encoder, &output)?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::EmbedImages { checkpoint, input, output } => {
            let tower = satclip::load_tower(&checkpoint)?;
            let files = satclip::collect_tiles(&input)?;
            let n = satclip::embed_images_to_file(&tower, &files, &output)?;
            eprintln!("embedded {n} tiles into {}", output.display());
            Ok(())
        }
        Command::Locate { checkpoint, points, top_k, images } => locate(&checkpoint, points, top_k, &images),
        Command::Info { checkpoint } => {
            let encoder = LocationEncoder::from_checkpoint(&checkpoint)?;
            let params: usize = encoder.state_dict().iter().map(|(_, t)| t.data.len()).sum();
            println!("{}", serde_json::to_string_pretty(encoder.hyperparameters())?);
            println!("input features: {}", encoder.positional_encoding().dim());
            println!("embedding dim: {}", encoder.dim());
            println!("parameters: {params}");
            Ok(())
        }
    }
}

fn embed(args: EmbedArgs) -> Result<()> {
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build_global()
            .context("could not start the thread pool")?;
    }
    let encoder = LocationEncoder::from_checkpoint(&args.checkpoint)?;
    let options = EmbedOptions {
        read: ReadOptions {
            lon_col: args.lon_col,
            lat_col: args.lat_col,
            batch_size: args.batch_size as usize,
            wrap_lon: args.wrap_lon,
        },
        dtype: match args.dtype {
            Dtype::F32 => OutputDtype::F32,
            Dtype::F64 => OutputDtype::F64,
        },
    };
    let interactive = std::io::stderr().is_terminal();
    let bar = if interactive {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {human_pos}/{human_len} points [{elapsed_precise}] {per_sec} {wide_bar}",
        )
        .expect("valid template"),
    );
    let mut on_progress = |p: Progress| match p {
        Progress::Total(n) => bar.set_length(n),
        Progress::Done(n) => bar.set_position(n),
    };
    let summary = embed_file(&encoder, &args.input, &args.output, &options, &mut on_progress)?;
    bar.finish_and_clear();
    if interactive {
        eprintln!("embedded {} points into {}", summary.rows, args.output.display());
    }
    Ok(())
}

fn locate(checkpoint: &std::path::Path, points: usize, top_k: usize, images: &[PathBuf]) -> Result<()> {
    let encoder = LocationEncoder::from_checkpoint(checkpoint)?;
    let tower = satclip::load_tower(checkpoint)?;
    let files = satclip::collect_tiles(images)?;
    let locator = satclip::Locator::new(&encoder, satclip::core::geo::fibonacci_lattice(points.max(1)))?;
    let embeddings = satclip::embed_images(&tower, &files)?;
    println!("| tile | rank | lon | lat | cosine | tile lon | tile lat | error (km) |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut errors = Vec::new();
    for (file, (embedding, centre)) in files.iter().zip(&embeddings) {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        for (rank, ([lon, lat], score)) in locator.top_k(embedding, top_k).into_iter().enumerate() {
            let (truth, error) = match centre {
                Some(c) => {
                    let km = satclip::core::geo::haversine_km(*c, [lon, lat]);
                    if rank == 0 {
                        errors.push(km);
                    }
                    (format!("{:.4} | {:.4}", c[0], c[1]), format!("{km:.1}"))
                }
                None => ("- | -".to_string(), "-".to_string()),
            };
            println!("| {name} | {} | {lon:.4} | {lat:.4} | {score:.4} | {truth} | {error} |", rank + 1);
        }
    }
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
