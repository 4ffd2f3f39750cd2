//! Tests that need the shared fixtures (official checkpoints and outputs) find them here. When
//! they are absent the test prints why and returns early, so the suite still runs anywhere.

pub mod hub;

use std::path::{Path, PathBuf};

/// Set (to anything but `0`) by `.ci/run`: a test that would skip for missing data fails.
pub const REQUIRE_DATA: &str = "SATCLIP_REQUIRE_DATA";

/// Reports a skipped test, or fails it when [`REQUIRE_DATA`] is set, so that CI cannot pass by
/// skipping.
pub fn skip(why: &str) {
    if std::env::var_os(REQUIRE_DATA).is_some_and(|v| v != "0") {
        panic!("{REQUIRE_DATA} is set and this test's data is missing: {why}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests,
    // which would hide the skip; this line shows in every `cargo test` run.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// `$SATCLIP_SHARED`, or `../shared` beside the repository; `None` after [`skip`].
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SATCLIP_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    skip(&format!("{} is not available (set SATCLIP_SHARED to the shared folder)", dir.display()));
    None
}

/// The path of `shared/<relative>`, or `None` after [`skip`].
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    let path = shared_dir()?.join(relative);
    if path.exists() {
        return Some(path);
    }
    skip(&format!("shared/{relative} is not available"));
    None
}

/// Reads a 2-D `.npy` fixture as row-major f64.
pub fn read_npy(path: &std::path::Path) -> (usize, usize, Vec<f64>) {
    satclip_io::npy::read_matrix(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads the coordinates fixture as (lon, lat) pairs.
pub fn read_coords(path: &std::path::Path) -> Vec<[f64; 2]> {
    let (rows, cols, data) = read_npy(path);
    assert_eq!(cols, 2, "coordinates are [N, 2]");
    (0..rows).map(|r| [data[2 * r], data[2 * r + 1]]).collect()
}

/// Latitude bands used to report parity, in degrees of |lat|.
pub const LAT_BANDS: [(f64, f64); 6] =
    [(0.0, 30.0), (30.0, 45.0), (45.0, 60.0), (60.0, 75.0), (75.0, 85.0), (85.0, 90.1)];

pub fn band_of(lat: f64) -> usize {
    LAT_BANDS.iter().position(|&(lo, hi)| lat.abs() >= lo && lat.abs() < hi).expect("|lat| <= 90")
}

/// Writes `n` 16×16 RGB tiles whose colours vary smoothly with their (lon, lat), in the S2-100K
/// layout (`index.csv` + `images/`), for training tests.
pub fn synthetic_corpus(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut index = String::from("lat,lon,fn\n");
    for i in 0..n {
        let lon = -170.0 + (i as f64 * 137.508) % 340.0;
        let lat = -60.0 + (i as f64 * 53.1) % 120.0;
        let mut rgb = Vec::with_capacity(16 * 16 * 3);
        for y in 0..16 {
            for x in 0..16 {
                let r = 128.0 + 100.0 * (lon.to_radians() + x as f64 * 0.3).sin();
                let g = 128.0 + 100.0 * (lat.to_radians() * 2.0 + y as f64 * 0.2).cos();
                let b = ((x * y) as f64 + lat.abs()) % 255.0;
                rgb.extend([r as u8, g as u8, b as u8]);
            }
        }
        let mut buf = std::io::Cursor::new(Vec::new());
        tiff::encoder::TiffEncoder::new(&mut buf)
            .unwrap()
            .write_image::<tiff::encoder::colortype::RGB8>(16, 16, &rgb)
            .unwrap();
        std::fs::write(dir.join(format!("images/t{i}.tif")), buf.into_inner()).unwrap();
        index.push_str(&format!("{lat},{lon},t{i}.tif\n"));
    }
    std::fs::write(dir.join("index.csv"), index).unwrap();
}

/// Runs a binary (e.g. `env!("CARGO_BIN_EXE_satclip")`) and returns (success, stdout, stderr).
pub fn run(binary: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(binary).args(args).output().expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The 20-tile batch of a `clip_loss_*.json` fixture: tile file names and the (lon, lat) used,
/// rounded through f32 as the official step does.
pub fn clip_fixture_batch(fixture: &serde_json::Value) -> (Vec<String>, Vec<[f64; 2]>) {
    let files =
        fixture["files"].as_array().expect("files").iter().map(|f| f.as_str().expect("name").to_string()).collect();
    let coords = fixture["coords_lonlat_as_used_float32"]
        .as_array()
        .expect("coordinates")
        .iter()
        .map(|p| [p[0].as_f64().expect("lon"), p[1].as_f64().expect("lat")])
        .collect();
    (files, coords)
}

/// The path of `<name>` in the open-data directory that `scripts/install-data.sh` fills
/// (`$SATCLIP_DATA`, else `data/` in the repository), or `None` after printing a skip notice.
pub fn data_file(name: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SATCLIP_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"),
    };
    let path = dir.join(name);
    if path.exists() {
        return Some(path);
    }
    skip(&format!("{} is not installed (run scripts/install-data.sh, or set SATCLIP_DATA)", path.display()));
    None
}
