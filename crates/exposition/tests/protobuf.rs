//! The protobuf exposition format against the text formats: a body of
//! length-delimited `MetricFamily` messages must give the entries (metadata,
//! series, values, timestamps, exemplars) that the text or OpenMetrics
//! parser gives for the equivalent text, and malformed bodies must fail
//! without panicking.

use hearth_exposition::float::format_go_float;
use hearth_exposition::{Entry, Error, Exemplar, Format, MetricType, Parser, RawEntry};
use hearth_model::{Labels, NORMAL_NAN_BITS};
use hearth_proto::client::{
    Bucket, BucketSpan, Counter, Exemplar as ProtoExemplar, Gauge, Histogram, LabelPair, Metric,
    MetricFamily, MetricType as ProtoType, Quantile, Summary, Untyped,
};
use proptest::prelude::*;
use prost::Message;

/// The body of a protobuf scrape: each family length-delimited.
fn encode(families: &[MetricFamily]) -> Vec<u8> {
    families
        .iter()
        .flat_map(|f| f.encode_length_delimited_to_vec())
        .collect()
}

fn entries(input: &[u8], format: Format) -> Result<Vec<Entry<'_>>, Error> {
    Parser::new(input, format).collect()
}

fn proto(families: &[MetricFamily]) -> Vec<Entry<'static>> {
    let body = encode(families);
    let parsed = entries(&body, Format::PrometheusProto).expect("valid protobuf");
    parsed.into_iter().map(owned).collect()
}

fn text(input: &str) -> Vec<Entry<'_>> {
    entries(input.as_bytes(), Format::Text004).expect("valid text")
}

fn openmetrics(input: &str) -> Vec<Entry<'_>> {
    entries(input.as_bytes(), Format::OpenMetrics).expect("valid OpenMetrics")
}

/// Only the series entries, without the OpenMetrics `# EOF`.
fn series_only(entries: Vec<Entry<'_>>) -> Vec<Entry<'_>> {
    entries
        .into_iter()
        .filter(|e| matches!(e, Entry::Series { .. }))
        .collect()
}

fn owned(e: Entry<'_>) -> Entry<'static> {
    use std::borrow::Cow;
    let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
    match e {
        Entry::Type {
            family,
            metric_type,
        } => Entry::Type {
            family: own(family),
            metric_type,
        },
        Entry::Help { family, text } => Entry::Help {
            family: own(family),
            text: own(text),
        },
        Entry::Unit { family, unit } => Entry::Unit {
            family: own(family),
            unit: own(unit),
        },
        Entry::Series {
            labels,
            value,
            timestamp,
            exemplar,
            metric_type,
        } => Entry::Series {
            labels,
            value,
            timestamp,
            exemplar,
            metric_type,
        },
        Entry::Comment(_) => panic!("protobuf has no comments"),
        Entry::Eof => Entry::Eof,
    }
}

fn family(name: &str, t: ProtoType, help: &str, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: (!help.is_empty()).then(|| help.into()),
        r#type: Some(t as i32),
        metric,
        unit: None,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(n, v)| LabelPair {
            name: Some(n.to_string()),
            value: Some(v.to_string()),
        })
        .collect()
}

fn gauge(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels(pairs),
        gauge: Some(Gauge { value: Some(value) }),
        ..Metric::default()
    }
}

fn counter(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels(pairs),
        counter: Some(Counter {
            value: Some(value),
            ..Counter::default()
        }),
        ..Metric::default()
    }
}

fn exemplar(pairs: &[(&str, &str)], value: f64, time: Option<(i64, i32)>) -> ProtoExemplar {
    ProtoExemplar {
        label: labels(pairs),
        value: Some(value),
        timestamp: time.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    }
}

fn bucket(upper_bound: f64, count: u64) -> Bucket {
    Bucket {
        cumulative_count: Some(count),
        upper_bound: Some(upper_bound),
        ..Bucket::default()
    }
}

fn histogram(pairs: &[(&str, &str)], buckets: Vec<Bucket>, sum: f64, count: u64) -> Metric {
    Metric {
        label: labels(pairs),
        histogram: Some(Histogram {
            sample_count: Some(count),
            sample_sum: Some(sum),
            bucket: buckets,
            ..Histogram::default()
        }),
        ..Metric::default()
    }
}

