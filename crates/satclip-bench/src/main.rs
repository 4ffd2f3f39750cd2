//! `satclip-bench`: throughput of the location encoder and of the training step on this machine,
//! as a Markdown table (or JSON with `--json`, for `bench/compare.sh`). Models have the released
//! architecture (L² → 512 → 512 → 256) with the official random initialisation.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use satclip_core::encoding::SphericalHarmonics;
use satclip_core::kernels::{gemm, MatRef};
use satclip_core::network::{Linear, Network, Siren, Weights};
use satclip_core::train::{AdamW, ClipBatch, ClipModel, INITIAL_LOGIT_SCALE};
use satclip_core::{Hyperparameters, LocationEncoder};

struct Args {
    json: bool,
    quick: bool,
    /// Only the image towers (`--towers`).
    towers_only: bool,
}

fn main() {
    let flag = |f: &str| std::env::args().any(|a| a == f);
    let args = Args { json: flag("--json"), quick: flag("--quick"), towers_only: flag("--towers") };
    let threads = rayon::current_num_threads();
    let peak = gemm_peak_gflops();
    let mut rows = Vec::new();
    let batches: &[usize] = if args.quick { &[1, 1000, 65_536] } else { &[1, 1000, 65_536, 1_000_000] };
    let location_levels: &[usize] = if args.towers_only { &[] } else { &[10, 40] };
    for &l in location_levels {
        let mut rng = Pcg64::seed_from_u64(l as u64);
        let encoder =
            LocationEncoder::init(Hyperparameters { legendre_polys: l, ..Hyperparameters::default() }, &mut rng)
                .expect("released architecture");
        let flops_per_point = 2.0 * (l * l * 512 + 512 * 512 + 512 * 256) as f64;
        for &batch in batches {
            let coords = random_points(&mut rng, batch);
            let mut out = vec![0f32; batch * 256];
            let reps = (200_000 / batch).clamp(1, 2000);
            encoder.embed_into_f32(&coords, &mut out).unwrap();
            let start = Instant::now();
            for _ in 0..reps {
                encoder.embed_into_f32(&coords, &mut out).unwrap();
            }
            let seconds = start.elapsed().as_secs_f64() / reps as f64;
            let points_per_s = batch as f64 / seconds;
            let gflops = points_per_s * flops_per_point / 1e9;
            rows.push(Row {
                what: format!("embed L={l} f32, batch {batch}"),
                key: format!("embed_l{l}_b{batch}"),
                value: points_per_s,
                unit: "points/s",
                gflops: Some(gflops),
            });
        }
    }
    if !args.towers_only {
        let model = synthetic_geoclip();
        // Three branches of 512 → 1024 → 1024 → 1024 → 512.
        let flops_per_point = 3.0 * 2.0 * (512.0 * 1024.0 + 2.0 * 1024.0 * 1024.0 + 1024.0 * 512.0);
        for &batch in &batches[1..batches.len().min(3)] {
            let mut rng = Pcg64::seed_from_u64(batch as u64);
            let coords = random_points(&mut rng, batch);
            let mut out = vec![0f32; batch * satclip_core::geoclip::EMBEDDING_DIM];
            let reps = (100_000 / batch).clamp(1, 100);
            model.embed_into_f32(&coords, &mut out);
            let start = Instant::now();
            for _ in 0..reps {
                model.embed_into_f32(&coords, &mut out);
            }
            let points_per_s = (batch * reps) as f64 / start.elapsed().as_secs_f64();
            rows.push(Row {
                what: format!("GeoCLIP location encoder f32, batch {batch}"),
                key: format!("geoclip_b{batch}"),
                value: points_per_s,
                unit: "points/s",
                gflops: Some(points_per_s * flops_per_point / 1e9),
            });
        }
    }
    for &l in location_levels {
        let seconds = training_step_seconds(l, 8192, if args.quick { 2 } else { 4 });
        let flops = 8192.0 * 3.0 * 2.0 * (l * l * 512 + 512 * 512 + 512 * 256 + 512 * 256) as f64
            + 4.0 * 2.0 * 8192.0 * 8192.0 * 256.0;
        rows.push(Row {
            what: format!("train step L={l} f32, batch 8192"),
            key: format!("train_l{l}_b8192"),
            value: seconds,
            unit: "s/step",
            gflops: Some(flops / seconds / 1e9),
        });
    }
    for tower in ["moco_resnet18", "moco_resnet50", "moco_vit16"] {
        let tiles_per_s = tower_tiles_per_second(tower, if args.quick { 4 } else { 16 });
        rows.push(Row {
            what: format!("image tower {tower}, 13 bands"),
            key: format!("tower_{}", tower.trim_start_matches("moco_")),
            value: tiles_per_s,
            unit: "tiles/s",
            gflops: None,
        });
    }
    let rss_mb = peak_rss_mb();
    if args.json {
        let items: Vec<String> = rows.iter().map(|r| format!("  \"{}\": {}", r.key, r.value)).collect();
        println!(
            "{{\n{},\n  \"gemm_peak_gflops\": {peak},\n  \"threads\": {threads},\n  \"peak_rss_mb\": {rss_mb}\n}}",
            items.join(",\n")
        );
        return;
    }
    println!("machine: {} ({threads} threads)", cpu_model());
    println!("f32 GEMM peak (2048³, all threads): {peak:.1} GFLOP/s\n");
    println!("| workload | result | GFLOP/s | of GEMM peak |\n|---|---|---|---|");
    for r in &rows {
        match r.gflops {
            Some(g) => println!("| {} | {:.4} {} | {g:.1} | {:.0}% |", r.what, r.value, r.unit, 100.0 * g / peak),
            None => println!("| {} | {:.2} {} | | |", r.what, r.value, r.unit),
        }
    }
    println!("\npeak RSS: {rss_mb:.0} MB");
}

