//! GeoCLIP's location encoder read from the `geoclip` 1.3.0 wheel's weights, against the golden
//! values of an independent f64 implementation (shared/notes/peers.md §3.6–3.7).

use satclip::core::geo::cosine_similarity;
use satclip_testkit::data_file;

/// [lat, lon] as in the notes, L2 norm (f64), sum, e[0..6], e[511].
const GOLDEN: [([f64; 2], f64, f64, [f64; 6], f64); 8] = [
    (
        [40.7128, -74.006],
        0.2243472918,
        -0.239331,
        [-0.010395, 0.007881, 0.013024, 0.002843, -0.002338, -0.017654],
        0.004009,
    ),
    (
        [34.0522, -118.2437],
        0.2301135697,
        -0.254517,
        [-0.004555, 0.008631, 0.004616, -0.007156, -0.002422, -0.003355],
        -0.011682,
    ),
    ([0.0, 0.0], 0.3952259427, -0.126459, [0.004656, 0.000691, 0.007355, -0.001512, -0.022802, 0.011277], -0.019234),
    (
        [-33.8688, 151.2093],
        0.2719492621,
        -0.569735,
        [-0.017931, 0.013718, 0.008312, -0.014343, 0.006846, -0.007479],
        -0.016520,
    ),
    ([90.0, 0.0], 0.3685939137, 0.274527, [0.026659, -0.002928, 0.032281, 0.008842, 0.009005, 0.021428], 0.004280),
    ([-90.0, 0.0], 0.3248739991, 0.690546, [-0.000191, 0.007970, 0.010991, 0.000582, 0.011825, 0.017825], -0.007792),
    ([0.0, 180.0], 0.3851332877, 0.849199, [-0.022312, -0.014870, -0.002073, 0.015708, -0.002268, 0.015803], 0.001425),
    (
        [0.0, -180.0],
        0.3080070342,
        -0.584387,
        [-0.014625, -0.002082, 0.005509, -0.023339, 0.027850, -0.000886],
        0.000697,
    ),
];

fn model() -> Option<satclip::core::geoclip::GeoClip> {
    let path = data_file(satclip::GEOCLIP_WEIGHTS_FILE)?;
    Some(satclip::load_geoclip(&path).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn geoclip_matches_the_golden_values() {
    let Some(model) = model() else { return };
    let points: Vec<[f64; 2]> = GOLDEN.iter().map(|(latlon, ..)| [latlon[1], latlon[0]]).collect();
    let e = model.embed(&points);
    let mut worst = 0.0f64;
    for (row, (latlon, norm, sum, head, last)) in e.chunks_exact(512).zip(GOLDEN) {
        let got_norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((got_norm - norm).abs() < 1e-9, "{latlon:?}: norm {got_norm} vs {norm}");
        assert!((row.iter().sum::<f64>() - sum).abs() < 5e-6, "{latlon:?}: sum");
        for (g, w) in row[..6].iter().chain([&row[511]]).zip(head.iter().chain([&last])) {
            worst = worst.max((g - w).abs());
        }
    }
    eprintln!("GeoCLIP vs golden: worst printed value off by {worst:.2e} (values are given to 6 decimals)");
    assert!(worst <= 5.0e-7 + 1e-12);
    let cos = |a: usize, b: usize| cosine_similarity(&e[a * 512..(a + 1) * 512], &e[b * 512..(b + 1) * 512]);
    for (a, b, want) in
        [(0, 1, 0.3744), (0, 2, -0.0099), (0, 3, 0.3860), (1, 2, -0.0314), (1, 3, 0.3347), (2, 3, -0.0092)]
    {
        assert!((cos(a, b) - want).abs() < 5e-5, "cosine {a},{b}: {} vs {want}", cos(a, b));
    }
}

/// GeoCLIP's map is cut at ±180° (the notes measured cosine 0.281 across 2 km there, 0.982 for
/// the same spacing elsewhere): the property SatCLIP's harmonics do not share.
#[test]
fn geoclip_has_a_seam_at_the_antimeridian() {
    let Some(model) = model() else { return };
    let e = model.embed(&[[179.99, 0.0], [-179.99, 0.0], [10.0, 0.0], [10.02, 0.0]]);
    let across = cosine_similarity(&e[..512], &e[512..1024]);
    let elsewhere = cosine_similarity(&e[1024..1536], &e[1536..]);
    assert!((across - 0.281).abs() < 1e-3, "across the antimeridian {across}");
    assert!((elsewhere - 0.982).abs() < 1e-3, "elsewhere {elsewhere}");
}

/// The f32 path (GeoCLIP's own precision for the MLPs) stays close to f64 everywhere, seam and
/// poles included.
#[test]
fn geoclip_f32_path_agrees_with_f64() {
    let Some(model) = model() else { return };
    let mut points: Vec<[f64; 2]> = GOLDEN.iter().map(|(latlon, ..)| [latlon[1], latlon[0]]).collect();
    points.extend(satclip::core::geo::fibonacci_lattice(2000));
    let wide = model.embed(&points);
    let mut narrow = vec![0f32; wide.len()];
    model.embed_into_f32(&points, &mut narrow);
    let worst = wide
        .chunks_exact(512)
        .zip(narrow.chunks_exact(512))
        .map(|(w, n)| {
            let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
            w.iter().zip(n).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max) / norm
        })
        .fold(0.0, f64::max);
    eprintln!("GeoCLIP f32 vs f64: worst component error {worst:.2e} of the embedding norm");
    // Measured 2.0e-7.
    assert!(worst < 2e-6, "{worst}");
}
