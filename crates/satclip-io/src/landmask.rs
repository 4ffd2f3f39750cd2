//! The NOAA GLOBE land/sea mask as shipped by the `global-land-mask` package (an npz holding a
//! 21600 × 43200 boolean array, true for water), reduced to land fractions on a coarse grid while
//! streaming, so the 933 MB array is never held in memory.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

pub const LAND_MASK_FILE: &str = "globe_combined_mask_compressed.npz";

/// Land fraction on a coarse grid, reduced from the 30″ GLOBE mask while streaming it, so the
/// 933 MB boolean array is never held in memory.
pub struct LandMask {
    rows: usize,
    cols: usize,
    /// Land cells per coarse cell (0..=factor²).
    land: Vec<u16>,
    per_cell: u16,
}

impl LandMask {
    /// Reads `mask` from the npz; `factor` fine cells per coarse cell side (12 → 0.1°).
    pub fn read_npz(path: &Path, factor: usize) -> Result<Self> {
        let file = crate::open_regular(path)?;
        let mut zip =
            zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| Error::format(path, e.to_string()))?;
        let entry = zip.by_name("mask.npy").map_err(|e| Error::format(path, format!("no mask.npy: {e}")))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, entry);
        let mut prefix = [0u8; 10];
        reader.read_exact(&mut prefix).map_err(|e| Error::io(path, e))?;
        let header_len = u16::from_le_bytes([prefix[8], prefix[9]]) as usize;
        let mut header = vec![0u8; header_len];
        reader.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
        let header = String::from_utf8_lossy(&header);
        if !header.contains("'|b1'") || !header.contains("(21600, 43200)") {
            return Err(Error::format(path, format!("unexpected mask header {header}")));
        }
        let (fine_rows, fine_cols) = (21_600, 43_200);
        let (rows, cols) = (fine_rows / factor, fine_cols / factor);
        let mut land = vec![0u16; rows * cols];
        let mut line = vec![0u8; fine_cols];
        for r in 0..fine_rows {
            reader.read_exact(&mut line).map_err(|e| Error::io(path, e))?;
            let coarse = &mut land[(r / factor) * cols..(r / factor + 1) * cols];
            for (c, is_water) in line.iter().enumerate() {
                if *is_water == 0 {
                    coarse[c / factor] += 1;
                }
            }
        }
        Ok(Self { rows, cols, land, per_cell: (factor * factor) as u16 })
    }

    pub fn land_fraction(&self, lon: f64, lat: f64) -> f64 {
        let r = (((90.0 - lat) / 180.0 * self.rows as f64) as usize).min(self.rows - 1);
        let c = (((lon + 180.0) / 360.0 * self.cols as f64) as usize).min(self.cols - 1);
        self.land[r * self.cols + c] as f64 / self.per_cell as f64
    }
}
