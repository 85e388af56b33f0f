//! The OpenMetrics 1.0 text format, as Prometheus's `openmetricslex.l` and
//! `openmetricsparse.go` accept it: exactly one space between tokens, no
//! blank lines, only `# HELP`, `# TYPE`, `# UNIT` and `# EOF` comments,
//! timestamps in seconds, exemplars after ` # `, and `# EOF` last.
//!
//! Like Prometheus, the parser accepts a trailing comma in label sets and
//! does not check the family rules of the specification (see
//! [`Parser::strict`] for those).

use std::borrow::Cow;

use super::scratch::{unescape_into, Escapes, Text};
use super::{
    is_label_start, is_metric_start, scan_label_name, scan_metric_name, scan_quoted, Parsed,
    Parser, Target,
};
use crate::entry::{Entry, Format, MetricType};
use crate::error::{Error, Result};
use crate::family::Metadata;
use crate::float::{go_f64_to_i64, parse_value};

/// Which metadata line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Help,
    Type,
    Unit,
}

impl<'a> Parser<'a> {
    pub(super) fn next_openmetrics(&mut self) -> Result<Option<Parsed<'a>>> {
        let b = self.input;
        let pos = self.pos;
        self.line_start = pos;
        match b.get(pos) {
            None => Err(Error::MissingEof {
                line: self.line_of(pos),
            }),
            Some(b'#') => self.om_hash(pos).map(|e| Some(Parsed::Entry(e))),
            Some(&c) if c == b'{' || is_metric_start(c) => self.om_series(pos).map(Some),
            Some(_) => Err(self.unexpected("a valid start token", pos)),
        }
    }

    /// `# HELP`, `# TYPE`, `# UNIT` or `# EOF`.
    fn om_hash(&mut self, hash: usize) -> Result<Entry<'a>> {
        let b = self.input;
        if b.get(hash + 1) != Some(&b' ') {
            return Err(self.unexpected("a valid start token", hash));
        }
        let mut p = hash + 2;
        let rest = &b[p..];
        let keyword = if rest.starts_with(b"HELP ") {
            Keyword::Help
        } else if rest.starts_with(b"TYPE ") {
            Keyword::Type
        } else if rest.starts_with(b"UNIT ") {
            Keyword::Unit
        } else if rest.starts_with(b"EOF") {
            let mut end = p + 3;
            if b.get(end) == Some(&b'\n') {
                end += 1;
            }
            if end != b.len() {
                return Err(Error::DataAfterEof {
                    line: self.line_of(end),
                });
            }
            self.pos = end;
            return Ok(Entry::Eof);
        } else {
            return Err(self.unexpected("a valid start token", p));
        };
        let expected = match keyword {
            Keyword::Help => "metric name after HELP",
            Keyword::Type => "metric name after TYPE",
            Keyword::Unit => "metric name after UNIT",
        };
        p += 5;
        let family = match b.get(p) {
            Some(b'"') => {
                let Some((end, escaped)) = scan_quoted(b, p, false) else {
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
        if b.get(p) != Some(&b' ') {
            let expected = match keyword {
                Keyword::Help => "text in HELP",
                Keyword::Type => "text in TYPE",
                Keyword::Unit => "text in UNIT",
            };
            return Err(self.unexpected(expected, p));
        }
        let Some(eol) = memchr::memchr(b'\n', &b[p..]).map(|n| p + n) else {
            return Err(Error::MissingEof { line: self.line() });
        };
        let text = &b[p + 1..eol];
        self.pos = eol + 1;
        match keyword {
            Keyword::Help => {
                let raw = self.utf8(p + 1, eol, "help text")?;
                let text = if raw.contains('\\') {
                    let mut s = String::with_capacity(raw.len());
                    unescape_into(&mut s, raw, Escapes::Label);
                    Cow::Owned(s)
                } else {
                    Cow::Borrowed(raw)
                };
                self.om_metadata(&family, Metadata::Help)?;
                Ok(Entry::Help { family, text })
            }
            Keyword::Type => {
                let Some(metric_type) = MetricType::parse(text, Format::OpenMetrics) else {
                    return Err(Error::InvalidMetricType {
                        line: self.line(),
                        text: String::from_utf8_lossy(text).into_owned(),
                    });
                };
                self.om_metadata(&family, Metadata::Type(metric_type))?;
                Ok(Entry::Type {
                    family,
                    metric_type,
                })
            }
            Keyword::Unit => {
                let unit = self.utf8(p + 1, eol, "unit")?;
                let fits = family.len() > unit.len()
                    && family.ends_with(unit)
                    && family.as_bytes()[family.len() - unit.len() - 1] == b'_';
                if !unit.is_empty() && !fits {
                    return Err(Error::UnitNotSuffix {
                        line: self.line(),
                        unit: unit.to_string(),
                        family: family.into_owned(),
                    });
                }
                self.om_metadata(&family, Metadata::Unit(!unit.is_empty()))?;
                Ok(Entry::Unit {
                    family,
                    unit: Cow::Borrowed(unit),
                })
            }
        }
    }

    fn om_metadata(&mut self, family: &str, metadata: Metadata) -> Result<()> {
        self.families
            .on_metadata(family, metadata)
            .map_err(|message| Error::NotConformant {
                line: self.line(),
                message,
            })
    }

    /// A sample line: series, value, optional timestamp, optional exemplar.
    fn om_series(&mut self, start: usize) -> Result<Parsed<'a>> {
        let b = self.input;
        self.series.start_series();
        let mut p = start;
        let mut name = None;
        if b[p] != b'{' {
            let end = scan_metric_name(b, p);
            name = Some(Text::Input(self.ascii(p, end)));
            p = end;
            if b.get(p) == Some(&b'{') {
                p = self.om_labels(p + 1, Target::Series, &mut name)?;
            }
        } else {
            p = self.om_labels(p + 1, Target::Series, &mut name)?;
        }
        let Some(name) = name else {
            return Err(self.metric_name_not_set(p));
        };
        self.series_end = p;
        let (value, end) = self.om_value(p, "value after metric", "value")?;
        p = end;

        let mut timestamp = None;
        let mut exemplar = None;
        match b.get(p) {
            None => {
                return Err(Error::MissingEof {
                    line: self.line_of(p),
                })
            }
            Some(b'\n') => p += 1,
            Some(_) if b[p..].starts_with(b" # {") => {
                let (e, end) = self.om_exemplar(p + 4)?;
                exemplar = Some(e);
                p = end;
            }
            Some(_) => {
                let (ts, end) = self.om_timestamp(p, "timestamp or new record", "timestamp")?;
                timestamp = Some(ts);
                p = end;
                match b.get(p) {
                    None => {
                        return Err(Error::MissingEof {
                            line: self.line_of(p),
                        })
                    }
                    Some(b'\n') => p += 1,
                    Some(_) if b[p..].starts_with(b" # {") => {
                        let (e, end) = self.om_exemplar(p + 4)?;
                        exemplar = Some(e);
                        p = end;
                    }
                    Some(_) => return Err(self.unexpected("next entry after timestamp", p)),
                }
            }
        }
        self.pos = p;
        self.finish_series(name, value, timestamp, exemplar)
    }

    /// ` <value>` at `p`: one space and a run of bytes other than space and
    /// LF. Returns the value and the end of the token.
    fn om_value(
        &self,
        p: usize,
        expected: &'static str,
        what: &'static str,
    ) -> Result<(f64, usize)> {
        let b = self.input;
        let start = p + 1;
        if b.get(p) != Some(&b' ') || matches!(b.get(start), None | Some(b' ' | b'\n')) {
            return Err(self.unexpected(expected, p));
        }
        let end = token_end(b, start);
        Ok((self.value(&b[start..end], start, what)?, end))
    }

    /// ` <seconds>` at `p`, converted to milliseconds as Prometheus does.
    fn om_timestamp(
        &self,
        p: usize,
        expected: &'static str,
        what: &'static str,
    ) -> Result<(i64, usize)> {
        let b = self.input;
        let start = p + 1;
        if matches!(b.get(start), None | Some(b' ' | b'\n')) {
            return Err(self.unexpected(expected, start));
        }
        let end = token_end(b, start);
        let text = &b[start..end];
        let invalid = |reason: &'static str| Error::InvalidTimestamp {
            line: self.line_of(start),
            what,
            text: String::from_utf8_lossy(text).into_owned(),
            reason,
        };
        let seconds = parse_value(text).map_err(|e| invalid(e.as_str()))?;
        if !seconds.is_finite() {
            return Err(invalid("not a finite number"));
        }
        Ok((go_f64_to_i64(seconds * 1000.0), end))
    }

    /// The exemplar after ` # {` (labels start at `p`), through its line end.
    fn om_exemplar(&mut self, p: usize) -> Result<((f64, Option<i64>), usize)> {
        let b = self.input;
        self.exemplar.clear();
        let mut no_name = None;
        let p = self.om_labels(p, Target::Exemplar, &mut no_name)?;
        let (value, mut p) = self.om_value(p, "value after exemplar labels", "exemplar value")?;
        let mut timestamp = None;
        match b.get(p) {
            None => {
                return Err(Error::MissingEof {
                    line: self.line_of(p),
                })
            }
            Some(b'\n') => p += 1,
            Some(_) => {
                let (ts, end) =
                    self.om_timestamp(p, "timestamp or comment", "exemplar timestamp")?;
                timestamp = Some(ts);
                p = end;
                match b.get(p) {
                    None => {
                        return Err(Error::MissingEof {
                            line: self.line_of(p),
                        })
                    }
                    Some(b'\n') => p += 1,
                    Some(_) => {
                        return Err(self.unexpected("next entry after exemplar timestamp", p))
                    }
                }
            }
        }
        Ok(((value, timestamp), p))
    }

    /// The label list after `{` (at `p`), up to and including `}`. In a
    /// series, a quoted string followed by `,` or `}` is the metric name; an
    /// exemplar has no metric name.
    fn om_labels(
        &mut self,
        mut p: usize,
        target: Target,
        name: &mut Option<Text<'a>>,
    ) -> Result<usize> {
        let b = self.input;
        loop {
            let token = p;
            let (label, quoted) = match b.get(p) {
                Some(b'}') => return Ok(p + 1),
                Some(&c) if is_label_start(c) => {
                    let end = scan_label_name(b, p);
                    p = end;
                    (Text::Input(self.ascii(token, end)), false)
                }
                Some(b'"') => {
                    let Some((end, escaped)) = scan_quoted(b, p, false) else {
                        return Err(self.unexpected("label name", p));
                    };
                    p = end;
                    (
                        self.quoted(target, token, end, escaped, "label name")?,
                        true,
                    )
                }
                _ => return Err(self.unexpected("label name", p)),
            };
            let empty = quoted && p - token == 2;
            match b.get(p) {
                Some(&c @ (b',' | b'}')) if quoted => {
                    if target == Target::Exemplar {
                        return Err(self.unexpected("label name", p));
                    }
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
            if b.get(p) != Some(&b'"') {
                return Err(self.unexpected("label value", p));
            }
            let Some((end, escaped)) = scan_quoted(b, p, false) else {
                return Err(self.unexpected("label value", p));
            };
            let value = self.quoted(target, p, end, escaped, "label value")?;
            p = end;
            self.scratch(target).push(label, value);
            match b.get(p) {
                Some(b',') => p += 1,
                Some(b'}') => {}
                _ => return Err(self.unexpected("comma or brace close", p)),
            }
        }
    }
}

/// The end of an OpenMetrics value or timestamp token starting at `start`.
fn token_end(b: &[u8], start: usize) -> usize {
    b[start..]
        .iter()
        .position(|&c| c == b' ' || c == b'\n')
        .map_or(b.len(), |n| start + n)
}
