#![no_main]
//! NPY point files `[N, 2]`, through the streaming point reader, and NPY matrices.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read_points(data, "npy");
    let _ = satclip_io::npy::read_matrix(&common::scratch(data, "npy"));
});
