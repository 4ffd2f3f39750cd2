//! Datasets of Parquet files: a hive-partitioned directory or a glob in, the same layout out,
//! equal to embedding each file alone; a rerun skips finished files and redoes missing ones.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow_array::{Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

fn write_points(path: &Path, first: usize, n: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("lon", DataType::Float64, false),
        Field::new("lat", DataType::Float64, false),
    ]));
    let ids: Vec<String> = (first..first + n).map(|i| format!("p{i}")).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(Float64Array::from(
                (first..first + n).map(|i| (i as f64 * 7.3) % 360.0 - 180.0).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                (first..first + n).map(|i| (i as f64 * 3.1) % 180.0 - 90.0).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn satclip(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_satclip")).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr
}

#[test]
fn a_partitioned_dataset_keeps_its_layout_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("points");
    let files = ["region=eu/part-0.parquet", "region=eu/part-1.parquet", "region=us/part-0.parquet"];
    for (i, file) in files.iter().enumerate() {
        write_points(&input.join(file), i * 1000, 700 + i * 100);
    }
    std::fs::write(input.join("region=eu/_SUCCESS"), "").unwrap();
    let output = dir.path().join("embedded");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let said = satclip(&["embed", "--input", i, "--output", o]);
    assert!(said.contains("embedded 3 files (2400 points)") && said.contains("0 already there"), "{said}");

    // Each output equals embedding its file alone.
    for file in files {
        let alone = dir.path().join("alone.parquet");
        let _ = std::fs::remove_file(&alone);
        satclip(&["embed", "--input", input.join(file).to_str().unwrap(), "--output", alone.to_str().unwrap()]);
        assert_eq!(std::fs::read(output.join(file)).unwrap(), std::fs::read(&alone).unwrap(), "{file}");
    }

    // A rerun skips what is there and redoes what is missing.
    let kept = std::fs::metadata(output.join(files[0])).unwrap().modified().unwrap();
    std::fs::remove_file(output.join(files[2])).unwrap();
    let said = satclip(&["embed", "--input", i, "--output", o]);
    assert!(said.contains("embedded 1 files (900 points)") && said.contains("2 already there"), "{said}");
    assert_eq!(std::fs::metadata(output.join(files[0])).unwrap().modified().unwrap(), kept);
    assert!(output.join(files[2]).exists());

    // A glob picks files, and the layout is relative to the directory before the first wildcard.
    let globbed = dir.path().join("globbed");
    let pattern = format!("{i}/region=e*/*.parquet");
    let said = satclip(&["embed", "--input", &pattern, "--output", globbed.to_str().unwrap()]);
    assert!(said.contains("embedded 2 files"), "{said}");
    assert!(globbed.join(files[1]).exists() && !globbed.join(files[2]).exists());
}

#[test]
fn a_bad_file_in_a_dataset_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("points");
    write_points(&input.join("a.parquet"), 0, 10);
    std::fs::write(input.join("b.parquet"), b"PAR1 not really").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_satclip"))
        .args([
            "embed",
            "--input",
            input.to_str().unwrap(),
            "--output",
            dir.path().join("out").to_str().unwrap(),
            "--jobs",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("b.parquet"), "{stderr}");
    assert!(!dir.path().join("out/b.parquet").exists());
}
