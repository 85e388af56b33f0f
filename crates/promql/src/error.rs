//! Errors of query evaluation, classified as the HTTP API reports them.

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The query does not parse (`bad_data`, 400); the message carries the
    /// position as Prometheus prints it.
    #[error("{0}")]
    Parse(String),
    /// Evaluation failed (`execution`, 422), e.g. many-to-many matching.
    #[error("{0}")]
    Execution(String),
    /// The query ran out of time (`timeout`, 503).
    #[error("query timed out in {0}")]
    Timeout(String),
    /// The query was canceled (`canceled`).
    #[error("query was canceled in {0}")]
    Canceled(String),
    /// Too many samples loaded (`execution`, 422).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(String),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] hearth_storage_api::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
