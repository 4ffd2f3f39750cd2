//! A check of a Parquet footer's Thrift encoding before the parquet crate decodes it. The crate
//! (60.1) skips unknown fields by looping over a list's declared element count, and for boolean
//! elements consumes no bytes per element: a 1 kB footer declaring lists of 2³¹ booleans costs
//! seconds each (found by the parquet_points fuzz target). In the compact protocol every element
//! of a list, set or map takes at least one byte, so a declared count larger than the bytes left
//! is a lie, and refusing it bounds the crate's work by the footer's size.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// Deeper nesting than any Parquet footer has; the crate's own limit is of the same order.
const MAX_DEPTH: usize = 64;

/// Checks the Thrift structure of `file`'s footer (PAR1 files; anything else is left to the
/// parquet crate's own errors). Reads the footer's bytes, which the file holds.
pub(crate) fn check(path: &Path, file: &mut std::fs::File) -> Result<()> {
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

const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const STRUCT: u8 = 12;

struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Walker<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("ends inside a value")?;
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
}