struct Row {
    what: String,
    key: String,
    value: f64,
    unit: &'static str,
    gflops: Option<f64>,
}

fn random_points(rng: &mut Pcg64, n: usize) -> Vec<[f64; 2]> {
    (0..n).map(|_| [rng.random_range(-180.0..180.0), rng.random_range(-1.0f64..1.0).asin().to_degrees()]).collect()
}

/// GeoCLIP's location encoder with random weights in the layout of its state dict (speed does
/// not depend on the values).
fn synthetic_geoclip() -> satclip_core::geoclip::GeoClip {
    use satclip_core::tensor::{Tensor, TensorMap};
    let mut rng = Pcg64::seed_from_u64(7);
    let mut tensors = TensorMap::new();
    let mut put = |name: String, shape: Vec<usize>, bound: f64| {
        let data = (0..shape.iter().product()).map(|_| rng.random_range(-bound..bound)).collect();
        tensors.insert(name, Tensor::new(shape, data).expect("shape matches"));
    };
    for (i, sigma) in [1.0, 16.0, 256.0].into_iter().enumerate() {
        put(format!("LocEnc{i}.capsule.0.b"), vec![256, 2], sigma);
        for (layer, din, dout) in
            [("capsule.1", 512, 1024), ("capsule.3", 1024, 1024), ("capsule.5", 1024, 1024), ("head.0", 1024, 512)]
        {
            let bound = 1.0 / (din as f64).sqrt();
            put(format!("LocEnc{i}.{layer}.weight"), vec![dout, din], bound);
            put(format!("LocEnc{i}.{layer}.bias"), vec![dout], bound);
        }
    }
    satclip_core::geoclip::GeoClip::from_tensors(tensors).expect("GeoCLIP's layout")
}

/// Best of a few multi-threaded 2048³ f32 products.
fn gemm_peak_gflops() -> f64 {
    let n = 2048;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; n * n];
    let mut best = f64::MAX;
    for _ in 0..4 {
        let start = Instant::now();
        gemm(&mut c, MatRef::row_major(&a, n, n), MatRef::row_major(&b, n, n), 1.0, false, true);
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Median seconds of one full step (forward, loss, backward, AdamW) with dropout on and a
/// ResNet18-sized projection head (512 → 256) on random pooled image features.
fn training_step_seconds(l: usize, n: usize, reps: usize) -> f64 {
    let mut rng = Pcg64::seed_from_u64(100 + l as u64);
    let sh = SphericalHarmonics::new(l).unwrap();
    let coords = random_points(&mut rng, n);
    let mut features = vec![0f64; n * sh.dim()];
    for (row, &[lon, lat]) in features.chunks_exact_mut(sh.dim()).zip(&coords) {
        sh.encode_into(lon, lat, row);
    }
    let features: Vec<f32> = features.iter().map(|v| *v as f32).collect();
    let images: Vec<f32> = (0..n * 512).map(|_| rng.random_range(0.0..1.0)).collect();
    let siren =
        Siren::new(&mut Weights::Init(&mut rng), sh.dim(), 512, 256, 2).expect("released architecture").cast::<f32>();
    let head = Linear::torch_default(&mut rng, 512, 256, true).cast::<f32>();
    let mut model =
        ClipModel { location: Network::Siren(siren), head: Some(head), logit_scale: INITIAL_LOGIT_SCALE as f32 };
    let mut optimizer = AdamW::satclip();
    let mut times = Vec::new();
    for rep in 0..=reps {
        let start = Instant::now();
        let batch = ClipBatch { location_features: &features, image_features: &images, n };
        let out = model.step(&batch, Some(&mut rng));
        optimizer.update(model.parameters_mut(), &out.gradients);
        if rep > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Tiles per second for a tower with random weights in the official layout: `n` tiles of the
/// tower's input size, embedded in parallel (one tile per worker at a time).
fn tower_tiles_per_second(vision_layers: &str, n: usize) -> f64 {
    use rayon::prelude::*;
    let weights = satclip_vision::synthetic::synthetic_tower_weights(vision_layers, 5).expect("known tower");
    let tower = satclip_vision::Tower::load(vision_layers, weights).expect("synthetic weights load");
    let size = tower.input_size();
    let image = satclip_vision::Image {
        channels: satclip_vision::IN_CHANNELS,
        height: size,
        width: size,
        data: (0..satclip_vision::IN_CHANNELS * size * size).map(|i| (i % 251) as f32 / 1000.0).collect(),
    };
    let run = || (0..n).into_par_iter().map(|_| tower.embed(&image)[0]).sum::<f32>();
    run();
    let start = Instant::now();
    std::hint::black_box(run());
    n as f64 / start.elapsed().as_secs_f64()
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
