#![no_main]
//! JSON bodies of `satclip serve` (/embed and /similarity). The parser is compiled from the
//! service's own source file, without the HTTP stack around it.

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/satclip-serve/src/request.rs"]
mod request;

fn in_range(points: &request::Points) -> bool {
    points.0.iter().all(|p| p[0].abs() <= 180.0 && p[1].abs() <= 90.0)
}

fuzz_target!(|data: &[u8]| {
    match request::parse::<request::EmbedRequest>(data) {
        Ok(r) => {
            // A request that does not ask to normalise does not normalise (a key may be spelled
            // with escapes, so any backslash counts as asking).
            let asked = data.contains(&b'\\') || data.windows(9).any(|w| w == b"normalize");
            assert!(in_range(&r.coordinates) && r.model.as_deref().is_none_or(|m| m.len() <= data.len()));
            assert!(asked || !r.normalize);
        }
        Err(e) => assert!(matches!(e.status, 400 | 422) && !e.message.is_empty()),
    }
    if let Ok(r) = request::parse::<request::SimilarityRequest>(data) {
        assert!(in_range(&r.a) && in_range(&r.b) && r.model.is_none_or(|m| m.len() <= data.len()));
    }
});
