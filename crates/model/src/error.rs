//! Errors of the data model: invalid names, regexes and chunk bytes.

/// What went wrong while building or decoding a model value.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("invalid regular expression {pattern:?}: {reason}")]
    InvalidRegex { pattern: String, reason: String },
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    #[error("corrupt chunk: {0}")]
    CorruptChunk(String),
    #[error("chunk is full: {0}")]
    ChunkFull(String),
    #[error("unsupported chunk encoding {0}")]
    UnsupportedEncoding(u8),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
