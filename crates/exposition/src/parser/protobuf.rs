//! The protobuf exposition format (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`): a stream
//! of `MetricFamily` messages, each prefixed by its length as a uvarint.
//!
//! [`ProtoReader`] decodes one family at a time and expands it into the
//! entries the text format gives for the same metrics, as Prometheus's
//! `ProtobufParser` does: HELP, UNIT and TYPE of the family, then per metric
//! the sample series. Counters keep the family name (`foo_total` when the
//! exporter named the family so, as client libraries do; no `_total` is
//! added and no `_created` series is made); summaries become
//! `name{quantile=…}`, `name_sum`, `name_count`; histograms and gauge
//! histograms `name_bucket{le=…}` (with an `le="+Inf"` bucket equal to the
//! count when the exposed buckets end below +Inf), `name_sum`, `name_count`.
//! `le` and `quantile` are in Prometheus's canonical float form (`1.0`).
//!
//! Native histograms are not ingested: their native parts (schema, spans,
//! deltas, zero bucket, native exemplars) are ignored and every histogram
//! gives its classic series, as Prometheus 3 does with native histograms
//! disabled. For a histogram with native buckets only that is `le="+Inf"`,
//! `_sum` and `_count`: the series the text format exposes for it.
//!
//! A series has no text to cache by, so each gets a key made of its name and
//! labels as exposed (see [`ProtoReader::next`]); its [`Labels`] are built
//! only when asked for, so that a cached series costs no label work.

use std::borrow::Cow;

use hearth_model::{Labels, METRIC_NAME, NORMAL_NAN_BITS};
use hearth_proto::client;
use prost::Message;

use super::Parsed;
use crate::entry::{Entry, Exemplar, MetricType, RawSeries};
use crate::error::{Error, Result};
use crate::float::write_openmetrics_float;

/// Prometheus reads the length prefix as a uvarint of at most 5 bytes
/// (`binary.MaxVarintLen32`); longer prefixes are invalid.
const MAX_LENGTH_PREFIX_BYTES: usize = 5;

/// The first byte of every series key, and the separator between the name
/// and label parts of a key. It never occurs in UTF-8, so a key cannot equal
/// a text-format series text (which starts with a name or `{`) or another
/// key of different labels.
const KEY_SEPARATOR: u8 = 0xFF;
/// Marks the `le`/`quantile` bound at the end of a key, given as the bits of
/// the float. Not UTF-8 either.
const KEY_BOUND: u8 = 0xFE;

/// One series of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The one value of a counter, gauge or untyped metric.
    Value,
    /// The summary quantile at this index.
    Quantile(usize),
    /// The classic histogram bucket at this index.
    Bucket(usize),
    /// The `le="+Inf"` bucket added when the exposed buckets lack it.
    InfBucket,
    Sum,
    Count,
}

/// What a [`Part`] becomes: the suffix of its name, its `le`/`quantile`
/// label, its value and its exemplar.
#[derive(Debug)]
struct PartSeries<'m> {
    suffix: &'static str,
    bound: Option<(&'static str, f64)>,
    value: f64,
    exemplar: Option<&'m client::Exemplar>,
}

/// Where the reader is in the current family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the next family's length prefix.
    Family,
    Help,
    Unit,
    Type,
    /// At part `part` of metric `metric`.
    Series {
        metric: usize,
        part: usize,
    },
}

/// Reads a protobuf exposition family by family; see the module
/// documentation.
#[derive(Debug)]
pub(super) struct ProtoReader<'a> {
    input: &'a [u8],
    /// Where the next family's length prefix starts.
    pos: usize,
    /// Where the current family's length prefix started, for errors.
    family_start: usize,
    family: client::MetricFamily,
    metric_type: MetricType,
    stage: Stage,
    /// The metric and part of the last series returned, whose labels
    /// [`ProtoReader::series_labels`] builds.
    last: Option<(usize, Part)>,
}

