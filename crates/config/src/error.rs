//! Errors of loading a configuration file: reading it, its YAML, and its
//! validation, with Prometheus's messages.

use std::path::PathBuf;

/// What went wrong while loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An error in the file named by `path`, as Prometheus words it
    /// (`parsing YAML file prometheus.yml: ...`).
    #[error("parsing YAML file {}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// Malformed YAML, a value of the wrong type or an unknown field; the
    /// message carries the line and column.
    #[error("{0}")]
    Yaml(String),
    /// A well-formed value that Prometheus rejects (a bad duration, a timeout
    /// above its interval, a relabel rule without its target label, ...).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The message without the file name, for tests and API answers.
    pub fn message(&self) -> String {
        match self {
            Error::InFile { source, .. } => source.message(),
            other => other.to_string(),
        }
    }
}
