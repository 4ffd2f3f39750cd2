#![no_main]
//! CSV point tables through the streaming point reader, as `satclip embed` reads them.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::read_points(data, "csv"));