#[test]
fn counters_gauges_and_untyped_match_the_text_format() {
    let families = [
        family(
            "http_requests_total",
            ProtoType::Counter,
            "Requests handled.\nSecond line \\ with a backslash.",
            vec![
                Metric {
                    timestamp_ms: Some(1_700_000_000_123),
                    ..counter(&[("method", "GET"), ("code", "200")], 1027.0)
                },
                counter(&[("code", "500"), ("method", "GET")], 3.0),
            ],
        ),
        family(
            "temperature_celsius",
            ProtoType::Gauge,
            "",
            vec![
                gauge(
                    &[("path", "C:\\tmp"), ("note", "line one\nline \"two\"")],
                    -1.5e-7,
                ),
                gauge(&[("empty", ""), ("room", "b")], f64::INFINITY),
            ],
        ),
        family(
            "some_untyped",
            ProtoType::Untyped,
            "Untyped.",
            vec![Metric {
                untyped: Some(Untyped {
                    value: Some(f64::NAN),
                }),
                ..Metric::default()
            }],
        ),
        // A counter without `_total` keeps its name, as in Prometheus 3.
        family("jobs", ProtoType::Counter, "", vec![counter(&[], 1.0)]),
    ];
    let equivalent = "# HELP http_requests_total Requests handled.\\nSecond line \\\\ with a \
                      backslash.\n\
                      # TYPE http_requests_total counter\n\
                      http_requests_total{code=\"200\",method=\"GET\"} 1027 1700000000123\n\
                      http_requests_total{code=\"500\",method=\"GET\"} 3\n\
                      # TYPE temperature_celsius gauge\n\
                      temperature_celsius{note=\"line one\\nline \\\"two\\\"\",path=\"C:\\\\tmp\"} \
                      -1.5e-07\n\
                      temperature_celsius{empty=\"\",room=\"b\"} +Inf\n\
                      # HELP some_untyped Untyped.\n\
                      # TYPE some_untyped untyped\n\
                      some_untyped NaN\n\
                      # TYPE jobs counter\n\
                      jobs 1\n";
    assert_eq!(proto(&families), text(equivalent));
}

#[test]
fn summaries_match_the_text_format() {
    let summary = Metric {
        label: labels(&[("service", "api")]),
        summary: Some(Summary {
            sample_count: Some(410),
            sample_sum: Some(93.25),
            quantile: [(0.5, 0.12), (0.9, 0.7), (0.99, 1.5), (1.0, 2.0)]
                .iter()
                .map(|&(q, v)| Quantile {
                    quantile: Some(q),
                    value: Some(v),
                })
                .collect(),
            created_timestamp: None,
        }),
        timestamp_ms: Some(5000),
        ..Metric::default()
    };
    let families = [
        family(
            "rpc_seconds",
            ProtoType::Summary,
            "RPC latency.",
            vec![summary],
        ),
        family(
            "empty_summary",
            ProtoType::Summary,
            "",
            vec![Metric::default()],
        ),
    ];
    let equivalent = "# HELP rpc_seconds RPC latency.\n\
                      # TYPE rpc_seconds summary\n\
                      rpc_seconds{service=\"api\",quantile=\"0.5\"} 0.12 5000\n\
                      rpc_seconds{service=\"api\",quantile=\"0.9\"} 0.7 5000\n\
                      rpc_seconds{service=\"api\",quantile=\"0.99\"} 1.5 5000\n\
                      rpc_seconds{service=\"api\",quantile=\"1\"} 2 5000\n\
                      rpc_seconds_sum{service=\"api\"} 93.25 5000\n\
                      rpc_seconds_count{service=\"api\"} 410 5000\n\
                      # TYPE empty_summary summary\n\
                      empty_summary_sum 0\n\
                      empty_summary_count 0\n";
    let got = proto(&families);
    assert_eq!(got, text(equivalent));
    // Quantiles are in Prometheus 3's canonical form.
    let Entry::Series { labels, .. } = &got[5] else {
        panic!("a series: {:?}", got[5]);
    };
    assert_eq!(labels.get("quantile"), Some("1.0"));
}

