//! Model files from the Hugging Face Hub, cached where Python's `huggingface_hub` keeps them.
//!
//! A file is named by repository, revision and path ([`HubFile`]). [`Hub::fetch`] returns its
//! path in the cache (`models--org--name/{blobs,refs,snapshots}` under `HF_HUB_CACHE`), so a file
//! fetched from Python is reused here and the other way round. A download says what it fetches,
//! from where, how big it is and where it goes; it resumes a partial file, is checked against the
//! SHA-256 the Hub states for it, leaves nothing in the cache when that check fails, and is safe
//! when two processes fetch the same file (they share `huggingface_hub`'s lock files).
//!
//! Why not the `hf-hub` crate: its 1.x line is async (tokio, reqwest, the Xet client) and neither
//! it nor Python's client hashes a plain HTTP download; its 0.4 line does not read
//! `HF_HUB_OFFLINE`. What we need is one blocking GET with a range header, so this is a small
//! client on `ureq`.

mod cache;
mod download;
mod progress;

use std::path::{Path, PathBuf};

pub use cache::RepoCache;
pub use progress::{ConsoleProgress, Download, Progress, Silent};

/// A file in a model repository on the Hub, at a revision (branch, tag or commit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubFile {
    pub repo: String,
    pub revision: String,
    pub filename: String,
}

impl HubFile {
    /// Checks the names: a repository id `org/name`, a relative file path without `..`, and a
    /// revision without `..`; anything else could escape the cache directory.
    pub fn new(repo: &str, revision: &str, filename: &str) -> Result<Self> {
        let invalid = |what: &str, value: &str, why: &str| Error::InvalidName {
            what: format!("{what} `{value}`"),
            why: why.into(),
        };
        let mut parts = repo.split('/');
        let (Some(org), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("repository", repo, "must be `organisation/name`"));
        };
        let word_ok = |w: &str| {
            !w.is_empty()
                && w.len() <= 96
                && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !w.starts_with(['-', '.'])
                && !w.contains("--")
                && !w.contains("..")
        };
        if !word_ok(org) || !word_ok(name) {
            return Err(invalid("repository", repo, "uses characters the Hub does not allow in names"));
        }
        if revision.is_empty() || revision.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(invalid("revision", revision, "must be a branch, tag or commit"));
        }
        if filename.is_empty()
            || filename.contains('\\')
            || filename.split('/').any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(invalid("file", filename, "must be a relative path inside the repository"));
        }
        Ok(Self { repo: repo.into(), revision: revision.into(), filename: filename.into() })
    }

    /// `https://huggingface.co/org/name/resolve/<revision>/<file>`, for `endpoint`.
    pub fn url(&self, endpoint: &str) -> String {
        let file: Vec<String> = self.filename.split('/').map(percent_encode).collect();
        format!(
            "{}/{}/resolve/{}/{}",
            endpoint.trim_end_matches('/'),
            self.repo,
            percent_encode(&self.revision),
            file.join("/")
        )
    }

    /// Whether the revision is a full commit hash (then the cache answers without asking the Hub).
    pub fn is_pinned(&self) -> bool {
        is_commit(&self.revision)
    }
}

impl std::fmt::Display for HubFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}/{}", self.repo, self.revision, self.filename)
    }
}

