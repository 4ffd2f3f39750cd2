//! The parsers under test read files by path, as users give them: each input is written to a
//! per-process scratch file with the extension the parser dispatches on.

use std::path::PathBuf;

use satclip_io::tables::{OnInvalid, PointReader, ReadOptions};

#[allow(dead_code)] // not every target reads by path
pub fn scratch(data: &[u8], extension: &str) -> PathBuf {
    allow_guarded_panics();
    let path = std::env::temp_dir().join(format!("satclip-fuzz-{}.{extension}", std::process::id()));
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// Streams a point table to its end (or first error), in small batches to exercise batching,
/// once stopping at an invalid row and once keeping such rows (`--on-invalid null`).
#[allow(dead_code)] // not every target reads point tables
pub fn read_points(data: &[u8], extension: &str) {
    let path = scratch(data, extension);
    for on_invalid in [OnInvalid::Error, OnInvalid::Null] {
        if let Ok(reader) =
            PointReader::open(&path, &ReadOptions { batch_size: 7, on_invalid, ..ReadOptions::default() })
        {
            for batch in reader {
                if batch.is_err() {
                    break;
                }
            }
        }
    }
}

/// libfuzzer-sys installs a panic hook that aborts on any panic, even one the code under test
/// catches. satclip's readers catch the panics of third-party decoders and return an error
/// (`satclip_io::guard_decoder`), as they do for users, so the default hook is restored; a panic
/// that escapes still aborts the run (libfuzzer-sys aborts when its own `catch_unwind` sees it).
#[allow(dead_code)] // targets that read by path get it from `scratch`
pub fn allow_guarded_panics() {
    static RESTORE: std::sync::Once = std::sync::Once::new();
    RESTORE.call_once(|| {
        let _aborting = std::panic::take_hook();
    });
}
