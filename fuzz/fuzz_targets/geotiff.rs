#![no_main]
//! GeoTIFF tiles as `embed-images` and `locate` read them (bounded like a 256-pixel tower's input).

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch(data, "tif");
    if let Ok(raster) = satclip_io::geotiff::read_with_limit(&path, 1024 * 1024 * 12 * 2) {
        let _ = raster.centre_lonlat();
    }
    // GDAL's metadata tag, as `satclip info` reads it back from rasters.
    let _ = satclip_io::geotiff_out::read_gdal_metadata(&path);
});
