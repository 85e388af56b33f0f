//! The crate's error type: every failure carries what was being done and on
//! which object, block or local path.

use std::path::PathBuf;

use ulid::Ulid;

/// Errors of bucket configuration, object operations, block upload and
/// download, and the shipper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The objstore YAML is invalid; the message names the field.
    #[error("bucket config: {0}")]
    Config(String),
    /// An object operation failed (after retries, for transient errors).
    #[error("{operation} {path}: {source}")]
    Object {
        operation: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// A local file or directory could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `meta.json`, marker or state file could not be parsed or is
    /// invalid.
    #[error("invalid {what} {path}: {message}")]
    Invalid {
        what: &'static str,
        path: String,
        message: String,
    },
    /// A block could not be uploaded, downloaded or marked.
    #[error("{action} block {id}: {message}")]
    Block {
        action: &'static str,
        id: Ulid,
        message: String,
    },
    /// Some blocks failed to upload during a shipper sync; the others were
    /// shipped and the failed ones are retried at the next sync.
    #[error("shipper sync: {failed} of {attempted} blocks failed to upload, first: {first}")]
    Sync {
        failed: usize,
        attempted: usize,
        first: Box<Error>,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether the error is an object that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::Object {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
