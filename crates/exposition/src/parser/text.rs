//! The Prometheus text format 0.0.4 (and 1.0.0's quoted names), with the
//! leniency of Prometheus's `promlex.l`/`promparse.go`: blanks (spaces and
//! tabs) before any line and around `{`, `}`, `=` and `,`; a missing comma
//! between labels; a trailing comma; blank lines; any `#` line that is not
//! HELP or TYPE is a comment; a missing final newline.
//!
//! Deliberate differences from Prometheus: a NUL byte at the start of a line
//! is an error rather than a silent end of input; a quoted family name in
//! HELP/TYPE is unescaped like a quoted series name; an empty quoted metric or
//! label name is a parse error rather than a failure when the series is
//! appended.

use std::borrow::Cow;

use super::scratch::{unescape_into, Escapes, Text};
use super::{
    is_blank, is_label_start, is_metric_start, scan_label_name, scan_metric_name, scan_quoted,
    skip_blanks, Parsed, Parser, Target,
};
use crate::entry::{Entry, Format, MetricType};
use crate::error::{Error, Result};
use crate::family::Metadata;

impl<'a> Parser<'a> {
    pub(super) fn next_text(&mut self, predicted: &[u8]) -> Result<Option<Parsed<'a>>> {
        let b = self.input;
        loop {
            let mut pos = self.pos;
            skip_blanks(b, &mut pos);
            self.line_start = pos;
            let Some(&c) = b.get(pos) else {
                self.pos = pos;
                return Ok(None);
            };
            return match c {
                b'\n' => {
                    self.pos = pos + 1;
                    continue;
                }
                b'#' => self.text_hash(pos).map(|e| Some(Parsed::Entry(e))),
                b'{' => self.text_series(pos, &[]).map(Some),
                c if is_metric_start(c) => self.text_series(pos, predicted).map(Some),
                _ => Err(self.unexpected("a valid start token", pos)),
            };
        }
    }

    /// A line starting with `#`: HELP, TYPE or a comment.
    fn text_hash(&mut self, hash: usize) -> Result<Entry<'a>> {
        let b = self.input;
        let mut p = hash + 1;
        if !b.get(p).copied().is_some_and(is_blank) {
            return Ok(self.text_comment(p));
        }
        skip_blanks(b, &mut p);
        let keyword_then_blank =
            |kw: &[u8]| b[p..].starts_with(kw) && b.get(p + 4).copied().is_some_and(is_blank);
        let is_help = keyword_then_blank(b"HELP");
        if !is_help && !keyword_then_blank(b"TYPE") {
            return Ok(self.text_comment(p));
        }
        let expected = if is_help {
            "metric name after HELP"
        } else {
            "metric name after TYPE"
        };
        p += 4;
        skip_blanks(b, &mut p);
        let family = match b.get(p) {
            Some(b'"') => {
                let Some((end, escaped)) = scan_quoted(b, p, true) else {
                    return Err(self.unexpected(expected, p));
                };
                let family = self.quoted_family(p, end, escaped)?;
                p = end;
                family
            }
            Some(&c) if is_metric_start(c) => {
                let end = scan_metric_name(b, p);
                let family = Cow::Borrowed(self.ascii(p, end));
                p = end;
                family
            }
            _ => return Err(self.unexpected(expected, p)),
        };
        let eol = memchr::memchr(b'\n', &b[p..]).map_or(b.len(), |n| p + n);
        // Prometheus's lexer: blanks alone are no text; otherwise the text is
        // the rest of the line minus its first byte (the separator).
        let blank = b[p..eol].iter().all(|&c| is_blank(c));
        let text_start = if blank { eol } else { p + 1 };
        let text = &b[text_start..eol];
        self.pos = (eol + 1).min(b.len());
        if is_help {
            let raw = self.utf8(text_start, eol, "help text")?;
            let text = if raw.contains('\\') {
                let mut s = String::with_capacity(raw.len());
                unescape_into(&mut s, raw, Escapes::Help);
                Cow::Owned(s)
            } else {
                Cow::Borrowed(raw)
            };
            self.text_metadata(&family, Metadata::Help)?;
            Ok(Entry::Help { family, text })
        } else {
            let Some(metric_type) = MetricType::parse(text, Format::Text004) else {
                return Err(Error::InvalidMetricType {
                    line: self.line(),
                    text: String::from_utf8_lossy(text).into_owned(),
                });
            };
            self.text_metadata(&family, Metadata::Type(metric_type))?;
            Ok(Entry::Type {
                family,
                metric_type,
            })
        }
    }

    fn text_metadata(&mut self, family: &str, metadata: Metadata) -> Result<()> {
        self.families
            .on_metadata(family, metadata)
            .map_err(|message| Error::NotConformant {
                line: self.line(),
                message,
            })
    }

    /// A comment whose text starts at `start` and runs to the end of line.
    fn text_comment(&mut self, start: usize) -> Entry<'a> {
        let b = self.input;
        let eol = memchr::memchr(b'\n', &b[start..]).map_or(b.len(), |n| start + n);
        self.pos = (eol + 1).min(b.len());
        Entry::Comment(&b[start..eol])
    }

    /// A sample line starting with a metric name or `{`; its label block is
    /// skipped when the line starts with the `predicted` series text.
    fn text_series(&mut self, start: usize, predicted: &[u8]) -> Result<Parsed<'a>> {
        let b = self.input;
        let (name, mut p) = match self.text_predicted(start, predicted) {
            Some(found) => found,
            None => self.text_series_labels(start)?,
        };

        let value_start = p;
        while p < b.len() && !matches!(b[p], b'{' | b' ' | b'\t' | b'\n') {
            p += 1;
        }
        if p == value_start {
            return Err(self.unexpected("value after metric", p));
        }
        let value = self.value(&b[value_start..p], value_start, "value")?;

        skip_blanks(b, &mut p);
        let mut timestamp = None;
        match b.get(p) {
            None => {}
            Some(b'\n') => p += 1,
            Some(c) if c.is_ascii_digit() => {
                let ts_start = p;
                while p < b.len() && b[p].is_ascii_digit() {
                    p += 1;
                }
                let digits = self.ascii(ts_start, p);
                timestamp = Some(digits.parse::<i64>().map_err(|_| Error::InvalidTimestamp {
                    line: self.line(),
                    what: "timestamp",
                    text: digits.to_string(),
                    reason: "value out of range",
                })?);
                skip_blanks(b, &mut p);
                match b.get(p) {
                    None => {}
                    Some(b'\n') => p += 1,
                    Some(_) => return Err(self.unexpected("next entry after timestamp", p)),
                }
            }
            Some(_) => return Err(self.unexpected("timestamp or new record", p)),
        }
        self.pos = p;
        self.finish_series(name, value, timestamp, None)
    }

    /// The metric name and labels of the sample line starting at `start`
    /// (into the series scratch), and where its value starts.
    pub(super) fn text_series_labels(&mut self, start: usize) -> Result<(Text<'a>, usize)> {
        let b = self.input;
        self.series.start_series();
        let mut p = start;
        let mut name = None;
        if b[p] != b'{' {
            let end = scan_metric_name(b, p);
            name = Some(Text::Input(self.ascii(p, end)));
            p = end;
            self.series_end = p;
            skip_blanks(b, &mut p);
            if b.get(p) == Some(&b'{') {
                p = self.text_labels(p + 1, &mut name)?;
                self.series_end = p;
                skip_blanks(b, &mut p);
            }
        } else {
            p = self.text_labels(p + 1, &mut name)?;
            self.series_end = p;
            skip_blanks(b, &mut p);
        }
        match name {
            Some(name) => Ok((name, p)),
            None => Err(self.metric_name_not_set(p)),
        }
    }

    /// The fast path of a line starting at `start` with a legacy metric name
    /// and exactly the `predicted` series text (already validated) followed
    /// by a space: the metric name and where the value starts, the label
    /// block not scanned (see [`Parser::series_labels`]). `None` when the
    /// line must be scanned.
    #[inline]
    fn text_predicted(&mut self, start: usize, predicted: &[u8]) -> Option<(Text<'a>, usize)> {
        let b = self.input;
        let end = start + predicted.len();
        if predicted.is_empty() || b.get(end) != Some(&b' ') || !b[start..].starts_with(predicted) {
            return None;
        }
        // Stops at the space at `end` at the latest.
        let name_end = scan_metric_name(b, start);
        let mut p = end;
        skip_blanks(b, &mut p);
        if b.get(p) == Some(&b'{') {
            // A bare name predicted, but this line has a label block after
            // blanks.
            return None;
        }
        self.series.start_series();
        self.series_end = end;
        self.unscanned = true;
        Some((Text::Input(self.ascii(start, name_end)), p))
    }

    /// The label list after `{` (at `p`), up to and including `}`. A quoted
    /// string followed by `,` or `}` is the metric name.
    fn text_labels(&mut self, mut p: usize, name: &mut Option<Text<'a>>) -> Result<usize> {
        let b = self.input;
        loop {
            skip_blanks(b, &mut p);
            let token = p;
            let (label, quoted) = match b.get(p) {
                Some(b'}') => return Ok(p + 1),
                Some(&c) if is_label_start(c) => {
                    let end = scan_label_name(b, p);
                    p = end;
                    (Text::Input(self.ascii(token, end)), false)
                }
                Some(b'"') => {
                    let Some((end, escaped)) = scan_quoted(b, p, true) else {
                        return Err(self.unexpected("label name", p));
                    };
                    p = end;
                    (
                        self.quoted(Target::Series, token, end, escaped, "label name")?,
                        true,
                    )
                }
                _ => return Err(self.unexpected("label name", p)),
            };
            let empty = quoted && p - token == 2;
            skip_blanks(b, &mut p);
            match b.get(p) {
                Some(&c @ (b',' | b'}')) if quoted => {
                    if name.is_some() {
                        return Err(self.metric_name_already_set(p));
                    }
                    if empty {
                        return Err(self.empty_name("metric name", token));
                    }
                    *name = Some(label);
                    p += 1;
                    if c == b'}' {
                        return Ok(p);
                    }
                    continue;
                }
                Some(b'=') => p += 1,
                _ => return Err(self.unexpected("equal", p)),
            }
            if empty {
                return Err(self.empty_name("label name", token));
            }
            skip_blanks(b, &mut p);
            if b.get(p) != Some(&b'"') {
                return Err(self.unexpected("label value", p));
            }
            let Some((end, escaped)) = scan_quoted(b, p, true) else {
                return Err(self.unexpected("label value", p));
            };
            let value = self.quoted(Target::Series, p, end, escaped, "label value")?;
            p = end;
            self.series.push(label, value);
            skip_blanks(b, &mut p);
            if b.get(p) == Some(&b',') {
                p += 1;
            }
        }
    }
}
