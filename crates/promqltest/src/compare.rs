//! Result comparison as upstream's runner does it: floats with
//! `almost.Equal` (ε = 1e-6), NaN equal to NaN, stale NaN only to stale NaN,
//! histograms compacted before comparing, label sets exact, order checked
//! only for `ordered`; plus readable rendering of values for reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hearth_model::{is_stale_nan, Timestamp};
use hearth_promql::{FloatHistogram, Sample, Series, Value};

use crate::script::{Eval, Expectations, Expected, ExpectedSeries, MessageMatch};
use crate::series::{bucket_map, HistogramValue, Slot, CUSTOM_BUCKETS_SCHEMA};

const EPSILON: f64 = 1e-6;
const MIN_NORMAL: f64 = 2.2250738585072014e-308;

/// Upstream's `almost.Equal(a, b, 1e-6)`.
pub fn almost_equal(a: f64, b: f64) -> bool {
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

fn buckets_equal(a: &BTreeMap<i32, f64>, b: &BTreeMap<i32, f64>) -> bool {
    let a: Vec<_> = a.iter().filter(|(_, c)| **c != 0.0).collect();
    let b: Vec<_> = b.iter().filter(|(_, c)| **c != 0.0).collect();
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|((ia, ca), (ib, cb))| ia == ib && almost_equal(**ca, **cb))
}

/// Histogram equality (§8.4): compacted, hint compared only when the
/// expected literal stated it.
pub fn histogram_equal(expected: &HistogramValue, actual: &FloatHistogram) -> bool {
    let e = &expected.h;
    e.schema == actual.schema
        && almost_equal(e.count, actual.count)
        && almost_equal(e.sum, actual.sum)
        && almost_equal(e.zero_count, actual.zero_count)
        && e.zero_threshold == actual.zero_threshold
        && (e.schema != CUSTOM_BUCKETS_SCHEMA || e.custom_values == actual.custom_values)
        && buckets_equal(
            &bucket_map(&e.positive_spans, &e.positive_buckets),
            &bucket_map(&actual.positive_spans, &actual.positive_buckets),
        )
        && buckets_equal(
            &bucket_map(&e.negative_spans, &e.negative_buckets),
            &bucket_map(&actual.negative_spans, &actual.negative_buckets),
        )
        && (!expected.hint_explicit || e.counter_reset_hint == actual.counter_reset_hint)
}

/// Renders a float as the scripts write it.
pub fn render_float(f: f64) -> String {
    if is_stale_nan(f) {
        "stale".into()
    } else if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{f}")
    }
}

