//! A stand-in for the Hugging Face Hub on 127.0.0.1, for tests without the internet. It answers
//! as the Hub does for a file: the resolve URL gives the commit, the SHA-256 and the size in its
//! headers and redirects to `/lfs/<sha256>` on another origin (a second port, as the Hub sends
//! clients to its storage hosts), which serves the bytes with range requests. Faults can be injected: a transfer cut after some bytes,
//! corrupted bytes, a slow transfer.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A file the stand-in serves.
pub struct HubEntry {
    pub repo: String,
    pub commit: String,
    pub filename: String,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

impl HubEntry {
    pub fn new(repo: &str, commit: &str, filename: &str, bytes: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        Self { repo: repo.into(), commit: commit.into(), filename: filename.into(), bytes, sha256 }
    }
}

#[derive(Default)]
struct Faults {
    /// The next transfer ends after this many bytes.
    cut_after: Mutex<Option<u64>>,
    /// Every transfer flips the last byte.
    corrupt: AtomicBool,
    /// Pause per 64 KiB sent, in milliseconds.
    delay_ms: AtomicU64,
}

struct State {
    entries: Vec<HubEntry>,
    endpoint: String,
    storage: String,
    faults: Faults,
    transfers: AtomicUsize,
    heads: AtomicUsize,
    ranges: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// Serves until dropped.
pub struct HubStandIn {
    state: Arc<State>,
    accept: Vec<JoinHandle<()>>,
}

impl HubStandIn {
    pub fn start(entries: Vec<HubEntry>) -> Self {
        let bind = || TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let (hub, storage) = (bind(), bind());
        let url = |l: &TcpListener| format!("http://{}", l.local_addr().unwrap());
        let state = Arc::new(State {
            entries,
            endpoint: url(&hub),
            storage: url(&storage),
            faults: Faults::default(),
            transfers: AtomicUsize::new(0),
            heads: AtomicUsize::new(0),
            ranges: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept = [hub, storage]
            .into_iter()
            .map(|listener| {
                let shared = Arc::clone(&state);
                std::thread::spawn(move || {
                    for stream in listener.incoming() {
                        if shared.stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let state = Arc::clone(&shared);
                        std::thread::spawn(move || {
                            let _ = serve(&state, stream);
                        });
                    }
                })
            })
            .collect();
        Self { state, accept }
    }

    /// The origin that serves file contents (`/lfs/<sha256>`).
    pub fn storage(&self) -> &str {
        &self.state.storage
    }

    /// `http://127.0.0.1:<port>`, for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.state.endpoint
    }

    /// The next transfer closes the connection after `bytes`.
    pub fn cut_next_transfer_after(&self, bytes: u64) {
        *self.state.faults.cut_after.lock().unwrap() = Some(bytes);
    }

    pub fn corrupt_transfers(&self, on: bool) {
        self.state.faults.corrupt.store(on, Ordering::SeqCst);
    }

    /// Slows transfers down: `ms` per 64 KiB.
    pub fn throttle(&self, ms: u64) {
        self.state.faults.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// How many GETs of file contents were answered.
    pub fn transfers(&self) -> usize {
        self.state.transfers.load(Ordering::SeqCst)
    }

    /// How many requests on resolve URLs (HEAD or GET) were answered.
    pub fn resolves(&self) -> usize {
        self.state.heads.load(Ordering::SeqCst)
    }

    /// The `Range` headers of the transfers, in order (empty for a whole-file request).
    pub fn ranges(&self) -> Vec<String> {
        self.state.ranges.lock().unwrap().clone()
    }
}

impl Drop for HubStandIn {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loops so that they see the flag.
        for url in [&self.state.endpoint, &self.state.storage] {
            let _ = TcpStream::connect(url.trim_start_matches("http://"));
        }
        for accept in self.accept.drain(..) {
            let _ = accept.join();
        }
    }
}

fn serve(state: &State, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let mut out = stream;
    if let Some(rest) = path.strip_prefix("/lfs/") {
        let Some(entry) = state.entries.iter().find(|e| e.sha256 == rest) else {
            return respond(&mut out, "404 Not Found", &[], b"");
        };
        if method == "HEAD" {
            return respond(&mut out, "200 OK", &[("Content-Length", entry.bytes.len().to_string())], b"");
        }
        return transfer(state, &mut out, entry, range);
    }
    // /<org>/<name>/resolve/<revision>/<file>
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let found = match segments.as_slice() {
        [org, name, "resolve", revision, file] => state.entries.iter().find(|e| {
            e.repo == format!("{org}/{name}") && e.filename == *file && (*revision == "main" || *revision == e.commit)
        }),
        _ => None,
    };
    state.heads.fetch_add(1, Ordering::SeqCst);
    let Some(entry) = found else {
        return respond(&mut out, "404 Not Found", &[("X-Error-Code", "EntryNotFound".into())], b"");
    };
    let headers = [
        ("Location", format!("{}/lfs/{}", state.storage, entry.sha256)),
        ("X-Repo-Commit", entry.commit.clone()),
        ("X-Linked-Etag", format!("\"{}\"", entry.sha256)),
        ("X-Linked-Size", entry.bytes.len().to_string()),
        ("ETag", "\"0123456789abcdef0123456789abcdef01234567\"".into()),
    ];
    respond(&mut out, "302 Found", &headers, b"")
}

fn transfer(state: &State, out: &mut TcpStream, entry: &HubEntry, range: Option<String>) -> std::io::Result<()> {
    state.transfers.fetch_add(1, Ordering::SeqCst);
    state.ranges.lock().unwrap().push(range.clone().unwrap_or_default());
    let total = entry.bytes.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&s| s < total);
    let mut body = entry.bytes.clone();
    if state.faults.corrupt.load(Ordering::SeqCst) {
        *body.last_mut().unwrap() ^= 0xff;
    }
    let (status, from, mut headers) = match start {
        Some(s) => ("206 Partial Content", s, vec![("Content-Range", format!("bytes {s}-{}/{total}", total - 1))]),
        None => ("200 OK", 0, vec![]),
    };
    headers.push(("Content-Length", (total - from).to_string()));
    let cut = state.faults.cut_after.lock().unwrap().take();
    let send = cut.map_or(total - from, |c| (c as usize).min(total - from));
    write_head(out, status, &headers)?;
    let delay = state.faults.delay_ms.load(Ordering::SeqCst);
    for chunk in body[from..from + send].chunks(1 << 16) {
        out.write_all(chunk)?;
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
    }
    out.flush()
}

fn respond(out: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut headers = headers.to_vec();
    if !headers.iter().any(|(n, _)| *n == "Content-Length") {
        headers.push(("Content-Length", body.len().to_string()));
    }
    write_head(out, status, &headers)?;
    out.write_all(body)?;
    out.flush()
}

fn write_head(out: &mut TcpStream, status: &str, headers: &[(&str, String)]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}
