//! Series descriptions: `<labels> <item> <item> …` as `load` bodies and
//! expected results write them, with the expanding notation (`1+2x10`,
//! `_x3`, `stale`) and native histogram literals (`{{schema:0 sum:5 …}}`).

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_model::{Labels, STALE_NAN};
use hearth_promql::FloatHistogram;

use crate::lex::{parse_duration, parse_float, read_labels};

/// Prometheus's counter-reset hints, as `FloatHistogram::counter_reset_hint`
/// stores them.
pub mod hint {
    pub const UNKNOWN: u8 = 0;
    pub const RESET: u8 = 1;
    pub const NOT_RESET: u8 = 2;
    pub const GAUGE: u8 = 3;
}

/// Schema of native histograms with custom buckets (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A histogram literal with whether it stated its counter-reset hint
/// (comparisons check the hint only then).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue {
    pub h: Arc<FloatHistogram>,
    pub hint_explicit: bool,
}

/// One slot of an expanded sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// `_`: nothing stored, no point expected.
    Omitted,
    /// A float; `stale` is the stale NaN.
    Float(f64),
    Histogram(HistogramValue),
}

/// A parsed series line.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesLine {
    pub labels: Labels,
    pub slots: Vec<Slot>,
}

impl SeriesLine {
    /// Whether any slot is a native histogram.
    pub fn has_histogram(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Histogram(_)))
    }
}

/// Parses `<labels> <items…>`.
pub fn parse_series_line(line: &str) -> Result<SeriesLine, String> {
    let (labels, rest) = read_labels(line)?;
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(format!("unexpected {rest:?} after the label set"));
    }
    Ok(SeriesLine {
        labels,
        slots: parse_values(rest)?,
    })
}

/// Whether the line is a start-timestamp line (`series@st …`); returns the
/// series labels and the rest of the line if so.
pub fn start_timestamp_line(line: &str) -> Option<(Labels, &str)> {
    let (labels, rest) = read_labels(line).ok()?;
    rest.strip_prefix("@st")
        .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
        .map(|r| (labels, r))
}

/// Parses a signed duration of an ST line (`-30s`, `+1m`, `0`).
fn signed_duration(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let d = parse_duration(body)?;
    Ok(if neg { -d } else { d })
}

/// Expands the items of a start-timestamp (`@st`) line: offsets in
/// milliseconds relative to each sample's timestamp, `None` for `_`.
pub fn parse_start_timestamps(s: &str) -> Result<Vec<Option<i64>>, String> {
    let mut out = Vec::new();
    for item in s.split_whitespace() {
        let bad = |e: String| format!("start timestamp {item:?}: {e}");
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(k) = item.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(None, parse_times(k).map_err(bad)?));
            continue;
        }
        let Some((body, times)) = item.rsplit_once('x') else {
            out.push(Some(signed_duration(item).map_err(bad)?));
            continue;
        };
        let k = parse_times(times).map_err(bad)?;
        let b = body.as_bytes();
        let (start, delta) = match (1..b.len()).find(|&i| b[i] == b'+' || b[i] == b'-') {
            None => (signed_duration(body).map_err(bad)?, 0),
            Some(i) => (
                signed_duration(&body[..i]).map_err(bad)?,
                signed_duration(&body[i..]).map_err(bad)?,
            ),
        };
        out.extend((0..=k as i64).map(|j| Some(start + j * delta)));
    }
    Ok(out)
}

/// Splits a value sequence into items: whitespace-separated, except that
/// `{{ … }}` stays whole.
fn items(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i..].starts_with(b"{{") {
                let close = s[i..]
                    .find("}}")
                    .ok_or_else(|| "unterminated histogram \"{{\"".to_string())?;
                i += close + 2;
            } else {
                i += 1;
            }
        }
        out.push(&s[start..i]);
    }
    Ok(out)
}

/// Expands a whole value sequence.
pub fn parse_values(s: &str) -> Result<Vec<Slot>, String> {
    let mut slots = Vec::new();
    for item in items(s)? {
        expand_item(item, &mut slots).map_err(|e| format!("value {item:?}: {e}"))?;
    }
    Ok(slots)
}

fn parse_times(s: &str) -> Result<usize, String> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("invalid repeat count {s:?}"));
    }
    s.parse().map_err(|_| format!("invalid repeat count {s:?}"))
}

fn number(s: &str) -> Result<f64, String> {
    parse_float(s).ok_or_else(|| format!("invalid number {s:?}"))
}