impl<'a> ProtoReader<'a> {
    pub(super) fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            family_start: 0,
            family: client::MetricFamily::default(),
            metric_type: MetricType::Unknown,
            stage: Stage::Family,
            last: None,
        }
    }

    /// Bytes consumed so far: the families read.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// The next entry, `None` after the last family. A series comes with a
    /// key standing for its text: `0xFF`, the name with its suffix, each
    /// exposed label as `0xFF name 0xFF value`, and for a bucket or
    /// quantile `0xFE` and the bound's bits. Names and values are UTF-8, so
    /// the key determines the labels, as the series text does in the text
    /// format (Prometheus's protobuf parser keys its cache the same way).
    pub(super) fn next(&mut self) -> Result<Option<Parsed<'a>>> {
        self.last = None;
        loop {
            match self.stage {
                Stage::Family => {
                    if !self.read_family()? {
                        return Ok(None);
                    }
                    self.stage = Stage::Help;
                }
                Stage::Help => {
                    self.stage = Stage::Unit;
                    if let Some(help) = self.family.help.as_deref().filter(|h| !h.is_empty()) {
                        return Ok(Some(Parsed::Entry(Entry::Help {
                            family: Cow::Owned(self.name().to_string()),
                            text: Cow::Owned(help.to_string()),
                        })));
                    }
                }
                Stage::Unit => {
                    self.stage = Stage::Type;
                    if let Some(unit) = self.family.unit.as_deref().filter(|u| !u.is_empty()) {
                        return Ok(Some(Parsed::Entry(Entry::Unit {
                            family: Cow::Owned(self.name().to_string()),
                            unit: Cow::Owned(unit.to_string()),
                        })));
                    }
                }
                Stage::Type => {
                    self.stage = Stage::Series { metric: 0, part: 0 };
                    return Ok(Some(Parsed::Entry(Entry::Type {
                        family: Cow::Owned(self.name().to_string()),
                        metric_type: self.metric_type,
                    })));
                }
                Stage::Series { metric, part } => {
                    let Some(m) = self.family.metric.get(metric) else {
                        self.stage = Stage::Family;
                        continue;
                    };
                    let Some(p) = part_at(self.metric_type, m, part) else {
                        self.stage = Stage::Series {
                            metric: metric + 1,
                            part: 0,
                        };
                        continue;
                    };
                    self.stage = Stage::Series {
                        metric,
                        part: part + 1,
                    };
                    let series = self.raw_series(m, p)?;
                    self.last = Some((metric, p));
                    return Ok(Some(Parsed::Series(series)));
                }
            }
        }
    }

    /// The labels of the last series returned: `__name__`, the metric's
    /// labels and its `le`/`quantile`, sorted, empty values dropped. Fails on
    /// an empty or repeated label name (a `__name__` label included), as
    /// Prometheus does.
    pub(super) fn series_labels(&mut self) -> Result<Labels> {
        let Some((metric, part)) = self.last.take() else {
            return Err(Error::NoSeries);
        };
        let m = self.family.metric.get(metric).ok_or(Error::NoSeries)?;
        let series = describe(self.metric_type, m, part);
        let name = format!("{}{}", self.name(), series.suffix);
        let mut bound = String::new();
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(m.label.len() + 2);
        pairs.push((METRIC_NAME, &name));
        pairs.extend(m.label.iter().map(label_pair));
        if let Some((label, value)) = series.bound {
            write_openmetrics_float(&mut bound, value);
            pairs.push((label, &bound));
        }
        build_labels(pairs).map_err(|problem| self.error(format!("metric {name:?}: {problem}")))
    }

    /// Decodes the next non-empty family into `self.family`; `false` at the
    /// end of the input.
    fn read_family(&mut self) -> Result<bool> {
        loop {
            if self.pos >= self.input.len() {
                return Ok(false);
            }
            self.family_start = self.pos;
            let (length, prefix) = self.length_prefix()?;
            let start = self.pos + prefix;
            let available = self.input.len() - start;
            if length > available as u64 {
                return Err(self.error(format!(
                    "insufficient length of buffer, expected at least {} bytes, got {} bytes",
                    (prefix as u64).saturating_add(length),
                    self.input.len() - self.pos
                )));
            }
            // `length <= available`, a usize.
            let end = start + length as usize;
            self.family = client::MetricFamily::decode(&self.input[start..end])
                .map_err(|e| self.error(e.to_string()))?;
            self.pos = end;
            // Prometheus skips families without metrics, metadata included.
            if self.family.metric.is_empty() {
                continue;
            }
            self.metric_type = self.check_family()?;
            return Ok(true);
        }
    }

    /// The uvarint at `pos` and its length in bytes.
    fn length_prefix(&self) -> Result<(u64, usize)> {
        let rest = &self.input[self.pos..];
        let mut length = 0u64;
        for (i, &byte) in rest.iter().take(MAX_LENGTH_PREFIX_BYTES).enumerate() {
            length |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok((length, i + 1));
            }
        }
        Err(self.error(if rest.len() < MAX_LENGTH_PREFIX_BYTES {
            "truncated varint length prefix".to_string()
        } else {
            format!("invalid varint length prefix: longer than {MAX_LENGTH_PREFIX_BYTES} bytes")
        }))
    }

    /// Prometheus's checks of a family before its entries: a name, a known
    /// type, and a unit that is a `_`-separated suffix of the name (before
    /// `_total` for a counter). Returns the family's type.
    fn check_family(&self) -> Result<MetricType> {
        let name = self.name();
        if name.is_empty() {
            return Err(self.error("invalid metric name \"\"".to_string()));
        }
        let type_number = self.family.r#type.unwrap_or_default();
        let family_type = match client::MetricType::try_from(type_number) {
            Ok(t) => metric_type(t),
            Err(_) => {
                return Err(self.error(format!(
                    "unknown metric type {type_number} for metric {name:?}"
                )))
            }
        };
        let unit = self.family.unit.as_deref().unwrap_or_default();
        if !unit.is_empty() {
            let base = match family_type {
                MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            let fits = base
                .strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_'));
            if !fits {
                return Err(self.error(format!("unit {unit:?} not a suffix of metric {name:?}")));
            }
        }
        Ok(family_type)
    }

    /// The series of part `part` of metric `m`, its labels not built.
    fn raw_series(&self, m: &client::Metric, part: Part) -> Result<RawSeries<'a>> {
        let series = describe(self.metric_type, m, part);
        let exemplar = match series.exemplar {
            Some(e) => Some(self.exemplar(e)?),
            None => None,
        };
        Ok(RawSeries {
            text: Cow::Owned(self.key(m, &series)),
            value: normal_nan(series.value),
            // Prometheus reads a zero timestamp as none.
            timestamp: m.timestamp_ms.filter(|&t| t != 0),
            exemplar,
            metric_type: self.metric_type,
        })
    }

    /// The series key; see [`ProtoReader::next`].
    fn key(&self, m: &client::Metric, series: &PartSeries<'_>) -> Vec<u8> {
        let name = self.name();
        let labels: usize = m.label.iter().map(|l| label_pair(l).0.len() + 2).sum();
        let mut key = Vec::with_capacity(1 + name.len() + series.suffix.len() + labels + 16);
        key.push(KEY_SEPARATOR);
        key.extend_from_slice(name.as_bytes());
        key.extend_from_slice(series.suffix.as_bytes());
        for l in &m.label {
            let (label, value) = label_pair(l);
            key.push(KEY_SEPARATOR);
            key.extend_from_slice(label.as_bytes());
            key.push(KEY_SEPARATOR);
            key.extend_from_slice(value.as_bytes());
        }
        if let Some((_, bound)) = series.bound {
            key.push(KEY_BOUND);
            key.extend_from_slice(&bound.to_bits().to_le_bytes());
        }
        key
    }

    /// An exemplar as the text formats give it: sorted labels, the normal
    /// NaN, the timestamp in milliseconds (`seconds * 1000 + nanos / 1e6`, as
    /// Prometheus computes it).
    fn exemplar(&self, e: &client::Exemplar) -> Result<Exemplar> {
        let labels = build_labels(e.label.iter().map(label_pair).collect())
            .map_err(|problem| self.error(format!("exemplar of {:?}: {problem}", self.name())))?;
        Ok(Exemplar {
            labels,
            value: normal_nan(e.value.unwrap_or_default()),
            timestamp: e.timestamp.as_ref().map(|t| {
                t.seconds
                    .saturating_mul(1000)
                    .saturating_add(i64::from(t.nanos / 1_000_000))
            }),
        })
    }

    fn name(&self) -> &str {
        self.family.name.as_deref().unwrap_or_default()
    }

    fn error(&self, message: String) -> Error {
        Error::Protobuf {
            offset: self.family_start,
            message,
        }
    }
}

