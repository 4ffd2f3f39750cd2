//! Streaming embedding tables out: NPY `[N, dim]`, CSV (input columns + `emb_0..`) or GeoParquet
//! 1.1 (input columns, a WKB point `geometry` unless the input had one, a `bbox` covering column
//! and an `embedding` list column), chosen by extension. Everything is written to a temporary
//! file that is renamed into place only by [`EmbeddingWriter::finish`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, Float64Builder, ListBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use satclip_core::kernels::Float;
use satclip_core::Dtype;

use super::{is_point, TableFormat};
use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::npy::NpyWriter;

/// Name of the embedding column in Parquet output.
pub const EMBEDDING_COLUMN: &str = "embedding";
/// Name of the point geometry column added to Parquet output whose input had none.
pub const GEOMETRY_COLUMN: &str = "geometry";
/// Name of the GeoParquet 1.1 bbox covering column of Parquet output.
pub const BBOX_COLUMN: &str = "bbox";
/// Parquet row groups are sized to hold about this many bytes of embeddings, bounding memory.
const ROW_GROUP_BYTES: usize = 32 << 20;

pub struct EmbeddingWriter {
    target: PathBuf,
    dim: usize,
    dtype: Dtype,
    sink: Sink,
    /// Key-value pairs that describe the file: in the Parquet footer, else in a `.json` beside it.
    metadata: Vec<(String, String)>,
    // Declared last: dropped (deleting the temporary file) after the sink has closed its handle.
    file: AtomicFile,
}

enum Sink {
    Npy(NpyWriter<BufWriter<File>>),
    Csv(csv::Writer<BufWriter<File>>),
    Parquet(ArrowWriter<BufWriter<File>>, SchemaRef, GeoOutput),
}

/// What makes a Parquet output GeoParquet 1.1: its geometry column (added, or the input's) and
/// the `geo` metadata, written into the footer at the end with the data's extent.
struct GeoOutput {
    /// Whether a WKB point geometry column is added (the input had no geometry of its own).
    add_geometry: bool,
    /// Whether a `bbox` covering column is added (the input's geometry declared none).
    add_bbox: bool,
    /// The `geo` metadata, less the primary column's extent.
    geo: serde_json::Value,
    primary: String,
    /// Smallest x, y and largest x, y of the points written.
    extent: [f64; 4],
}

impl GeoOutput {
    /// For an input `schema`: its GeoParquet metadata carried and brought to version 1.1 with a
    /// bbox covering and a stated CRS, or a new point geometry column in OGC:CRS84 (lon, lat).
    fn for_input(target: &Path, schema: &Schema) -> Result<Self> {
        let taken = |name: &str| schema.fields().iter().any(|f| f.name() == name);
        let refuse = |name: &str, why: &str| {
            Error::format(target, format!("the input already has a column named `{name}`{why}; rename it first"))
        };
        let input_geo = schema
            .metadata()
            .get("geo")
            .and_then(|g| serde_json::from_str::<serde_json::Value>(g).ok())
            .filter(serde_json::Value::is_object);
        let primary = input_geo.as_ref().and_then(|g| g["primary_column"].as_str().map(str::to_owned));
        let (mut geo, primary, add_geometry) = match (input_geo, primary) {
            (Some(geo), Some(primary)) if taken(&primary) => {
                // Extended in place below: it must be an object (indexing anything else panics).
                if !geo["columns"][&primary].is_object() {
                    return Err(Error::format(
                        target,
                        format!("the input's GeoParquet metadata does not describe its geometry column `{primary}`"),
                    ));
                }
                (geo, primary, false)
            }
            _ => {
                if taken(GEOMETRY_COLUMN) {
                    return Err(refuse(GEOMETRY_COLUMN, " without GeoParquet metadata"));
                }
                let column = serde_json::json!({"encoding": "WKB", "geometry_types": ["Point"]});
                let geo = serde_json::json!({"primary_column": GEOMETRY_COLUMN, "columns": {GEOMETRY_COLUMN: column}});
                (geo, GEOMETRY_COLUMN.to_string(), true)
            }
        };
        geo["version"] = "1.1.0".into();
        let column = &mut geo["columns"][&primary];
        // A missing CRS means OGC:CRS84 in GeoParquet; stated, so that no reader has to know.
        if column.get("crs").is_none() {
            column["crs"] = crs84_projjson();
        }
        let add_bbox = column.get("covering").is_none();
        if add_bbox {
            if taken(BBOX_COLUMN) {
                return Err(refuse(BBOX_COLUMN, ", which GeoParquet 1.1 output uses for its bbox covering"));
            }
            let part = |name: &str| serde_json::json!([BBOX_COLUMN, name]);
            column["covering"] = serde_json::json!({"bbox": {
                "xmin": part("xmin"), "ymin": part("ymin"), "xmax": part("xmax"), "ymax": part("ymax")
            }});
        }
        let extent = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
        Ok(Self { add_geometry, add_bbox, geo, primary, extent })
    }

