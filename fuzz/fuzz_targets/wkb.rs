#![no_main]
//! Well-known binary points, as GeoParquet geometry columns hold them.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = satclip_io::tables::wkb::point(data);
});
