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
        Self::Format { path: path.to_path_buf(), message: message.into() }
    }

    pub fn model(path: &Path, source: satclip_core::Error) -> Self {
        Self::Model { path: path.to_path_buf(), cause: source }
    }

    pub fn row(path: &Path, row: u64, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Row { path: path.to_path_buf(), row, field: field.into(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