fn expand_item(item: &str, out: &mut Vec<Slot>) -> Result<(), String> {
    if item == "_" {
        out.push(Slot::Omitted);
        return Ok(());
    }
    if let Some(k) = item.strip_prefix("_x") {
        out.extend(std::iter::repeat_n(Slot::Omitted, parse_times(k)?));
        return Ok(());
    }
    if item == "stale" {
        out.push(Slot::Float(STALE_NAN));
        return Ok(());
    }
    if item.starts_with("{{") {
        return expand_histogram_item(item, out);
    }
    // `N`, `NxK`, `A+BxK`, `A-BxK`.
    let Some((body, times)) = item.rsplit_once('x') else {
        out.push(Slot::Float(number(item)?));
        return Ok(());
    };
    let k = parse_times(times)?;
    let b = body.as_bytes();
    let op = (1..b.len()).find(|&i| {
        (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E' | b'+' | b'-')
    });
    let (start, delta) = match op {
        None => (number(body)?, 0.0),
        Some(i) => {
            let d = number(&body[i + 1..])?;
            (number(&body[..i])?, if b[i] == b'-' { -d } else { d })
        }
    };
    let mut v = start;
    for j in 0..=k {
        if j > 0 {
            v += delta;
        }
        out.push(Slot::Float(v));
    }
    Ok(())
}

fn expand_histogram_item(item: &str, out: &mut Vec<Slot>) -> Result<(), String> {
    let close = item.find("}}").ok_or("unterminated histogram")?;
    let first = parse_histogram(&item[2..close])?;
    let rest = &item[close + 2..];
    if rest.is_empty() {
        out.push(Slot::Histogram(first));
        return Ok(());
    }
    if let Some(k) = rest.strip_prefix('x') {
        let k = parse_times(k)?;
        out.extend(std::iter::repeat_n(Slot::Histogram(first), k + 1));
        return Ok(());
    }
    let (sign, rest) = if let Some(r) = rest.strip_prefix('+') {
        (1.0, r)
    } else if let Some(r) = rest.strip_prefix('-') {
        (-1.0, r)
    } else {
        return Err(format!("unexpected {rest:?} after histogram"));
    };
    let inner = rest
        .strip_prefix("{{")
        .ok_or("expected \"{{\" after the sign")?;
    let close = inner.find("}}").ok_or("unterminated histogram")?;
    let delta = parse_histogram(&inner[..close])?;
    let k = inner[close + 2..]
        .strip_prefix('x')
        .ok_or("expected \"x\" after the increment histogram")?;
    let k = parse_times(k)?;
    let mut cur = first;
    for j in 0..=k {
        if j > 0 {
            cur = HistogramValue {
                h: Arc::new(combine(&cur.h, &delta.h, sign)?),
                hint_explicit: cur.hint_explicit,
            };
        }
        out.push(Slot::Histogram(cur.clone()));
    }
    Ok(())
}

/// Parses the inside of `{{ … }}`.
pub fn parse_histogram(body: &str) -> Result<HistogramValue, String> {
    let mut h = FloatHistogram::default();
    let mut seen: Vec<String> = Vec::new();
    let mut hint_explicit = false;
    let mut rest = body.trim();
    let mut buckets: Option<Vec<f64>> = None;
    let mut n_buckets: Option<Vec<f64>> = None;
    let mut offset = 0i32;
    let mut n_offset = 0i32;
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("expected key:value at {rest:?}"))?;
        let key = rest[..colon].trim().to_string();
        if seen.contains(&key) {
            return Err(format!("duplicate histogram key {key:?}"));
        }
        seen.push(key.clone());
        rest = rest[colon + 1..].trim_start();
        let value: &str;
        if rest.starts_with('[') {
            let end = rest.find(']').ok_or("unterminated bucket list")?;
            value = &rest[..=end];
            rest = rest[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = &rest[..end];
            rest = rest[end..].trim_start();
        }
        let int = |v: &str| -> Result<i32, String> {
            v.parse::<i32>()
                .map_err(|_| format!("{key}: invalid integer {v:?}"))
        };
        let list = |v: &str| -> Result<Vec<f64>, String> {
            let inner = v
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .ok_or_else(|| format!("{key}: expected a [list]"))?;
            inner.split_whitespace().map(number).collect()
        };
        match key.as_str() {
            "schema" => h.schema = int(value)?,
            "sum" => h.sum = number(value)?,
            "count" => h.count = number(value)?,
            "z_bucket" => h.zero_count = number(value)?,
            "z_bucket_w" => h.zero_threshold = number(value)?,
            "buckets" => buckets = Some(list(value)?),
            "n_buckets" => n_buckets = Some(list(value)?),
            "offset" => offset = int(value)?,
            "n_offset" => n_offset = int(value)?,
            "custom_values" => h.custom_values = list(value)?,
            "counter_reset_hint" => {
                hint_explicit = true;
                h.counter_reset_hint = match value {
                    "unknown" => hint::UNKNOWN,
                    "reset" => hint::RESET,
                    "not_reset" => hint::NOT_RESET,
                    "gauge" => hint::GAUGE,
                    other => return Err(format!("unknown counter_reset_hint {other:?}")),
                };
            }
            other => return Err(format!("unknown histogram key {other:?}")),
        }
    }
    if let Some(b) = buckets.filter(|b| !b.is_empty()) {
        h.positive_spans = vec![(offset, b.len() as u32)];
        h.positive_buckets = b;
    }
    if let Some(b) = n_buckets.filter(|b| !b.is_empty()) {
        h.negative_spans = vec![(n_offset, b.len() as u32)];
        h.negative_buckets = b;
    }
    Ok(HistogramValue {
        h: Arc::new(h),
        hint_explicit,
    })
}

