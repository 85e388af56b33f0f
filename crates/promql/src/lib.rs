//! Hearth's PromQL engine.
//!
//! Parsing is `promql-parser`'s; evaluation is ours, with Prometheus 3
//! semantics, against [`hearth_storage_api::Queryable`] only. [`value`] holds
//! the engine's value types (scalars, instant vectors, range vectors,
//! strings), shaped so that native histograms slot in beside floats.
//!
//! A query goes through [`engine`]: parse (retrying with duration
//! expressions and `anchored`/`smoothed` rewritten when the parser refuses
//! them), fetch every selector's series once through `Queryable::select`
//! over the widest range it needs, then evaluate synchronously step by step
//! (`eval`: selectors, lookback, staleness, `offset`, `@`, subqueries;
//! `binary`, `aggregate`, `functions`, `info`, `range_modifiers`). Delayed
//! `__name__` removal is a per-sample flag applied when a step's result is
//! final.

mod aggregate;
mod binary;
mod duration_expr;
pub mod engine;
pub mod error;
mod eval;
mod functions;
mod info;
mod range_modifiers;
pub mod value;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use engine::{Engine, EngineOptions, QueryResult};
pub use error::{Error, Result};
pub use value::{FPoint, FloatHistogram, HPoint, Sample, Series, Value};
