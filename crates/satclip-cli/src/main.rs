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
