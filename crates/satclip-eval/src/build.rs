//! Building task files from the real data the project can read: station climatology (Hooker et
//! al. 2018) and US county median income, from the shared data folder.

use std::path::Path;

use satclip_io::error::{Error, Result};

/// Writes `air_temperature.csv`, `precipitation.csv` and `median_income.csv` (columns lon, lat,
/// target) into `out`, from `data` (the shared `data/` folder). Returns the files written.
pub fn build_tasks(data: &Path, out: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut written = Vec::new();

    let stations = data.join("air-temperature/stationDataAll.csv");
    let mut reader = csv::Reader::from_path(&stations).map_err(|e| Error::format(&stations, e.to_string()))?;
    let headers = reader.headers().map_err(|e| Error::format(&stations, e.to_string()))?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| Error::format(&stations, format!("no `{name}` column")))
    };
    let (lon, lat, t, p) = (col("Lon")?, col("Lat")?, col("meanT")?, col("meanP")?);
    let (mut temperature, mut precipitation) = (String::from("lon,lat,target\n"), String::from("lon,lat,target\n"));
    for record in reader.records() {
        let r = record.map_err(|e| Error::format(&stations, e.to_string()))?;
        let (x, y) = (&r[lon], &r[lat]);
        temperature.push_str(&format!("{x},{y},{}\n", &r[t]));
        precipitation.push_str(&format!("{x},{y},{}\n", &r[p]));
    }
    for (name, body) in [("air_temperature.csv", temperature), ("precipitation.csv", precipitation)] {
        satclip_io::atomic::write_bytes(&out.join(name), body.as_bytes())?;
        written.push(name.to_string());
    }

    // Median household income 2018 per county, joined to county centroids by FIPS code.
    let centroids = data.join("us-counties/county-centroids.csv");
    let mut places = std::collections::HashMap::new();
    let mut reader = csv::Reader::from_path(&centroids).map_err(|e| Error::format(&centroids, e.to_string()))?;
    for record in reader.records() {
        let r = record.map_err(|e| Error::format(&centroids, e.to_string()))?;
        if let Ok(fips) = r[0].parse::<u32>() {
            places.insert(fips, (r[1].to_string(), r[2].to_string()));
        }
    }
    let income = data.join("us-counties/income.csv");
    let mut reader = csv::Reader::from_path(&income).map_err(|e| Error::format(&income, e.to_string()))?;
    let mut body = String::from("lon,lat,target\n");
    for record in reader.records() {
        let r = record.map_err(|e| Error::format(&income, e.to_string()))?;
        let (Ok(fips), Ok(value)) = (r[0].parse::<u32>(), r[r.len() - 1].replace(',', "").parse::<f64>()) else {
            continue;
        };
        if let Some((x, y)) = places.get(&fips) {
            body.push_str(&format!("{x},{y},{value}\n"));
        }
    }
    satclip_io::atomic::write_bytes(&out.join("median_income.csv"), body.as_bytes())?;
    written.push("median_income.csv".into());
    Ok(written)
}