/// The type of a family in this crate's terms (`UNTYPED` is `Unknown`).
fn metric_type(t: client::MetricType) -> MetricType {
    match t {
        client::MetricType::Counter => MetricType::Counter,
        client::MetricType::Gauge => MetricType::Gauge,
        client::MetricType::Summary => MetricType::Summary,
        client::MetricType::Untyped => MetricType::Unknown,
        client::MetricType::Histogram => MetricType::Histogram,
        client::MetricType::GaugeHistogram => MetricType::GaugeHistogram,
    }
}

/// The `index`-th series of metric `m` in a family of type `metric_type`,
/// in the order the text format exposes them: the value; or the quantiles,
/// sum and count; or the buckets (+Inf added when missing), sum and count.
fn part_at(metric_type: MetricType, m: &client::Metric, index: usize) -> Option<Part> {
    match metric_type {
        MetricType::Summary => {
            let quantiles = m.summary.as_ref().map_or(0, |s| s.quantile.len());
            let rest = index.checked_sub(quantiles);
            match rest {
                None => Some(Part::Quantile(index)),
                Some(0) => Some(Part::Sum),
                Some(1) => Some(Part::Count),
                Some(_) => None,
            }
        }
        MetricType::Histogram | MetricType::GaugeHistogram => {
            let buckets = m.histogram.as_ref().map_or(&[][..], |h| &h.bucket[..]);
            let has_inf = buckets
                .last()
                .is_some_and(|b| b.upper_bound.unwrap_or_default() == f64::INFINITY);
            let Some(rest) = index.checked_sub(buckets.len()) else {
                return Some(Part::Bucket(index));
            };
            let rest = if has_inf { rest + 1 } else { rest };
            match rest {
                0 => Some(Part::InfBucket),
                1 => Some(Part::Sum),
                2 => Some(Part::Count),
                _ => None,
            }
        }
        _ => (index == 0).then_some(Part::Value),
    }
}

