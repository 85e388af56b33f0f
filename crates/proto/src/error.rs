//! Errors of decoding a remote-write request, each mapped to the HTTP status
//! Prometheus answers with.

use crate::remote_write::Rejection;

/// Why a remote-write request (or part of it) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteWriteError {
    /// `Content-Type` names neither remote-write message.
    #[error(
        "unsupported content type {content_type:?}: expected application/x-protobuf \
         with proto=prometheus.WriteRequest or proto=io.prometheus.write.v2.Request"
    )]
    UnsupportedContentType { content_type: String },

    /// `Content-Encoding` is set to something other than snappy.
    #[error("unsupported content encoding {encoding:?}: only snappy is accepted")]
    UnsupportedEncoding { encoding: String },

    /// The compressed body is over the limit (normally checked by the HTTP
    /// layer while reading the body).
    #[error("request body of {size} bytes is over the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },

    /// The snappy header announces a decoded size over the limit; nothing was
    /// allocated for it.
    #[error("snappy header announces {announced} decoded bytes, over the limit of {limit} bytes")]
    DecodedTooLarge { announced: u64, limit: usize },

    /// The snappy block ends before the data its header or elements announce.
    #[error("decompress snappy body: truncated input: {source}")]
    SnappyTruncated { source: snap::Error },

    /// The body is not a snappy block (bad header, bad copy offset, ...).
    #[error("decompress snappy body: {source}")]
    SnappyCorrupt { source: snap::Error },

    /// The decompressed bytes are not a valid protobuf `message`.
    #[error("decode {message} protobuf: {source}")]
    Protobuf {
        message: &'static str,
        source: prost::DecodeError,
    },

    /// The request decoded but some of it is refused: invalid 2.0 series, or
    /// native histograms under [`HistogramPolicy::Reject`]. See
    /// [`DecodedWrite::rejection`] for what may still be written.
    ///
    /// [`HistogramPolicy::Reject`]: crate::remote_write::HistogramPolicy::Reject
    /// [`DecodedWrite::rejection`]: crate::remote_write::DecodedWrite::rejection
    #[error("{0}")]
    Rejected(Rejection),
}

impl RemoteWriteError {
    /// The HTTP status a receiver answers with: 415 for an unsupported
    /// content type or encoding, 413 for an oversized body, 400 otherwise.
    /// All of them tell the sender not to retry.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UnsupportedContentType { .. } | Self::UnsupportedEncoding { .. } => 415,
            Self::BodyTooLarge { .. } => 413,
            Self::DecodedTooLarge { .. }
            | Self::SnappyTruncated { .. }
            | Self::SnappyCorrupt { .. }
            | Self::Protobuf { .. }
            | Self::Rejected(_) => 400,
        }
    }
}

pub type Result<T, E = RemoteWriteError> = std::result::Result<T, E>;
