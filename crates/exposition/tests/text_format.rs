//! The Prometheus text format 0.0.4: the spec's worked example and the
//! leniencies of Prometheus's parser, entry by entry.

use std::borrow::Cow;

use hearth_exposition::{Entry, Format, MetricType, Parser};
use hearth_model::{Labels, NORMAL_NAN_BITS, STALE_NAN_BITS};

fn parse(input: &[u8]) -> Vec<Entry<'_>> {
    Parser::new(input, Format::Text004)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(input)))
}

fn series(
    labels: &[(&str, &str)],
    value: f64,
    timestamp: Option<i64>,
    t: MetricType,
) -> Entry<'static> {
    Entry::Series {
        labels: Labels::new(labels.iter().copied()),
        value,
        timestamp,
        exemplar: None,
        metric_type: t,
    }
}

fn help<'a>(family: &'a str, text: &'a str) -> Entry<'a> {
    Entry::Help {
        family: Cow::Borrowed(family),
        text: Cow::Borrowed(text),
    }
}

fn typ(family: &str, metric_type: MetricType) -> Entry<'_> {
    Entry::Type {
        family: Cow::Borrowed(family),
        metric_type,
    }
}

fn only_series(input: &[u8]) -> Entry<'_> {
    let mut entries = parse(input);
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.remove(0)
}

#[test]
fn spec_worked_example() {
    let input = br#"# HELP api_requests_total Requests handled, by code.
# TYPE api_requests_total counter
api_requests_total{code="200",path="/v1/items"} 1043
api_requests_total{code="500",path="/v1/items"} 7 1700000000123
# TYPE api_latency_seconds histogram
api_latency_seconds_bucket{le="0.1"} 310
api_latency_seconds_bucket{le="1"} 402
api_latency_seconds_bucket{le="+Inf"} 410
api_latency_seconds_sum 93.2
api_latency_seconds_count 410
weird_value{note="line one\nline \"two\"",path="C:\\tmp"} NaN
"#;
    use MetricType::*;
    let n = "__name__";
    assert_eq!(
        parse(input),
        vec![
            help("api_requests_total", "Requests handled, by code."),
            typ("api_requests_total", Counter),
            series(
                &[
                    (n, "api_requests_total"),
                    ("code", "200"),
                    ("path", "/v1/items")
                ],
                1043.0,
                None,
                Counter
            ),
            series(
                &[
                    (n, "api_requests_total"),
                    ("code", "500"),
                    ("path", "/v1/items")
                ],
                7.0,
                Some(1700000000123),
                Counter
            ),
            typ("api_latency_seconds", Histogram),
            series(
                &[(n, "api_latency_seconds_bucket"), ("le", "0.1")],
                310.0,
                None,
                Histogram
            ),
            series(
                &[(n, "api_latency_seconds_bucket"), ("le", "1.0")],
                402.0,
                None,
                Histogram
            ),
            series(
                &[(n, "api_latency_seconds_bucket"), ("le", "+Inf")],
                410.0,
                None,
                Histogram
            ),
            series(&[(n, "api_latency_seconds_sum")], 93.2, None, Histogram),
            series(&[(n, "api_latency_seconds_count")], 410.0, None, Histogram),
            series(
                &[
                    (n, "weird_value"),
                    ("note", "line one\nline \"two\""),
                    ("path", "C:\\tmp")
                ],
                f64::from_bits(NORMAL_NAN_BITS),
                None,
                Unknown
            ),
        ]
    );
}

