//! Errors of exposition parsing and content-type negotiation.
//!
//! Every parse error carries the 1-based line number where it was found and,
//! where a token was expected, what was expected and what was found instead,
//! in the shape of Prometheus's messages (`expected label name, got "="`).
//! A parser stops at its first error: a scrape with one malformed line (or
//! protobuf message) fails as a whole, as in Prometheus.

use crate::float::FloatError;

/// What went wrong while parsing an exposition or choosing its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A token other than the one the grammar requires at this point.
    #[error("line {line}: expected {expected}, got {got} while parsing {context}")]
    Unexpected {
        line: usize,
        /// What the grammar requires, e.g. `label name`.
        expected: &'static str,
        /// The offending input, quoted (`"="`, `"\n"`) or `end of input`.
        got: String,
        /// The line up to and including the offending input, quoted.
        context: String,
    },
    /// A sample or exemplar value that is not a float in Prometheus's grammar.
    #[error("line {line}: invalid {what} {text:?}: {reason}")]
    InvalidFloat {
        line: usize,
        what: &'static str,
        text: String,
        reason: FloatError,
    },
    /// A sample or exemplar timestamp that cannot be read.
    #[error("line {line}: invalid {what} {text:?}: {reason}")]
    InvalidTimestamp {
        line: usize,
        what: &'static str,
        text: String,
        reason: &'static str,
    },
    /// A `# TYPE` line naming a type this format does not have.
    #[error("line {line}: invalid metric type {text:?}")]
    InvalidMetricType { line: usize, text: String },
    /// A label value, quoted name or HELP text that is not valid UTF-8.
    #[error("line {line}: {what} is not valid UTF-8: {text:?}")]
    InvalidUtf8 {
        line: usize,
        what: &'static str,
        text: String,
    },
    /// A quoted metric or label name that is empty.
    #[error("line {line}: empty {what} in {context}")]
    EmptyName {
        line: usize,
        what: &'static str,
        context: String,
    },
    /// A series line without a metric name.
    #[error("line {line}: metric name not set while parsing {context}")]
    MetricNameNotSet { line: usize, context: String },
    /// A series line with two metric names (`foo{"bar"}`, `{"a","b"}`).
    #[error("line {line}: metric name already set while parsing {context}")]
    MetricNameAlreadySet { line: usize, context: String },
    /// The same label name twice in one series or exemplar (including a
    /// `__name__` label beside the metric name).
    #[error("line {line}: label name {name:?} is not unique")]
    DuplicateLabelName { line: usize, name: String },
    /// An OpenMetrics `# UNIT` that is not a `_`-separated suffix of its family.
    #[error("line {line}: unit {unit:?} not a suffix of metric {family:?}")]
    UnitNotSuffix {
        line: usize,
        unit: String,
        family: String,
    },
    /// An OpenMetrics exposition that ends without `# EOF`.
    #[error("line {line}: data does not end with # EOF")]
    MissingEof { line: usize },
    /// Bytes after an OpenMetrics `# EOF` line.
    #[error("line {line}: unexpected data after # EOF")]
    DataAfterEof { line: usize },
    /// A rule of the OpenMetrics specification that Prometheus does not
    /// enforce, reported only by a parser in strict mode.
    #[error("line {line}: {message}")]
    NotConformant { line: usize, message: String },
    /// [`Parser::series_labels`](crate::Parser::series_labels) called when
    /// the last entry was not a series.
    #[error("no series to build labels for")]
    NoSeries,
    /// A protobuf exposition that cannot be read (a length prefix that is
    /// not a uvarint of at most 5 bytes or runs past the end, a message that
    /// does not decode as a `MetricFamily`, a string that is not UTF-8) or
    /// that Prometheus rejects (an empty metric or label name, an unknown
    /// metric type, a unit that is not a suffix of the name, a repeated
    /// label name). Protobuf has no lines: `offset` is where the metric
    /// family's length prefix starts.
    #[error("protobuf exposition, metric family at byte {offset}: {message}")]
    Protobuf { offset: usize, message: String },
    /// A response content type that no parser here can read.
    #[error("unsupported content type {content_type:?}: {reason}")]
    UnsupportedContentType {
        content_type: String,
        reason: String,
    },
}

impl Error {
    /// The 1-based line the error was found on, for parse errors.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Unexpected { line, .. }
            | Error::InvalidFloat { line, .. }
            | Error::InvalidTimestamp { line, .. }
            | Error::InvalidMetricType { line, .. }
            | Error::InvalidUtf8 { line, .. }
            | Error::EmptyName { line, .. }
            | Error::MetricNameNotSet { line, .. }
            | Error::MetricNameAlreadySet { line, .. }
            | Error::DuplicateLabelName { line, .. }
            | Error::UnitNotSuffix { line, .. }
            | Error::MissingEof { line }
            | Error::DataAfterEof { line }
            | Error::NotConformant { line, .. } => Some(*line),
            Error::UnsupportedContentType { .. } | Error::NoSeries | Error::Protobuf { .. } => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
