//! Hearth's data model: the vocabulary every other crate speaks.
//!
//! Label sets, label matchers with Prometheus's regex semantics, samples
//! (with the stale-NaN marker), and the chunk encodings of the TSDB format.
//! This crate does no I/O and has no async code.

pub mod chunkenc;
pub mod error;
pub mod labels;
pub mod matcher;
pub mod sample;

pub use error::{Error, Result};
pub use labels::{Label, Labels, LabelsBuilder};
pub use matcher::{MatchOp, Matcher};
pub use sample::{is_stale_nan, Sample, NORMAL_NAN_BITS, STALE_NAN, STALE_NAN_BITS};

/// Milliseconds since the Unix epoch, the unit of every timestamp in Hearth.
pub type Timestamp = i64;

/// The label name that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";
