//! The experimental `anchored` and `smoothed` selector modifiers, which
//! `promql-parser` does not read. Before parsing, each keyword is removed
//! and its selector tagged with a marker matcher; after parsing, the marker
//! is taken off the AST again and remembered per selector node.

use std::collections::HashMap;

use promql_parser::parser::{Expr, VectorSelector};

use crate::eval::{at_ms, duration_ms, offset_ms, selector_key, unwrap_parens, Evaluator};
use crate::{Error, FPoint, Result, Sample, Value};

/// The marker label the rewrite puts on a tagged selector.
const MARKER: &str = "__hearth_range_modifier__";

/// How a selector reads samples beyond its plain window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeModifier {
    /// Adds the last sample at or before the range start.
    Anchored,
    /// Interpolates values at the range boundaries (or, for an instant
    /// selector, at the evaluation time).
    Smoothed,
}

impl RangeModifier {
    fn from_word(w: &str) -> Option<Self> {
        match w {
            "anchored" => Some(Self::Anchored),
            "smoothed" => Some(Self::Smoothed),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Anchored => "anchored",
            Self::Smoothed => "smoothed",
        }
    }
}

/// Words that are not selectors even when not followed by `(`.
const KEYWORDS: [&str; 17] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
    "anchored",
    "smoothed",
    "fill",
];

/// Removes `anchored`/`smoothed` keywords, tagging the selector before each
/// with a marker matcher. `None` when there is no such keyword.
pub(crate) fn rewrite(q: &str) -> Option<String> {
    let b = q.as_bytes();
    let mut out = String::with_capacity(q.len() + 64);
    // Where to insert a marker for the latest selector: the byte offset in
    // `out` and whether braces must be added.
    let mut last_selector: Option<(usize, bool)> = None;
    let mut found = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            let end = skip_string(b, i);
            out.push_str(&q[i..end.min(q.len())]);
            i = end;
            continue;
        }
        if c == b'{' {
            // A selector's braces: the marker goes before the closing one.
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'}' {
                if matches!(b[i], b'"' | b'\'' | b'`') {
                    i = skip_string(b, i);
                } else {
                    i += 1;
                }
            }
            let body = &q[start..i.min(q.len())];
            out.push_str(body);
            let has_matchers = !body[1..].trim().is_empty();
            last_selector = Some((out.len(), has_matchers));
            if i < b.len() {
                out.push('}');
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() || c == b'.' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push_str(&q[start..i]);
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &q[start..i];
            if let Some(m) = RangeModifier::from_word(word) {
                let Some((at, has_matchers)) = last_selector.take() else {
                    out.push_str(word);
                    continue;
                };
                let marker = if has_matchers {
                    format!(", {MARKER}=\"{}\"", m.name())
                } else {
                    format!("{MARKER}=\"{}\"", m.name())
                };
                let marker = if at <= out.len() && out[..at].ends_with('{') || has_matchers {
                    marker
                } else {
                    format!("{{{marker}}}")
                };
                out.insert_str(at, &marker);
                found = true;
                continue;
            }
            out.push_str(word);
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let is_call = j < b.len() && b[j] == b'(';
            let next_is_grouping = q[j..].starts_with("by") || q[j..].starts_with("without");
            if KEYWORDS.contains(&word) {
                // Skip label lists: by (...), on (...), group_left (...), ...
                if matches!(
                    word,
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right" | "fill"
                ) && is_call
                {
                    if let Some(close) = q[j..].find(')') {
                        out.push_str(&q[i..j + close + 1]);
                        i = j + close + 1;
                    }
                }
                continue;
            }
            if !is_call && !next_is_grouping {
                // A metric name; braces may follow.
                let mut k = i;
                while k < b.len() && b[k].is_ascii_whitespace() {
                    k += 1;
                }
                if k >= b.len() || b[k] != b'{' {
                    last_selector = Some((out.len(), false));
                }
            }
            continue;
        }
        match q.get(i..).and_then(|rest| rest.chars().next()) {
            Some(ch) => {
                out.push(ch);
                i += ch.len_utf8();
            }
            None => i += 1,
        }
    }
    found.then_some(out)
}

