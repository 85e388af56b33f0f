//! Parsers of the exposition formats Prometheus scrapes: the text format
//! 0.0.4 (with Prometheus 3's quoted UTF-8 names), OpenMetrics 1.0 text, and
//! the protobuf format (length-delimited `io.prometheus.client.MetricFamily`
//! messages, expanded into the entries the text format has for the same
//! metrics; native histograms are read as their classic series).
//!
//! [`Parser`] streams [`Entry`]s out of a byte slice: metadata (`# TYPE`,
//! `# HELP`, `# UNIT`), series with their [`Labels`](hearth_model::Labels),
//! value, timestamp and exemplar, comments and the OpenMetrics `# EOF`. It
//! follows Prometheus's parsers rule for rule (escapes, Go float syntax,
//! timestamp units, the normal NaN, `le`/`quantile` normalisation) and stops
//! at the first malformed line with an [`Error`] carrying its line number.
//! [`negotiate_format`] picks the format from a response's Content-Type.
//!
//! Used by the scraper and by `hearth tools create-blocks-from openmetrics`;
//! the specification is `shared/specs/exposition-format.md`.

pub mod content_type;
mod entry;
pub mod error;
pub mod family;
pub mod float;
mod parser;

pub use content_type::{format_from_content_type, negotiate_format};
pub use entry::{Entry, Exemplar, Format, MetricType, RawEntry, RawSeries};
pub use error::{Error, Result};
pub use family::{belongs_to_family, is_series_part_of_family};
pub use parser::Parser;
