//! Parquet and GeoParquet point tables, and Arrow streams of the same columns (batches handed
//! over by another program, e.g. a Spark task): lon/lat columns by name, or a GeoParquet geometry
//! column of WKB points; every column is carried with its type.

use std::fs::File;
use std::path::Path;

use arrow_array::{Array, Float64Array, RecordBatch};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::points::{Opened, PointSource, RawRows, ReadOptions};
use super::{check_column_names, find_column, parquet_guard, wkb, LAT_NAMES, LON_NAMES};
use crate::error::{Error, Result};

/// Where a Parquet file keeps its points.
enum Coords {
    LonLat(usize, usize),
    /// A GeoParquet geometry column of WKB points.
    Wkb(usize),
}

/// Record batches from a Parquet file's reader or from an Arrow stream.
pub type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

struct BatchSource {
    batches: Batches,
    /// What the batches are decoded from, for errors: `Parquet` or `Arrow`.
    format: &'static str,
    coords: Coords,
    /// The rest of a batch larger than the reader's batch size.
    pending: Option<RecordBatch>,
}

impl PointSource for BatchSource {
    /// Batches of at most `max` rows: a producer's batch may hold a whole partition, and
    /// smaller batches let the writer work while the next one is embedded.
    fn next_rows(&mut self, path: &Path, first_row: u64, max: usize) -> Result<Option<RawRows>> {
        let batch = match self.pending.take() {
            Some(rows) => rows,
            None => {
                let what = format!("{} data near row {first_row}", self.format);
                match crate::guard_decoder(path, &what, || Ok(self.batches.next()))? {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(Error::format(path, format!("near row {first_row}: {e}"))),
                    Some(Ok(batch)) => batch,
                }
            }
        };
        let columns = if batch.num_rows() > max {
            self.pending = Some(batch.slice(max, batch.num_rows() - max));
            batch.slice(0, max)
        } else {
            batch
        };
        let (coords, unreadable) = match self.coords {
            Coords::LonLat(lon, lat) => lonlat_points(path, &columns, lon, lat, first_row)?,
            Coords::Wkb(index) => wkb_points(path, &columns, index, first_row)?,
        };
        Ok(Some(RawRows { coords, unreadable, columns }))
    }
}

/// The points of a batch, NaN where a row has none, and those rows (from 0) with why.
type ReadPoints = (Vec<[f64; 2]>, Vec<(usize, Error)>);

pub(super) fn open(path: &Path, file: File, options: &ReadOptions, batch_size: usize) -> Result<Opened> {
    crate::guard_decoder(path, "Parquet file", || open_unguarded(path, file, options, batch_size))
}

fn open_unguarded(path: &Path, mut file: File, options: &ReadOptions, batch_size: usize) -> Result<Opened> {
    parquet_guard::check_footer(path, &mut file)?;
    let mut pages = file.try_clone().map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::format(path, format!("not a readable Parquet file: {e}")))?;
    parquet_guard::check_pages(path, &mut pages, builder.metadata())?;
    let schema = builder.schema().clone();
    let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let coords = coords(path, &schema, options)?;
    let reader = builder.with_batch_size(batch_size).build().map_err(|e| Error::format(path, e.to_string()))?;
    Ok((
        schema,
        Some(total),
        Box::new(BatchSource { batches: Box::new(reader), format: "Parquet", coords, pending: None }),
    ))
}

/// An Arrow stream of point batches, read as a Parquet file of the same schema would be.
/// `path` names the stream in errors.
pub(super) fn from_batches(path: &Path, schema: SchemaRef, batches: Batches, options: &ReadOptions) -> Result<Opened> {
    let coords = coords(path, &schema, options)?;
    Ok((schema, None, Box::new(BatchSource { batches, format: "Arrow", coords, pending: None })))
}

