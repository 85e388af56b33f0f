//! Errors of the TSDB: I/O with the path involved, corrupt files, and the
//! per-sample append errors Prometheus defines.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("corrupt block {block}: {reason}")]
    CorruptBlock { block: String, reason: String },
    #[error(transparent)]
    Model(#[from] hearth_model::Error),
    #[error("out of bounds")]
    OutOfBounds,
    #[error("out of order sample")]
    OutOfOrderSample,
    #[error("duplicate sample for timestamp")]
    DuplicateSampleForTimestamp,
    #[error("too old sample")]
    TooOldSample,
    #[error("invalid series {series}: {reason}")]
    InvalidSeries { series: String, reason: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("database is closed")]
    Closed,
}

impl Error {
    /// An I/O error while doing `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// Whether this is a per-sample rejection (the client's fault), as
    /// opposed to a storage failure.
    pub fn is_sample_rejection(&self) -> bool {
        matches!(
            self,
            Error::OutOfBounds
                | Error::OutOfOrderSample
                | Error::DuplicateSampleForTimestamp
                | Error::TooOldSample
                | Error::InvalidSeries { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
