//! Streaming embedding tables out: NPY `[N, dim]`, CSV (input columns + `emb_0..`) or Parquet
//! (input columns + an `embedding` list column), chosen by extension. Everything is written to a
//! temporary file that is renamed into place only by [`EmbeddingWriter::finish`].

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

use super::TableFormat;
use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::npy::NpyWriter;

/// Name of the embedding column in Parquet output.
pub const EMBEDDING_COLUMN: &str = "embedding";
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
    Parquet(ArrowWriter<BufWriter<File>>, SchemaRef),
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
                if input_schema.fields().iter().any(|f| f.name() == EMBEDDING_COLUMN) {
                    return Err(Error::format(
                        target,
                        format!("the input already has a column named `{EMBEDDING_COLUMN}`; rename it first"),
                    ));
                }
                let item = match dtype {
                    Dtype::F32 => DataType::Float32,
                    Dtype::F64 => DataType::Float64,
                };
                let mut fields: Vec<Arc<Field>> = input_schema.fields().iter().cloned().collect();
                fields.push(Arc::new(Field::new(
                    EMBEDDING_COLUMN,
                    DataType::List(Arc::new(Field::new("item", item, true))),
                    false,
                )));
                let schema = Arc::new(Schema::new_with_metadata(fields, input_schema.metadata().clone()));
                let row_bytes = dim.max(1) * dtype.size();
                let geo = input_schema.metadata().get("geo").map(|g| ("geo".to_string(), g.clone()));
                let footer = metadata
                    .iter()
                    .cloned()
                    .chain(geo)
                    .map(|(k, v)| parquet::file::metadata::KeyValue::new(k, v))
                    .collect();
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some((ROW_GROUP_BYTES / row_bytes).max(1)))
                    .set_key_value_metadata(Some(footer))
                    .build();
                let writer = ArrowWriter::try_new(writer, schema.clone(), Some(props))
                    .map_err(|e| Error::format(target, e.to_string()))?;
                Sink::Parquet(writer, schema)
            }
        };
        Ok(Self { target: target.to_path_buf(), dim, dtype, sink, metadata, file })
    }

    /// Appends rows: the carried input columns and their `[rows × dim]` embeddings, in either
    /// precision (converted to the file's).
    pub fn write<T: Float>(&mut self, columns: &RecordBatch, embeddings: &[T]) -> Result<()> {
        let rows = columns.num_rows();
        assert_eq!(embeddings.len(), rows * self.dim, "one embedding per row");
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
                for (r, emb) in embeddings.chunks_exact(self.dim.max(1)).enumerate().take(rows) {
                    record.clear();
                    record.extend(formatters.iter().map(|f| f.value(r).to_string()));
                    match self.dtype {
                        Dtype::F64 => record.extend(emb.iter().map(|v| v.to_f64().to_string())),
                        Dtype::F32 => record.extend(emb.iter().map(|v| (v.to_f64() as f32).to_string())),
                    }
                    w.write_record(&record).map_err(|e| fmt(&e))?;
                }
            }
            Sink::Parquet(w, schema) => {
                let list: ArrayRef = match self.dtype {
                    Dtype::F64 => {
                        let mut b = ListBuilder::with_capacity(Float64Builder::with_capacity(embeddings.len()), rows);
                        for emb in embeddings.chunks_exact(self.dim.max(1)).take(rows) {
                            emb.iter().for_each(|v| b.values().append_value(v.to_f64()));
                            b.append(true);
                        }
                        Arc::new(b.finish())
                    }
                    Dtype::F32 => {
                        let mut b = ListBuilder::with_capacity(Float32Builder::with_capacity(embeddings.len()), rows);
                        for emb in embeddings.chunks_exact(self.dim.max(1)).take(rows) {
                            emb.iter().for_each(|v| b.values().append_value(v.to_f64() as f32));
                            b.append(true);
                        }
                        Arc::new(b.finish())
                    }
                };
                let mut arrays = columns.columns().to_vec();
                arrays.push(list);
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
            Sink::Parquet(w, _) => {
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
