//! The experimental `anchored` and `smoothed` selector modifiers, which
//! `promql-parser` does not read. Before parsing, each keyword is removed
//! and its selector tagged with a marker matcher; after parsing, the marker
//! is taken off the AST again and remembered per selector node.

use std::collections::HashMap;

use promql_parser::parser::{Expr, VectorSelector};

use crate::eval::selector_key;

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
    let mut take = |vs: &mut VectorSelector, out: &mut HashMap<usize, RangeModifier>| {
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