#[test]
fn classic_histograms_match_the_text_format() {
    let families = [
        family(
            "api_latency_seconds",
            ProtoType::Histogram,
            "Latency.",
            vec![
                // No +Inf bucket: one is added with the count.
                histogram(
                    &[("path", "/a")],
                    vec![bucket(0.1, 310), bucket(1.0, 402), bucket(1e6, 405)],
                    93.2,
                    410,
                ),
                // An exposed +Inf bucket is kept as is.
                histogram(
                    &[("path", "/b")],
                    vec![bucket(0.00001, 1), bucket(f64::INFINITY, 2)],
                    0.5,
                    2,
                ),
                // Float counts override integer ones.
                Metric {
                    label: labels(&[("path", "/c")]),
                    histogram: Some(Histogram {
                        sample_count: Some(7),
                        sample_count_float: Some(2.5),
                        sample_sum: Some(1.0),
                        bucket: vec![Bucket {
                            cumulative_count: Some(9),
                            cumulative_count_float: Some(1.5),
                            upper_bound: Some(0.0),
                            exemplar: None,
                        }],
                        ..Histogram::default()
                    }),
                    ..Metric::default()
                },
            ],
        ),
        // No buckets at all: only the +Inf bucket.
        family(
            "no_buckets",
            ProtoType::Histogram,
            "",
            vec![histogram(&[], vec![], 3.0, 4)],
        ),
    ];
    let equivalent = "# HELP api_latency_seconds Latency.\n\
                      # TYPE api_latency_seconds histogram\n\
                      api_latency_seconds_bucket{path=\"/a\",le=\"0.1\"} 310\n\
                      api_latency_seconds_bucket{path=\"/a\",le=\"1\"} 402\n\
                      api_latency_seconds_bucket{path=\"/a\",le=\"1e+06\"} 405\n\
                      api_latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 410\n\
                      api_latency_seconds_sum{path=\"/a\"} 93.2\n\
                      api_latency_seconds_count{path=\"/a\"} 410\n\
                      api_latency_seconds_bucket{path=\"/b\",le=\"1e-05\"} 1\n\
                      api_latency_seconds_bucket{path=\"/b\",le=\"+Inf\"} 2\n\
                      api_latency_seconds_sum{path=\"/b\"} 0.5\n\
                      api_latency_seconds_count{path=\"/b\"} 2\n\
                      api_latency_seconds_bucket{path=\"/c\",le=\"0\"} 1.5\n\
                      api_latency_seconds_bucket{path=\"/c\",le=\"+Inf\"} 2.5\n\
                      api_latency_seconds_sum{path=\"/c\"} 1\n\
                      api_latency_seconds_count{path=\"/c\"} 2.5\n\
                      # TYPE no_buckets histogram\n\
                      no_buckets_bucket{le=\"+Inf\"} 4\n\
                      no_buckets_sum 3\n\
                      no_buckets_count 4\n";
    let got = proto(&families);
    assert_eq!(got, text(equivalent));
    let les: Vec<&str> = got
        .iter()
        .filter_map(|e| match e {
            Entry::Series { labels, .. } => labels.get("le"),
            _ => None,
        })
        .collect();
    assert_eq!(
        les,
        ["0.1", "1.0", "1e+06", "+Inf", "1e-05", "+Inf", "0.0", "+Inf", "+Inf"]
    );
}

#[test]
fn native_histograms_give_their_classic_series() {
    let native = Histogram {
        sample_count: Some(12),
        sample_sum: Some(42.5),
        schema: Some(3),
        zero_threshold: Some(1e-128),
        zero_count: Some(2),
        positive_span: vec![BucketSpan {
            offset: Some(0),
            length: Some(2),
        }],
        positive_delta: vec![4, 2],
        exemplars: vec![exemplar(&[("trace_id", "n")], 1.0, Some((1, 0)))],
        ..Histogram::default()
    };
    let with_classic = Histogram {
        bucket: vec![bucket(1.0, 5), bucket(10.0, 11)],
        ..native.clone()
    };
    let families = [family(
        "rpc_duration_seconds",
        ProtoType::Histogram,
        "",
        vec![
            Metric {
                label: labels(&[("kind", "native")]),
                histogram: Some(native),
                ..Metric::default()
            },
            Metric {
                label: labels(&[("kind", "both")]),
                histogram: Some(with_classic),
                ..Metric::default()
            },
        ],
    )];
    let equivalent = "# TYPE rpc_duration_seconds histogram\n\
                      rpc_duration_seconds_bucket{kind=\"native\",le=\"+Inf\"} 12\n\
                      rpc_duration_seconds_sum{kind=\"native\"} 42.5\n\
                      rpc_duration_seconds_count{kind=\"native\"} 12\n\
                      rpc_duration_seconds_bucket{kind=\"both\",le=\"1\"} 5\n\
                      rpc_duration_seconds_bucket{kind=\"both\",le=\"10\"} 11\n\
                      rpc_duration_seconds_bucket{kind=\"both\",le=\"+Inf\"} 12\n\
                      rpc_duration_seconds_sum{kind=\"both\"} 42.5\n\
                      rpc_duration_seconds_count{kind=\"both\"} 12\n";
    assert_eq!(proto(&families), text(equivalent));
}

