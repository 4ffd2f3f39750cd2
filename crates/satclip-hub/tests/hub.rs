//! The client against the Hub stand-in: first download, cache hits, resume, hash mismatch,
//! offline, unreachable and concurrent fetches.

use std::path::Path;
use std::sync::Arc;

use satclip_hub::{Error, Hub, HubConfig, HubFile, Progress, Silent};
use satclip_testkit::hub::{HubEntry, HubStandIn};

const REPO: &str = "microsoft/SatCLIP-ViT16-L40";
const FILE: &str = "satclip-vit16-l40.ckpt";
const COMMIT: &str = "0ef2acc0b91d3c8cfdf4a0cc03207095989287ab";

fn content() -> Vec<u8> {
    // 1.5 MB that are not all alike, so a misplaced range shows in the hash.
    (0..1_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn stand_in() -> HubStandIn {
    HubStandIn::start(vec![HubEntry::new(REPO, COMMIT, FILE, content())])
}

fn hub(endpoint: &str, cache: &Path, offline: bool) -> Hub {
    Hub::new(HubConfig { endpoint: endpoint.into(), cache: cache.into(), token: None, offline })
}

fn file(revision: &str) -> HubFile {
    HubFile::new(REPO, revision, FILE).unwrap()
}

/// Records notes, to check what the user is told.
#[derive(Default)]
struct Notes {
    notes: Vec<String>,
    started: usize,
}

impl Progress for Notes {
    fn start(&mut self, _: &satclip_hub::Download) {
        self.started += 1;
    }
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
    fn note(&mut self, message: &str) {
        self.notes.push(message.into());
    }
}

#[test]
fn first_download_lands_in_huggingface_hub_layout_and_then_hits_the_cache() {
    let server = stand_in();
    let cache = tempfile::tempdir().unwrap();
    let hub = hub(server.endpoint(), cache.path(), false);
    let path = hub.fetch(&file("main"), &mut Silent).unwrap();

    let repo = cache.path().join("models--microsoft--SatCLIP-ViT16-L40");
    assert_eq!(path, repo.join("snapshots").join(COMMIT).join(FILE));
    assert_eq!(std::fs::read(&path).unwrap(), content());
    let sha = HubEntry::new(REPO, COMMIT, FILE, content()).sha256;
    assert_eq!(std::fs::read_link(&path).unwrap(), Path::new("../../blobs").join(&sha));
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), COMMIT);
    assert!(cache.path().join(".locks/models--microsoft--SatCLIP-ViT16-L40").join(format!("{sha}.lock")).exists());
    assert_eq!(server.transfers(), 1);

    // A branch asks the Hub which commit it names, but does not fetch the bytes again.
    let resolves = server.resolves();
    assert_eq!(hub.fetch(&file("main"), &mut Silent).unwrap(), path);
    assert_eq!((server.transfers(), server.resolves()), (1, resolves + 1));
    // A commit already cached is answered without the Hub.
    assert_eq!(hub.fetch(&file(COMMIT), &mut Silent).unwrap(), path);
    assert_eq!(server.resolves(), resolves + 1);
}

#[test]
fn an_interrupted_transfer_resumes_where_it_stopped() {
    let server = stand_in();
    let cache = tempfile::tempdir().unwrap();
    let hub = hub(server.endpoint(), cache.path(), false);
    server.cut_next_transfer_after(600_000);
    let err = hub.fetch(&file("main"), &mut Silent).unwrap_err();
    assert!(err.to_string().contains("600000 of 1500000 bytes and resumes when run again"), "{err}");
    let sha = HubEntry::new(REPO, COMMIT, FILE, content()).sha256;
    let partial = cache.path().join("models--microsoft--SatCLIP-ViT16-L40/blobs").join(format!("{sha}.incomplete"));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 600_000);

    let mut notes = Notes::default();
    let path = hub.fetch(&file("main"), &mut notes).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), content());
    assert_eq!(server.ranges(), vec![String::new(), "bytes=600000-".to_string()]);
    assert!(!partial.exists());
}

