//! Datasets of many Parquet/GeoParquet files (a directory, hive-partitioned or not, or a glob):
//! each file is embedded into the same relative path under the output directory, several files
//! at a time. Outputs appear only when complete (written to a temporary and renamed), so a
//! rerun skips the files that exist and resumes an interrupted run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::{embed_file, EmbedOptions, Error, FeatureEncoder, Progress, Result};

/// Extensions of the files a dataset is made of.
const PARQUET: [&str; 3] = ["parquet", "pq", "geoparquet"];

/// Whether `input` names a dataset rather than one file: a directory, or a pattern with `*`/`?`.
pub fn is_dataset(input: &str) -> bool {
    Path::new(input).is_dir() || input.contains(['*', '?'])
}

/// The files of a dataset, each with its path relative to the dataset's root, sorted.
pub fn dataset_files(input: &str) -> Result<Vec<(PathBuf, PathBuf)>> {
    let (root, pattern) = match input.find(['*', '?']) {
        None => (PathBuf::from(input), None),
        Some(at) => {
            // The root is the directory part before the first wildcard.
            let cut = input[..at].rfind('/').map_or(0, |i| i + 1);
            let root = if cut == 0 { PathBuf::from(".") } else { PathBuf::from(&input[..cut]) };
            (root, Some(input[cut..].to_string()))
        }
    };
    let mut files = Vec::new();
    walk(&root, &root, &mut files)?;
    files.retain(|(_, relative)| {
        let ext = relative.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let hidden = relative.components().any(|c| c.as_os_str().to_string_lossy().starts_with(['.', '_']));
        let matches = pattern.as_deref().is_none_or(|p| glob_match(p, &relative.to_string_lossy()));
        PARQUET.contains(&ext.as_str()) && !hidden && matches
    });
    files.sort();
    if files.is_empty() {
        return Err(Error::format(Path::new(input), "no Parquet files (.parquet, .pq, .geoparquet) here"));
    }
    Ok(files)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else {
            let relative = path.strip_prefix(root).expect("walked from the root").to_path_buf();
            out.push((path, relative));
        }
    }
    Ok(())
}

/// `*` matches within one path segment, `**` any number of segments, `?` one character.
fn glob_match(pattern: &str, path: &str) -> bool {
    fn segments(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (None, None) => true,
            (Some(&"**"), _) => segments(&pattern[1..], path) || (!path.is_empty() && segments(pattern, &path[1..])),
            (Some(p), Some(s)) => segment(p.as_bytes(), s.as_bytes()) && segments(&pattern[1..], &path[1..]),
            _ => false,
        }
    }
    fn segment(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => segment(&p[1..], s) || (!s.is_empty() && segment(p, &s[1..])),
            (Some(b'?'), Some(_)) => segment(&p[1..], &s[1..]),
            (Some(a), Some(b)) => a == b && segment(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments(&pattern, &path)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct DatasetSummary {
    /// Files embedded by this run, and their rows.
    pub files: usize,
    pub rows: u64,
    /// Rows written without an embedding (see [`EmbedSummary::nulls`](crate::EmbedSummary)).
    pub nulls: u64,
    /// Why the first of them to be found has no point.
    pub first_null: Option<String>,
    /// Files whose output already existed (finished by an earlier run).
    pub skipped: usize,
}

impl DatasetSummary {
    /// As [`EmbedSummary::nulls_message`](crate::EmbedSummary::nulls_message), for every file.
    pub fn nulls_message(&self) -> Option<String> {
        let summary = crate::EmbedSummary { rows: self.rows, nulls: self.nulls, first_null: self.first_null.clone() };
        summary.nulls_message()
    }
}

/// Embeds every file of the dataset `input` into `output` (a directory) with the same relative
/// paths, `jobs` files at a time. `progress` gets the total rows of the files to do, then rows
/// done.
pub fn embed_dataset(
    encoder: &FeatureEncoder,
    input: &str,
    output: &Path,
    options: &EmbedOptions,
    jobs: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<DatasetSummary> {
    if output.is_file() {
        return Err(Error::format(output, "is a file; the output of a dataset is a directory"));
    }
    let files = dataset_files(input)?;
    let (todo, done): (Vec<_>, Vec<_>) = files.into_iter().partition(|(_, relative)| !output.join(relative).exists());
    let next = AtomicUsize::new(0);
    let rows_done = std::sync::atomic::AtomicU64::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let embedded = AtomicUsize::new(0);
    let nulls = std::sync::atomic::AtomicU64::new(0);
    let first_null: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, todo.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((source, relative)) = todo.get(i) else { break };
                if first_error.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                    break;
                }
                let target = output.join(relative);
                let result = target
                    .parent()
                    .map_or(Ok(()), |dir| std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e)))
                    .and_then(|()| {
                        let mut before = 0;
                        embed_file(encoder, source, &target, options, &mut |p| {
                            if let Progress::Done(n) = p {
                                let total = rows_done.fetch_add(n - before, Ordering::SeqCst) + n - before;
                                before = n;
                                progress(Progress::Done(total));
                            }
                        })
                    });
                match result {
                    Ok(summary) => {
                        embedded.fetch_add(1, Ordering::SeqCst);
                        nulls.fetch_add(summary.nulls, Ordering::SeqCst);
                        if let Some(why) = summary.first_null {
                            first_null.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(why);
                        }
                    }
                    Err(e) => {
                        first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(DatasetSummary {
        files: embedded.into_inner(),
        rows: rows_done.into_inner(),
        nulls: nulls.into_inner(),
        first_null: first_null.into_inner().unwrap_or_else(|e| e.into_inner()),
        skipped: done.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*.parquet", "a.parquet"));
        assert!(!glob_match("*.parquet", "year=2024/a.parquet"));
        assert!(glob_match("year=*/*.parquet", "year=2024/a.parquet"));
        assert!(glob_match("**/*.parquet", "a/b/c.parquet"));
        assert!(glob_match("**/*.parquet", "c.parquet"));
        assert!(glob_match("part-?.pq", "part-1.pq"));
        assert!(!glob_match("part-?.pq", "part-10.pq"));
    }
}