#[test]
fn gauge_histograms_keep_count_and_sum_names() {
    let families = [family(
        "queue_size",
        ProtoType::GaugeHistogram,
        "",
        vec![histogram(&[], vec![bucket(10.0, 3)], 12.0, 4)],
    )];
    let got = proto(&families);
    let series = |name: &str, extra: &[(&str, &str)], value: f64| Entry::Series {
        labels: Labels::new([("__name__", name)].iter().chain(extra).copied()),
        value,
        timestamp: None,
        exemplar: None,
        metric_type: MetricType::GaugeHistogram,
    };
    assert_eq!(
        got,
        [
            Entry::Type {
                family: "queue_size".into(),
                metric_type: MetricType::GaugeHistogram,
            },
            series("queue_size_bucket", &[("le", "10.0")], 3.0),
            series("queue_size_bucket", &[("le", "+Inf")], 4.0),
            series("queue_size_sum", &[], 12.0),
            series("queue_size_count", &[], 4.0),
        ]
    );
}

#[test]
fn exemplars_match_openmetrics() {
    let families = [
        family(
            "jobs_total",
            ProtoType::Counter,
            "",
            vec![
                Metric {
                    counter: Some(Counter {
                        value: Some(17.0),
                        exemplar: Some(exemplar(
                            &[("trace_id", "4bf92f35"), ("span", "")],
                            1.0,
                            Some((1_700_000_000, 500_000_000)),
                        )),
                        created_timestamp: Some(prost_types::Timestamp {
                            seconds: 1_699_990_000,
                            nanos: 0,
                        }),
                    }),
                    label: labels(&[("queue", "a")]),
                    ..Metric::default()
                },
                Metric {
                    counter: Some(Counter {
                        value: Some(4.0),
                        exemplar: Some(exemplar(&[], f64::NAN, None)),
                        created_timestamp: None,
                    }),
                    label: labels(&[("queue", "b")]),
                    ..Metric::default()
                },
            ],
        ),
        family(
            "wait_seconds",
            ProtoType::Histogram,
            "",
            vec![histogram(
                &[],
                vec![
                    Bucket {
                        exemplar: Some(exemplar(
                            &[("trace_id", "x")],
                            0.25,
                            Some((2, 500_000_000)),
                        )),
                        ..bucket(0.5, 3)
                    },
                    bucket(1.0, 4),
                ],
                4.2,
                5,
            )],
        ),
    ];
    let equivalent = "# TYPE jobs counter\n\
                      jobs_total{queue=\"a\"} 17 # {trace_id=\"4bf92f35\",span=\"\"} 1 1700000000.5\n\
                      jobs_total{queue=\"b\"} 4 # {} NaN\n\
                      # TYPE wait_seconds histogram\n\
                      wait_seconds_bucket{le=\"0.5\"} 3 # {trace_id=\"x\"} 0.25 2.5\n\
                      wait_seconds_bucket{le=\"1.0\"} 4\n\
                      wait_seconds_bucket{le=\"+Inf\"} 5\n\
                      wait_seconds_sum 4.2\n\
                      wait_seconds_count 5\n\
                      # EOF\n";
    let got = series_only(proto(&families));
    assert_eq!(got, series_only(openmetrics(equivalent)));
    let Entry::Series {
        exemplar: Some(e), ..
    } = &got[0]
    else {
        panic!("an exemplar: {:?}", got[0]);
    };
    assert_eq!(
        *e,
        Exemplar {
            labels: Labels::new([("trace_id", "4bf92f35")]),
            value: 1.0,
            timestamp: Some(1_700_000_000_500),
        }
    );
    // No `_created` series: Prometheus makes none from protobuf.
    assert_eq!(got.len(), 7);
}

