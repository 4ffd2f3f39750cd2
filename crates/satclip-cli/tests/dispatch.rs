//! One binary for every x86-64 CPU: the same `satclip` run under QEMU as a CPU without AVX-512
//! (Haswell: AVX2 + FMA) and as one without AVX at all (Nehalem: the portable kernels) gives the
//! f32 embeddings of this machine within 1e-6 of each embedding's norm. QEMU (Debian's
//! `qemu-user`) emulates the CPU, so the kernel choice is made exactly as on such hardware.

use std::path::Path;
use std::process::Command;

use satclip_testkit::{read_npy, shared_file, skip};

/// `satclip embed` of `input`, natively or under QEMU as `cpu`.
fn embed(cpu: Option<&str>, checkpoint: &Path, input: &Path, output: &Path) {
    let binary = env!("CARGO_BIN_EXE_satclip");
    let mut command = match cpu {
        Some(cpu) => {
            let mut qemu = Command::new("qemu-x86_64");
            qemu.args(["-cpu", cpu, binary]);
            qemu
        }
        None => Command::new(binary),
    };
    let paths = [checkpoint, input, output].map(|p| p.to_str().unwrap());
    let out = command.args(["embed", "--checkpoint", paths[0], "--input", paths[1], "--output", paths[2]]);
    let out = out.output().expect("runs");
    assert!(out.status.success(), "{cpu:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn emulated_cpus_without_avx512_or_avx_give_the_same_embeddings() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    if Command::new("qemu-x86_64").arg("--version").output().is_err() {
        skip("qemu-x86_64 is not installed (Debian's qemu-user), so no other CPU can be emulated");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("points.csv");
    let mut csv = String::from("lon,lat\n");
    for i in 0..300 {
        let (lon, lat) = (-180.0 + (i as f64 * 137.508) % 360.0, ((2.0 * i as f64 + 1.0) / 300.0 - 1.0).asin());
        csv.push_str(&format!("{lon},{}\n", lat.to_degrees()));
    }
    std::fs::write(&input, csv).unwrap();
    let mut models = vec![("built-in L=10", Path::new("default").to_path_buf())];
    if let Some(l40) = shared_file("fixtures/satclip-vit16-l40.ckpt") {
        models.push(("ViT16-L40 fixture", l40));
    }
    for (name, model) in &models {
        let native = dir.path().join("native.npy");
        embed(None, model, &input, &native);
        let (rows, dim, reference) = read_npy(&native);
        for cpu in ["Haswell", "Nehalem"] {
            let emulated = dir.path().join(format!("{cpu}.npy"));
            embed(Some(cpu), model, &input, &emulated);
            let (_, _, got) = read_npy(&emulated);
            let mut worst = 0.0f64;
            for r in 0..rows {
                let (a, b) = (&reference[r * dim..(r + 1) * dim], &got[r * dim..(r + 1) * dim]);
                let norm = a.iter().map(|v| v * v).sum::<f64>().sqrt();
                worst = worst.max(a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / norm);
            }
            eprintln!("{name} as {cpu}: max difference relative to the embedding norm {worst:.1e}");
            assert!(worst <= 1e-6, "{name} as {cpu}: {worst:e}");
        }
    }
}
