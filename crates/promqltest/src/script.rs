//! The script parser: turns a `.test` file into commands (`load`, `clear`,
//! `eval…`) with their expectations, as FORMAT.md describes. Problems are
//! kept on the command they belong to, so one bad eval fails alone and a
//! bad `load` or unknown command fails the file.

use regex::Regex;

use crate::lex::{parse_duration, parse_scalar_line, read_quoted};
use hearth_model::Labels;

use crate::series::{parse_series_line, parse_start_timestamps, start_timestamp_line, SeriesLine};

/// A parsed script.
#[derive(Debug, Clone)]
pub struct Script {
    pub commands: Vec<Command>,
}

/// One command with its (1-based) line.
#[derive(Debug, Clone)]
pub enum Command {
    Load(Load),
    Clear {
        line: usize,
    },
    Eval(Box<Eval>),
    /// A command that could not be parsed; it fails the whole file.
    Invalid {
        line: usize,
        msg: String,
    },
}

/// A `load` / `load_with_nhcb` block.
#[derive(Debug, Clone)]
pub struct Load {
    pub line: usize,
    pub step_ms: i64,
    pub with_nhcb: bool,
    /// Series in order, a later line with the same labels replacing the
    /// earlier one.
    pub series: Vec<SeriesLine>,
    /// Start-timestamp (`@st`) lines: per series, the offset of each
    /// sample's start timestamp from the sample's own time.
    pub start_timestamps: Vec<(Labels, Vec<Option<i64>>)>,
}

impl Load {
    /// Whether the block holds native histograms (or makes NHCBs).
    pub fn has_histograms(&self) -> bool {
        self.with_nhcb || self.series.iter().any(SeriesLine::has_histogram)
    }
}

/// When an eval runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalKind {
    Instant {
        at_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

/// How an expected message is matched.
#[derive(Debug, Clone)]
pub enum MessageMatch {
    Any,
    /// Exact equality with the trimmed text.
    Exact(String),
    /// An unanchored regex.
    Regex(Regex),
}

impl MessageMatch {
    pub fn matches(&self, msg: &str) -> bool {
        match self {
            MessageMatch::Any => true,
            MessageMatch::Exact(m) => m == msg,
            MessageMatch::Regex(r) => r.is_match(msg),
        }
    }
}

impl std::fmt::Display for MessageMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageMatch::Any => f.write_str("any message"),
            MessageMatch::Exact(m) => write!(f, "msg: {m}"),
            MessageMatch::Regex(r) => write!(f, "regex: {}", r.as_str()),
        }
    }
}

/// The `expect …` lines (and deprecated `eval_*` suffixes) of an eval.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// From an `expect fail` line.
    pub fail: Option<MessageMatch>,
    /// `eval_fail`: a failure with any message (unless an `expect fail`
    /// line says which).
    pub eval_fail: bool,
    pub warn: Vec<MessageMatch>,
    pub info: Vec<MessageMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    pub ordered: bool,
    /// `eval_warn`: at least one warning.
    pub any_warn: bool,
    /// `eval_info`: at least one info.
    pub any_info: bool,
}

impl Expectations {
    /// The failure expected, if any.
    pub fn failure(&self) -> Option<&MessageMatch> {
        static ANY: MessageMatch = MessageMatch::Any;
        self.fail.as_ref().or(self.eval_fail.then_some(&ANY))
    }
}

/// An expected series with its position among the expected lines.
#[derive(Debug, Clone)]
pub struct ExpectedSeries {
    /// 1-based position, for `ordered`.
    pub position: usize,
    pub line: usize,
    pub series: SeriesLine,
}

/// The expected result.
#[derive(Debug, Clone)]
pub enum Expected {
    /// Series lines (none: the result must be empty).
    Series(Vec<ExpectedSeries>),
    Scalar(f64),
    String(String),
}

/// `expect range vector from A to B step S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeVector {
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_ms: i64,
}

/// An `eval` command.
#[derive(Debug, Clone)]
pub struct Eval {
    pub line: usize,
    pub expr: String,
    pub kind: EvalKind,
    pub expect: Expectations,
    pub expected: Expected,
    pub range_vector: Option<RangeVector>,
    /// Why the eval's header or body did not parse; the eval then fails.
    pub error: Option<String>,
}

impl Eval {
    /// Whether the eval's own lines hold a native histogram.
    pub fn has_histograms(&self) -> bool {
        match &self.expected {
            Expected::Series(s) => s.iter().any(|e| e.series.has_histogram()),
            _ => false,
        }
    }
}

