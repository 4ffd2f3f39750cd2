//! Arrow IPC streams in memory (HTTP bodies): points in, the same rows with an `embedding`
//! column (fixed-size list of float32) out. The framing is checked against the bytes present
//! before the decoder sees it, so a declared length never reserves memory the body does not hold.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::EMBEDDING_COLUMN;
use super::{check_column_names, find_column, LAT_NAMES, LON_NAMES};
use crate::error::{Error, Result};
use crate::guard_decoder;

/// The rows of an Arrow IPC stream (all batches, concatenated) and their (lon, lat), each checked
/// as `satclip embed` checks a file's. `origin` names the body in errors; `lon`/`lat` name the
/// columns (else the usual spellings are looked for).
pub fn read_points(
    bytes: &[u8],
    origin: &Path,
    lon: Option<&str>,
    lat: Option<&str>,
) -> Result<(RecordBatch, Vec<[f64; 2]>)> {
    check_framing(bytes, origin)?;
    let batches = guard_decoder(origin, "Arrow IPC stream", || decode(bytes, origin))?;
    let Some(first) = batches.first() else {
        return Err(Error::format(origin, "the Arrow IPC stream has no schema"));
    };
    let schema = first.schema();
    let rows =
        arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| Error::format(origin, e.to_string()))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    check_column_names(origin, &names)?;
    let lon = find_column(origin, &names, lon, &LON_NAMES, "longitude", "the `lon` parameter")?;
    let lat = find_column(origin, &names, lat, &LAT_NAMES, "latitude", "the `lat` parameter")?;
    let as_f64 = |i: usize| -> Result<Float64Array> {
        let column = rows.column(i);
        if !column.data_type().is_numeric() {
            return Err(Error::format(
                origin,
                format!("column `{}` has type {}, expected a number", names[i], column.data_type()),
            ));
        }
        let cast = arrow_cast::cast(column, &DataType::Float64).map_err(|e| Error::format(origin, e.to_string()))?;
        Ok(cast.as_any().downcast_ref::<Float64Array>().expect("cast to Float64").clone())
    };
    let (lons, lats) = (as_f64(lon)?, as_f64(lat)?);
    let mut points = Vec::with_capacity(rows.num_rows());
    for r in 0..rows.num_rows() {
        for (array, i) in [(&lons, lon), (&lats, lat)] {
            if array.is_null(r) {
                return Err(Error::row(origin, r as u64, &names[i], "is empty (null)"));
            }
        }
        let (x, y) = (lons.value(r), lats.value(r));
        satclip_core::check_coordinate(x, y).map_err(|p| Error::row(origin, r as u64, p.field(), p.to_string()))?;
        points.push([x, y]);
    }
    Ok((rows, points))
}

/// An Arrow IPC stream of `rows` with `embeddings` (`[rows × dim]`) appended as `embedding`.
pub fn write_embeddings(rows: &RecordBatch, embeddings: Vec<f32>, dim: usize) -> Result<Vec<u8>> {
    let origin = Path::new("response");
    let fail = |e: arrow_schema::ArrowError| Error::format(origin, e.to_string());
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values: ArrayRef = Arc::new(Float32Array::from(embeddings));
    let list = FixedSizeListArray::try_new(item.clone(), dim as i32, values, None).map_err(fail)?;
    let mut fields: Vec<Field> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(EMBEDDING_COLUMN, DataType::FixedSizeList(item, dim as i32), false));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(list));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(fail)?;
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.finish().map_err(fail)?;
    writer.into_inner().map_err(fail)
}

fn decode(bytes: &[u8], origin: &Path) -> Result<Vec<RecordBatch>> {
    let fail = |e: arrow_schema::ArrowError| Error::format(origin, format!("not a readable Arrow IPC stream: {e}"));
    let mut decoder = arrow_ipc::reader::StreamDecoder::new();
    let mut buffer = arrow_buffer::Buffer::from(bytes.to_vec());
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        match decoder.decode(&mut buffer).map_err(fail)? {
            Some(batch) => batches.push(batch),
            None if buffer.is_empty() => break,
            None => {}
        }
    }
    decoder.finish().map_err(fail)?;
    if batches.is_empty() {
        if let Some(schema) = decoder.schema() {
            batches.push(RecordBatch::new_empty(schema));
        }
    }
    Ok(batches)
}

/// Walks the stream's messages (continuation marker, metadata length, metadata, body) and checks
/// that each declared length fits in the bytes that follow.
fn check_framing(bytes: &[u8], origin: &Path) -> Result<()> {
    let truncated = |what: &str| Error::format(origin, format!("truncated Arrow IPC stream: {what}"));
    let mut at = 0usize;
    let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    loop {
        let Some(mut size) = word(at) else {
            // The end-of-stream marker is optional.
            return Ok(());
        };
        at += 4;
        if size == u32::MAX {
            size = word(at).ok_or_else(|| truncated("a message length is cut off"))?;
            at += 4;
        }
        if size == 0 {
            return Ok(());
        }
        let size = size as usize;
        let meta = bytes.get(at..at.saturating_add(size)).ok_or_else(|| truncated("a message header is cut off"))?;
        let message = arrow_ipc::root_as_message(meta)
            .map_err(|e| Error::format(origin, format!("not a readable Arrow IPC stream: {e}")))?;
        at += size;
        let body = usize::try_from(message.bodyLength()).map_err(|_| truncated("a negative body length"))?;
        if bytes.len() - at < body {
            return Err(truncated("a message body is cut off"));
        }
        at += body;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    fn stream() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("longitude", DataType::Float32, false),
            Field::new("lat", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Float32Array::from(vec![10.5, -20.25])),
                Arc::new(Float64Array::from(vec![1.0, 2.0])),
            ],
        )
        .unwrap();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).unwrap();
        w.write(&batch).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn points_round_trip_with_their_columns() {
        let (rows, points) = read_points(&stream(), Path::new("body"), None, None).unwrap();
        assert_eq!(points, vec![[10.5, 1.0], [-20.25, 2.0], [10.5, 1.0], [-20.25, 2.0]]);
        let out = write_embeddings(&rows, (0..12).map(|v| v as f32).collect(), 3).unwrap();
        let batches = decode(&out, Path::new("out")).unwrap();
        let schema = batches[0].schema();
        assert_eq!(schema.field(3).name(), "embedding");
        assert_eq!(
            schema.field(3).data_type(),
            &DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), 3)
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_the_whole_batches_before_it() {
        let bytes = stream();
        let mut whole = 0;
        for len in 0..bytes.len() - 8 {
            // The end-of-stream marker is optional: a cut between messages is a shorter stream.
            if let Ok((rows, _)) = read_points(&bytes[..len], Path::new("body"), None, None) {
                assert_eq!(rows.num_rows(), 2, "{len} bytes");
                whole += 1;
            }
        }
        assert_eq!(whole, 1);
    }

    #[test]
    fn bad_rows_are_named() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("lon", DataType::Float64, false),
            Field::new("lat", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Float64Array::from(vec![0.0, 1.0])), Arc::new(Float64Array::from(vec![0.0, 95.0]))],
        )
        .unwrap();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        let err = read_points(&w.into_inner().unwrap(), Path::new("body"), None, None).unwrap_err().to_string();
        assert!(err.contains("row 1, field `lat`"), "{err}");
    }
}
