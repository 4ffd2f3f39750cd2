#![no_main]
//! Arrow IPC streams as `satclip serve` receives them in a request body.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::allow_guarded_panics();
    if let Ok((rows, points)) = satclip_io::tables::ipc::read_points(data, "body".as_ref(), None, None) {
        assert_eq!(rows.num_rows(), points.len());
        let _ = satclip_io::tables::ipc::write_embeddings(&rows, vec![0.0; points.len() * 3], 3);
    }
});
