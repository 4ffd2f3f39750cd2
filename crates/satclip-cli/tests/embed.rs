//! `satclip embed` end to end: parity with the official outputs through every input format, and
//! the bad-input matrix (message names file, row and field; no output file is left behind).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{Array, Float32Array, Float64Array, Int64Array, ListArray, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use rand::SeedableRng;
use satclip::{Hyperparameters, LocationEncoder};
use satclip_testkit::{read_coords, read_npy, shared_file};

fn satclip(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_satclip")).args(args).output().expect("runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A small L=10 model in the native format, so these tests need no fixtures.
fn native_model(dir: &Path) -> PathBuf {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
    let hp = Hyperparameters { capacity: 32, embed_dim: 8, ..Hyperparameters::default() };
    let encoder = LocationEncoder::init(hp, &mut rng).unwrap();
    let path = dir.join("model");
    satclip::io::native::save(&encoder, &path).unwrap();
    path
}

fn write_npy(path: &Path, coords: &[[f64; 2]]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = satclip::io::npy::NpyWriter::new(file, satclip::Dtype::F64, 2).unwrap();
    w.write_rows(&coords.iter().flatten().copied().collect::<Vec<_>>()).unwrap();
    w.finish().unwrap();
}

fn first_batch(path: &Path) -> RecordBatch {
    let mut reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap();
    reader.next().unwrap().unwrap()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn npy_csv_and_parquet_inputs_reproduce_the_official_embeddings() {
    let (Some(ckpt), Some(coords_path), Some(expected)) = (
        shared_file("fixtures/satclip-resnet18-l10.ckpt"),
        shared_file("fixtures/coords.npy"),
        shared_file("fixtures/loc_emb_resnet18_l10.npy"),
    ) else {
        return;
    };
    let (_, dim, expected) = read_npy(&expected);
    let coords = read_coords(&coords_path);
    let dir = tempfile::tempdir().unwrap();

    // NPY in, NPY (f64) out: the command of the acceptance criteria.
    let out = dir.path().join("y.npy");
    let (ok, err) = satclip(&[
        "embed",
        "--checkpoint",
        p(&ckpt),
        "--input",
        p(&coords_path),
        "--output",
        p(&out),
        "--dtype",
        "f64",
    ]);
    assert!(ok, "{err}");
    let (rows, cols, got) = read_npy(&out);
    assert_eq!((rows, cols), (coords.len(), dim));
    assert!(max_abs_diff(&got, &expected) <= 1e-8);

    // CSV in (with an id column and a different spelling), NPY out.
    let csv = dir.path().join("points.csv");
    let mut text = String::from("id,Latitude,Longitude\n");
    for (i, [lon, lat]) in coords.iter().enumerate() {
        text.push_str(&format!("{i},{lat:?},{lon:?}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("from_csv.npy");
    let (ok, err) =
        satclip(&["embed", "--checkpoint", p(&ckpt), "--input", p(&csv), "--output", p(&out), "--dtype", "f64"]);
    assert!(ok, "{err}");
    assert!(max_abs_diff(&read_npy(&out).2, &expected) <= 1e-8);

    // Parquet in, Parquet out: input columns kept, in order, plus the embedding list column.
    let parquet_in = dir.path().join("points.parquet");
    let batch = RecordBatch::try_from_iter([
        ("site", Arc::new(Int64Array::from_iter_values(0..coords.len() as i64)) as Arc<dyn Array>),
        ("lon", Arc::new(Float64Array::from_iter_values(coords.iter().map(|c| c[0])))),
        ("lat", Arc::new(Float64Array::from_iter_values(coords.iter().map(|c| c[1])))),
    ])
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&parquet_in).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let out = dir.path().join("out.parquet");
    let (ok, err) = satclip(&[
        "embed",
        "--checkpoint",
        p(&ckpt),
        "--input",
        p(&parquet_in),
        "--output",
        p(&out),
        "--dtype",
        "f64",
        "--batch-size",
        "100",
    ]);
    assert!(ok, "{err}");
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap()).unwrap().build().unwrap();
    let (mut sites, mut values) = (Vec::new(), Vec::new());
    for batch in reader {
        let batch = batch.unwrap();
        let names: Vec<_> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        // GeoParquet 1.1: a point geometry and its bbox covering join the input's columns.
        assert_eq!(names, ["site", "lon", "lat", "geometry", "bbox", "embedding"]);
        let site = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        sites.extend(site.values().iter().copied());
        let list = batch.column(5).as_any().downcast_ref::<ListArray>().unwrap();
        for i in 0..list.len() {
            let row = list.value(i);
            let row = row.as_any().downcast_ref::<Float64Array>().unwrap();
            assert_eq!(row.len(), dim);
            values.extend(row.values().iter().copied());
        }
    }
    assert_eq!(sites, (0..coords.len() as i64).collect::<Vec<_>>(), "rows keep input order");
    assert!(max_abs_diff(&values, &expected) <= 1e-8);

    // The default f32 path (f32 matrix products) stays within 1e-5 of the f64 values, relative to
    // the embedding's norm.
    let out32 = dir.path().join("out32.parquet");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&ckpt), "--input", p(&parquet_in), "--output", p(&out32)]);
    assert!(ok, "{err}");
    let batch = first_batch(&out32);
    let list = batch.column_by_name("embedding").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
    let first = list.value(0);
    let first = first.as_any().downcast_ref::<Float32Array>().unwrap();
    let norm = expected[..dim].iter().map(|v| v * v).sum::<f64>().sqrt();
    for (a, b) in first.values().iter().zip(&expected[..dim]) {
        assert!((*a as f64 - b).abs() <= 1e-5 * norm);
    }
}

