//! CSV point tables: a header row, lon/lat found by name; every other column is carried with the
//! type its values share ([`ColumnType`]), found by reading the file once before streaming it.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::points::{OnInvalid, Opened, PointSource, RawRows, ReadOptions};
use super::{check_column_names, find_column, LAT_NAMES, LON_NAMES};
use crate::error::{Error, Result};

struct CsvSource {
    reader: csv::Reader<BufReader<File>>,
    schema: SchemaRef,
    lon: usize,
    lat: usize,
}

fn csv_reader(file: File) -> csv::Reader<BufReader<File>> {
    csv::ReaderBuilder::new().has_headers(true).from_reader(BufReader::with_capacity(1 << 20, file))
}

pub(super) fn open(path: &Path, file: File, options: &ReadOptions) -> Result<Opened> {
    let mut reader = csv_reader(file);
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
    let mut types = vec![ColumnType::Empty; names.len()];
    if names.len() > 2 {
        infer_types(&mut reader, &mut types, [lon, lat]);
        let mut file = reader.into_inner().into_inner();
        file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
        reader = csv_reader(file);
        reader.byte_headers().map_err(|e| Error::format(path, format!("header: {e}")))?;
    }
    let fields: Vec<Field> = names
        .iter()
        .zip(&types)
        .enumerate()
        .map(|(i, (n, t))| match i == lon || i == lat {
            // Null where a value is not a number, when such rows are kept.
            true => Field::new(n, DataType::Float64, options.on_invalid == OnInvalid::Null),
            false => Field::new(n, t.data_type(), t.nullable()),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    Ok((schema.clone(), None, Box::new(CsvSource { reader, schema, lon, lat })))
}

/// The type of a carried CSV column: the narrowest that every non-empty value in it reads as.
/// Empty values are nulls in typed columns. Integers with a leading zero (FIPS codes, postcodes)
/// or beyond 64 bits (long identifiers) are text, so that no identifier loses digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColumnType {
    /// No value seen yet; a column that stays empty is text.
    Empty,
    Integer,
    Float,
    Boolean,
    Text,
}

impl ColumnType {
    fn of(value: &str) -> Self {
        let digits = value.trim_start_matches(['-', '+']);
        if digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit() {
            return Self::Text;
        }
        if value.parse::<i64>().is_ok() {
            Self::Integer
        } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            Self::Text // an integer too long for 64 bits
        } else if value.parse::<f64>().is_ok() {
            Self::Float
        } else if boolean(value).is_some() {
            Self::Boolean
        } else {
            Self::Text
        }
    }

    /// The type of a column of this type that also holds `value`.
    fn with(self, value: &str) -> Self {
        let value = value.trim();
        if value.is_empty() || self == Self::Text {
            return self;
        }
        match (self, Self::of(value)) {
            (Self::Empty, t) => t,
            (a, b) if a == b => a,
            (Self::Integer | Self::Float, Self::Integer | Self::Float) => Self::Float,
            _ => Self::Text,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Integer => DataType::Int64,
            Self::Float => DataType::Float64,
            Self::Boolean => DataType::Boolean,
            Self::Empty | Self::Text => DataType::Utf8,
        }
    }

    fn nullable(self) -> bool {
        !matches!(self, Self::Empty | Self::Text)
    }
}

