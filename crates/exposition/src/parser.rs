//! The streaming parser: [`Parser`] reads one entry at a time from a byte
//! slice, borrowing names and texts from it.
//!
//! The grammar of each text format is a hand-written scanner equivalent to
//! Prometheus's lexers (`promlex.l`, `openmetricslex.l`) and parsers
//! (`promparse.go`, `openmetricsparse.go`), in `parser/text.rs` and
//! `parser/openmetrics.rs`; what they share (names, quoted strings, values,
//! building a series, errors) lives here. Line numbers are computed only when
//! an error is reported. The protobuf format is decoded family by family in
//! `parser/protobuf.rs` and expanded into the same entries; the parser only
//! dispatches to it, so the text formats' path is unchanged.

mod openmetrics;
mod protobuf;
mod scratch;
mod text;

use std::borrow::Cow;

use hearth_model::{Labels, NORMAL_NAN_BITS};

use crate::entry::{Entry, Exemplar, Format, RawEntry, RawSeries};
use crate::error::{Error, Result};
use crate::family::Families;
use crate::float::parse_value;
use crate::MetricType;

use protobuf::ProtoReader;
use scratch::{Escapes, LabelScratch, Text};

/// A streaming parser of one exposition.
///
/// Yields entries in input order; stops after the first error (every later
/// call returns `None`), after the end of a text or protobuf exposition, and
/// after an OpenMetrics `# EOF`.
///
/// ```
/// use hearth_exposition::{Entry, Format, Parser};
///
/// let body = b"# TYPE up gauge\nup{job=\"node\"} 1\n";
/// let mut series = 0;
/// for entry in Parser::new(body, Format::Text004) {
///     if let Entry::Series { labels, value, .. } = entry? {
///         assert_eq!(labels.get("job"), Some("node"));
///         assert_eq!(value, 1.0);
///         series += 1;
///     }
/// }
/// assert_eq!(series, 1);
/// # Ok::<(), hearth_exposition::Error>(())
/// ```
#[derive(Debug)]
pub struct Parser<'a> {
    input: &'a [u8],
    /// The longest prefix of the input that is valid UTF-8, validated once so
    /// that names and values inside it need no validation of their own.
    valid: &'a str,
    /// Where the next entry starts.
    pos: usize,
    format: Format,
    finished: bool,
    /// Where the entry being parsed starts, for error context.
    line_start: usize,
    series: LabelScratch<'a>,
    exemplar: LabelScratch<'a>,
    families: Families,
    /// Where the series text (name and label block) of the sample line being
    /// parsed ends.
    series_end: usize,
    /// The family type of the last series returned by [`Parser::next_raw`],
    /// whose labels are still in `series`.
    pending: Option<MetricType>,
    /// Whether that series' label block was skipped (its text was the
    /// predicted one), so that [`Parser::series_labels`] scans it first.
    unscanned: bool,
    /// The protobuf format's reader, for that format only (boxed: the text
    /// formats' parser keeps its size).
    proto: Option<Box<ProtoReader<'a>>>,
}

/// What the format scanners return: a series is finished into an
/// [`Entry::Series`] or a [`RawSeries`] by the caller.
enum Parsed<'a> {
    Entry(Entry<'a>),
    Series(RawSeries<'a>),
}

/// Which label scratch a label list goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Series,
    Exemplar,
}

impl<'a> Parser<'a> {
    /// A parser of `input` in `format`, as lenient as Prometheus's.
    pub fn new(input: &'a [u8], format: Format) -> Self {
        let valid = if format == Format::PrometheusProto {
            // Protobuf is binary: its strings are validated as decoded.
            ""
        } else {
            match std::str::from_utf8(input) {
                Ok(valid) => valid,
                Err(e) => std::str::from_utf8(&input[..e.valid_up_to()])
                    .expect("the input is valid UTF-8 up to valid_up_to"),
            }
        };
        Self {
            input,
            valid,
            pos: 0,
            format,
            finished: false,
            line_start: 0,
            series: LabelScratch::default(),
            exemplar: LabelScratch::default(),
            families: Families::new(false),
            series_end: 0,
            pending: None,
            unscanned: false,
            proto: (format == Format::PrometheusProto).then(|| Box::new(ProtoReader::new(input))),
        }
    }

