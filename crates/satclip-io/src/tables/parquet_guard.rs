//! Checks of what a Parquet file declares, before the parquet crate (60.1) acts on it. The crate
//! trusts three kinds of number that a hostile file sets freely:
//! - its footer's Thrift list counts: it skips unknown fields by looping over a list's declared
//!   element count, and for boolean elements consumes no bytes per element, so a 1 kB footer
//!   declaring lists of 2³¹ booleans costs seconds each (found by the parquet_points fuzz target).
//!   In the compact protocol every element of a list, set or map takes at least one byte, so a
//!   count larger than the bytes left is a lie;
//! - a page's uncompressed size: it reserves that many bytes before decompressing (up to 2 GiB
//!   for a page of a few bytes; apache/arrow-rs#10734). No codec expands a byte into more than a
//!   known number of bytes, so a larger size is a lie;
//! - a dictionary page's number of values: the decoders reserve 4 to 16 bytes per declared value
//!   before reading them. Each value takes at least its type's plain width in the page.
//!
//! Refusing these lies bounds the crate's work and memory by the file's size.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use parquet::basic::{Compression, PageType, Type};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};

use crate::error::{Error, Result};

/// Deeper nesting than any Parquet footer has; the crate's own limit is of the same order.
const MAX_DEPTH: usize = 64;

/// Checks the Thrift structure of `file`'s footer (PAR1 files; anything else is left to the
/// parquet crate's own errors). Reads the footer's bytes, which the file holds.
pub(crate) fn check_footer(path: &Path, file: &mut File) -> Result<()> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 12 {
        return Ok(());
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::End(-8)).and_then(|_| file.read_exact(&mut tail)).map_err(|e| Error::io(path, e))?;
    let footer_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if &tail[4..] != b"PAR1" || footer_len + 8 > len {
        file.rewind().map_err(|e| Error::io(path, e))?;
        return Ok(());
    }
    let mut footer = vec![0u8; footer_len as usize];
    file.seek(SeekFrom::End(-8 - footer_len as i64))
        .and_then(|_| file.read_exact(&mut footer))
        .and_then(|_| file.rewind())
        .map_err(|e| Error::io(path, e))?;
    let mut walker = Walker { bytes: &footer, at: 0 };
    walker
        .value(STRUCT, false, 0)
        .map_err(|why| Error::format(path, format!("not a readable Parquet file: its footer {why}")))
}

/// Checks that every column chunk lies inside the file and that each of its pages declares no
/// more than its bytes can hold. Reads each page's header (a few bytes per page).
pub(crate) fn check_pages(path: &Path, file: &mut File, metadata: &ParquetMetaData) -> Result<()> {
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for (c, column) in group.columns().iter().enumerate() {
            let at = |why: String| Error::format(path, format!("row group {g}, column {c}: {why}"));
            let (start, end) = chunk_range(column, file_len).map_err(at)?;
            let expansion = max_expansion(column.compression()).map_err(at)?;
            let mut offset = start;
            while offset < end {
                let page = read_page_header(path, file, offset, end)?
                    .map_err(|why| at(format!("the page header at byte {offset} {why}")))?;
                check_page(&page, column, expansion, end - offset)
                    .map_err(|why| at(format!("the page at byte {offset} {why}")))?;
                offset += page.header_len + page.compressed as u64;
            }
        }
    }
    Ok(())
}

/// Where a column chunk's pages lie; the reader asserts that the offsets are not negative (a
/// panic, found by fuzzing) and would otherwise seek wherever the footer says.
fn chunk_range(column: &ColumnChunkMetaData, file_len: u64) -> Result<(u64, u64), String> {
    let start = column.dictionary_page_offset().unwrap_or_else(|| column.data_page_offset());
    let len = column.compressed_size();
    u64::try_from(start)
        .ok()
        .zip(u64::try_from(len).ok())
        .and_then(|(s, l)| Some((s, s.checked_add(l)?)))
        .filter(|&(_, end)| end <= file_len)
        .ok_or_else(|| format!("its bytes {start}..+{len} lie outside the file of {file_len} bytes"))
}

fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::UNCOMPRESSED => "uncompressed",
        Compression::SNAPPY => "Snappy",
        Compression::GZIP(_) => "gzip",
        Compression::LZO => "LZO",
        Compression::BROTLI(_) => "Brotli",
        Compression::LZ4 => "LZ4",
        Compression::ZSTD(_) => "ZSTD",
        Compression::LZ4_RAW => "LZ4_RAW",
    }
}

/// The most bytes one compressed byte of `codec` can decompress to: Snappy's longest copy (3
/// bytes for 64), LZ4's length extensions (255 per byte), Deflate's longest match (258 bytes in
/// two bits, 1032x), Zstandard's RLE block (4 bytes for 128 KiB).
fn max_expansion(codec: Compression) -> Result<Option<u64>, String> {
    match codec {
        Compression::UNCOMPRESSED => Ok(None),
        Compression::SNAPPY => Ok(Some(22)),
        Compression::LZ4 | Compression::LZ4_RAW => Ok(Some(256)),
        Compression::GZIP(_) => Ok(Some(1032)),
        Compression::ZSTD(_) => Ok(Some(32_768)),
        Compression::BROTLI(_) | Compression::LZO => {
            let name = if matches!(codec, Compression::LZO) { "LZO" } else { "Brotli" };
            Err(format!(
                "is compressed with {name}, which satclip does not read (rewrite it with ZSTD, Snappy, gzip or LZ4)"
            ))
        }
    }
}

/// What a page header declares, as far as the checks need it.
#[derive(Debug, PartialEq)]
struct PageHeader {
    header_len: u64,
    kind: i64,
    uncompressed: i64,
    compressed: i64,
    /// A dictionary page's number of values.
    dictionary_values: Option<i64>,
    /// A data page's encoding of its values.
    encoding: Option<i64>,
}

/// Encodings of byte arrays whose decoders (parquet 60.1) allocate for the value count in the
/// page's data before reading any value: a count that no byte bounds, since a delta block of
/// any length can take three bytes.
const DELTA_LENGTH_BYTE_ARRAY: i64 = 6;
const DELTA_BYTE_ARRAY: i64 = 7;

/// A page header that ends inside this many bytes is read at once; longer ones (large
/// statistics) are read again with twice the bytes, up to the chunk's end.
const FIRST_HEADER_READ: u64 = 256;

/// The header of the page at `offset` (the outer error is the file's, the inner one the header's).
fn read_page_header(
    path: &Path,
    file: &mut File,
    offset: u64,
    end: u64,
) -> Result<std::result::Result<PageHeader, String>> {
    let mut want = FIRST_HEADER_READ.min(end - offset);
    loop {
        let mut bytes = vec![0u8; want as usize];
        file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut bytes)).map_err(|e| Error::io(path, e))?;
        match (Walker { bytes: &bytes, at: 0 }).page_header() {
            // The header may go on past the bytes read: a value or count that does not fit
            // them is only a lie once the chunk's end is read.
            Err(_) if want < end - offset => want = (want * 2).min(end - offset),
            found => return Ok(found),
        }
    }
}

