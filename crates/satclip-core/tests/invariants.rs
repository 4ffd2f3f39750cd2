//! Geometric invariants of the encoder, on freshly initialised L=10 and L=40 SIRENs (official
//! initialisation): embeddings are continuous across the antimeridian and at the poles, and
//! lon = −180 and lon = 180 are the same place. The same checks run on the official fixture
//! checkpoints in satclip-io's tests.

use rand::SeedableRng;
use satclip_core::geo::{cosine_similarity as cosine, destination};
use satclip_core::{Hyperparameters, LocationEncoder};

fn encoder(l: usize) -> LocationEncoder {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(l as u64);
    LocationEncoder::init(Hyperparameters { legendre_polys: l, ..Hyperparameters::default() }, &mut rng).unwrap()
}

/// Anchors on a global grid plus the poles and both sides of the antimeridian.
fn anchors() -> Vec<[f64; 2]> {
    let mut points = vec![[0.0, 90.0], [0.0, -90.0], [180.0, 0.0], [-180.0, 0.0], [179.9999, 45.0], [-179.9999, -45.0]];
    for lat in (-85..=85).step_by(17) {
        for lon in (-180..180).step_by(30) {
            points.push([lon as f64, lat as f64]);
        }
    }
    for lat in [89.999, -89.999, 89.5, -89.5] {
        points.push([123.0, lat]);
    }
    points
}

#[test]
fn points_one_kilometre_apart_have_nearly_equal_embeddings() {
    for l in [10, 40] {
        let enc = encoder(l);
        let mut worst = 1.0f64;
        for [lon, lat] in anchors() {
            let here = enc.embed(&[[lon, lat]]).unwrap();
            for bearing in [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0] {
                let there = enc.embed(&[destination(lon, lat, bearing, 1.0)]).unwrap();
                worst = worst.min(cosine(here.row(0), there.row(0)));
            }
        }
        assert!(worst > 0.999, "L={l}: worst cosine over 1 km is {worst}");
    }
}

#[test]
fn the_antimeridian_is_one_place() {
    for l in [10, 40] {
        let enc = encoder(l);
        for lat in [-90.0, -63.0, 0.0, 12.5, 77.0, 90.0] {
            let e = enc.embed(&[[-180.0, lat], [180.0, lat]]).unwrap();
            let diff = e.row(0).iter().zip(e.row(1)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-10, "L={l}, lat={lat}: lon ±180 differ by {diff}");
        }
    }
}

#[test]
fn every_longitude_at_a_pole_is_the_same_point() {
    let enc = encoder(40);
    for lat in [90.0, -90.0] {
        let e = enc.embed(&[[0.0, lat], [-137.0, lat], [99.0, lat]]).unwrap();
        for r in 1..3 {
            let diff = e.row(0).iter().zip(e.row(r)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-10, "pole {lat}: {diff}");
        }
    }
}

#[test]
fn batch_size_changes_results_only_by_rounding() {
    let enc = encoder(40);
    let points: Vec<[f64; 2]> =
        (0..1000).map(|i| [(i as f64 * 7.3) % 360.0 - 180.0, (i as f64 * 3.1) % 180.0 - 90.0]).collect();
    let all = enc.embed(&points).unwrap();
    for (i, p) in points.iter().enumerate().step_by(97) {
        let one = enc.embed(&[*p]).unwrap();
        let diff = one.row(0).iter().zip(all.row(i)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-12, "row {i}: {diff:e}");
    }
}
