//! Every embedding file says where it came from, and `satclip info FILE` reads it back.

use std::process::Command;

fn satclip(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_satclip")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn examples(file: &str) -> String {
    format!("{}/../../examples/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn outputs_record_their_model_and_info_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, dtype) in [("e.parquet", "f32"), ("e.npy", "f64"), ("e.csv", "f32")] {
        let out = dir.path().join(name);
        satclip(&["embed", "--input", &examples("cities.csv"), "--output", out.to_str().unwrap(), "--dtype", dtype]);
        let info: serde_json::Value = serde_json::from_str(&satclip(&["info", out.to_str().unwrap()])).unwrap();
        assert_eq!(info["model"], "default", "{name}");
        assert_eq!(info["source"], "built in");
        assert_eq!(info["dim"], 256);
        assert_eq!(info["legendre_polys"], 10);
        assert_eq!(info["dtype"], dtype);
        assert_eq!(info["coordinate_order"], "lon,lat");
        assert_eq!(info["satclip_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
        if name != "e.parquet" {
            assert!(dir.path().join(format!("{name}.json")).exists(), "{name}: the side file");
        }
    }
    let out = dir.path().join("sh.parquet");
    satclip(&["embed", "--encoder", "sh-l10", "--input", &examples("cities.csv"), "--output", out.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_str(&satclip(&["info", out.to_str().unwrap()])).unwrap();
    assert_eq!(
        (info["source"].as_str(), info["dim"].as_u64(), info["sha256"].is_null()),
        (Some("computed"), Some(100), true)
    );
}

#[test]
fn rasters_carry_it_in_gdal_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.tif");
    satclip(&[
        "raster",
        "--encoder",
        "sh-l10",
        "--bounds",
        "0,0,2,1",
        "--resolution",
        "0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let info: serde_json::Value = serde_json::from_str(&satclip(&["info", out.to_str().unwrap()])).unwrap();
    assert_eq!(
        (info["model"].as_str(), info["dim"].as_u64(), info["dtype"].as_str()),
        (Some("sh-l10"), Some(100), Some("f32"))
    );
    // The value survives XML escaping: it is JSON with quotes.
    let items = satclip::io::geotiff_out::read_gdal_metadata(&out).unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0].1.starts_with("{\"model\":\"sh-l10\""), "{}", items[0].1);
}

#[test]
fn geoparquet_metadata_reaches_the_parquet_footer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cities.parquet");
    satclip(&["embed", "--input", &examples("cities.geoparquet"), "--output", out.to_str().unwrap()]);
    let geo = satclip::io::tables::parquet_metadata(&out, "geo").unwrap().expect("a geo key in the footer");
    let geo: serde_json::Value = serde_json::from_str(&geo).unwrap();
    assert_eq!(geo["primary_column"], "geometry");
    assert!(satclip::io::tables::parquet_metadata(&out, "satclip").unwrap().is_some());
}
