//! Hostile weight files, one per class of attack found by hand (issue 10): each is refused with
//! an error that names the problem, without reading or allocating what the file declares. The
//! checkpoints are written here from scratch: a tiny SIREN (L = 2, 4 hidden units, 3 outputs) in
//! the torch zip layout, with its pickle emitted opcode by opcode.

use std::io::Write;
use std::path::{Path, PathBuf};

use satclip_io::load_encoder;

/// A protocol-2 pickle, emitted opcode by opcode.
struct Pickle(Vec<u8>);

impl Pickle {
    fn new() -> Self {
        Self(vec![0x80, 2])
    }
    fn op(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn str(self, text: &str) -> Self {
        let mut op = vec![b'X'];
        op.extend_from_slice(&(text.len() as u32).to_le_bytes());
        op.extend_from_slice(text.as_bytes());
        self.op(&op)
    }
    fn int(self, value: i64) -> Self {
        let mut op = vec![0x8a, 8];
        op.extend_from_slice(&value.to_le_bytes());
        self.op(&op)
    }
    fn float(self, value: f64) -> Self {
        let mut op = vec![b'G'];
        op.extend_from_slice(&value.to_be_bytes());
        self.op(&op)
    }
    fn global(self, module: &str, name: &str) -> Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn ints(self, values: &[i64]) -> Self {
        values.iter().fold(self.op(b"("), |p, &v| p.int(v)).op(b"t")
    }
    /// `torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, ())`.
    fn tensor(self, key: &str, class: &str, numel: i64, shape: &[i64], stride: &[i64]) -> Self {
        self.global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .str("storage")
            .global("torch", class)
            .str(key)
            .str("cpu")
            .int(numel)
            .op(b"tQ")
            .int(0)
            .ints(shape)
            .ints(stride)
            .op(&[0x89, b')', b't', b'R'])
    }
}

const TINY: [(&str, &[i64]); 4] =
    [("layers.0.weight", &[4, 4]), ("layers.0.bias", &[4]), ("last_layer.weight", &[3, 4]), ("last_layer.bias", &[3])];

fn contiguous(shape: &[i64]) -> Vec<i64> {
    let mut stride = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1] * shape[i + 1];
    }
    stride
}

/// The tiny SIREN's state dict entries (tensor `i` in storage `i`) and their storages.
fn tiny_state(p: Pickle) -> (Pickle, Vec<(String, Vec<u8>)>) {
    let mut storages = Vec::new();
    let mut p = p;
    for (i, (name, shape)) in TINY.iter().enumerate() {
        let numel: i64 = shape.iter().product();
        p = p.str(&format!("model.location.nnet.{name}")).tensor(
            &i.to_string(),
            "FloatStorage",
            numel,
            shape,
            &contiguous(shape),
        );
        let values: Vec<u8> = (0..numel).flat_map(|k| (0.01 * (k % 5) as f32 - 0.02).to_le_bytes()).collect();
        storages.push((i.to_string(), values));
    }
    (p, storages)
}

fn hyper_parameters(p: Pickle, extra: impl FnOnce(Pickle) -> Pickle) -> Pickle {
    let p = p.str("hyper_parameters").op(b"}(").str("le_type").str("sphericalharmonics").str("pe_type").str("siren");
    let p = p.str("legendre_polys").int(2).str("embed_dim").int(3).str("capacity").int(4);
    let p = p.str("num_hidden_layers").int(1).str("min_radius").float(1e-5).str("max_radius").float(0.01);
    extra(p).op(b"u")
}

/// A Lightning checkpoint of the tiny SIREN; `state` may add entries to the state dict and
/// storages, `hparams` hyper-parameters (after the regular ones, so they override them).
fn checkpoint(
    dir: &Path,
    name: &str,
    state: impl FnOnce(Pickle, &mut Vec<(String, Vec<u8>)>) -> Pickle,
    hparams: impl FnOnce(Pickle) -> Pickle,
) -> PathBuf {
    let (p, mut storages) = tiny_state(Pickle::new().op(b"}(").str("state_dict").op(b"}("));
    let p = state(p, &mut storages).op(b"u");
    let p = hyper_parameters(p, hparams).op(b"u.");
    write_zip(dir, name, &p.0, &storages)
}

