//! The Hub's protocol for one file, as `huggingface_hub` speaks it: a HEAD on
//! `/<repo>/resolve/<revision>/<file>` answers the commit (`X-Repo-Commit`), the content's etag
//! (`X-Linked-Etag`, the SHA-256 for LFS and Xet files) and size (`X-Linked-Size`), and, for large
//! files, a redirect to the storage that serves the bytes; a GET there fetches them.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use crate::{Download, Error, HubConfig, HubFile, Progress, RepoCache, Result};

/// What the Hub says about a file at a revision.
pub(crate) struct Remote {
    pub commit: String,
    pub etag: String,
    pub size: u64,
    /// Where the bytes are served (the storage redirect, or the resolve URL itself).
    pub location: String,
}

const MAX_REDIRECTS: usize = 5;

pub(crate) fn head(agent: &ureq::Agent, config: &HubConfig, file: &HubFile) -> Result<Remote> {
    let mut url = file.url(&config.endpoint);
    for _ in 0..MAX_REDIRECTS {
        let mut request = agent.head(&url).header("Accept-Encoding", "identity");
        if let Some(token) = &config.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.call().map_err(|e| unreachable(config, file, &e.to_string()))?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        if (300..400).contains(&status) {
            let location = header("location").ok_or_else(|| protocol(&url, "a redirect without a Location header"))?;
            let target = join(&url, &location);
            // As huggingface_hub: a redirect within the Hub (a renamed repository) is asked again;
            // one to another host sends the bytes to storage, and this answer's headers describe them.
            let hub_origins = [origin(&url), origin(&config.endpoint), "https://huggingface.co", "https://hf.co"];
            if hub_origins.iter().any(|o| o.eq_ignore_ascii_case(origin(&target))) {
                url = target;
                continue;
            }
            return remote(&url, &header, target);
        }
        if status == 200 {
            return remote(&url, &header, url.clone());
        }
        return Err(status_error(&url, status, header("x-error-message")));
    }
    Err(protocol(&url, "too many redirects"))
}

fn remote(url: &str, header: &dyn Fn(&str) -> Option<String>, location: String) -> Result<Remote> {
    let commit = header("x-repo-commit")
        .filter(|c| crate::is_commit(c))
        .ok_or_else(|| protocol(url, "no X-Repo-Commit header: is HF_ENDPOINT a Hugging Face Hub?"))?;
    let etag = header("x-linked-etag")
        .or_else(|| header("etag"))
        .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
        .filter(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .ok_or_else(|| protocol(url, "no usable ETag header"))?;
    let size = header("x-linked-size")
        .or_else(|| header("content-length"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol(url, "no file size (X-Linked-Size or Content-Length)"))?;
    Ok(Remote { commit, etag, size, location })
}

/// Puts the file's bytes at `blobs/<etag>`, unless they are there: under the lock that
/// `huggingface_hub` also takes, resuming `blobs/<etag>.incomplete`, hashing everything received
/// and keeping nothing that does not match the stated SHA-256.
pub(crate) fn fetch_blob(
    agent: &ureq::Agent,
    config: &HubConfig,
    cache: &RepoCache,
    file: &HubFile,
    remote: &Remote,
    progress: &mut dyn Progress,
) -> Result<()> {
    let blob = cache.blob_path(&remote.etag);
    if blob.is_file() {
        return Ok(());
    }
    let lock_path = cache.lock_path(&remote.etag);
    for dir in [blob.parent(), lock_path.parent()].into_iter().flatten() {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            progress
                .note(&format!("waiting for another process that is fetching {file} (lock {})", lock_path.display()));
            lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        }
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
    }
    // The other process may have finished while this one waited.
    if blob.is_file() {
        return Ok(());
    }
    let partial = cache.incomplete_path(&remote.etag);
    let mut out = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial)
        .map_err(|e| Error::io(&partial, e))?;
    let io = |e| Error::io(&partial, e);
    let mut have = out.metadata().map_err(io)?.len();
    if have > remote.size {
        out.set_len(0).map_err(io)?;
        have = 0;
    }
    let mut hasher = Sha256::new();
    if have > 0 {
        // What an earlier, interrupted transfer left counts towards the hash too.
        std::io::copy(&mut (&mut out).take(have), &mut hasher).map_err(io)?;
    }
    out.seek(SeekFrom::Start(have)).map_err(io)?;
    if have < remote.size {
        transfer(agent, config, file, remote, &partial, &mut out, &mut have, &mut hasher, progress)?;
    }
    out.sync_all().map_err(io)?;
    drop(out);
    let actual = hex(&hasher.finalize());
    if is_sha256(&remote.etag) && actual != remote.etag {
        let _ = fs::remove_file(&partial);
        return Err(Error::HashMismatch { url: remote.location.clone(), expected: remote.etag.clone(), actual });
    }
    fs::rename(&partial, &blob).map_err(|e| Error::io(&blob, e))
}