    /// Also enforces the OpenMetrics 1.0 rules on families that Prometheus
    /// does not check (see [`crate::family`]'s list), reporting violations as
    /// [`Error::NotConformant`]. Has no effect on the other formats.
    pub fn strict(mut self) -> Self {
        self.families = Families::new(self.format == Format::OpenMetrics);
        self
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next entry, `Ok(None)` at the end.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'a>>> {
        let next = match self.next_parsed(&[]) {
            Ok(Some(Parsed::Series(raw))) => self.series_labels().map(|labels| {
                Some(Entry::Series {
                    labels,
                    value: raw.value,
                    timestamp: raw.timestamp,
                    exemplar: raw.exemplar,
                    metric_type: raw.metric_type,
                })
            }),
            Ok(Some(Parsed::Entry(e))) => Ok(Some(e)),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if next.is_err() {
            self.finished = true;
        }
        next
    }

    /// The next entry, a sample line without its labels built: its series
    /// text (the name and label block as exposed) and everything else. The
    /// labels are built only when asked for with [`Parser::series_labels`],
    /// so that a caller caching by series text skips that work for the
    /// series it has seen. Syntax errors are reported as by
    /// [`Parser::next_entry`]; a repeated label name only by
    /// [`Parser::series_labels`].
    ///
    /// ```
    /// use hearth_exposition::{Format, Parser, RawEntry};
    ///
    /// let mut parser = Parser::new(b"up{job=\"node\"} 1\n", Format::Text004);
    /// let Some(RawEntry::Series(series)) = parser.next_raw()? else { panic!() };
    /// assert_eq!(&*series.text, b"up{job=\"node\"}");
    /// assert_eq!(series.value, 1.0);
    /// assert_eq!(parser.series_labels()?.get("job"), Some("node"));
    /// # Ok::<(), hearth_exposition::Error>(())
    /// ```
    pub fn next_raw(&mut self) -> Result<Option<RawEntry<'a>>> {
        self.next_raw_predicted(&[])
    }

