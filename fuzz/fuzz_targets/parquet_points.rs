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
    // The rows read as an engine hands them over (an Arrow stream whose batches the reader
    // slices), with a binary column named as the geometry.
    let options = satclip_io::tables::ReadOptions { batch_size: 7, ..Default::default() };
    if let Ok(reader) = satclip_io::tables::PointReader::open(&input, &options) {
        let schema = reader.schema();
        let geometry_col =
            schema.fields().iter().find(|f| f.data_type().to_string().contains("Binary")).map(|f| f.name().clone());
        let batches: Vec<_> = reader.map_while(|b| b.ok()).map(|b| Ok(b.columns)).collect();
        let stream = satclip_io::tables::ReadOptions { geometry_col, batch_size: 3, ..Default::default() };
        let name = std::path::Path::new("stream");
        if let Ok(points) =
            satclip_io::tables::PointReader::from_batches(name, schema, Box::new(batches.into_iter()), &stream)
        {
            for batch in points {
                if batch.is_err() {
                    break;
                }
            }
        }
    }
    // The footer's key-value metadata, as `satclip info` reads the provenance.
    let _ = satclip_io::tables::parquet_metadata(&input, "satclip");
});
