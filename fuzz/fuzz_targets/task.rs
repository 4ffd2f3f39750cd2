#![no_main]
//! Evaluation task files (CSV): targets detected as numbers or classes, splits, metrics.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch(data, "csv");
    let _ = satclip_eval::task::Task::read(&path, None);
});