fn write_zip(dir: &Path, name: &str, pickle: &[u8], storages: &[(String, Vec<u8>)]) -> PathBuf {
    let path = dir.join(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("archive/byteorder", options).unwrap();
    zip.write_all(b"little").unwrap();
    for (key, bytes) in storages {
        zip.start_file(format!("archive/data/{key}"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

fn error_of(path: &Path) -> String {
    match load_encoder(path) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_tiny_checkpoint_loads_so_each_case_below_fails_for_its_own_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = checkpoint(dir.path(), "tiny.ckpt", |p, _| p, |p| p);
    let encoder = load_encoder(&path).unwrap();
    assert_eq!((encoder.dim(), encoder.positional_encoding().dim()), (3, 4));
    let seed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/torch_checkpoint/tiny-siren.ckpt");
    assert_eq!(load_encoder(&seed).unwrap().dim(), 3, "the fuzz seed is a valid checkpoint");
}

#[test]
fn deep_and_self_referencing_pickles_are_errors_not_stack_overflows() {
    let dir = tempfile::tempdir().unwrap();
    let mut deep = vec![0x80, 2, b'N'];
    deep.extend(std::iter::repeat_n(0x85u8, 2_000_000));
    deep.push(b'.');
    let path = write_zip(dir.path(), "deep.ckpt", &deep, &[]);
    assert!(error_of(&path).contains("no `state_dict` entry"));

    // The root's BUILD state is the root itself: a cycle, refused (it could never be freed).
    let selfish = Pickle::new().global("m", "C").op(b")\x81q\x00h\x00b.");
    let path = write_zip(dir.path(), "self.ckpt", &selfish.0, &[]);
    assert!(error_of(&path).contains("contains itself"));

    let mut flood = vec![0x80, 2, b']'];
    flood.extend(std::iter::repeat_n(b'2', 5_000_000));
    flood.push(b'.');
    let path = write_zip(dir.path(), "flood.ckpt", &flood, &[]);
    assert!(error_of(&path).contains("more than 4194304 values"));
}

#[test]
fn a_repeated_key_takes_its_last_value_as_torch_would() {
    let dir = tempfile::tempdir().unwrap();
    // legendre_polys set again to 3: the SIREN's first layer then needs 9 inputs, not 4.
    let path = checkpoint(dir.path(), "dup.ckpt", |p, _| p, |p| p.str("legendre_polys").int(3));
    let err = error_of(&path);
    assert!(err.contains("layers.0.weight") && err.contains("expected [4, 9]"), "{err}");
}

#[test]
fn tensors_the_model_does_not_use_are_never_read() {
    let dir = tempfile::tempdir().unwrap();
    // 2^31 half-precision values declared, two bytes present.
    let path = checkpoint(
        dir.path(),
        "junk.ckpt",
        |p, storages| {
            storages.push(("junk".into(), vec![0, 0]));
            p.str("model.location.nnet.junk").tensor("junk", "HalfStorage", 1 << 31, &[1 << 31], &[1])
        },
        |p| p,
    );
    let err = error_of(&path);
    assert!(err.contains("unexpected tensor") && err.contains("model.location.nnet.junk"), "{err}");
}

#[test]
fn views_that_lie_about_their_size_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    // A stride-0 view of a huge shape replacing a real weight (the later key wins).
    let path = checkpoint(
        dir.path(),
        "stride0.ckpt",
        |p, _| {
            p.str("model.location.nnet.layers.0.weight").tensor("0", "FloatStorage", 16, &[1 << 30, 1 << 30], &[0, 0])
        },
        |p| p,
    );
    let err = error_of(&path);
    assert!(err.contains("layers.0.weight") && err.contains("expected [4, 4]"), "{err}");
    // A view spread far over a storage that claims gigabytes.
    let path = checkpoint(
        dir.path(),
        "spread.ckpt",
        |p, _| p.str("model.location.nnet.layers.0.bias").tensor("0", "FloatStorage", 1 << 30, &[4], &[1 << 27]),
        |p| p,
    );
    assert!(error_of(&path).contains("spread over"));
}

#[test]
fn unbounded_or_non_finite_parameters_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = checkpoint(dir.path(), "freq.ckpt", |p, _| p, |p| p.str("frequency_num").int(1 << 40));
    assert!(error_of(&path).contains("frequency_num"));
    let path = checkpoint(dir.path(), "l.ckpt", |p, _| p, |p| p.str("legendre_polys").int(1 << 20));
    assert!(error_of(&path).contains("legendre_polys"));
    let path = checkpoint(
        dir.path(),
        "nan.ckpt",
        |p, storages| {
            let mut values = vec![0u8; 12];
            values[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
            storages.push(("nan".into(), values));
            p.str("model.location.nnet.last_layer.bias").tensor("nan", "FloatStorage", 3, &[3], &[1])
        },
        |p| p,
    );
    let err = error_of(&path);
    assert!(err.contains("last_layer.bias") && err.contains("NaN"), "{err}");
}

#[test]
fn repeated_zip_entries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.ckpt");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    // A second data.pkl under a name of the same length, renamed in place afterwards (the zip
    // writer itself refuses a repeated name; an attacker's tool need not).
    for name in ["archive/data.pkl", "archive/data.pkX"] {
        zip.start_file(name, options).unwrap();
        zip.write_all(b"\x80\x02}.").unwrap();
    }
    zip.finish().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mut renamed = 0;
    while let Some(at) = bytes.windows(16).position(|w| w == b"archive/data.pkX") {
        bytes[at + 15] = b'l';
        renamed += 1;
    }
    assert_eq!(renamed, 2, "local header and central directory");
    std::fs::write(&path, &bytes).unwrap();
    let err = error_of(&path);
    assert!(err.contains("repeats an entry name"), "{err}");
}

#[test]
fn a_sparse_safetensors_file_is_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let config = r#"{"model_type": "satclip-location-encoder", "format_version": 1, "le_type": "sphericalharmonics",
        "pe_type": "siren", "legendre_polys": 2, "embed_dim": 3, "capacity": 4, "num_hidden_layers": 1}"#;
    std::fs::write(model.join("config.json"), config).unwrap();
    let mut header = String::from("{");
    let mut offset = 0usize;
    for (name, shape) in TINY {
        let bytes = shape.iter().product::<i64>() as usize * 4;
        header += &format!(
            r#""location.nnet.{name}": {{"dtype": "F32", "shape": {shape:?}, "data_offsets": [{offset}, {}]}},"#,
            offset + bytes
        );
        offset += bytes;
    }
    let junk = 4usize << 30;
    header += &format!(
        r#""location.nnet.junk": {{"dtype": "F32", "shape": [{}], "data_offsets": [{offset}, {}]}}}}"#,
        junk / 4,
        offset + junk
    );
    let mut file = std::fs::File::create(model.join("model.safetensors")).unwrap();
    file.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    file.write_all(header.as_bytes()).unwrap();
    file.write_all(&vec![0u8; offset]).unwrap();
    // 4 GiB of holes: a reader that reads the file whole would need 4 GiB of memory.
    file.set_len((8 + header.len() + offset + junk) as u64).unwrap();
    drop(file);
    let err = error_of(&model);
    assert!(err.contains("unexpected tensor") && err.contains("junk"), "{err}");
    // Shrinking the file under the header's claim is a format error, not a short read later.
    std::fs::OpenOptions::new()
        .write(true)
        .open(model.join("model.safetensors"))
        .unwrap()
        .set_len((8 + header.len() + offset) as u64)
        .unwrap();
    assert!(error_of(&model).contains("ends at byte"));
}

/// Found by the parquet_points fuzz target: a footer whose column chunk starts at a negative
/// offset made the Parquet reader assert when the first batch was read, and damaged definition
/// levels made it panic ("offset + len out of bounds") while decoding it. The second file's
/// column chunk also claims bytes past its last page (into the footer), which the page check
/// now refuses before any decoding; the decoder's panic stays caught (the fuzz target reaches it).
#[test]
fn damaged_parquet_files_the_fuzzer_found_are_errors_not_panics() {
    use satclip_io::tables::{PointReader, ReadOptions};
    for (file, expected) in [
        ("parquet-negative-column-offset.parquet", "outside the file"),
        ("parquet-bad-definition-levels.parquet", "row group 0, column 1: the page header at byte 322"),
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
        let err = match PointReader::open(&path, &ReadOptions::default()) {
            Ok(reader) => reader.filter_map(Result::err).next().expect("an error, not points").to_string(),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(file) && err.contains(expected), "{err}");
    }
}

/// Found by the pickle fuzz target under LeakSanitizer: a list appended into itself, in a file
/// that then fails, made an Rc cycle that was never freed. The input stays in the fuzz corpus,
/// which CI replays under LeakSanitizer; here, that it is an error naming its byte.
#[test]
fn the_cyclic_pickle_the_fuzzer_found_is_an_error() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/pickle/leak-cycle-regression.pkl");
    let err = satclip_io::pickle::unpickle(&std::fs::read(path).unwrap()).unwrap_err();
    assert!(err.to_string().starts_with("pickle byte 23:"), "{err}");
}
