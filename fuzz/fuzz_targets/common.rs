//! The parsers under test read files by path, as users give them: each input is written to a
//! per-process scratch file with the extension the parser dispatches on.

use std::path::PathBuf;

pub fn scratch(data: &[u8], extension: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("satclip-fuzz-{}.{extension}", std::process::id()));
    std::fs::write(&path, data).expect("scratch file");
    path
}
