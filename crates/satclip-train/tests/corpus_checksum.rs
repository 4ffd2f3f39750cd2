//! The built-in model's corpus stays reproducible: the published recipe (`corpus bluemarble
//! --seed 0`, 32-pixel patches of 8 km) still builds, byte for byte, the corpus recorded when the
//! model was trained. Points are drawn in order, so a 2 000-patch corpus is the first 2 000
//! patches (and index rows) of the published 100 000.

use sha2::{Digest, Sha256};

/// SHA-256 over (relative path, SHA-256 of the file) of every file of the corpus, in path order,
/// as recorded with the binary of commit 7c3b193 (which builds the corpus of commit 1a1b2a1,
/// checked byte for byte).
const CORPUS_2000_SHA256: &str = "5394a597f0141ea4cdcef871d6e6961f37053320dcd31387ca64b8d2ce46c91e";

#[test]
fn the_published_corpus_recipe_builds_the_same_bytes() {
    let (Some(_), Some(mask)) = (
        satclip_testkit::data_file(satclip_train::bluemarble::MOSAIC_FILE),
        satclip_testkit::data_file(satclip_io::landmask::LAND_MASK_FILE),
    ) else {
        return;
    };
    let data = mask.parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = satclip_train::bluemarble::CorpusSpec { samples: 2000, ..Default::default() };
    assert_eq!((spec.seed, spec.patch, spec.pixel_km), (0, 32, 8.0), "the published recipe");
    let written = satclip_train::bluemarble::build(data, dir.path(), &spec, &|_| {}).unwrap();
    assert_eq!(written, 2000);
    // The corpus is index.csv, its metadata and images/*.tif.
    let mut files: Vec<std::path::PathBuf> = [dir.path().to_path_buf(), dir.path().join("images")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut digest = Sha256::new();
    for file in &files {
        let relative = file.strip_prefix(dir.path()).unwrap().to_string_lossy().replace('\\', "/");
        digest.update(relative.as_bytes());
        digest.update(Sha256::digest(std::fs::read(file).unwrap()));
    }
    let got: String = digest.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, CORPUS_2000_SHA256, "the corpus of the built-in model's recipe changed ({} files)", files.len());
}
