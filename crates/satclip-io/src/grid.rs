//! Regular lon/lat rasters stored as a 2-D variable of a netCDF classic file, e.g. ETOPO5
//! elevation (`ROSE` over `ETOPO05_Y` × `ETOPO05_X`), looked up at the nearest cell.

use std::path::Path;

use crate::error::{Error, Result};

/// The file ETOPO5 is installed as by `scripts/install-data.sh`.
pub const ETOPO5_FILE: &str = "etopo5.cdf";

/// A raster on a regular grid: `values[row · cols + col]` at latitude `lat0 + row · dlat` and
/// longitude `lon0 + col · dlon` (longitudes wrap around the globe).
pub struct LonLatGrid {
    lat0: f64,
    dlat: f64,
    lon0: f64,
    dlon: f64,
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl LonLatGrid {
    /// Reads the 2-D variable `name` (dimensions latitude then longitude, each with a coordinate
    /// variable of the same name) from a netCDF classic file.
    pub fn read_netcdf(path: &Path, name: &str) -> Result<Self> {
        let bad = |msg: String| Error::format(path, msg);
        let mut reader =
            netcdf3::FileReader::open(path).map_err(|e| bad(format!("not a netCDF classic file: {e:?}")))?;
        let dims = reader.data_set().get_var(name).ok_or_else(|| bad(format!("no variable `{name}`")))?.dim_names();
        let [y_name, x_name] = &dims[..] else {
            return Err(bad(format!("`{name}` has {} dimensions, expected 2 (lat, lon)", dims.len())));
        };
        let mut axis = |axis: &str| -> Result<Vec<f64>> {
            let v = reader.read_var(axis).map_err(|e| bad(format!("coordinate variable `{axis}`: {e:?}")))?;
            v.get_f64_into()
                .or_else(|v| v.get_f32_into().map(|x| x.into_iter().map(f64::from).collect()))
                .map_err(|_| bad(format!("coordinate variable `{axis}` is not floating point")))
        };
        let (ys, xs) = (axis(y_name)?, axis(x_name)?);
        let values = reader
            .read_var(name)
            .map_err(|e| bad(format!("`{name}`: {e:?}")))?
            .get_f32_into()
            .map_err(|_| bad(format!("`{name}` is not float32")))?;
        if ys.len() < 2 || xs.len() < 2 || values.len() != ys.len() * xs.len() {
            return Err(bad(format!("`{name}` does not match its {} × {} axes", ys.len(), xs.len())));
        }
        // A regular grid: the mean step over the whole axis (ETOPO5's stored steps jitter in
        // the last digits).
        let step = |a: &[f64]| (a[a.len() - 1] - a[0]) / (a.len() - 1) as f64;
        Ok(Self { lat0: ys[0], dlat: step(&ys), lon0: xs[0], dlon: step(&xs), rows: ys.len(), cols: xs.len(), values })
    }

    /// The value of the cell nearest to (lon, lat).
    pub fn nearest(&self, lon: f64, lat: f64) -> f32 {
        let row = ((lat - self.lat0) / self.dlat).round().clamp(0.0, (self.rows - 1) as f64) as usize;
        let col = ((lon - self.lon0) / self.dlon).round().rem_euclid(self.cols as f64) as usize % self.cols;
        self.values[row * self.cols + col]
    }
}
