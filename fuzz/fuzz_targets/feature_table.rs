#![no_main]
//! Feature tables (`satclip eval --encoder NAME=table.csv|.parquet`): the first byte picks the
//! format, the rest is the file; every row found is then looked up again by its location.

use libfuzzer_sys::fuzz_target;
use satclip_io::tables::FeatureTable;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&format, body)) = data.split_first() else { return };
    let path = common::scratch(body, if format % 2 == 0 { "csv" } else { "parquet" });
    if let Ok(table) = FeatureTable::open(&path) {
        assert!(table.dim() > 0 && !table.is_empty());
        for &[lon, lat] in &[[0.0, 0.0], [180.0, 90.0], [-180.0, -90.0]] {
            if let Some(features) = table.get(lon, lat) {
                assert_eq!(features.len(), table.dim());
            }
        }
    }
});