/// A histogram's buckets as index → count.
pub fn bucket_map(spans: &[(i32, u32)], counts: &[f64]) -> BTreeMap<i32, f64> {
    let mut m = BTreeMap::new();
    let mut idx = 0i32;
    let mut counts = counts.iter();
    for (i, &(off, len)) in spans.iter().enumerate() {
        idx = if i == 0 { off } else { idx + off };
        for _ in 0..len {
            if let Some(&c) = counts.next() {
                *m.entry(idx).or_insert(0.0) += c;
            }
            idx += 1;
        }
    }
    m
}

/// Spans and counts from index → count, dropping empty buckets.
pub fn from_bucket_map(m: &BTreeMap<i32, f64>) -> (Vec<(i32, u32)>, Vec<f64>) {
    let mut spans: Vec<(i32, u32)> = Vec::new();
    let mut counts = Vec::new();
    let mut next: Option<i32> = None;
    for (&i, &c) in m {
        if c == 0.0 {
            continue;
        }
        match (next, spans.last_mut()) {
            (Some(n), Some(last)) if n == i => last.1 += 1,
            (Some(n), _) => spans.push((i - n, 1)),
            (None, _) => spans.push((i, 1)),
        }
        counts.push(c);
        next = Some(i + 1);
    }
    (spans, counts)
}

fn reduce(m: BTreeMap<i32, f64>, from: i32, to: i32) -> BTreeMap<i32, f64> {
    if from == to || from == CUSTOM_BUCKETS_SCHEMA {
        return m;
    }
    let delta = from - to;
    let mut out = BTreeMap::new();
    for (i, c) in m {
        *out.entry(((i - 1) >> delta) + 1).or_insert(0.0) += c;
    }
    out
}