#[test]
fn units_and_help_match_openmetrics() {
    let mut wait = family(
        "wait_seconds",
        ProtoType::Gauge,
        "Time \"waited\".",
        vec![gauge(&[], 1.5)],
    );
    wait.unit = Some("seconds".into());
    let mut sent = family(
        "sent_bytes_total",
        ProtoType::Counter,
        "",
        vec![counter(&[], 2.0)],
    );
    sent.unit = Some("bytes".into());
    let got = proto(&[wait, sent]);
    let equivalent = "# HELP wait_seconds Time \\\"waited\\\".\n\
                      # UNIT wait_seconds seconds\n\
                      # TYPE wait_seconds gauge\n\
                      wait_seconds 1.5\n\
                      # EOF\n";
    let mut expected = openmetrics(equivalent);
    assert_eq!(expected.pop(), Some(Entry::Eof));
    assert_eq!(got[..4], expected[..]);
    assert_eq!(
        got[4],
        Entry::Unit {
            family: "sent_bytes_total".into(),
            unit: "bytes".into()
        }
    );
}

#[test]
fn utf8_names_match_text_format_1_0_0() {
    let families = [family(
        "my.metric",
        ProtoType::Gauge,
        "",
        vec![gauge(&[("läbel", "välue"), ("b", "2")], 1.0)],
    )];
    let equivalent = "# TYPE \"my.metric\" gauge\n{\"my.metric\",\"läbel\"=\"välue\",b=\"2\"} 1\n";
    assert_eq!(proto(&families), text(equivalent));
}

#[test]
fn timestamps_follow_prometheus() {
    let at = |t: Option<i64>| Metric {
        timestamp_ms: t,
        ..gauge(&[], 1.0)
    };
    let families = [family(
        "g",
        ProtoType::Gauge,
        "",
        vec![at(None), at(Some(0)), at(Some(-5)), at(Some(i64::MAX))],
    )];
    let times: Vec<Option<i64>> = proto(&families)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Series { timestamp, .. } => Some(timestamp),
            _ => None,
        })
        .collect();
    // Zero means no timestamp, as Prometheus reads it.
    assert_eq!(times, [None, None, Some(-5), Some(i64::MAX)]);
}

#[test]
fn nan_values_are_the_normal_nan() {
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let families = [family(
        "g",
        ProtoType::Gauge,
        "",
        vec![gauge(&[], stale), gauge(&[("a", "1")], f64::NAN)],
    )];
    for e in proto(&families) {
        if let Entry::Series { value, .. } = e {
            assert_eq!(value.to_bits(), NORMAL_NAN_BITS);
        }
    }
}

#[test]
fn empty_bodies_and_families_give_nothing() {
    assert!(proto(&[]).is_empty());
    let empty = family("nothing", ProtoType::Counter, "Help.", vec![]);
    assert_eq!(
        proto(&[
            empty,
            family("g", ProtoType::Gauge, "", vec![gauge(&[], 1.0)])
        ]),
        text("# TYPE g gauge\ng 1\n")
    );
}

#[test]
fn raw_entries_and_keys() {
    let families = [
        family(
            "h",
            ProtoType::Histogram,
            "",
            vec![histogram(&[("a", "1")], vec![bucket(1.0, 1)], 1.0, 1)],
        ),
        family("up", ProtoType::Gauge, "", vec![gauge(&[], 1.0)]),
    ];
    let body = encode(&families);
    let raw = |predict: bool| {
        let mut parser = Parser::new(&body, Format::PrometheusProto);
        let mut out = Vec::new();
        let mut keys = Vec::new();
        let mut last = Vec::new();
        while let Some(entry) = parser
            .next_raw_predicted(if predict { &last } else { &[] })
            .expect("valid body")
        {
            match entry {
                RawEntry::Series(s) => {
                    assert_eq!(s.text[0], 0xFF, "keys start with 0xFF");
                    last = s.text.to_vec();
                    keys.push(s.text.into_owned());
                    out.push(Entry::Series {
                        labels: parser.series_labels().expect("valid labels"),
                        value: s.value,
                        timestamp: s.timestamp,
                        exemplar: s.exemplar,
                        metric_type: s.metric_type,
                    });
                }
                RawEntry::Other(e) => out.push(e),
            }
        }
        assert_eq!(parser.position(), body.len());
        (out, keys)
    };
    let (plain, keys) = raw(false);
    let (predicted, again) = raw(true);
    assert_eq!(plain, entries(&body, Format::PrometheusProto).unwrap());
    assert_eq!(predicted, plain);
    assert_eq!(keys, again, "keys are stable");
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5);

    // Labels only for a series, and only once.
    let mut parser = Parser::new(&body, Format::PrometheusProto);
    assert!(matches!(parser.next_raw(), Ok(Some(RawEntry::Other(_)))));
    assert!(matches!(parser.series_labels(), Err(Error::NoSeries)));
    assert!(matches!(parser.next_raw(), Ok(Some(RawEntry::Series(_)))));
    assert!(parser.series_labels().is_ok());
    assert!(matches!(parser.series_labels(), Err(Error::NoSeries)));
}

