//! Streaming point tables in: CSV, Parquet and NPY `[N, 2]` (lon, lat) files are read in batches,
//! each row validated, so that files of any length are processed in bounded memory. Every error
//! names the file, the 1-based data row (the header is not counted) and the field.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use satclip_core::{check_coordinate, wrap_longitude, CoordinateProblem};

use crate::error::{Error, Result};
use crate::npy;

/// Column names recognised as longitude / latitude (compared case-insensitively).
pub const LON_NAMES: [&str; 5] = ["lon", "lng", "long", "longitude", "lon_deg"];
pub const LAT_NAMES: [&str; 3] = ["lat", "latitude", "lat_deg"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Parquet,
    Npy,
}

impl TableFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(Self::Csv),
            "parquet" | "pq" => Ok(Self::Parquet),
            "npy" => Ok(Self::Npy),
            _ => Err(Error::format(path, "unknown file type: use a .csv, .parquet (or .pq) or .npy extension")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub lon_col: Option<String>,
    pub lat_col: Option<String>,
    pub batch_size: usize,
    /// Bring longitudes outside [−180, 180] back into range instead of refusing them.
    pub wrap_lon: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { lon_col: None, lat_col: None, batch_size: 8192, wrap_lon: false }
    }
}

/// A batch of validated points and the input columns that travel with them.
pub struct PointBatch {
    /// 1-based data row of the first point.
    pub first_row: u64,
    pub coords: Vec<[f64; 2]>,
    pub columns: RecordBatch,
}

pub struct PointReader {
    path: PathBuf,
    schema: SchemaRef,
    total_rows: Option<u64>,
    next_row: u64,
    wrap_lon: bool,
    batch_size: usize,
    kind: Kind,
}

enum Kind {
    Csv { reader: csv::Reader<BufReader<File>>, lon: usize, lat: usize, width: usize },
    Parquet { reader: ParquetRecordBatchReader, lon: usize, lat: usize },
    Npy { reader: BufReader<File>, header: npy::NpyHeader, remaining: u64 },
}

