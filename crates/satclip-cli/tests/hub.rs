//! Released models by name, against a stand-in for the Hugging Face Hub on 127.0.0.1 serving the
//! fixture checkpoint as `microsoft/SatCLIP-ViT16-L40`.

use std::path::Path;
use std::process::{Command, Output};

use satclip_testkit::hub::{HubEntry, HubStandIn};

const COMMIT: &str = "0ef2acc0b91d3c8cfdf4a0cc03207095989287ab";

fn satclip(args: &[&str], endpoint: &str, cache: &Path, offline: bool) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_satclip"))
        .args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    out
}

/// The `embedding` column of a Parquet output, flattened.
fn embeddings(path: &Path) -> Vec<f32> {
    use arrow_array::{Array, Float32Array, ListArray};
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let list = batch.column_by_name("embedding").unwrap().as_any().downcast_ref::<ListArray>().unwrap().clone();
        out.extend(list.values().as_any().downcast_ref::<Float32Array>().unwrap().values().iter().copied());
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_released_model_by_name_embeds_as_the_local_file_does() {
    let Some(ckpt) = satclip_testkit::shared_file("fixtures/satclip-vit16-l40.ckpt") else { return };
    let server = HubStandIn::start(vec![HubEntry::new(
        "microsoft/SatCLIP-ViT16-L40",
        COMMIT,
        "satclip-vit16-l40.ckpt",
        std::fs::read(&ckpt).unwrap(),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let points = dir.path().join("points.csv");
    std::fs::write(&points, "lon,lat\n-122.42,37.77\n139.69,35.69\n2.35,48.86\n-58.38,-34.6\n").unwrap();
    let (by_name, by_file) = (dir.path().join("by-name.parquet"), dir.path().join("by-file.parquet"));
    let args = |checkpoint: &str, out: &Path| {
        ["embed", "--checkpoint", checkpoint, "--input", points.to_str().unwrap(), "--output", out.to_str().unwrap()]
            .map(String::from)
    };
    let run = |checkpoint: &str, out: &Path, offline: bool, endpoint: &str| {
        let a = args(checkpoint, out);
        satclip(&a.iter().map(String::as_str).collect::<Vec<_>>(), endpoint, &cache, offline)
    };

    let first = run("microsoft/SatCLIP-ViT16-L40", &by_name, false, server.endpoint());
    let stderr = text(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    // The download says what, how big, from where and into where.
    for needle in [
        "downloading microsoft/SatCLIP-ViT16-L40@main/satclip-vit16-l40.ckpt (120.98 MB)",
        &format!("from {}/lfs/", server.storage()),
        &format!("into {}", cache.join("models--microsoft--SatCLIP-ViT16-L40/blobs").display()),
    ] {
        assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    }
    let local = run(ckpt.to_str().unwrap(), &by_file, false, server.endpoint());
    assert!(local.status.success(), "{}", text(&local.stderr));
    assert_eq!(embeddings(&by_name), embeddings(&by_file));
    assert_eq!(server.transfers(), 1);
    // The output names the Hub repository, the commit and the weights' SHA-256.
    let provenance = satclip::read_provenance(&by_name).unwrap();
    let sha = HubEntry::new("x/y", COMMIT, "f", std::fs::read(&ckpt).unwrap()).sha256;
    assert_eq!((provenance.source.as_str(), provenance.model.as_str()), ("hub", "vit16-l40"));
    assert_eq!(provenance.hub_repo.as_deref(), Some("microsoft/SatCLIP-ViT16-L40"));
    assert_eq!((provenance.hub_commit.as_deref(), provenance.sha256.as_deref()), (Some(COMMIT), Some(sha.as_str())));
    assert_eq!(satclip::read_provenance(&by_file).unwrap().sha256.as_deref(), Some(sha.as_str()));

    // The short name, with the Hub gone and offline: from the cache, silently.
    let endpoint = server.endpoint().to_string();
    drop(server);
    let again = dir.path().join("again.parquet");
    let offline = run("vit16-l40", &again, true, &endpoint);
    assert!(offline.status.success(), "{}", text(&offline.stderr));
    assert!(!text(&offline.stderr).contains("downloading"));
    assert_eq!(embeddings(&again), embeddings(&by_file));

    let listed = satclip(&["models"], &endpoint, &cache, true);
    let row = text(&listed.stdout).lines().find(|l| l.starts_with("| vit16-l40 ")).unwrap().to_string();
    assert!(row.contains("| cached |") && row.contains("| 121.0 MB |"), "{row}");
    let download = satclip(&["download", "vit16-l40"], &endpoint, &cache, true);
    assert!(text(&download.stdout).contains(&format!("snapshots/{COMMIT}/satclip-vit16-l40.ckpt")));

    // A revision that was never fetched cannot come from the cache, and the error says what to do.
    let pinned = format!("vit16-l40@{}", "1".repeat(40));
    let missing = run(&pinned, &dir.path().join("x.parquet"), true, &endpoint);
    assert!(!missing.status.success());
    let stderr = text(&missing.stderr);
    assert!(stderr.contains("HF_HUB_OFFLINE is set") && stderr.contains("satclip download"), "{stderr}");
}

#[test]
fn a_missing_released_file_names_the_model_to_use_instead() {
    let dir = tempfile::tempdir().unwrap();
    let out = satclip(
        &["embed", "--checkpoint", "models/satclip-resnet50-l40.ckpt", "--input", "x.csv", "--output", "y.npy"],
        "http://127.0.0.1:9",
        dir.path(),
        true,
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("name it `resnet50-l40` (or `microsoft/SatCLIP-ResNet50-L40`)"), "{stderr}");
}
