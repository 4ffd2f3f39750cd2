//! Damaged and mismatched checkpoints give errors that say what is wrong, never a panic. They are
//! made from a genuine fixture checkpoint by editing its pickle or cutting the file.

use std::io::{Read, Write};

use rand::{RngCore, SeedableRng};
use std::path::{Path, PathBuf};

use satclip_io::{load_encoder, LightningCheckpoint};
use satclip_testkit::shared_file;

/// Copies a torch zip, passing `data.pkl` through `edit`.
fn rewrite(src: &Path, dst: &Path, edit: impl Fn(Vec<u8>) -> Vec<u8>) {
    let mut zin = zip::ZipArchive::new(std::fs::File::open(src).unwrap()).unwrap();
    let mut zout = zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zin.len() {
        let mut entry = zin.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name.ends_with("/data.pkl") {
            bytes = edit(bytes);
        }
        zout.start_file(name, options).unwrap();
        zout.write_all(&bytes).unwrap();
    }
    zout.finish().unwrap();
}

fn replace(bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes.windows(from.len()).position(|w| w == from).expect("pattern present");
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&bytes[at + from.len()..]);
    out
}

/// A pickle BINUNICODE string (protocol 2 has no short form).
fn unicode(text: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

fn fixture() -> Option<PathBuf> {
    shared_file("fixtures/satclip-resnet18-l10.ckpt")
}

fn error_of(path: &Path) -> String {
    match load_encoder(path) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_untouched_rewrite_still_loads() {
    let Some(src) = fixture() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.ckpt");
    rewrite(&src, &copy, |b| b);
    assert_eq!(load_encoder(&copy).unwrap().dim(), 256);
}

#[test]
fn renamed_tensor_is_reported_as_missing_and_unknown() {
    let Some(src) = fixture() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("renamed.ckpt");
    // Same length, so no pickle framing changes: both registrations of layers.1.bias renamed.
    rewrite(&src, &bad, |b| {
        let b = replace(b, b"model.nnet.layers.1.bias", b"model.nnet.layers.1.bjas");
        replace(b, b"model.location.nnet.layers.1.bias", b"model.location.nnet.layers.1.bjas")
    });
    let err = error_of(&bad);
    assert!(
        err.contains("renamed.ckpt") && err.contains("missing tensor `model.location.nnet.layers.1.bias`"),
        "{err}"
    );

    // The visual head's bias moved under the location prefix: an unknown key for the SIREN.
    let extra = dir.path().join("extra.ckpt");
    rewrite(&src, &extra, |b| replace(b, &unicode("model.visual.fc.bias"), &unicode("model.location.nnet.extra.bias")));
    let err = error_of(&extra);
    assert!(err.contains("unexpected tensor(s)") && err.contains("`model.location.nnet.extra.bias`"), "{err}");
}

#[test]
fn hyper_parameters_that_do_not_match_the_weights() {
    let Some(src) = fixture() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("l11.ckpt");
    // legendre_polys 10 -> 11 (BININT1 0x0a -> 0x0b right after the key and its memo op).
    rewrite(&src, &bad, |b| {
        let key = b"legendre_polys";
        let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len();
        let k = at + b[at..].iter().position(|&x| x == b'K').unwrap();
        let mut b = b;
        assert_eq!(b[k + 1], 10);
        b[k + 1] = 11;
        b
    });
    let err = error_of(&bad);
    assert!(err.contains("[512, 100]") && err.contains("[512, 121]") && err.contains("layers.0.weight"), "{err}");

    let wrong_type = dir.path().join("type.ckpt");
    rewrite(&src, &wrong_type, |b| replace(b, &unicode("siren"), &unicode("sirex")));
    let err = error_of(&wrong_type);
    assert!(err.contains("unknown network (pe_type) `sirex`"), "{err}");
}

#[test]
fn integer_weights_are_a_dtype_error() {
    let Some(src) = fixture() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("long.ckpt");
    // Every f64 storage becomes int64 (same byte size, so the archive stays consistent).
    rewrite(&src, &bad, |b| replace(b, b"torch\nDoubleStorage\n", b"torch\nLongStorage\n"));
    let err = error_of(&bad);
    assert!(err.contains("dtype int64 is not a floating-point type"), "{err}");
}

#[test]
fn cut_and_garbled_files_are_clear_errors() {
    let Some(src) = fixture() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&src).unwrap();
    for cut in [0, 100, bytes.len() / 2, bytes.len() - 10] {
        let path = dir.path().join(format!("cut{cut}.ckpt"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = error_of(&path);
        assert!(err.contains(&format!("cut{cut}.ckpt")), "{err}");
    }
    let garbled = dir.path().join("garbled.ckpt");
    rewrite(&src, &garbled, |b| b[..b.len() / 3].to_vec());
    let err = error_of(&garbled);
    assert!(err.contains("data.pkl") && err.contains("truncated"), "{err}");

    let no_state = dir.path().join("nostate.ckpt");
    rewrite(&src, &no_state, |b| replace(b, b"state_dict", b"state_dicx"));
    let err = LightningCheckpoint::open(&no_state).err().unwrap().to_string();
    assert!(err.contains("no `state_dict` entry"), "{err}");
}

/// Thousands of randomly damaged copies of the real `data.pkl`: every one decodes or fails
/// cleanly. A panic or an unbounded allocation would abort the test.
#[test]
fn random_damage_to_the_pickle_never_panics() {
    let Some(src) = fixture() else { return };
    let mut zin = zip::ZipArchive::new(std::fs::File::open(&src).unwrap()).unwrap();
    let mut pickle = Vec::new();
    zin.by_name("archive/data.pkl").unwrap().read_to_end(&mut pickle).unwrap();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
    let mut next = move || rng.next_u64();
    let mut failed = 0;
    for _ in 0..3000 {
        let mut damaged = pickle.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % damaged.len();
            damaged[at] = next() as u8;
        }
        if next() % 5 == 0 {
            damaged.truncate((next() as usize) % damaged.len());
        }
        // Decoding either succeeds or names a byte inside the pickle; never a panic.
        if let Err(e) = satclip_io::pickle::unpickle(&damaged) {
            assert!(e.offset <= damaged.len() && e.to_string().starts_with("pickle byte"), "{e}");
            failed += 1;
        }
    }
    assert!(failed > 0, "random damage is sometimes detected");
}