#[test]
fn a_corrupted_transfer_leaves_nothing_in_the_cache() {
    let server = stand_in();
    let cache = tempfile::tempdir().unwrap();
    let hub = hub(server.endpoint(), cache.path(), false);
    server.corrupt_transfers(true);
    let err = hub.fetch(&file("main"), &mut Silent).unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("nothing was kept in the cache"), "{err}");
    let repo = cache.path().join("models--microsoft--SatCLIP-ViT16-L40");
    let blobs: Vec<_> = std::fs::read_dir(repo.join("blobs")).unwrap().collect();
    assert!(blobs.is_empty(), "{blobs:?}");
    assert!(!repo.join("snapshots").exists());
    assert!(hub.cached(&file("main")).is_none());

    // The next, clean transfer succeeds.
    server.corrupt_transfers(false);
    assert_eq!(std::fs::read(hub.fetch(&file("main"), &mut Silent).unwrap()).unwrap(), content());
}

#[test]
fn offline_uses_the_cache_and_says_what_to_do_without_it() {
    let server = stand_in();
    let cache = tempfile::tempdir().unwrap();
    let offline = hub(server.endpoint(), cache.path(), true);
    let err = offline.fetch(&file("main"), &mut Silent).unwrap_err();
    let message = err.to_string();
    for needle in
        ["HF_HUB_OFFLINE is set", "satclip download microsoft/SatCLIP-ViT16-L40", "not in the Hugging Face cache"]
    {
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(server.resolves(), 0);

    let path = hub(server.endpoint(), cache.path(), false).fetch(&file("main"), &mut Silent).unwrap();
    let resolves = server.resolves();
    assert_eq!(offline.fetch(&file("main"), &mut Silent).unwrap(), path);
    assert_eq!(server.resolves(), resolves, "offline never asks the Hub");
}

#[test]
fn an_unreachable_hub_falls_back_to_the_cache_with_a_note() {
    let cache = tempfile::tempdir().unwrap();
    let endpoint = {
        let server = stand_in();
        hub(server.endpoint(), cache.path(), false).fetch(&file("main"), &mut Silent).unwrap();
        server.endpoint().to_string()
    };
    // The stand-in is gone: nothing listens on its port.
    let mut notes = Notes::default();
    let path = hub(&endpoint, cache.path(), false).fetch(&file("main"), &mut notes).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), content());
    assert!(
        notes.notes.iter().any(|n| n.contains("could not reach") && n.contains("using the cached")),
        "{:?}",
        notes.notes
    );

    let empty = tempfile::tempdir().unwrap();
    let err = hub(&endpoint, empty.path(), false).fetch(&file("main"), &mut Silent).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }) && err.to_string().contains("HF_HUB_OFFLINE=1"), "{err}");
}

#[test]
fn missing_files_are_named_with_the_hubs_status() {
    let server = stand_in();
    let cache = tempfile::tempdir().unwrap();
    let err = hub(server.endpoint(), cache.path(), false)
        .fetch(&HubFile::new(REPO, "main", "nope.ckpt").unwrap(), &mut Silent)
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 404, .. }), "{err}");
    assert!(err.to_string().contains("nope.ckpt") && err.to_string().contains("no such repository, revision or file"));
}

#[test]
fn concurrent_fetches_transfer_once() {
    let server = Arc::new(stand_in());
    server.throttle(20);
    let cache = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (endpoint, cache) = (server.endpoint().to_string(), cache.path().to_path_buf());
            std::thread::spawn(move || {
                let mut notes = Notes::default();
                let path = hub(&endpoint, &cache, false).fetch(&file("main"), &mut notes).unwrap();
                (path, notes)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(results.iter().all(|(p, _)| *p == results[0].0));
    assert_eq!(std::fs::read(&results[0].0).unwrap(), content());
    assert_eq!(server.transfers(), 1, "one process fetches, the others wait for it");
    assert_eq!(results.iter().map(|(_, n)| n.started).sum::<usize>(), 1);
    assert!(results.iter().any(|(_, n)| n.notes.iter().any(|m| m.contains("waiting for another process"))));
}