impl PointReader {
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Self> {
        let format = TableFormat::from_path(path)?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let batch_size = options.batch_size.max(1);
        let (schema, total_rows, kind) = match format {
            TableFormat::Csv => open_csv(path, file, options)?,
            TableFormat::Parquet => open_parquet(path, file, options, batch_size)?,
            TableFormat::Npy => open_npy(path, file)?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            schema,
            total_rows,
            next_row: 1,
            wrap_lon: options.wrap_lon,
            batch_size,
            kind,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The input columns carried to the output.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Row count when the format records it (Parquet, NPY).
    pub fn total_rows(&self) -> Option<u64> {
        self.total_rows
    }

    fn point(&self, row: u64, lon: f64, lat: f64) -> Result<[f64; 2]> {
        let lon = if self.wrap_lon { wrap_longitude(lon) } else { lon };
        check_coordinate(lon, lat).map_err(|p| {
            let hint = match p {
                CoordinateProblem::OutOfRange { field: "lon", .. } => {
                    " (pass --wrap-lon to wrap longitudes into range)"
                }
                CoordinateProblem::OutOfRange { field: "lat", .. } => " (are longitude and latitude swapped?)",
                _ => "",
            };
            Error::row(&self.path, row, p.field(), format!("{p}{hint}"))
        })?;
        Ok([lon, lat])
    }

    fn next_batch(&mut self) -> Result<Option<PointBatch>> {
        let first_row = self.next_row;
        let batch = match &mut self.kind {
            Kind::Csv { .. } => self.next_csv(first_row)?,
            Kind::Parquet { reader, lon, lat } => {
                let (lon, lat) = (*lon, *lat);
                match reader.next() {
                    None => None,
                    Some(Err(e)) => return Err(Error::format(&self.path, format!("near row {first_row}: {e}"))),
                    Some(Ok(columns)) => {
                        let lons = float_column(&self.path, &columns, lon, first_row)?;
                        let lats = float_column(&self.path, &columns, lat, first_row)?;
                        let coords = (0..columns.num_rows())
                            .map(|i| self.point(first_row + i as u64, lons.value(i), lats.value(i)))
                            .collect::<Result<Vec<_>>>()?;
                        Some(PointBatch { first_row, coords, columns })
                    }
                }
            }
            Kind::Npy { .. } => self.next_npy(first_row)?,
        };
        if let Some(b) = &batch {
            self.next_row += b.coords.len() as u64;
        }
        Ok(batch)
    }

    fn next_csv(&mut self, first_row: u64) -> Result<Option<PointBatch>> {
        let Kind::Csv { reader, lon, lat, width } = &mut self.kind else { unreachable!() };
        let (lon, lat, width) = (*lon, *lat, *width);
        let mut fields: Vec<Vec<String>> = vec![Vec::new(); width];
        let mut raw = Vec::new();
        let mut record = csv::ByteRecord::new();
        let headers = self.schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
        while raw.len() < self.batch_size {
            let row = first_row + raw.len() as u64;
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(csv_error(&self.path, row, e)),
            }
            let mut values = [0.0; 2];
            for (i, value) in record.iter().enumerate() {
                let Ok(text) = std::str::from_utf8(value) else {
                    return Err(Error::row(&self.path, row, &headers[i], "not valid UTF-8 text"));
                };
                if i == lon || i == lat {
                    let text = text.trim();
                    let parsed = text.parse::<f64>().map_err(|_| {
                        let what = if text.is_empty() {
                            "empty value".to_string()
                        } else {
                            format!("`{text}` is not a number")
                        };
                        Error::row(&self.path, row, &headers[i], what)
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
        let coords = raw.iter().map(|&(row, [lo, la])| self.point(row, lo, la)).collect::<Result<Vec<_>>>()?;
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
            RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| Error::format(&self.path, e.to_string()))?;
        Ok(Some(PointBatch { first_row, coords, columns }))
    }

    fn next_npy(&mut self, first_row: u64) -> Result<Option<PointBatch>> {
        let Kind::Npy { reader, header, remaining } = &mut self.kind else { unreachable!() };
        let rows = (*remaining).min(self.batch_size as u64) as usize;
        if rows == 0 {
            return Ok(None);
        }
        let size = header.dtype.size();
        let mut raw = vec![0u8; rows * 2 * size];
        reader.read_exact(&mut raw).map_err(|e| Error::io(&self.path, e))?;
        *remaining -= rows as u64;
        let header = header.clone();
        let coords = raw
            .chunks_exact(2 * size)
            .enumerate()
            .map(|(i, b)| self.point(first_row + i as u64, header.decode(&b[..size]), header.decode(&b[size..])))
            .collect::<Result<Vec<_>>>()?;
        let lon = Float64Array::from_iter_values(coords.iter().map(|c| c[0]));
        let lat = Float64Array::from_iter_values(coords.iter().map(|c| c[1]));
        let columns = RecordBatch::try_new(self.schema.clone(), vec![Arc::new(lon), Arc::new(lat)])
            .map_err(|e| Error::format(&self.path, e.to_string()))?;
        Ok(Some(PointBatch { first_row, coords, columns }))
    }
}

impl Iterator for PointReader {
    type Item = Result<PointBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

fn csv_error(path: &Path, row: u64, e: csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            Error::row(path, row, "(row)", format!("has {len} fields but the header has {expected_len}"))
        }
        csv::ErrorKind::Io(_) => Error::format(path, format!("row {row}: {e}")),
        _ => Error::format(path, format!("row {row}: {e}")),
    }
}

/// Finds the lon/lat column: the name asked for, else the first recognised spelling.
fn find_column(
    path: &Path,
    names: &[String],
    asked: Option<&str>,
    known: &[&str],
    what: &str,
    flag: &str,
) -> Result<usize> {
    let found = match asked {
        Some(name) => {
            names.iter().position(|n| n == name).or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(name)))
        }
        None => known.iter().find_map(|k| names.iter().position(|n| n.eq_ignore_ascii_case(k))),
    };
    found.ok_or_else(|| {
        let looked = match asked {
            Some(name) => format!("`{name}`"),
            None => known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
        };
        Error::format(
            path,
            format!("no {what} column (looked for {looked}; the file has: {}); name it with {flag}", names.join(", ")),
        )
    })
}

fn open_csv(path: &Path, file: File, options: &ReadOptions) -> Result<(SchemaRef, Option<u64>, Kind)> {
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
    let lon = find_column(path, &names, options.lon_col.as_deref(), &LON_NAMES, "longitude", "--lon-col")?;
    let lat = find_column(path, &names, options.lat_col.as_deref(), &LAT_NAMES, "latitude", "--lat-col")?;
    let fields: Vec<Field> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Field::new(n, if i == lon || i == lat { DataType::Float64 } else { DataType::Utf8 }, false))
        .collect();
    let width = names.len();
    Ok((Arc::new(Schema::new(fields)), None, Kind::Csv { reader, lon, lat, width }))
}

fn open_parquet(
    path: &Path,
    file: File,
    options: &ReadOptions,
    batch_size: usize,
) -> Result<(SchemaRef, Option<u64>, Kind)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::format(path, format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let lon = find_column(path, &names, options.lon_col.as_deref(), &LON_NAMES, "longitude", "--lon-col")?;
    let lat = find_column(path, &names, options.lat_col.as_deref(), &LAT_NAMES, "latitude", "--lat-col")?;
    for i in [lon, lat] {
        let dt = schema.field(i).data_type();
        if !(dt.is_numeric()) {
            return Err(Error::format(path, format!("column `{}` has type {dt}, expected a number", names[i])));
        }
    }
    let reader = builder.with_batch_size(batch_size).build().map_err(|e| Error::format(path, e.to_string()))?;
    Ok((schema, Some(total), Kind::Parquet { reader, lon, lat }))
}

fn float_column(path: &Path, batch: &RecordBatch, index: usize, first_row: u64) -> Result<Float64Array> {
    let name = batch.schema().field(index).name().clone();
    let column = arrow_cast::cast(batch.column(index), &DataType::Float64)
        .map_err(|e| Error::row(path, first_row, &name, e.to_string()))?;
    let column = column.as_any().downcast_ref::<Float64Array>().expect("cast to Float64 gives Float64Array").clone();
    if let Some(i) = (0..column.len()).find(|&i| column.is_null(i)) {
        return Err(Error::row(path, first_row + i as u64, &name, "missing value (null)"));
    }
    Ok(column)
}

fn open_npy(path: &Path, file: File) -> Result<(SchemaRef, Option<u64>, Kind)> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = npy::read_header(path, &mut reader, len)?;
    let rows = match header.shape[..] {
        [rows, 2] => rows as u64,
        _ => {
            return Err(Error::format(
                path,
                format!("expected an [N, 2] array of (lon, lat), found shape {:?}", header.shape),
            ))
        }
    };
    if header.fortran_order && rows > 1 {
        return Err(Error::format(path, "Fortran-ordered arrays are not supported; save with np.ascontiguousarray(a)"));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("lon", DataType::Float64, false),
        Field::new("lat", DataType::Float64, false),
    ]));
    Ok((schema, Some(rows), Kind::Npy { reader, header, remaining: rows }))
}
