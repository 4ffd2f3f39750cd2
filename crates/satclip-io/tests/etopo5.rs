//! ETOPO5 from Debian's ferret-datasets (installed by scripts/install-data.sh), checked at the
//! places the shared data README lists.

#[test]
fn etopo5_gives_the_documented_elevations() {
    let Some(path) = satclip_testkit::data_file(satclip_io::grid::ETOPO5_FILE) else { return };
    let grid = satclip_io::grid::LonLatGrid::read_netcdf(&path, "ROSE").unwrap();
    // (lon, lat, metres from the README, tolerance: a 5′ cell in the mountains varies a lot).
    for (place, lon, lat, metres, tol) in [
        ("Denver", -104.99, 39.74, 1658.0, 150.0),
        ("La Paz", -68.15, -16.50, 4267.0, 400.0),
        ("South Pole", 0.0, -90.0, 2810.0, 1.0),
        ("Mariana Trench", 142.2, 11.35, -9905.0, 800.0),
    ] {
        let got = grid.nearest(lon, lat) as f64;
        assert!((got - metres).abs() <= tol, "{place}: {got} m, expected about {metres}");
    }
    assert_eq!(grid.nearest(180.0, 10.0), grid.nearest(-180.0, 10.0), "longitude wraps");
}

#[test]
fn a_file_that_is_not_netcdf_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.cdf");
    std::fs::write(&path, b"CDF\x01 not really").unwrap();
    let err = satclip_io::grid::LonLatGrid::read_netcdf(&path, "ROSE").err().expect("an error").to_string();
    assert!(err.contains("x.cdf"), "{err}");
}
