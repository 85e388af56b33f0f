//! The querier's errors: a store that failed or timed out under the ABORT
//! strategy, no stores at all, series that cannot be deduplicated, and the
//! discovery of endpoints (files, DNS). Query paths hand them to the API as
//! [`hearth_storage_api::Error`], keeping the failing store's error kind.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store answered with an error.
    #[error("store {store}: {source}")]
    Store {
        store: String,
        source: hearth_storage_api::Error,
    },
    /// A store did not answer within `--store.response-timeout`.
    #[error("store {store}: no answer within {timeout:?}")]
    StoreTimeout { store: String, timeout: Duration },
    /// The store's call panicked or was cancelled.
    #[error("store {store}: call failed: {message}")]
    StoreTask { store: String, message: String },
    /// ABORT strategy and not a single healthy store.
    #[error("no StoreAPIs available")]
    NoStores,
    /// A series' chunks could not be decoded for deduplication.
    #[error("deduplicate series {series}: {message}")]
    Dedup { series: String, message: String },
    /// An endpoint file could not be read.
    #[error("read endpoint file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An endpoint file is not a list of target groups.
    #[error("parse endpoint file {}: {message}", path.display())]
    ParseFile { path: PathBuf, message: String },
    /// An endpoint address is malformed (`dns+` without a port, …).
    #[error("endpoint address {address:?}: {message}")]
    Address { address: String, message: String },
    /// A DNS lookup failed (not an empty answer: those resolve to nothing).
    #[error("resolve {name}: {message}")]
    Dns { name: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for hearth_storage_api::Error {
    /// A store's own error keeps its kind (a bad matcher stays a bad
    /// request); failures to reach stores are "unavailable"; undecodable
    /// chunks are corrupt data.
    fn from(e: Error) -> Self {
        use hearth_storage_api::Error as E;
        let message = e.to_string();
        match e {
            Error::Store { source, .. } => match source {
                E::BadRequest(_) => E::BadRequest(message),
                E::Unavailable(_) => E::Unavailable(message),
                E::Corrupt(_) => E::Corrupt(message),
                E::Internal(_) => E::Internal(message),
                E::Canceled(_) => E::Canceled(message),
            },
            Error::StoreTimeout { .. } | Error::NoStores => E::Unavailable(message),
            Error::Dedup { .. } => E::Corrupt(message),
            _ => E::Internal(message),
        }
    }
}
