//! Every error case: Prometheus's parser error tests for both formats and
//! the spec's rules, with the line each error is reported on. A parser
//! stops at its first error.

use hearth_exposition::{Entry, Error, Format, Parser};

/// The first error parsing `input`, after checking the parser stops there.
fn first_error(input: &[u8], format: Format) -> Error {
    let mut parser = Parser::new(input, format);
    loop {
        match parser.next() {
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                assert!(parser.next().is_none(), "parser goes on after {e}");
                return e;
            }
            None => panic!("{:?} parsed without error", String::from_utf8_lossy(input)),
        }
    }
}

/// What an error must be: its variant (by the `expected` text for
/// `Unexpected`) and line.
#[derive(Debug)]
enum Want {
    Expected(&'static str),
    Float,
    Timestamp,
    MetricType(&'static str),
    Utf8,
    EmptyName,
    NameNotSet,
    NameAlreadySet,
    Duplicate(&'static str),
    MissingEof,
    DataAfterEof,
}

fn check(format: Format, cases: &[(&[u8], Want, usize)]) {
    for (input, want, line) in cases {
        let err = first_error(input, format);
        let ok = match (want, &err) {
            (Want::Expected(e), Error::Unexpected { expected, .. }) => e == expected,
            (Want::Float, Error::InvalidFloat { .. }) => true,
            (Want::Timestamp, Error::InvalidTimestamp { .. }) => true,
            (Want::MetricType(t), Error::InvalidMetricType { text, .. }) => t == text,
            (Want::Utf8, Error::InvalidUtf8 { .. }) => true,
            (Want::EmptyName, Error::EmptyName { .. }) => true,
            (Want::NameNotSet, Error::MetricNameNotSet { .. }) => true,
            (Want::NameAlreadySet, Error::MetricNameAlreadySet { .. }) => true,
            (Want::Duplicate(n), Error::DuplicateLabelName { name, .. }) => n == name,
            (Want::MissingEof, Error::MissingEof { .. }) => true,
            (Want::DataAfterEof, Error::DataAfterEof { .. }) => true,
            _ => false,
        };
        assert!(
            ok,
            "{:?}: want {want:?}, got {err:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(
            err.line(),
            Some(*line),
            "{:?}: {err}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn text_format_errors() {
    use Want::*;
    check(
        Format::Text004,
        &[
            (b"a", Expected("value after metric"), 1),
            (b"a\n", Expected("value after metric"), 1),
            (b"a{b='c'} 1\n", Expected("label value"), 1),
            (b"a{b=\n", Expected("label value"), 1),
            (b"a{\xff=\"foo\"} 1\n", Expected("label name"), 1),
            (b"a{b=\"\xff\"} 1\n", Utf8, 1),
            (b"a true\n", Float, 1),
            (b"something_weird{problem=\"", Expected("label value"), 1),
            (b"empty_label_name{=\"\"} 0", Expected("label name"), 1),
            (b"foo 1_2\n", Float, 1),
            (b"foo 0x1p-3\n", Float, 1),
            (b"foo 0x1P-3\n", Float, 1),
            (b"foo 0 1_2\n", Expected("next entry after timestamp"), 1),
            (br#"{a="ok"} 1"#, NameNotSet, 1),
            (br#"{__name__="ok"} 1"#, NameNotSet, 1),
            (br#"{"metric","metric"} 1"#, NameAlreadySet, 1),
            (br#"{"metric","metric","metric"} 1"#, NameAlreadySet, 1),
            (br#"{"metric"=="ok"} 1"#, Expected("label value"), 1),
            (br#"{"metric"}"#, Expected("value after metric"), 1),
            (br#"foo{"metric"} 1"#, NameAlreadySet, 1),
            (br#"{""} 1"#, EmptyName, 1),
            (br#"a{""="x"} 1"#, EmptyName, 1),
            (b"# TYPE foo counter \n", MetricType("counter "), 1),
            (b"# TYPE foo  counter\n", MetricType(" counter"), 1),
            (b"# TYPE foo\n", MetricType(""), 1),
            (b"# TYPE foo unknown\n", MetricType("unknown"), 1),
            (b"# TYPE \n", Expected("metric name after TYPE"), 1),
            (b"# HELP 1a x\n", Expected("metric name after HELP"), 1),
            (b"# HELP a \xff\n", Utf8, 1),
            (b"# HELP \"a\xff\" x\n", Utf8, 1),
            (b"foo 1 -5\n", Expected("timestamp or new record"), 1),
            (b"foo 1 1.5\n", Expected("next entry after timestamp"), 1),
            (b"foo 1 2 3\n", Expected("next entry after timestamp"), 1),
            (b"foo 1 99999999999999999999\n", Timestamp, 1),
            (b"foo 1e400\n", Float, 1),
            (b"foo +nan\n", Float, 1),
            (b"foo 1\r\n", Float, 1),
            (b"foo{a=\"1\",a=\"2\"} 1\n", Duplicate("a"), 1),
            (b"foo{a=\"\",a=\"2\"} 1\n", Duplicate("a"), 1),
            (b"foo{__name__=\"bar\"} 1\n", Duplicate("__name__"), 1),
            (b"foo{\"a\"=\"1\",a=\"2\"} 1\n", Duplicate("a"), 1),
            (b"foo{a=\"x\\\ny\"} 1\n", Expected("label value"), 1),
            (b"foo{a:b=\"c\"} 1\n", Expected("equal"), 1),
            (b"foo{a,b=\"c\"} 1\n", Expected("equal"), 1),
            (
                b"foo{a=\"b\"}{c=\"d\"} 1\n",
                Expected("value after metric"),
                1,
            ),
            (b"foo{,} 1\n", Expected("label name"), 1),
            (b"foo{a=\"b\",,} 1\n", Expected("label name"), 1),
            (b"foo{a=\"b\" 1\n", Expected("label name"), 1),
            (b"1foo 1\n", Expected("a valid start token"), 1),
            (b"\x00foo 1\n", Expected("a valid start token"), 1),
            (b"foo\x00 1\n", Float, 1),
            (b"a 1\nb 2\n\n# ok\nc{ 3\n", Expected("label name"), 5),
            (
                b"a{b=\"multi\nline\"} 1\nc 2 x\n",
                Expected("timestamp or new record"),
                3,
            ),
        ],
    );
}

#[test]
fn openmetrics_errors() {
    use Want::*;
    check(
        Format::OpenMetrics,
        &[
            (b"", MissingEof, 1),
            (b"\n", Expected("a valid start token"), 1),
            (b"metric", Expected("value after metric"), 1),
            (b"metric 1", MissingEof, 1),
            (b"metric 1\n", MissingEof, 2),
            (b"metric_total 1 # {aa=\"bb\"} 4", MissingEof, 1),
            (b"a\n#EOF\n", Expected("value after metric"), 1),
            (b"\n\n#EOF\n", Expected("a valid start token"), 1),
            (b" a 1\n#EOF\n", Expected("a valid start token"), 1),
            (b"9\n#EOF\n", Expected("a valid start token"), 1),
            (b"a 1\n#EOF\n", Expected("a valid start token"), 2),
            (
                b"a 1\n# comment\n# EOF\n",
                Expected("a valid start token"),
                2,
            ),
            (b"a 1\n\n# EOF\n", Expected("a valid start token"), 2),
            (b"# TYPE u untyped\n# EOF\n", MetricType("untyped"), 1),
            (b"# TYPE c counter \n# EOF\n", MetricType("counter "), 1),
            (b"# TYPE c  counter\n# EOF\n", MetricType(" counter"), 1),
            (
                b"#  TYPE c counter\n# EOF\n",
                Expected("a valid start token"),
                1,
            ),
            (b"#\tTYPE c counter\n", Expected("a valid start token"), 1),
            (b"# TYPE \n# EOF\n", Expected("metric name after TYPE"), 1),
            (b"# TYPE m\n# EOF\n", Expected("text in TYPE"), 1),
            (b"# UNIT \n# EOF\n", Expected("metric name after UNIT"), 1),
            (b"# UNIT m\n# EOF\n", Expected("text in UNIT"), 1),
            (b"# HELP \n# EOF\n", Expected("metric name after HELP"), 1),
            (b"# HELP m\n# EOF\n", Expected("text in HELP"), 1),
            (b"# HELP m text", MissingEof, 1),
            (b"# HELP m \xff\n# EOF\n", Utf8, 1),
            (b"a\t1\n# EOF\n", Expected("value after metric"), 1),
            (b"a  1\n# EOF\n", Expected("value after metric"), 1),
            (b"a 1\t2\n# EOF\n", Float, 1),
            (
                b"a 1 2 \n# EOF\n",
                Expected("next entry after timestamp"),
                1,
            ),
            (
                b"a 1 2 #\n# EOF\n",
                Expected("next entry after timestamp"),
                1,
            ),
            (b"a 1 1z\n# EOF\n", Timestamp, 1),
            (b"a 1 \n# EOF\n", Expected("timestamp or new record"), 1),
            (b" # EOF\n", Expected("a valid start token"), 1),
            (b"# EOF\na 1", DataAfterEof, 2),
            (b"# EOF\n\n", DataAfterEof, 2),
            (b"# EOFa 1", DataAfterEof, 1),
            (b"# EOF ", DataAfterEof, 1),
            (
                b"a 1 1 1\n# EOF\n",
                Expected("next entry after timestamp"),
                1,
            ),
            (b"a{b='c'} 1\n# EOF\n", Expected("label value"), 1),
            (b"a{,b=\"c\"} 1\n# EOF\n", Expected("label name"), 1),
            (
                b"a{b=\"c\"d=\"e\"} 1\n# EOF\n",
                Expected("comma or brace close"),
                1,
            ),
            (b"a{b=\"c\",,d=\"e\"} 1\n# EOF\n", Expected("label name"), 1),
            (b"a{b=\"c\", d=\"e\"} 1\n# EOF\n", Expected("label name"), 1),
            (b"a{b =\"c\"} 1\n# EOF\n", Expected("equal"), 1),
            (b"a {b=\"c\"} 1\n# EOF\n", Float, 1),
            (b"a{b=\n", Expected("label value"), 1),
            (b"a{b=\"x\ny\"} 1\n# EOF\n", Expected("label value"), 1),
            (b"a{\xff=\"foo\"} 1\n# EOF\n", Expected("label name"), 1),
            (b"a{b=\"\xff\"} 1\n# EOF\n", Utf8, 1),
            (b"{\"a\",\"b = \"c\"}\n# EOF\n", Expected("equal"), 1),
            (b"{\"a\",b\nc=\"d\"}\n# EOF\n", Expected("equal"), 1),
            (b"a true\n", Float, 1),
            (
                b"something_weird{problem=\"\n# EOF\n",
                Expected("label value"),
                1,
            ),
            (
                b"empty_label_name{=\"\"} 0\n# EOF\n",
                Expected("label name"),
                1,
            ),
            (b"foo 1_2\n\n# EOF\n", Float, 1),
            (b"foo 0x1p-3\n\n# EOF\n", Float, 1),
            (b"foo 0x1P-3\n\n# EOF\n", Float, 1),
            (b"foo 0 1_2\n\n# EOF\n", Timestamp, 1),
            (
                b"custom_metric_total 1 # {aa=bb}\n# EOF\n",
                Expected("label value"),
                1,
            ),
            (
                b"custom_metric_total 1 # {aa=\"bb\"}\n# EOF\n",
                Expected("value after exemplar labels"),
                1,
            ),
            (
                b"custom_metric_total 1 # {aa=\"bb\"}",
                Expected("value after exemplar labels"),
                1,
            ),
            (
                b"custom_metric_total 1 # {aa=\"bb\",,cc=\"dd\"} 1",
                Expected("label name"),
                1,
            ),
            (b"custom_metric_total 1 # {aa=\"bb\"} 1_2", Float, 1),
            (b"custom_metric_total 1 # {aa=\"bb\"} 0x1p-3", Float, 1),
            (b"custom_metric_total 1 # {aa=\"bb\"} true", Float, 1),
            (
                b"custom_metric_total 1 # {aa=\"bb\",cc=}",
                Expected("label value"),
                1,
            ),
            (b"custom_metric_total 1 # {aa=\"\xff\"} 9.0", Utf8, 1),
            (
                b"custom_metric_total 1 # {\"aa\"} 9.0\n# EOF\n",
                Expected("label name"),
                1,
            ),
            (
                b"custom_metric_total 1 # {aa=\"1\",aa=\"2\"} 9.0\n# EOF\n",
                Duplicate("aa"),
                1,
            ),
            (
                b"custom_metric_total 1 # {aa=\"bb\"} 1 1 1\n# EOF\n",
                Expected("next entry after exemplar timestamp"),
                1,
            ),
            (
                b"custom_metric_total 1 # {aa=\"bb\"} 1 \n# EOF\n",
                Expected("timestamp or comment"),
                1,
            ),
            (
                b"custom_metric_total 1 #{aa=\"bb\"} 1\n# EOF\n",
                Timestamp,
                1,
            ),
            (b"{b=\"c\",} 1\n# EOF\n", NameNotSet, 1),
            (b"a 1 NaN\n# EOF\n", Timestamp, 1),
            (b"a 1 -Inf\n# EOF\n", Timestamp, 1),
            (b"a 1 Inf\n# EOF\n", Timestamp, 1),
            (b"a 1 1e400\n# EOF\n", Timestamp, 1),
            (
                b"# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 NaN\n# EOF\n",
                Timestamp,
                2,
            ),
            (
                b"# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 -Inf\n# EOF\n",
                Timestamp,
                2,
            ),
            (
                b"# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 Inf\n# EOF\n",
                Timestamp,
                2,
            ),
            (
                b"# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 1.0 1.0\n# EOF\n",
                Expected("next entry after exemplar timestamp"),
                2,
            ),
            (b"{\"metric\",\"metric\"} 1\n# EOF\n", NameAlreadySet, 1),
            (b"{\"\"} 1\n# EOF\n", EmptyName, 1),
            (b"a{a=\"1\",a=\"2\"} 1\n# EOF\n", Duplicate("a"), 1),
            (b"a 1\r\n# EOF\n", Float, 1),
        ],
    );
}

#[test]
fn messages_say_what_was_expected_and_where() {
    let err = first_error(b"a 1\nempty_label_name{=\"\"} 0\n", Format::Text004);
    assert_eq!(
        err.to_string(),
        r#"line 2: expected label name, got "=" while parsing "empty_label_name{=""#
    );
    let err = first_error(b"a{b=\"\xff\"} 1\n", Format::Text004);
    assert_eq!(
        err.to_string(),
        "line 1: label value is not valid UTF-8: \"\u{fffd}\""
    );
    let err = first_error(b"foo 1_2\n", Format::Text004);
    assert_eq!(
        err.to_string(),
        "line 1: invalid value \"1_2\": unsupported character in float"
    );
    let err = first_error(b"a 1\n", Format::OpenMetrics);
    assert_eq!(err.to_string(), "line 2: data does not end with # EOF");
    let err = first_error(b"# UNIT m_s ms\n# EOF\n", Format::OpenMetrics);
    assert_eq!(
        err.to_string(),
        r#"line 1: unit "ms" not a suffix of metric "m_s""#
    );
    let err = first_error(b"foo{a=\"1\",a=\"2\"} 1\n", Format::Text004);
    assert_eq!(err.to_string(), r#"line 1: label name "a" is not unique"#);
    let long = format!("metric{{{}=\"v\",'}} 1\n", "x".repeat(100));
    let message = first_error(long.as_bytes(), Format::Text004).to_string();
    assert!(
        message.starts_with("line 1: expected label name, got \"'\" while parsing …\""),
        "{message}"
    );
}

#[test]
fn entries_before_an_error_are_yielded() {
    let mut parser = Parser::new(b"a 1\nb 2\nc x\nd 4\n", Format::Text004);
    assert!(matches!(parser.next(), Some(Ok(Entry::Series { .. }))));
    assert!(matches!(parser.next(), Some(Ok(Entry::Series { .. }))));
    assert!(matches!(
        parser.next(),
        Some(Err(Error::InvalidFloat { line: 3, .. }))
    ));
    assert!(parser.next().is_none());
    assert!(parser.next().is_none());
}
