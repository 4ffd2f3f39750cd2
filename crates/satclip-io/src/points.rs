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
            "parquet" | "pq" | "geoparquet" => Ok(Self::Parquet),
            "npy" => Ok(Self::Npy),
            _ => Err(Error::format(
                path,
                "unknown file type: use a .csv, .parquet (or .pq, .geoparquet) or .npy extension",
            )),
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

/// Where a Parquet file keeps its points.
enum ParquetCoords {
    LonLat(usize, usize),
    /// A GeoParquet geometry column of WKB points.
    Wkb(usize),
}

enum Kind {
    Csv { reader: csv::Reader<BufReader<File>>, lon: usize, lat: usize, width: usize },
    Parquet { reader: ParquetRecordBatchReader, coords: ParquetCoords },
    Npy { reader: BufReader<File>, header: npy::NpyHeader, remaining: u64 },
}

impl PointReader {
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Self> {
        let format = TableFormat::from_path(path)?;
        let file = crate::open_regular(path)?;
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
            Kind::Parquet { reader, coords } => match reader.next() {
                None => None,
                Some(Err(e)) => return Err(Error::format(&self.path, format!("near row {first_row}: {e}"))),
                Some(Ok(columns)) => {
                    let points = match *coords {
                        ParquetCoords::LonLat(lon, lat) => {
                            let lons = float_column(&self.path, &columns, lon, first_row)?;
                            let lats = float_column(&self.path, &columns, lat, first_row)?;
                            (0..columns.num_rows()).map(|i| [lons.value(i), lats.value(i)]).collect()
                        }
                        ParquetCoords::Wkb(index) => wkb_points(&self.path, &columns, index, first_row)?,
                    };
                    let coords = points
                        .iter()
                        .enumerate()
                        .map(|(i, &[lon, lat])| self.point(first_row + i as u64, lon, lat))
                        .collect::<Result<Vec<_>>>()?;
                    Some(PointBatch { first_row, coords, columns })
                }
            },
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
    check_column_names(path, &names)?;
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

/// Every column chunk must lie inside the file: the reader asserts that its offsets are not
/// negative (a panic, found by fuzzing) and would otherwise seek wherever the footer says.
fn check_column_chunks(path: &Path, metadata: &parquet::file::metadata::ParquetMetaData, file_len: u64) -> Result<()> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for (c, column) in group.columns().iter().enumerate() {
            let start = column.dictionary_page_offset().unwrap_or_else(|| column.data_page_offset());
            let len = column.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(s, l)| s.checked_add(l))
                .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(Error::format(
                    path,
                    format!(
                        "row group {g}, column {c}: its bytes {start}..+{len} lie outside the file of {file_len} bytes"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Input columns travel to the output; more than this many is not a table of points.
pub const MAX_COLUMNS: usize = 4096;

/// The output repeats the input's columns: names must be unique (Parquet readers refuse
/// duplicates) and their number bounded (each costs memory in every batch).
fn check_column_names(path: &Path, names: &[String]) -> Result<()> {
    if names.len() > MAX_COLUMNS {
        return Err(Error::format(
            path,
            format!("has {} columns; satclip carries at most {MAX_COLUMNS} input columns to its output", names.len()),
        ));
    }
    let mut seen = std::collections::HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(first) = seen.insert(name.as_str(), i) {
            return Err(Error::format(
                path,
                format!("columns {} and {} are both named `{name}`; column names must be unique", first + 1, i + 1),
            ));
        }
    }
    Ok(())
}

fn open_parquet(
    path: &Path,
    file: File,
    options: &ReadOptions,
    batch_size: usize,
) -> Result<(SchemaRef, Option<u64>, Kind)> {
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::format(path, format!("not a readable Parquet file: {e}")))?;
    check_column_chunks(path, builder.metadata(), file_len)?;
    let schema = builder.schema().clone();
    let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    check_column_names(path, &names)?;
    let asked = options.lon_col.is_some() || options.lat_col.is_some();
    let geometry = if asked { None } else { geoparquet_points_column(path, &schema)? };
    let coords = match geometry {
        Some(index) if !names.iter().any(|n| LON_NAMES.iter().any(|k| n.eq_ignore_ascii_case(k))) => {
            ParquetCoords::Wkb(index)
        }
        _ => {
            let lon = find_column(path, &names, options.lon_col.as_deref(), &LON_NAMES, "longitude", "--lon-col")?;
            let lat = find_column(path, &names, options.lat_col.as_deref(), &LAT_NAMES, "latitude", "--lat-col")?;
            for i in [lon, lat] {
                let dt = schema.field(i).data_type();
                if !(dt.is_numeric()) {
                    return Err(Error::format(path, format!("column `{}` has type {dt}, expected a number", names[i])));
                }
            }
            ParquetCoords::LonLat(lon, lat)
        }
    };
    let reader = builder.with_batch_size(batch_size).build().map_err(|e| Error::format(path, e.to_string()))?;
    Ok((schema, Some(total), Kind::Parquet { reader, coords }))
}

/// The primary geometry column of a GeoParquet file (its `geo` metadata), if it holds WKB in
/// longitude/latitude: no CRS (OGC:CRS84 by the specification), OGC:CRS84 or EPSG:4326. Another
/// CRS or encoding is an error rather than a silent misreading.
fn geoparquet_points_column(path: &Path, schema: &Schema) -> Result<Option<usize>> {
    let Some(geo) = schema.metadata().get("geo") else { return Ok(None) };
    let bad = |m: String| Error::format(path, format!("GeoParquet metadata: {m}"));
    let geo: serde_json::Value = serde_json::from_str(geo).map_err(|e| bad(e.to_string()))?;
    let Some(name) = geo.get("primary_column").and_then(|v| v.as_str()) else {
        return Err(bad("no primary_column".into()));
    };
    let column = &geo["columns"][name];
    let encoding = column.get("encoding").and_then(|v| v.as_str()).unwrap_or("");
    if !encoding.eq_ignore_ascii_case("WKB") {
        return Err(bad(format!("geometry column `{name}` is encoded as `{encoding}`; only WKB points are read")));
    }
    match column.get("crs") {
        None | Some(serde_json::Value::Null) => {}
        Some(crs) => {
            // PROJJSON as the specification asks, or an "AUTHORITY:CODE" string as some writers give.
            let (authority, code) = match crs {
                serde_json::Value::String(text) => match text.split_once(':') {
                    Some((a, c)) => (a.to_string(), c.to_string()),
                    None => (String::new(), text.clone()),
                },
                _ => {
                    let id = &crs["id"];
                    let code = match &id["code"] {
                        serde_json::Value::String(c) => c.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (id["authority"].as_str().unwrap_or("").to_string(), code)
                }
            };
            let lonlat =
                matches!((authority.to_ascii_uppercase().as_str(), code.as_str()), ("EPSG", "4326") | ("OGC", "CRS84"));
            if !lonlat {
                let named = match (authority.is_empty(), crs.get("name").and_then(|v| v.as_str())) {
                    (false, Some(n)) => format!("{authority}:{code} ({n})"),
                    (false, None) => format!("{authority}:{code}"),
                    (true, Some(n)) => format!("a CRS without an authority code ({n})"),
                    (true, None) if !code.is_empty() => format!("the CRS `{code}`"),
                    (true, None) => "a CRS without an authority code or name".to_string(),
                };
                return Err(bad(format!("geometry column `{name}` is in {named}; reproject it to EPSG:4326 first")));
            }
        }
    }
    let index = schema.index_of(name).map_err(|_| bad(format!("no column `{name}` in the file")))?;
    match schema.field(index).data_type() {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Ok(Some(index)),
        other => Err(bad(format!("geometry column `{name}` has type {other}, expected WKB bytes"))),
    }
}

/// (lon, lat) of each WKB point of a geometry column.
fn wkb_points(path: &Path, batch: &RecordBatch, index: usize, first_row: u64) -> Result<Vec<[f64; 2]>> {
    let name = batch.schema().field(index).name().clone();
    let column = arrow_cast::cast(batch.column(index), &DataType::LargeBinary)
        .map_err(|e| Error::row(path, first_row, &name, e.to_string()))?;
    let column = column.as_any().downcast_ref::<arrow_array::LargeBinaryArray>().expect("cast to LargeBinary");
    (0..column.len())
        .map(|i| {
            let row = first_row + i as u64;
            if column.is_null(i) {
                return Err(Error::row(path, row, &name, "missing geometry (null)"));
            }
            wkb_point(column.value(i)).map_err(|m| Error::row(path, row, &name, m))
        })
        .collect()
}

/// The x and y of a WKB (or EWKB) point, 2-D or with Z and/or M.
pub fn wkb_point(bytes: &[u8]) -> std::result::Result<[f64; 2], String> {
    let little = match bytes.first() {
        Some(1) => true,
        Some(0) => false,
        _ => return Err("not WKB (bad byte-order mark)".into()),
    };
    let word = |at: usize| -> Option<[u8; 4]> { bytes.get(at..at + 4)?.try_into().ok() };
    let double = |at: usize| -> Option<f64> {
        let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
        Some(if little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    };
    let kind = word(1).map(|w| if little { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) });
    let kind = kind.ok_or("truncated WKB")?;
    // EWKB keeps flags in the high bits (an SRID follows the type when 0x20000000 is set); ISO
    // WKB adds 1000/2000/3000 for Z/M/ZM.
    let start = if kind & 0x2000_0000 != 0 { 9 } else { 5 };
    let geometry = (kind & 0x0fff_ffff) % 1000;
    if geometry != 1 {
        let what = match geometry {
            2 => "a LineString",
            3 => "a Polygon",
            4 => "a MultiPoint",
            5 => "a MultiLineString",
            6 => "a MultiPolygon",
            7 => "a GeometryCollection",
            _ => "not a known geometry",
        };
        return Err(format!("{what}, not a Point"));
    }
    match (double(start), double(start + 8)) {
        (Some(x), Some(y)) => Ok([x, y]),
        _ => Err("truncated WKB point".into()),
    }
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

#[cfg(test)]
mod tests {
    use super::wkb_point;

    fn point(little: bool, kind: u32, srid: Option<u32>, coords: &[f64]) -> Vec<u8> {
        let mut bytes = vec![u8::from(little)];
        let word = |v: u32| if little { v.to_le_bytes() } else { v.to_be_bytes() };
        bytes.extend(word(kind));
        if let Some(srid) = srid {
            bytes.extend(word(srid));
        }
        for c in coords {
            bytes.extend(if little { c.to_le_bytes() } else { c.to_be_bytes() });
        }
        bytes
    }

    #[test]
    fn wkb_points_in_every_flavour() {
        assert_eq!(wkb_point(&point(true, 1, None, &[-122.42, 37.77])), Ok([-122.42, 37.77]));
        assert_eq!(wkb_point(&point(false, 1, None, &[2.35, 48.86])), Ok([2.35, 48.86]));
        // ISO Point Z, and EWKB with an SRID and the Z flag.
        assert_eq!(wkb_point(&point(true, 1001, None, &[1.0, 2.0, 3.0])), Ok([1.0, 2.0]));
        assert_eq!(wkb_point(&point(true, 0xa000_0001, Some(4326), &[4.0, 5.0, 6.0])), Ok([4.0, 5.0]));
        assert_eq!(wkb_point(&point(true, 2, None, &[0.0, 0.0, 1.0, 1.0])).unwrap_err(), "a LineString, not a Point");
        assert_eq!(wkb_point(&point(true, 1, None, &[1.0])).unwrap_err(), "truncated WKB point");
        assert!(wkb_point(&[7, 1, 0]).unwrap_err().contains("byte-order"));
        assert!(wkb_point(&[1, 1]).unwrap_err().contains("truncated"));
    }
}
