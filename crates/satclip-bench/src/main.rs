//! `satclip-bench`: throughput of the location encoder and of the training step on this machine,
//! as a Markdown table (or JSON with `--json`, for `bench/compare.sh`). Models have the released
//! architecture (L² → 512 → 512 → 256) with the official random initialisation.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use satclip_core::encoding::SphericalHarmonics;
use satclip_core::kernels::{gemm, Dtype, Float, MatRef};
use satclip_core::network::{Linear, Network, Siren, Weights};
use satclip_core::train::{AdamW, ClipBatch, ClipModel, INITIAL_LOGIT_SCALE};
use satclip_core::{Hyperparameters, LocationEncoder};
use satclip_train::trainer::grouped_step;

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
    let peak = gemm_peak_gflops::<f32>();
    let peak_f64 = gemm_peak_gflops::<f64>();
    let fma = fma_peaks_gflops();
    let mut rows = Vec::new();
    if !args.towers_only {
        tile_rows(&mut rows);
    }
    if flag("--kernels") {
        rows.iter().for_each(|r| println!("| {} | {:.1} {} |", r.what, r.value, r.unit));
        return;
    }
    let batches: &[usize] = if args.quick { &[1, 1000, 65_536] } else { &[1, 1000, 65_536, 1_000_000] };
    let location_levels: &[usize] = if args.towers_only { &[] } else { &[10, 40] };
    if flag("--train") {
        for &l in location_levels {
            for group in [8192, 512] {
                let seconds = training_step_seconds(l, 8192, group, 4);
                println!(
                    "| {} | {seconds:.4} s/step | {:.1} GFLOP/s |",
                    train_label(l, group),
                    training_step_flops(l, group) / seconds / 1e9
                );
            }
        }
        return;
    }
    for &l in location_levels {
        let mut rng = Pcg64::seed_from_u64(l as u64);
        let encoder =
            LocationEncoder::init(Hyperparameters { legendre_polys: l, ..Hyperparameters::default() }, &mut rng)
                .expect("released architecture");
        let flops_per_point = 2.0 * (l * l * 512 + 512 * 512 + 512 * 256) as f64;
        for &batch in batches {
            let coords = random_points(&mut rng, batch);
            let mut out = vec![0f32; batch * 256];
            let reps = (100_000 / batch).clamp(1, 1000);
            let seconds = median_seconds(reps, || encoder.embed_into_f32(&coords, &mut out).unwrap());
            let points_per_s = batch as f64 / seconds;
            let gflops = points_per_s * flops_per_point / 1e9;
            rows.push(Row {
                what: format!("embed L={l} f32, batch {batch}"),
                key: format!("embed_l{l}_b{batch}"),
                value: points_per_s,
                unit: "points/s",
                gflops: Some(gflops),
                dtype: Dtype::F32,
            });
        }
        // The f64 path (`--dtype f64`), the official precision: one large batch.
        let batch = 65_536;
        let coords = random_points(&mut rng, batch);
        let mut out = vec![0f64; batch * 256];
        let points_per_s = batch as f64 / median_seconds(1, || encoder.embed_into(&coords, &mut out).unwrap());
        rows.push(Row {
            what: format!("embed L={l} f64, batch {batch}"),
            key: format!("embed_l{l}_f64_b{batch}"),
            value: points_per_s,
            unit: "points/s",
            gflops: Some(points_per_s * flops_per_point / 1e9),
            dtype: Dtype::F64,
        });
    }
    if !args.towers_only {
        let model = synthetic_geoclip();
        // Three branches of 512 → 1024 → 1024 → 1024 → 512.
        let flops_per_point = 3.0 * 2.0 * (512.0 * 1024.0 + 2.0 * 1024.0 * 1024.0 + 1024.0 * 512.0);
        for &batch in &batches[1..batches.len().min(3)] {
            let mut rng = Pcg64::seed_from_u64(batch as u64);
            let coords = random_points(&mut rng, batch);
            let mut out = vec![0f32; batch * satclip_core::geoclip::EMBEDDING_DIM];
            let reps = (50_000 / batch).clamp(1, 100);
            let points_per_s = batch as f64 / median_seconds(reps, || model.embed_into_f32(&coords, &mut out));
            rows.push(Row {
                what: format!("GeoCLIP location encoder f32, batch {batch}"),
                key: format!("geoclip_b{batch}"),
                value: points_per_s,
                unit: "points/s",
                gflops: Some(points_per_s * flops_per_point / 1e9),
                dtype: Dtype::F32,
            });
        }
    }
    if flag("--embed") {
        println!("f32 GEMM peak {peak:.1} GFLOP/s, f64 {peak_f64:.1} GFLOP/s");
        rows.iter().for_each(|r| {
            println!("| {} | {:.0} {} | {:.1} GFLOP/s |", r.what, r.value, r.unit, r.gflops.unwrap_or(0.0))
        });
        return;
    }
    for &l in location_levels {
        for group in [8192, 512] {
            let seconds = training_step_seconds(l, 8192, group, if args.quick { 2 } else { 4 });
            rows.push(Row {
                what: train_label(l, group),
                key: if group == 8192 { format!("train_l{l}_b8192") } else { format!("train_l{l}_b8192_g{group}") },
                value: seconds,
                unit: "s/step",
                gflops: Some(training_step_flops(l, group) / seconds / 1e9),
                dtype: Dtype::F32,
            });
        }
    }
    for tower in ["moco_resnet18", "moco_resnet50", "moco_vit16"] {
        let (tiles_per_s, flops_per_tile) = tower_tiles_per_second(tower, if args.quick { 4 } else { 16 });
        rows.push(Row {
            what: format!("image tower {tower}, 13 bands, {:.2} GFLOP per tile", flops_per_tile / 1e9),
            key: format!("tower_{}", tower.trim_start_matches("moco_")),
            value: tiles_per_s,
            unit: "tiles/s",
            gflops: Some(tiles_per_s * flops_per_tile / 1e9),
            dtype: Dtype::F32,
        });
    }
    let rss_mb = peak_rss_mb();
    if args.json {
        let items: Vec<String> = rows.iter().map(|r| format!("  \"{}\": {}", r.key, r.value)).collect();
        let fma_items: Vec<String> = fma.iter().map(|(isa, g)| format!("  \"fma_peak_{isa}_gflops\": {g}")).collect();
        println!(
            "{{\n{},\n{}\n  \"gemm_peak_gflops\": {peak},\n  \"gemm_peak_f64_gflops\": {peak_f64},\n  \"gemm_isa\": \"{}\",\n  \"threads\": {threads},\n  \"peak_rss_mb\": {rss_mb}\n}}",
            items.join(",\n"),
            fma_items.iter().map(|i| format!("{i},")).collect::<String>(),
            satclip_core::kernels::gemm_isa()
        );
        return;
    }
    println!("machine: {} ({threads} threads)", cpu_model());
    for (isa, g) in &fma {
        println!("f32 FMA peak with {isa} (register-only chains, all threads): {g:.1} GFLOP/s");
    }
    println!(
        "f32 GEMM peak (2048³, all threads, gemm's {} kernels, median of 7): {peak:.1} GFLOP/s; f64: {peak_f64:.1}\n",
        satclip_core::kernels::gemm_isa()
    );
    println!("| workload | result | GFLOP/s | of GEMM peak |\n|---|---|---|---|");
    for r in &rows {
        match r.gflops {
            Some(g) => {
                let of = 100.0 * g / if r.dtype == Dtype::F64 { peak_f64 } else { peak };
                println!("| {} | {:.4} {} | {g:.1} | {of:.0}% |", r.what, r.value, r.unit)
            }
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
    /// The precision of the arithmetic, and so the GEMM peak the rate is a fraction of.
    dtype: Dtype,
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

/// Median of seven multi-threaded 2048³ f32 products, after one to warm up.
fn gemm_peak_gflops<T: Float>() -> f64 {
    let n = 2048;
    let a: Vec<T> = (0..n * n).map(|i| T::from_f64((i % 7) as f64 * 0.1)).collect();
    let b: Vec<T> = (0..n * n).map(|i| T::from_f64((i % 5) as f64 * 0.1)).collect();
    let mut c = vec![T::ZERO; n * n];
    let seconds = median_seconds(1, || {
        gemm(&mut c, MatRef::row_major(&a, n, n), MatRef::row_major(&b, n, n), T::ONE, false, true);
    });
    2.0 * (n * n * n) as f64 / seconds / 1e9
}

/// Median over seven runs (after one to warm up) of the seconds one call of `f` takes, each run
/// timing `reps` calls.
fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                f();
            }
            start.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The ceiling no kernel can pass: every thread runs twelve independent chains of fused
/// multiply-adds on registers, with no memory traffic, for each vector width the CPU has.
fn fma_peaks_gflops() -> Vec<(&'static str, f64)> {
    #[cfg(target_arch = "x86_64")]
    {
        use rayon::prelude::*;
        use std::arch::x86_64::*;
        const CHAINS: usize = 12;
        const ITERS: usize = 20_000_000;
        #[target_feature(enable = "avx512f")]
        unsafe fn chains512() -> f32 {
            let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            let mut acc = [_mm512_set1_ps(1.0); CHAINS];
            for _ in 0..ITERS {
                for r in acc.iter_mut() {
                    *r = _mm512_fmadd_ps(*r, a, b);
                }
            }
            acc.iter().map(|r| _mm512_reduce_add_ps(*r)).sum()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn chains256() -> f32 {
            let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            let mut acc = [_mm256_set1_ps(1.0); CHAINS];
            for _ in 0..ITERS {
                for r in acc.iter_mut() {
                    *r = _mm256_fmadd_ps(*r, a, b);
                }
            }
            let mut lanes = [0f32; 8];
            acc.iter()
                .map(|r| {
                    _mm256_storeu_ps(lanes.as_mut_ptr(), *r);
                    lanes.iter().sum::<f32>()
                })
                .sum()
        }
        let threads = rayon::current_num_threads();
        let run = |lanes: usize, f: unsafe fn() -> f32| {
            let start = Instant::now();
            // SAFETY: called only where the CPU has the features `f` was compiled for.
            std::hint::black_box((0..threads).into_par_iter().map(|_| unsafe { f() }).sum::<f32>());
            (threads * ITERS * CHAINS * lanes * 2) as f64 / start.elapsed().as_secs_f64() / 1e9
        };
        let mut peaks = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            peaks.push(("avx512", run(16, chains512)));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            peaks.push(("avx2", run(8, chains256)));
        }
        peaks
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

/// One thread's GEMM at the shapes of the encoder's tiles: a tile of rows through each SIREN
/// layer (L = 10 and 40 inputs, 512 hidden, 256 out), for tile heights around the default.
fn tile_rows(rows: &mut Vec<Row>) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
    for l in [10, 40] {
        let sh = SphericalHarmonics::new(l).expect("a valid degree");
        let points = random_points(&mut Pcg64::seed_from_u64(l as u64), 4096);
        // One point at a time (a single request's latency), and 16 at a time as the encoder
        // computes them, eight in the lanes of each vector.
        for (group, how, key) in [(1, "one point", format!("sh_l{l}")), (16, "16 points", format!("sh_l{l}_batch"))] {
            let mut out = vec![0.0; group * sh.dim()];
            let seconds = median_seconds(1, || {
                for points in points.chunks(group) {
                    sh.encode_batch(points, &mut out[..points.len() * sh.dim()]);
                    std::hint::black_box(&out);
                }
            });
            rows.push(Row {
                what: format!("spherical harmonics L={l} f64, {how} at a time, one thread"),
                key,
                value: points.len() as f64 / seconds,
                unit: "points/s",
                gflops: None,
                dtype: Dtype::F64,
            });
        }
    }
    for tile in [128, 256] {
        for (k, n) in [(100, 512), (1600, 512), (512, 512), (512, 256)] {
            let a: Vec<f32> = (0..tile * k).map(|i| (i % 7) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
            let mut c = vec![0f32; tile * n];
            // The weights as `Linear` stores them, [n × k], read transposed; and as a row-major [k × n].
            for (layout, rhs) in [("Wᵀ", MatRef::row_major(&b, n, k).t()), ("row-major", MatRef::row_major(&b, k, n))]
            {
                let seconds = pool.install(|| {
                    median_seconds((2_000_000_000 / (2 * tile * k * n)).max(1), || {
                        gemm(&mut c, MatRef::row_major(&a, tile, k), rhs, 1.0, false, false);
                    })
                });
                let gflops = 2.0 * (tile * k * n) as f64 / seconds / 1e9;
                rows.push(Row {
                    what: format!("GEMM one thread, {tile}×{k} · {k}×{n} ({layout})"),
                    key: format!("tile_{tile}_{k}x{n}_{}", if layout == "Wᵀ" { "t" } else { "n" }),
                    value: gflops,
                    unit: "GFLOP/s",
                    gflops: Some(gflops * rayon::current_num_threads() as f64),
                    dtype: Dtype::F32,
                });
            }
        }
    }
}

fn train_label(l: usize, group: usize) -> String {
    if group == 8192 {
        format!("train step L={l} f32, batch 8192")
    } else {
        format!("train step L={l} f32, batch 8192 in contrastive groups of {group}")
    }
}

/// FLOPs of a step on 8192 rows: the network and head three times (forward, two backward
/// products), and the loss's four products of a group's logits (forward and backward, both sides).
fn training_step_flops(l: usize, group: usize) -> f64 {
    8192.0 * 3.0 * 2.0 * (l * l * 512 + 512 * 512 + 512 * 256 + 512 * 256) as f64
        + 4.0 * 2.0 * 8192.0 * group as f64 * 256.0
}

/// Median seconds of one full step (forward, loss, backward, AdamW) on `n` rows split into
/// contrastive groups of `group` (`satclip train --micro-batch-size`), with dropout on and a
/// ResNet18-sized projection head (512 → 256) on random pooled image features.
fn training_step_seconds(l: usize, n: usize, group: usize, reps: usize) -> f64 {
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
    let mut model = ClipModel::new(Network::Siren(siren), Some(head), INITIAL_LOGIT_SCALE as f32);
    let mut optimizer = AdamW::satclip();
    let mut times = Vec::new();
    for rep in 0..=reps {
        let start = Instant::now();
        let batch = ClipBatch { location_features: &features, image_features: &images, n };
        let (_, gradients) = grouped_step(&model, &batch, group, Some(&mut rng));
        optimizer.update(model.parameters_mut(), &gradients);
        if rep > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Tiles per second for a tower with random weights in the official layout: `n` tiles of the
/// tower's input size, embedded in parallel (one tile per worker at a time); and the FLOPs of one
/// tile.
fn tower_tiles_per_second(vision_layers: &str, n: usize) -> (f64, f64) {
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
    // The FLOPs of one tile, counted by the GEMM itself (2 per multiply-add; the elementwise work
    // of batch norm, activations and softmax is not counted).
    let before = satclip_core::kernels::gemm_flops();
    std::hint::black_box(tower.embed(&image));
    let flops_per_tile = (satclip_core::kernels::gemm_flops() - before) as f64;
    run();
    let start = Instant::now();
    std::hint::black_box(run());
    (n as f64 / start.elapsed().as_secs_f64(), flops_per_tile)
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
