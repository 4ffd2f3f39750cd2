#![no_main]
//! A native model: `config.json` and `model.safetensors`. The input is split after a two-byte
//! length of the config.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (config, weights) = data[2..].split_at(n);
    let _ = satclip_io::native::from_bytes(config, weights, std::path::Path::new("fuzz"));
});
