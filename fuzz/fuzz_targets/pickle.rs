#![no_main]
//! The pickle machine on arbitrary bytes, then the lookups the checkpoint readers make.

use libfuzzer_sys::fuzz_target;
use satclip_io::pickle::unpickle;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = unpickle(data) {
        let _ = value.get("state_dict").and_then(|s| s.dict_items());
        let _ = value.get("hyper_parameters").and_then(|h| h.get("legendre_polys"));
        let _ = value.kind();
    }
});
