//! What a parser yields: the exposition formats, metric types, and entries
//! (metadata lines, series with their value, timestamp and exemplar, comments
//! and the OpenMetrics end marker).

use std::borrow::Cow;
use std::fmt;

use hearth_model::Labels;

/// An exposition format this crate parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), including
    /// the quoted UTF-8 names of text format 1.0.0 (Prometheus 3).
    Text004,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`; version 0.0.1
    /// is parsed the same way, as Prometheus does).
    OpenMetrics,
    /// The protobuf format (`application/vnd.google.protobuf;
    /// proto=io.prometheus.client.MetricFamily; encoding=delimited`),
    /// expanded into the entries the text format has for the same metrics
    /// (classic histograms only; see the parser's `protobuf` module).
    PrometheusProto,
}

/// The type a `# TYPE` line gives a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    /// OpenMetrics only.
    GaugeHistogram,
    Summary,
    /// OpenMetrics only.
    Info,
    /// OpenMetrics only.
    Stateset,
    /// OpenMetrics `unknown`, text format `untyped`, or no `# TYPE` at all.
    #[default]
    Unknown,
}

impl MetricType {
    /// The OpenMetrics name of the type (`unknown` for untyped), which is
    /// also what Prometheus's metadata API reports.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// The type a `# TYPE` line names in `format`, if the format has it.
    pub fn parse(text: &[u8], format: Format) -> Option<MetricType> {
        Some(match (text, format) {
            (b"counter", _) => MetricType::Counter,
            (b"gauge", _) => MetricType::Gauge,
            (b"histogram", _) => MetricType::Histogram,
            (b"summary", _) => MetricType::Summary,
            (b"untyped", Format::Text004) => MetricType::Unknown,
            (b"unknown", Format::OpenMetrics) => MetricType::Unknown,
            (b"gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            (b"info", Format::OpenMetrics) => MetricType::Info,
            (b"stateset", Format::OpenMetrics) => MetricType::Stateset,
            _ => return None,
        })
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OpenMetrics exemplar attached to a sample after ` # `.
#[derive(Debug, Clone)]
pub struct Exemplar {
    pub labels: Labels,
    /// The exemplar's value; a NaN is always the normal NaN bit pattern.
    pub value: f64,
    /// Milliseconds since the epoch, converted from the exposed seconds as
    /// Prometheus does (`int64(seconds * 1000)`).
    pub timestamp: Option<i64>,
}

/// Exemplars compare values bit for bit.
impl PartialEq for Exemplar {
    fn eq(&self, other: &Self) -> bool {
        self.labels == other.labels
            && self.value.to_bits() == other.value.to_bits()
            && self.timestamp == other.timestamp
    }
}

/// One entry of an exposition, in input order.
///
/// Names and texts borrow from the input unless unescaping changed them.
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    /// `# TYPE <family> <type>`.
    Type {
        family: Cow<'a, str>,
        metric_type: MetricType,
    },
    /// `# HELP <family> <text>`, unescaped by the format's rules; empty when
    /// the line has no text.
    Help {
        family: Cow<'a, str>,
        text: Cow<'a, str>,
    },
    /// OpenMetrics `# UNIT <family> <unit>`; empty when the line has no unit.
    Unit {
        family: Cow<'a, str>,
        unit: Cow<'a, str>,
    },
    /// A sample line.
    Series {
        /// The series' labels including `__name__`, sorted; labels exposed
        /// with an empty value are absent (empty means absent, as stored).
        /// `le` of histogram and `quantile` of summary families are in
        /// canonical float form (`1` → `1.0`), as Prometheus 3 stores them.
        labels: Labels,
        /// The value; any NaN is the normal NaN bit pattern
        /// (`NORMAL_NAN_BITS`), so no input can forge a stale marker.
        value: f64,
        /// Milliseconds since the epoch, when the line has a timestamp.
        timestamp: Option<i64>,
        /// The exemplar after ` # `, OpenMetrics only.
        exemplar: Option<Exemplar>,
        /// The type of the family the series belongs to: the family of the
        /// latest metadata line when the series' name fits it (see
        /// [`crate::belongs_to_family`]), else `Unknown`.
        metric_type: MetricType,
    },
    /// Any other `#` line (text format only): its text after `#` and the
    /// blanks that follow it, raw and unvalidated.
    Comment(&'a [u8]),
    /// OpenMetrics `# EOF`, always the last entry of an OpenMetrics parse.
    Eof,
}

/// Entries compare sample values bit for bit, so NaNs compare equal to
/// themselves and the stale marker differs from the normal NaN.
impl PartialEq for Entry<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Entry::Type {
                    family: a,
                    metric_type: ta,
                },
                Entry::Type {
                    family: b,
                    metric_type: tb,
                },
            ) => a == b && ta == tb,
            (
                Entry::Help {
                    family: a,
                    text: ta,
                },
                Entry::Help {
                    family: b,
                    text: tb,
                },
            ) => a == b && ta == tb,
            (
                Entry::Unit {
                    family: a,
                    unit: ua,
                },
                Entry::Unit {
                    family: b,
                    unit: ub,
                },
            ) => a == b && ua == ub,
            (
                Entry::Series {
                    labels: la,
                    value: va,
                    timestamp: ta,
                    exemplar: ea,
                    metric_type: ma,
                },
                Entry::Series {
                    labels: lb,
                    value: vb,
                    timestamp: tb,
                    exemplar: eb,
                    metric_type: mb,
                },
            ) => la == lb && va.to_bits() == vb.to_bits() && ta == tb && ea == eb && ma == mb,
            (Entry::Comment(a), Entry::Comment(b)) => a == b,
            (Entry::Eof, Entry::Eof) => true,
            _ => false,
        }
    }
}

/// What [`Parser::next_raw`](crate::Parser::next_raw) yields: a sample line
/// whose labels are not built yet, or any other entry.
#[derive(Debug, Clone)]
pub enum RawEntry<'a> {
    Series(RawSeries<'a>),
    /// Never [`Entry::Series`].
    Other(Entry<'a>),
}

/// A sample line as exposed, its labels not built.
#[derive(Debug, Clone)]
pub struct RawSeries<'a> {
    /// The series text: the line from the metric name (or `{`) to the end of
    /// the label block (or of the name), as exposed, borrowed from the input.
    /// The protobuf format has no such text; there it is a key made of the
    /// name and labels as exposed (owned, starting with the byte `0xFF`,
    /// which no text starts with). Either way, the same text in a family of
    /// the same type always gives the same labels.
    pub text: Cow<'a, [u8]>,
    /// As [`Entry::Series`]'s.
    pub value: f64,
    pub timestamp: Option<i64>,
    pub exemplar: Option<Exemplar>,
    pub metric_type: MetricType,
}
