//! Outputs appear whole or not at all: written to a temporary file beside the target, renamed
//! into place at the end. A failure or a kill leaves no partial file under the target name.
//! Temporaries are named `.<target>.satclip-<pid>.<random>.tmp`: SIGINT and SIGTERM remove them
//! (see [`remove_temporaries_on_signal`]), and those of a killed process are removed by the next
//! run that writes the same target.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

pub struct AtomicFile {
    target: PathBuf,
    temp: tempfile::NamedTempFile,
    _live: Registered,
}

/// Keeps a temporary's path on the signal handler's list for as long as the temporary exists.
struct Registered(PathBuf);

impl Drop for Registered {
    fn drop(&mut self) {
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| p != &self.0);
    }
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<Self> {
        let dir = writable_place(target)?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        remove_stale_temporaries(dir, &name);
        let prefix = format!(".{name}.satclip-{}.", std::process::id());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // Temporary files are private by default; the finished output is an ordinary file.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let temp = builder.tempfile_in(dir).map_err(|e| {
            Error::io(target, std::io::Error::new(e.kind(), format!("cannot create a file in {}", dir.display())))
        })?;
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(temp.path().to_path_buf());
        let live = Registered(temp.path().to_path_buf());
        Ok(Self { target: target.to_path_buf(), temp, _live: live })
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

/// Temporaries of this process not yet renamed or removed, for the signal handler.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// On SIGINT, SIGTERM or SIGHUP: removes this process's unfinished outputs, then exits with
/// 128 + the signal's usual code (130). For programs; a library embedded in another process (the
/// Python module) leaves signals to its host.
pub fn remove_temporaries_on_signal() {
    let _ = ctrlc::set_handler(|| {
        for path in LIVE.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = std::fs::remove_file(path);
        }
        std::process::exit(130);
    });
}

/// Removes `.<name>.satclip-<pid>.*.tmp` left in `dir` by processes that no longer run.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.satclip-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        let Some((pid, tail)) = rest.split_once('.') else { continue };
        let (Ok(pid), true) = (pid.parse::<u32>(), tail.ends_with(".tmp")) else { continue };
        if pid != std::process::id() && !process_is_running(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn process_is_running(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // Without /proc, keep what might belong to a live process.
        true
    }
}

/// The directory an output goes to, after checking that it exists and the output is no directory.
fn writable_place(target: &Path) -> Result<&Path> {
    if target.is_dir() {
        return Err(Error::format(target, "is a directory; give a file name for the output"));
    }
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
    Ok(dir)
}

/// Refuses, before any work, an output that is a directory, lies in a missing directory, or is
/// one of the inputs (the input would be replaced by its own results).
pub fn check_output(target: &Path, inputs: &[&Path]) -> Result<()> {
    writable_place(target)?;
    if let Ok(out) = target.canonicalize() {
        for input in inputs {
            if input.canonicalize().is_ok_and(|i| i == out) {
                return Err(Error::format(
                    target,
                    format!("is also the input {}: writing it would destroy the input", input.display()),
                ));
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `target` atomically.
pub fn write_bytes(target: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = AtomicFile::create(target)?;
    out.file().write_all(bytes).map_err(|e| Error::io(target, e))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_are_inputs_or_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("points.csv");
        std::fs::write(&input, "lon,lat\n0,0\n").unwrap();
        let same = dir.path().join(".").join("points.csv");
        assert!(check_output(&same, &[&input]).unwrap_err().to_string().contains("is also the input"));
        assert!(check_output(dir.path(), &[]).unwrap_err().to_string().contains("is a directory"));
        assert!(check_output(&dir.path().join("missing/out.csv"), &[]).is_err());
        assert!(check_output(&dir.path().join("out.csv"), &[&input]).is_ok());
        assert!(AtomicFile::create(dir.path()).is_err());
    }

    #[test]
    fn temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // PIDs on Linux stay below 2^22, so this one runs nowhere.
        let stale = dir.path().join(".out.npy.satclip-4999999.abc123.tmp");
        let other = dir.path().join(".other.npy.satclip-4999999.abc123.tmp");
        std::fs::write(&stale, b"partial").unwrap();
        std::fs::write(&other, b"partial").unwrap();
        let out = AtomicFile::create(&dir.path().join("out.npy")).unwrap();
        assert!(!stale.exists(), "stale temporary of the same target removed");
        assert!(other.exists(), "another target's temporary kept");
        let live = out.temp.path().to_path_buf();
        assert!(live.file_name().unwrap().to_str().unwrap().contains(&format!("satclip-{}", std::process::id())));
        drop(out);
        assert!(!live.exists());
    }
}
