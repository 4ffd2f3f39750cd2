#![no_main]
//! CSV point tables through the streaming point reader, as `satclip embed` reads them.

use libfuzzer_sys::fuzz_target;
use satclip_io::points::{PointReader, ReadOptions};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch(data, "csv");
    if let Ok(reader) = PointReader::open(&path, &ReadOptions { batch_size: 7, ..ReadOptions::default() }) {
        for batch in reader {
            if batch.is_err() {
                break;
            }
        }
    }
});
