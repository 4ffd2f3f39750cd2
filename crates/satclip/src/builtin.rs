//! The model that ships inside satclip: `satclip-bluemarble-l10`, pretrained by this project with
//! its own pipeline on 100 000 NASA Blue Marble patches (see `models/satclip-bluemarble-l10/`).
//! It makes `satclip embed` work offline on a fresh machine.

use std::path::Path;

use satclip_core::LocationEncoder;

pub const NAME: &str = "satclip-bluemarble-l10";
const CONFIG: &[u8] = include_bytes!("../../../models/satclip-bluemarble-l10/config.json");
pub const WEIGHTS: &[u8] = include_bytes!("../../../models/satclip-bluemarble-l10/model.safetensors");
pub const WEIGHTS_BYTES: usize = WEIGHTS.len();

/// The built-in location encoder.
pub fn encoder() -> LocationEncoder {
    satclip_io::native::from_bytes(CONFIG, WEIGHTS, Path::new(NAME))
        .expect("the built-in model is checked by the test suite")
}