/// A page's declared sizes against the bytes that hold it.
fn check_page(
    page: &PageHeader,
    column: &ColumnChunkMetaData,
    expansion: Option<u64>,
    left: u64,
) -> Result<(), String> {
    let compressed = u64::try_from(page.compressed).ok().filter(|&n| page.header_len + n <= left);
    let Some(compressed) = compressed else {
        return Err(format!(
            "declares {} bytes where {} are left in its column chunk",
            page.compressed,
            left - page.header_len
        ));
    };
    let uncompressed =
        u64::try_from(page.uncompressed).map_err(|_| format!("declares {} bytes uncompressed", page.uncompressed))?;
    let decoded = match expansion {
        Some(ratio) => {
            let most = compressed * ratio + 64;
            if uncompressed > most {
                return Err(format!(
                    "declares {uncompressed} bytes uncompressed from {compressed} compressed; {} expands to at most {most}",
                    codec_name(column.compression())
                ));
            }
            uncompressed
        }
        None => compressed,
    };
    if let Some(encoding) = page.encoding.filter(|&e| e == DELTA_LENGTH_BYTE_ARRAY || e == DELTA_BYTE_ARRAY) {
        let name = if encoding == DELTA_BYTE_ARRAY { "DELTA_BYTE_ARRAY" } else { "DELTA_LENGTH_BYTE_ARRAY" };
        return Err(format!(
            "is encoded with {name}, whose decoder reserves memory for the number of values the page's data \
             declares, which satclip does not trust; rewrite the file with PLAIN or dictionary encoding (pyarrow's \
             and most writers' default)"
        ));
    }
    if page.kind == PageType::DICTIONARY_PAGE as i64 {
        let bits = match column.column_type() {
            Type::BOOLEAN => 1,
            Type::INT32 | Type::FLOAT | Type::BYTE_ARRAY => 32,
            Type::INT64 | Type::DOUBLE => 64,
            Type::INT96 => 96,
            Type::FIXED_LEN_BYTE_ARRAY => 8 * u64::try_from(column.column_descr().type_length()).unwrap_or(0).max(1),
        };
        let values = page.dictionary_values.unwrap_or(0);
        if u64::try_from(values).map_or(true, |n| n.saturating_mul(bits) > 8 * decoded) {
            return Err(format!("declares {values} dictionary values in {decoded} bytes"));
        }
    }
    Ok(())
}

const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const I32: u8 = 5;
const STRUCT: u8 = 12;
const ENDS_INSIDE: &str = "ends inside a value";

struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Walker<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or(ENDS_INSIDE)?;
        self.at += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > self.left() {
            return Err(format!("declares {n} bytes where {} are left", self.left()));
        }
        self.at += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("has a variable-length integer longer than 10 bytes".into())
    }

    /// A zigzag-encoded integer (i16, i32 and i64 alike).
    fn integer(&mut self) -> Result<i64, String> {
        let n = self.varint()?;
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    /// A struct's fields as (id, compact type); the caller reads or skips each value.
    fn fields(&mut self, mut each: impl FnMut(&mut Self, i16, u8) -> Result<(), String>) -> Result<(), String> {
        let mut id = 0i16;
        loop {
            let header = self.byte()?;
            if header == 0 {
                return Ok(());
            }
            id = match header >> 4 {
                0 => self.integer()? as i16,
                delta => id.wrapping_add(i16::from(delta)),
            };
            each(self, id, header & 0x0f)?;
        }
    }

    /// The fields of a `PageHeader` that the checks need (parquet.thrift: 1 type, 2
    /// uncompressed_page_size, 3 compressed_page_size, and in the nested headers the values'
    /// encoding and a dictionary's num_values), skipping the rest.
    fn page_header(&mut self) -> Result<PageHeader, String> {
        let (mut kind, mut uncompressed, mut compressed) = (None, None, None);
        let (mut dictionary_values, mut encoding) = (None, None);
        // One field of a nested header: `wanted` is the id of the i32 field to keep in `into`.
        let nested = |w: &mut Self, wanted: i16, into: &mut Option<i64>| {
            w.fields(|w, id, kind_of| match (id, kind_of) {
                (id, I32) if id == wanted => w.integer().map(|v| *into = Some(v)),
                _ => w.value(kind_of, false, 2),
            })
        };
        self.fields(|w, id, kind_of| match (id, kind_of) {
            (1, I32) => w.integer().map(|v| kind = Some(v)),
            (2, I32) => w.integer().map(|v| uncompressed = Some(v)),
            (3, I32) => w.integer().map(|v| compressed = Some(v)),
            // DataPageHeader (its field 2 is the encoding), DictionaryPageHeader (field 1 is
            // num_values), DataPageHeaderV2 (field 4 is the encoding).
            (5, STRUCT) => nested(w, 2, &mut encoding),
            (7, STRUCT) => nested(w, 1, &mut dictionary_values),
            (8, STRUCT) => nested(w, 4, &mut encoding),
            _ => w.value(kind_of, false, 1),
        })?;
        match (kind, uncompressed, compressed) {
            (Some(kind), Some(uncompressed), Some(compressed)) => Ok(PageHeader {
                header_len: self.at as u64,
                kind,
                uncompressed,
                compressed,
                dictionary_values,
                encoding,
            }),
            _ => Err("lacks the page's type or sizes".into()),
        }
    }

    /// A count of elements that each take at least `min_bytes`.
    fn count(&mut self, declared: u64, min_bytes: usize) -> Result<usize, String> {
        match usize::try_from(declared) {
            Ok(n) if n.saturating_mul(min_bytes) <= self.left() => Ok(n),
            _ => Err(format!("declares {declared} elements in the {} bytes left", self.left())),
        }
    }

    /// Skips one value of compact-protocol type `kind`; booleans take a byte inside containers
    /// and none as struct fields (their value is in the field header).
    fn value(&mut self, kind: u8, in_container: bool, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nests deeper than {MAX_DEPTH} levels"));
        }
        match kind {
            BOOL_TRUE | BOOL_FALSE => self.skip(usize::from(in_container)),
            3 => self.skip(1),
            4..=6 => self.varint().map(|_| ()),
            7 => self.skip(8),
            8 => {
                let declared = self.varint()?;
                let n = self.count(declared, 1)?;
                self.skip(n)
            }
            9 | 10 => {
                let header = self.byte()?;
                let declared = match header >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let n = self.count(declared, 1)?;
                (0..n).try_for_each(|_| self.value(header & 0x0f, true, depth + 1))
            }
            11 => {
                let declared = self.varint()?;
                let n = self.count(declared, 2)?;
                if n == 0 {
                    return Ok(());
                }
                let types = self.byte()?;
                (0..n).try_for_each(|_| {
                    self.value(types >> 4, true, depth + 1)?;
                    self.value(types & 0x0f, true, depth + 1)
                })
            }
            STRUCT => loop {
                let header = self.byte()?;
                if header == 0 {
                    return Ok(());
                }
                if header >> 4 == 0 {
                    self.varint()?; // the field id, when not a delta
                }
                self.value(header & 0x0f, false, depth + 1)?;
            },
            13 => self.skip(16),
            other => Err(format!("has a value of unknown Thrift type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(bytes: &[u8]) -> Result<(), String> {
        Walker { bytes, at: 0 }.value(STRUCT, false, 0)
    }

    #[test]
    fn lying_container_counts_are_refused_and_honest_ones_pass() {
        // Field 1: a list (type 9) of 2³¹−1 booleans (header 0xF1 + varint), with nothing after.
        let lying = [0x19, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
        let started = std::time::Instant::now();
        let err = walk(&lying).unwrap_err();
        assert!(err.contains("declares 2147483647 elements"), "{err}");
        assert!(started.elapsed().as_secs_f64() < 0.1);
        // Field 1: a list of three booleans (one byte each), field 2: i32 5, field 3: bool true,
        // field 4: binary "ab", a nested struct with a map {1: 2}, then stop.
        let honest = [0x19, 0x31, 1, 2, 1, 0x15, 0x0a, 0x11, 0x18, 2, b'a', b'b', 0x1c, 0x1b, 1, 0x55, 2, 4, 0, 0];
        walk(&honest).unwrap();
        // A map declaring more entries than bytes, and nesting without end.
        assert!(walk(&[0x1b, 0x80, 0x01, 0x55]).unwrap_err().contains("declares 128 elements"));
        assert!(walk(&[0x1c; 200]).unwrap_err().contains("nests deeper"));
        assert!(walk(&[0x1e]).unwrap_err().contains("unknown Thrift type 14"));
    }

    /// A Parquet file with a column of 20 equal longitudes (one data page, no dictionary) and
    /// a dictionary-encoded column of three names `name_len` letters long, compressed with
    /// `codec`; the page headers carry the pages' statistics in full.
    fn write_table(path: &Path, codec: Compression, name_len: usize) -> ParquetMetaData {
        write_table_with(path, codec, name_len, |p| p)
    }

    fn write_table_with(
        path: &Path,
        codec: Compression,
        name_len: usize,
        configure: impl Fn(
            parquet::file::properties::WriterPropertiesBuilder,
        ) -> parquet::file::properties::WriterPropertiesBuilder,
    ) -> ParquetMetaData {
        use std::sync::Arc;

        use arrow_array::{Float64Array, RecordBatch, StringArray};
        use arrow_schema::{DataType, Field, Schema};
        use parquet::file::properties::WriterProperties;
        use parquet::schema::types::ColumnPath;

        let schema = Arc::new(Schema::new(vec![
            Field::new("lon", DataType::Float64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let names: Vec<String> = (0..20).map(|i| ["a", "b", "c"][i % 3].repeat(name_len)).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Float64Array::from(vec![12.5; 20])), Arc::new(StringArray::from(names))],
        )
        .unwrap();
        let properties = configure(WriterProperties::builder())
            .set_compression(codec)
            .set_column_dictionary_enabled(ColumnPath::from("lon"), false)
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Page)
            .set_write_page_header_statistics(true)
            .set_statistics_truncate_length(None)
            .build();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        parquet::file::reader::SerializedFileReader::new(File::open(path).unwrap())
            .map(|r| parquet::file::reader::FileReader::metadata(&r).clone())
            .unwrap()
    }

    fn check_file(path: &Path) -> Result<()> {
        let metadata = parquet::file::reader::SerializedFileReader::new(File::open(path).unwrap())
            .map(|r| parquet::file::reader::FileReader::metadata(&r).clone())
            .unwrap();
        check_pages(path, &mut File::open(path).unwrap(), &metadata)
    }

    /// Overwrites the varint at `at` with the largest positive zigzag value of the same length,
    /// so that nothing else in the file moves; returns that value.
    fn declare_most(bytes: &mut [u8], at: usize) -> i64 {
        let len = bytes[at..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        for (i, b) in bytes[at..at + len].iter_mut().enumerate() {
            *b = match (i, len) {
                (0, 1) => 0x7e,
                (0, _) => 0xfe,
                (i, len) if i + 1 == len => 0x7f,
                _ => 0xff,
            };
        }
        (1i64 << (7 * len)) / 2 - 1
    }

    #[test]
    fn honest_pages_pass_for_every_codec_the_reader_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        // Names of 1000 letters make page headers longer than the first read.
        let metadata = write_table(&path, Compression::SNAPPY, 1000);
        let names = metadata.row_group(0).column(1);
        let bytes = std::fs::read(&path).unwrap();
        let header_len = |at: i64| Walker { bytes: &bytes[at as usize..], at: 0 }.page_header().unwrap().header_len;
        assert!(header_len(names.data_page_offset()) > 2 * FIRST_HEADER_READ);
        check_file(&path).unwrap();
        for codec in [
            Compression::UNCOMPRESSED,
            Compression::SNAPPY,
            Compression::GZIP(Default::default()),
            Compression::LZ4_RAW,
            Compression::ZSTD(Default::default()),
        ] {
            write_table(&path, codec, 1);
            check_file(&path).unwrap_or_else(|e| panic!("{codec}: {e}"));
        }
    }

    #[test]
    fn a_page_declaring_more_than_its_codec_can_expand_to_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let metadata = write_table(&path, Compression::SNAPPY, 1);
        let lon = metadata.row_group(0).column(0);
        let start = lon.data_page_offset() as usize;
        let mut bytes = std::fs::read(&path).unwrap();
        // PageHeader: field 1 (i32 type), field 2 (i32 uncompressed_page_size), ...
        assert_eq!(bytes[start], 0x15);
        let type_len = bytes[start + 1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        let at = start + 1 + type_len;
        assert_eq!(bytes[at], 0x15);
        let declared = declare_most(&mut bytes, at + 1);
        std::fs::write(&path, &bytes).unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        let want = format!("row group 0, column 0: the page at byte {start} declares {declared} bytes uncompressed");
        assert!(err.contains(&want) && err.contains("Snappy expands to at most"), "{err}");
        // The reader refuses the file before the parquet crate reserves those bytes.
        let err = crate::tables::PointReader::open(&path, &Default::default()).err().unwrap().to_string();
        assert!(err.contains(&want), "{err}");
    }

    #[test]
    fn a_dictionary_declaring_more_values_than_its_bytes_hold_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let metadata = write_table(&path, Compression::ZSTD(Default::default()), 1);
        let name = metadata.row_group(0).column(1);
        let start = name.dictionary_page_offset().unwrap() as usize;
        let mut bytes = std::fs::read(&path).unwrap();
        let header = Walker { bytes: &bytes[start..], at: 0 }.page_header().unwrap();
        assert_eq!((header.kind, header.dictionary_values), (PageType::DICTIONARY_PAGE as i64, Some(3)));
        // The dictionary page header (field 7, a struct) starts with num_values (field 1, i32).
        let at = start + bytes[start..].windows(3).position(|w| w == [0x4c, 0x15, 6]).unwrap() + 2;
        let declared = declare_most(&mut bytes, at);
        std::fs::write(&path, &bytes).unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        let want = format!("row group 0, column 1: the page at byte {start} declares {declared} dictionary values in");
        assert!(err.contains(&want), "{err}");
    }

    #[test]
    fn byte_arrays_in_delta_encodings_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        for (encoding, name) in [
            (parquet::basic::Encoding::DELTA_LENGTH_BYTE_ARRAY, "DELTA_LENGTH_BYTE_ARRAY"),
            (parquet::basic::Encoding::DELTA_BYTE_ARRAY, "DELTA_BYTE_ARRAY"),
        ] {
            let metadata = write_table_with(&path, Compression::SNAPPY, 1, |p| {
                let column = parquet::schema::types::ColumnPath::from("name");
                p.set_column_dictionary_enabled(column.clone(), false).set_column_encoding(column, encoding)
            });
            let start = metadata.row_group(0).column(1).data_page_offset();
            let err = check_file(&path).unwrap_err().to_string();
            let want = format!("row group 0, column 1: the page at byte {start} is encoded with {name}, whose decoder");
            assert!(err.contains(&want), "{err}");
        }
    }

    #[test]
    fn a_codec_the_reader_does_not_decode_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_table(&path, Compression::UNCOMPRESSED, 1);
        let mut bytes = std::fs::read(&path).unwrap();
        // Rewrites the footer's codec of both columns (ColumnMetaData field 4, i32, after the
        // type, encodings and path) from UNCOMPRESSED (0) to BROTLI (4), same length.
        let footer_len = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap()) as usize;
        let footer = bytes.len() - 8 - footer_len;
        let mut patched = 0;
        for i in footer..bytes.len() - 9 {
            // "lon" or "name" in path_in_schema, then the codec field: delta 1, type i32, 0.
            if bytes[i..].starts_with(b"lon\x15\x00") || bytes[i..].starts_with(b"name\x15\x00") {
                let at = i + if bytes[i] == b'l' { 4 } else { 5 };
                bytes[at] = 8;
                patched += 1;
            }
        }
        assert_eq!(patched, 2);
        std::fs::write(&path, &bytes).unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        assert!(err.contains("row group 0, column 0: is compressed with Brotli, which satclip does not read"), "{err}");
    }

    #[test]
    fn page_headers_are_read_field_by_field() {
        // type 0 (data page), uncompressed 300, compressed 200, a data page header struct
        // (field 5) holding num_values 20 and encoding 6, then stop.
        let bytes = [0x15, 0x00, 0x15, 0xd8, 0x04, 0x15, 0x90, 0x03, 0x2c, 0x15, 0x28, 0x15, 0x0c, 0x00, 0x00, 0xaa];
        let header = Walker { bytes: &bytes, at: 0 }.page_header().unwrap();
        let want = PageHeader {
            header_len: 15,
            kind: 0,
            uncompressed: 300,
            compressed: 200,
            dictionary_values: None,
            encoding: Some(DELTA_LENGTH_BYTE_ARRAY),
        };
        assert_eq!(header, want);
        assert_eq!(Walker { bytes: &bytes[..7], at: 0 }.page_header().unwrap_err(), ENDS_INSIDE);
        assert!(Walker { bytes: &[0x15, 0x00, 0x00], at: 0 }.page_header().unwrap_err().contains("lacks"));
    }
}
