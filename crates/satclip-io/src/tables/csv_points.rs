//! CSV point tables: a header row, lon/lat found by name; every other column is carried as text.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::points::{Opened, PointSource, ReadOptions};
use super::{check_column_names, find_column, LAT_NAMES, LON_NAMES};
use crate::error::{Error, Result};

struct CsvSource {
    reader: csv::Reader<BufReader<File>>,
    schema: SchemaRef,
    lon: usize,
    lat: usize,
}

pub(super) fn open(path: &Path, file: File, options: &ReadOptions) -> Result<Opened> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(BufReader::with_capacity(1 << 20, file));
    let header = reader.byte_headers().map_err(|e| Error::format(path, format!("header: {e}")))?.clone();
    let names = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            std::str::from_utf8(h)
                .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
                .map_err(|_| Error::format(path, format!("header field {} is not valid UTF-8 text", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    if names.iter().all(String::is_empty) {
        return Err(Error::format(path, "empty file: expected a header row with lon and lat columns"));
    }
    check_column_names(path, &names)?;
    let lon = find_column(path, &names, options.lon_col.as_deref(), &LON_NAMES, "longitude", "--lon-col")?;
    let lat = find_column(path, &names, options.lat_col.as_deref(), &LAT_NAMES, "latitude", "--lat-col")?;
    let fields: Vec<Field> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Field::new(n, if i == lon || i == lat { DataType::Float64 } else { DataType::Utf8 }, false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    Ok((schema.clone(), None, Box::new(CsvSource { reader, schema, lon, lat })))
}

impl PointSource for CsvSource {
    fn next_rows(&mut self, path: &Path, first_row: u64, max: usize) -> Result<Option<(Vec<[f64; 2]>, RecordBatch)>> {
        let (lon, lat, width) = (self.lon, self.lat, self.schema.fields().len());
        let mut fields: Vec<Vec<String>> = vec![Vec::new(); width];
        let mut raw = Vec::new();
        let mut record = csv::ByteRecord::new();
        let headers = self.schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
        while raw.len() < max {
            let row = first_row + raw.len() as u64;
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(csv_error(path, row, e)),
            }
            let mut values = [0.0; 2];
            for (i, value) in record.iter().enumerate() {
                let Ok(text) = std::str::from_utf8(value) else {
                    return Err(Error::row(path, row, &headers[i], "not valid UTF-8 text"));
                };
                if i == lon || i == lat {
                    let text = text.trim();
                    let parsed = text.parse::<f64>().map_err(|_| {
                        let what = if text.is_empty() {
                            "empty value".to_string()
                        } else {
                            format!("`{text}` is not a number")
                        };
                        Error::row(path, row, &headers[i], what)
                    })?;
                    values[usize::from(i == lat)] = parsed;
                }
                fields[i].push(text.to_owned());
            }
            raw.push((row, values));
        }
        if raw.is_empty() {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = fields
            .into_iter()
            .enumerate()
            .map(|(i, values)| -> ArrayRef {
                if i == lon || i == lat {
                    let k = usize::from(i == lat);
                    Arc::new(Float64Array::from_iter_values(raw.iter().map(|(_, v)| v[k])))
                } else {
                    Arc::new(StringArray::from(values))
                }
            })
            .collect();
        let columns =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| Error::format(path, e.to_string()))?;
        Ok(Some((raw.into_iter().map(|(_, v)| v).collect(), columns)))
    }
}

fn csv_error(path: &Path, row: u64, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            Error::row(path, row, "(row)", format!("has {len} fields but the header has {expected_len}"))
        }
        _ => Error::format(path, format!("row {row}: {e}")),
    }
}
