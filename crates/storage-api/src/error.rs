//! Errors a storage may answer with, classified so that every API layer can
//! map them to its own status the same way.

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request itself is wrong (bad matcher, bad range).
    #[error("{0}")]
    BadRequest(String),
    /// The storage cannot answer right now; retrying may help.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The storage's data is damaged.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Any other failure inside the storage.
    #[error("{0}")]
    Internal(String),
    /// The query was cancelled or ran out of time.
    #[error("query canceled: {0}")]
    Canceled(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