#[allow(clippy::too_many_arguments)]
fn transfer(
    agent: &ureq::Agent,
    config: &HubConfig,
    file: &HubFile,
    remote: &Remote,
    partial: &std::path::Path,
    out: &mut File,
    have: &mut u64,
    hasher: &mut Sha256,
    progress: &mut dyn Progress,
) -> Result<()> {
    let io = |e| Error::io(partial, e);
    let mut url = remote.location.clone();
    let mut response = None;
    for _ in 0..MAX_REDIRECTS {
        let mut request = agent.get(&url).header("Accept-Encoding", "identity");
        // The token goes to the Hub only, never to the storage it redirects to.
        if let (Some(token), true) = (&config.token, origin(&url) == origin(&config.endpoint)) {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if *have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        let r = request.call().map_err(|e| unreachable(config, file, &e.to_string()))?;
        let status = r.status().as_u16();
        if (300..400).contains(&status) {
            let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
            url = join(&url, location);
            continue;
        }
        response = Some((r, status));
        break;
    }
    let Some((mut response, status)) = response else { return Err(protocol(&url, "too many redirects")) };
    match status {
        206 if *have > 0 => {
            let range = response.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !range.starts_with(&format!("bytes {have}-")) {
                return Err(protocol(&url, &format!("asked for bytes from {have}, got the range `{range}`")));
            }
        }
        200 => {
            // The server sent the whole file (it ignored or does not support the range).
            out.set_len(0).map_err(io)?;
            out.seek(SeekFrom::Start(0)).map_err(io)?;
            *have = 0;
            *hasher = Sha256::new();
        }
        _ => return Err(status_error(&url, status, None)),
    }
    progress.start(&Download {
        file,
        url: &url,
        size: remote.size,
        resumed_from: *have,
        destination: &partial.with_extension(""),
    });
    let mut body = response.body_mut().as_reader();
    let mut buffer = vec![0u8; 1 << 18];
    loop {
        let n = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                progress.finish();
                return Err(interrupted(config, file, *have, remote.size, &e.to_string()));
            }
        };
        if *have + n as u64 > remote.size {
            progress.finish();
            let _ = fs::remove_file(partial);
            return Err(protocol(&url, &format!("sent more than the {} bytes the Hub stated", remote.size)));
        }
        out.write_all(&buffer[..n]).map_err(io)?;
        hasher.update(&buffer[..n]);
        *have += n as u64;
        progress.advance(n as u64);
    }
    progress.finish();
    if *have != remote.size {
        return Err(interrupted(config, file, *have, remote.size, "the connection closed early"));
    }
    Ok(())
}

fn interrupted(config: &HubConfig, file: &HubFile, have: u64, size: u64, reason: &str) -> Error {
    let reason = format!("{reason}; the transfer stopped after {have} of {size} bytes and resumes when run again");
    unreachable(config, file, &reason)
}

fn unreachable(config: &HubConfig, file: &HubFile, reason: &str) -> Error {
    Error::Unreachable { endpoint: config.endpoint.clone(), reason: reason.into(), file: file.clone() }
}

fn protocol(url: &str, problem: &str) -> Error {
    Error::Protocol { url: url.into(), problem: problem.into() }
}

fn status_error(url: &str, status: u16, message: Option<String>) -> Error {
    let hint = match status {
        401 => "not authorised: the repository is private or gated, or HF_TOKEN is not valid; set HF_TOKEN to a token with access",
        403 => "forbidden: accept the repository's conditions on the Hub, or set HF_TOKEN to a token that has",
        404 => "no such repository, revision or file; check the name and the revision",
        429 => "too many requests; wait a little, or set HF_TOKEN (signed-in requests get more)",
        500..=599 => "a server error; try again later",
        _ => "unexpected",
    };
    let hint = match message {
        Some(m) => format!("{hint} ({m})"),
        None => hint.to_string(),
    };
    Error::Status { url: url.into(), status, hint }
}

/// `location` (absolute, or relative to `base`'s host) as an absolute URL.
fn join(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        format!("{}/{location}", base.rsplit_once('/').map_or(base, |(dir, _)| dir))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn is_sha256(etag: &str) -> bool {
    etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(origin("https://huggingface.co/a/b/resolve/main/x"), "https://huggingface.co");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_ne!(origin("https://cdn-lfs.hf.co/x"), origin("https://huggingface.co"));
        assert_eq!(join("http://h:1/a/resolve/main/x", "/b/resolve/main/x"), "http://h:1/b/resolve/main/x");
        assert_eq!(join("http://h:1/a/b", "https://cdn/x?sig=1"), "https://cdn/x?sig=1");
        assert_eq!(join("http://h:1/a/b", "c"), "http://h:1/a/c");
    }
}
