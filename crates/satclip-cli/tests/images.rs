//! `satclip embed-images` and `satclip locate` on the 23 real tiles and both fixture checkpoints.

use std::path::Path;

use satclip_testkit::{read_npy, shared_dir, shared_file};

fn satclip(args: &[&str]) -> (bool, String, String) {
    satclip_testkit::run(env!("CARGO_BIN_EXE_satclip"), args)
}

/// `satclip embed-images` of one input (a tile or a directory): (success, stderr).
fn embed_images(checkpoint: &Path, input: &Path, output: &Path) -> (bool, String) {
    let (ok, _, err) = satclip(&[
        "embed-images",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    (ok, err)
}

#[test]
fn embed_images_writes_one_row_per_tile_in_file_order() {
    let (Some(ckpt), Some(expected), Some(shared)) =
        (shared_file("fixtures/satclip-resnet18-l10.ckpt"), shared_file("fixtures/img_emb_resnet18.npy"), shared_dir())
    else {
        return;
    };
    let tiles = shared.join("data/s2-samples");
    let dir = tempfile::tempdir().unwrap();
    // Files given explicitly, in the fixture's row order, to NPY.
    let order: Vec<String> = std::fs::read_to_string(shared.join("fixtures/img_files.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| tiles.join(l.rsplit('/').next().unwrap()).to_string_lossy().into_owned())
        .collect();
    let out = dir.path().join("img.npy");
    let mut args =
        vec!["embed-images", "--checkpoint", ckpt.to_str().unwrap(), "--output", out.to_str().unwrap(), "--input"];
    args.extend(order.iter().map(String::as_str));
    let (ok, _, err) = satclip(&args);
    assert!(ok, "{err}");
    let (rows, dim, ours) = read_npy(&out);
    let (_, _, official) = read_npy(&expected);
    assert_eq!((rows, dim), (23, 256));
    let worst = ours.iter().zip(&official).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    // Measured 1.1e-6 (the library's parity test).
    assert!(worst <= 2e-5, "{worst}");

    // A directory, to CSV: a header and 23 rows with the file names and centres.
    let out = dir.path().join("img.csv");
    let (ok, err) = embed_images(&ckpt, &tiles, &out);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 24);
    assert!(lines[0].starts_with("file,lon,lat,emb_0,"));
    assert!(lines[1].starts_with("patch_252161.tif,19.8877"), "sorted by name, with the centre: {}", &lines[1][..40]);
}

#[test]
fn locate_reports_every_tile_with_its_error() {
    let (Some(ckpt), Some(shared)) = (shared_file("fixtures/satclip-vit16-l40.ckpt"), shared_dir()) else { return };
    let tiles = shared.join("data/s2-samples");
    let (ok, out, err) = satclip(&[
        "locate",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--points",
        "5000",
        "--top-k",
        "2",
        tiles.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| patch_")).collect();
    assert_eq!(rows.len(), 23 * 2);
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let km: f64 = cells[8].parse().unwrap();
        assert!((0.0..=20_040.0).contains(&km), "{row}");
    }
    assert!(out.contains("median error of the best candidate over 23 georeferenced tiles"));
}

#[test]
fn a_damaged_tile_is_named() {
    let Some(ckpt) = shared_file("fixtures/satclip-resnet18-l10.ckpt") else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.tif");
    std::fs::write(&bad, b"II*\x00\x08\x00\x00\x00\xff\xff").unwrap();
    let out = dir.path().join("o.npy");
    let (ok, err) = embed_images(&ckpt, &bad, &out);
    assert!(!ok && err.contains("broken.tif"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_tile_smaller_than_the_tower_input_is_refused_not_cropped_into_a_panic() {
    let Some(ckpt) = shared_file("fixtures/satclip-vit16-l40.ckpt") else { return };
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.tif");
    let layout = satclip_io::geotiff_out::RasterLayout {
        width: 100,
        height: 100,
        bands: 12,
        georef: satclip_io::geotiff::GeoReference { epsg: 4326, origin: [13.0, 52.0], pixel_size: [0.001, 0.001] },
        nodata: None,
    };
    let mut writer = satclip_io::geotiff_out::GeoTiffWriter::create(&small, layout).unwrap();
    writer.write_rows(&vec![1000.0; 100 * 100 * 12]).unwrap();
    writer.finish().unwrap();
    let out = dir.path().join("o.npy");
    let (ok, err) = embed_images(&ckpt, &small, &out);
    assert!(!ok && err.contains("small.tif") && err.contains("100×100") && err.contains("224×224"), "{err}");
    assert!(!out.exists());
}

#[test]
fn every_command_names_the_model_to_use_for_a_missing_released_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("satclip-resnet50-l40.ckpt");
    let missing = missing.to_str().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let tile = dir.path().join("tile.tif");
    std::fs::write(&tile, b"not read").unwrap();
    let tile = tile.to_str().unwrap();
    let corpus = dir.path().join("corpus");
    satclip_testkit::synthetic_corpus(&corpus, 3);
    for args in [
        vec!["convert", "--checkpoint", missing, "--output", out],
        vec!["embed-images", "--checkpoint", missing, "--input", tile, "--output", out],
        vec!["locate", "--checkpoint", missing, tile],
        vec!["featurize", "--corpus", corpus.to_str().unwrap(), "--tower", missing, "--out", out],
        vec!["embed", "--checkpoint", missing, "--input", tile, "--output", out],
    ] {
        let (ok, _, err) = satclip(&args);
        assert!(
            !ok && err.contains("name it `resnet50-l40` (or `microsoft/SatCLIP-ResNet50-L40`)"),
            "{}: {err}",
            args[0]
        );
    }
}

#[test]
fn a_native_model_has_no_image_tower_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let (ok, _, err) = satclip(&["convert", "--checkpoint", "default", "--output", model.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, _, err) = satclip(&[
        "embed-images",
        "--checkpoint",
        model.to_str().unwrap(),
        "--input",
        dir.path().to_str().unwrap(),
        "--output",
        dir.path().join("o.npy").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("no image tower") && !err.contains("os error"), "{err}");
}
