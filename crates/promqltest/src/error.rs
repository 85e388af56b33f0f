//! Errors of reading, parsing and loading promqltest scripts.

use std::path::PathBuf;

/// Why a script, or one of its commands, could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of the script does not follow the script language.
    #[error("line {line}: {msg}")]
    Parse { line: usize, msg: String },
    /// A `load` block could not be stored.
    #[error("line {line}: load: {msg}")]
    Load { line: usize, msg: String },
    /// The script file could not be read.
    #[error("read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