/// Renders a histogram in the `{{…}}` notation.
pub fn render_histogram(h: &FloatHistogram) -> String {
    let mut s = format!(
        "{{{{schema:{} count:{} sum:{}",
        h.schema,
        render_float(h.count),
        render_float(h.sum)
    );
    if h.zero_count != 0.0 || h.zero_threshold != 0.0 {
        let _ = write!(
            s,
            " z_bucket:{} z_bucket_w:{}",
            render_float(h.zero_count),
            render_float(h.zero_threshold)
        );
    }
    let list = |m: &BTreeMap<i32, f64>| {
        m.iter()
            .map(|(i, c)| format!("{i}:{}", render_float(*c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let p = bucket_map(&h.positive_spans, &h.positive_buckets);
    if !p.is_empty() {
        let _ = write!(s, " buckets:[{}]", list(&p));
    }
    let n = bucket_map(&h.negative_spans, &h.negative_buckets);
    if !n.is_empty() {
        let _ = write!(s, " n_buckets:[{}]", list(&n));
    }
    if !h.custom_values.is_empty() {
        let cv: Vec<String> = h.custom_values.iter().map(|v| render_float(*v)).collect();
        let _ = write!(s, " custom_values:[{}]", cv.join(" "));
    }
    let hint = match h.counter_reset_hint {
        1 => " counter_reset_hint:reset",
        2 => " counter_reset_hint:not_reset",
        3 => " counter_reset_hint:gauge",
        _ => "",
    };
    s.push_str(hint);
    s.push_str("}}");
    s
}

fn render_slot(s: &Slot) -> String {
    match s {
        Slot::Omitted => "_".into(),
        Slot::Float(f) => render_float(*f),
        Slot::Histogram(h) => render_histogram(&h.h),
    }
}

fn render_sample(s: &Sample) -> String {
    match &s.h {
        Some(h) => format!("{} {}", s.metric, render_histogram(h)),
        None => format!("{} {}", s.metric, render_float(s.f)),
    }
}

fn render_series(s: &Series) -> String {
    let mut points: Vec<(Timestamp, String)> = s
        .floats
        .iter()
        .map(|p| (p.t, render_float(p.f)))
        .chain(s.histograms.iter().map(|p| (p.t, render_histogram(&p.h))))
        .collect();
    points.sort_by_key(|p| p.0);
    let pts: Vec<String> = points
        .into_iter()
        .map(|(t, v)| format!("{v}@{t}"))
        .collect();
    format!("{} {}", s.metric, pts.join(" "))
}

const RENDER_LIMIT: usize = 2000;

fn limit(mut s: String) -> String {
    if s.len() > RENDER_LIMIT {
        let mut cut = RENDER_LIMIT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" …");
    }
    s
}

/// Renders a query result readably.
pub fn render_value(v: &Value) -> String {
    let s = match v {
        Value::Scalar { v, .. } => format!("scalar {}", render_float(*v)),
        Value::String { v, .. } => format!("string {v:?}"),
        Value::Vector(s) if s.is_empty() => "empty vector".into(),
        Value::Vector(s) => format!(
            "vector [{}]",
            s.iter().map(render_sample).collect::<Vec<_>>().join(", ")
        ),
        Value::Matrix(s) if s.is_empty() => "empty matrix".into(),
        Value::Matrix(s) => format!(
            "matrix [{}]",
            s.iter().map(render_series).collect::<Vec<_>>().join(", ")
        ),
    };
    limit(s)
}

/// Renders the expectation readably.
pub fn render_expected(eval: &Eval) -> String {
    let s = match &eval.expected {
        Expected::Scalar(v) => format!("scalar {}", render_float(*v)),
        Expected::String(s) => format!("string {s:?}"),
        Expected::Series(s) if s.is_empty() => "empty result".into(),
        Expected::Series(s) => format!(
            "[{}]",
            s.iter()
                .map(|e| format!(
                    "{} {}",
                    e.series.labels,
                    e.series
                        .slots
                        .iter()
                        .map(render_slot)
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    limit(s)
}

/// Where expected points of series lines sit in time.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub start_ms: i64,
    pub step_ms: i64,
}

/// Compares an instant vector (§8.3).
pub fn compare_vector(
    expected: &[ExpectedSeries],
    ordered: bool,
    actual: &[Sample],
) -> Result<(), String> {
    let mut seen = vec![false; expected.len()];
    for (i, s) in actual.iter().enumerate() {
        let Some(j) = expected.iter().position(|e| e.series.labels == s.metric) else {
            return Err(format!("unexpected series {}", s.metric));
        };
        if seen[j] {
            return Err(format!("series {} returned twice", s.metric));
        }
        seen[j] = true;
        let e = &expected[j];
        if ordered && e.position != i + 1 {
            return Err(format!(
                "series {} at position {}, expected at {}",
                s.metric,
                i + 1,
                e.position
            ));
        }
        let [slot] = &e.series.slots[..] else {
            return Err(format!(
                "expected line for {} needs exactly one value",
                s.metric
            ));
        };
        let ok = match (slot, &s.h) {
            (Slot::Float(f), None) => almost_equal(*f, s.f),
            (Slot::Histogram(h), Some(a)) => histogram_equal(h, a),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "{}: expected {}, got {}",
                s.metric,
                render_slot(slot),
                render_sample(s)
            ));
        }
    }
    if let Some(j) = seen.iter().position(|s| !s) {
        return Err(format!("missing series {}", expected[j].series.labels));
    }
    Ok(())
}

fn labels_sorted(series: &[Series]) -> Result<(), String> {
    for w in series.windows(2) {
        if w[0].metric > w[1].metric {
            return Err(format!(
                "matrix not sorted by labels: {} before {}",
                w[0].metric, w[1].metric
            ));
        }
    }
    Ok(())
}

/// Compares a matrix (§8.5).
pub fn compare_matrix(
    expected: &[ExpectedSeries],
    grid: Grid,
    actual: &[Series],
) -> Result<(), String> {
    labels_sorted(actual)?;
    let mut seen = vec![false; expected.len()];
    for s in actual {
        let Some(j) = expected.iter().position(|e| e.series.labels == s.metric) else {
            return Err(format!("unexpected series {}", render_series(s)));
        };
        if seen[j] {
            return Err(format!("series {} returned twice", s.metric));
        }
        seen[j] = true;
        compare_points(&expected[j], grid, s)?;
    }
    if let Some(j) = seen.iter().position(|s| !s) {
        return Err(format!("missing series {}", expected[j].series.labels));
    }
    Ok(())
}

fn compare_points(e: &ExpectedSeries, grid: Grid, s: &Series) -> Result<(), String> {
    let mut floats: Vec<(Timestamp, f64)> = Vec::new();
    let mut hists: Vec<(Timestamp, &HistogramValue)> = Vec::new();
    for (i, slot) in e.series.slots.iter().enumerate() {
        let t = grid.start_ms + i as i64 * grid.step_ms;
        match slot {
            Slot::Omitted => {}
            Slot::Float(f) => floats.push((t, *f)),
            Slot::Histogram(h) => hists.push((t, h)),
        }
    }
    let mismatch = || {
        format!(
            "{}: expected {}, got {}",
            s.metric,
            e.series
                .slots
                .iter()
                .map(render_slot)
                .collect::<Vec<_>>()
                .join(" "),
            render_series(s)
        )
    };
    if floats.len() != s.floats.len() || hists.len() != s.histograms.len() {
        return Err(mismatch());
    }
    for ((t, f), p) in floats.iter().zip(&s.floats) {
        if *t != p.t || !almost_equal(*f, p.f) {
            return Err(mismatch());
        }
    }
    for ((t, h), p) in hists.iter().zip(&s.histograms) {
        if *t != p.t || !histogram_equal(h, &p.h) {
            return Err(mismatch());
        }
    }
    Ok(())
}

/// Compares a query value with the eval's expectation. `grid` places the
/// points of series lines for matrix results (range evals and `expect
/// range vector`); `None` means an instant eval expecting a vector.
pub fn compare_value(eval: &Eval, grid: Option<Grid>, value: &Value) -> Result<(), String> {
    match (&eval.expected, value) {
        (Expected::Scalar(e), Value::Scalar { v, .. }) => {
            if almost_equal(*e, *v) {
                Ok(())
            } else {
                Err(format!(
                    "expected scalar {}, got {}",
                    render_float(*e),
                    render_float(*v)
                ))
            }
        }
        (Expected::String(e), Value::String { v, .. }) => {
            if e == v {
                Ok(())
            } else {
                Err(format!("expected string {e:?}, got {v:?}"))
            }
        }
        (Expected::Series(e), Value::Vector(s)) if grid.is_none() => {
            compare_vector(e, eval.expect.ordered, s)
        }
        (Expected::Series(e), Value::Matrix(s)) => match grid {
            Some(_) if eval.expect.ordered => Err("expect ordered on a matrix result".into()),
            Some(g) => compare_matrix(e, g, s),
            None if e.is_empty() && s.is_empty() => Ok(()),
            None => Err("got a matrix without expect range vector".into()),
        },
        (_, v) => Err(format!(
            "result of type {} does not match the expectation",
            v.type_name()
        )),
    }
}

fn matches_annotation(m: &MessageMatch, prefix: &str, msg: &str) -> bool {
    m.matches(msg) || (!msg.starts_with("PromQL ") && m.matches(&format!("{prefix}{msg}")))
}

fn check_kind(
    kind: &str,
    prefix: &str,
    wanted: &[MessageMatch],
    none: bool,
    any: bool,
    got: &[String],
) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("expected no {kind}s, got {got:?}"));
    }
    if (any || !wanted.is_empty()) && got.is_empty() {
        return Err(format!("expected a {kind}, got none"));
    }
    for w in wanted {
        if !got.iter().any(|g| matches_annotation(w, prefix, g)) {
            return Err(format!("no {kind} matches {w}; got {got:?}"));
        }
    }
    if !wanted.is_empty() {
        for g in got {
            if !wanted.iter().any(|w| matches_annotation(w, prefix, g)) {
                return Err(format!("unexpected {kind} {g:?}"));
            }
        }
    }
    Ok(())
}

/// Checks warnings and infos against the expectations (§9).
pub fn check_annotations(
    x: &Expectations,
    warnings: &[String],
    infos: &[String],
) -> Result<(), String> {
    check_kind(
        "warning",
        "PromQL warning: ",
        &x.warn,
        x.no_warn,
        x.any_warn,
        warnings,
    )?;
    check_kind(
        "info",
        "PromQL info: ",
        &x.info,
        x.no_info,
        x.any_info,
        infos,
    )
}

/// The labels of every series of a matrix, for sorting checks elsewhere.
pub fn matrix_sorted(series: &[Series]) -> Result<(), String> {
    labels_sorted(series)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::parse_histogram;
    use hearth_model::STALE_NAN;

    #[test]
    fn floats() {
        assert!(almost_equal(1.0, 1.0 + 1e-9));
        assert!(!almost_equal(1.0, 1.001));
        assert!(almost_equal(f64::NAN, -f64::NAN));
        assert!(!almost_equal(f64::NAN, STALE_NAN));
        assert!(almost_equal(STALE_NAN, STALE_NAN));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY));
        assert!(
            !almost_equal(0.0, 1e-300),
            "against zero is effectively exact"
        );
        assert!(almost_equal(0.0, -0.0));
    }

    #[test]
    fn histograms_compacted() {
        let e = parse_histogram("sum:1 count:2 buckets:[1 0 1]").expect("parses");
        let mut a = (*e.h).clone();
        a.positive_spans = vec![(0, 1), (1, 1)];
        a.positive_buckets = vec![1.0, 1.0];
        a.counter_reset_hint = 3;
        assert!(histogram_equal(&e, &a));
        let e = parse_histogram("sum:1 count:2 buckets:[1 0 1] counter_reset_hint:not_reset")
            .expect("parses");
        assert!(!histogram_equal(&e, &a), "explicit hint compared");
    }

    #[test]
    fn annotations() {
        let x = Expectations {
            warn: vec![MessageMatch::Exact("PromQL warning: boom (1:1)".into())],
            ..Default::default()
        };
        assert!(check_annotations(&x, &["boom (1:1)".into()], &[]).is_ok());
        assert!(check_annotations(&x, &[], &[]).is_err());
        assert!(check_annotations(&x, &["boom (1:1)".into(), "other".into()], &[]).is_err());
        let lenient = Expectations::default();
        assert!(check_annotations(&lenient, &["x".into()], &["y".into()]).is_ok());
        let none = Expectations {
            no_info: true,
            ..Default::default()
        };
        assert!(check_annotations(&none, &[], &["y".into()]).is_err());
    }
}