/// Where the points are: the columns asked for, a GeoParquet point column, or the columns
/// named like longitude and latitude.
fn coords(path: &Path, schema: &Schema, options: &ReadOptions) -> Result<Coords> {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    check_column_names(path, &names)?;
    let asked = options.lon_col.is_some() || options.lat_col.is_some();
    if let Some(name) = &options.geometry_col {
        if asked {
            return Err(Error::format(path, "give --geometry-col or --lon-col/--lat-col, not both"));
        }
        let index = find_column(path, &names, Some(name), &[], "geometry", "--geometry-col")?;
        return match schema.field(index).data_type() {
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Ok(Coords::Wkb(index)),
            other => Err(Error::format(path, format!("column `{name}` has type {other}, expected WKB points"))),
        };
    }
    let geometry = if asked { None } else { geoparquet_points_column(path, schema)? };
    Ok(match geometry {
        Some(index) if !names.iter().any(|n| LON_NAMES.iter().any(|k| n.eq_ignore_ascii_case(k))) => Coords::Wkb(index),
        _ => {
            let lon = find_column(path, &names, options.lon_col.as_deref(), &LON_NAMES, "longitude", "--lon-col")?;
            let lat = find_column(path, &names, options.lat_col.as_deref(), &LAT_NAMES, "latitude", "--lat-col")?;
            for i in [lon, lat] {
                let dt = schema.field(i).data_type();
                if !(dt.is_numeric()) {
                    return Err(Error::format(path, format!("column `{}` has type {dt}, expected a number", names[i])));
                }
            }
            Coords::LonLat(lon, lat)
        }
    })
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
fn wkb_points(path: &Path, batch: &RecordBatch, index: usize, first_row: u64) -> Result<ReadPoints> {
    let name = batch.schema().field(index).name().clone();
    let column = arrow_cast::cast(batch.column(index), &DataType::LargeBinary)
        .map_err(|e| Error::row(path, first_row, &name, e.to_string()))?;
    let column = column.as_any().downcast_ref::<arrow_array::LargeBinaryArray>().expect("cast to LargeBinary");
    let mut points = Vec::with_capacity(column.len());
    let mut unreadable = Vec::new();
    for i in 0..column.len() {
        let row = first_row + i as u64;
        let point = match column.is_null(i) {
            true => Err(Error::row(path, row, &name, "missing geometry (null)")),
            false => wkb::point(column.value(i)).map_err(|m| Error::row(path, row, &name, m)),
        };
        points.push(point.unwrap_or_else(|error| {
            unreadable.push((i, error));
            [f64::NAN; 2]
        }));
    }
    Ok((points, unreadable))
}

/// (lon, lat) from two numeric columns.
fn lonlat_points(path: &Path, batch: &RecordBatch, lon: usize, lat: usize, first_row: u64) -> Result<ReadPoints> {
    let lons = float_column(path, batch, lon, first_row)?;
    let lats = float_column(path, batch, lat, first_row)?;
    let mut points = Vec::with_capacity(batch.num_rows());
    let mut unreadable = Vec::new();
    for i in 0..batch.num_rows() {
        if let Some(index) = [lon, lat].into_iter().zip([&lons, &lats]).find_map(|(c, v)| v.is_null(i).then_some(c)) {
            let name = batch.schema().field(index).name().clone();
            unreadable.push((i, Error::row(path, first_row + i as u64, &name, "missing value (null)")));
            points.push([f64::NAN; 2]);
        } else {
            points.push([lons.value(i), lats.value(i)]);
        }
    }
    Ok((points, unreadable))
}

fn float_column(path: &Path, batch: &RecordBatch, index: usize, first_row: u64) -> Result<Float64Array> {
    let name = batch.schema().field(index).name().clone();
    let column = arrow_cast::cast(batch.column(index), &DataType::Float64)
        .map_err(|e| Error::row(path, first_row, &name, e.to_string()))?;
    Ok(column.as_any().downcast_ref::<Float64Array>().expect("cast to Float64 gives Float64Array").clone())
}