#[test]
fn convert_then_embed_from_the_native_format_is_lossless() {
    let (Some(ckpt), Some(coords_path)) =
        (shared_file("fixtures/satclip-vit16-l40.ckpt"), shared_file("fixtures/coords.npy"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("vit16-l40");
    let (ok, err) = satclip(&["convert", "--checkpoint", p(&ckpt), "--output", p(&native)]);
    assert!(ok, "{err}");
    let from_ckpt = dir.path().join("a.npy");
    let from_native = dir.path().join("b.npy");
    for (model, out) in [(&ckpt, &from_ckpt), (&native, &from_native)] {
        let (ok, err) = satclip(&[
            "embed",
            "--checkpoint",
            p(model),
            "--input",
            p(&coords_path),
            "--output",
            p(out),
            "--dtype",
            "f64",
        ]);
        assert!(ok, "{err}");
    }
    assert_eq!(read_npy(&from_ckpt).2, read_npy(&from_native).2);
}

/// Runs a failing embed and checks the message and that no output (nor temporary) is left.
fn assert_rejected(model: &Path, input: &Path, extra: &[&str], needles: &[&str]) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.parquet");
    let mut args = vec!["embed", "--checkpoint", p(model), "--input", p(input), "--output", p(&out)];
    args.extend_from_slice(extra);
    let (ok, err) = satclip(&args);
    assert!(!ok, "expected failure for {}", input.display());
    for needle in needles {
        assert!(err.contains(needle), "message {err:?} lacks {needle:?}");
    }
    let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "output directory is not empty after a failure: {left:?}");
}