/// The first error of a protobuf body, with the entries before it.
fn proto_error(body: &[u8]) -> (usize, Error) {
    let mut parser = Parser::new(body, Format::PrometheusProto);
    let mut before = 0;
    loop {
        match parser.next() {
            Some(Ok(_)) => before += 1,
            Some(Err(e)) => {
                assert!(parser.next().is_none(), "the parser stops after an error");
                return (before, e);
            }
            None => panic!("no error in {body:?}"),
        }
    }
}

fn message(e: &Error) -> String {
    match e {
        Error::Protobuf { message, .. } => message.clone(),
        other => panic!("not a protobuf error: {other:?}"),
    }
}

#[test]
fn malformed_length_prefixes_fail() {
    let good = encode(&[family("g", ProtoType::Gauge, "", vec![gauge(&[], 1.0)])]);

    // A varint cut short, alone and after a good family.
    let (_, e) = proto_error(&[0x80]);
    assert_eq!(message(&e), "truncated varint length prefix");
    let mut body = good.clone();
    body.extend_from_slice(&[0xFF, 0xFF]);
    let (before, e) = proto_error(&body);
    assert_eq!(before, 2, "the first family's entries come first");
    assert!(
        matches!(e, Error::Protobuf { offset, .. } if offset == good.len()),
        "{e}"
    );
    assert_eq!(e.line(), None);

    // More than 5 varint bytes.
    let (_, e) = proto_error(&[0x81, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert!(
        message(&e).starts_with("invalid varint length prefix"),
        "{e}"
    );

    // A huge length (2^35 - 1) with little behind it, and a length one
    // byte past the end.
    let (_, e) = proto_error(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]);
    assert_eq!(
        message(&e),
        "insufficient length of buffer, expected at least 34359738372 bytes, got 8 bytes"
    );
    let (_, e) = proto_error(&good[..good.len() - 1]);
    assert!(
        message(&e).starts_with("insufficient length of buffer"),
        "{e}"
    );
}

#[test]
fn malformed_messages_fail() {
    // Not a MetricFamily: a field with wire type 7.
    let (_, e) = proto_error(&[3, 0x0F, 0xFF, 0xFF]);
    assert!(
        message(&e).contains("failed to decode Protobuf message"),
        "{e}"
    );

    // A label value that is not UTF-8, as for the text format.
    let mut body = encode(&[family(
        "g",
        ProtoType::Gauge,
        "",
        vec![gauge(&[("l", "XY")], 1.0)],
    )]);
    let at = body
        .windows(2)
        .position(|w| w == b"XY")
        .expect("the value is in the body");
    body[at..at + 2].copy_from_slice(&[0xFF, 0xFE]);
    let (_, e) = proto_error(&body);
    assert!(message(&e).contains("UTF-8"), "{e}");

    let cases: [(MetricFamily, &str); 6] = [
        (
            family("", ProtoType::Gauge, "", vec![gauge(&[], 1.0)]),
            "invalid metric name \"\"",
        ),
        (
            MetricFamily {
                r#type: Some(9),
                ..family("g", ProtoType::Gauge, "", vec![gauge(&[], 1.0)])
            },
            "unknown metric type 9 for metric \"g\"",
        ),
        (
            MetricFamily {
                unit: Some("bytes".into()),
                ..family("g_seconds", ProtoType::Gauge, "", vec![gauge(&[], 1.0)])
            },
            "unit \"bytes\" not a suffix of metric \"g_seconds\"",
        ),
        (
            family(
                "g",
                ProtoType::Gauge,
                "",
                vec![gauge(&[("a", "1"), ("a", "2")], 1.0)],
            ),
            "metric \"g\": label name \"a\" is not unique",
        ),
        (
            family(
                "g",
                ProtoType::Gauge,
                "",
                vec![gauge(&[("__name__", "x")], 1.0)],
            ),
            "metric \"g\": label name \"__name__\" is not unique",
        ),
        (
            family("g", ProtoType::Gauge, "", vec![gauge(&[("", "x")], 1.0)]),
            "metric \"g\": invalid label name \"\"",
        ),
    ];
    for (f, want) in cases {
        let (_, e) = proto_error(&encode(&[f]));
        assert_eq!(message(&e), want);
    }

    let repeated_in_exemplar = family(
        "c_total",
        ProtoType::Counter,
        "",
        vec![Metric {
            counter: Some(Counter {
                value: Some(1.0),
                exemplar: Some(exemplar(&[("t", "1"), ("t", "2")], 1.0, None)),
                created_timestamp: None,
            }),
            ..Metric::default()
        }],
    );
    let (_, e) = proto_error(&encode(&[repeated_in_exemplar]));
    assert_eq!(
        message(&e),
        "exemplar of \"c_total\": label name \"t\" is not unique"
    );
}

#[test]
fn every_truncation_fails_cleanly() {
    let body = encode(&[
        family(
            "h",
            ProtoType::Histogram,
            "Help.",
            vec![histogram(&[("a", "b")], vec![bucket(1.0, 1)], 2.0, 3)],
        ),
        family("g", ProtoType::Gauge, "", vec![gauge(&[("x", "y")], 1.0)]),
    ]);
    for end in 0..body.len() {
        let cut = &body[..end];
        // Either a clean end at a family boundary or an error, never a panic.
        let _ = entries(cut, Format::PrometheusProto);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut parser = Parser::new(&body, Format::PrometheusProto);
        while let Ok(Some(entry)) = parser.next_raw() {
            if let RawEntry::Series(_) = entry {
                let _ = parser.series_labels();
            }
        }
    }
}

/// A family of a generated exposition: its name, type and metrics.
#[derive(Debug, Clone)]
struct GenFamily {
    name: String,
    kind: ProtoType,
    help: String,
    metrics: Vec<GenMetric>,
}

#[derive(Debug, Clone)]
struct GenMetric {
    labels: Vec<(String, String)>,
    value: f64,
    timestamp: Option<i64>,
    /// Upper bounds or quantiles, sorted, with their values.
    points: Vec<(f64, f64)>,
    sum: f64,
    count: u64,
}

fn gen_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        2 => (-1000i32..1000).prop_map(f64::from),
    ]
}

