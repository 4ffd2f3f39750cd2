//! Regions from (multi)polygons: which region contains a point. Natural Earth admin-0 countries
//! (a zipped shapefile with NAME and CONTINENT) label the country task and, by continent, the
//! continent holdout; RESOLVE Ecoregions 2017 (a GeoJSON with ECO_NAME, BIOME_NAME and REALM)
//! label the biome and ecoregion tasks and can hold out biogeographic realms instead.

use std::io::Read;
use std::path::Path;

use satclip_io::error::{Error, Result};

pub struct Regions {
    /// Per feature: its properties as text (e.g. ECO_NAME, BIOME_NAME, REALM).
    pub properties: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Per feature: the rings of all its polygons, exteriors and holes alike.
    shapes: Vec<Shape>,
}

/// A feature's area under the even–odd rule: a point is inside when an odd number of its rings
/// contain it. For valid polygons (holes inside their exterior, parts disjoint) that is the
/// union of the parts minus their holes, the meaning of both GeoJSON and shapefile polygons.
/// Each ring keeps its bounding box: a point outside a ring's box is outside the ring, so only
/// the few rings near a point are walked (a country's hundreds of islands are not).
struct Shape {
    bbox: [f64; 4],
    rings: Vec<(Vec<[f64; 2]>, [f64; 4])>,
}

impl Shape {
    fn new(rings: Vec<Vec<[f64; 2]>>) -> Self {
        let rings: Vec<_> = rings
            .into_iter()
            .map(|r| {
                let b = bounding_box(&r);
                (r, b)
            })
            .collect();
        let corners: Vec<[f64; 2]> = rings.iter().flat_map(|(_, b)| [[b[0], b[1]], [b[2], b[3]]]).collect();
        Self { bbox: bounding_box(&corners), rings }
    }

    fn contains(&self, lon: f64, lat: f64) -> bool {
        let in_box = |b: &[f64; 4]| lon >= b[0] && lon <= b[2] && lat >= b[1] && lat <= b[3];
        in_box(&self.bbox)
            && self.rings.iter().filter(|(ring, b)| in_box(b) && ring_contains(ring, lon, lat)).count() % 2 == 1
    }
}

/// Ray casting towards +lon: an odd number of edge crossings means inside.
fn ring_contains(ring: &[[f64; 2]], lon: f64, lat: f64) -> bool {
    let mut inside = false;
    for k in 0..ring.len() {
        let (a, c) = (ring[k], ring[(k + 1) % ring.len()]);
        if (a[1] > lat) != (c[1] > lat) && lon < a[0] + (lat - a[1]) / (c[1] - a[1]) * (c[0] - a[0]) {
            inside = !inside;
        }
    }
    inside
}

/// [min lon, min lat, max lon, max lat] of the points.
fn bounding_box<'a>(points: impl IntoIterator<Item = &'a [f64; 2]>) -> [f64; 4] {
    points.into_iter().fold([f64::MAX, f64::MAX, f64::MIN, f64::MIN], |b, p| {
        [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])]
    })
}

