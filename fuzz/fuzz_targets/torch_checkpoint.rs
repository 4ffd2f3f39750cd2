#![no_main]
//! A Lightning checkpoint (torch zip): hyper-parameters, the location encoder and the image tower.

use libfuzzer_sys::fuzz_target;
use satclip_io::pickle::Value;
use satclip_io::LightningCheckpoint;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch(data, "ckpt");
    let Ok(mut ckpt) = LightningCheckpoint::open(&path) else { return };
    let _ = ckpt.location_encoder();
    if let Some(Value::Str(layers)) = &ckpt.hyper_parameter("vision_layers") {
        if let Ok(tensors) = ckpt.tensors_with_prefix("model.visual.") {
            let _ = satclip_vision::Tower::load(layers, tensors);
        }
    }
    let _ = ckpt.tensor("model.logit_scale");
});
