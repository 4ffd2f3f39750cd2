#![no_main]
//! Parquet and GeoParquet point tables through the streaming point reader.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::read_points(data, "parquet");
    // The input's schema and GeoParquet metadata as the embedding writer carries them out.
    let input = common::scratch(data, "parquet");
    if let Ok(reader) = satclip_io::tables::PointReader::open(&input, &Default::default()) {
        let out = std::env::temp_dir().join(format!("satclip-fuzz-out-{}.parquet", std::process::id()));
        let _ =
            satclip_io::tables::EmbeddingWriter::create(&out, &reader.schema(), 2, satclip_core::Dtype::F32, vec![]);
    }
    // The footer's key-value metadata, as `satclip info` reads the provenance.
    let _ = satclip_io::tables::parquet_metadata(&input, "satclip");
});
