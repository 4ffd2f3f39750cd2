//! Tests that need the shared fixtures (official checkpoints and outputs) find them here. When
//! they are absent the test prints why and returns early, so the suite still runs anywhere.

use std::path::PathBuf;

/// `$SATCLIP_SHARED`, or `../shared` beside the repository.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SATCLIP_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    dir.is_dir().then_some(dir)
}

/// The path of `shared/<relative>`, or `None` after printing a skip notice.
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    match shared_dir().map(|d| d.join(relative)) {
        Some(p) if p.exists() => Some(p),
        _ => {
            eprintln!("SKIPPED: shared/{relative} is not available (set SATCLIP_SHARED to the shared folder)");
            None
        }
    }
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