#[test]
fn bad_inputs_name_file_row_and_field_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let csv = |name: &str, body: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    // Bad values in row 3 (the header is not a row), after good rows.
    let good = "lon,lat\n10,20\n-30.5,45\n";
    let nan = csv("nan.csv", format!("{good}NaN,1\n").as_bytes());
    assert_rejected(&model, &nan, &[], &["nan.csv", "row 3", "`lon`", "not a finite number"]);
    let inf = csv("inf.csv", format!("{good}1,inf\n").as_bytes());
    assert_rejected(&model, &inf, &[], &["inf.csv", "row 3", "`lat`", "finite"]);
    let lat = csv("lat.csv", format!("{good}1,91.5\n").as_bytes());
    assert_rejected(&model, &lat, &[], &["lat.csv", "row 3", "`lat`", "91.5", "[-90, 90]"]);
    let lon = csv("lon.csv", format!("{good}190,1\n").as_bytes());
    assert_rejected(&model, &lon, &[], &["lon.csv", "row 3", "`lon`", "190", "--wrap-lon"]);
    let text = csv("text.csv", format!("{good}east,1\n").as_bytes());
    assert_rejected(&model, &text, &[], &["row 3", "`lon`", "`east` is not a number"]);
    let empty_field = csv("blank.csv", format!("{good},1\n").as_bytes());
    assert_rejected(&model, &empty_field, &[], &["row 3", "`lon`", "empty value"]);
    let ragged = csv("ragged.csv", format!("{good}1,2,3\n").as_bytes());
    assert_rejected(&model, &ragged, &[], &["row 3", "3 fields"]);
    let mut bytes = b"name,lon,lat\nok,1,2\n".to_vec();
    bytes.extend_from_slice(b"caf\xe9,1,2\n");
    let latin1 = csv("latin1.csv", &bytes);
    assert_rejected(&model, &latin1, &[], &["latin1.csv", "row 2", "`name`", "UTF-8"]);

    let missing = csv("missing.csv", b"x,y\n1,2\n");
    assert_rejected(&model, &missing, &[], &["missing.csv", "no longitude column", "x, y", "--lon-col"]);
    assert_rejected(
        &model,
        &missing,
        &["--lon-col", "x", "--lat-col", "elevation"],
        &["no latitude column", "`elevation`"],
    );
    let header_only = csv("header_only.csv", b"lon,lat\n");
    assert_rejected(&model, &header_only, &[], &["header_only.csv", "no data rows"]);
    let zero = csv("zero.csv", b"");
    assert_rejected(&model, &zero, &[], &["zero.csv"]);
    assert_rejected(&model, &dir.path().join("absent.csv"), &[], &["absent.csv", "No such file"]);
    let unknown = csv("points.txt", b"lon,lat\n1,2\n");
    assert_rejected(&model, &unknown, &[], &["points.txt", "unknown file type"]);

    // NPY and Parquet inputs report rows the same way.
    let npy = dir.path().join("bad.npy");
    write_npy(&npy, &[[0.0, 0.0], [1.0, 2.0], [5.0, -95.0]]);
    assert_rejected(&model, &npy, &[], &["bad.npy", "row 3", "`lat`", "-95"]);
    let truncated = csv("truncated.npy", &std::fs::read(&npy).unwrap()[..140]);
    assert_rejected(&model, &truncated, &[], &["truncated.npy", "needs"]);
    let parquet = dir.path().join("nulls.parquet");
    let batch = RecordBatch::try_from_iter([
        ("longitude", Arc::new(Float64Array::from(vec![Some(1.0), None])) as Arc<dyn Array>),
        ("latitude", Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0)]))),
    ])
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&parquet).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    assert_rejected(&model, &parquet, &[], &["nulls.parquet", "row 2", "`longitude`", "missing value"]);
    let not_parquet = csv("fake.parquet", b"lon,lat\n1,2\n");
    assert_rejected(&model, &not_parquet, &[], &["fake.parquet", "Parquet"]);

    // Tables whose columns cannot travel to the output; control characters are shown escaped.
    let twice = csv("twice.csv", b"lon,lat,name,name\n1,2,a,b\n");
    assert_rejected(&model, &twice, &[], &["twice.csv", "columns 3 and 4 are both named `name`"]);
    let wide = csv(
        "wide.csv",
        format!("lon,lat{}\n1,2\n", (0..5000).map(|i| format!(",c{i}")).collect::<String>()).as_bytes(),
    );
    assert_rejected(&model, &wide, &[], &["wide.csv", "5002 columns", "at most 4096"]);
    let nul = csv("nul.csv", b"lon,lat\n1,2\nx\x00\x1b[31m,2\n");
    assert_rejected(&model, &nul, &[], &["row 2", "\\u{0}\\u{1b}[31m"]);
    let (_, err) =
        satclip(&["embed", "--checkpoint", p(&model), "--input", p(&nul), "--output", p(&dir.path().join("o.csv"))]);
    assert!(!err.contains('\0') && !err.contains('\x1b'), "{err:?}");

    // A bad checkpoint is named too.
    let bogus = csv("bogus.ckpt", b"not a zip");
    assert_rejected(&bogus, &lon, &[], &["bogus.ckpt", "not a zip-format torch checkpoint"]);
}

#[test]
fn wrap_lon_accepts_what_it_wraps_and_csv_output_keeps_columns() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let input = dir.path().join("p.csv");
    std::fs::write(&input, "name,lon,lat\na,190,10\nb,-170,10\nc,0,-90\n").unwrap();
    let out = dir.path().join("e.csv");
    let (ok, err) =
        satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out), "--wrap-lon"]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(lines[0][..4], ["name", "lon", "lat", "emb_0"]);
    assert_eq!(lines[0].len(), 3 + 8);
    assert_eq!(lines[1][0], "a");
    assert_eq!(lines[1][3..], lines[2][3..], "190 wraps to -170");
    assert_eq!(lines.len(), 4);
}

