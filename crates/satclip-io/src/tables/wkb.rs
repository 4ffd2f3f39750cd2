//! Well-known binary points (OGC WKB, ISO and PostGIS EWKB), as GeoParquet stores geometries.

/// The x and y of a WKB (or EWKB) point, 2-D or with Z and/or M.
pub fn point(bytes: &[u8]) -> std::result::Result<[f64; 2], String> {
    let little = match bytes.first() {
        Some(1) => true,
        Some(0) => false,
        _ => return Err("not WKB (bad byte-order mark)".into()),
    };
    let word = |at: usize| -> Option<[u8; 4]> { bytes.get(at..at + 4)?.try_into().ok() };
    let double = |at: usize| -> Option<f64> {
        let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
        Some(if little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    };
    let kind = word(1).map(|w| if little { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) });
    let kind = kind.ok_or("truncated WKB")?;
    // EWKB keeps flags in the high bits (an SRID follows the type when 0x20000000 is set); ISO
    // WKB adds 1000/2000/3000 for Z/M/ZM.
    let start = if kind & 0x2000_0000 != 0 { 9 } else { 5 };
    let geometry = (kind & 0x0fff_ffff) % 1000;
    if geometry != 1 {
        let what = match geometry {
            2 => "a LineString",
            3 => "a Polygon",
            4 => "a MultiPoint",
            5 => "a MultiLineString",
            6 => "a MultiPolygon",
            7 => "a GeometryCollection",
            _ => "not a known geometry",
        };
        return Err(format!("{what}, not a Point"));
    }
    match (double(start), double(start + 8)) {
        (Some(x), Some(y)) => Ok([x, y]),
        _ => Err("truncated WKB point".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::point as wkb_point;

    fn point(little: bool, kind: u32, srid: Option<u32>, coords: &[f64]) -> Vec<u8> {
        let mut bytes = vec![u8::from(little)];
        let word = |v: u32| if little { v.to_le_bytes() } else { v.to_be_bytes() };
        bytes.extend(word(kind));
        if let Some(srid) = srid {
            bytes.extend(word(srid));
        }
        for c in coords {
            bytes.extend(if little { c.to_le_bytes() } else { c.to_be_bytes() });
        }
        bytes
    }

    #[test]
    fn wkb_points_in_every_flavour() {
        assert_eq!(wkb_point(&point(true, 1, None, &[-122.42, 37.77])), Ok([-122.42, 37.77]));
        assert_eq!(wkb_point(&point(false, 1, None, &[2.35, 48.86])), Ok([2.35, 48.86]));
        // ISO Point Z, and EWKB with an SRID and the Z flag.
        assert_eq!(wkb_point(&point(true, 1001, None, &[1.0, 2.0, 3.0])), Ok([1.0, 2.0]));
        assert_eq!(wkb_point(&point(true, 0xa000_0001, Some(4326), &[4.0, 5.0, 6.0])), Ok([4.0, 5.0]));
        assert_eq!(wkb_point(&point(true, 2, None, &[0.0, 0.0, 1.0, 1.0])).unwrap_err(), "a LineString, not a Point");
        assert_eq!(wkb_point(&point(true, 1, None, &[1.0])).unwrap_err(), "truncated WKB point");
        assert!(wkb_point(&[7, 1, 0]).unwrap_err().contains("byte-order"));
        assert!(wkb_point(&[1, 1]).unwrap_err().contains("truncated"));
    }
}
