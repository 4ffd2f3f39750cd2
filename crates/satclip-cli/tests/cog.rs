//! Cloud-Optimized GeoTIFFs checked by GDAL itself (rasterio's wheels, rio-cogeo's validator, in
//! the venv that scripts/install-gdal.sh makes; `.ci/run` makes it): a valid COG layout, the
//! overviews, the georeferencing, the provenance, and values equal to `satclip embed` at cells.

use std::path::PathBuf;
use std::process::Command;

fn gdal_python() -> Option<PathBuf> {
    let python = std::env::var_os("SATCLIP_GDAL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/gdal-venv/bin/python"));
    if python.exists() {
        return Some(python);
    }
    satclip_testkit::skip(&format!("{} has no GDAL: run scripts/install-gdal.sh", python.display()));
    None
}

const CHECK: &str = r#"
import json, sys
import rasterio
from rio_cogeo.cogeo import cog_validate
path = sys.argv[1]
valid, errors, warnings = cog_validate(path, strict=True)
with rasterio.open(path) as src:
    cells = [(r, c) for r, c in ((0, 0), (45, 100), (179, 359), (10, 300))]
    values = {f"{r},{c}": [float(v) for v in src.read(window=((r, r + 1), (c, c + 1)))[:, 0, 0]] for r, c in cells}
    print(json.dumps({
        "valid": valid, "errors": errors, "warnings": warnings,
        "count": src.count, "size": [src.width, src.height], "crs": src.crs.to_string(),
        "transform": list(src.transform)[:6], "overviews": src.overviews(1),
        "blocks": list(src.block_shapes[0]), "compression": str(src.compression),
        "nodata": str(src.nodata), "satclip": src.tags().get("satclip"), "values": values,
    }))
"#;

#[test]
fn gdal_validates_and_reads_the_cog() {
    let Some(python) = gdal_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let encoder = satclip::FeatureEncoder::load("sh-l10").unwrap();
    for compress in ["zstd", "deflate"] {
        let out = dir.path().join(format!("{compress}.tif"));
        let run = Command::new(env!("CARGO_BIN_EXE_satclip"))
            .args([
                "raster",
                "--encoder",
                "sh-l10",
                "--resolution",
                "1",
                "--compress",
                compress,
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let check = Command::new(&python).args(["-c", CHECK, out.to_str().unwrap()]).output().unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
        let v: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
        assert_eq!(v["valid"], true, "{compress}: {v}");
        assert_eq!(v["errors"].as_array().unwrap().len(), 0, "{v}");
        assert_eq!((v["count"].as_u64(), v["crs"].as_str()), (Some(100), Some("EPSG:4326")), "{v}");
        assert_eq!(v["size"], serde_json::json!([360, 180]));
        assert_eq!(v["transform"], serde_json::json!([1.0, 0.0, -180.0, 0.0, -1.0, 90.0]));
        assert_eq!(v["overviews"], serde_json::json!([2, 4]));
        assert_eq!(v["blocks"], serde_json::json!([128, 128]));
        assert_eq!(v["compression"].as_str().unwrap().to_lowercase(), format!("compression.{compress}"), "{v}");
        assert_eq!(v["nodata"], "nan");
        assert!(v["satclip"].as_str().unwrap().contains("\"model\":\"sh-l10\""), "{v}");
        for (key, cell) in v["values"].as_object().unwrap() {
            let (r, c) = key.split_once(',').unwrap();
            let (r, c): (f64, f64) = (r.parse().unwrap(), c.parse().unwrap());
            let centre = [-180.0 + c + 0.5, 90.0 - r - 0.5];
            let want = encoder.embed_f32(&[centre]).unwrap();
            let got: Vec<f32> = cell.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            assert_eq!(got, want, "{compress}: cell {key}");
        }
    }
}
