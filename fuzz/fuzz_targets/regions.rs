#![no_main]
//! Region files for the continent holdout (`eval --regions`): a zipped shapefile when the input
//! starts like a zip archive, else GeoJSON; then point lookups.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let extension = if data.starts_with(b"PK") { "zip" } else { "geojson" };
    let path = common::scratch(data, extension);
    if let Ok(regions) = satclip_eval::regions::Regions::open(&path) {
        for (lon, lat) in [(0.0, 0.0), (13.4, 52.5), (-180.0, -90.0), (179.9, 89.9)] {
            let _ = regions.locate(lon, lat);
        }
        let _ = regions.property_names();
    }
});
