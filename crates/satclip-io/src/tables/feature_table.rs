//! [`FeatureTable`]: features computed elsewhere (another model, another language, a raster
//! sampled at the points), read from a table and looked up by location, so that `satclip eval`
//! scores them with the same probes, splits and seeds as every registered encoder.

use std::collections::HashMap;
use std::path::Path;

use super::{PointReader, ReadOptions, EMBEDDING_COLUMN, LAT_NAMES, LON_NAMES};
use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::Array;
use arrow_schema::DataType;

/// Coordinates are matched to this many degrees (about a metre), so that a table written with float32
/// coordinates still finds the points it was computed at.
pub const MATCH_DEGREES: f64 = 1e-5;

/// The CSV embedding columns' prefix.
const CSV_PREFIX: &str = "emb_";

/// A table of features by location: a CSV or Parquet file with longitude and latitude columns
/// and the features as what `satclip embed` writes (an `embedding` list column, or CSV columns
/// `emb_0`, `emb_1`, …; other columns are ignored), or else as numeric columns, one feature each.
pub struct FeatureTable {
    dim: usize,
    /// Row-major `[rows × dim]`.
    values: Vec<f64>,
    /// (lon, lat) of each row.
    coords: Vec<[f64; 2]>,
    /// Rows by the [`MATCH_DEGREES`] cell they fall in.
    rows: HashMap<[i64; 2], usize>,
}

/// Where a table's features are.
enum Layout {
    /// One list column (by index) of as many values in every row.
    List(usize),
    /// Numeric columns, by index in the carried columns.
    Columns(Vec<usize>),
}

fn cell(lon: f64, lat: f64) -> [i64; 2] {
    [(lon / MATCH_DEGREES).floor() as i64, (lat / MATCH_DEGREES).floor() as i64]
}

fn is_number(t: &DataType) -> bool {
    matches!(t, DataType::Float64 | DataType::Float32 | DataType::Int64 | DataType::Int32)
}

/// The values of a numeric array as f64, `None` where null.
fn numbers(array: &dyn Array) -> Vec<Option<f64>> {
    match array.data_type() {
        DataType::Float64 => array.as_primitive::<Float64Type>().iter().collect(),
        DataType::Float32 => array.as_primitive::<Float32Type>().iter().map(|v| v.map(f64::from)).collect(),
        DataType::Int64 => array.as_primitive::<Int64Type>().iter().map(|v| v.map(|v| v as f64)).collect(),
        DataType::Int32 => array.as_primitive::<Int32Type>().iter().map(|v| v.map(f64::from)).collect(),
        _ => unreachable!("only numeric columns are read"),
    }
}

impl FeatureTable {
    pub fn open(path: &Path) -> Result<Self> {
        let reader = PointReader::open(path, &ReadOptions::default())?;
        let schema = reader.schema();
        let coordinate = |name: &str| {
            let name = name.to_ascii_lowercase();
            LON_NAMES.contains(&name.as_str()) || LAT_NAMES.contains(&name.as_str())
        };
        let layout = match schema.index_of(EMBEDDING_COLUMN) {
            Ok(index) => match schema.field(index).data_type() {
                DataType::FixedSizeList(item, _) | DataType::List(item) | DataType::LargeList(item)
                    if is_number(item.data_type()) =>
                {
                    Layout::List(index)
                }
                other => {
                    return Err(Error::format(
                        path,
                        format!("column `{EMBEDDING_COLUMN}` is {other}, not a list of numbers"),
                    ))
                }
            },
            // `satclip embed`'s CSV layout: `emb_0`, `emb_1`, … beside the input's columns.
            Err(_) if schema.fields().iter().any(|f| f.name().starts_with(CSV_PREFIX)) => {
                let mut columns: Vec<(usize, usize)> = Vec::new();
                for (index, field) in schema.fields().iter().enumerate() {
                    if let Some(k) = field.name().strip_prefix(CSV_PREFIX).and_then(|k| k.parse().ok()) {
                        if !is_number(field.data_type()) {
                            return Err(Error::format(
                                path,
                                format!("column `{}` is {}, not a number", field.name(), field.data_type()),
                            ));
                        }
                        columns.push((k, index));
                    }
                }
                columns.sort_unstable();
                if columns.iter().enumerate().any(|(i, &(k, _))| i != k) {
                    return Err(Error::format(
                        path,
                        format!("the `{CSV_PREFIX}*` columns are not numbered 0, 1, 2, …"),
                    ));
                }
                Layout::Columns(columns.into_iter().map(|(_, index)| index).collect())
            }
            Err(_) => {
                if schema.fields().iter().any(|f| f.name() == "target") {
                    return Err(Error::format(
                        path,
                        "has a `target` column: a task's labels among the features would leak them into the \
                         probe; drop it, or put the features in an `embedding` column",
                    ));
                }
                let mut columns = Vec::new();
                for (index, field) in schema.fields().iter().enumerate() {
                    if coordinate(field.name()) || matches!(field.data_type(), DataType::Binary | DataType::LargeBinary)
                    {
                        continue;
                    }
                    if !is_number(field.data_type()) {
                        return Err(Error::format(
                            path,
                            format!(
                                "column `{}` is {}: every column besides lon and lat must be a number (one feature \
                                 each), or the features one `{EMBEDDING_COLUMN}` list column",
                                field.name(),
                                field.data_type()
                            ),
                        ));
                    }
                    columns.push(index);
                }
                Layout::Columns(columns)
            }
        };
        let mut table = Self { dim: 0, values: Vec::new(), coords: Vec::new(), rows: HashMap::new() };
        if let Layout::Columns(columns) = &layout {
            if columns.is_empty() {
                return Err(Error::format(path, "has no feature columns besides lon and lat"));
            }
            table.dim = columns.len();
        }
        for batch in reader {
            let batch = batch?;
            let checked = |row: u64, name: &str, v: Option<f64>| -> Result<f64> {
                let value = v.ok_or_else(|| Error::row(path, row, name, "is empty; every feature needs a value"))?;
                if !value.is_finite() {
                    return Err(Error::row(path, row, name, format!("is {value}, not a finite number")));
                }
                Ok(value)
            };
            let mut values = Vec::with_capacity(batch.coords.len() * table.dim);
            match &layout {
                Layout::List(index) => {
                    let column = batch.columns.column(*index);
                    for i in 0..column.len() {
                        let row = batch.first_row + i as u64;
                        if column.is_null(i) {
                            return Err(Error::row(path, row, EMBEDDING_COLUMN, "is empty"));
                        }
                        let item = match column.data_type() {
                            DataType::FixedSizeList(..) => column.as_fixed_size_list().value(i),
                            DataType::List(_) => column.as_list::<i32>().value(i),
                            _ => column.as_list::<i64>().value(i),
                        };
                        if item.is_empty() {
                            return Err(Error::row(path, row, EMBEDDING_COLUMN, "is an empty list"));
                        }
                        if table.dim == 0 {
                            table.dim = item.len();
                        }
                        if item.len() != table.dim {
                            return Err(Error::row(
                                path,
                                row,
                                EMBEDDING_COLUMN,
                                format!("has {} values where the first row has {}", item.len(), table.dim),
                            ));
                        }
                        for v in numbers(item.as_ref()) {
                            values.push(checked(row, EMBEDDING_COLUMN, v)?);
                        }
                    }
                }
                Layout::Columns(columns) => {
                    values.resize(batch.coords.len() * table.dim, 0.0);
                    for (feature, &index) in columns.iter().enumerate() {
                        let name = schema.field(index).name();
                        for (i, v) in numbers(batch.columns.column(index).as_ref()).into_iter().enumerate() {
                            values[i * table.dim + feature] = checked(batch.first_row + i as u64, name, v)?;
                        }
                    }
                }
            }
            let dim = table.dim;
            for (i, &[lon, lat]) in batch.coords.iter().enumerate() {
                let own = &values[i * dim..(i + 1) * dim];
                if let Some(earlier) = table.find(lon, lat) {
                    if table.values[earlier * dim..(earlier + 1) * dim] != *own {
                        return Err(Error::row(
                            path,
                            batch.first_row + i as u64,
                            "lon, lat",
                            format!("({lon}, {lat}) appears again with other features: which ones to use is ambiguous"),
                        ));
                    }
                    continue;
                }
                table.rows.insert(cell(lon, lat), table.coords.len());
                table.coords.push([lon, lat]);
                table.values.extend_from_slice(own);
            }
        }
        if table.rows.is_empty() {
            return Err(Error::format(path, "no data rows: no features to look up"));
        }
        Ok(table)
    }

