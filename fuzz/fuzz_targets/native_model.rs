#![no_main]
//! A native model: `config.json` and `model.safetensors`. The input is split after a two-byte
//! length of the config. The weights are also read as a fine-tuned model's head would be.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (config, weights) = data[2..].split_at(n);
    let origin = std::path::Path::new("fuzz");
    let _ = satclip_io::native::from_bytes(config, weights, origin);
    let cursor = std::io::Cursor::new(weights.to_vec());
    if let Ok(mut head) = satclip_io::native::read_tensors_from(origin, cursor, "head.", "head") {
        let names: Vec<String> = head.names().map(str::to_owned).collect();
        for name in names {
            if let Some(shape) = head.shape(&name).map(<[usize]>::to_vec) {
                let _ = head.take(&name, &shape);
            }
        }
    }
});
