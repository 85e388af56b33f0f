//! The engine's values, as Prometheus's `promql` package shapes them: a
//! sample carries a float or a native histogram, a series carries float
//! points and histogram points side by side.

use std::sync::Arc;

use hearth_model::{Labels, Timestamp};

/// A native histogram with float counts (Prometheus's `FloatHistogram`).
/// Stored and evaluated in a later issue; the type is here so that every
/// value can carry one without a change of shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<(i32, u32)>,
    pub positive_buckets: Vec<f64>,
    pub negative_spans: Vec<(i32, u32)>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of custom buckets (schema -53).
    pub custom_values: Vec<f64>,
    pub counter_reset_hint: u8,
}

/// A float point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FPoint {
    pub t: Timestamp,
    pub f: f64,
}

/// A histogram point of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct HPoint {
    pub t: Timestamp,
    pub h: Arc<FloatHistogram>,
}

/// One element of an instant vector: a float, or a histogram when `h` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: Labels,
    pub t: Timestamp,
    pub f: f64,
    pub h: Option<Arc<FloatHistogram>>,
    /// Prometheus 3 drops `__name__` lazily: set when a function or
    /// operator removed the metric name but the label set still carries it.
    pub drop_name: bool,
}

/// One element of a range vector or a range query's matrix.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub metric: Labels,
    pub floats: Vec<FPoint>,
    pub histograms: Vec<HPoint>,
    pub drop_name: bool,
}

/// The result of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar {
        t: Timestamp,
        v: f64,
    },
    String {
        t: Timestamp,
        v: String,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector, or a range query's result.
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus's `resultType` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