#[test]
fn library_api_embeds_and_rejects_bad_points() {
    use satclip::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let encoder = LocationEncoder::from_checkpoint(&model).unwrap();
    let e = encoder.embed(&[[-122.4194, 37.7749], [139.7, 35.7]]).unwrap();
    assert_eq!((e.rows, e.dim), (2, 8));
    let err = encoder.embed(&[[0.0, 0.0], [0.0, 100.0]]).unwrap_err().to_string();
    assert!(err.contains("point 1") && err.contains("lat"), "{err}");
}

#[test]
fn csv_text_columns_travel_to_parquet_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let input = dir.path().join("p.csv");
    std::fs::write(&input, "station,lng,lat\n\"Zürich, CH\",8.54,47.37\n").unwrap();
    let out = dir.path().join("e.parquet");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out)]);
    assert!(ok, "{err}");
    let batch = first_batch(&out);
    let station = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(station.value(0), "Zürich, CH");
    let lng = batch.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(lng.value(0), 8.54);
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

/// A GeoParquet file as geopandas writes it: a WKB `geometry` column and `geo` metadata.
fn write_geoparquet(path: &Path, geometry: Vec<Vec<u8>>, crs: &str) {
    let geo = format!(
        r#"{{"version":"1.1.0","primary_column":"geometry","columns":{{"geometry":{{"encoding":"WKB","geometry_types":["Point"],"crs":{crs}}}}}}}"#
    );
    let names: Vec<String> = (0..geometry.len()).map(|i| format!("site {i}")).collect();
    let schema = Arc::new(arrow_schema::Schema::new_with_metadata(
        vec![
            arrow_schema::Field::new("name", arrow_schema::DataType::Utf8, false),
            arrow_schema::Field::new("geometry", arrow_schema::DataType::Binary, false),
        ],
        std::collections::HashMap::from([("geo".to_string(), geo)]),
    ));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(names)), Arc::new(arrow_array::BinaryArray::from_iter_values(geometry.iter()))],
    )
    .unwrap();
    write_parquet(path, &batch);
}

fn wkb(kind: u32, coords: &[f64]) -> Vec<u8> {
    let mut bytes = vec![1];
    bytes.extend(kind.to_le_bytes());
    coords.iter().for_each(|c| bytes.extend(c.to_le_bytes()));
    bytes
}

#[test]
fn geoparquet_points_embed_like_lon_lat_and_stay_geoparquet() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let coords = [[-122.42, 37.77], [2.35, 48.86], [151.2, -33.87]];
    let input = dir.path().join("sites.geoparquet");
    let epsg4326 = r#"{"type":"GeographicCRS","name":"WGS 84","id":{"authority":"EPSG","code":4326}}"#;
    write_geoparquet(&input, coords.iter().map(|c| wkb(1, c)).collect(), epsg4326);
    let out = dir.path().join("sites.parquet");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out)]);
    assert!(ok, "{err}");
    let npy_in = dir.path().join("sites.npy");
    write_npy(&npy_in, &coords);
    let npy_out = dir.path().join("e.npy");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&npy_in), "--output", p(&npy_out)]);
    assert!(ok, "{err}");
    let batch = first_batch(&out);
    let names: Vec<_> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["name", "geometry", "bbox", "embedding"], "the input's geometry, no second one");
    let written = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap()).unwrap();
    let geo = written.schema().metadata().get("geo").cloned().unwrap_or_default();
    assert!(geo.contains("\"primary_column\":\"geometry\""), "stays GeoParquet: {geo:?}");
    assert!(geo.contains("\"version\":\"1.1.0\"") && geo.contains("\"code\":4326"), "1.1, its CRS kept: {geo:?}");
    let list = batch.column(3).as_any().downcast_ref::<ListArray>().unwrap();
    let got: Vec<f64> = (0..3)
        .flat_map(|r| {
            let row = list.value(r);
            let row = row.as_any().downcast_ref::<Float32Array>().unwrap().clone();
            row.values().iter().map(|v| *v as f64).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got, read_npy(&npy_out).2, "the same points as lon/lat give the same embeddings");

    let projected =
        r#"{"type":"ProjectedCRS","name":"WGS 84 / Pseudo-Mercator","id":{"authority":"EPSG","code":3857}}"#;
    write_geoparquet(&input, coords.iter().map(|c| wkb(1, c)).collect(), projected);
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out)]);
    assert!(!ok && err.contains("EPSG:3857") && err.contains("reproject"), "{err}");
    // A CRS given as a plain string, as some writers do, is named as well.
    write_geoparquet(&input, coords.iter().map(|c| wkb(1, c)).collect(), r#""EPSG:3857""#);
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out)]);
    assert!(!ok && err.contains("EPSG:3857") && !err.contains("null"), "{err}");
    write_geoparquet(&input, coords.iter().map(|c| wkb(1, c)).collect(), r#""OGC:CRS84""#);
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out)]);
    assert!(ok, "{err}");
    write_geoparquet(&input, vec![wkb(1, &coords[0]), wkb(2, &[0.0, 0.0, 1.0, 1.0])], "null");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out)]);
    assert!(!ok && err.contains("row 2, field `geometry`: a LineString, not a Point"), "{err}");
}

