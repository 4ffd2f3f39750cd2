//! `satclip tasks build`, `satclip eval`, `satclip latent`, `satclip map` and `satclip raster` end
//! to end.

use satclip_testkit::shared_dir;

fn satclip(args: &[&str]) -> (bool, String, String) {
    satclip_testkit::run(env!("CARGO_BIN_EXE_satclip"), args)
}

#[test]
fn eval_reports_every_task_encoder_and_size_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    // A synthetic task: a smooth field of lon/lat, with a given split on every fifth row.
    let mut body = String::from("lon,lat,target,split\n");
    for i in 0..600 {
        let (lon, lat) =
            (-180.0 + (i as f64 * 137.508) % 360.0, ((i as f64 * 0.618_034) % 1.0 * 2.0 - 1.0).asin().to_degrees());
        let target = 20.0 * lat.to_radians().cos() + 3.0 * lon.to_radians().sin();
        body.push_str(&format!("{lon},{lat},{target},{}\n", if i % 5 == 0 { "test" } else { "train" }));
    }
    let task = dir.path().join("field.csv");
    std::fs::write(&task, body).unwrap();
    let report = dir.path().join("report.json");
    let args = [
        "eval",
        "--task",
        task.to_str().unwrap(),
        "--encoder",
        "direct",
        "--encoder",
        "sh-l10",
        "--n-train",
        "100",
        "--n-train",
        "10000",
        "--output",
        report.to_str().unwrap(),
    ];
    let (ok, table, err) = satclip(&args);
    assert!(ok, "{err}");
    assert_eq!(table.lines().filter(|l| l.contains("field.csv")).count(), 4, "{table}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rows.len(), 2 * 2 * 3, "encoders × sizes × metrics");
    for row in &rows {
        for key in ["task", "encoder", "probe", "split", "metric", "value", "n_train", "n_test"] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
        assert_eq!(row["split"], "given");
        assert_eq!(row["n_test"], 120);
    }
    let r2 = |enc: &str, n: u64| {
        rows.iter().find(|r| r["encoder"] == enc && r["n_train"] == n && r["metric"] == "r2").unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert!(r2("sh-l10", 480) > 0.99 && r2("sh-l10", 480) > r2("direct", 480));
    // Same seed, same numbers.
    let (ok, again, _) = satclip(&args);
    assert!(ok);
    assert_eq!(table, again);
}

/// A synthetic classification task: three latitude zones.
fn zones(dir: &std::path::Path, extra_row: Option<&str>) -> std::path::PathBuf {
    let mut body = String::from("lon,lat,target\n");
    for i in 0..900 {
        let (lon, lat) =
            (-180.0 + (i as f64 * 137.508) % 360.0, ((i as f64 * 0.618_034) % 1.0 * 2.0 - 1.0).asin().to_degrees());
        let zone = if lat.abs() < 23.5 {
            "tropics"
        } else if lat.abs() < 66.5 {
            "temperate"
        } else {
            "polar"
        };
        body.push_str(&format!("{lon},{lat},{zone}\n"));
    }
    if let Some(row) = extra_row {
        body.push_str(row);
    }
    let path = dir.join("zones.csv");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn classification_is_detected_and_every_classifier_reports_accuracy_macro_f1_and_auc() {
    let dir = tempfile::tempdir().unwrap();
    let task = zones(dir.path(), None);
    let report = dir.path().join("report.json");
    let mut args = vec!["eval", "--task", task.to_str().unwrap(), "--encoder", "sh-l10", "--output"];
    args.push(report.to_str().unwrap());
    for probe in ["ridge", "logistic", "mlp", "knn"] {
        args.extend(["--probe", probe]);
    }
    let (ok, _, err) = satclip(&args);
    assert!(ok, "{err}");
    assert!(err.contains("classification, 900 points, 3 classes (detected)"), "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    // Three classes: no top-5 accuracy, which every row would score.
    assert_eq!(rows.len(), 4 * 3, "4 probes × (accuracy, macro_f1, roc_auc)");
    for r in &rows {
        assert!(["accuracy", "macro_f1", "roc_auc"].contains(&r["metric"].as_str().unwrap()), "{r}");
        assert!(r["value"].as_f64().unwrap() > 0.8, "latitude zones from harmonics: {r}");
    }
}

#[test]
fn a_bad_task_row_names_the_file_row_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let task = zones(dir.path(), Some("10,95,polar\n"));
    let (ok, _, err) = satclip(&["eval", "--task", task.to_str().unwrap(), "--encoder", "wrap"]);
    assert!(!ok);
    assert!(err.contains("zones.csv") && err.contains("row 901") && err.contains("lat"), "{err}");
    let (ok, _, err) =
        satclip(&["eval", "--task", task.to_str().unwrap(), "--encoder", "wrap", "--kind", "regression"]);
    assert!(!ok && err.contains("zones.csv"), "{err}");
}

#[test]
fn tasks_are_built_from_the_shared_data() {
    let Some(shared) = shared_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = satclip(&[
        "tasks",
        "build",
        "--data",
        shared.join("data").to_str().unwrap(),
        "--open-data",
        "/nonexistent",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // Without the open data the sampled tasks are skipped with the reason, not failed.
    assert!(err.contains("skipped elevation") && err.contains("install-data.sh"), "{err}");
    let lines = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap().lines().count();
    assert_eq!(lines("air_temperature.csv"), 3077);
    assert_eq!(lines("precipitation.csv"), 3077);
    assert!(lines("median_income.csv") > 3000);
}

#[test]
fn tasks_without_sources_are_skipped_with_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tasks");
    let (ok, _, err) = satclip(&["tasks", "build", "--open-data", "/nonexistent", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("skipped air_temperature: needs air-temperature/stationDataAll.csv (pass --data"), "{err}");
    assert!(err.contains("skipped country: /nonexistent/globe_combined_mask_compressed.npz is missing"), "{err}");
    assert_eq!(err.matches("skipped ").count(), 9, "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn map_writes_a_png_of_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("map.png");
    let (ok, _, err) = satclip(&[
        "map",
        "--encoder",
        "sh-l10",
        "--resolution",
        "5",
        "--out",
        out.to_str().unwrap(),
        "--data",
        "/nonexistent",
    ]);
    assert!(ok, "{err}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width 72, height 36.
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 72);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 36);
    let sim = dir.path().join("sim.png");
    let (ok, _, err) = satclip(&[
        "similarity",
        "--encoder",
        "sh-l10",
        "--at",
        "-122.42,37.77",
        "--resolution",
        "5",
        "--out",
        sim.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = satclip(&["similarity", "--encoder", "sh-l10", "--at", "0,95", "--out", sim.to_str().unwrap()]);
    assert!(!ok && err.contains("lat"), "{err}");
}

#[test]
fn latent_draws_a_task_in_the_embedding_and_scores_its_separability() {
    let dir = tempfile::tempdir().unwrap();
    let task = zones(dir.path(), None);
    let out = dir.path().join("latent.png");
    let path = out.to_str().unwrap();
    for method in ["tsne", "pca"] {
        let args = ["latent", "--task", task.to_str().unwrap(), "--encoder", "zones=sh-l10", "--method", method];
        let (ok, line, err) = satclip(&[&args[..], &["--out", path]].concat());
        assert!(ok, "{err}");
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1440);
        // Latitude zones from spherical harmonics: both probes separate them, on 180 held-out
        // points (a fifth of 900).
        assert!(line.contains("of 900 points") && line.contains("(180 held out)"), "{line}");
        for probe in ["knn", "logistic"] {
            let at = line.find(&format!("{probe} ")).unwrap_or_else(|| panic!("{probe} in {line}"));
            let value: f64 = line[at + probe.len() + 1..].split_whitespace().next().unwrap().parse().unwrap();
            assert!(value > 0.85, "{probe}: {value} in {line}");
        }
    }
    // A sample too small for t-SNE's neighbourhoods says what to do; a .jpg name is refused.
    let small =
        ["latent", "--task", task.to_str().unwrap(), "--encoder", "sh-l10", "--max-points", "50", "--out", path];
    let (ok, _, err) = satclip(&small);
    assert!(!ok && err.contains("PCA"), "{err}");
    let jpg = dir.path().join("latent.jpg");
    let (ok, _, err) = satclip(&["latent", "--task", task.to_str().unwrap(), "--out", jpg.to_str().unwrap()]);
    assert!(!ok && err.contains(".png"), "{err}");
}

/// A regression task of 3000 points on a Fibonacci lattice, even over the sphere (target |lat|).
fn sphere_task(dir: &std::path::Path) -> std::path::PathBuf {
    let mut body = String::from("lon,lat,target\n");
    for i in 0..3000 {
        let (lon, lat) =
            (-180.0 + (i as f64 * 137.508) % 360.0, ((2.0 * i as f64 + 1.0) / 3000.0 - 1.0).asin().to_degrees());
        body.push_str(&format!("{lon},{lat},{}\n", lat.abs()));
    }
    let task = dir.join("t.csv");
    std::fs::write(&task, body).unwrap();
    task
}

/// Runs the continent split on [`sphere_task`] and returns the held-out groups; each fold's
/// training and test points are disjoint.
fn continent_folds(env: &[(&str, &std::path::Path)], extra: &[&str]) -> std::collections::BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let task = sphere_task(dir.path());
    let report = dir.path().join("r.json");
    let mut args = vec!["eval", "--task", task.to_str().unwrap(), "--encoder", "wrap", "--split", "continent"];
    args.extend(["--output", report.to_str().unwrap()]);
    args.extend(extra);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_satclip"))
        .args(&args)
        .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    for r in rows.iter().filter(|r| r["metric"] == "r2") {
        assert!(r["n_train"].as_u64().unwrap() + r["n_test"].as_u64().unwrap() <= 3000);
    }
    rows.iter().map(|r| r["split"].as_str().unwrap().to_string()).collect()
}

#[test]
fn continent_holdout_defaults_to_natural_earth_continents() {
    let Some(countries) = satclip_testkit::data_file(satclip_eval::build::COUNTRIES_FILE) else { return };
    let folds = continent_folds(&[("SATCLIP_DATA", countries.parent().unwrap())], &[]);
    for continent in ["Africa", "Antarctica", "Asia", "Europe", "North America", "South America"] {
        assert!(folds.contains(&format!("continent:{continent}")), "{continent} not in {folds:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = satclip(&[
        "eval",
        "--task",
        sphere_task(dir.path()).to_str().unwrap(),
        "--encoder",
        "wrap",
        "--split",
        "continent",
        "--regions",
        countries.to_str().unwrap(),
        "--region-property",
        "SUBREGIONX",
    ]);
    assert!(!ok && err.contains("SUBREGIONX") && err.contains("CONTINENT"), "{err}");
}

#[test]
fn continent_holdout_by_realm_from_a_geojson() {
    let Some(regions) = satclip_testkit::shared_file("data/ecoregions/resolve-ecoregions-2017.geojson.gz") else {
        return;
    };
    let folds = continent_folds(&[], &["--regions", regions.to_str().unwrap()]);
    assert!(folds.contains("continent:Nearctic") && folds.contains("continent:Afrotropic"), "{folds:?}");
}

#[test]
fn raster_writes_a_georeferenced_band_per_feature() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sh.tif");
    let (ok, _, err) = satclip(&[
        "raster",
        "--encoder",
        "sh-l10",
        "--resolution",
        "10",
        "--layout",
        "striped",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let raster = satclip::io::geotiff::read(&out).unwrap();
    assert_eq!((raster.width, raster.height, raster.bands), (36, 18, 100));
    let georef = raster.georef.unwrap();
    assert_eq!((georef.epsg, georef.origin, georef.pixel_size), (4326, [-180.0, 90.0], [10.0, 10.0]));
    // Row 2, column 5 is the cell centred on (-125, 65).
    let (features, _) = satclip::FeatureEncoder::load("sh-l10").unwrap().features(&[[-125.0, 65.0]]).unwrap();
    let cell = &raster.data[(2 * 36 + 5) * 100..][..100];
    assert!(cell.iter().zip(&features).all(|(a, b)| *a == *b as f32));

    let (ok, _, err) = satclip(&["raster", "--encoder", "sh-l10", "--bounds", "-125,32,-114.3,42", "--out", "x.tif"]);
    assert!(!ok && err.contains("10.7") && err.contains("whole number"), "{err}");
    let (ok, _, err) = satclip(&["raster", "--bounds", "-125,32,-114", "--out", "x.tif"]);
    assert!(!ok && err.contains("WEST,SOUTH,EAST,NORTH"), "{err}");
    let (ok, _, err) = satclip(&["raster", "--land-only", "--data", "/nonexistent", "--out", "x.tif"]);
    assert!(!ok && err.contains("--land-only needs the land mask"), "{err}");
}

#[test]
fn raster_land_only_leaves_the_ocean_empty() {
    let Some(mask) = satclip_testkit::data_file(satclip::io::landmask::LAND_MASK_FILE) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("land.tif");
    let (ok, _, err) = satclip(&[
        "raster",
        "--encoder",
        "wrap",
        "--resolution",
        "5",
        "--land-only",
        "--data",
        mask.parent().unwrap().to_str().unwrap(),
        "--layout",
        "striped",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let raster = satclip::io::geotiff::read(&out).unwrap();
    let at = |lon: f64, lat: f64| {
        let (row, col) = (((90.0 - lat) / 5.0) as usize, ((lon + 180.0) / 5.0) as usize);
        raster.data[(row * raster.width + col) * raster.bands]
    };
    assert!(at(-150.0, 2.0).is_nan(), "mid-Pacific");
    assert!(!at(22.0, 2.0).is_nan(), "Congo basin");
    let water = raster.data.iter().step_by(raster.bands).filter(|v| v.is_nan()).count() as f64;
    assert!((0.6..0.8).contains(&(water / (raster.width * raster.height) as f64)), "{water}");
}

#[test]
fn outputs_are_checked_by_extension_and_a_bad_task_fails_before_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (ok, _, err) = satclip(&["map", "--encoder", "wrap", "--resolution", "10", "--out", &out("map.jpg")]);
    assert!(!ok && err.contains("map.jpg") && err.contains(".png"), "{err}");
    let (ok, _, err) = satclip(&["raster", "--encoder", "wrap", "--resolution", "10", "--out", &out("x.png")]);
    assert!(!ok && err.contains(".tif or .tiff"), "{err}");
    std::fs::write(dir.path().join("p.csv"), "lon,lat\n1,2\n").unwrap();
    let (ok, _, err) = satclip(&["embed", "--encoder", "wrap", "--input", &out("p.csv"), "--output", &out("e.txt")]);
    assert!(!ok && err.contains(".geoparquet"), "{err}");
    let task = sphere_task(dir.path());
    let (ok, stdout, err) = satclip(&[
        "eval",
        "--task",
        task.to_str().unwrap(),
        "--task",
        &out("missing.csv"),
        "--encoder",
        "wrap",
        "--output",
        &out("report.txt"),
    ]);
    assert!(!ok && err.contains("report.txt") && err.contains(".json"), "{err}");
    let (ok, stdout2, err) =
        satclip(&["eval", "--task", task.to_str().unwrap(), "--task", &out("missing.csv"), "--encoder", "wrap"]);
    assert!(!ok && err.contains("missing.csv"), "{err}");
    assert!(stdout.is_empty() && stdout2.is_empty(), "no table before the failure: {stdout2}");
    // Spans that binary fractions cannot hold are printed as typed.
    let (ok, _, err) = satclip(&[
        "raster",
        "--encoder",
        "wrap",
        "--bounds",
        "-125,31.03,-114,42",
        "--resolution",
        "0.5",
        "--out",
        &out("r.tif"),
    ]);
    assert!(!ok && err.contains("10.97°") && !err.contains("10.9699"), "{err}");
}

/// Fine-tuning the built-in model on the real station temperatures: the model it writes loads
/// wherever a checkpoint does, the epoch it keeps validates better than the frozen linear probe
/// it started from, and `eval --probe finetune` reports it beside the frozen probe (skipping the
/// encoders it cannot train).
#[test]
fn finetune_writes_a_model_that_loads_and_eval_reports_it_beside_the_frozen_probe() {
    let Some(shared) = shared_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks");
    let data = shared.join("data");
    let (ok, _, err) = satclip(&[
        "tasks",
        "build",
        "--data",
        data.to_str().unwrap(),
        "--open-data",
        "/nonexistent",
        "--out",
        tasks.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let task = tasks.join("air_temperature.csv");
    let model = dir.path().join("tuned");
    let finetune = ["finetune", "--task", task.to_str().unwrap(), "--out", model.to_str().unwrap()];
    let (ok, _, err) = satclip(&finetune);
    assert!(ok, "{err}");
    assert!(err.contains("3076 labels (2768 to train, 308 to validate)"), "{err}");
    let trained: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("finetune.json")).unwrap()).unwrap();
    let losses: Vec<f64> = trained["val_losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let best = trained["best_epoch"].as_u64().unwrap() as usize;
    assert!(best > 0 && losses[best] < 0.9 * losses[0], "{trained}");
    assert_eq!(trained["lowest_epoch"], trained["best_epoch"]);
    assert_eq!(losses.iter().cloned().fold(f64::INFINITY, f64::min), losses[best]);
    assert_eq!(trained["kind"], "regression");
    assert_eq!(trained["cv"], "interleaved");
    assert!(model.join("head.safetensors").exists());

    // In spatial blocks the epoch is chosen on whole 20° cells (at least the asked tenth of the
    // labels, at most twice it) and the starting head's strength in blocks; the report says so.
    let blocks_model = dir.path().join("tuned-blocks");
    let (ok, _, err) = satclip(&[
        "finetune",
        "--task",
        task.to_str().unwrap(),
        "--out",
        blocks_model.to_str().unwrap(),
        "--cv-blocks",
        "20",
    ]);
    assert!(ok, "{err}");
    let blocks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blocks_model.join("finetune.json")).unwrap()).unwrap();
    assert_eq!(blocks["cv"]["spatial_blocks"]["degrees"], 20.0, "{blocks}");
    let n_val = blocks["n_val"].as_u64().unwrap();
    assert!((308..=616).contains(&n_val) && blocks["n_train"].as_u64().unwrap() + n_val == 3076, "{blocks}");
    assert!(err.contains(&format!("{n_val} to validate")) && err.contains("in blocks of 20°"), "{err}");

    // A second run does not overwrite the model.
    let (ok, _, err) = satclip(&finetune);
    assert!(!ok && err.contains("is not empty"), "{err}");

    // The model loads as a checkpoint and embeds differently from the model it started from.
    let points = dir.path().join("points.csv");
    std::fs::write(&points, "lon,lat\n13.4,52.5\n-58.4,-34.6\n").unwrap();
    let embed = |checkpoint: &str, out: &str| {
        let out = dir.path().join(out);
        let args = ["embed", "--checkpoint", checkpoint, "--input", points.to_str().unwrap(), "--output"];
        let (ok, _, err) = satclip(&[&args[..], &[out.to_str().unwrap()]].concat());
        assert!(ok, "{err}");
        satclip_testkit::read_npy(&out).2
    };
    let (tuned, frozen) = (embed(model.to_str().unwrap(), "tuned.npy"), embed("default", "frozen.npy"));
    assert_eq!(tuned.len(), 512);
    assert!(tuned.iter().zip(&frozen).any(|(a, b)| (a - b).abs() > 1e-3));
    let (ok, info, err) = satclip(&["info", model.to_str().unwrap()]);
    assert!(ok && info.contains("fine-tuned from \"default\""), "{info}{err}");

    let report = dir.path().join("report.json");
    let (ok, _, err) = satclip(&[
        "eval",
        "--task",
        task.to_str().unwrap(),
        "--encoder",
        "default",
        "--encoder",
        "sh-l10",
        "--probe",
        "ridge",
        "--probe",
        "finetune",
        "--output",
        report.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("finetune trains a SatCLIP location encoder; skipped for sh-l10"), "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let r2 = |encoder: &str, probe: &str| {
        rows.iter()
            .find(|r| r["encoder"] == encoder && r["probe"] == probe && r["metric"] == "r2")
            .map(|r| r["value"].as_f64().unwrap())
    };
    assert_eq!(r2("sh-l10", "finetune"), None);
    let (ridge, tuned) = (r2("default", "ridge").unwrap(), r2("default", "finetune").unwrap());
    // Measured: 0.933 frozen, 0.938 fine-tuned (docs/evaluation.md).
    assert!(ridge > 0.92 && tuned > ridge, "ridge {ridge}, finetune {tuned}");

    // `predict` gives the head applied to the tuned encoder's f64 embeddings, in the task's units.
    let mut tensors = satclip::io::native::read_tensors(&model.join("head.safetensors"), "head.", "head").unwrap();
    let weight = tensors.take("weight", &[1, 256]).unwrap().data;
    let bias = tensors.take("bias", &[1]).unwrap().data[0];
    let (mean, scale) = (trained["target_mean"].as_f64().unwrap(), trained["target_scale"].as_f64().unwrap());
    let embedded = dir.path().join("tuned64.npy");
    let args =
        ["embed", "--checkpoint", model.to_str().unwrap(), "--dtype", "f64", "--input", points.to_str().unwrap()];
    let (ok, _, err) = satclip(&[&args[..], &["--output", embedded.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    let embedded = satclip_testkit::read_npy(&embedded).2;
    let predicted = predict_column(&model, &points, dir.path(), 2);
    for (row, p) in embedded.chunks_exact(256).zip(&predicted) {
        let expected = (row.iter().zip(&weight).map(|(e, w)| e * w).sum::<f64>() + bias) * scale + mean;
        assert!((p - expected).abs() < 1e-9 * scale, "{p} vs {expected}");
    }
    // Berlin's mean air temperature is about 10 °C, Buenos Aires' about 18 °C.
    assert!((5.0..15.0).contains(&predicted[0]) && (13.0..23.0).contains(&predicted[1]), "{predicted:?}");
    // Over its own stations the fine-tuned model explains most of the variance (0.969 measured).
    let targets: Vec<f64> = std::fs::read_to_string(&task)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let predicted = predict_column(&model, &task, dir.path(), 3);
    let mean = targets.iter().sum::<f64>() / targets.len() as f64;
    let total: f64 = targets.iter().map(|t| (t - mean).powi(2)).sum();
    let residual: f64 = targets.iter().zip(&predicted).map(|(t, p)| (t - p).powi(2)).sum();
    assert!(1.0 - residual / total > 0.95, "R² {}", 1.0 - residual / total);

    // `raster --predict` maps the same values: cell centres of a 30° grid, stored as float32.
    let map = dir.path().join("map.tif");
    let (ok, _, err) = satclip(&[
        "raster",
        "--encoder",
        model.to_str().unwrap(),
        "--predict",
        "--layout",
        "striped",
        "--resolution",
        "30",
        "--out",
        map.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let raster = satclip::io::geotiff::read(&map).unwrap();
    assert_eq!((raster.width, raster.height, raster.bands), (12, 6, 1));
    let centres = dir.path().join("centres.csv");
    let mut body = String::from("lon,lat\n");
    for r in 0..6 {
        for c in 0..12 {
            body.push_str(&format!("{},{}\n", -165.0 + 30.0 * c as f64, 75.0 - 30.0 * r as f64));
        }
    }
    std::fs::write(&centres, body).unwrap();
    let at_centres = predict_column(&model, &centres, dir.path(), 2);
    for (cell, p) in raster.data.iter().zip(&at_centres) {
        assert!((*cell as f64 - p).abs() < 1e-5 * p.abs().max(1.0), "{cell} vs {p}");
    }
    let provenance = satclip::read_provenance(&map).unwrap().prediction.unwrap();
    assert_eq!(provenance.kind, "regression");
}

/// `satclip predict` of `input` into a CSV, whose prediction is its `column`-th field.
fn predict_column(model: &std::path::Path, input: &std::path::Path, dir: &std::path::Path, column: usize) -> Vec<f64> {
    let out = dir.join("predicted.csv");
    let _ = std::fs::remove_file(&out);
    let args = ["predict", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap()];
    let (ok, _, err) = satclip(&[&args[..], &["--output", out.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap().split(',').nth(column), Some("prediction"));
    lines.map(|l| l.split(',').nth(column).unwrap().parse().unwrap()).collect()
}

#[test]
fn a_fine_tuned_classifier_predicts_classes_with_probabilities_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    // Two classes split at the equator: the built-in model's probe gets them nearly right.
    let mut body = String::from("lon,lat,target\n");
    for i in 0..300 {
        let (lon, lat) = (-180.0 + (i as f64 * 137.508) % 360.0, -80.0 + (i as f64 * 61.8034) % 160.0);
        body.push_str(&format!("{lon},{lat},{}\n", if lat > 0.0 { "north" } else { "south" }));
    }
    let task = dir.path().join("hemisphere.csv");
    std::fs::write(&task, body).unwrap();
    let model = dir.path().join("tuned");
    let args = ["finetune", "--task", task.to_str().unwrap(), "--out", model.to_str().unwrap(), "--epochs", "2"];
    let (ok, _, err) = satclip(&args);
    assert!(ok, "{err}");
    let points = dir.path().join("points.csv");
    std::fs::write(&points, "name,lon,lat\noslo,10.75,59.91\ncape town,18.42,-33.92\n").unwrap();
    let run = |out: &str| {
        let out = dir.path().join(out);
        let args = ["predict", "--model", model.to_str().unwrap(), "--input", points.to_str().unwrap(), "--output"];
        let (ok, _, err) = satclip(&[&args[..], &[out.to_str().unwrap()]].concat());
        assert!(ok, "{err}");
        out
    };
    let csv = std::fs::read_to_string(run("classes.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["name", "lon", "lat", "prediction", "probability"]);
    assert_eq!((rows[1][3], rows[2][3]), ("north", "south"), "{csv}");
    let p: Vec<f64> = rows[1..].iter().map(|r| r[4].parse().unwrap()).collect();
    assert!(p.iter().all(|p| (0.5..=1.0).contains(p)), "{csv}");

    // NPY: a probability per class, in the order the side file lists them.
    let npy = run("classes.npy");
    let (rows, cols, probabilities) = satclip_testkit::read_npy(&npy);
    assert_eq!((rows, cols), (2, 2));
    assert!(probabilities.chunks(2).all(|r| (r[0] + r[1] - 1.0).abs() < 1e-12));
    assert!((probabilities[0] - p[0]).abs() < 1e-12 && (probabilities[3] - p[1]).abs() < 1e-12);
    let classes = satclip::read_provenance(&npy).unwrap().prediction.unwrap().classes.unwrap();
    assert_eq!(classes, ["north", "south"]);

    // Parquet carries the class names as strings.
    let parquet = run("classes.parquet");
    let file = std::fs::File::open(parquet).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 16).unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    let column = batch.column_by_name("prediction").unwrap();
    let names = column.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
    assert_eq!((names.value(0), names.value(1)), ("north", "south"));

    // An input that already has a `prediction` column is refused, naming it.
    std::fs::write(&points, "prediction,lon,lat\n1,10.75,59.91\n").unwrap();
    let out = dir.path().join("refused.csv");
    let args = ["predict", "--model", model.to_str().unwrap(), "--input", points.to_str().unwrap()];
    let (ok, _, err) = satclip(&[&args[..], &["--output", out.to_str().unwrap()]].concat());
    assert!(!ok && err.contains("already has a column named `prediction`"), "{err}");
    assert!(!out.exists());

    // A model directory that was not fine-tuned says what predictions need.
    let (ok, _, err) =
        satclip(&["predict", "--model", dir.path().to_str().unwrap(), "--input", "x.csv", "--output", "y.csv"]);
    assert!(!ok && err.contains("written by `satclip finetune`"), "{err}");
}

/// Every `value` of `metric` in an eval report, by encoder.
fn report_values(report: &std::path::Path, metric: &str) -> std::collections::BTreeMap<String, Vec<f64>> {
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let mut values = std::collections::BTreeMap::<String, Vec<f64>>::new();
    for r in rows.iter().filter(|r| r["metric"] == metric) {
        values.entry(r["encoder"].as_str().unwrap().into()).or_default().push(r["value"].as_f64().unwrap());
    }
    values
}

#[test]
fn features_from_a_table_score_as_the_encoder_that_computed_them() {
    let dir = tempfile::tempdir().unwrap();
    let task = sphere_task(dir.path());
    let text = std::fs::read_to_string(&task).unwrap();
    let points: Vec<[f64; 2]> = text
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',').map(|v| v.parse::<f64>().unwrap());
            [f.next().unwrap(), f.next().unwrap()]
        })
        .collect();
    // `wrap` computed here, in another column order than satclip's, with one unrelated point
    // more: the table is looked up by location, not read in the task's order.
    let mut table = String::from("lat,f0,f1,lon,f2,f3\n");
    for &[lon, lat] in points.iter().rev().chain([[1.5, 2.5]].iter()) {
        let (x, y) = (lon.to_radians(), lat.to_radians());
        table.push_str(&format!("{lat},{},{},{lon},{},{}\n", x.sin(), x.cos(), y.sin(), y.cos()));
    }
    let mine = dir.path().join("mine.csv");
    std::fs::write(&mine, table).unwrap();
    // What `satclip embed` writes (the task's target travels with it and is not a feature).
    let embedded = dir.path().join("embedded.parquet");
    let t = task.to_str().unwrap();
    let (ok, _, err) = satclip(&[
        "embed",
        "--input",
        t,
        "--output",
        embedded.to_str().unwrap(),
        "--checkpoint",
        "wrap",
        "--dtype",
        "f64",
    ]);
    assert!(ok, "{err}");
    let report = dir.path().join("r.json");
    let table_spec = format!("mine={}", mine.display());
    let embedded_spec = format!("embedded={}", embedded.display());
    let (ok, _, err) = satclip(&[
        "eval",
        "--task",
        t,
        "--encoder",
        "wrap",
        "--encoder",
        &table_spec,
        "--encoder",
        &embedded_spec,
        "--split",
        "block",
        "--n-train",
        "300",
        "--n-train",
        "all",
        "--output",
        report.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let r2 = report_values(&report, "r2");
    assert_eq!(r2["wrap"].len(), 2);
    // The same features in another order: ridge on standardised features gives the same fit up
    // to rounding.
    for name in ["mine", "embedded"] {
        for (a, b) in r2["wrap"].iter().zip(&r2[name]) {
            assert!((a - b).abs() < 1e-9, "{name}: {a} vs wrap {b}");
        }
    }

    // A task point the table lacks is named, with the table.
    let short = dir.path().join("short.csv");
    std::fs::write(&short, "lon,lat,f0\n1.5,2.5,1\n").unwrap();
    let spec = format!("short={}", short.display());
    let (ok, _, err) = satclip(&["eval", "--task", t, "--encoder", &spec]);
    assert!(!ok);
    assert!(err.contains("short.csv") && err.contains("is not covered by this encoder"), "{err}");
    // A target among the features would leak the labels; text is not a feature; a location
    // given twice with other features is ambiguous. Each names the file and the column or row.
    for (body, expect) in [
        ("lon,lat,f0,target\n1,2,3,4\n", "has a `target` column"),
        ("lon,lat,f0,name\n1,2,3,x\n", "column `name` is Utf8"),
        ("lon,lat,f0\n1,2,3\n5,6,7\n1,2,4\n", "row 3"),
        ("lon,lat,f0\n3,4,5\n1,2,\n", "row 2"),
    ] {
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, body).unwrap();
        let spec = format!("bad={}", bad.display());
        let (ok, _, err) = satclip(&["eval", "--task", t, "--encoder", &spec]);
        assert!(!ok);
        assert!(err.contains("bad.csv") && err.contains(expect), "{body:?}: {err}");
    }
}

#[test]
fn cv_blocks_choose_hyperparameters_in_spatial_blocks_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let task = sphere_task(dir.path());
    let report = dir.path().join("r.json");
    let run = |extra: &[&str]| {
        let mut args = vec!["eval", "--task", task.to_str().unwrap(), "--encoder", "sh-l10", "--split", "block"];
        args.extend(["--probe", "ridge", "--probe", "knn", "--probe", "mlp", "--output", report.to_str().unwrap()]);
        args.extend(extra);
        let (ok, _, err) = satclip(&args);
        assert!(ok, "{err}");
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        rows.into_iter().filter(|r| r["metric"] == "r2").collect::<Vec<_>>()
    };
    let interleaved = run(&[]);
    let blocks = run(&["--cv-blocks", "20"]);
    assert_eq!(interleaved.len(), blocks.len());
    for (a, b) in interleaved.iter().zip(&blocks) {
        let (probe, chosen) = (b["probe"].as_str().unwrap(), b["chosen"].as_str().unwrap());
        assert!(!a["chosen"].as_str().unwrap().contains("blocks"), "{a}");
        if probe == "mlp" {
            // The MLP has no cross-validated hyperparameter: the option leaves it alone.
            assert_eq!(a["value"], b["value"], "{a} vs {b}");
        } else {
            assert!(chosen.ends_with("in blocks of 20°"), "{b}");
        }
    }
    for bad in ["0", "400", "nan", "inf", "twenty"] {
        let (ok, _, err) =
            satclip(&["eval", "--task", task.to_str().unwrap(), "--encoder", "wrap", "--cv-blocks", bad]);
        assert!(!ok && err.contains(&format!("`{bad}` is not a cell size in degrees")), "{bad}: {err}");
    }
}
