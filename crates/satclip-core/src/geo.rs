//! Small spherical-geometry helpers shared by tests, evaluation and maps.

/// Mean Earth radius used for distances, in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0;

/// The point `distance_km` from (lon, lat) along the initial bearing `bearing_deg` (clockwise
/// from north), on a sphere. Longitude is returned in [−180, 180).
pub fn destination(lon: f64, lat: f64, bearing_deg: f64, distance_km: f64) -> [f64; 2] {
    let (phi1, lambda1, theta) = (lat.to_radians(), lon.to_radians(), bearing_deg.to_radians());
    let delta = distance_km / EARTH_RADIUS_KM;
    let phi2 = (phi1.sin() * delta.cos() + phi1.cos() * delta.sin() * theta.cos()).clamp(-1.0, 1.0).asin();
    let lambda2 = lambda1 + (theta.sin() * delta.sin() * phi1.cos()).atan2(delta.cos() - phi1.sin() * phi2.sin());
    let lon2 = (lambda2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    [lon2, phi2.to_degrees()]
}

/// Great-circle distance in km (haversine).
pub fn haversine_km(a: [f64; 2], b: [f64; 2]) -> f64 {
    let (phi1, phi2) = (a[1].to_radians(), b[1].to_radians());
    let dphi = phi2 - phi1;
    let dlambda = (b[0] - a[0]).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine_similarity(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norms = a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norms > 0.0 {
        dot / norms
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_and_distance_agree() {
        for &(lon, lat) in &[(0.0, 0.0), (179.9, 10.0), (-45.0, 89.9), (10.0, -89.99)] {
            for bearing in [0.0, 90.0, 200.0] {
                let d = destination(lon, lat, bearing, 1.0);
                assert!((haversine_km([lon, lat], d) - 1.0).abs() < 1e-6, "{lon},{lat} {bearing}");
                assert!((-180.0..180.0).contains(&d[0]) && d[1].abs() <= 90.0);
            }
        }
        // One degree of latitude is about 111.19 km.
        assert!((haversine_km([0.0, 0.0], [0.0, 1.0]) - 111.195).abs() < 1e-3);
        let across = destination(179.9995, 0.0, 90.0, 1.0);
        assert!(across[0] < -179.99, "crossing the antimeridian wraps: {across:?}");
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal_vectors() {
        assert!((cosine_similarity(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-15);
        assert_eq!(cosine_similarity(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}

/// `n` points spread evenly over the sphere (a Fibonacci lattice): latitudes at equal steps of
/// sin(lat), longitudes advancing by the golden angle. Used as candidate locations to localise an
/// image, as in the official notebook B02.
pub fn fibonacci_lattice(n: usize) -> Vec<[f64; 2]> {
    let golden_angle = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    (0..n)
        .map(|i| {
            let y = 1.0 - 2.0 * (i as f64 + 0.5) / n as f64;
            let lon = ((i as f64 * golden_angle).to_degrees() + 180.0).rem_euclid(360.0) - 180.0;
            [lon, y.asin().to_degrees()]
        })
        .collect()
}

/// `n` points drawn uniformly over the sphere (seeded) among those `accept` keeps, e.g. land.
pub fn sample_uniform_where(n: usize, seed: u64, accept: impl Fn(f64, f64) -> bool) -> Vec<[f64; 2]> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut points = Vec::with_capacity(n);
    while points.len() < n {
        let lon = rng.random_range(-180.0..180.0);
        let lat = rng.random_range(-1.0f64..1.0).asin().to_degrees();
        if accept(lon, lat) {
            points.push([lon, lat]);
        }
    }
    points
}

#[cfg(test)]
mod lattice_tests {
    use super::*;

    #[test]
    fn lattice_covers_the_sphere_evenly() {
        let points = fibonacci_lattice(10_000);
        assert!(points.iter().all(|p| (-180.0..180.0).contains(&p[0]) && p[1].abs() < 90.0));
        // Equal area: the share of points north of 30° is the cap's share of the sphere, 1/4.
        let north = points.iter().filter(|p| p[1] > 30.0).count() as f64 / points.len() as f64;
        assert!((north - 0.25).abs() < 1e-3, "{north}");
        // No point is far from its nearest neighbour: spacing ~ sqrt(4π R² / n) ≈ 226 km.
        let probe = [[10.0, 10.0], [-120.0, 60.0], [75.0, -80.0]];
        for q in probe {
            let nearest = points.iter().map(|p| haversine_km(q, *p)).fold(f64::MAX, f64::min);
            assert!(nearest < 200.0, "{q:?}: {nearest}");
        }
    }
}

/// A lon/lat raster: square cells of `resolution` degrees, `width` columns eastwards from
/// `west` and `height` rows southwards from `north`, each cell represented by its centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridExtent {
    pub west: f64,
    pub north: f64,
    pub resolution: f64,
    pub width: usize,
    pub height: usize,
}

/// Widest grid (cells per row) that maps and rasters accept.
pub const MAX_GRID_WIDTH: usize = 1 << 16;

impl GridExtent {
    /// The cells covering `[west, south, east, north]`, which must span a whole number of cells
    /// in each direction (so that the grid is exactly the one asked for).
    pub fn new(bounds: [f64; 4], resolution: f64) -> Result<Self, String> {
        let [west, south, east, north] = bounds;
        if !(bounds.iter().all(|b| b.is_finite())
            && (-180.0..east).contains(&west)
            && east <= 180.0
            && (-90.0..north).contains(&south)
            && north <= 90.0)
        {
            return Err(format!(
                "bounds {west},{south},{east},{north} are not west,south,east,north within ±180°, ±90°"
            ));
        }
        Self::cells(bounds, resolution, "°", ["of longitude", "of latitude"])
    }

    /// A grid in a projected CRS: `bounds` and `resolution` in its units (metres for UTM).
    pub fn projected(bounds: [f64; 4], resolution: f64) -> Result<Self, String> {
        let [west, south, east, north] = bounds;
        if !(bounds.iter().all(|b| b.is_finite()) && west < east && south < north) {
            return Err(format!("bounds {west},{south},{east},{north} are not west,south,east,north"));
        }
        Self::cells(bounds, resolution, " m", ["in x", "in y"])
    }

    fn cells(bounds: [f64; 4], resolution: f64, unit: &str, axes: [&str; 2]) -> Result<Self, String> {
        let [west, south, east, north] = bounds;
        if !(resolution.is_finite() && resolution > 0.0) {
            return Err(format!("resolution {resolution} is not a positive cell size"));
        }
        let cells = |span: f64, what: &str| {
            let n = (span / resolution).round();
            if (n * resolution - span).abs() > 1e-9 * span.max(1.0) {
                // Spans such as 42 − 31.03 are not exact in binary: print them as typed.
                let span = (span * 1e9).round() / 1e9;
                Err(format!("the bounds span {span}{unit} {what}, not a whole number of {resolution}{unit} cells"))
            } else {
                Ok(n as usize)
            }
        };
        let (width, height) = (cells(east - west, axes[0])?, cells(north - south, axes[1])?);
        // A row of cells is embedded at once: its width bounds the memory of every grid product.
        if width > MAX_GRID_WIDTH {
            return Err(format!(
                "{width} cells of {resolution}{unit} across {}{unit} is wider than {MAX_GRID_WIDTH}: use a coarser \
                 resolution or narrower bounds",
                east - west
            ));
        }
        Ok(Self { west, north, resolution, width, height })
    }

    /// The whole globe, which `resolution` must divide.
    pub fn global(resolution: f64) -> Result<Self, String> {
        Self::new([-180.0, -90.0, 180.0, 90.0], resolution)
    }

    /// (lon, lat) of the centre of the cell in `row` (from the north) and `col` (from the west).
    pub fn centre(&self, row: usize, col: usize) -> [f64; 2] {
        [self.west + (col as f64 + 0.5) * self.resolution, self.north - (row as f64 + 0.5) * self.resolution]
    }

    /// Centres of rows `rows`, row-major.
    pub fn centres(&self, rows: std::ops::Range<usize>) -> Vec<[f64; 2]> {
        rows.flat_map(|r| (0..self.width).map(move |c| self.centre(r, c))).collect()
    }
}

#[cfg(test)]
mod grid_tests {
    use super::*;

    #[test]
    fn extents_cover_their_bounds_with_whole_cells() {
        let g = GridExtent::new([-125.0, 32.0, -114.0, 42.5], 0.5).unwrap();
        assert_eq!((g.width, g.height), (22, 21));
        assert_eq!(g.centre(0, 0), [-124.75, 42.25]);
        assert_eq!(g.centre(20, 21), [-114.25, 32.25]);
        assert_eq!(g.centres(1..3).len(), 44);
        let globe = GridExtent::global(0.1).unwrap();
        assert_eq!((globe.width, globe.height), (3600, 1800));
        let err = GridExtent::new([-125.0, 32.0, -114.3, 42.0], 0.5).unwrap_err();
        assert!(err.contains("10.7") && err.contains("longitude"), "{err}");
        assert!(GridExtent::new([10.0, 0.0, 5.0, 1.0], 1.0).unwrap_err().contains("west,south,east,north"));
        assert!(GridExtent::new([0.0, 0.0, 1.0, 91.0], 1.0).is_err());
        assert!(GridExtent::new([0.0, 0.0, 1.0, 1.0], 0.0).unwrap_err().contains("resolution"));
        assert!(GridExtent::global(0.7).is_err());
        // Projected grids take any finite bounds in their own units.
        let utm = GridExtent::projected([400_000.0, 5_000_000.0, 500_000.0, 5_100_000.0], 10_000.0).unwrap();
        assert_eq!((utm.width, utm.height, utm.centre(0, 0)), (10, 10, [405_000.0, 5_095_000.0]));
        let err = GridExtent::projected([0.0, 0.0, 15_000.0, 10_000.0], 10_000.0).unwrap_err();
        assert!(err.contains("15000 m in x"), "{err}");
    }
}
