//! JSON request bodies. Points are read straight into `[lon, lat]` pairs (no intermediate JSON
//! tree), and a bad one is reported with its index: `coordinates[3]: lat = 95 is outside …`.

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `POST /embed` with `Content-Type: application/json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    pub coordinates: Points,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub normalize: bool,
}

/// `POST /similarity`: the cosine similarity of every point of `a` to every point of `b`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarityRequest {
    pub a: Points,
    pub b: Points,
    #[serde(default)]
    pub model: Option<String>,
}

/// `[[lon, lat], …]`, each pair checked as `satclip embed` checks a file's rows.
#[derive(Debug)]
pub struct Points(pub Vec<[f64; 2]>);

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PointsVisitor;
        impl<'de> Visitor<'de> for PointsVisitor {
            type Value = Points;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of [lon, lat] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Points, A::Error> {
                // The size hint is the client's word: capped so that it cannot reserve memory.
                let mut points = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                loop {
                    let i = points.len();
                    match seq.next_element::<[f64; 2]>() {
                        Ok(Some([lon, lat])) => {
                            satclip_core::check_coordinate(lon, lat)
                                .map_err(|p| A::Error::custom(format!("coordinates[{i}]: {p}")))?;
                            points.push([lon, lat]);
                        }
                        Ok(None) => return Ok(Points(points)),
                        Err(e) => {
                            return Err(A::Error::custom(format!(
                                "coordinates[{i}]: {e} (expected [lon, lat] numbers)"
                            )))
                        }
                    }
                }
            }
        }
        deserializer.deserialize_seq(PointsVisitor)
    }
}

/// Why a body was refused: 400 when it is not JSON at all, 422 when it is JSON that does not
/// describe a valid request.
#[derive(Debug)]
pub struct BodyError {
    pub status: u16,
    pub message: String,
}

pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, BodyError> {
    // Syntax first (allocating nothing, nesting bounded by serde_json's recursion limit), so that
    // every error of the typed pass is about the request, not the JSON.
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map_err(|e| BodyError { status: 400, message: format!("not valid JSON: {e}") })?;
    serde_json::from_slice(body).map_err(|e| BodyError { status: 422, message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_points_are_named_by_index() {
        let ok: EmbedRequest = parse(br#"{"coordinates": [[1, 2], [3.5, -4]], "normalize": true}"#).unwrap();
        assert_eq!(ok.coordinates.0, vec![[1.0, 2.0], [3.5, -4.0]]);
        assert!(ok.normalize && ok.model.is_none());
        for (body, status, needle) in [
            (
                &br#"{"coordinates": [[1, 2], [3, 95]]}"#[..],
                422,
                "coordinates[1]: lat = 95 is outside [-90, 90] degrees",
            ),
            (br#"{"coordinates": [[1, 2], [3, 4], ["a", 4]]}"#, 422, "coordinates[2]: invalid type: string"),
            (br#"{"coordinates": [[1, 2, 3]]}"#, 422, "coordinates[0]"),
            (br#"{"coordinates": [[1]]}"#, 422, "coordinates[0]"),
            (br#"{"coordinates": [[1e999, 2]]}"#, 422, "coordinates[0]: number out of range"),
            (br#"{"coordinates": [[1, 2]], "modle": "x"}"#, 422, "unknown field `modle`"),
            (br#"{"coordinates": 5}"#, 422, "a list of [lon, lat] pairs"),
            (br#"{"coordinates": [[1, 2]"#, 400, "EOF"),
        ] {
            let err = parse::<EmbedRequest>(body).unwrap_err();
            assert_eq!(err.status, status, "{}", err.message);
            assert!(err.message.contains(needle), "{needle} not in {}", err.message);
        }
        let deep = format!("{{\"coordinates\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        // Refused at the first nested list, without recursing into it.
        assert_eq!(parse::<EmbedRequest>(deep.as_bytes()).unwrap_err().status, 422);
        let deep_unknown = format!("{{\"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(parse::<EmbedRequest>(deep_unknown.as_bytes()).unwrap_err().status, 400 | 422));
    }
}