/// What part `part` of metric `m` is. Missing fields read as zero, as
/// protobuf's defaults.
fn describe(metric_type: MetricType, m: &client::Metric, part: Part) -> PartSeries<'_> {
    let plain = |value: f64| PartSeries {
        suffix: "",
        bound: None,
        value,
        exemplar: None,
    };
    let summary = m.summary.as_ref();
    let histogram = m.histogram.as_ref();
    let is_summary = metric_type == MetricType::Summary;
    match part {
        Part::Value => match metric_type {
            MetricType::Counter => {
                let counter = m.counter.as_ref();
                PartSeries {
                    exemplar: counter.and_then(|c| c.exemplar.as_ref()),
                    ..plain(counter.and_then(|c| c.value).unwrap_or_default())
                }
            }
            MetricType::Gauge => plain(m.gauge.as_ref().and_then(|g| g.value).unwrap_or_default()),
            _ => plain(m.untyped.as_ref().and_then(|u| u.value).unwrap_or_default()),
        },
        Part::Quantile(i) => {
            let q = summary.and_then(|s| s.quantile.get(i));
            PartSeries {
                bound: Some(("quantile", q.and_then(|q| q.quantile).unwrap_or_default())),
                ..plain(q.and_then(|q| q.value).unwrap_or_default())
            }
        }
        Part::Bucket(i) => {
            let b = histogram.and_then(|h| h.bucket.get(i));
            let count = b.map_or(0.0, |b| {
                count_of(b.cumulative_count_float, b.cumulative_count)
            });
            PartSeries {
                suffix: "_bucket",
                bound: Some(("le", b.and_then(|b| b.upper_bound).unwrap_or_default())),
                value: count,
                exemplar: b.and_then(|b| b.exemplar.as_ref()),
            }
        }
        Part::InfBucket => PartSeries {
            suffix: "_bucket",
            bound: Some(("le", f64::INFINITY)),
            ..plain(histogram_count(histogram))
        },
        Part::Sum => PartSeries {
            suffix: "_sum",
            ..plain(if is_summary {
                summary.and_then(|s| s.sample_sum).unwrap_or_default()
            } else {
                histogram.and_then(|h| h.sample_sum).unwrap_or_default()
            })
        },
        Part::Count => PartSeries {
            suffix: "_count",
            ..plain(if is_summary {
                summary.and_then(|s| s.sample_count).unwrap_or_default() as f64
            } else {
                histogram_count(histogram)
            })
        },
    }
}

