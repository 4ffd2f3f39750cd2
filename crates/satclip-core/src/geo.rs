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