/// Parses a whole script. Never fails: problems are carried by
/// [`Command::Invalid`] and [`Eval::error`].
pub fn parse_script(text: &str) -> Script {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                ""
            } else {
                t
            }
        })
        .collect();
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.is_empty() {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        // The block: following non-empty lines.
        let body_end = (i + 1..lines.len())
            .find(|&j| lines[j].is_empty())
            .unwrap_or(lines.len());
        let body: Vec<(usize, &str)> = (i + 1..body_end).map(|j| (j + 1, lines[j])).collect();
        if word == "clear" {
            commands.push(Command::Clear { line: lineno });
            i += 1;
        } else if word.starts_with("load") {
            commands.push(match parse_load(lineno, line, &body) {
                Ok(l) => Command::Load(l),
                Err(msg) => Command::Invalid { line: lineno, msg },
            });
            i = body_end;
        } else if word.starts_with("eval") {
            let (eval, consumed) = parse_eval(lineno, line, &body);
            commands.push(Command::Eval(Box::new(eval)));
            i += 1 + consumed;
        } else {
            commands.push(Command::Invalid {
                line: lineno,
                msg: format!("invalid command {word:?}"),
            });
            i += 1;
        }
    }
    Script { commands }
}

fn parse_load(lineno: usize, header: &str, body: &[(usize, &str)]) -> Result<Load, String> {
    let parts: Vec<&str> = header.split_whitespace().collect();
    let with_nhcb = match parts.first().map(|w| w.to_ascii_lowercase()).as_deref() {
        Some("load") => false,
        Some("load_with_nhcb") => true,
        _ => return Err(format!("invalid load command {header:?}")),
    };
    let [_, step] = parts[..] else {
        return Err(format!("invalid load command {header:?}"));
    };
    let step_ms = parse_duration(step)?;
    let mut series: Vec<SeriesLine> = Vec::new();
    let mut start_timestamps = Vec::new();
    let mut pending: Option<(usize, Labels, Vec<Option<i64>>)> = None;
    for &(n, text) in body {
        if let Some((labels, rest)) = start_timestamp_line(text) {
            if let Some((m, ..)) = pending {
                return Err(format!("line {m}: start timestamps without their series"));
            }
            let st = parse_start_timestamps(rest).map_err(|e| format!("line {n}: {e}"))?;
            pending = Some((n, labels, st));
            continue;
        }
        let s = parse_series_line(text).map_err(|e| format!("line {n}: {e}"))?;
        if s.slots.is_empty() {
            return Err(format!("line {n}: series without values"));
        }
        if let Some((m, labels, st)) = pending.take() {
            if labels != s.labels {
                return Err(format!("line {m}: start timestamps without their series"));
            }
            if st.len() != s.slots.len() {
                return Err(format!(
                    "line {m}: {} start timestamps for {} samples",
                    st.len(),
                    s.slots.len()
                ));
            }
            start_timestamps.push((labels, st));
        }
        if let Some(old) = series.iter_mut().find(|o| o.labels == s.labels) {
            *old = s;
        } else {
            series.push(s);
        }
    }
    if let Some((m, ..)) = pending {
        return Err(format!("line {m}: start timestamps without their series"));
    }
    Ok(Load {
        line: lineno,
        step_ms,
        with_nhcb,
        series,
        start_timestamps,
    })
}

/// Parses `eval…` and its body; returns the eval and the body lines used.
fn parse_eval(lineno: usize, header: &str, body: &[(usize, &str)]) -> (Eval, usize) {
    let mut eval = Eval {
        line: lineno,
        expr: String::new(),
        kind: EvalKind::Instant { at_ms: 0 },
        expect: Expectations::default(),
        expected: Expected::Series(Vec::new()),
        range_vector: None,
        error: None,
    };
    if let Err(e) = parse_eval_header(header, &mut eval) {
        eval.error = Some(e);
    }
    let mut consumed = 0;
    let mut expected: Vec<ExpectedSeries> = Vec::new();
    let mut position = 0;
    for &(n, text) in body {
        consumed += 1;
        match parse_body_line(n, text, &mut eval, &mut expected, &mut position) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                if eval.error.is_none() {
                    eval.error = Some(format!("line {n}: {e}"));
                }
            }
        }
    }
    if let Expected::Series(s) = &mut eval.expected {
        *s = expected;
    }
    for e in checks(&eval) {
        if eval.error.is_none() {
            eval.error = Some(e);
        }
    }
    (eval, consumed)
}

