//! Parsing throughput on a generated exposition of 100,000 series shaped
//! like node exporter output (counters, gauges with float values, classic
//! histograms), in both text formats. Criterion reports bytes per second;
//! divide 100,000 by the time per iteration for series per second. The
//! protobuf format gets the same shapes and reports series per second.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hearth_exposition::{Entry, Format, Parser};
use hearth_proto::client::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prost::Message;

const SERIES: usize = 100_000;

/// An exposition with exactly `SERIES` sample lines.
fn exposition(format: Format) -> String {
    let om = format == Format::OpenMetrics;
    let mut out = String::new();
    let mut n = 0;
    let mut family = 0;
    while n < SERIES {
        family += 1;
        match family % 3 {
            0 => {
                let name = format!("node_network_receive_bytes_{family}");
                let _ = writeln!(out, "# HELP {name} Network device statistic receive_bytes.");
                let _ = writeln!(out, "# TYPE {name} counter");
                for i in 0..200 {
                    if n == SERIES {
                        break;
                    }
                    let sample = if om {
                        format!("{name}_total")
                    } else {
                        name.clone()
                    };
                    let _ = writeln!(
                        out,
                        "{sample}{{device=\"eth{i}\",instance=\"10.0.{}.{}:9100\",job=\"node\"}} {}",
                        i / 250,
                        i % 250,
                        1_000_000_u64 + (i as u64) * 7919
                    );
                    n += 1;
                }
            }
            1 => {
                let name = format!("node_filesystem_avail_bytes_{family}");
                let _ = writeln!(
                    out,
                    "# HELP {name} Filesystem space available to non-root users in bytes."
                );
                let _ = writeln!(out, "# TYPE {name} gauge");
                for i in 0..200 {
                    if n == SERIES {
                        break;
                    }
                    let _ = writeln!(
                        out,
                        "{name}{{device=\"/dev/sd{i}\",fstype=\"ext4\",mountpoint=\"/srv/data/{i}\"}} {:e}",
                        1.234_567_89e10 + i as f64 * 1.5e3
                    );
                    n += 1;
                }
            }
            _ => {
                let name = format!("http_request_duration_seconds_{family}");
                let _ = writeln!(out, "# HELP {name} A histogram of request latencies.");
                let _ = writeln!(out, "# TYPE {name} histogram");
                let bounds = [
                    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
                    "+Inf",
                ];
                for handler in 0..10 {
                    let mut count = 0;
                    for le in bounds {
                        if n == SERIES {
                            break;
                        }
                        count += 3;
                        let _ = writeln!(
                            out,
                            "{name}_bucket{{handler=\"/api/v1/h{handler}\",method=\"GET\",le=\"{le}\"}} {count}"
                        );
                        n += 1;
                    }
                    for (suffix, v) in [
                        ("_sum", "123.456".to_string()),
                        ("_count", count.to_string()),
                    ] {
                        if n == SERIES {
                            break;
                        }
                        let _ = writeln!(
                            out,
                            "{name}{suffix}{{handler=\"/api/v1/h{handler}\",method=\"GET\"}} {v}"
                        );
                        n += 1;
                    }
                }
            }
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

/// The shapes of [`exposition`] as a protobuf body of `SERIES` series or a
/// few more (whole histograms).
fn protobuf_exposition() -> Vec<u8> {
    let label = |n: &str, v: String| LabelPair {
        name: Some(n.into()),
        value: Some(v),
    };
    let mut out = Vec::new();
    let mut n = 0;
    let mut family = 0;
    while n < SERIES {
        family += 1;
        let (name, help, metric_type, metric): (String, &str, MetricType, Vec<Metric>) =
            match family % 3 {
                0 => (
                    format!("node_network_receive_bytes_{family}"),
                    "Network device statistic receive_bytes.",
                    MetricType::Counter,
                    (0..200)
                        .map(|i| Metric {
                            label: vec![
                                label("device", format!("eth{i}")),
                                label("instance", format!("10.0.{}.{}:9100", i / 250, i % 250)),
                                label("job", "node".into()),
                            ],
                            counter: Some(Counter {
                                value: Some((1_000_000_u64 + i * 7919) as f64),
                                ..Counter::default()
                            }),
                            ..Metric::default()
                        })
                        .collect(),
                ),
                1 => (
                    format!("node_filesystem_avail_bytes_{family}"),
                    "Filesystem space available to non-root users in bytes.",
                    MetricType::Gauge,
                    (0..200)
                        .map(|i| Metric {
                            label: vec![
                                label("device", format!("/dev/sd{i}")),
                                label("fstype", "ext4".into()),
                                label("mountpoint", format!("/srv/data/{i}")),
                            ],
                            gauge: Some(Gauge {
                                value: Some(1.234_567_89e10 + i as f64 * 1.5e3),
                            }),
                            ..Metric::default()
                        })
                        .collect(),
                ),
                _ => (
                    format!("http_request_duration_seconds_{family}"),
                    "A histogram of request latencies.",
                    MetricType::Histogram,
                    (0..10)
                        .map(|handler| Metric {
                            label: vec![
                                label("handler", format!("/api/v1/h{handler}")),
                                label("method", "GET".into()),
                            ],
                            histogram: Some(Histogram {
                                sample_count: Some(36),
                                sample_sum: Some(123.456),
                                bucket: [
                                    0.005,
                                    0.01,
                                    0.025,
                                    0.05,
                                    0.1,
                                    0.25,
                                    0.5,
                                    1.0,
                                    2.5,
                                    5.0,
                                    10.0,
                                    f64::INFINITY,
                                ]
                                .iter()
                                .zip(1..)
                                .map(|(&b, k)| Bucket {
                                    cumulative_count: Some(3 * k),
                                    upper_bound: Some(b),
                                    ..Bucket::default()
                                })
                                .collect(),
                                ..Histogram::default()
                            }),
                            ..Metric::default()
                        })
                        .collect(),
                ),
            };
        n += match metric_type {
            MetricType::Histogram => metric.len() * 14,
            _ => metric.len(),
        };
        MetricFamily {
            name: Some(name),
            help: Some(help.into()),
            r#type: Some(metric_type as i32),
            metric,
            unit: None,
        }
        .encode_length_delimited(&mut out)
        .expect("a Vec grows");
    }
    out
}

fn parse_all(input: &[u8], format: Format) -> usize {
    let mut series = 0;
    for entry in Parser::new(input, format) {
        if let Entry::Series { labels, .. } = entry.expect("generated exposition parses") {
            black_box(&labels);
            series += 1;
        }
    }
    series
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_100k_series");
    for (id, format) in [
        ("text_0.0.4", Format::Text004),
        ("openmetrics", Format::OpenMetrics),
    ] {
        let input = exposition(format);
        assert_eq!(parse_all(input.as_bytes(), format), SERIES);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(id, |b| {
            b.iter(|| parse_all(black_box(input.as_bytes()), format))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("parse_protobuf");
    let input = protobuf_exposition();
    let series = parse_all(&input, Format::PrometheusProto);
    assert!(series >= SERIES);
    group.throughput(Throughput::Elements(series as u64));
    group.bench_function("series", |b| {
        b.iter(|| parse_all(black_box(&input), Format::PrometheusProto))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