    fn bbox_fields() -> arrow_schema::Fields {
        ["xmin", "ymin", "xmax", "ymax"].iter().map(|n| Field::new(*n, DataType::Float64, false)).collect()
    }

    /// The columns added for `points` (NaN coordinates, from inputs without them, give nulls).
    fn columns(&mut self, points: &[[f64; 2]]) -> Vec<ArrayRef> {
        for p in points.iter().filter(|p| is_point(p)) {
            self.extent = [
                self.extent[0].min(p[0]),
                self.extent[1].min(p[1]),
                self.extent[2].max(p[0]),
                self.extent[3].max(p[1]),
            ];
        }
        let mut out: Vec<ArrayRef> = Vec::new();
        if self.add_geometry {
            let wkb: arrow_array::BinaryArray = points.iter().map(|p| is_point(p).then(|| wkb_point(*p))).collect();
            out.push(Arc::new(wkb));
        }
        if self.add_bbox {
            let nulls = arrow_buffer::NullBuffer::from(points.iter().map(is_point).collect::<Vec<bool>>());
            let axis = |i: usize| -> ArrayRef {
                Arc::new(arrow_array::Float64Array::from(
                    points.iter().map(|p| if is_point(p) { p[i] } else { 0.0 }).collect::<Vec<_>>(),
                ))
            };
            let parts = vec![axis(0), axis(1), axis(0), axis(1)];
            out.push(Arc::new(arrow_array::StructArray::new(Self::bbox_fields(), parts, Some(nulls))));
        }
        out
    }

    /// The finished `geo` metadata, with the extent of the points written.
    fn finish(mut self) -> String {
        if self.extent[0] <= self.extent[2] {
            self.geo["columns"][&self.primary]["bbox"] = serde_json::json!(self.extent);
        }
        self.geo.to_string()
    }
}

/// `[rows × dim]` embeddings as an Arrow list column of the file's precision, null for the rows
/// that `embedded` says have none.
fn list_column<T: Float>(embeddings: &[T], embedded: &Embedded, dim: usize, dtype: Dtype) -> ArrayRef {
    fn build<T: Float, B: arrow_array::builder::ArrayBuilder>(
        embeddings: &[T],
        embedded: &Embedded,
        dim: usize,
        values: B,
        append: impl Fn(&mut B, f64),
    ) -> ArrayRef {
        let mut b = ListBuilder::with_capacity(values, embeddings.len() / dim);
        for (row, emb) in embeddings.chunks_exact(dim).enumerate() {
            if embedded.has(row) {
                emb.iter().for_each(|v| append(b.values(), v.to_f64()));
            }
            b.append(embedded.has(row));
        }
        Arc::new(b.finish())
    }
    let n = embeddings.len();
    match dtype {
        Dtype::F64 => build(embeddings, embedded, dim, Float64Builder::with_capacity(n), |b, v| b.append_value(v)),
        Dtype::F32 => {
            build(embeddings, embedded, dim, Float32Builder::with_capacity(n), |b, v| b.append_value(v as f32))
        }
    }
}

