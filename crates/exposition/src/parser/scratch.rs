//! The label pairs of the line being parsed and their conversion to a
//! sorted [`Labels`].
//!
//! Names and values borrow from the input; only values with escapes (and
//! normalised `le`/`quantile` values) are copied, into one buffer reused
//! from line to line, so a series costs no allocation until its `Labels` is
//! built.

use std::cmp::Ordering;

use hearth_model::{Labels, METRIC_NAME};

use crate::float::{parse_go_float, write_openmetrics_float};

/// A name or value: a slice of the input, or a range of the scratch buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Text<'a> {
    Input(&'a str),
    Buf { start: usize, end: usize },
}

#[inline]
fn resolve<'s>(buf: &'s str, text: Text<'s>) -> &'s str {
    match text {
        Text::Input(s) => s,
        Text::Buf { start, end } => &buf[start..end],
    }
}

/// The escapes a quoted text recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// Label values, quoted names, OpenMetrics HELP: `\\`, `\"`, `\n`.
    Label,
    /// Text-format HELP: `\\` and `\n` only.
    Help,
}

/// Appends `raw` with its escapes replaced; a backslash before any other
/// character is kept with that character (Go's `strings.Replacer`).
pub(crate) fn unescape_into(out: &mut String, raw: &str, escapes: Escapes) {
    let bytes = raw.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\\', &bytes[i..]) {
        let at = i + off;
        let replacement = match bytes.get(at + 1) {
            Some(b'\\') => Some('\\'),
            Some(b'n') => Some('\n'),
            Some(b'"') if escapes == Escapes::Label => Some('"'),
            _ => None,
        };
        match replacement {
            Some(c) => {
                out.push_str(&raw[copied..at]);
                out.push(c);
                i = at + 2;
                copied = i;
            }
            None => i = at + 1,
        }
    }
    out.push_str(&raw[copied..]);
}

/// The label pairs of one series or exemplar.
#[derive(Debug, Default)]
pub(crate) struct LabelScratch<'a> {
    pairs: Vec<(Text<'a>, Text<'a>)>,
    buf: String,
}

impl<'a> LabelScratch<'a> {
    /// Empties the scratch for a new exemplar.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.pairs.clear();
        self.buf.clear();
    }

    /// Empties the scratch for a new series, keeping the first slot for
    /// `__name__` (which sorts before every lowercase label name, so exposed
    /// label sets usually need no sorting).
    #[inline]
    pub(crate) fn start_series(&mut self) {
        self.clear();
        self.pairs.push((Text::Input(METRIC_NAME), Text::Input("")));
    }

    #[inline]
    pub(crate) fn set_metric_name(&mut self, name: Text<'a>) {
        self.pairs[0].1 = name;
    }

    #[inline]
    pub(crate) fn push(&mut self, name: Text<'a>, value: Text<'a>) {
        self.pairs.push((name, value));
    }

    #[inline]
    pub(crate) fn get(&self, text: Text<'a>) -> &str {
        resolve(&self.buf, text)
    }

    /// Copies `raw` unescaped into the buffer.
    pub(crate) fn unescape(&mut self, raw: &str, escapes: Escapes) -> Text<'a> {
        let start = self.buf.len();
        unescape_into(&mut self.buf, raw, escapes);
        Text::Buf {
            start,
            end: self.buf.len(),
        }
    }

    /// Rewrites the values of label `name` that parse as Go floats into the
    /// OpenMetrics canonical form (Prometheus 3's `le`/`quantile` rule).
    pub(crate) fn normalize_floats(&mut self, name: &str) {
        for i in 1..self.pairs.len() {
            let (label, value) = self.pairs[i];
            if resolve(&self.buf, label) != name {
                continue;
            }
            let Ok(f) = parse_go_float(resolve(&self.buf, value).as_bytes()) else {
                continue;
            };
            let start = self.buf.len();
            write_openmetrics_float(&mut self.buf, f);
            self.pairs[i].1 = Text::Buf {
                start,
                end: self.buf.len(),
            };
        }
    }

    /// Sorts the pairs by name and builds the label set, dropping empty
    /// values. Errors with the name when a name repeats.
    pub(crate) fn build(&mut self) -> Result<Labels, String> {
        let buf = self.buf.as_str();
        let pairs = &mut self.pairs;
        let mut sorted = true;
        for w in pairs.windows(2) {
            match resolve(buf, w[0].0).cmp(resolve(buf, w[1].0)) {
                Ordering::Less => {}
                Ordering::Equal => return Err(resolve(buf, w[0].0).to_string()),
                Ordering::Greater => {
                    sorted = false;
                    break;
                }
            }
        }
        if !sorted {
            pairs.sort_unstable_by(|a, b| resolve(buf, a.0).cmp(resolve(buf, b.0)));
            if let Some(w) = pairs
                .windows(2)
                .find(|w| resolve(buf, w[0].0) == resolve(buf, w[1].0))
            {
                return Err(resolve(buf, w[0].0).to_string());
            }
        }
        Ok(Labels::from_sorted(
            pairs
                .iter()
                .map(|&(n, v)| (resolve(buf, n), resolve(buf, v)))
                .filter(|(_, v)| !v.is_empty()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescaped(raw: &str, escapes: Escapes) -> String {
        let mut s = String::new();
        unescape_into(&mut s, raw, escapes);
        s
    }

    #[test]
    fn label_escapes() {
        assert_eq!(unescaped(r#"a\\b\"c\nd"#, Escapes::Label), "a\\b\"c\nd");
        assert_eq!(unescaped(r"C:\tmp\x", Escapes::Label), r"C:\tmp\x");
        assert_eq!(unescaped(r"\\n", Escapes::Label), r"\n");
        assert_eq!(unescaped(r"end\", Escapes::Label), r"end\");
        assert_eq!(unescaped("é\\né", Escapes::Label), "é\né");
    }

    #[test]
    fn help_escapes_keep_quotes_escaped() {
        assert_eq!(
            unescaped(r#"say \"hi\"\n\\"#, Escapes::Help),
            "say \\\"hi\\\"\n\\"
        );
    }

    #[test]
    fn build_sorts_detects_duplicates_and_drops_empty() {
        let mut s = LabelScratch::default();
        s.start_series();
        s.set_metric_name(Text::Input("m"));
        s.push(Text::Input("b"), Text::Input("2"));
        s.push(Text::Input("A"), Text::Input("1"));
        s.push(Text::Input("e"), Text::Input(""));
        let l = s.build().unwrap();
        assert_eq!(l, Labels::new([("A", "1"), ("__name__", "m"), ("b", "2")]));

        s.start_series();
        s.set_metric_name(Text::Input("m"));
        s.push(Text::Input("b"), Text::Input("2"));
        s.push(Text::Input("a"), Text::Input("1"));
        s.push(Text::Input("b"), Text::Input(""));
        assert_eq!(s.build().unwrap_err(), "b");
    }
}