    /// As [`Parser::next_raw`], given the series text the caller expects
    /// next (`predicted`; empty: none), which must be the text of a series
    /// that a parser of this format returned before (so that it is known to
    /// be valid). In the text format, a sample line that starts with exactly
    /// `predicted` followed by a space has its label block neither scanned
    /// nor validated again: only its value and timestamp are parsed. The
    /// labels are still built on demand by [`Parser::series_labels`].
    ///
    /// ```
    /// use hearth_exposition::{Format, Parser, RawEntry};
    ///
    /// let body = b"up{job=\"node\"} 1\nup{job=\"node\"} 2\n";
    /// let mut parser = Parser::new(body, Format::Text004);
    /// let Some(RawEntry::Series(first)) = parser.next_raw()? else { panic!() };
    /// let text = first.text.to_vec();
    /// let Some(RawEntry::Series(next)) = parser.next_raw_predicted(&text)? else { panic!() };
    /// assert_eq!((&*next.text, next.value), (&text[..], 2.0));
    /// assert_eq!(parser.series_labels()?.get("job"), Some("node"));
    /// # Ok::<(), hearth_exposition::Error>(())
    /// ```
    pub fn next_raw_predicted(&mut self, predicted: &[u8]) -> Result<Option<RawEntry<'a>>> {
        let next = self.next_parsed(predicted);
        if next.is_err() {
            self.finished = true;
        }
        Ok(next?.map(|p| match p {
            Parsed::Series(raw) => RawEntry::Series(raw),
            Parsed::Entry(e) => RawEntry::Other(e),
        }))
    }

    /// The labels of the series [`Parser::next_raw`] returned last, as
    /// [`Entry::Series`] has them (sorted, empty values dropped, `le` and
    /// `quantile` normalised). Errors when a label name repeats (or, in the
    /// protobuf format, is empty), or when the last entry was not a series.
    pub fn series_labels(&mut self) -> Result<Labels> {
        let Some(metric_type) = self.pending.take() else {
            return Err(Error::NoSeries);
        };
        if let Some(proto) = self.proto.as_deref_mut() {
            return proto.series_labels();
        }
        if std::mem::take(&mut self.unscanned) {
            // The text was valid when first seen, so this cannot fail.
            let (name, _) = self.text_series_labels(self.line_start)?;
            self.series.set_metric_name(name);
        }
        match metric_type {
            MetricType::Histogram => self.series.normalize_floats("le"),
            MetricType::Summary => self.series.normalize_floats("quantile"),
            _ => {}
        }
        let built = self.series.build();
        built.map_err(|name| self.duplicate(name))
    }

    fn next_parsed(&mut self, predicted: &[u8]) -> Result<Option<Parsed<'a>>> {
        self.pending = None;
        self.unscanned = false;
        if self.finished {
            return Ok(None);
        }
        let next = match self.format {
            Format::Text004 => self.next_text(predicted),
            Format::OpenMetrics => self.next_openmetrics(),
            Format::PrometheusProto => self.next_protobuf(),
        };
        if !matches!(next, Ok(Some(ref e)) if !matches!(e, Parsed::Entry(Entry::Eof))) {
            self.finished = true;
        }
        next
    }

    /// The next entry of a protobuf exposition; no series text is predicted
    /// there, as a series' key is made whole anyway. Never inlined, and the
    /// reader boxed, so that the text formats' loop and parser stay as small
    /// as they were (inlined, the text path measured 5-10% slower).
    #[inline(never)]
    fn next_protobuf(&mut self) -> Result<Option<Parsed<'a>>> {
        // Only a parser of another format has no reader: nothing to read.
        let Some(proto) = self.proto.as_deref_mut() else {
            return Ok(None);
        };
        let next = proto.next();
        self.pos = proto.position();
        if let Ok(Some(Parsed::Series(raw))) = &next {
            self.pending = Some(raw.metric_type);
        }
        next
    }

    fn scratch(&mut self, target: Target) -> &mut LabelScratch<'a> {
        match target {
            Target::Series => &mut self.series,
            Target::Exemplar => &mut self.exemplar,
        }
    }

    /// The 1-based line of byte `at`.
    fn line_of(&self, at: usize) -> usize {
        let at = at.min(self.input.len());
        memchr::memchr_iter(b'\n', &self.input[..at]).count() + 1
    }

    fn line(&self) -> usize {
        self.line_of(self.line_start)
    }

    /// The entry's text up to and including the token at `at`, quoted, at
    /// most 64 bytes (the end kept).
    fn context(&self, at: usize) -> String {
        let end = token_end(self.input, at);
        let start = self.line_start.max(end.saturating_sub(64)).min(end);
        let ellipsis = if start > self.line_start { "…" } else { "" };
        format!(
            "{ellipsis}{:?}",
            String::from_utf8_lossy(&self.input[start..end])
        )
    }

    /// "expected {expected}, got {token at `at`}".
    fn unexpected(&self, expected: &'static str, at: usize) -> Error {
        let got = if at >= self.input.len() {
            "end of input".to_string()
        } else {
            format!(
                "{:?}",
                String::from_utf8_lossy(&self.input[at..token_end(self.input, at)])
            )
        };
        Error::Unexpected {
            line: self.line_of(at),
            expected,
            got,
            context: self.context(at),
        }
    }

    /// `input[start..end]` as text, or an error naming `what` when it is not
    /// valid UTF-8.
    #[inline]
    fn utf8(&self, start: usize, end: usize, what: &'static str) -> Result<&'a str> {
        if let Some(s) = self.valid.get(start..end) {
            return Ok(s);
        }
        let bytes = &self.input[start..end];
        std::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 {
            line: self.line_of(start),
            what,
            text: String::from_utf8_lossy(bytes).into_owned(),
        })
    }

    /// `input[start..end]`, a scanned name or number, which is ASCII.
    #[inline]
    fn ascii(&self, start: usize, end: usize) -> &'a str {
        match self.valid.get(start..end) {
            Some(s) => s,
            None => std::str::from_utf8(&self.input[start..end]).expect("scanned names are ASCII"),
        }
    }

    /// The quoted string `input[start..end]` (quotes included), validated and
    /// unescaped into `target`'s scratch when it has escapes.
    fn quoted(
        &mut self,
        target: Target,
        start: usize,
        end: usize,
        escaped: bool,
        what: &'static str,
    ) -> Result<Text<'a>> {
        let raw = self.utf8(start + 1, end - 1, what)?;
        Ok(if escaped {
            self.scratch(target).unescape(raw, Escapes::Label)
        } else {
            Text::Input(raw)
        })
    }

    /// A quoted metric name in a metadata line, unescaped.
    fn quoted_family(
        &self,
        start: usize,
        end: usize,
        escaped: bool,
    ) -> Result<std::borrow::Cow<'a, str>> {
        let raw = self.utf8(start + 1, end - 1, "metric name")?;
        Ok(if escaped {
            let mut s = String::with_capacity(raw.len());
            scratch::unescape_into(&mut s, raw, Escapes::Label);
            std::borrow::Cow::Owned(s)
        } else {
            std::borrow::Cow::Borrowed(raw)
        })
    }

    /// A sample or exemplar value; any NaN becomes the normal NaN.
    fn value(&self, bytes: &[u8], at: usize, what: &'static str) -> Result<f64> {
        match parse_value(bytes) {
            Ok(v) if v.is_nan() => Ok(f64::from_bits(NORMAL_NAN_BITS)),
            Ok(v) => Ok(v),
            Err(reason) => Err(Error::InvalidFloat {
                line: self.line_of(at),
                what,
                text: String::from_utf8_lossy(bytes).into_owned(),
                reason,
            }),
        }
    }

    /// Finishes a sample line whose labels are in the scratch: the family
    /// type and the exemplar. The labels are built by
    /// [`Parser::series_labels`].
    fn finish_series(
        &mut self,
        name: Text<'a>,
        value: f64,
        timestamp: Option<i64>,
        exemplar: Option<(f64, Option<i64>)>,
    ) -> Result<Parsed<'a>> {
        let exemplar = match exemplar {
            Some((value, timestamp)) => {
                let labels = self.exemplar.build().map_err(|name| self.duplicate(name))?;
                Some(Exemplar {
                    labels,
                    value,
                    timestamp,
                })
            }
            None => None,
        };
        self.series.set_metric_name(name);
        let metric_name = self.series.get(name);
        let metric_type = self
            .families
            .on_series(metric_name, exemplar.as_ref().map(|e| &e.labels))
            .map_err(|message| Error::NotConformant {
                line: self.line(),
                message,
            })?;
        self.pending = Some(metric_type);
        Ok(Parsed::Series(RawSeries {
            text: Cow::Borrowed(&self.input[self.line_start..self.series_end]),
            value,
            timestamp,
            exemplar,
            metric_type,
        }))
    }

    fn duplicate(&self, name: String) -> Error {
        Error::DuplicateLabelName {
            line: self.line(),
            name,
        }
    }

    fn metric_name_not_set(&self, at: usize) -> Error {
        Error::MetricNameNotSet {
            line: self.line_of(at),
            context: self.context(at),
        }
    }

    fn metric_name_already_set(&self, at: usize) -> Error {
        Error::MetricNameAlreadySet {
            line: self.line_of(at),
            context: self.context(at),
        }
    }

    fn empty_name(&self, what: &'static str, at: usize) -> Error {
        Error::EmptyName {
            line: self.line_of(at),
            what,
            context: self.context(at),
        }
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

impl std::iter::FusedIterator for Parser<'_> {}

/// Byte classes of the name grammars.
const fn class_table(extra: &[u8], digits: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphabetic() || (digits && b.is_ascii_digit());
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// `[a-zA-Z_:]`, `[a-zA-Z0-9_:]`, `[a-zA-Z_]`, `[a-zA-Z0-9_]`.
static METRIC_START: [bool; 256] = class_table(b"_:", false);
static METRIC_CHAR: [bool; 256] = class_table(b"_:", true);
static LABEL_START: [bool; 256] = class_table(b"_", false);
static LABEL_CHAR: [bool; 256] = class_table(b"_", true);

fn is_metric_start(c: u8) -> bool {
    METRIC_START[c as usize]
}

fn is_label_start(c: u8) -> bool {
    LABEL_START[c as usize]
}

/// The end of the legacy metric name starting at `start`.
fn scan_metric_name(b: &[u8], start: usize) -> usize {
    b[start..]
        .iter()
        .position(|&c| !METRIC_CHAR[c as usize])
        .map_or(b.len(), |n| start + n)
}

/// The end of the legacy label name starting at `start`.
fn scan_label_name(b: &[u8], start: usize) -> usize {
    b[start..]
        .iter()
        .position(|&c| !LABEL_CHAR[c as usize])
        .map_or(b.len(), |n| start + n)
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_blanks(b: &[u8], pos: &mut usize) {
    while *pos < b.len() && is_blank(b[*pos]) {
        *pos += 1;
    }
}

/// Scans the quoted string at `b[start] == '"'`: `"(\\.|[^\\"])*"`, where
/// `.` is any byte but LF, and raw LF inside the quotes is allowed only in
/// the text format. Returns the end (after the closing quote) and whether it
/// has backslashes, or `None` when the string is not terminated validly.
fn scan_quoted(b: &[u8], start: usize, allow_newline: bool) -> Option<(usize, bool)> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        let rest = &b[i..];
        let off = if allow_newline {
            memchr::memchr2(b'"', b'\\', rest)
        } else {
            memchr::memchr3(b'"', b'\\', b'\n', rest)
        }?;
        i += off;
        match b[i] {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => match b.get(i + 1) {
                None | Some(b'\n') => return None,
                Some(_) => {
                    escaped = true;
                    i += 2;
                }
            },
            _ => return None,
        }
    }
}

/// The end of the token at `at`, for error messages: one delimiter, or a
/// run of other bytes up to the next delimiter (at most 32 bytes).
fn token_end(b: &[u8], at: usize) -> usize {
    if at >= b.len() {
        return b.len();
    }
    let is_delimiter = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b',' | b'{' | b'}' | b'=' | b'"');
    if is_delimiter(b[at]) {
        return at + 1;
    }
    let mut end = at + 1;
    while end < b.len() && end - at < 32 && !is_delimiter(b[end]) {
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawEntry;

    /// Every entry through `next_raw` and `series_labels`, as `next_entry`
    /// gives it, with the series texts.
    fn raw_entries(input: &[u8], format: Format) -> (Vec<Entry<'_>>, Vec<String>) {
        let mut parser = Parser::new(input, format);
        let mut entries = Vec::new();
        let mut texts = Vec::new();
        while let Some(raw) = parser.next_raw().expect("valid input") {
            match raw {
                RawEntry::Series(s) => {
                    texts.push(String::from_utf8(s.text.to_vec()).expect("UTF-8"));
                    entries.push(Entry::Series {
                        labels: parser.series_labels().expect("unique names"),
                        value: s.value,
                        timestamp: s.timestamp,
                        exemplar: s.exemplar,
                        metric_type: s.metric_type,
                    });
                }
                RawEntry::Other(e) => entries.push(e),
            }
        }
        (entries, texts)
    }

    #[test]
    fn raw_series_build_the_same_entries() {
        let text =
            b"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket {le=\"+Inf\",a=\"x\\\"y\"} 2 \
                     1000\n  up 1\n{\"quoted.name\", b=\"\"} 3\n# a comment\n";
        let (raw, texts) = raw_entries(text, Format::Text004);
        let entries: Vec<Entry<'_>> = Parser::new(text, Format::Text004)
            .collect::<Result<_>>()
            .expect("valid input");
        assert_eq!(raw, entries);
        assert_eq!(
            texts,
            [
                "h_bucket{le=\"1\"}",
                "h_bucket {le=\"+Inf\",a=\"x\\\"y\"}",
                "up",
                "{\"quoted.name\", b=\"\"}"
            ]
        );

        let om = b"# TYPE c counter\nc_total{a=\"1\"} 1 # {t=\"x\"} 2 3\nc_total 4 5\n# EOF\n";
        let (raw, texts) = raw_entries(om, Format::OpenMetrics);
        let entries: Vec<Entry<'_>> = Parser::new(om, Format::OpenMetrics)
            .collect::<Result<_>>()
            .expect("valid input");
        assert_eq!(raw, entries);
        assert_eq!(texts, ["c_total{a=\"1\"}", "c_total"]);
    }

    #[test]
    fn predicted_texts_skip_the_label_block_with_the_same_results() {
        let text =
            b"# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\",a=\"x\\\"y\"} 2 \
                     1000\nup 1\nup {a=\"b\"} 2\nup\t3\nup_total 4\nx{a=\"1\"} 5 6\n";
        let (expected, texts) = raw_entries(text, Format::Text004);
        let predictions: [&[u8]; 8] = [
            b"h_bucket{le=\"1.0\"}",
            b"h_bucket{le=\"+Inf\",a=\"x\\\"y\"}",
            b"up",
            b"up",
            b"up",
            b"up",
            b"x{a=\"1\"}",
            b"x{a=\"2\"}",
        ];
        let mut parser = Parser::new(text, Format::Text004);
        let mut entries = Vec::new();
        let mut got_texts = Vec::new();
        let mut skipped = 0;
        let mut series = 0;
        while let Some(raw) = parser
            .next_raw_predicted(predictions.get(series).copied().unwrap_or_default())
            .expect("valid input")
        {
            match raw {
                RawEntry::Series(s) => {
                    series += 1;
                    skipped += usize::from(parser.unscanned);
                    got_texts.push(String::from_utf8(s.text.to_vec()).expect("UTF-8"));
                    entries.push(Entry::Series {
                        labels: parser.series_labels().expect("unique names"),
                        value: s.value,
                        timestamp: s.timestamp,
                        exemplar: s.exemplar,
                        metric_type: s.metric_type,
                    });
                }
                RawEntry::Other(e) => entries.push(e),
            }
        }
        assert_eq!(entries, expected);
        assert_eq!(got_texts, texts);
        // Skipped: both buckets, "up 1" and "x{a=\"1\"} 5 6".
        assert_eq!(skipped, 4);
    }

    #[test]
    fn repeated_label_names_fail_when_labels_are_built() {
        let mut parser = Parser::new(b"a{x=\"1\",x=\"2\"} 1\n", Format::Text004);
        assert!(matches!(parser.next_raw(), Ok(Some(RawEntry::Series(_)))));
        assert!(matches!(
            parser.series_labels(),
            Err(Error::DuplicateLabelName { line: 1, .. })
        ));
        assert!(matches!(parser.series_labels(), Err(Error::NoSeries)));
    }
}
