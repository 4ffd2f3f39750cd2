//! Outputs checked by the GIS stack itself, in the venv that scripts/install-gdal.sh makes
//! (`.ci/run` makes it): Cloud-Optimized GeoTIFFs by GDAL (rasterio's wheels) and rio-cogeo's
//! validator (a valid COG layout, the overviews, the georeferencing, the provenance, values equal
//! to `satclip embed` at cells), and GeoParquet by geopandas (and GDAL's Parquet driver where the
//! installed GDAL has one).

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

/// Runs satclip with `args`, asserting that it succeeded.
fn satclip(args: &[&str]) {
    let (ok, _, err) = satclip_testkit::run(env!("CARGO_BIN_EXE_satclip"), args);
    assert!(ok, "satclip {}: {err}", args.join(" "));
}

/// Runs satclip with `args`, expecting it to fail; its stderr.
fn satclip_fails(args: &[&str]) -> String {
    let (ok, _, err) = satclip_testkit::run(env!("CARGO_BIN_EXE_satclip"), args);
    assert!(!ok, "satclip {} should fail", args.join(" "));
    err
}

/// Runs `script` in the GDAL venv's Python on `path`; what it printed, as JSON.
fn python_json(python: &std::path::Path, script: &str, path: &std::path::Path) -> serde_json::Value {
    let run = Command::new(python).args(["-c", script, path.to_str().unwrap()]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    serde_json::from_slice(&run.stdout).unwrap()
}

const CHECK: &str = r#"
import json, sys
import rasterio
from rio_cogeo.cogeo import cog_validate
path = sys.argv[1]
valid, errors, warnings = cog_validate(path, strict=True)
# Overview cells: the 2x cell (5, 150) and the 4x cell (2, 75), north-west corners (10, 300), (8, 300).
overview = {}
for level, (r, c) in ((0, (5, 150)), (1, (2, 75))):
    with rasterio.open(path, overview_level=level) as ovr:
        overview[str(level)] = [float(v) for v in ovr.read(window=((r, r + 1), (c, c + 1)))[:, 0, 0]]
with rasterio.open(path) as src:
    cells = [(r, c) for r, c in ((0, 0), (45, 100), (179, 359), (10, 300), (8, 300))]
    values = {f"{r},{c}": [float(v) for v in src.read(window=((r, r + 1), (c, c + 1)))[:, 0, 0]] for r, c in cells}
    print(json.dumps({
        "valid": valid, "errors": errors, "warnings": warnings,
        "count": src.count, "size": [src.width, src.height], "crs": src.crs.to_string(),
        "transform": list(src.transform)[:6], "overviews": src.overviews(1),
        "blocks": list(src.block_shapes[0]), "compression": str(src.compression),
        "nodata": str(src.nodata), "satclip": src.tags().get("satclip"), "values": values,
        "overview": overview,
    }))
"#;

#[test]
fn gdal_validates_and_reads_the_cog() {
    let Some(python) = gdal_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let encoder = satclip::FeatureEncoder::load("sh-l10").unwrap();
    for compress in ["zstd", "deflate"] {
        let out = dir.path().join(format!("{compress}.tif"));
        satclip(&[
            "raster",
            "--encoder",
            "sh-l10",
            "--resolution",
            "1",
            "--compress",
            compress,
            "--out",
            out.to_str().unwrap(),
        ]);
        let v = python_json(&python, CHECK, &out);
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
        // An overview's cell holds the value of its north-west full-resolution cell (nearest).
        assert_eq!(v["overview"]["0"], v["values"]["10,300"], "{v}");
        assert_eq!(v["overview"]["1"], v["values"]["8,300"], "{v}");
    }
}

const GEOPARQUET: &str = r#"
import json, sys
import geopandas, pyarrow.parquet as pq, pyogrio, pyproj
path = sys.argv[1]
frame = geopandas.read_parquet(path)
geo = json.loads(pq.read_metadata(path).metadata[b"geo"])
column = geo["columns"][geo["primary_column"]]
# geopandas filters row groups and rows by the bbox covering column.
inside = geopandas.read_parquet(path, bbox=(0, 0, 30, 30))
out = {
    "version": geo["version"], "primary": geo["primary_column"], "types": column["geometry_types"],
    "covering": column["covering"], "extent": column.get("bbox"),
    "crs84": frame.crs == pyproj.CRS("OGC:CRS84"), "columns": pq.read_schema(path).names,
    "xy": [[p.x, p.y] for p in frame.geometry], "width": len(frame["embedding"].iloc[0]),
    "inside": sorted(inside["name"].tolist()), "gdal_parquet": "Parquet" in pyogrio.list_drivers(),
}
if out["gdal_parquet"]:
    out["gdal_rows"] = len(pyogrio.read_dataframe(path))
print(json.dumps(out))
"#;

#[test]
fn geopandas_reads_geoparquet_outputs_with_their_covering_and_crs() {
    let Some(python) = gdal_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let points = [("a", 10.5, 20.25), ("b", -70.0, -33.5), ("c", 25.0, 5.0), ("d", 140.0, 35.0)];
    let mut csv = String::from("name,lon,lat\n");
    points.iter().for_each(|(n, x, y)| csv.push_str(&format!("{n},{x},{y}\n")));
    let input = dir.path().join("points.csv");
    std::fs::write(&input, csv).unwrap();
    let embed = |input: &std::path::Path, output: &std::path::Path| {
        satclip(&[
            "embed",
            "--encoder",
            "sh-l10",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ]);
    };
    let check = |path: &std::path::Path| python_json(&python, GEOPARQUET, path);
    // A lon/lat table in: a WKB point geometry, a bbox covering and OGC:CRS84 come out.
    let output = dir.path().join("points.parquet");
    embed(&input, &output);
    let v = check(&output);
    assert_eq!((v["version"].as_str(), v["primary"].as_str()), (Some("1.1.0"), Some("geometry")), "{v}");
    assert_eq!(v["types"], serde_json::json!(["Point"]));
    assert_eq!(v["covering"]["bbox"]["xmin"], serde_json::json!(["bbox", "xmin"]), "{v}");
    assert_eq!(v["extent"], serde_json::json!([-70.0, -33.5, 140.0, 35.0]));
    assert_eq!(v["crs84"], true, "{v}");
    assert_eq!(v["columns"], serde_json::json!(["name", "lon", "lat", "geometry", "bbox", "embedding"]), "{v}");
    let want_xy: Vec<[f64; 2]> = points.iter().map(|(_, x, y)| [*x, *y]).collect();
    assert_eq!(v["xy"], serde_json::json!(want_xy));
    assert_eq!(v["width"], 100);
    assert_eq!(v["inside"], serde_json::json!(["a", "c"]), "the bbox filter reads the covering: {v}");
    if v["gdal_parquet"] == true {
        assert_eq!(v["gdal_rows"], 4);
    } else {
        eprintln!("note: this GDAL has no Parquet driver; geopandas (pyarrow) read the GeoParquet");
    }
    // A GeoParquet table in (as geopandas writes it, in EPSG:4326): its geometry and CRS are kept,
    // a covering is added, and no second geometry column appears.
    let geo_input = dir.path().join("geo-in.parquet");
    let make = format!(
        "import geopandas, pandas; f = pandas.read_csv({:?}); \
         geopandas.GeoDataFrame(f[['name']], geometry=geopandas.points_from_xy(f.lon, f.lat), crs='EPSG:4326')\
         .to_parquet({:?})",
        input.to_str().unwrap(),
        geo_input.to_str().unwrap()
    );
    let run = Command::new(&python).args(["-c", &make]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let geo_output = dir.path().join("geo-out.parquet");
    embed(&geo_input, &geo_output);
    let v = check(&geo_output);
    assert_eq!((v["version"].as_str(), v["primary"].as_str()), (Some("1.1.0"), Some("geometry")), "{v}");
    assert_eq!(v["columns"], serde_json::json!(["name", "geometry", "bbox", "embedding"]), "{v}");
    assert_eq!(v["crs84"], false, "EPSG:4326 is kept as the input stated it: {v}");
    assert_eq!(v["xy"], serde_json::json!(want_xy));
    assert_eq!(v["inside"], serde_json::json!(["a", "c"]));
}

const PROJECTED: &str = r#"
import json, sys
import rasterio
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate
path = sys.argv[1]
valid, errors, _ = cog_validate(path, strict=True)
to_lonlat = Transformer.from_crs(32633, 4326, always_xy=True)
with rasterio.open(path) as src:
    cells = {}
    for r, c in ((0, 0), (4, 7), (9, 9)):
        x, y = src.xy(r, c)  # the cell's centre
        cells[f"{r},{c}"] = {
            "lonlat": list(to_lonlat.transform(x, y)),
            "values": [float(v) for v in src.read(window=((r, r + 1), (c, c + 1)))[:, 0, 0]],
        }
    print(json.dumps({"valid": valid, "errors": errors, "crs": src.crs.to_string(),
                      "transform": list(src.transform)[:6], "cells": cells}))
"#;

#[test]
fn a_utm_grid_is_georeferenced_in_its_crs_and_embeds_where_proj_says_its_cells_are() {
    let Some(python) = gdal_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("utm.tif");
    let utm = ["raster", "--encoder", "sh-l10", "--crs", "EPSG:32633", "--out", out.to_str().unwrap()];
    satclip(&[&utm[..], &["--resolution", "10000", "--bounds", "400000,5000000,500000,5100000"]].concat());
    let v = python_json(&python, PROJECTED, &out);
    assert_eq!((v["valid"].as_bool(), v["crs"].as_str()), (Some(true), Some("EPSG:32633")), "{v}");
    assert_eq!(v["transform"], serde_json::json!([10000.0, 0.0, 400000.0, 0.0, -10000.0, 5100000.0]));
    let encoder = satclip::FeatureEncoder::load("sh-l10").unwrap();
    for (key, cell) in v["cells"].as_object().unwrap() {
        // PROJ (pyproj) puts the cell here; the file holds the embedding of that place.
        let lonlat: Vec<f64> = cell["lonlat"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let want = encoder.embed_f32(&[[lonlat[0], lonlat[1]]]).unwrap();
        let got: Vec<f32> = cell["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "cell {key} at {lonlat:?}: off by {worst}");
    }
    // Without bounds a projected grid has no extent to assume.
    let err = satclip_fails(&utm);
    assert!(err.contains("--bounds"), "{err}");
}

const INT8: &str = r#"
import json, sys
import rasterio
from rio_cogeo.cogeo import cog_validate
path = sys.argv[1]
valid, errors, _ = cog_validate(path, strict=True)
with rasterio.open(path) as src:
    cells = {}
    for r, c in ((0, 0), (45, 100), (179, 359), (10, 300)):
        stored = src.read(window=((r, r + 1), (c, c + 1)))[:, 0, 0]
        cells[f"{r},{c}"] = [float(q) * s + o for q, s, o in zip(stored, src.scales, src.offsets)]
    print(json.dumps({"valid": valid, "errors": errors, "dtype": src.dtypes[0], "nodata": src.nodata,
                      "overviews": src.overviews(1), "int8": json.loads(src.tags()["satclip_int8"]),
                      "cells": cells}))
"#;

#[test]
fn an_int8_cog_states_its_error_and_gdal_scales_it_back_within_it() {
    let Some(python) = gdal_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let raster = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        satclip(
            &[&["raster", "--encoder", "sh-l10", "--resolution", "1", "--out", out.to_str().unwrap()], extra].concat(),
        );
        out
    };
    let (int8, float) = (raster("int8.tif", &["--int8"]), raster("f32.tif", &[]));
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&int8) * 4 < size(&float), "{} vs {} bytes", size(&int8), size(&float));
    let v = python_json(&python, INT8, &int8);
    assert_eq!((v["valid"].as_bool(), v["dtype"].as_str()), (Some(true), Some("int8")), "{v}");
    assert_eq!((v["nodata"].as_f64(), &v["overviews"]), (Some(-128.0), &serde_json::json!([2, 4])));
    // The smallest overview's range, widened, holds every value of this smooth basis.
    assert_eq!(v["int8"]["clamped_values"], 0, "{v}");
    let stated = v["int8"]["max_abs_error"].as_f64().unwrap();
    assert!(stated > 0.0 && stated < 0.05, "{v}");
    // `satclip info` says the values are stored as int8, and with what error.
    let (ok, info, err) = satclip_testkit::run(env!("CARGO_BIN_EXE_satclip"), &["info", int8.to_str().unwrap()]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["quantisation"]["dtype"], "int8", "{info}");
    assert_eq!(info["quantisation"]["max_abs_error"].as_f64(), Some(stated), "{info}");
    let (ok, info, _) = satclip_testkit::run(env!("CARGO_BIN_EXE_satclip"), &["info", float.to_str().unwrap()]);
    assert!(ok && !info.contains("quantisation"), "{info}");
    let encoder = satclip::FeatureEncoder::load("sh-l10").unwrap();
    for (key, cell) in v["cells"].as_object().unwrap() {
        let (r, c) = key.split_once(',').unwrap();
        let (r, c): (f64, f64) = (r.parse().unwrap(), c.parse().unwrap());
        let want = encoder.embed_f32(&[[-180.0 + c + 0.5, 90.0 - r - 0.5]]).unwrap();
        for (got, want) in cell.as_array().unwrap().iter().zip(&want) {
            let error = (got.as_f64().unwrap() - f64::from(*want)).abs();
            assert!(error <= stated + 1e-6, "cell {key}: off by {error}, the file states at most {stated}");
        }
    }
    let striped = dir.path().join("s.tif");
    let err = satclip_fails(&[
        "raster",
        "--encoder",
        "sh-l10",
        "--int8",
        "--layout",
        "striped",
        "--out",
        striped.to_str().unwrap(),
    ]);
    assert!(err.contains("--layout cog"), "{err}");
}

/// Sentinel-2 tiles as rasterio writes them: bands as separate planes (its default) or
/// interleaved by pixel, tiled with partial edge tiles or striped, LZW or ZSTD (as GDAL writes it,
/// big-endian too), and as float32 through the floating-point predictor: read as the same pixels
/// as the S2-100K original.
#[test]
fn tiles_written_by_rasterio_read_as_the_original_pixels() {
    let Some(python) = gdal_python() else { return };
    let Some(tile) = satclip_testkit::shared_file("data/s2-samples/patch_445.tif") else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import json, sys, numpy, rasterio
src, out = sys.argv[1], sys.argv[2]
with rasterio.open(src) as s:
    profile, data = s.profile, s.read()
tiled, striped = dict(tiled=True, blockxsize=112, blockysize=112), dict(tiled=False, blockysize=10)
files = {
    "lzw-band-tiled": dict(interleave="band", compress="lzw", predictor=2, **tiled),
    "lzw-band-striped": dict(interleave="band", compress="lzw", predictor=2, **striped),
    "zstd-pixel-tiled": dict(interleave="pixel", compress="zstd", predictor=2, **tiled),
    "zstd-band-striped": dict(interleave="band", compress="zstd", predictor=2, **striped),
    "zstd-pixel-big-endian": dict(interleave="pixel", compress="zstd", predictor=1, endianness="BIG", **striped),
    "zstd-float-band-tiled": dict(interleave="band", compress="zstd", predictor=3, dtype="float32", **tiled),
}
layouts = {}
for name, options in files.items():
    values = data.astype(numpy.float32) / numpy.float32(7) if options.get("dtype") == "float32" else data
    with rasterio.open(f"{out}/{name}.tif", "w", **dict(profile, **options)) as d:
        d.write(values)
    with rasterio.open(f"{out}/{name}.tif") as d:
        layouts[name] = [d.interleaving.name.lower(), d.compression.name.lower(), d.block_shapes[0]]
print(json.dumps(layouts))
"#;
    let run = Command::new(&python)
        .args(["-c", script, tile.to_str().unwrap(), dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let layouts: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(layouts["lzw-band-tiled"], serde_json::json!(["band", "lzw", [112, 112]]), "{layouts}");
    assert_eq!(layouts["zstd-pixel-tiled"], serde_json::json!(["pixel", "zstd", [112, 112]]), "{layouts}");
    assert_eq!(layouts["zstd-band-striped"].as_array().unwrap()[..2], ["band", "zstd"], "{layouts}");
    let original = satclip_io::geotiff::read(&tile).unwrap();
    for (name, _) in layouts.as_object().unwrap() {
        let read = satclip_io::geotiff::read(&dir.path().join(format!("{name}.tif"))).unwrap();
        assert_eq!((read.width, read.height, read.bands), (original.width, original.height, original.bands));
        assert_eq!(read.georef, original.georef, "{name}");
        let want: Vec<f32> = match name.contains("float") {
            true => original.data.iter().map(|v| v / 7.0).collect(),
            false => original.data.clone(),
        };
        assert!(read.data == want, "{name}: the pixels differ");
    }
}