/// The README's first command: the built-in model, no checkpoint needed.
#[test]
fn readme_main_command_runs_on_the_builtin_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cities.parquet");
    let cities = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cities.csv");
    let (ok, err) = satclip(&["embed", "--input", p(&cities), "--output", p(&out)]);
    assert!(ok, "{err}");
    let batch = first_batch(&out);
    assert_eq!(batch.num_rows(), 24);
    let names: Vec<_> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["name", "lon", "lat", "geometry", "bbox", "embedding"]);

    // Every example input format gives the same 24 embeddings.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let embed_to_npy = |input: &str| {
        let out = dir.path().join(format!("{input}.npy"));
        let (ok, err) = satclip(&["embed", "--input", p(&examples.join(input)), "--output", p(&out)]);
        assert!(ok, "{input}: {err}");
        read_npy(&out)
    };
    let reference = embed_to_npy("cities.csv");
    assert_eq!((reference.0, reference.1), (24, 256));
    for input in ["cities.parquet", "cities.npy", "cities.geoparquet"] {
        assert_eq!(embed_to_npy(input), reference, "{input}");
    }
}

#[test]
fn geoclip_and_unlearned_features_embed_as_in_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("points.npy");
    let coords = [[-122.42, 37.77], [2.35, 48.86], [151.2, -33.87], [-179.99, -89.0]];
    write_npy(&input, &coords);
    let mut encoders = vec![("sh-l10", 100, Vec::new(), satclip::FeatureEncoder::load("sh-l10").unwrap())];
    if let Some(weights) = satclip_testkit::data_file(satclip::GEOCLIP_WEIGHTS_FILE) {
        let model = satclip::FeatureEncoder::new(satclip::load_geoclip(&weights).unwrap(), &weights);
        encoders.push(("geoclip", 512, vec![("SATCLIP_GEOCLIP_WEIGHTS", weights)], model));
    }
    for (name, dim, env, library) in encoders {
        let output = dir.path().join(format!("{name}.npy"));
        let out = Command::new(env!("CARGO_BIN_EXE_satclip"))
            .args(["embed", "--encoder", name, "--input", p(&input), "--output", p(&output), "--dtype", "f64"])
            .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let (rows, cols, values) = read_npy(&output);
        assert_eq!((rows, cols), (coords.len(), dim), "{name}");
        let (expected, _) = library.features(&coords).unwrap();
        assert_eq!(values, expected, "{name}: the file holds exactly what the library computes");
    }
}

#[test]
fn outputs_that_would_destroy_inputs_or_cannot_be_written_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let input = dir.path().join("points.csv");
    let body = "lon,lat\n1,2\n3,4\n";
    std::fs::write(&input, body).unwrap();
    let same = dir.path().join(".").join("points.csv");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&same)]);
    assert!(!ok && err.contains("is also the input"), "{err}");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), body, "the input is untouched");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(dir.path())]);
    assert!(!ok && err.contains("is a directory"), "{err}");
    // `--output`, as `embed` spells it, is raster's `--out` too.
    let (ok, err) = satclip(&["raster", "--encoder", "wrap", "--resolution", "10", "--output", p(dir.path())]);
    assert!(!ok && err.contains("is a directory"), "{err}");
}

