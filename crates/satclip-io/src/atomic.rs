//! Outputs appear whole or not at all: written to a temporary file beside the target, renamed
//! into place at the end. A failure or a kill leaves no partial file under the target name.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub struct AtomicFile {
    target: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(Error::io(
                target,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("output directory {} does not exist", dir.display()),
                ),
            ));
        }
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // Temporary files are private by default; the finished output is an ordinary file.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let temp = builder.tempfile_in(dir).map_err(|e| {
            Error::io(target, std::io::Error::new(e.kind(), format!("cannot create a file in {}", dir.display())))
        })?;
        Ok(Self { target: target.to_path_buf(), temp })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// A buffered writer over the temporary file (call before `commit`, drop it first).
    pub fn writer(&mut self) -> Result<BufWriter<File>> {
        let clone = self.temp.as_file().try_clone().map_err(|e| Error::io(&self.target, e))?;
        Ok(BufWriter::with_capacity(1 << 20, clone))
    }

    /// Flushes to disk and renames into place.
    pub fn commit(self) -> Result<()> {
        self.temp.as_file().sync_all().map_err(|e| Error::io(&self.target, e))?;
        self.temp.persist(&self.target).map_err(|e| Error::io(&self.target, e.error))?;
        Ok(())
    }
}

/// Writes `bytes` to `target` atomically.
pub fn write_bytes(target: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = AtomicFile::create(target)?;
    out.file().write_all(bytes).map_err(|e| Error::io(target, e))?;
    out.commit()
}