/// Which rows of a write have an embedding.
enum Embedded<'a> {
    All,
    /// A row whose entry is false has none.
    Rows(&'a [bool]),
}

impl Embedded<'_> {
    fn has(&self, row: usize) -> bool {
        match self {
            Self::All => true,
            Self::Rows(rows) => rows[row],
        }
    }
}

/// A little-endian WKB point.
fn wkb_point([x, y]: [f64; 2]) -> Vec<u8> {
    let mut out = Vec::with_capacity(21);
    out.push(1);
    out.extend(1u32.to_le_bytes());
    out.extend(x.to_le_bytes());
    out.extend(y.to_le_bytes());
    out
}

/// OGC:CRS84 (WGS 84, longitude then latitude, degrees) as PROJJSON, as GeoParquet states a CRS.
fn crs84_projjson() -> serde_json::Value {
    let axis = |name: &str, abbreviation: &str, direction: &str| serde_json::json!({"name": name, "abbreviation": abbreviation, "direction": direction, "unit": "degree"});
    serde_json::json!({
        "$schema": "https://proj.org/schemas/v0.7/projjson.schema.json",
        "type": "GeographicCRS",
        "name": "WGS 84 (CRS84)",
        "datum": {
            "type": "GeodeticReferenceFrame",
            "name": "World Geodetic System 1984",
            "ellipsoid": {"name": "WGS 84", "semi_major_axis": 6378137, "inverse_flattening": 298.257223563}
        },
        "coordinate_system": {
            "subtype": "ellipsoidal",
            "axis": [axis("Geodetic longitude", "Lon", "east"), axis("Geodetic latitude", "Lat", "north")]
        },
        "id": {"authority": "OGC", "code": "CRS84"}
    })
}

