#![no_main]
//! Parquet and GeoParquet point tables through the streaming point reader.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read_points(data, "parquet");
    // The footer's key-value metadata, as `satclip info` reads the provenance.
    let _ = satclip_io::tables::parquet_metadata(&common::scratch(data, "parquet"), "satclip");
});
