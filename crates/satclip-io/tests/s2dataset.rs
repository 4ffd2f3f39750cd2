use satclip_io::s2dataset::{S2Dataset, MIN_FILE_BYTES};
use satclip_testkit::shared_dir;

#[test]
fn opens_the_sample_index_with_latitude_first() {
    let Some(dir) = shared_dir().map(|d| d.join("data/s2-samples")) else {
        return;
    };
    let ds = S2Dataset::open(&dir).unwrap();
    assert_eq!(ds.entries.len(), 20);
    let first = &ds.entries[0];
    assert!(first.file.ends_with("patch_75123.tif"));
    assert!((first.lat + 54.18078401057424).abs() < 1e-12 && (first.lon + 68.2091418648589).abs() < 1e-12);
}

#[test]
fn small_files_are_skipped_and_the_split_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    let mut index = String::from("lat,lon,url,fn\n");
    for i in 0..50 {
        let size = if i == 7 { 100 } else { MIN_FILE_BYTES as usize };
        std::fs::write(dir.path().join(format!("images/patch_{i}.tif")), vec![0u8; size]).unwrap();
        index.push_str(&format!("{},{},http://example/{i},patch_{i}.tif\n", i as f64 - 25.0, i as f64 * 3.0));
    }
    std::fs::write(dir.path().join("index.csv"), &index).unwrap();
    let ds = S2Dataset::open(dir.path()).unwrap();
    assert_eq!(ds.entries.len(), 49);
    assert!(ds.skipped_small[0].ends_with("patch_7.tif"));

    std::fs::write(dir.path().join("index.csv"), index.replace("-23,6,", "-23,x,")).unwrap();
    let err = S2Dataset::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("index.csv") && err.contains("row 3") && err.contains("`lon`"), "{err}");
}
