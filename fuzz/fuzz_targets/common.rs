//! The parsers under test read files by path, as users give them: each input is written to a
//! per-process scratch file with the extension the parser dispatches on.

use std::path::PathBuf;

use satclip_io::tables::{PointReader, ReadOptions};

pub fn scratch(data: &[u8], extension: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("satclip-fuzz-{}.{extension}", std::process::id()));
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// Streams a point table to its end (or first error), in small batches to exercise batching.
#[allow(dead_code)] // not every target reads point tables
pub fn read_points(data: &[u8], extension: &str) {
    let path = scratch(data, extension);
    if let Ok(reader) = PointReader::open(&path, &ReadOptions { batch_size: 7, ..ReadOptions::default() }) {
        for batch in reader {
            if batch.is_err() {
                break;
            }
        }
    }
}
