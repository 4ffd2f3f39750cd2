//! Projected raster grids: a cell's centre in a projected CRS (an EPSG code, e.g. a UTM zone)
//! taken back to the (lon, lat) the encoders take, with PROJ's projections ported to Rust
//! (proj4rs) and the EPSG definitions of crs-definitions.

use std::path::Path;

use proj4rs::proj::Proj;

use crate::{Error, Result};

pub struct Projection {
    epsg: u16,
    projected: Proj,
    lonlat: Proj,
}

impl Projection {
    /// The CRS `EPSG:code` (or a bare code); geographic CRSs are refused, since a lon/lat grid
    /// needs no projection.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: String| Error::format(Path::new(text), why);
        let digits = text.trim().trim_start_matches("EPSG:").trim_start_matches("epsg:");
        let epsg: u16 = digits.parse().map_err(|_| bad("give a CRS as EPSG:CODE, e.g. EPSG:32633".into()))?;
        let projected = Proj::from_epsg_code(epsg).map_err(|e| bad(format!("EPSG:{epsg}: {e}")))?;
        if projected.is_latlong() {
            return Err(bad(format!("EPSG:{epsg} is geographic: leave out --crs for a lon/lat grid")));
        }
        let lonlat = Proj::from_proj_string("+proj=longlat +datum=WGS84 +no_defs").expect("WGS 84 is defined");
        Ok(Self { epsg, projected, lonlat })
    }

    pub fn epsg(&self) -> u16 {
        self.epsg
    }

    /// Each point from this CRS to (lon, lat) in degrees, in place; NaN where the inverse
    /// projection has no answer (outside the projection's domain).
    pub fn to_lonlat(&self, points: &mut [[f64; 2]]) {
        for p in points {
            let mut xyz = (p[0], p[1], 0.0);
            let ok = proj4rs::transform::transform(&self.projected, &self.lonlat, &mut xyz).is_ok();
            let (lon, lat) = (xyz.0.to_degrees(), xyz.1.to_degrees());
            *p = if ok && crate::core::check_coordinate(lon, lat).is_ok() { [lon, lat] } else { [f64::NAN; 2] };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_and_web_mercator_invert_to_known_places() {
        // UTM 33N: the false easting is the central meridian, 15° E; the origin is the equator.
        let utm = Projection::parse("EPSG:32633").unwrap();
        let mut points = [[500_000.0, 0.0], [500_000.0, 5_000_000.0]];
        utm.to_lonlat(&mut points);
        assert!((points[0][0] - 15.0).abs() < 1e-9 && points[0][1].abs() < 1e-9, "{points:?}");
        // 5000 km north on the central meridian: PROJ 9 (pyproj 3.7) gives 45.153477183356024.
        assert!((points[1][0] - 15.0).abs() < 1e-9 && (points[1][1] - 45.153_477_183_356).abs() < 1e-9, "{points:?}");
        let mercator = Projection::parse("3857").unwrap();
        let mut edge = [[20_037_508.342_789_244, 0.0], [f64::NAN, 0.0]];
        mercator.to_lonlat(&mut edge);
        assert!((edge[0][0] - 180.0).abs() < 1e-9, "{edge:?}");
        assert!(edge[1][0].is_nan(), "no answer, no point");
        assert!(Projection::parse("EPSG:4326").err().unwrap().to_string().contains("geographic"));
        assert!(Projection::parse("UTM33").err().unwrap().to_string().contains("EPSG:CODE"));
    }

    /// The flag's whole input space once it parses as a code: every EPSG code gives a projection
    /// or an error, and inverting points in and far outside a projection's domain gives places
    /// or NaN, never a panic.
    #[test]
    fn every_epsg_code_parses_or_is_refused_and_inverts_without_panicking() {
        let mut projected = 0;
        for code in 0..=u16::MAX {
            let Ok(projection) = Projection::parse(&code.to_string()) else { continue };
            projected += 1;
            let mut points = [[0.0, 0.0], [500_000.0, 4_000_000.0], [-1e12, 1e12], [f64::INFINITY, 0.0]];
            projection.to_lonlat(&mut points);
            assert!(points.iter().all(|p| p[0].is_nan() || crate::core::check_coordinate(p[0], p[1]).is_ok()));
        }
        assert!(projected > 1000, "{projected} projected CRSs");
    }
}