/// A dBase text field without its padding: spaces by the standard, NULs in some writers
/// (Natural Earth's CONTINENT).
fn trim_field(text: &str) -> &str {
    text.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

fn ring(value: &serde_json::Value) -> Option<Vec<[f64; 2]>> {
    value.as_array()?.iter().map(|p| Some([p.get(0)?.as_f64()?, p.get(1)?.as_f64()?])).collect()
}

impl Regions {
    /// Reads a zipped shapefile (`.zip`) or else a GeoJSON (gzip-compressed when `.gz`).
    pub fn open(path: &Path) -> Result<Self> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
            Self::read_shapefile_zip(path)
        } else {
            Self::read(path)
        }
    }

    /// Whether any feature has the text property `key`.
    pub fn has_property(&self, key: &str) -> bool {
        self.properties.iter().any(|p| p.get(key).is_some_and(|v| v.is_string()))
    }

    /// The names of the features' properties, sorted, for error messages.
    pub fn property_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.properties.iter().flat_map(|p| p.keys().cloned()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Reads a GeoJSON FeatureCollection, gzip-compressed when the name ends in `.gz`.
    pub fn read(path: &Path) -> Result<Self> {
        let file = satclip_io::open_regular(path)?;
        let mut text = Vec::new();
        if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::GzDecoder::new(file).take(1 << 30).read_to_end(&mut text).map_err(|e| Error::io(path, e))?;
        } else {
            std::io::BufReader::new(file).take(1 << 30).read_to_end(&mut text).map_err(|e| Error::io(path, e))?;
        }
        let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|e| Error::format(path, e.to_string()))?;
        let features = doc
            .get("features")
            .and_then(|f| f.as_array())
            .ok_or_else(|| Error::format(path, "not a FeatureCollection"))?;
        let (mut properties, mut shapes) = (Vec::new(), Vec::new());
        for (i, feature) in features.iter().enumerate() {
            let bad = || Error::format(path, format!("feature {i}: malformed geometry"));
            let geometry = feature.get("geometry").ok_or_else(bad)?;
            let coords = geometry.get("coordinates").ok_or_else(bad)?;
            let polys: Vec<&serde_json::Value> = match geometry.get("type").and_then(|t| t.as_str()) {
                Some("Polygon") => vec![coords],
                Some("MultiPolygon") => coords.as_array().ok_or_else(bad)?.iter().collect(),
                _ => continue,
            };
            let mut rings = Vec::new();
            for poly in polys {
                let poly = poly.as_array().ok_or_else(bad)?;
                rings.extend(poly.iter().map(ring).collect::<Option<Vec<_>>>().ok_or_else(bad)?);
            }
            properties.push(feature.get("properties").and_then(|p| p.as_object()).cloned().unwrap_or_default());
            shapes.push(Shape::new(rings));
        }
        Ok(Self { properties, shapes })
    }

    /// Reads the polygons of a zipped ESRI shapefile (`.shp` + `.dbf`, e.g. Natural Earth admin-0
    /// countries); each record's text fields become its properties.
    pub fn read_shapefile_zip(path: &Path) -> Result<Self> {
        let file = satclip_io::open_regular(path)?;
        let mut zip =
            zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| Error::format(path, e.to_string()))?;
        let mut member = |ext: &str| -> Result<std::io::Cursor<Vec<u8>>> {
            let name = zip
                .file_names()
                .filter_map(|n| n.ok().map(|n| n.into_owned()))
                .find(|n| n.to_ascii_lowercase().ends_with(ext))
                .ok_or_else(|| Error::format(path, format!("the zip holds no `{ext}` file")))?;
            let mut bytes = Vec::new();
            let entry = zip.by_name(&name).map_err(|e| Error::format(path, e.to_string()))?;
            entry.take(1 << 30).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
            Ok(std::io::Cursor::new(bytes))
        };
        let (shp, dbf) = (member(".shp")?, member(".dbf")?);
        let bad = |e: &dyn std::fmt::Display| Error::format(path, e.to_string());
        let shapes = shapefile::ShapeReader::new(shp).map_err(|e| bad(&e))?;
        let records = shapefile::dbase::Reader::new(dbf).map_err(|e| bad(&e))?;
        let mut reader = shapefile::Reader::new(shapes, records);
        let (mut properties, mut shapes) = (Vec::new(), Vec::new());
        for (i, item) in reader.iter_shapes_and_records().enumerate() {
            let (shape, record) = item.map_err(|e| Error::format(path, format!("record {}: {e}", i + 1)))?;
            let shapefile::Shape::Polygon(polygon) = shape else { continue };
            let rings: Vec<Vec<[f64; 2]>> =
                polygon.rings().iter().map(|r| r.points().iter().map(|p| [p.x, p.y]).collect()).collect();
            let mut props = serde_json::Map::new();
            for (name, value) in record {
                if let shapefile::dbase::FieldValue::Character(Some(text)) = value {
                    props.insert(name, serde_json::Value::String(trim_field(&text).to_owned()));
                }
            }
            properties.push(props);
            shapes.push(Shape::new(rings));
        }
        Ok(Self { properties, shapes })
    }

    /// The first feature containing (lon, lat).
    pub fn locate(&self, lon: f64, lat: f64) -> Option<usize> {
        self.shapes.iter().position(|shape| shape.contains(lon, lat))
    }

    /// A text property of the feature containing the point, e.g. `REALM`.
    pub fn property_at(&self, lon: f64, lat: f64, key: &str) -> Option<String> {
        let i = self.locate(lon, lat)?;
        self.properties[i].get(key).and_then(|v| v.as_str()).map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_in_polygon_with_a_hole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.geojson");
        std::fs::write(
            &path,
            r#"{"type":"FeatureCollection","features":[
              {"type":"Feature","properties":{"REALM":"A"},"geometry":{"type":"Polygon","coordinates":[
                [[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]]]}},
              {"type":"Feature","properties":{"REALM":"B"},"geometry":{"type":"MultiPolygon","coordinates":[
                [[[20,0],[30,0],[30,10],[20,0]]]]}}]}"#,
        )
        .unwrap();
        let r = Regions::read(&path).unwrap();
        assert_eq!(r.property_at(1.0, 1.0, "REALM").as_deref(), Some("A"));
        assert_eq!(r.property_at(5.0, 5.0, "REALM"), None, "inside the hole");
        assert_eq!(r.property_at(29.0, 5.0, "REALM").as_deref(), Some("B"));
        assert_eq!(r.property_at(21.0, 9.0, "REALM"), None, "outside the triangle");
    }
}
