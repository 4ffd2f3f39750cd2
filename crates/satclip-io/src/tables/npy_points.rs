//! NPY point arrays: `[N, 2]` of (lon, lat), float32 or float64, either byte order.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::points::{Opened, PointSource, RawRows};
use crate::error::{Error, Result};
use crate::npy;

struct NpySource {
    reader: BufReader<File>,
    header: npy::NpyHeader,
    remaining: u64,
    schema: SchemaRef,
}

impl PointSource for NpySource {
    fn next_rows(&mut self, path: &Path, _first_row: u64, max: usize) -> Result<Option<RawRows>> {
        let Self { reader, header, remaining, schema } = self;
        let rows = (*remaining).min(max as u64) as usize;
        if rows == 0 {
            return Ok(None);
        }
        let size = header.dtype.size();
        let mut raw = vec![0u8; rows * 2 * size];
        reader.read_exact(&mut raw).map_err(|e| Error::io(path, e))?;
        *remaining -= rows as u64;
        let coords: Vec<[f64; 2]> =
            raw.chunks_exact(2 * size).map(|b| [header.decode(&b[..size]), header.decode(&b[size..])]).collect();
        let lon = Float64Array::from_iter_values(coords.iter().map(|c| c[0]));
        let lat = Float64Array::from_iter_values(coords.iter().map(|c| c[1]));
        let columns = RecordBatch::try_new(schema.clone(), vec![Arc::new(lon), Arc::new(lat)])
            .map_err(|e| Error::format(path, e.to_string()))?;
        Ok(Some(RawRows { coords, unreadable: Vec::new(), columns }))
    }
}

pub(super) fn open(path: &Path, file: File) -> Result<Opened> {
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
    Ok((schema.clone(), Some(rows), Box::new(NpySource { reader, header, remaining: rows, schema })))
}
