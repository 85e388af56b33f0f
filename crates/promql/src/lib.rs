//! Hearth's PromQL engine.
//!
//! Parsing is `promql-parser`'s; evaluation is ours, with Prometheus 3
//! semantics, against [`hearth_storage_api::Queryable`] only. [`value`] holds
//! the engine's value types (scalars, instant vectors, range vectors,
//! strings), shaped so that native histograms slot in beside floats.

pub mod error;
pub mod value;

pub use error::{Error, Result};
pub use value::{FPoint, FloatHistogram, HPoint, Sample, Series, Value};