/// `a + sign·b` (histogram addition or subtraction), at the coarser schema.
pub fn combine(
    a: &FloatHistogram,
    b: &FloatHistogram,
    sign: f64,
) -> Result<FloatHistogram, String> {
    let custom = a.schema == CUSTOM_BUCKETS_SCHEMA || b.schema == CUSTOM_BUCKETS_SCHEMA;
    if custom && (a.schema != b.schema || a.custom_values != b.custom_values) {
        return Err("cannot combine histograms with different custom buckets".into());
    }
    let schema = a.schema.min(b.schema);
    let merge = |x: BTreeMap<i32, f64>, y: BTreeMap<i32, f64>| {
        let mut x = x;
        for (i, c) in y {
            *x.entry(i).or_insert(0.0) += sign * c;
        }
        from_bucket_map(&x)
    };
    let (ps, pb) = merge(
        reduce(
            bucket_map(&a.positive_spans, &a.positive_buckets),
            a.schema,
            schema,
        ),
        reduce(
            bucket_map(&b.positive_spans, &b.positive_buckets),
            b.schema,
            schema,
        ),
    );
    let (ns, nb) = merge(
        reduce(
            bucket_map(&a.negative_spans, &a.negative_buckets),
            a.schema,
            schema,
        ),
        reduce(
            bucket_map(&b.negative_spans, &b.negative_buckets),
            b.schema,
            schema,
        ),
    );
    Ok(FloatHistogram {
        schema,
        zero_threshold: a.zero_threshold.max(b.zero_threshold),
        zero_count: a.zero_count + sign * b.zero_count,
        count: a.count + sign * b.count,
        sum: a.sum + sign * b.sum,
        positive_spans: ps,
        positive_buckets: pb,
        negative_spans: ns,
        negative_buckets: nb,
        custom_values: a.custom_values.clone(),
        counter_reset_hint: a.counter_reset_hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(s: &str) -> Vec<Option<f64>> {
        parse_values(s)
            .expect("parses")
            .into_iter()
            .map(|s| match s {
                Slot::Float(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(
            floats("0+10x3"),
            vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
        );
        assert_eq!(
            floats("-2+4x3"),
            vec![Some(-2.0), Some(2.0), Some(6.0), Some(10.0)]
        );
        assert_eq!(floats("10-2x2"), vec![Some(10.0), Some(8.0), Some(6.0)]);
        assert_eq!(floats("1x4"), vec![Some(1.0); 5]);
        assert_eq!(
            floats("1 _x3 2"),
            vec![Some(1.0), None, None, None, Some(2.0)]
        );
        assert_eq!(
            floats("1e+2 .8 -Inf"),
            vec![Some(100.0), Some(0.8), Some(f64::NEG_INFINITY)]
        );
        assert_eq!(floats("1e+2+1e+1x1"), vec![Some(100.0), Some(110.0)]);
        let stale = parse_values("1 stale").expect("parses");
        assert!(matches!(stale[1], Slot::Float(f) if f.to_bits() == hearth_model::STALE_NAN_BITS));
        assert!(floats("NaN")[0].is_some_and(f64::is_nan));
        // No hex in series values: `x` is the repeat operator.
        assert_eq!(floats("0x10"), vec![Some(0.0); 11]);
        assert!(parse_values("1+2").is_err());
        assert!(parse_values("1 # comment").is_err());
    }

    #[test]
    fn histogram_literals() {
        let slots = parse_values(
            "{{schema:1 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] offset:1 n_buckets:[1] counter_reset_hint:gauge}} {{}}",
        )
        .expect("parses");
        let Slot::Histogram(h) = &slots[0] else {
            panic!("histogram expected")
        };
        assert!(h.hint_explicit);
        assert_eq!(h.h.schema, 1);
        assert_eq!(h.h.positive_spans, vec![(1, 2)]);
        assert_eq!(h.h.negative_buckets, vec![1.0]);
        assert_eq!(h.h.counter_reset_hint, hint::GAUGE);
        let Slot::Histogram(e) = &slots[1] else {
            panic!("histogram expected")
        };
        assert!(!e.hint_explicit);
        assert!(parse_values("{{sum:1 sum:2}}").is_err());
    }

    #[test]
    fn histogram_series() {
        let slots = parse_values("{{sum:1 count:1 buckets:[1]}}+{{sum:2 count:2 buckets:[1 1]}}x2")
            .expect("parses");
        assert_eq!(slots.len(), 3);
        let Slot::Histogram(last) = &slots[2] else {
            panic!("histogram expected")
        };
        assert_eq!(last.h.sum, 5.0);
        assert_eq!(last.h.count, 5.0);
        assert_eq!(last.h.positive_buckets, vec![3.0, 2.0]);
        assert_eq!(parse_values("{{}}x2").expect("parses").len(), 3);
    }

    #[test]
    fn series_lines() {
        let l =
            parse_series_line(r#"http_requests{job="api", instance="0"} 1 2 3"#).expect("parses");
        assert_eq!(l.labels.get("job"), Some("api"));
        assert_eq!(l.slots.len(), 3);
        assert!(start_timestamp_line(r#"c{type="x"}@st _ -1mx2"#).is_some());
        assert_eq!(
            parse_start_timestamps("_ _x2 -30s-1mx2 +1m -59999msx1 0").expect("parses"),
            vec![
                None,
                None,
                None,
                Some(-30_000),
                Some(-90_000),
                Some(-150_000),
                Some(60_000),
                Some(-59_999),
                Some(-59_999),
                Some(0)
            ]
        );
        assert!(parse_start_timestamps("1.5s").is_err());
        assert!(start_timestamp_line(r#"c{type="x"} 1"#).is_none());
    }
}