fn gen_metric() -> impl Strategy<Value = GenMetric> {
    (
        proptest::collection::btree_map("[a-z][a-z0-9_]{0,4}", "\\PC{0,6}", 0..3),
        gen_value(),
        proptest::option::of(1i64..4_000_000_000_000),
        proptest::collection::btree_map(0u32..1_000_000, 0u64..1000, 0..4),
        gen_value(),
        0u64..100_000,
    )
        .prop_map(|(labels, value, timestamp, points, sum, count)| GenMetric {
            labels: labels
                .into_iter()
                .filter(|(n, _)| n != "le" && n != "quantile")
                .collect(),
            value,
            timestamp,
            points: points
                .into_iter()
                .map(|(b, v)| (f64::from(b) / 1000.0, v as f64))
                .collect(),
            sum,
            count,
        })
}

fn gen_family() -> impl Strategy<Value = GenFamily> {
    (
        // No suffix like `_sum` that would move a text series out of its
        // family.
        "[a-z][a-z0-9]{0,6}",
        prop_oneof![
            Just(ProtoType::Counter),
            Just(ProtoType::Gauge),
            Just(ProtoType::Untyped),
            Just(ProtoType::Summary),
            Just(ProtoType::Histogram),
        ],
        "\\PC{0,8}",
        proptest::collection::vec(gen_metric(), 1..4),
    )
        .prop_map(|(name, kind, help, metrics)| GenFamily {
            name,
            kind,
            // Blanks alone are no help text in the text format.
            help: if help.trim_matches(' ').is_empty() {
                String::new()
            } else {
                help
            },
            metrics,
        })
}

