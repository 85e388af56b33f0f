//! Errors of the store gateway: bucket failures, damaged blocks, local disk
//! failures and bad requests, each naming the block or path involved, and
//! their mapping to the storage contract's error kinds.

use std::path::PathBuf;

use ulid::Ulid;

/// What can go wrong while syncing blocks or answering a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bucket operation failed (after the bucket client's retries).
    /// Boxed: the bucket error is large and this enum travels in every
    /// `Result` of the crate.
    #[error("{action}: {source}")]
    Bucket {
        action: String,
        #[source]
        source: Box<hearth_objstore::Error>,
    },
    /// A block's files are damaged: unreadable `meta.json`, an index that
    /// does not parse, missing or truncated chunk segments, a bad CRC.
    #[error("corrupt block {block}: {reason}")]
    CorruptBlock { block: Ulid, reason: String },
    /// The local index-header directory could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The request cannot be answered as asked (e.g. only external-label
    /// matchers).
    #[error("{0}")]
    BadRequest(String),
    /// Anything else (a failed background task).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn bucket(action: impl Into<String>) -> impl FnOnce(hearth_objstore::Error) -> Self {
        let action = action.into();
        move |source| Error::Bucket {
            action,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn corrupt(block: Ulid, reason: impl Into<String>) -> Self {
        Error::CorruptBlock {
            block,
            reason: reason.into(),
        }
    }

    /// Maps a TSDB error met while reading block `block`: damaged data
    /// becomes [`Error::CorruptBlock`], the rest stays an internal error.
    pub(crate) fn from_tsdb(block: Ulid, e: hearth_tsdb::Error) -> Self {
        match e {
            hearth_tsdb::Error::Corrupt(reason) => Error::corrupt(block, reason),
            hearth_tsdb::Error::CorruptBlock { reason, .. } => Error::corrupt(block, reason),
            hearth_tsdb::Error::Model(m) => Error::corrupt(block, m.to_string()),
            hearth_tsdb::Error::Io { op, path, source } => Error::Io {
                action: op,
                path,
                source,
            },
            other => Error::Internal(format!("block {block}: {other}")),
        }
    }

    /// Whether the error says the block's data is damaged (as opposed to
    /// the bucket or the disk being unavailable right now).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::CorruptBlock { .. })
    }
}

impl From<Error> for hearth_storage_api::Error {
    fn from(e: Error) -> Self {
        use hearth_storage_api::Error as E;
        match e {
            Error::BadRequest(m) => E::BadRequest(m),
            e @ Error::CorruptBlock { .. } => E::Corrupt(e.to_string()),
            e @ Error::Bucket { .. } => E::Unavailable(e.to_string()),
            e => E::Internal(e.to_string()),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