    /// Width of the features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The features of the row at (lon, lat), matched to [`MATCH_DEGREES`].
    pub fn get(&self, lon: f64, lat: f64) -> Option<&[f64]> {
        let row = self.find(lon, lat)?;
        Some(&self.values[row * self.dim..(row + 1) * self.dim])
    }

    /// The nearest row within [`MATCH_DEGREES`] of (lon, lat) in both coordinates: it lies in
    /// the point's cell or one of the eight around it.
    fn find(&self, lon: f64, lat: f64) -> Option<usize> {
        let [x, y] = cell(lon, lat);
        let distance = |row: usize| {
            let [a, b] = self.coords[row];
            (a - lon).abs().max((b - lat).abs())
        };
        (-1..=1)
            .flat_map(|dx| (-1..=1).map(move |dy| [x + dx, y + dy]))
            .filter_map(|c| self.rows.get(&c).copied())
            .filter(|&row| distance(row) <= MATCH_DEGREES)
            .min_by(|&a, &b| distance(a).total_cmp(&distance(b)))
    }

    /// Distinct locations in the table.
    pub fn len(&self) -> usize {
        self.coords.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
    use arrow_array::{Float64Array, RecordBatch};
    use arrow_schema::{Field, Schema};

    use super::*;

    /// Python writes embeddings as pyarrow's `fixed_size_list<float>`, with float32 coordinates.
    #[test]
    fn a_fixed_size_list_of_float32_is_found_by_rounded_coordinates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emb.parquet");
        let mut list = FixedSizeListBuilder::new(Float32Builder::new(), 3);
        for row in [[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]] {
            list.values().append_slice(&row);
            list.append(true);
        }
        let (lon, lat) = ([10.1f32 as f64, -70.3f32 as f64], [45.2f32 as f64, -12.7f32 as f64]);
        let list = list.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("lon", DataType::Float64, false),
            Field::new("lat", DataType::Float64, false),
            Field::new(EMBEDDING_COLUMN, list.data_type().clone(), false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(lon.to_vec())),
                Arc::new(Float64Array::from(lat.to_vec())),
                Arc::new(list),
            ],
        )
        .unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let table = FeatureTable::open(&path).unwrap();
        assert_eq!((table.dim(), table.len()), (3, 2));
        // The task says 10.1, 45.2; the file holds their float32 roundings (up to 3e-6 away).
        assert_eq!(table.get(10.1, 45.2), Some(&[1.0, 2.0, 3.0][..]));
        assert_eq!(table.get(-70.3, -12.7), Some(&[4.0, 5.0, 6.0][..]));
        assert_eq!(table.get(10.1, 45.3), None);
    }
}
