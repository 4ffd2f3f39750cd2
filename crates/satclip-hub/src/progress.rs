//! How a download shows itself. Downloads are never silent: [`ConsoleProgress`] says on stderr what
//! is fetched, from where, its size and where it goes, and draws a bar when stderr is a terminal.

use std::path::Path;

use indicatif::{DecimalBytes, ProgressBar, ProgressStyle};

use crate::HubFile;

/// One transfer about to start.
pub struct Download<'a> {
    pub file: &'a HubFile,
    /// Where the bytes come from (after the Hub's redirect to its storage).
    pub url: &'a str,
    pub size: u64,
    /// Bytes an earlier, interrupted transfer left; the rest is requested.
    pub resumed_from: u64,
    pub destination: &'a Path,
}

pub trait Progress {
    fn start(&mut self, download: &Download);
    fn advance(&mut self, bytes: u64);
    fn finish(&mut self);
    /// Something the user should know that is not a transfer (waiting on a lock, using the cache
    /// while the Hub is unreachable).
    fn note(&mut self, message: &str);
}

/// Lines on stderr and a progress bar.
#[derive(Default)]
pub struct ConsoleProgress {
    bar: Option<ProgressBar>,
}

impl Progress for ConsoleProgress {
    fn start(&mut self, d: &Download) {
        let resumed = if d.resumed_from > 0 {
            format!(", resuming after {}", DecimalBytes(d.resumed_from))
        } else {
            String::new()
        };
        eprintln!(
            "downloading {} ({}{resumed})\n  from {}\n  into {}",
            d.file,
            DecimalBytes(d.size),
            d.url,
            d.destination.display()
        );
        let bar = ProgressBar::new(d.size).with_position(d.resumed_from);
        bar.set_style(
            ProgressStyle::with_template("  {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("the template is valid"),
        );
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn note(&mut self, message: &str) {
        eprintln!("{message}");
    }
}

/// Says nothing (for callers that report downloads themselves).
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &Download) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
    fn note(&mut self, _: &str) {}
}