impl EmbeddingWriter {
    /// `input_schema` lists the input columns to carry (CSV and Parquet outputs). `metadata`
    /// describes the file (provenance): Parquet keeps it in its footer's key-value metadata, NPY
    /// and CSV in `<file>.json`, an object of the pairs. A GeoParquet input's `geo` metadata is
    /// kept in the footer too, where every GeoParquet reader looks for it.
    pub fn create(
        target: &Path,
        input_schema: &Schema,
        dim: usize,
        dtype: Dtype,
        metadata: Vec<(String, String)>,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(Error::format(target, "an embedding of width 0"));
        }
        Self::open(target, input_schema, dim, dtype, metadata)
    }

    /// A CSV or (Geo)Parquet table of the given columns alone, without an embedding column: e.g.
    /// the input's columns with a model's predictions added. Rows are written with
    /// [`Self::write`] and no embedding values.
    pub fn create_table(target: &Path, schema: &Schema, metadata: Vec<(String, String)>) -> Result<Self> {
        if TableFormat::from_path(target)? == TableFormat::Npy {
            return Err(Error::format(target, "NPY holds one array of numbers, not a table of named columns"));
        }
        Self::open(target, schema, 0, Dtype::F64, metadata)
    }

    /// `dim` 0: no embedding column.
    fn open(
        target: &Path,
        input_schema: &Schema,
        dim: usize,
        dtype: Dtype,
        metadata: Vec<(String, String)>,
    ) -> Result<Self> {
        let format = TableFormat::from_path(target)?;
        let mut file = AtomicFile::create(target)?;
        let writer = file.writer()?;
        let io = |e: std::io::Error| Error::io(target, e);
        let sink = match format {
            TableFormat::Npy => Sink::Npy(NpyWriter::new(writer, dtype, dim).map_err(io)?),
            TableFormat::Csv => {
                let mut csv = csv::Writer::from_writer(writer);
                let header =
                    input_schema.fields().iter().map(|f| f.name().clone()).chain((0..dim).map(|i| format!("emb_{i}")));
                csv.write_record(header).map_err(|e| Error::format(target, e.to_string()))?;
                Sink::Csv(csv)
            }
            TableFormat::Parquet => {
                if dim > 0 && input_schema.fields().iter().any(|f| f.name() == EMBEDDING_COLUMN) {
                    return Err(Error::format(
                        target,
                        format!("the input already has a column named `{EMBEDDING_COLUMN}`; rename it first"),
                    ));
                }
                let item = match dtype {
                    Dtype::F32 => DataType::Float32,
                    Dtype::F64 => DataType::Float64,
                };
                let geo = GeoOutput::for_input(target, input_schema)?;
                let mut fields: Vec<Arc<Field>> = input_schema.fields().iter().cloned().collect();
                if geo.add_geometry {
                    fields.push(Arc::new(Field::new(GEOMETRY_COLUMN, DataType::Binary, true)));
                }
                if geo.add_bbox {
                    fields.push(Arc::new(Field::new(BBOX_COLUMN, DataType::Struct(GeoOutput::bbox_fields()), true)));
                }
                if dim > 0 {
                    fields.push(Arc::new(Field::new(
                        EMBEDDING_COLUMN,
                        DataType::List(Arc::new(Field::new("item", item, true))),
                        true,
                    )));
                }
                // The input's `geo` is superseded by the output's, which goes in the footer alone.
                let mut carried = input_schema.metadata().clone();
                carried.remove("geo");
                let schema = Arc::new(Schema::new_with_metadata(fields, carried));
                let row_bytes = dim.max(1) * dtype.size();
                let footer =
                    metadata.iter().cloned().map(|(k, v)| parquet::file::metadata::KeyValue::new(k, v)).collect();
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some((ROW_GROUP_BYTES / row_bytes).max(1)))
                    .set_key_value_metadata(Some(footer))
                    .build();
                let writer = ArrowWriter::try_new(writer, schema.clone(), Some(props))
                    .map_err(|e| Error::format(target, e.to_string()))?;
                Sink::Parquet(writer, schema, geo)
            }
        };
        Ok(Self { target: target.to_path_buf(), dim, dtype, sink, metadata, file })
    }

    /// Appends rows: the carried input columns, their points (lon, lat; NaN where unknown, which
    /// GeoParquet output stores as a null geometry) and their `[rows × dim]` embeddings, in
    /// either precision (converted to the file's).
    pub fn write<T: Float>(&mut self, columns: &RecordBatch, points: &[[f64; 2]], embeddings: &[T]) -> Result<()> {
        self.write_rows(columns, points, embeddings, Embedded::All)
    }

    /// As [`Self::write`], where only the rows whose `embedded` entry is true have an embedding:
    /// the others' are null in Parquet, empty cells in CSV and their values as given (NaN, say)
    /// in NPY, which has no nulls.
    pub fn write_with_nulls<T: Float>(
        &mut self,
        columns: &RecordBatch,
        points: &[[f64; 2]],
        embeddings: &[T],
        embedded: &[bool],
    ) -> Result<()> {
        assert_eq!(embedded.len(), columns.num_rows(), "one flag per row");
        self.write_rows(columns, points, embeddings, Embedded::Rows(embedded))
    }

    fn write_rows<T: Float>(
        &mut self,
        columns: &RecordBatch,
        points: &[[f64; 2]],
        embeddings: &[T],
        embedded: Embedded,
    ) -> Result<()> {
        let rows = columns.num_rows();
        assert_eq!(embeddings.len(), rows * self.dim, "one embedding per row");
        assert_eq!(points.len(), rows, "one point per row");
        let target = &self.target;
        let fmt = |e: &dyn std::fmt::Display| Error::format(target, e.to_string());
        match &mut self.sink {
            Sink::Npy(w) => {
                w.write_rows(embeddings).map_err(|e| Error::io(target, e))?;
            }
            Sink::Csv(w) => {
                let options = FormatOptions::default();
                let formatters = columns
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| fmt(&e))?;
                let mut record = Vec::with_capacity(formatters.len() + self.dim);
                for r in 0..rows {
                    let emb = &embeddings[r * self.dim..(r + 1) * self.dim];
                    record.clear();
                    record.extend(formatters.iter().map(|f| f.value(r).to_string()));
                    match (embedded.has(r), self.dtype) {
                        (false, _) => record.extend(std::iter::repeat_n(String::new(), self.dim)),
                        (true, Dtype::F64) => record.extend(emb.iter().map(|v| v.to_f64().to_string())),
                        (true, Dtype::F32) => record.extend(emb.iter().map(|v| (v.to_f64() as f32).to_string())),
                    }
                    w.write_record(&record).map_err(|e| fmt(&e))?;
                }
            }
            Sink::Parquet(w, schema, geo) => {
                let mut arrays = columns.columns().to_vec();
                arrays.extend(geo.columns(points));
                if self.dim > 0 {
                    arrays.push(list_column(embeddings, &embedded, self.dim, self.dtype));
                }
                let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| fmt(&e))?;
                w.write(&batch).map_err(|e| fmt(&e))?;
            }
        }
        Ok(())
    }

    /// Completes the file and renames it into place.
    pub fn finish(self) -> Result<()> {
        let target = &self.target;
        match self.sink {
            Sink::Npy(w) => {
                let mut out = w.finish().map_err(|e| Error::io(target, e))?;
                out.flush().map_err(|e| Error::io(target, e))?;
            }
            Sink::Csv(w) => {
                let mut out = w.into_inner().map_err(|e| Error::io(target, e.into_error()))?;
                out.flush().map_err(|e| Error::io(target, e))?;
            }
            Sink::Parquet(mut w, _, geo) => {
                w.append_key_value_metadata(parquet::file::metadata::KeyValue::new("geo".to_string(), geo.finish()));
                let mut out = w.into_inner().map_err(|e| Error::format(target, e.to_string()))?;
                out.flush().map_err(|e| Error::io(target, e))?;
                return self.file.commit();
            }
        }
        if !self.metadata.is_empty() {
            // Beside the file, as an object of the pairs (values that are JSON stay JSON).
            let object: serde_json::Map<String, serde_json::Value> = self
                .metadata
                .iter()
                .map(|(k, v)| {
                    (k.clone(), serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone())))
                })
                .collect();
            let mut name = target.file_name().unwrap_or_default().to_os_string();
            name.push(".json");
            let side = target.with_file_name(name);
            let mut file = AtomicFile::create(&side)?;
            let mut writer = file.writer()?;
            serde_json::to_writer_pretty(&mut writer, &object).map_err(|e| Error::format(&side, e.to_string()))?;
            writer.flush().map_err(|e| Error::io(&side, e))?;
            drop(writer);
            file.commit()?;
        }
        self.file.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_with_geo(geo: &str) -> Schema {
        let fields = vec![
            Field::new("lon", DataType::Float64, false),
            Field::new("lat", DataType::Float64, false),
            Field::new("geometry", DataType::Binary, true),
        ];
        Schema::new_with_metadata(fields, std::collections::HashMap::from([("geo".to_string(), geo.to_string())]))
    }

    #[test]
    fn hostile_geoparquet_metadata_is_refused_or_replaced_never_indexed_blindly() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.parquet");
        // The primary column exists but is described by a number, or `columns` is an array.
        for geo in [
            r#"{"primary_column":"geometry","columns":{"geometry":3}}"#,
            r#"{"primary_column":"geometry","columns":[1]}"#,
        ] {
            let err = EmbeddingWriter::create(&out, &schema_with_geo(geo), 2, Dtype::F32, vec![]).err().unwrap();
            assert!(err.to_string().contains("does not describe its geometry column"), "{err}");
        }
        // Metadata that is not an object is no GeoParquet: a `geometry` column already there is
        // named rather than shadowed.
        for geo in ["[]", "\"x\"", "not json"] {
            let err = EmbeddingWriter::create(&out, &schema_with_geo(geo), 2, Dtype::F32, vec![]).err().unwrap();
            assert!(err.to_string().contains("`geometry`"), "{err}");
        }
        assert!(!out.exists());
    }
}
