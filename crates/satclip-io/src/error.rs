use std::path::{Path, PathBuf};

/// Every error names the file it is about; errors in tabular input also name the row and field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Causes are part of the message, not error sources, so that a reporter that walks the
    // source chain does not print them twice.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{}: {cause}", path.display())]
    Model { path: PathBuf, cause: satclip_core::Error },
    #[error("{}: row {row}, field `{field}`: {message}", path.display())]
    Row { path: PathBuf, row: u64, field: String, message: String },
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), cause: source }
    }

    pub fn format(path: &Path, message: impl Into<String>) -> Self {
        Self::Format { path: path.to_path_buf(), message: printable(message.into()) }
    }

    pub fn model(path: &Path, source: satclip_core::Error) -> Self {
        Self::Model { path: path.to_path_buf(), cause: source }
    }

    pub fn row(path: &Path, row: u64, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Row { path: path.to_path_buf(), row, field: printable(field.into()), message: printable(message.into()) }
    }
}

/// Messages quote the input; control characters in it (NUL, escapes that drive a terminal) are
/// shown escaped, never printed raw.
fn printable(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