fn checks(eval: &Eval) -> Vec<String> {
    let mut errs = Vec::new();
    let x = &eval.expect;
    if !x.warn.is_empty() && x.no_warn {
        errs.push("expect warn and expect no_warn together".to_string());
    }
    if !x.info.is_empty() && x.no_info {
        errs.push("expect info and expect no_info together".to_string());
    }
    if eval.range_vector.is_some() && matches!(eval.kind, EvalKind::Range { .. }) {
        errs.push("expect range vector on a range eval".to_string());
    }
    if let EvalKind::Range {
        start_ms,
        end_ms,
        step_ms,
    } = eval.kind
    {
        if let Expected::Series(s) = &eval.expected {
            let steps = if step_ms > 0 {
                (end_ms - start_ms) / step_ms + 1
            } else {
                1
            };
            if s.iter().any(|e| e.series.slots.len() as i64 > steps) {
                errs.push("more expected values than steps".to_string());
            }
        }
    }
    errs
}

fn parse_eval_header(header: &str, eval: &mut Eval) -> Result<(), String> {
    let mut rest = header;
    let mut word = || -> Option<&str> {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (w, r) = t.split_at(end);
        rest = r;
        (!w.is_empty()).then_some(w)
    };
    let cmd = word().unwrap_or_default().to_ascii_lowercase();
    match cmd.as_str() {
        "eval" => {}
        "eval_fail" => eval.expect.eval_fail = true,
        "eval_warn" => eval.expect.any_warn = true,
        "eval_info" => eval.expect.any_info = true,
        "eval_ordered" => eval.expect.ordered = true,
        _ => return Err(format!("invalid eval command {cmd:?}")),
    }
    let bad = || format!("invalid eval header {header:?}");
    match word() {
        Some("instant") => {
            if word() != Some("at") {
                return Err(bad());
            }
            let at = word().ok_or_else(bad)?;
            eval.kind = EvalKind::Instant {
                at_ms: parse_duration(at)?,
            };
        }
        Some("range") => {
            if eval.expect.ordered {
                return Err("eval_ordered is for instant evals only".into());
            }
            let mut times = [0i64; 3];
            for (kw, slot) in ["from", "to", "step"].iter().zip(times.iter_mut()) {
                if word() != Some(*kw) {
                    return Err(bad());
                }
                *slot = parse_duration(word().ok_or_else(bad)?)?;
            }
            let [start_ms, end_ms, step_ms] = times;
            if end_ms < start_ms {
                return Err("range end before start".into());
            }
            if step_ms <= 0 {
                return Err("range step must be positive".into());
            }
            eval.kind = EvalKind::Range {
                start_ms,
                end_ms,
                step_ms,
            };
        }
        _ => return Err(bad()),
    }
    eval.expr = rest.trim().to_string();
    if eval.expr.is_empty() {
        return Err("eval without an expression".into());
    }
    Ok(())
}

fn expect_line_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^expect\s+(\S+)(?:\s+(msg|regex):(.*))?$").expect("the pattern is valid")
    })
}