/// A histogram's count: the float count unless it is zero, else the integer
/// one (Prometheus's rule for `sample_count_float`).
fn histogram_count(h: Option<&client::Histogram>) -> f64 {
    h.map_or(0.0, |h| count_of(h.sample_count_float, h.sample_count))
}

fn count_of(float: Option<f64>, integer: Option<u64>) -> f64 {
    match float {
        Some(f) if f != 0.0 => f,
        _ => integer.unwrap_or_default() as f64,
    }
}

fn label_pair(l: &client::LabelPair) -> (&str, &str) {
    (
        l.name.as_deref().unwrap_or_default(),
        l.value.as_deref().unwrap_or_default(),
    )
}

/// Sorted labels from exposed pairs, empty values dropped; an error names an
/// empty or repeated label name.
fn build_labels(mut pairs: Vec<(&str, &str)>) -> Result<Labels, String> {
    if pairs.iter().any(|(name, _)| name.is_empty()) {
        return Err("invalid label name \"\"".to_string());
    }
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("label name {:?} is not unique", w[0].0));
    }
    Ok(Labels::from_sorted(
        pairs.into_iter().filter(|(_, value)| !value.is_empty()),
    ))
}

/// Any NaN as the normal NaN, so no exposition can forge a stale marker.
fn normal_nan(v: f64) -> f64 {
    if v.is_nan() {
        f64::from_bits(NORMAL_NAN_BITS)
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(bounds: &[f64]) -> client::Metric {
        client::Metric {
            histogram: Some(client::Histogram {
                bucket: bounds
                    .iter()
                    .map(|&b| client::Bucket {
                        upper_bound: Some(b),
                        ..client::Bucket::default()
                    })
                    .collect(),
                ..client::Histogram::default()
            }),
            ..client::Metric::default()
        }
    }

    fn parts(metric_type: MetricType, m: &client::Metric) -> Vec<Part> {
        (0..)
            .map_while(|i| part_at(metric_type, m, i))
            .collect::<Vec<_>>()
    }

    #[test]
    fn histograms_get_an_inf_bucket_only_when_it_is_missing() {
        use Part::*;
        let h = MetricType::Histogram;
        assert_eq!(
            parts(h, &histogram(&[1.0])),
            [Bucket(0), InfBucket, Sum, Count]
        );
        assert_eq!(
            parts(h, &histogram(&[1.0, f64::INFINITY])),
            [Bucket(0), Bucket(1), Sum, Count]
        );
        assert_eq!(parts(h, &histogram(&[])), [InfBucket, Sum, Count]);
        assert_eq!(
            parts(h, &client::Metric::default()),
            [InfBucket, Sum, Count]
        );
        assert_eq!(
            parts(MetricType::Summary, &client::Metric::default()),
            [Sum, Count]
        );
        assert_eq!(parts(MetricType::Gauge, &histogram(&[1.0])), [Value]);
    }

    #[test]
    fn keys_differ_by_part_and_bound() {
        let family = client::MetricFamily {
            name: Some("h".into()),
            r#type: Some(client::MetricType::Histogram as i32),
            metric: vec![histogram(&[0.5, 1.0])],
            ..client::MetricFamily::default()
        };
        let body = family.encode_length_delimited_to_vec();
        let mut reader = ProtoReader::new(&body);
        let mut keys = Vec::new();
        while let Some(parsed) = reader.next().expect("valid family") {
            if let Parsed::Series(s) = parsed {
                assert_eq!(s.text[0], KEY_SEPARATOR);
                keys.push(s.text.into_owned());
            }
        }
        assert_eq!(keys.len(), 5);
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
    }

    #[test]
    fn labels_reject_empty_and_repeated_names() {
        assert_eq!(
            build_labels(vec![("b", "1"), ("a", ""), ("c", "3")]).expect("valid"),
            Labels::new([("b", "1"), ("c", "3")])
        );
        assert!(build_labels(vec![("", "1")]).is_err());
        assert!(build_labels(vec![("a", "1"), ("b", "2"), ("a", "")]).is_err());
    }
}