#[cfg(unix)]
#[test]
fn pipes_named_as_inputs_are_refused_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let fifo = dir.path().join("points.npy");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let out = dir.path().join("out.npy");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&fifo), "--output", p(&out)]);
    assert!(!ok && err.contains("not a regular file"), "{err}");
    let ckpt = dir.path().join("model.ckpt");
    Command::new("mkfifo").arg(&ckpt).status().unwrap();
    let csv = dir.path().join("p.csv");
    std::fs::write(&csv, "lon,lat\n1,2\n").unwrap();
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&ckpt), "--input", p(&csv), "--output", p(&out)]);
    assert!(!ok && err.contains("not a regular file"), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn an_interrupted_run_leaves_no_temporary_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("many.npy");
    let coords: Vec<[f64; 2]> =
        (0..400_000).map(|i| [(i % 360) as f64 - 180.0, ((i / 360) % 180) as f64 - 90.0]).collect();
    write_npy(&input, &coords);
    let out = dir.path().join("out.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_satclip"))
        .args(["embed", "--encoder", "sh-l40", "--input", p(&input), "--output", p(&out)])
        .spawn()
        .unwrap();
    // Wait until the temporary exists, then interrupt.
    let temp_exists = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".out.csv."))
    };
    let mut waited = 0;
    while !temp_exists() && waited < 600 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }
    assert!(temp_exists(), "the run started writing");
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exits as interrupted");
    assert!(!temp_exists() && !out.exists(), "no temporary and no partial output");
}

/// Columns that name the embedding's points in two ways: wrong lon/lat and the true WKB points.
fn write_two_ways(path: &Path, coords: &[[f64; 2]]) -> RecordBatch {
    let batch = RecordBatch::try_from_iter([
        ("lon", Arc::new(Float64Array::from(vec![0.0; coords.len()])) as Arc<dyn Array>),
        ("lat", Arc::new(Float64Array::from(vec![0.0; coords.len()])) as Arc<dyn Array>),
        (
            "geom",
            Arc::new(arrow_array::BinaryArray::from_iter_values(coords.iter().map(|c| wkb(1, c)))) as Arc<dyn Array>,
        ),
    ])
    .unwrap();
    write_parquet(path, &batch);
    batch
}

fn embedding_rows(path: &Path) -> Vec<f32> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap();
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let list = batch.column_by_name("embedding").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
        values.extend(list.values().as_any().downcast_ref::<Float32Array>().unwrap().values().iter().copied());
    }
    values
}