pub(crate) fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Percent-encodes all but RFC 3986's unreserved characters, as `urllib.parse.quote(s, safe="")`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where the Hub is and how to talk to it, read from the variables `huggingface_hub` reads.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// `HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: String,
    /// `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`; `HF_HOME` defaults to
    /// `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
    pub cache: PathBuf,
    /// `HF_TOKEN`, else the file `HF_TOKEN_PATH` (default `$HF_HOME/token`) that `hf auth login`
    /// writes.
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE` set to 1, ON, YES or TRUE.
    pub offline: bool,
}

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

impl HubConfig {
    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From `var`, which answers a variable's value by name (tests pass their own).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let hf_home = set("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache_home = set("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(set("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
            cache_home.join("huggingface")
        });
        let cache = set("HF_HUB_CACHE")
            .or_else(|| set("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = set("HF_TOKEN").or_else(|| {
            let path = set("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|| hf_home.join("token"));
            std::fs::read_to_string(path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        });
        let offline = set("HF_HUB_OFFLINE")
            .is_some_and(|v| ["1", "ON", "YES", "TRUE"].contains(&v.to_ascii_uppercase().as_str()));
        let endpoint = set("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()).trim_end_matches('/').to_string();
        Self { endpoint, cache, token, offline }
    }
}

/// A client of one Hub endpoint with one cache.
pub struct Hub {
    config: HubConfig,
    agent: ureq::Agent,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(30)))
            .timeout_recv_response(Some(std::time::Duration::from_secs(60)))
            .user_agent(concat!("satclip/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self { config, agent }
    }

    /// The client the environment describes.
    pub fn from_env() -> Self {
        Self::new(HubConfig::from_env())
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The cached copy of `file` at its revision, without asking the Hub.
    pub fn cached(&self, file: &HubFile) -> Option<PathBuf> {
        RepoCache::new(&self.config.cache, &file.repo).lookup(&file.revision, &file.filename)
    }

    /// The local path of `file`: from the cache when the revision is a commit already there or
    /// when offline; otherwise the Hub is asked which commit the revision names and the file is
    /// downloaded unless the cache holds it. When the Hub cannot be reached, a cached copy is used
    /// (with a note to `progress`).
    pub fn fetch(&self, file: &HubFile, progress: &mut dyn Progress) -> Result<PathBuf> {
        let cache = RepoCache::new(&self.config.cache, &file.repo);
        if let Some(path) = cache.lookup(&file.revision, &file.filename) {
            if self.config.offline || file.is_pinned() {
                return Ok(path);
            }
        }
        if self.config.offline {
            return Err(Error::OfflineNotCached { file: file.clone(), cache: self.config.cache.clone() });
        }
        let remote = match download::head(&self.agent, &self.config, file) {
            Ok(remote) => remote,
            Err(Error::Unreachable { endpoint, reason, .. }) => {
                if let Some(path) = cache.lookup(&file.revision, &file.filename) {
                    progress
                        .note(&format!("could not reach {endpoint} ({reason}); using the cached {}", path.display()));
                    return Ok(path);
                }
                return Err(Error::Unreachable { endpoint, reason, file: file.clone() });
            }
            Err(e) => return Err(e),
        };
        download::fetch_blob(&self.agent, &self.config, &cache, file, &remote, progress)?;
        cache.link_snapshot(&remote.commit, &file.filename, &remote.etag).map_err(|e| Error::io(cache.root(), e))?;
        if file.revision != remote.commit {
            cache.write_ref(&file.revision, &remote.commit).map_err(|e| Error::io(cache.root(), e))?;
        }
        Ok(cache.snapshot_path(&remote.commit, &file.filename))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {why}")]
    InvalidName { what: String, why: String },
    #[error(
        "{file} is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set: fetch it once online \
         (`satclip download {}`), copy the cache from a machine that has it, or unset HF_HUB_OFFLINE",
        cache.display(), file.repo
    )]
    OfflineNotCached { file: HubFile, cache: PathBuf },
    #[error(
        "could not reach {endpoint} to fetch {file}: {reason}. Check the connection (or HTTPS_PROXY); \
         to work without one, fetch the file once online and set HF_HUB_OFFLINE=1"
    )]
    Unreachable { endpoint: String, reason: String, file: HubFile },
    #[error("{url}: the Hub answered {status}: {hint}")]
    Status { url: String, status: u16, hint: String },
    #[error("{url}: {problem}")]
    Protocol { url: String, problem: String },
    #[error(
        "{url}: the downloaded file's SHA-256 is {actual}, but the Hub states {expected}; nothing was \
         kept in the cache. Try again; if it persists, the file or a proxy in between is corrupting it"
    )]
    HashMismatch { url: String, expected: String, actual: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn names_that_could_leave_the_cache_are_refused() {
        assert!(HubFile::new("microsoft/SatCLIP-ViT16-L40", "main", "satclip-vit16-l40.ckpt").is_ok());
        assert!(HubFile::new("microsoft/SatCLIP-ViT16-L40", "refs/pr/1", "sub/dir/x.ckpt").is_ok());
        for (repo, rev, file) in [
            ("microsoft", "main", "a"),
            ("a/b/c", "main", "a"),
            ("../x", "main", "a"),
            ("a/b", "..", "a"),
            ("a/b", "main", "../a"),
            ("a/b", "main", "/etc/passwd"),
            ("a/b", "main", "a\\..\\b"),
            ("a--b/c", "main", "a"),
            ("a/b", "", "a"),
        ] {
            assert!(HubFile::new(repo, rev, file).is_err(), "{repo} {rev} {file}");
        }
    }

    #[test]
    fn urls_encode_the_revision_and_file_as_huggingface_hub_does() {
        let file = HubFile::new("org/name", "refs/pr/1", "dir/a b.ckpt").unwrap();
        assert_eq!(
            file.url("https://hub.example/"),
            "https://hub.example/org/name/resolve/refs%2Fpr%2F1/dir/a%20b.ckpt"
        );
    }

    #[test]
    fn configuration_follows_huggingface_hub_variables() {
        let vars = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            HubConfig::from_vars(move |k| map.get(k).cloned())
        };
        let c = vars(&[("HOME", "/home/u")]);
        assert_eq!(c.cache, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert!(!c.offline);
        let c = vars(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(c.cache, PathBuf::from("/x/huggingface/hub"));
        let c = vars(&[("HF_HOME", "/hf"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(c.cache, PathBuf::from("/hf/hub"));
        let c = vars(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c"), ("HF_ENDPOINT", "http://h:1/"), ("HF_TOKEN", "t")]);
        assert_eq!(
            (c.cache.as_path(), c.endpoint.as_str(), c.token.as_deref()),
            (Path::new("/c"), "http://h:1", Some("t"))
        );
        for (value, offline) in [("1", true), ("yes", true), ("True", true), ("ON", true), ("0", false), ("", false)] {
            assert_eq!(vars(&[("HF_HUB_OFFLINE", value)]).offline, offline, "{value}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_abc\n").unwrap();
        let home = dir.path().to_str().unwrap();
        assert_eq!(vars(&[("HF_HOME", home)]).token.as_deref(), Some("hf_abc"));
    }
}