fn skip_string(b: &[u8], mut i: usize) -> usize {
    let quote = b[i];
    i += 1;
    while i < b.len() && b[i] != quote {
        if b[i] == b'\\' && quote != b'`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Takes the marker matchers off the AST, returning each tagged
/// selector's modifier.
pub(crate) fn extract(e: &mut Expr, out: &mut HashMap<usize, RangeModifier>) {
    let take = |vs: &mut VectorSelector, out: &mut HashMap<usize, RangeModifier>| {
        let mut found = None;
        vs.matchers.matchers.retain(|m| {
            if m.name == MARKER {
                found = RangeModifier::from_word(&m.value);
                false
            } else {
                true
            }
        });
        if let Some(m) = found {
            out.insert(selector_key(vs), m);
        }
    };
    match e {
        Expr::VectorSelector(vs) => take(vs, out),
        Expr::MatrixSelector(ms) => take(&mut ms.vs, out),
        Expr::Paren(p) => extract(&mut p.expr, out),
        Expr::Unary(u) => extract(&mut u.expr, out),
        Expr::Subquery(s) => extract(&mut s.expr, out),
        Expr::Aggregate(a) => {
            extract(&mut a.expr, out);
            if let Some(p) = &mut a.param {
                extract(p, out);
            }
        }
        Expr::Binary(b) => {
            extract(&mut b.lhs, out);
            extract(&mut b.rhs, out);
        }
        Expr::Call(c) => {
            for a in &mut c.args.args {
                extract(a, out);
            }
        }
        _ => {}
    }
}

/// Linear interpolation at `x` between two points; for counters a drop
/// between them is a reset from zero.
pub(crate) fn interpolate(p1: FPoint, p2: FPoint, x: i64, counter: bool) -> f64 {
    if p2.t == p1.t {
        return p2.f;
    }
    let v1 = if counter && p2.f < p1.f { 0.0 } else { p1.f };
    v1 + (p2.f - v1) * (x - p1.t) as f64 / (p2.t - p1.t) as f64
}

/// Functions each modifier may be used with.
fn allowed(m: RangeModifier) -> &'static [&'static str] {
    match m {
        RangeModifier::Anchored => &["changes", "delta", "increase", "rate", "resets"],
        RangeModifier::Smoothed => &["delta", "increase", "rate"],
    }
}

impl Evaluator<'_> {
    /// The modifier of a range argument, if it is a tagged matrix selector.
    pub(crate) fn range_modifier(&self, e: &Expr) -> Option<RangeModifier> {
        match unwrap_parens(e) {
            Expr::MatrixSelector(ms) => self.modifiers.get(&selector_key(&ms.vs)).copied(),
            _ => None,
        }
    }

    /// `rate`, `increase`, `delta`, `changes` or `resets` over an anchored or
    /// smoothed range selector: no extrapolation; the window gains the
    /// sample before it (anchored) or values interpolated at its bounds
    /// (smoothed).
    pub(crate) fn modified_range(
        &mut self,
        func: &str,
        e: &Expr,
        t: i64,
        m: RangeModifier,
    ) -> Result<Value> {
        if !allowed(m).contains(&func) {
            return Err(Error::Parse(format!(
                "{} modifier can only be used with: {} - not with {func}",
                m.name(),
                allowed(m).join(", ")
            )));
        }
        let Expr::MatrixSelector(ms) = unwrap_parens(e) else {
            return Err(Error::Execution(format!(
                "{func}: expected a range selector"
            )));
        };
        let range = duration_ms(&ms.range);
        let end = at_ms(&ms.vs.at, self.start, self.end).unwrap_or(t) - offset_ms(&ms.vs.offset);
        let start = end - range;
        let lookback = self.opts.lookback_delta_ms;
        let counter = matches!(func, "rate" | "increase");
        let mut out = Vec::new();
        let Some(data) = self.data.get(&selector_key(&ms.vs)) else {
            return Ok(Value::Vector(out));
        };
        for s in data {
            let pts = &s.points;
            let lo = pts.partition_point(|p| p.t <= start);
            let hi = pts.partition_point(|p| p.t <= end);
            let window = &pts[lo..hi];
            let anchor = (lo > 0 && pts[lo - 1].t > start - lookback).then(|| pts[lo - 1]);
            let next = pts.get(hi).copied().filter(|p| p.t < end + lookback);
            let points: Vec<FPoint> = match m {
                RangeModifier::Anchored => {
                    if window.is_empty() {
                        continue;
                    }
                    anchor.into_iter().chain(window.iter().copied()).collect()
                }
                RangeModifier::Smoothed => {
                    // Data only before or only after the range: nothing.
                    if window.is_empty() && (anchor.is_none() || next.is_none()) {
                        continue;
                    }
                    let after_start = window.first().copied().or(next);
                    let start_v = match (anchor, after_start) {
                        (Some(a), Some(b)) => interpolate(a, b, start, counter),
                        (Some(a), None) => a.f,
                        (None, Some(b)) => b.f,
                        (None, None) => continue,
                    };
                    let before_end = window.last().copied().or(anchor);
                    let end_v = match (before_end, next) {
                        (Some(a), Some(b)) => interpolate(a, b, end, counter),
                        (Some(a), None) => a.f,
                        (None, Some(b)) => b.f,
                        (None, None) => continue,
                    };
                    let mut v = vec![FPoint {
                        t: start,
                        f: start_v,
                    }];
                    v.extend(window.iter().copied().filter(|p| p.t < end));
                    v.push(FPoint { t: end, f: end_v });
                    v
                }
            };
            let value = match func {
                "changes" => points
                    .windows(2)
                    .filter(|w| w[1].f != w[0].f && !(w[1].f.is_nan() && w[0].f.is_nan()))
                    .count() as f64,
                "resets" => points.windows(2).filter(|w| w[1].f < w[0].f).count() as f64,
                _ => {
                    let (Some(first), Some(last)) = (points.first(), points.last()) else {
                        continue;
                    };
                    let mut v = last.f - first.f;
                    if counter {
                        for w in points.windows(2) {
                            if w[1].f < w[0].f {
                                v += w[0].f;
                            }
                        }
                    }
                    if func == "rate" {
                        v /= range as f64 / 1000.0;
                    }
                    v
                }
            };
            let mut smp = Sample {
                metric: s.metric.clone(),
                t,
                f: value,
                h: None,
                drop_name: false,
            };
            self.drop_metric_name(&mut smp);
            out.push(smp);
        }
        self.check_duplicates(&out)?;
        Ok(Value::Vector(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_the_preceding_selector() {
        assert_eq!(
            rewrite("increase(metric[1m] anchored)").as_deref(),
            Some(r#"increase(metric{__hearth_range_modifier__="anchored"}[1m] )"#)
        );
        assert_eq!(
            rewrite(r#"rate(m{a="b"}[5m] smoothed)"#).as_deref(),
            Some(r#"rate(m{a="b", __hearth_range_modifier__="smoothed"}[5m] )"#)
        );
        assert_eq!(
            rewrite("metric offset -100 smoothed + 0").as_deref(),
            Some(r#"metric{__hearth_range_modifier__="smoothed"} offset -100  + 0"#)
        );
        assert_eq!(rewrite("sum by (job) (rate(x[5m]))"), None);
    }
}