/// `true` or `false`, in any case.
fn boolean(text: &str) -> Option<bool> {
    match text {
        t if t.eq_ignore_ascii_case("true") => Some(true),
        t if t.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Reads the records to the end (or to the first that cannot be read, which the stream then
/// reports by row) to type the columns other than `coordinates`.
fn infer_types(reader: &mut csv::Reader<BufReader<File>>, types: &mut [ColumnType], coordinates: [usize; 2]) {
    let mut record = csv::ByteRecord::new();
    while let Ok(true) = reader.read_byte_record(&mut record) {
        for (i, value) in record.iter().enumerate().filter(|(i, _)| !coordinates.contains(i)) {
            let Some(t) = types.get_mut(i) else { break };
            *t = match std::str::from_utf8(value) {
                Ok(text) => t.with(text),
                Err(_) => ColumnType::Text,
            };
        }
    }
}

impl PointSource for CsvSource {
    fn next_rows(&mut self, path: &Path, first_row: u64, max: usize) -> Result<Option<RawRows>> {
        let (lon, lat, width) = (self.lon, self.lat, self.schema.fields().len());
        let mut fields: Vec<Vec<String>> = vec![Vec::new(); width];
        let mut raw = Vec::new();
        let mut unreadable = Vec::new();
        let mut record = csv::ByteRecord::new();
        let headers = self.schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
        while raw.len() < max {
            let row = first_row + raw.len() as u64;
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(csv_error(path, row, e)),
            }
            let mut values = [None; 2];
            for (i, value) in record.iter().enumerate() {
                let Ok(text) = std::str::from_utf8(value) else {
                    return Err(Error::row(path, row, &headers[i], "not valid UTF-8 text"));
                };
                if i == lon || i == lat {
                    let text = text.trim();
                    let k = usize::from(i == lat);
                    values[k] = text.parse::<f64>().ok();
                    if values[k].is_none() && unreadable.last().is_none_or(|(r, _)| *r != raw.len()) {
                        // The row's first unreadable value is the one reported.
                        let what = match text.is_empty() {
                            true => "empty value".to_string(),
                            false => format!("`{text}` is not a number"),
                        };
                        unreadable.push((raw.len(), Error::row(path, row, &headers[i], what)));
                    }
                }
                fields[i].push(text.to_owned());
            }
            raw.push((row, values));
        }
        if raw.is_empty() {
            return Ok(None);
        }
        let rows: Vec<u64> = raw.iter().map(|(row, _)| *row).collect();
        let arrays = fields
            .into_iter()
            .enumerate()
            .map(|(i, values)| -> Result<ArrayRef> {
                if i == lon || i == lat {
                    let k = usize::from(i == lat);
                    let values = raw.iter().map(|(_, v)| v[k]);
                    return Ok(Arc::new(match self.schema.field(i).is_nullable() {
                        true => values.collect::<Float64Array>(),
                        // Rows with a null here stop the reader before the batch is used.
                        false => Float64Array::from_iter_values(values.map(|v| v.unwrap_or(f64::NAN))),
                    }));
                }
                typed_column(path, &headers[i], self.schema.field(i).data_type(), values, &rows)
            })
            .collect::<Result<Vec<_>>>()?;
        let columns =
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| Error::format(path, e.to_string()))?;
        let coords = raw.into_iter().map(|(_, v)| v.map(|v| v.unwrap_or(f64::NAN))).collect();
        Ok(Some(RawRows { coords, unreadable, columns }))
    }
}

/// A carried column's `values` (read at `rows`) as an array of `data_type`. The typing pass saw
/// every value, so one that does not parse means the file changed while it was read.
fn typed_column(path: &Path, field: &str, data_type: &DataType, values: Vec<String>, rows: &[u64]) -> Result<ArrayRef> {
    // Each value once: empty is null, else it must read as the column's type.
    fn cells<T>(
        path: &Path,
        field: &str,
        values: &[String],
        rows: &[u64],
        read: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<Option<T>>> {
        values
            .iter()
            .zip(rows)
            .map(|(text, &row)| match text.trim() {
                "" => Ok(None),
                text => read(text).map(Some).ok_or_else(|| {
                    let what = format!(
                        "`{text}` does not match the rest of the column (did the file change while it was read?)"
                    );
                    Error::row(path, row, field, what)
                }),
            })
            .collect()
    }
    Ok(match data_type {
        DataType::Int64 => Arc::new(Int64Array::from(cells(path, field, &values, rows, |t| t.parse().ok())?)),
        DataType::Float64 => Arc::new(Float64Array::from(cells(path, field, &values, rows, |t| t.parse().ok())?)),
        DataType::Boolean => Arc::new(BooleanArray::from(cells(path, field, &values, rows, boolean)?)),
        _ => Arc::new(StringArray::from(values)),
    })
}

fn csv_error(path: &Path, row: u64, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            Error::row(path, row, "(row)", format!("has {len} fields but the header has {expected_len}"))
        }
        _ => Error::format(path, format!("row {row}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;

    use super::*;
    use crate::tables::{PointReader, ReadOptions};

    fn read(body: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("points.csv");
        std::fs::write(&path, body).unwrap();
        let options = ReadOptions { batch_size: 2, ..ReadOptions::default() };
        let reader = PointReader::open(&path, &options)?;
        let schema = reader.schema();
        let batches = reader.map(|b| b.map(|b| b.columns)).collect::<Result<_>>()?;
        Ok((schema, batches))
    }

    #[test]
    fn carried_columns_take_the_type_their_values_share() {
        let body = "lon,lat,count,temp,ok,fips,name,big,blank,mixed\n\
                    1,2,3,1.5,true,01001,Oslo,12345678901234567890,,4\n\
                    3,4,,-2,FALSE,02013,,1,,x\n\
                    5,6,-7,1e3,,04005,Nan,2,,5\n";
        let (schema, batches) = read(body).unwrap();
        let types: Vec<_> = schema.fields().iter().map(|f| (f.name().as_str(), f.data_type().clone())).collect();
        use DataType::*;
        assert_eq!(
            types,
            [
                ("lon", Float64),
                ("lat", Float64),
                ("count", Int64),
                ("temp", Float64),
                ("ok", Boolean),
                ("fips", Utf8), // a leading zero: an identifier
                ("name", Utf8),
                ("big", Utf8), // beyond 64 bits
                ("blank", Utf8),
                ("mixed", Utf8),
            ]
        );
        // Three rows in batches of two: the types hold in every batch, empty values are nulls.
        assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [2, 1]);
        let count: Vec<_> = batches
            .iter()
            .flat_map(|b| b["count"].as_any().downcast_ref::<Int64Array>().unwrap().iter().collect::<Vec<_>>())
            .collect();
        assert_eq!(count, [Some(3), None, Some(-7)]);
        let temp: Vec<_> = batches
            .iter()
            .flat_map(|b| b["temp"].as_any().downcast_ref::<Float64Array>().unwrap().iter().collect::<Vec<_>>())
            .collect();
        assert_eq!(temp, [Some(1.5), Some(-2.0), Some(1000.0)]);
        let ok: Vec<_> = batches
            .iter()
            .flat_map(|b| b["ok"].as_any().downcast_ref::<BooleanArray>().unwrap().iter().collect::<Vec<_>>())
            .collect();
        assert_eq!(ok, [Some(true), Some(false), None]);
        let fips = batches[1]["fips"].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(fips.value(0), "04005");
        assert!(!schema.field_with_name("lon").unwrap().is_nullable());
    }

    #[test]
    fn a_bad_row_is_still_reported_by_row_and_field_after_typing() {
        let err = read("lon,lat,id\n1,2,3\n1,2\n").unwrap_err().to_string();
        assert!(err.contains("row 2") && err.contains("fields"), "{err}");
        let err = read("lon,lat,id\n1,2,3\nx,2,4\n").unwrap_err().to_string();
        assert!(err.contains("row 2") && err.contains("`lon`") && err.contains("not a number"), "{err}");
    }
}
