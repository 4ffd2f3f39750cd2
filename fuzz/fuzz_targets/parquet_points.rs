#![no_main]
//! Parquet and GeoParquet point tables through the streaming point reader.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::read_points(data, "parquet"));
