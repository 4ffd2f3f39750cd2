//! The task suite built from the real sources: known places get the right labels and densities,
//! and the whole build writes every task with the expected shape. Skipped (with a notice) when
//! the shared data or the open data from scripts/install-data.sh are absent.

use satclip_eval::build::{label_points, population_density, BuildSpec};
use satclip_eval::regions::Regions;
use satclip_eval::{Target, Task};
use satclip_testkit::{data_file, shared_file};

#[test]
fn natural_earth_countries_at_known_places() {
    let Some(path) = data_file(satclip_eval::build::COUNTRIES_FILE) else { return };
    let countries = Regions::read_shapefile_zip(&path).unwrap();
    let places = [[2.35, 48.86], [-60.02, -3.10], [151.2, -33.87], [139.69, 35.69], [-30.0, 0.0]];
    let labels = label_points(&countries, &places, "NAME");
    let names: Vec<&str> = labels.iter().map(|(_, _, n)| n.as_str()).collect();
    // The mid-Atlantic point is in no country and is dropped.
    assert_eq!(names, ["France", "Brazil", "Australia", "Japan"]);
}

#[test]
fn population_density_is_high_in_cities_and_zero_in_the_desert() {
    let Some(path) = data_file(satclip_eval::build::CITIES_FILE) else { return };
    let rows = population_density(&path, &[[2.35, 48.86], [3.0, 25.0], [-74.0, 40.71]]).unwrap();
    let density: Vec<f64> = rows.iter().map(|r| r.2.parse().unwrap()).collect();
    assert!(density[0] > 2.5 && density[2] > 2.5, "Paris and New York: {density:?}");
    assert_eq!(density[1], 0.0, "the Sahara");
}

#[test]
fn the_suite_builds_every_task() {
    let (Some(shared), Some(open)) = (shared_file("data"), data_file(satclip_io::landmask::LAND_MASK_FILE)) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let spec = BuildSpec {
        shared_data: Some(shared),
        open_data: open.parent().unwrap().to_path_buf(),
        out: out.path().to_path_buf(),
        land_points: 2000,
        seed: 0,
    };
    let report = satclip_eval::build::build_tasks(&spec).unwrap();
    let written: Vec<&str> = report.written.iter().map(|(n, _)| n.as_str()).collect();
    if !report.skipped.is_empty() {
        satclip_testkit::skip(&format!("parts of the suite: {:?}", report.skipped));
        return;
    }
    assert_eq!(written.len(), 9, "{written:?}");
    for (name, rows, classes) in [
        ("air_temperature.csv", 3076, None),
        ("median_income.csv", 3139, None),
        ("california_housing.csv", 20640, None),
        ("elevation.csv", 2000, None),
        ("population_density.csv", 2000, None),
        ("biome.csv", 0, Some(14)),
        ("country.csv", 0, Some(60)),
        ("ecoregion.csv", 0, Some(250)),
    ] {
        let task = Task::read(&out.path().join(name), None).unwrap();
        match (&task.target, classes) {
            (Target::Values(_), None) => assert_eq!(task.points.len(), rows, "{name}"),
            (Target::Classes { names, .. }, Some(at_least)) => {
                assert!(names.len() >= at_least, "{name}: {} classes", names.len());
                // Points in no polygon (oceans at the coast, ice) are dropped, not mislabelled.
                assert!(task.points.len() > 1600 && task.points.len() < 2000, "{name}: {}", task.points.len());
            }
            (target, _) => panic!("{name}: unexpected kind {:?}", target.kind()),
        }
    }
    // Same seed, same land points: the sampled tasks share their coordinates.
    let first_line = |n: &str| std::fs::read_to_string(out.path().join(n)).unwrap().lines().nth(1).unwrap().to_owned();
    let coords = |line: String| line.splitn(3, ',').take(2).collect::<Vec<_>>().join(",");
    assert_eq!(coords(first_line("elevation.csv")), coords(first_line("population_density.csv")));
}