/// Prometheus's own parser test input (promparse_test.go), adapted.
#[test]
fn prometheus_parser_test_input() {
    let input = b"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# \tTYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile=\"0\"} 4.9351e-05
go_gc_duration_seconds{quantile=\"0.25\",} 7.424100000000001e-05
go_gc_duration_seconds{quantile=\"0.5\",a=\"b\"} 8.3835e-05
go_gc_duration_seconds{quantile=\"0.8\", a=\"b\"} 8.3835e-05
go_gc_duration_seconds{ quantile=\"0.9\", a=\"b\"} 8.3835e-05
# Hrandom comment starting with prefix of HELP
#
wind_speed{A=\"2\",c=\"3\"} 12345
# comment with escaped \\n newline
# comment with escaped \\ escape
go_gc_duration_seconds{ quantile=\"1.0\", a=\"b\" } 8.3835e-05
go_gc_duration_seconds { quantile=\"1.0\", a=\"b\" } 8.3835e-05
go_gc_duration_seconds { quantile= \"1.0\", a= \"b\", } 8.3835e-05
go_gc_duration_seconds { quantile = \"1.0\", a = \"b\" } 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b=\"c\"}\t1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33  \t123123
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore=\"foo\"} 1
testmetric{label=\"\\\"bar\\\"\"} 1
testmetric{le=\"10\"} 1
# HELP metric foo\x00bar
null_byte_metric{a=\"abc\x00\"} 1
";
    use MetricType::*;
    let n = "__name__";
    let gc = "go_gc_duration_seconds";
    let v = 8.3835e-05;
    let entries = parse(input);
    let want = vec![
        help(gc, "A summary of the GC invocation durations."),
        typ(gc, Summary),
        series(&[(n, gc), ("quantile", "0.0")], 4.9351e-05, None, Summary),
        series(
            &[(n, gc), ("quantile", "0.25")],
            7.424100000000001e-05,
            None,
            Summary,
        ),
        series(
            &[(n, gc), ("quantile", "0.5"), ("a", "b")],
            v,
            None,
            Summary,
        ),
        series(
            &[(n, gc), ("quantile", "0.8"), ("a", "b")],
            v,
            None,
            Summary,
        ),
        series(
            &[(n, gc), ("quantile", "0.9"), ("a", "b")],
            v,
            None,
            Summary,
        ),
        Entry::Comment(b"Hrandom comment starting with prefix of HELP"),
        Entry::Comment(b""),
        series(
            &[(n, "wind_speed"), ("A", "2"), ("c", "3")],
            12345.0,
            None,
            Unknown,
        ),
        Entry::Comment(b"comment with escaped \\n newline"),
        Entry::Comment(b"comment with escaped \\ escape"),
        series(
            &[(n, gc), ("quantile", "1.0"), ("a", "b")],
            v,
            None,
            Summary,
        ),
        series(
            &[(n, gc), ("quantile", "1.0"), ("a", "b")],
            v,
            None,
            Summary,
        ),
        series(
            &[(n, gc), ("quantile", "1.0"), ("a", "b")],
            v,
            None,
            Summary,
        ),
        series(
            &[(n, gc), ("quantile", "1.0"), ("a", "b")],
            v,
            None,
            Summary,
        ),
        series(&[(n, "go_gc_duration_seconds_count")], 99.0, None, Summary),
        series(
            &[(n, "some:aggregate:rate5m"), ("a_b", "c")],
            1.0,
            None,
            Unknown,
        ),
        help(
            "go_goroutines",
            "Number of goroutines that currently exist.",
        ),
        typ("go_goroutines", Gauge),
        series(&[(n, "go_goroutines")], 33.0, Some(123123), Gauge),
        series(
            &[(n, "_metric_starting_with_underscore")],
            1.0,
            None,
            Unknown,
        ),
        series(
            &[
                (n, "testmetric"),
                ("_label_starting_with_underscore", "foo"),
            ],
            1.0,
            None,
            Unknown,
        ),
        series(
            &[(n, "testmetric"), ("label", "\"bar\"")],
            1.0,
            None,
            Unknown,
        ),
        series(&[(n, "testmetric"), ("le", "10")], 1.0, None, Unknown),
        help("metric", "foo\u{0}bar"),
        series(
            &[(n, "null_byte_metric"), ("a", "abc\u{0}")],
            1.0,
            None,
            Unknown,
        ),
    ];
    assert_eq!(entries.len(), want.len());
    for (got, want) in entries.iter().zip(&want) {
        assert_eq!(got, want);
    }
}

#[test]
fn help_escapes_differ_from_label_escapes() {
    assert_eq!(
        parse(br#"# HELP m a \\ b \n c \" d \x"#),
        vec![help("m", "a \\ b \n c \\\" d \\x")]
    );
    // Empty, blank-only and separator-only HELP texts.
    assert_eq!(parse(b"# HELP m\n"), vec![help("m", "")]);
    assert_eq!(parse(b"# HELP m \t \n"), vec![help("m", "")]);
    assert_eq!(
        parse(b"# HELP m  two spaces\n"),
        vec![help("m", " two spaces")]
    );
    assert_eq!(parse(b"# HELP m\ttab\n"), vec![help("m", "tab")]);
    assert_eq!(parse(b"#\tHELP\tm\t\ttabs\n"), vec![help("m", "\ttabs")]);
}

#[test]
fn node_exporter_style_help_with_escapes() {
    let input =
        b"# HELP node_textfile_mtime_seconds Unixtime mtime of textfiles successfully read.\n\
# HELP node_systemd_unit_state Systemd unit\n\
# HELP node_hwmon_temp_celsius Hardware monitor for temperature (input)\n\
# HELP node_cpu_guest_seconds_total Seconds the CPUs spent in guests (VMs) for each mode.\n\
# HELP weird Path C:\\\\Windows and a line\\nbreak\n";
    let entries = parse(input);
    assert_eq!(
        entries[4],
        help("weird", "Path C:\\Windows and a line\nbreak")
    );
}

#[test]
fn metadata_types() {
    use MetricType::*;
    for (text, t) in [
        ("counter", Counter),
        ("gauge", Gauge),
        ("histogram", Histogram),
        ("summary", Summary),
        ("untyped", Unknown),
    ] {
        let input = format!("# TYPE m {text}\n");
        assert_eq!(parse(input.as_bytes()), vec![typ("m", t)]);
    }
    // OpenMetrics-only types are errors in the text format.
    for text in ["unknown", "info", "stateset", "gaugehistogram", "Counter"] {
        let input = format!("# TYPE m {text}\n");
        assert!(
            Parser::new(input.as_bytes(), Format::Text004).any(|e| e.is_err()),
            "{text}"
        );
    }
}

#[test]
fn comments_that_look_like_metadata() {
    assert_eq!(parse(b"#HELP m x\n"), vec![Entry::Comment(b"HELP m x")]);
    assert_eq!(parse(b"# HELPm x\n"), vec![Entry::Comment(b"HELPm x")]);
    assert_eq!(parse(b"# HELP\n"), vec![Entry::Comment(b"HELP")]);
    assert_eq!(parse(b"# EOF\n"), vec![Entry::Comment(b"EOF")]);
    assert_eq!(parse(b"  # indented\n"), vec![Entry::Comment(b"indented")]);
    assert_eq!(
        parse(b"# UNIT m seconds\n"),
        vec![Entry::Comment(b"UNIT m seconds")]
    );
}

#[test]
fn blank_lines_missing_final_newline_and_leading_blanks() {
    let want = series(&[("__name__", "a")], 1.0, None, MetricType::Unknown);
    assert_eq!(parse(b"\n\n  \t\na 1\n\n"), vec![want.clone()]);
    assert_eq!(parse(b"a 1"), vec![want.clone()]);
    assert_eq!(parse(b" \ta 1 "), vec![want.clone()]);
    assert_eq!(parse(b""), vec![]);
    assert_eq!(parse(b"a{} 1"), vec![want]);
}

#[test]
fn lenient_label_lists() {
    let want = series(
        &[("__name__", "a"), ("b", "1"), ("c", "2")],
        1.0,
        None,
        MetricType::Unknown,
    );
    for input in [
        &br#"a{b="1",c="2"} 1"#[..],
        br#"a{b="1" c="2"} 1"#,
        br#"a{b="1",c="2",} 1"#,
        br#"a { b = "1" , c = "2" , } 1"#,
        b"a\t{\tb=\"1\"\tc=\"2\"}\t1",
        br#"a{b="1",c="2"}1"#,
        br#"a{c="2",b="1"} 1"#,
        br#"{"a",b="1",c="2"} 1"#,
        br#"{b="1","a",c="2"} 1"#,
        br#"{ "a" , b="1",c="2"} 1"#,
    ] {
        assert_eq!(
            only_series(input),
            want,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn utf8_quoted_names() {
    let entries = parse(
        "# HELP \"my.metric\" Dots.\n# TYPE \"my.metric\" gauge\n{\"my.metric\", \"label.é\"=\"v\"} 2\n"
            .as_bytes(),
    );
    assert_eq!(
        entries,
        vec![
            help("my.metric", "Dots."),
            typ("my.metric", MetricType::Gauge),
            series(
                &[("__name__", "my.metric"), ("label.é", "v")],
                2.0,
                None,
                MetricType::Gauge
            ),
        ]
    );
    assert_eq!(
        only_series(br#"{"with \"quote\""} 1"#),
        series(
            &[("__name__", "with \"quote\"")],
            1.0,
            None,
            MetricType::Unknown
        )
    );
}

#[test]
fn label_values_keep_unknown_escapes_and_raw_newlines() {
    assert_eq!(
        only_series(b"a{b=\"x\\ty\\\\z\",c=\"line\nbreak\"} 1"),
        series(
            &[("__name__", "a"), ("b", "x\\ty\\z"), ("c", "line\nbreak")],
            1.0,
            None,
            MetricType::Unknown
        )
    );
}

#[test]
fn empty_label_values_are_absent() {
    assert_eq!(
        only_series(br#"a{b="",c="1"} 1"#),
        series(
            &[("__name__", "a"), ("c", "1")],
            1.0,
            None,
            MetricType::Unknown
        )
    );
}

#[test]
fn values_follow_go_parse_float() {
    for (text, want) in [
        ("1", 1.0),
        ("-2.5", -2.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("1.458255915e9", 1.458255915e9),
        ("+Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
        ("inf", f64::INFINITY),
        ("Infinity", f64::INFINITY),
        ("-infinity", f64::NEG_INFINITY),
        ("1e-400", 0.0),
        ("-0", -0.0),
        ("9007199254740993", 9007199254740992.0),
        ("1.7976931348623157e308", f64::MAX),
    ] {
        let input = format!("a {text}\n");
        match only_series(input.as_bytes()) {
            Entry::Series { value, .. } => assert_eq!(value.to_bits(), want.to_bits(), "{text}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_nan_is_the_normal_nan() {
    for text in ["NaN", "nan", "NAN", "nAn"] {
        let input = format!("a {text}\n");
        match only_series(input.as_bytes()) {
            Entry::Series { value, .. } => {
                assert_eq!(value.to_bits(), NORMAL_NAN_BITS, "{text}");
                assert_ne!(value.to_bits(), STALE_NAN_BITS);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn timestamps_are_integer_milliseconds() {
    for (input, ts) in [
        ("a 1 0", Some(0)),
        ("a 1 1700000000123", Some(1700000000123)),
        ("a 1 9223372036854775807", Some(i64::MAX)),
        ("a 1 0001", Some(1)),
        ("a 1\t2\t", Some(2)),
        ("a 1 ", None),
    ] {
        match only_series(input.as_bytes()) {
            Entry::Series { timestamp, .. } => assert_eq!(timestamp, ts, "{input}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn le_and_quantile_are_normalized_only_in_their_families() {
    let input = b"# TYPE h histogram
h_bucket{le=\"1\"} 1
h_bucket{le=\"0.50\"} 1
h_bucket{le=\"100000\"} 1
h_bucket{le=\"1000000\"} 1
h_bucket{le=\"1e-5\"} 1
h_bucket{le=\"inf\"} 1
h_bucket{le=\"not a number\"} 1
h_bucket{le=\"0x1p3\"} 1
h_bucket{le=\"1_0\"} 1
h_bucket{le=\"-0\"} 1
h_bucket{quantile=\"1\"} 1
# TYPE s summary
s{quantile=\"0\"} 1
s{quantile=\"1\",le=\"1\"} 1
# TYPE u untyped
u{le=\"1\",quantile=\"1\"} 1
other{le=\"1\"} 1
";
    let got: Vec<String> = parse(input)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Series { labels, .. } => Some(labels.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            r#"{__name__="h_bucket", le="1.0"}"#,
            r#"{__name__="h_bucket", le="0.5"}"#,
            r#"{__name__="h_bucket", le="100000.0"}"#,
            r#"{__name__="h_bucket", le="1e+06"}"#,
            r#"{__name__="h_bucket", le="1e-05"}"#,
            r#"{__name__="h_bucket", le="+Inf"}"#,
            r#"{__name__="h_bucket", le="not a number"}"#,
            r#"{__name__="h_bucket", le="8.0"}"#,
            r#"{__name__="h_bucket", le="10.0"}"#,
            r#"{__name__="h_bucket", le="0.0"}"#,
            r#"{__name__="h_bucket", quantile="1"}"#,
            r#"{__name__="s", quantile="0.0"}"#,
            r#"{__name__="s", le="1", quantile="1.0"}"#,
            r#"{__name__="u", le="1", quantile="1"}"#,
            r#"{__name__="other", le="1"}"#,
        ]
    );
}

#[test]
fn series_take_the_type_of_their_family() {
    use MetricType::*;
    let input =
        b"# TYPE c_total counter\nc_total 1\n# TYPE c2 counter\nc2_total 1\nc2 1\nc2_created 1\n\
# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\nh_created 1\nh 1\nh_other 1\n\
# HELP g no type\ng 1\n";
    let types: Vec<MetricType> = parse(input)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Series { metric_type, .. } => Some(metric_type),
            _ => None,
        })
        .collect();
    assert_eq!(
        types,
        [
            Counter, Counter, Counter, Counter, Histogram, Histogram, Histogram, Histogram,
            Histogram, Unknown, Unknown
        ]
    );
}

#[test]
fn pushgateway_style_exposition() {
    let input = br#"# HELP push_time_seconds Last Unix time when changing this group in the Pushgateway succeeded.
# TYPE push_time_seconds gauge
push_time_seconds{instance="",job="backup"} 1.7000000001234567e+09
# HELP backup_duration_seconds Duration of the last backup.
# TYPE backup_duration_seconds summary
backup_duration_seconds{instance="",job="backup",quantile="0.5"} 12.5
backup_duration_seconds{instance="",job="backup",quantile="0.99"} 31
backup_duration_seconds_sum{instance="",job="backup"} 1234.5
backup_duration_seconds_count{instance="",job="backup"} 100
"#;
    let entries = parse(input);
    assert_eq!(entries.len(), 9);
    assert_eq!(
        entries[2],
        series(
            &[("__name__", "push_time_seconds"), ("job", "backup")],
            1.7000000001234567e9,
            None,
            MetricType::Gauge
        )
    );
    assert_eq!(
        entries[6],
        series(
            &[
                ("__name__", "backup_duration_seconds"),
                ("job", "backup"),
                ("quantile", "0.99")
            ],
            31.0,
            None,
            MetricType::Summary
        )
    );
}

#[test]
fn tolerated_out_of_order_metadata() {
    // The text parser does not check grouping or metadata order.
    let input = b"a 1\n# TYPE a gauge\n# TYPE a counter\na 2\n# HELP a x\n# HELP a y\n";
    assert_eq!(parse(input).len(), 6);
    // Strict mode applies to OpenMetrics only.
    assert!(Parser::new(input, Format::Text004)
        .strict()
        .all(|e| e.is_ok()));
}
