#![no_main]
//! NPZ archives of NPY arrays, as the land mask ships.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let _ = satclip_io::npy::read_npz(&common::scratch(data, "npz"));
});