#[test]
fn geometry_col_reads_wkb_points_beside_lon_lat_columns() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let coords = [[-122.42, 37.77], [2.35, 48.86], [151.2, -33.87]];
    let input = dir.path().join("two.parquet");
    write_two_ways(&input, &coords);
    let npy_in = dir.path().join("sites.npy");
    write_npy(&npy_in, &coords);
    let npy_out = dir.path().join("e.npy");
    let (ok, err) = satclip(&["embed", "--checkpoint", p(&model), "--input", p(&npy_in), "--output", p(&npy_out)]);
    assert!(ok, "{err}");
    let expected: Vec<f32> = read_npy(&npy_out).2.iter().map(|&v| v as f32).collect();

    let out = dir.path().join("out.parquet");
    let run = |extra: &[&str]| {
        let mut args = vec!["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out)];
        args.extend(extra);
        satclip(&args)
    };
    let (ok, err) = run(&["--geometry-col", "geom"]);
    assert!(ok, "{err}");
    assert_eq!(embedding_rows(&out), expected, "the WKB points, not the lon/lat columns");
    let (ok, err) = run(&[]);
    assert!(ok, "{err}");
    assert_ne!(embedding_rows(&out), expected, "without the flag, the lon/lat columns");
    let (ok, err) = run(&["--geometry-col", "lon"]);
    assert!(!ok && err.contains("column `lon` has type Float64, expected WKB points"), "{err}");
    let (ok, err) = run(&["--geometry-col", "nope"]);
    assert!(!ok && err.contains("no geometry column (looked for `nope`"), "{err}");
    let (ok, err) = run(&["--geometry-col", "geom", "--lon-col", "lon"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, err) = satclip(&[
        "embed",
        "--checkpoint",
        p(&model),
        "--input",
        p(&npy_in),
        "--output",
        p(&out),
        "--geometry-col",
        "geom",
    ]);
    assert!(!ok && err.contains("from Parquet files only"), "{err}");
}

/// What engines hand over (a Spark task's Arrow batches) is embedded into the file the command
/// line writes for a Parquet file of the same rows.
#[test]
fn arrow_streams_embed_into_the_file_of_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let coords: Vec<[f64; 2]> = (0..1000).map(|i| [-179.5 + 0.35 * i as f64, -80.0 + 0.16 * i as f64]).collect();
    let input = dir.path().join("two.parquet");
    let batch = write_two_ways(&input, &coords);
    let from_file = dir.path().join("file.parquet");
    let (ok, err) = satclip(&[
        "embed",
        "--checkpoint",
        p(&model),
        "--input",
        p(&input),
        "--output",
        p(&from_file),
        "--geometry-col",
        "geom",
    ]);
    assert!(ok, "{err}");

    let encoder = satclip::FeatureEncoder::load(p(&model)).unwrap();
    // Batches of at most 256 rows are embedded and written while the stream's are uneven, as a
    // producer may hand them over, and larger.
    let read =
        satclip::ReadOptions { geometry_col: Some("geom".into()), batch_size: 256, ..satclip::ReadOptions::default() };
    let options = satclip::EmbedOptions { read: read.clone(), dtype: satclip::Dtype::F32 };
    let parts: Vec<_> = [0..1, 1..400, 400..1000].into_iter().map(|r| Ok(batch.slice(r.start, r.len()))).collect();
    let name = Path::new("partition 7");
    let points =
        satclip::io::tables::PointReader::from_batches(name, batch.schema(), Box::new(parts.into_iter()), &read);
    let from_stream = dir.path().join("stream.parquet");
    let mut done = Vec::new();
    let summary =
        satclip::embed_points(&encoder, points.unwrap(), &from_stream, &options, &mut |p| done.push(p)).unwrap();
    assert_eq!(summary.rows, 1000);
    let steps: Vec<u64> =
        done.iter().filter_map(|p| if let satclip::Progress::Done(n) = p { Some(*n) } else { None }).collect();
    assert_eq!(steps, [1, 257, 400, 656, 912, 1000], "the batches as embedded");
    let (a, b) = (first_batch(&from_file), first_batch(&from_stream));
    assert_eq!(a.schema(), b.schema(), "the same columns and metadata");
    assert_eq!(embedding_rows(&from_file), embedding_rows(&from_stream));
    let footer = |path: &Path| satclip::io::tables::parquet_metadata(path, "satclip").unwrap();
    assert_eq!(footer(&from_file), footer(&from_stream), "the same provenance");
    assert!(satclip::io::tables::parquet_metadata(&from_stream, "geo").unwrap().is_some(), "GeoParquet");

    // A bad point names the stream and its row.
    let mut bad = coords.clone();
    bad[500] = [0.0, 95.0];
    let bad_batch = write_two_ways(&dir.path().join("bad.parquet"), &bad);
    let points = satclip::io::tables::PointReader::from_batches(
        name,
        bad_batch.schema(),
        Box::new(std::iter::once(Ok(bad_batch.clone()))),
        &read,
    );
    let out = dir.path().join("bad-out.parquet");
    let err = satclip::embed_points(&encoder, points.unwrap(), &out, &options, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("partition 7") && err.contains("row 501") && err.contains("lat"), "{err}");
    assert!(!out.exists(), "nothing written");
}

/// A missing value later in a batch does not hide an earlier bad row: errors name the first.
#[test]
fn the_first_bad_row_of_a_batch_is_the_one_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let input = dir.path().join("bad.parquet");
    let out = dir.path().join("out.parquet");
    let write = |lats: Vec<f64>| {
        let batch = RecordBatch::try_from_iter([
            (
                "lon",
                Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0), None])) as Arc<dyn Array>,
            ),
            ("lat", Arc::new(Float64Array::from(lats)) as Arc<dyn Array>),
        ])
        .unwrap();
        write_parquet(&input, &batch);
    };
    let run = || satclip(&["embed", "--checkpoint", p(&model), "--input", p(&input), "--output", p(&out)]);
    write(vec![0.0, 0.0, 95.0, 0.0, 0.0]);
    let (ok, err) = run();
    assert!(!ok && err.contains("row 3, field `lat`"), "{err}");
    write(vec![0.0; 5]);
    let (ok, err) = run();
    assert!(!ok && err.contains("row 5, field `lon`: missing value (null)"), "{err}");
    assert!(!out.exists());
}

