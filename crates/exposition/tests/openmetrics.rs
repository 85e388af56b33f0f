//! OpenMetrics 1.0 text: the spec's worked example, Prometheus's parser test
//! input, timestamps, exemplars, and strict mode.

use std::borrow::Cow;

use hearth_exposition::{Entry, Error, Exemplar, Format, MetricType, Parser};
use hearth_model::{Labels, NORMAL_NAN_BITS};

fn parse(input: &[u8]) -> Vec<Entry<'_>> {
    Parser::new(input, Format::OpenMetrics)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(input)))
}

fn strict_error(input: &[u8]) -> Error {
    let result: Result<Vec<_>, _> = Parser::new(input, Format::OpenMetrics).strict().collect();
    match result {
        Err(e) => e,
        Ok(entries) => panic!(
            "{:?} parsed strictly: {entries:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn strict_ok(input: &[u8]) {
    let result: Result<Vec<_>, _> = Parser::new(input, Format::OpenMetrics).strict().collect();
    if let Err(e) = result {
        panic!("{:?}: {e}", String::from_utf8_lossy(input));
    }
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

fn with_exemplar(
    entry: Entry<'static>,
    labels: &[(&str, &str)],
    value: f64,
    ts: Option<i64>,
) -> Entry<'static> {
    match entry {
        Entry::Series {
            labels: l,
            value: v,
            timestamp,
            metric_type,
            ..
        } => Entry::Series {
            labels: l,
            value: v,
            timestamp,
            exemplar: Some(Exemplar {
                labels: Labels::new(labels.iter().copied()),
                value,
                timestamp: ts,
            }),
            metric_type,
        },
        other => other,
    }
}

fn typ(family: &str, metric_type: MetricType) -> Entry<'_> {
    Entry::Type {
        family: Cow::Borrowed(family),
        metric_type,
    }
}

fn help<'a>(family: &'a str, text: &'a str) -> Entry<'a> {
    Entry::Help {
        family: Cow::Borrowed(family),
        text: Cow::Borrowed(text),
    }
}

fn unit<'a>(family: &'a str, unit: &'a str) -> Entry<'a> {
    Entry::Unit {
        family: Cow::Borrowed(family),
        unit: Cow::Borrowed(unit),
    }
}

const SPEC_EXAMPLE: &[u8] = br#"# TYPE jobs counter
# HELP jobs Jobs processed.
jobs_total{queue="a"} 17 # {trace_id="4bf92f35"} 1 1700000000.5
jobs_created{queue="a"} 1699990000.0
# TYPE build info
build_info{version="1.2.3"} 1
# TYPE mode stateset
mode{mode="active"} 1
mode{mode="standby"} 0
# TYPE wait_seconds histogram
# UNIT wait_seconds seconds
wait_seconds_bucket{le="0.5"} 3
wait_seconds_bucket{le="+Inf"} 5
wait_seconds_count 5
wait_seconds_sum 4.2
# EOF
"#;

#[test]
fn spec_worked_example() {
    use MetricType::*;
    let n = "__name__";
    assert_eq!(
        parse(SPEC_EXAMPLE),
        vec![
            typ("jobs", Counter),
            help("jobs", "Jobs processed."),
            with_exemplar(
                series(&[(n, "jobs_total"), ("queue", "a")], 17.0, None, Counter),
                &[("trace_id", "4bf92f35")],
                1.0,
                Some(1700000000500)
            ),
            series(
                &[(n, "jobs_created"), ("queue", "a")],
                1699990000.0,
                None,
                Counter
            ),
            typ("build", Info),
            series(&[(n, "build_info"), ("version", "1.2.3")], 1.0, None, Info),
            typ("mode", Stateset),
            series(&[(n, "mode"), ("mode", "active")], 1.0, None, Stateset),
            series(&[(n, "mode"), ("mode", "standby")], 0.0, None, Stateset),
            typ("wait_seconds", Histogram),
            unit("wait_seconds", "seconds"),
            series(
                &[(n, "wait_seconds_bucket"), ("le", "0.5")],
                3.0,
                None,
                Histogram
            ),
            series(
                &[(n, "wait_seconds_bucket"), ("le", "+Inf")],
                5.0,
                None,
                Histogram
            ),
            series(&[(n, "wait_seconds_count")], 5.0, None, Histogram),
            series(&[(n, "wait_seconds_sum")], 4.2, None, Histogram),
            Entry::Eof,
        ]
    );
    strict_ok(SPEC_EXAMPLE);
}

/// Prometheus's own OpenMetrics parser test input (openmetricsparse_test.go),
/// adapted; Prometheus accepts it although it breaks OpenMetrics family rules.
#[test]
fn prometheus_parser_test_input() {
    let input = br#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25"} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
# HELP nohelp1 
# HELP help2 escape \ \n \\ \" \x chars
# UNIT nounit 
go_gc_duration_seconds{quantile="1.0",a="b"} 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"} 1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hh histogram
hh_bucket{le="+Inf"} 1
# TYPE gh gaugehistogram
gh_bucket{le="+Inf"} 1
# TYPE hhh histogram
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {id="histogram-count-test"} 4
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123
# TYPE ii info
ii{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
ss{ss="bar"} 0
ss{A="a"} 0
# TYPE un unknown
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
# HELP foo Counter with and without labels to certify CT is parsed for both cases
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520872607.123
foo_total{a="b"} 17.0 1520879607.789 # {id="counter-test"} 5
foo_created{a="b"} 1520872607.123
# TYPE bar summary
bar_count 17.0
bar_sum 324789.3
bar{quantile="0.95"} 123.7
bar{quantile="0.99"} 150.0
bar_created 1520872608.124
# TYPE baz histogram
baz_bucket{le="0.0"} 0
baz_bucket{le="+Inf"} 17
baz_count 17
baz_sum 324789.3
baz_created 1520872609.125
# TYPE fizz_created gauge
fizz_created 17.0
# TYPE something histogram
something_count 18
something_sum 324789.4
something_created 1520430001
something_bucket{le="0.0"} 1
something_bucket{le="+Inf"} 18
# TYPE yum summary
yum_count 20
yum_sum 324789.5
yum_created 1520430003
yum{quantile="0.95"} 123.7
yum{quantile="0.99"} 150.0
# EOF
"#;
    use MetricType::*;
    let n = "__name__";
    let entries = parse(input);
    assert_eq!(
        entries[0],
        help(
            "go_gc_duration_seconds",
            "A summary of the GC invocation durations."
        )
    );
    assert_eq!(entries[2], unit("go_gc_duration_seconds", "seconds"));
    assert_eq!(
        entries[3],
        series(
            &[(n, "go_gc_duration_seconds"), ("quantile", "0.0")],
            4.9351e-05,
            None,
            Summary
        )
    );
    assert_eq!(entries[6], help("nohelp1", ""));
    assert_eq!(entries[7], help("help2", "escape \\ \n \\ \" \\x chars"));
    assert_eq!(entries[8], unit("nounit", ""));
    assert_eq!(
        entries[9],
        series(
            &[
                (n, "go_gc_duration_seconds"),
                ("quantile", "1.0"),
                ("a", "b")
            ],
            8.3835e-05,
            None,
            Unknown
        )
    );
    assert_eq!(
        entries[14],
        series(&[(n, "go_goroutines")], 33.0, Some(123123), Gauge)
    );
    assert_eq!(
        entries[20],
        with_exemplar(
            series(&[(n, "hhh_bucket"), ("le", "+Inf")], 1.0, None, Histogram),
            &[("id", "histogram-bucket-test")],
            4.0,
            None
        )
    );
    assert_eq!(
        entries[21],
        with_exemplar(
            series(&[(n, "hhh_count")], 1.0, None, Histogram),
            &[("id", "histogram-count-test")],
            4.0,
            None
        )
    );
    assert_eq!(
        entries[23],
        with_exemplar(
            series(
                &[(n, "ggh_bucket"), ("le", "+Inf")],
                1.0,
                None,
                GaugeHistogram
            ),
            &[("id", "gaugehistogram-bucket-test"), ("xx", "yy")],
            4.0,
            Some(123123)
        )
    );
    assert_eq!(
        entries[25],
        series(&[(n, "ii"), ("foo", "bar")], 1.0, None, Info)
    );
    assert_eq!(
        entries[36],
        with_exemplar(
            series(&[(n, "foo_total")], 17.0, Some(1520879607789), Counter),
            &[("id", "counter-test")],
            5.0,
            None
        )
    );
    assert_eq!(
        entries[37],
        series(&[(n, "foo_created")], 1520872607.123, None, Counter)
    );
    assert_eq!(entries.last(), Some(&Entry::Eof));
    assert_eq!(entries.len(), 67);
}

#[test]
fn timestamps_are_seconds_truncated_to_milliseconds() {
    for (ts, want) in [
        ("1520879607.789", 1520879607789),
        ("1", 1000),
        ("-1.5", -1500),
        ("0.0009", 0),
        ("-0.0009", 0),
        ("1e3", 1_000_000),
        ("1.0000001", 1000),
        ("9.3e15", i64::MIN),
    ] {
        let input = format!("a 1 {ts}\n# EOF\n");
        match &parse(input.as_bytes())[0] {
            Entry::Series { timestamp, .. } => assert_eq!(*timestamp, Some(want), "{ts}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn exemplars() {
    let n = "__name__";
    let c = MetricType::Unknown;
    for (input, want) in [
        (
            "a_total 1 # {} 2\n# EOF\n",
            with_exemplar(series(&[(n, "a_total")], 1.0, None, c), &[], 2.0, None),
        ),
        (
            "a_total 1 # {x=\"y\",z=\"\"} NaN 1.5\n# EOF\n",
            with_exemplar(
                series(&[(n, "a_total")], 1.0, None, c),
                &[("x", "y")],
                f64::from_bits(NORMAL_NAN_BITS),
                Some(1500),
            ),
        ),
        (
            "a_total 1 10 # {\"q.x\"=\"\\\"\",a=\"b\",} -1e-3 -2\n# EOF\n",
            with_exemplar(
                series(&[(n, "a_total")], 1.0, Some(10000), c),
                &[("q.x", "\""), ("a", "b")],
                -0.001,
                Some(-2000),
            ),
        ),
        // Prometheus 3 does not restrict exemplars to _total and _bucket samples.
        (
            "a 1 # {x=\"y\"} 2\n# EOF\n",
            with_exemplar(series(&[(n, "a")], 1.0, None, c), &[("x", "y")], 2.0, None),
        ),
    ] {
        assert_eq!(parse(input.as_bytes())[0], want, "{input}");
    }
}

#[test]
fn eof_forms() {
    assert_eq!(parse(b"# EOF"), vec![Entry::Eof]);
    assert_eq!(parse(b"# EOF\n"), vec![Entry::Eof]);
    assert_eq!(
        parse(b"a 1\n# EOF"),
        vec![
            series(&[("__name__", "a")], 1.0, None, MetricType::Unknown),
            Entry::Eof
        ]
    );
}

#[test]
fn help_uses_label_value_escapes() {
    assert_eq!(parse(b"# HELP m a \\\" b\n# EOF\n")[0], help("m", "a \" b"));
}

#[test]
fn quoted_names_and_trailing_commas() {
    let entries = parse(
        "# TYPE \"my.counter\" counter\n{\"my.counter_total\",\"code.é\"=\"200\",} 1\n# EOF\n"
            .as_bytes(),
    );
    assert_eq!(entries[0], typ("my.counter", MetricType::Counter));
    assert_eq!(
        entries[1],
        series(
            &[("__name__", "my.counter_total"), ("code.é", "200")],
            1.0,
            None,
            MetricType::Counter
        )
    );
}

#[test]
fn units_must_be_suffixes() {
    assert_eq!(
        parse(b"# UNIT a_seconds seconds\n# EOF\n")[0],
        unit("a_seconds", "seconds")
    );
    assert_eq!(
        parse(b"# UNIT a_seconds_total seconds_total\n# EOF\n")[0],
        unit("a_seconds_total", "seconds_total")
    );
    for input in [
        &b"# UNIT metric suffix\n# EOF\n"[..],
        b"# UNIT metricsuffix suffix\n# EOF\n",
        b"# UNIT m suffix\n# EOF\n",
        b"# UNIT seconds seconds\n# EOF\n",
        b"# UNIT _seconds seconds_\n# EOF\n",
    ] {
        let err = Parser::new(input, Format::OpenMetrics)
            .find_map(Result::err)
            .expect("an error");
        assert!(matches!(err, Error::UnitNotSuffix { line: 1, .. }), "{err}");
    }
}

#[test]
fn lenient_mode_accepts_what_prometheus_accepts() {
    // Metadata after samples, duplicate metadata, interleaved families,
    // non-conformant sample names: Prometheus's parser checks none of them.
    let input =
        b"# TYPE a counter\na_total 1\n# TYPE a counter\n# HELP a x\nb 1\na_total 2\na 3\n# EOF\n";
    assert_eq!(parse(input).len(), 8);
}

#[test]
fn strict_mode_enforces_family_rules() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"# TYPE a counter\na_total 1\n# TYPE a counter\n# EOF\n",
            "after its samples",
        ),
        (
            b"# TYPE a counter\n# TYPE a counter\n# EOF\n",
            "duplicate TYPE",
        ),
        (b"# HELP a x\n# HELP a y\n# EOF\n", "duplicate HELP"),
        (b"# TYPE a gauge\na 1\nb 1\na 2\n# EOF\n", "interleaved"),
        (
            b"# TYPE a counter\na_total 1\nb 1\na_created 2\n# EOF\n",
            "interleaved",
        ),
        (b"a 1\nb 1\n# TYPE a gauge\n# EOF\n", "interleaved"),
        (
            b"# TYPE a counter\na 1\n# EOF\n",
            "not valid in counter family",
        ),
        (
            b"# TYPE h histogram\nh 1\n# EOF\n",
            "not valid in histogram family",
        ),
        (b"# TYPE i info\ni 1\n# EOF\n", "not valid in info family"),
        (b"# TYPE g gauge\ng 1 # {a=\"b\"} 1\n# EOF\n", "exemplar"),
        (
            b"# TYPE h histogram\nh_count 1 # {a=\"b\"} 1\n# EOF\n",
            "exemplar",
        ),
        (
            b"# TYPE i_bytes info\n# UNIT i_bytes bytes\n# EOF\n",
            "must not have a unit",
        ),
    ];
    for (input, message) in cases {
        let err = strict_error(input);
        assert!(
            matches!(&err, Error::NotConformant { message: m, .. } if m.contains(message)),
            "{}: {err}",
            String::from_utf8_lossy(input)
        );
    }
    let long = format!(
        "# TYPE c counter\nc_total 1 # {{trace_id=\"{}\"}} 1\n# EOF\n",
        "x".repeat(121)
    );
    assert!(matches!(
        strict_error(long.as_bytes()),
        Error::NotConformant { .. }
    ));
    let fits = format!(
        "# TYPE c counter\nc_total 1 # {{trace_id=\"{}\"}} 1\n# EOF\n",
        "x".repeat(120)
    );
    strict_ok(fits.as_bytes());

    strict_ok(b"# TYPE a counter\n# UNIT a_seconds seconds\n# EOF\n");
    strict_ok(b"# TYPE i info\n# UNIT i \ni_info 1\n# EOF\n");
    strict_ok(b"a 1\na{x=\"y\"} 1\nb 1\n# EOF\n");
    strict_ok(b"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\ns_created 1\n# EOF\n");
    strict_ok(
        b"# TYPE g gaugehistogram\ng_bucket{le=\"+Inf\"} 1 # {} 1\ng_gcount 1\ng_gsum 1\n# EOF\n",
    );
}