impl GenFamily {
    fn to_proto(&self) -> MetricFamily {
        let metric = self
            .metrics
            .iter()
            .map(|m| {
                let label = m
                    .labels
                    .iter()
                    .map(|(n, v)| LabelPair {
                        name: Some(n.clone()),
                        value: Some(v.clone()),
                    })
                    .collect();
                let mut out = Metric {
                    label,
                    timestamp_ms: m.timestamp,
                    ..Metric::default()
                };
                match self.kind {
                    ProtoType::Counter => {
                        out.counter = Some(Counter {
                            value: Some(m.value),
                            ..Counter::default()
                        })
                    }
                    ProtoType::Gauge => {
                        out.gauge = Some(Gauge {
                            value: Some(m.value),
                        })
                    }
                    ProtoType::Untyped => {
                        out.untyped = Some(Untyped {
                            value: Some(m.value),
                        })
                    }
                    ProtoType::Summary => {
                        out.summary = Some(Summary {
                            sample_count: Some(m.count),
                            sample_sum: Some(m.sum),
                            quantile: m
                                .points
                                .iter()
                                .map(|&(q, v)| Quantile {
                                    quantile: Some(q / 1000.0),
                                    value: Some(v),
                                })
                                .collect(),
                            created_timestamp: None,
                        })
                    }
                    _ => {
                        out.histogram = Some(Histogram {
                            sample_count: Some(m.count),
                            sample_sum: Some(m.sum),
                            bucket: m.points.iter().map(|&(b, c)| bucket(b, c as u64)).collect(),
                            ..Histogram::default()
                        })
                    }
                }
                out
            })
            .collect();
        family(&self.name, self.kind, &self.help, metric)
    }

    /// The same family in the text format, as client libraries write it.
    fn to_text(&self, out: &mut String) {
        let kind = match self.kind {
            ProtoType::Counter => "counter",
            ProtoType::Gauge => "gauge",
            ProtoType::Untyped => "untyped",
            ProtoType::Summary => "summary",
            _ => "histogram",
        };
        if !self.help.is_empty() {
            let help = self.help.replace('\\', "\\\\").replace('\n', "\\n");
            out.push_str(&format!("# HELP {} {help}\n", self.name));
        }
        out.push_str(&format!("# TYPE {} {kind}\n", self.name));
        for m in &self.metrics {
            let line = |out: &mut String, suffix: &str, extra: Option<(&str, f64)>, v: f64| {
                let mut labels: Vec<String> = m
                    .labels
                    .iter()
                    .map(|(n, v)| {
                        let v = v
                            .replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n");
                        format!("{n}=\"{v}\"")
                    })
                    .collect();
                if let Some((n, b)) = extra {
                    labels.push(format!("{n}=\"{}\"", format_go_float(b)));
                }
                out.push_str(&format!(
                    "{}{suffix}{{{}}} {}",
                    self.name,
                    labels.join(","),
                    format_go_float(v)
                ));
                if let Some(t) = m.timestamp {
                    out.push_str(&format!(" {t}"));
                }
                out.push('\n');
            };
            match self.kind {
                ProtoType::Summary => {
                    for &(q, v) in &m.points {
                        line(out, "", Some(("quantile", q / 1000.0)), v);
                    }
                    line(out, "_sum", None, m.sum);
                    line(out, "_count", None, m.count as f64);
                }
                ProtoType::Histogram => {
                    for &(b, c) in &m.points {
                        line(out, "_bucket", Some(("le", b)), c);
                    }
                    line(out, "_bucket", Some(("le", f64::INFINITY)), m.count as f64);
                    line(out, "_sum", None, m.sum);
                    line(out, "_count", None, m.count as f64);
                }
                _ => line(out, "", None, m.value),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn protobuf_matches_the_equivalent_text(families in proptest::collection::vec(gen_family(), 0..4)) {
        let protos: Vec<MetricFamily> = families.iter().map(GenFamily::to_proto).collect();
        let mut equivalent = String::new();
        for f in &families {
            f.to_text(&mut equivalent);
        }
        let body = encode(&protos);
        let got = entries(&body, Format::PrometheusProto);
        let want = entries(equivalent.as_bytes(), Format::Text004);
        prop_assert_eq!(got, want, "text:\n{}", equivalent);
    }
}
