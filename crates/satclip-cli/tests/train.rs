//! `satclip train` killed with SIGKILL mid-run and started again finishes with the same loss
//! curve and weights as an uninterrupted run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use satclip_testkit::synthetic_corpus;

fn satclip() -> Command {
    Command::new(env!("CARGO_BIN_EXE_satclip"))
}

fn losses(out: &Path) -> Vec<(u64, String, String)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["train_loss"].to_string(), v["val_loss"].to_string())
        })
        .collect()
}

#[test]
fn kill_9_then_resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    synthetic_corpus(&corpus, 200);
    std::fs::write(corpus.join("satclip-corpus.json"), "{}").unwrap();
    let cache = dir.path().join("cache");
    let ok = satclip()
        .args([
            "featurize",
            "--corpus",
            corpus.to_str().unwrap(),
            "--out",
            cache.to_str().unwrap(),
            "--rcf-filters",
            "16",
            "--views",
            "2",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let config = dir.path().join("train.toml");
    std::fs::write(
        &config,
        format!(
            "cache = {:?}\nepochs = 150\nbatch_size = 45\ncheckpoint_every = 5\nlearning_rate = 0.001\n\n[model]\nlegendre_polys = 4\ncapacity = 64\nembed_dim = 16\n",
            cache.to_str().unwrap()
        ),
    )
    .unwrap();
    let run = |out: &Path| {
        let mut cmd = satclip();
        cmd.args(["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        cmd
    };

    let whole = dir.path().join("whole");
    assert!(run(&whole).status().unwrap().success());

    let killed = dir.path().join("killed");
    let mut child = run(&killed).spawn().unwrap();
    let latest = killed.join("checkpoint/latest.json");
    let start = Instant::now();
    while !latest.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let interrupted_at = losses(&killed).len();
    assert!(interrupted_at < 600, "the kill came after the run had finished");
    let resumed = run(&killed).output().unwrap();
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success() && said.contains("resuming the run in") && said.contains("from step"), "{said}");

    // Another configuration never continues (or overwrites) the run silently.
    let other = run(&killed).args(["--learning-rate", "0.01"]).output().unwrap();
    let said = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success() && said.contains("learning_rate: 0.001 in the run, 0.01 now"), "{said}");

    let (a, b) = (losses(&whole), losses(&killed));
    assert_eq!(a.len(), 600, "150 epochs × 4 steps");
    assert_eq!(a, b, "the resumed run's curve (interrupted after {interrupted_at} logged steps) differs");
    assert_eq!(
        std::fs::read(whole.join("model/model.safetensors")).unwrap(),
        std::fs::read(killed.join("model/model.safetensors")).unwrap()
    );
}
