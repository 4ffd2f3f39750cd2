#![no_main]
//! NPY point files `[N, 2]`, through the streaming point reader, and NPY matrices.

use libfuzzer_sys::fuzz_target;
use satclip_io::points::{PointReader, ReadOptions};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch(data, "npy");
    let _ = satclip_io::npy::read_matrix(&path);
    if let Ok(reader) = PointReader::open(&path, &ReadOptions { batch_size: 7, ..ReadOptions::default() }) {
        for batch in reader {
            if batch.is_err() {
                break;
            }
        }
    }
});
