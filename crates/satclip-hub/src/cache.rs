//! `huggingface_hub`'s cache layout for one repository:
//!
//! ```text
//! <cache>/models--org--name/blobs/<etag>                  the file's bytes, named by its etag
//!                           refs/<revision>               the commit a branch or tag pointed at
//!                           snapshots/<commit>/<file>     a relative link to ../../blobs/<etag>
//! <cache>/.locks/models--org--name/<etag>.lock            held while one process downloads
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One repository's folder in the cache.
pub struct RepoCache {
    root: PathBuf,
    locks: PathBuf,
}

impl RepoCache {
    pub fn new(cache: &Path, repo: &str) -> Self {
        let folder = format!("models--{}", repo.replace('/', "--"));
        Self { root: cache.join(&folder), locks: cache.join(".locks").join(folder) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The commit `revision` names in the cache: itself when it is a commit hash, else what
    /// `refs/<revision>` recorded.
    pub fn commit(&self, revision: &str) -> Option<String> {
        if crate::is_commit(revision) {
            return Some(revision.to_string());
        }
        let commit = fs::read_to_string(self.root.join("refs").join(revision)).ok()?;
        let commit = commit.trim();
        crate::is_commit(commit).then(|| commit.to_string())
    }

    /// The cached file at `revision`, if the cache has it.
    pub fn lookup(&self, revision: &str, filename: &str) -> Option<PathBuf> {
        let path = self.snapshot_path(&self.commit(revision)?, filename);
        // `is_file` follows the link: a snapshot whose blob was deleted is not a hit.
        path.is_file().then_some(path)
    }

    pub fn snapshot_path(&self, commit: &str, filename: &str) -> PathBuf {
        self.root.join("snapshots").join(commit).join(filename)
    }

    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    /// Where a download in progress grows; a later attempt resumes it.
    pub fn incomplete_path(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{etag}.incomplete"))
    }

    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.locks.join(format!("{etag}.lock"))
    }

    /// Points `snapshots/<commit>/<filename>` at the blob, with a relative link as
    /// `huggingface_hub` makes it (a copy where links are not available).
    pub fn link_snapshot(&self, commit: &str, filename: &str, etag: &str) -> io::Result<()> {
        let link = self.snapshot_path(commit, filename);
        let parent = link.parent().expect("a snapshot path has a parent");
        fs::create_dir_all(parent)?;
        let depth = filename.split('/').count() + 1;
        let target: PathBuf = std::iter::repeat_n("..", depth).collect::<PathBuf>().join("blobs").join(etag);
        if fs::symlink_metadata(&link).is_ok() {
            if link.is_file() {
                return Ok(());
            }
            fs::remove_file(&link)?;
        }
        // Made beside the link and renamed over it, so a concurrent reader never sees half of it.
        let staging = parent.join(staging_name(etag));
        let _ = fs::remove_file(&staging);
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &staging)?;
        #[cfg(not(unix))]
        fs::copy(parent.join(&target), &staging).map(drop)?;
        fs::rename(&staging, &link)
    }

    /// Records that `revision` pointed at `commit` (written whole, then renamed into place).
    pub fn write_ref(&self, revision: &str, commit: &str) -> io::Result<()> {
        let path = self.root.join("refs").join(revision);
        fs::create_dir_all(path.parent().expect("a ref path has a parent"))?;
        if fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
            return Ok(());
        }
        let staging = path.with_file_name(staging_name(&path.file_name().unwrap().to_string_lossy()));
        fs::write(&staging, commit)?;
        fs::rename(&staging, &path)
    }
}

/// A name no other process or thread is using at the same time.
fn staging_name(base: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".{base}.{}.{n}.tmp", std::process::id())
}