/// Parses one body line. Ok(false) ends the body (a scalar line).
fn parse_body_line(
    line: usize,
    text: &str,
    eval: &mut Eval,
    expected: &mut Vec<ExpectedSeries>,
    position: &mut usize,
) -> Result<bool, String> {
    if let Some(r) = text.strip_prefix("expect range vector") {
        let p: Vec<&str> = r.split_whitespace().collect();
        let ["from", a, "to", b, "step", s] = p[..] else {
            return Err(format!("invalid {text:?}"));
        };
        let rv = RangeVector {
            from_ms: parse_duration(a)?,
            to_ms: parse_duration(b)?,
            step_ms: parse_duration(s)?,
        };
        if rv.step_ms <= 0 || rv.to_ms < rv.from_ms {
            return Err(format!("invalid {text:?}"));
        }
        eval.range_vector = Some(rv);
        return Ok(true);
    }
    if let Some(r) = text.strip_prefix("expect string") {
        if !matches!(eval.kind, EvalKind::Instant { .. }) {
            return Err("expect string on a range eval".into());
        }
        let r = r.trim();
        let (s, used) = read_quoted(r)?;
        if used != r.len() {
            return Err(format!("trailing text after the string in {text:?}"));
        }
        eval.expected = Expected::String(s);
        return Ok(true);
    }
    if text.split(' ').next() == Some("expect") {
        let caps = expect_line_regex()
            .captures(text)
            .ok_or_else(|| format!("invalid expect line {text:?}"))?;
        let kind = caps.get(1).map_or("", |m| m.as_str());
        let matcher = match (caps.get(2).map(|m| m.as_str()), caps.get(3)) {
            (Some("msg"), Some(t)) => MessageMatch::Exact(t.as_str().trim().to_string()),
            (Some("regex"), Some(t)) => MessageMatch::Regex(
                Regex::new(t.as_str().trim()).map_err(|e| format!("invalid regex: {e}"))?,
            ),
            _ => MessageMatch::Any,
        };
        let x = &mut eval.expect;
        match kind {
            "fail" => {
                if x.fail.is_some() {
                    return Err("more than one expect fail".into());
                }
                x.fail = Some(matcher);
            }
            "warn" => x.warn.push(matcher),
            "info" => x.info.push(matcher),
            "no_warn" => x.no_warn = true,
            "no_info" => x.no_info = true,
            "ordered" => x.ordered = true,
            other => return Err(format!("unknown expectation {other:?}")),
        }
        return Ok(true);
    }
    if let Some(v) = parse_scalar_line(text) {
        eval.expected = Expected::Scalar(v);
        return Ok(false);
    }
    let series = parse_series_line(text)?;
    if matches!(eval.kind, EvalKind::Instant { .. })
        && eval.range_vector.is_none()
        && series.slots.len() > 1
    {
        return Err(format!("more than one value in instant eval line {text:?}"));
    }
    *position += 1;
    let entry = ExpectedSeries {
        position: *position,
        line,
        series,
    };
    if let Some(old) = expected
        .iter_mut()
        .find(|e| e.series.labels == entry.series.labels)
    {
        *old = entry;
    } else {
        expected.push(entry);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_eval(text: &str) -> Eval {
        let s = parse_script(text);
        match s.commands.into_iter().find_map(|c| match c {
            Command::Eval(e) => Some(e),
            _ => None,
        }) {
            Some(e) => *e,
            None => panic!("no eval in {text:?}"),
        }
    }

    #[test]
    fn comment_ends_block_and_means_empty() {
        let s = parse_script("load 5m\n  a 1 2\n# comment\n  b 1\n");
        assert!(matches!(&s.commands[0], Command::Load(l) if l.series.len() == 1));
        assert!(
            matches!(&s.commands[1], Command::Invalid { .. }),
            "b 1 is not a command"
        );
        let e = only_eval("eval instant at 5m a\n# empty\n");
        assert!(matches!(&e.expected, Expected::Series(v) if v.is_empty()));
        assert!(e.error.is_none());
    }

    #[test]
    fn headers() {
        let e = only_eval("eval instant at 1m30s sum by (x) (a)");
        assert_eq!(e.kind, EvalKind::Instant { at_ms: 90_000 });
        assert_eq!(e.expr, "sum by (x) (a)");
        let e = only_eval("eval range from 0 to 10m step 5m rate(a[5m])\n  {} 1 _ 3");
        assert_eq!(
            e.kind,
            EvalKind::Range {
                start_ms: 0,
                end_ms: 600_000,
                step_ms: 300_000
            }
        );
        assert!(e.error.is_none());
        let e = only_eval("eval range from 10m to 0 step 5m a");
        assert!(e.error.is_some(), "end before start");
        let e = only_eval("eval_fail instant at 0 a");
        assert!(matches!(e.expect.failure(), Some(MessageMatch::Any)));
        let e = only_eval("eval_fail instant at 0 a\n  expect fail msg: boom\n");
        assert!(matches!(e.expect.failure(), Some(MessageMatch::Exact(m)) if m == "boom"));
        assert!(e.error.is_none());
        let e = only_eval("eval instant a");
        assert!(e.error.is_some());
    }

    #[test]
    fn expect_lines() {
        let e = only_eval(
            "eval instant at 0 a\n  expect fail msg:vector cannot contain metrics\n  expect warn regex: PromQL warning: .* \\([0-9]+:[0-9]+\\)\n  expect no_info\n  expect ordered\n",
        );
        assert!(
            matches!(&e.expect.fail, Some(MessageMatch::Exact(m)) if m == "vector cannot contain metrics")
        );
        assert!(
            matches!(&e.expect.warn[0], MessageMatch::Regex(r) if r.is_match("x PromQL warning: y (1:2)"))
        );
        assert!(e.expect.no_info && e.expect.ordered);
        let e = only_eval("eval instant at 0 a\n expect warn\n expect no_warn\n");
        assert!(e.error.is_some(), "warn with no_warn");
        let e = only_eval("eval instant at 0 a\n expect fail\n expect fail\n");
        assert!(e.error.is_some(), "two fails");
        let e = only_eval("eval instant at 0 a\n expect{} 1\n");
        assert!(e.error.is_none());
    }

    #[test]
    fn scalar_string_and_range_vector() {
        let e = only_eval("eval instant at 0 1\n  0x10\n");
        assert!(matches!(e.expected, Expected::Scalar(v) if v == 16.0));
        let e = only_eval("eval instant at 0 \"a\"\n  expect string \" Foo \"\n");
        assert!(matches!(&e.expected, Expected::String(s) if s == " Foo "));
        let e = only_eval(
            "eval instant at 1m a[1m]\n  expect range vector from 10s to 1m step 10s\n  a 1 2 3 4 5 6\n",
        );
        assert_eq!(
            e.range_vector,
            Some(RangeVector {
                from_ms: 10_000,
                to_ms: 60_000,
                step_ms: 10_000
            })
        );
        assert!(e.error.is_none());
        let e = only_eval("eval instant at 1m a\n  a 1 2\n");
        assert!(e.error.is_some(), "two values on an instant line");
    }

    #[test]
    fn scalar_line_ends_the_block() {
        let s = parse_script("eval instant at 0 1\n  1\n  eval instant at 0 2\n  2\n");
        let evals = s
            .commands
            .iter()
            .filter(|c| matches!(c, Command::Eval(_)))
            .count();
        assert_eq!(evals, 2);
    }

    #[test]
    fn tricky_series_lines() {
        let e = only_eval("eval range from 0 to 4m step 1m a\n  a 1 _x3 stale\n  {} 0x4\n");
        assert!(e.error.is_none(), "{:?}", e.error);
        let Expected::Series(s) = &e.expected else {
            panic!("series expected")
        };
        assert_eq!(s[0].series.slots.len(), 5);
        assert_eq!(s[1].series.slots.len(), 5, "0x4 is five zeros");
        let e = only_eval("eval range from 0 to 1m step 1m a\n  a 1 2 3\n");
        assert!(e.error.is_some(), "more values than steps");
        let e = only_eval("eval instant at 0 a\n  {} {{schema:0 sum:1 count:1}}x1\n");
        assert!(e.error.is_some(), "two histograms on an instant line");
        let e = only_eval("eval instant at 0 a\n  {} {{schema:0 sum:1 count:1 buckets:[1]}}\n");
        assert!(e.has_histograms() && e.error.is_none());
    }

    #[test]
    fn ordered_positions_and_replacement() {
        let e = only_eval("eval instant at 0 a\n  expect ordered\n  a{x=\"1\"} 1\n  a{x=\"2\"} 2\n  a{x=\"1\"} 3\n");
        let Expected::Series(s) = &e.expected else {
            panic!("series expected")
        };
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].position, 3);
        assert_eq!(s[1].position, 2);
    }

    #[test]
    fn unknown_command_and_load() {
        let s = parse_script(
            "ignore\nload 1m\n  a{b=\"c\"} 1+1x2\n  a{b=\"c\"} 5\n  c@st _ 0\n  c 1 2\n\nclear\n",
        );
        assert!(matches!(&s.commands[0], Command::Invalid { line: 1, .. }));
        let Command::Load(l) = &s.commands[1] else {
            panic!("load expected")
        };
        assert_eq!(l.step_ms, 60_000);
        assert_eq!(l.series.len(), 2);
        assert_eq!(l.series[0].slots.len(), 1, "later line replaces");
        assert!(matches!(s.commands[2], Command::Clear { line: 8 }));
        let s = parse_script("load_with_nhcb 1m\n  h_bucket{le=\"1\"} 1\n");
        assert!(matches!(&s.commands[0], Command::Load(l) if l.has_histograms()));
        let s = parse_script("load 1m\n  a 1 {{schema:0 sum:1\n");
        assert!(matches!(&s.commands[0], Command::Invalid { .. }));
        let s = parse_script("load 1m\n  c@st _ 0 0\n  c 1 2\n");
        assert!(
            matches!(&s.commands[0], Command::Invalid { .. }),
            "length mismatch"
        );
        let s = parse_script("load 1m\n  c@st _ 0\n  d 1 2\n");
        assert!(
            matches!(&s.commands[0], Command::Invalid { .. }),
            "other series"
        );
    }
}