#[test]
fn on_invalid_null_keeps_every_row_and_embeds_the_valid_ones_as_alone() {
    let dir = tempfile::tempdir().unwrap();
    let model = native_model(dir.path());
    let input = dir.path().join("dirty.csv");
    // Rows 2-5 have no valid point: empty, text, out of range, NaN.
    std::fs::write(&input, "name,lon,lat\na,10,50\nb,,50\nc,east,1\nd,20,95\ne,NaN,3\nf,-70,-30\n").unwrap();
    let clean = dir.path().join("clean.csv");
    std::fs::write(&clean, "name,lon,lat\na,10,50\nf,-70,-30\n").unwrap();
    let embed = |input: &Path, output: &Path, extra: &[&str]| {
        satclip(&[&["embed", "--checkpoint", p(&model), "--input", p(input), "--output", p(output)], extra].concat())
    };

    // By default the first bad row stops the run and nothing is written.
    let out = dir.path().join("dirty.parquet");
    let (ok, err) = embed(&input, &out, &[]);
    assert!(!ok && err.contains("row 2, field `lon`: empty value"), "{err}");
    assert!(!out.exists());

    let (ok, err) = embed(&input, &out, &["--on-invalid", "null"]);
    assert!(ok, "{err}");
    // The count, and why the first such row has no point, in the words of the error mode.
    assert!(err.contains("4 of 6 rows had no valid point"), "{err}");
    assert!(err.contains("the first: ") && err.contains("row 2, field `lon`: empty value"), "{err}");
    let reference = dir.path().join("clean.parquet");
    assert!(embed(&clean, &reference, &[]).0);
    let batch = first_batch(&out);
    assert_eq!(batch.num_rows(), 6);
    let list = batch.column_by_name("embedding").unwrap();
    let nulls: Vec<bool> = (0..6).map(|i| list.is_null(i)).collect();
    assert_eq!(nulls, [false, true, true, true, true, false]);
    let geometry = batch.column_by_name("geometry").unwrap();
    assert_eq!((0..6).map(|i| geometry.is_null(i)).collect::<Vec<_>>(), nulls);
    // The valid rows' embeddings are those of a file holding only them.
    assert_eq!(embedding_rows(&out), embedding_rows(&reference));
    let lon = batch.column_by_name("lon").unwrap().as_any().downcast_ref::<Float64Array>().unwrap();
    assert!(lon.is_null(1) && lon.is_null(2) && lon.value(3) == 20.0, "unreadable values are null, others kept");

    // CSV leaves the embedding cells empty; NPY, which has no nulls, holds NaN rows.
    let csv_out = dir.path().join("dirty.csv.out.csv");
    assert!(embed(&input, &csv_out, &["--on-invalid", "null"]).0);
    let text = std::fs::read_to_string(&csv_out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7);
    assert!(lines[4].starts_with("d,20.0,95.0,,,,,,,,"), "{}", lines[4]);
    assert!(!lines[6].contains(",,"), "{}", lines[6]);
    let npy_out = dir.path().join("dirty.npy");
    assert!(embed(&input, &npy_out, &["--on-invalid", "null"]).0);
    let (rows, cols, values) = read_npy(&npy_out);
    assert_eq!((rows, cols), (6, 8));
    let row_is_nan: Vec<bool> = values.chunks(8).map(|r| r.iter().all(|v| v.is_nan())).collect();
    assert_eq!(row_is_nan, nulls);

    // Parquet input: null coordinates and geometries that are not points.
    let parquet = dir.path().join("nulls.parquet");
    let geometry = vec![Some(wkb(1, &[10.0, 50.0])), None, Some(wkb(2, &[0.0, 0.0])), Some(wkb(1, &[-70.0, -30.0]))];
    let batch = RecordBatch::try_from_iter([(
        "geom",
        Arc::new(arrow_array::BinaryArray::from_iter(geometry.iter().map(|g| g.as_deref()))) as Arc<dyn Array>,
    )])
    .unwrap();
    write_parquet(&parquet, &batch);
    let out = dir.path().join("from-wkb.parquet");
    let (ok, err) = embed(&parquet, &out, &["--geometry-col", "geom"]);
    assert!(!ok && err.contains("row 2, field `geom`: missing geometry (null)"), "{err}");
    let (ok, err) = embed(&parquet, &out, &["--geometry-col", "geom", "--on-invalid", "null"]);
    assert!(ok && err.contains("2 of 4 rows"), "{err}");
    assert_eq!(embedding_rows(&out), embedding_rows(&reference));
    let (ok, err) = embed(&parquet, &out, &["--on-invalid", "skip"]);
    assert!(!ok && err.contains("possible values: error, null"), "{err}");
}
