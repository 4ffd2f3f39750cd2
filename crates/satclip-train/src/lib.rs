//! SatCLIP pretraining: a real open corpus (Blue Marble), image features computed once and
//! cached, and the training loop with atomic checkpoints and exact resume.

pub mod bluemarble;
pub mod cache;
pub mod trainer;

use std::path::Path;

use satclip_io::s2dataset::{S2Dataset, MIN_FILE_BYTES};

/// Opens a corpus directory: our own corpora (marked by `satclip-corpus.json`) keep every file,
/// S2-100K keeps the official rule that files under 10 kB are skipped.
pub fn open_corpus(dir: &Path) -> satclip_io::Result<S2Dataset> {
    let min = if dir.join(bluemarble::CORPUS_FILE).exists() { 0 } else { MIN_FILE_BYTES };
    S2Dataset::open_with_min_bytes(dir, min)
}
