//! [`PointReader`]: validated (lon, lat) batches from any point table, with the input columns
//! that travel to the output.

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use satclip_core::{check_coordinate, wrap_longitude, CoordinateProblem};

pub use super::parquet_points::Batches;
use super::TableFormat;
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub lon_col: Option<String>,
    pub lat_col: Option<String>,
    /// A column of WKB points to read instead of longitude and latitude columns (Parquet and
    /// Arrow streams), found without it when the GeoParquet metadata names one.
    pub geometry_col: Option<String>,
    pub batch_size: usize,
    /// Bring longitudes outside [−180, 180] back into range instead of refusing them.
    pub wrap_lon: bool,
    /// What a row without a valid point does: stop the read, or come through without a point.
    pub on_invalid: OnInvalid,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            lon_col: None,
            lat_col: None,
            geometry_col: None,
            batch_size: 8192,
            wrap_lon: false,
            on_invalid: OnInvalid::Error,
        }
    }
}

/// What a row whose point is missing or invalid (an empty or null value, text, NaN, a latitude
/// beyond ±90°, a geometry that is not a point) does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnInvalid {
    /// The read fails, naming the file, row and field.
    #[default]
    Error,
    /// The row is kept with a NaN point, so that its output row is null (or NaN in NPY) and
    /// the other rows go on.
    Null,
}

impl std::str::FromStr for OnInvalid {
    type Err = String;

    /// `error` or `null`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "error" => Ok(Self::Error),
            "null" => Ok(Self::Null),
            other => Err(format!("on_invalid `{other}`: use error or null")),
        }
    }
}

/// A batch of validated points and the input columns that travel with them.
pub struct PointBatch {
    /// 1-based data row of the first point.
    pub first_row: u64,
    /// (lon, lat) per row; NaN for a row without a valid point (read with [`OnInvalid::Null`]).
    pub coords: Vec<[f64; 2]>,
    pub columns: RecordBatch,
    /// Why the batch's first row without a point has none (read with [`OnInvalid::Null`]): the
    /// error that [`OnInvalid::Error`] would have stopped at, naming the file, row and field.
    pub first_invalid: Option<Error>,
}

/// Whether `p` is a point rather than the NaN that stands for a row without one.
pub fn is_point(p: &[f64; 2]) -> bool {
    !(p[0].is_nan() || p[1].is_nan())
}

/// Rows as a format read them: (lon, lat) per row, NaN where a row's point could not be read at
/// all (with why, by row index from 0, in `unreadable`), and the carried columns.
pub(super) struct RawRows {
    pub coords: Vec<[f64; 2]>,
    pub unreadable: Vec<(usize, Error)>,
    pub columns: RecordBatch,
}

pub struct PointReader {
    path: PathBuf,
    schema: SchemaRef,
    total_rows: Option<u64>,
    next_row: u64,
    wrap_lon: bool,
    on_invalid: OnInvalid,
    batch_size: usize,
    source: Box<dyn PointSource>,
}

/// One format's reading: up to `max` rows of raw (lon, lat) and the carried columns.
pub(super) trait PointSource: Send {
    fn next_rows(&mut self, path: &Path, first_row: u64, max: usize) -> Result<Option<RawRows>>;
}

/// What each format's `open` gives: the carried columns, the row count when the format records
/// it, and the source of rows.
pub(super) type Opened = (SchemaRef, Option<u64>, Box<dyn PointSource>);

impl PointReader {
    pub fn open(path: &Path, options: &ReadOptions) -> Result<Self> {
        let format = TableFormat::from_path(path)?;
        let file = crate::open_regular(path)?;
        let batch_size = options.batch_size.max(1);
        if options.geometry_col.is_some() && format != TableFormat::Parquet {
            return Err(Error::format(path, "--geometry-col reads WKB points from Parquet files only"));
        }
        let opened = match format {
            TableFormat::Csv => super::csv_points::open(path, file, options)?,
            TableFormat::Parquet => super::parquet_points::open(path, file, options, batch_size)?,
            TableFormat::Npy => super::npy_points::open(path, file)?,
        };
        Ok(Self::new(path, opened, options))
    }

    /// Points from a stream of Arrow record batches with the columns a Parquet point table
    /// has (lon/lat columns, or a GeoParquet geometry column with its `geo` metadata in
    /// `schema`). `name` stands for the stream in errors, as a file's path does.
    pub fn from_batches(name: &Path, schema: SchemaRef, batches: Batches, options: &ReadOptions) -> Result<Self> {
        let opened = super::parquet_points::from_batches(name, schema, batches, options)?;
        Ok(Self::new(name, opened, options))
    }

    fn new(path: &Path, (schema, total_rows, source): Opened, options: &ReadOptions) -> Self {
        Self {
            path: path.to_path_buf(),
            schema,
            total_rows,
            next_row: 1,
            wrap_lon: options.wrap_lon,
            on_invalid: options.on_invalid,
            batch_size: options.batch_size.max(1),
            source,
        }
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
        let Some(RawRows { mut coords, unreadable, columns }) =
            self.source.next_rows(&self.path, first_row, self.batch_size)?
        else {
            return Ok(None);
        };
        let mut unreadable = unreadable.into_iter().peekable();
        let mut first_invalid = None;
        for (i, point) in coords.iter_mut().enumerate() {
            let checked = match unreadable.next_if(|(row, _)| *row == i) {
                Some((_, error)) => Err(error),
                None => self.point(first_row + i as u64, point[0], point[1]),
            };
            *point = match (checked, self.on_invalid) {
                (Ok(valid), _) => valid,
                (Err(error), OnInvalid::Error) => return Err(error),
                (Err(error), OnInvalid::Null) => {
                    first_invalid.get_or_insert(error);
                    [f64::NAN; 2]
                }
            };
        }
        self.next_row += coords.len() as u64;
        Ok(Some(PointBatch { first_row, coords, columns, first_invalid }))
    }
}

impl Iterator for PointReader {
    type Item = Result<PointBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}
