//! Tests of remote-write decoding: round trips, every kind of bad input, and
//! property tests (arbitrary bytes never panic, random requests round trip).

use std::collections::{BTreeMap, HashMap};

use hearth_model::{Labels, Sample, NORMAL_NAN_BITS, STALE_NAN, STALE_NAN_BITS};
use proptest::prelude::*;
use prost::bytes::Bytes;
use prost::Message;

use super::*;
use crate::prometheus::{self as pb, metric_metadata::MetricType};
use crate::write_v2 as v2;

const V2: Option<&str> = Some("application/x-protobuf;proto=io.prometheus.write.v2.Request");

fn label(name: &str, value: &str) -> pb::Label {
    pb::Label {
        name: name.to_string(),
        value: value.to_string(),
    }
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> pb::TimeSeries {
    pb::TimeSeries {
        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| pb::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

fn histogram(timestamp: i64) -> pb::Histogram {
    pb::Histogram {
        count: Some(pb::histogram::Count::CountInt(3)),
        sum: 1.5,
        schema: 0,
        zero_count: Some(pb::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![pb::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, 0],
        timestamp,
        ..Default::default()
    }
}

fn decode_v1(request: &pb::WriteRequest) -> DecodedWrite {
    decode_write_request(
        &encode_write_request(request),
        Some("snappy"),
        Some("application/x-protobuf"),
    )
    .expect("valid request decodes")
}

fn decode_v2(request: &v2::Request) -> DecodedWrite {
    decode_write_request(&encode_write_request_v2(request), Some("snappy"), V2)
        .expect("valid request decodes")
}

/// Decodes one 1.0 series built from raw label bytes (possibly not UTF-8).
fn decode_raw_v1(labels: &[(&[u8], &[u8])]) -> DecodedWrite {
    let raw = wire::WriteRequest {
        timeseries: vec![wire::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| wire::Label {
                    name: Bytes::copy_from_slice(n),
                    value: Bytes::copy_from_slice(v),
                })
                .collect(),
            samples: vec![pb::Sample {
                value: 1.0,
                timestamp: 1,
            }],
            exemplars: Vec::new(),
            histograms: Vec::new(),
        }],
        metadata: Vec::new(),
    };
    decode_write_request(&compress_snappy_block(&raw.encode_to_vec()), None, None).expect("decodes")
}

fn only_labels(decoded: &DecodedWrite) -> &Labels {
    assert_eq!(decoded.series.len(), 1, "{decoded:?}");
    &decoded.series[0].labels
}

fn skipped_reason(decoded: &DecodedWrite) -> &InvalidSeriesReason {
    assert!(decoded.series.is_empty(), "{decoded:?}");
    assert_eq!(decoded.skipped_invalid_series, 1);
    &decoded.invalid_series[0].reason
}

/// Builds 2.0 symbol tables: index 0 is "".
#[derive(Default)]
struct Symbols {
    table: Vec<String>,
    index: HashMap<String, u32>,
}

impl Symbols {
    fn new() -> Self {
        let mut s = Self::default();
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as u32;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }

    fn refs(&mut self, labels: &[(&str, &str)]) -> Vec<u32> {
        labels
            .iter()
            .flat_map(|(n, v)| [self.get(n), self.get(v)])
            .collect()
    }
}

fn v2_series(
    symbols: &mut Symbols,
    labels: &[(&str, &str)],
    samples: &[(i64, f64)],
) -> v2::TimeSeries {
    v2::TimeSeries {
        labels_refs: symbols.refs(labels),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| v2::Sample {
                value,
                timestamp,
                start_timestamp: 0,
            })
            .collect(),
        ..Default::default()
    }
}

// ---- round trips ----

#[test]
fn v1_round_trip_keeps_labels_samples_metadata_and_nan_bits() {
    let request = pb::WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "up"), ("instance", "a:9100"), ("job", "node")],
                &[
                    (1000, 1.0),
                    (2000, STALE_NAN),
                    (3000, f64::from_bits(NORMAL_NAN_BITS)),
                    (4000, f64::MIN_POSITIVE),
                ],
            ),
            series(&[("__name__", "x"), ("ü", "ñ")], &[(-5, f64::INFINITY)]),
        ],
        metadata: vec![pb::MetricMetadata {
            r#type: MetricType::Counter as i32,
            metric_family_name: "http_requests".into(),
            help: "requests served".into(),
            unit: "".into(),
        }],
    };
    let decoded = decode_v1(&request);
    assert_eq!(decoded.protocol, WriteProtocol::V1);
    assert_eq!(decoded.series.len(), 2);
    assert_eq!(
        decoded.series[0].labels,
        Labels::new([("__name__", "up"), ("instance", "a:9100"), ("job", "node")])
    );
    let bits: Vec<u64> = decoded.series[0]
        .samples
        .iter()
        .map(|s| s.v.to_bits())
        .collect();
    assert_eq!(
        bits,
        [
            1.0f64.to_bits(),
            STALE_NAN_BITS,
            NORMAL_NAN_BITS,
            f64::MIN_POSITIVE.to_bits()
        ]
    );
    assert_eq!(decoded.series[1].labels.get("ü"), Some("ñ"));
    assert_eq!(decoded.series[1].samples, [Sample::new(-5, f64::INFINITY)]);
    assert_eq!(
        decoded.metadata,
        [WriteMetadata {
            metric_family_name: "http_requests".into(),
            metric_type: MetricType::Counter,
            help: "requests served".into(),
            unit: String::new(),
        }]
    );
    assert_eq!(decoded.skipped_invalid_series, 0);
    assert_eq!(decoded.sample_count(), 5);
    assert_eq!(decoded.rejection(HistogramPolicy::Reject), None);
}

#[test]
fn v2_round_trip_resolves_symbols_and_metadata() {
    let mut symbols = Symbols::new();
    let mut ts = v2_series(
        &mut symbols,
        &[("__name__", "reqs_total"), ("code", "200")],
        &[(10, STALE_NAN)],
    );
    ts.metadata = Some(v2::Metadata {
        r#type: v2::metadata::MetricType::Counter as i32,
        help_ref: symbols.get("requests"),
        unit_ref: 0,
    });
    let plain = v2_series(
        &mut symbols,
        &[("__name__", "g"), ("code", "200")],
        &[(1, 2.0), (2, 3.0)],
    );
    let request = v2::Request {
        symbols: symbols.table.clone(),
        timeseries: vec![ts, plain],
    };
    let decoded = decode_v2(&request);
    assert_eq!(decoded.protocol, WriteProtocol::V2);
    assert_eq!(
        decoded.series[0].labels,
        Labels::new([("__name__", "reqs_total"), ("code", "200")])
    );
    assert_eq!(decoded.series[0].samples[0].v.to_bits(), STALE_NAN_BITS);
    assert_eq!(
        decoded.series[0].metadata,
        Some(WriteMetadata {
            metric_family_name: "reqs_total".into(),
            metric_type: MetricType::Counter,
            help: "requests".into(),
            unit: String::new(),
        })
    );
    assert_eq!(decoded.series[1].metadata, None);
    assert_eq!(
        decoded.series[1].samples,
        [Sample::new(1, 2.0), Sample::new(2, 3.0)]
    );
    assert_eq!(decoded.rejection(HistogramPolicy::Drop), None);
}

/// prost (like gogo-protobuf) leaves a proto3 `double` equal to 0.0 off the
/// wire, so `-0.0` reaches a receiver as `+0.0`; when the sign is on the wire
/// the decoder keeps it.
#[test]
fn negative_zero_survives_decoding_when_on_the_wire() {
    let request = pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "m")], &[(1, 1.0)])],
        ..Default::default()
    };
    assert_eq!(
        decode_v1(&pb::WriteRequest {
            timeseries: vec![series(&[("__name__", "m")], &[(1, -0.0)])],
            ..Default::default()
        })
        .series[0]
            .samples[0]
            .v
            .to_bits(),
        0
    );
    let mut raw = request.encode_to_vec();
    let one = 1.0f64.to_le_bytes();
    let at = raw
        .windows(8)
        .position(|w| w == one)
        .expect("value on the wire");
    raw[at..at + 8].copy_from_slice(&(-0.0f64).to_le_bytes());
    let d = decode_write_request(&compress_snappy_block(&raw), None, None).expect("decodes");
    assert_eq!(d.series[0].samples[0].v.to_bits(), (-0.0f64).to_bits());
}

#[test]
fn empty_request_decodes_to_nothing() {
    let decoded = decode_v1(&pb::WriteRequest::default());
    assert!(decoded.series.is_empty());
    let decoded = decode_v2(&v2::Request::default());
    assert!(decoded.series.is_empty());
}

#[test]
fn a_v2_body_read_as_v1_is_empty() {
    let mut symbols = Symbols::new();
    let ts = v2_series(&mut symbols, &[("__name__", "a")], &[(1, 1.0)]);
    let body = encode_write_request_v2(&v2::Request {
        symbols: symbols.table,
        timeseries: vec![ts],
    });
    let decoded = decode_write_request(&body, None, None).expect("decodes");
    assert!(decoded.series.is_empty());
    assert_eq!(decoded.skipped_invalid_series, 0);
}

#[test]
fn labels_to_proto_round_trips() {
    let labels = Labels::new([("b", "2"), ("__name__", "m"), ("a", "1")]);
    let request = pb::WriteRequest {
        timeseries: vec![pb::TimeSeries {
            labels: labels_to_proto(&labels),
            samples: vec![pb::Sample {
                value: 1.0,
                timestamp: 1,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(only_labels(&decode_v1(&request)), &labels);
}

// ---- headers ----

#[test]
fn content_type_selects_the_protocol() {
    let ok = [
        (None, WriteProtocol::V1),
        (Some(""), WriteProtocol::V1),
        (Some("application/x-protobuf"), WriteProtocol::V1),
        (Some("Application/X-Protobuf"), WriteProtocol::V1),
        (
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            WriteProtocol::V1,
        ),
        (
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
            WriteProtocol::V2,
        ),
        (
            Some("application/x-protobuf; proto=io.prometheus.write.v2.Request"),
            WriteProtocol::V2,
        ),
        (
            Some("application/x-protobuf;charset=utf-8;proto=\"io.prometheus.write.v2.Request\""),
            WriteProtocol::V2,
        ),
    ];
    for (header, want) in ok {
        assert_eq!(parse_content_type(header), Ok(want), "{header:?}");
    }
    assert_eq!(
        parse_content_type(Some(WriteProtocol::V2.content_type())),
        Ok(WriteProtocol::V2)
    );
    for bad in [
        "application/json",
        "text/plain",
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        "application/x-protobuf;proto",
    ] {
        let err = parse_content_type(Some(bad)).expect_err(bad);
        assert!(
            matches!(err, RemoteWriteError::UnsupportedContentType { .. }),
            "{bad}: {err}"
        );
        assert_eq!(err.http_status(), 415);
    }
}

#[test]
fn content_encoding_other_than_snappy_is_415() {
    let body = encode_write_request(&pb::WriteRequest::default());
    for ok in [None, Some(""), Some("snappy"), Some("SNAPPY")] {
        decode_write_request(&body, ok, None).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for bad in ["gzip", "zstd", "identity", "snappy-framed"] {
        let err = decode_write_request(&body, Some(bad), None).expect_err(bad);
        assert_eq!(
            err,
            RemoteWriteError::UnsupportedEncoding {
                encoding: bad.to_string()
            }
        );
        assert_eq!(err.http_status(), 415);
    }
}

// ---- bad bodies ----

#[test]
fn truncated_snappy_is_400() {
    let request = pb::WriteRequest {
        timeseries: (0..20)
            .map(|i| {
                series(
                    &[
                        ("__name__", "metric_with_a_long_name"),
                        ("i", &i.to_string()),
                    ],
                    &[(i, 1.0)],
                )
            })
            .collect(),
        ..Default::default()
    };
    let body = encode_write_request(&request);
    for cut in [1, 2, body.len() / 2, body.len() - 2] {
        let err =
            decode_write_request(&body[..body.len() - cut], None, None).expect_err("truncated");
        assert!(
            matches!(err, RemoteWriteError::SnappyTruncated { .. }),
            "cut {cut}: {err:?}"
        );
        assert_eq!(err.http_status(), 400);
        assert!(
            err.to_string()
                .starts_with("decompress snappy body: truncated input"),
            "{err}"
        );
    }
}

#[test]
fn garbage_snappy_is_400() {
    // Announces 4 bytes, then a copy with offset 0.
    let err = decode_write_request(&[0x04, 0x01, 0x00], None, None).expect_err("garbage");
    assert!(
        matches!(err, RemoteWriteError::SnappyCorrupt { .. }),
        "{err:?}"
    );
    assert_eq!(err.http_status(), 400);
    // A header varint that never ends.
    let err = decode_write_request(&[0xff; 12], None, None).expect_err("garbage");
    assert!(
        matches!(err, RemoteWriteError::SnappyCorrupt { .. }),
        "{err:?}"
    );
    // The snappy framed (stream) format is not the block format.
    let mut framed = Vec::new();
    {
        use std::io::Write;
        let mut w = snap::write::FrameEncoder::new(&mut framed);
        w.write_all(&pb::WriteRequest::default().encode_to_vec())
            .expect("write to vec");
        w.write_all(b"some bytes").expect("write to vec");
    }
    let err = decode_write_request(&framed, None, None).expect_err("framed");
    assert_eq!(err.http_status(), 400, "{err:?}");
    // An empty body is not a snappy block either.
    let err = decode_write_request(&[], None, None).expect_err("empty");
    assert!(
        matches!(err, RemoteWriteError::SnappyCorrupt { .. }),
        "{err:?}"
    );
}

#[test]
fn snappy_of_garbage_protobuf_is_400() {
    for garbage in [&b"\xff\xff\xff\xff"[..], b"\x0a\x05\x0a", b"\x0b"] {
        let body = compress_snappy_block(garbage);
        let err = decode_write_request(&body, None, None).expect_err("garbage protobuf");
        assert!(
            matches!(
                err,
                RemoteWriteError::Protobuf {
                    message: "prometheus.WriteRequest",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.http_status(), 400);
        assert!(
            err.to_string()
                .starts_with("decode prometheus.WriteRequest protobuf: "),
            "{err}"
        );
        let err = decode_write_request(&body, None, V2).expect_err("garbage protobuf");
        assert!(
            matches!(
                err,
                RemoteWriteError::Protobuf {
                    message: "io.prometheus.write.v2.Request",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn header_announcing_100_mib_is_refused_before_allocating() {
    let mut body = Vec::new();
    let mut n: u64 = 100 << 20;
    while n >= 0x80 {
        body.push((n as u8) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    body.extend_from_slice(&[0x00, 0x61]);
    let err = decode_write_request(&body, None, None).expect_err("too large");
    assert_eq!(
        err,
        RemoteWriteError::DecodedTooLarge {
            announced: 100 << 20,
            limit: MAX_DECODED_BYTES
        }
    );
    assert_eq!(err.http_status(), 400);
    // Past snappy's own maximum (u32) the announced size is still reported.
    let err =
        decode_write_request(&[0xff, 0xff, 0xff, 0xff, 0x7f, 0x00], None, None).expect_err("huge");
    assert!(
        matches!(err, RemoteWriteError::DecodedTooLarge { announced, .. } if announced > u32::MAX as u64)
    );
}

#[test]
fn limits_are_configurable_and_oversized_bodies_are_413() {
    let request = pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "a")], &[(1, 1.0)])],
        ..Default::default()
    };
    let body = encode_write_request(&request);
    let limits = DecodeLimits {
        max_compressed_bytes: body.len() - 1,
        ..DecodeLimits::default()
    };
    let err = decode_write_request_with_limits(&body, None, None, limits).expect_err("too big");
    assert_eq!(
        err,
        RemoteWriteError::BodyTooLarge {
            size: body.len(),
            limit: body.len() - 1
        }
    );
    assert_eq!(err.http_status(), 413);
    let limits = DecodeLimits {
        max_decoded_bytes: 4,
        ..DecodeLimits::default()
    };
    let err = decode_write_request_with_limits(&body, None, None, limits).expect_err("too big");
    assert!(
        matches!(err, RemoteWriteError::DecodedTooLarge { limit: 4, .. }),
        "{err:?}"
    );
}

// ---- 1.0 label rules: skip the series, never fail the request ----

#[test]
fn v1_invalid_utf8_label_skips_only_that_series() {
    let d = decode_raw_v1(&[(b"__name__", b"m"), (b"job", b"\xff\xfe")]);
    assert_eq!(skipped_reason(&d), &InvalidSeriesReason::InvalidUtf8);
    assert_eq!(d.skipped_invalid_samples, 1);
    assert!(
        d.invalid_series[0].labels.contains("job"),
        "{}",
        d.invalid_series[0].labels
    );
    let d = decode_raw_v1(&[(b"__name__", b"m"), (b"j\xc3", b"x")]);
    assert_eq!(skipped_reason(&d), &InvalidSeriesReason::InvalidUtf8);
    assert_eq!(
        d.rejection(HistogramPolicy::Reject),
        None,
        "1.0 skips silently"
    );

    // Next to a valid series, which is kept.
    let raw = wire::WriteRequest {
        timeseries: vec![
            wire::TimeSeries {
                labels: vec![wire::Label {
                    name: "__name__".into(),
                    value: Bytes::from_static(b"\xc0"),
                }],
                samples: vec![pb::Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                exemplars: Vec::new(),
                histograms: Vec::new(),
            },
            wire::TimeSeries {
                labels: vec![wire::Label {
                    name: "__name__".into(),
                    value: "ok".into(),
                }],
                samples: vec![pb::Sample {
                    value: 2.0,
                    timestamp: 1,
                }],
                exemplars: Vec::new(),
                histograms: Vec::new(),
            },
        ],
        metadata: vec![wire::MetricMetadata {
            r#type: 1,
            metric_family_name: Bytes::from_static(b"\xff"),
            help: Bytes::new(),
            unit: Bytes::new(),
        }],
    };
    let d = decode_write_request(&compress_snappy_block(&raw.encode_to_vec()), None, None)
        .expect("decodes");
    assert_eq!(only_labels(&d), &Labels::new([("__name__", "ok")]));
    assert_eq!(d.skipped_invalid_series, 1);
    assert_eq!(d.invalid_series[0].index, 0);
    assert!(
        d.metadata.is_empty(),
        "metadata with invalid UTF-8 is dropped"
    );
}

#[test]
fn v1_duplicate_label_names_skip_the_series() {
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![series(
            &[("__name__", "m"), ("a", "1"), ("a", "2")],
            &[(1, 1.0)],
        )],
        ..Default::default()
    });
    assert_eq!(
        skipped_reason(&d),
        &InvalidSeriesReason::DuplicateLabelName("a".into())
    );
    // Duplicates are found after sorting, and an empty value is still a name.
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![series(
            &[("a", "1"), ("__name__", "m"), ("a", "")],
            &[(1, 1.0)],
        )],
        ..Default::default()
    });
    assert_eq!(
        skipped_reason(&d),
        &InvalidSeriesReason::DuplicateLabelName("a".into())
    );
}

#[test]
fn v1_unsorted_labels_are_sorted() {
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![series(
            &[("zone", "z"), ("__name__", "m"), ("app", "a"), ("Z", "1")],
            &[(1, 1.0)],
        )],
        ..Default::default()
    });
    let names: Vec<&str> = only_labels(&d).iter().map(|l| l.name).collect();
    assert_eq!(names, ["Z", "__name__", "app", "zone"]);
}

#[test]
fn v1_empty_label_set_and_missing_name_skip_the_series() {
    for labels in [&[][..], &[("job", "x")], &[("__name__", ""), ("job", "x")]] {
        let d = decode_v1(&pb::WriteRequest {
            timeseries: vec![series(labels, &[(1, 1.0), (2, 2.0)])],
            ..Default::default()
        });
        assert_eq!(
            skipped_reason(&d),
            &InvalidSeriesReason::MissingMetricName,
            "{labels:?}"
        );
        assert_eq!(d.skipped_invalid_samples, 2);
    }
}

#[test]
fn v1_empty_label_name_skips_the_series() {
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "m"), ("", "v")], &[(1, 1.0)])],
        ..Default::default()
    });
    assert_eq!(skipped_reason(&d), &InvalidSeriesReason::EmptyLabelName);
}

#[test]
fn empty_label_values_are_dropped() {
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![series(
            &[("__name__", "m"), ("a", ""), ("b", "1")],
            &[(1, 1.0)],
        )],
        ..Default::default()
    });
    assert_eq!(
        only_labels(&d),
        &Labels::new([("__name__", "m"), ("b", "1")])
    );
}

#[test]
fn very_long_label_values_are_accepted() {
    let long = "v".repeat(1 << 20);
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "m"), ("big", &long)], &[(1, 1.0)])],
        ..Default::default()
    });
    assert_eq!(only_labels(&d).get("big"), Some(long.as_str()));
    // And an invalid series with one is described briefly.
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![series(&[("big", &long)], &[(1, 1.0)])],
        ..Default::default()
    });
    assert!(
        d.invalid_series[0].labels.len() < 1024,
        "{}",
        d.invalid_series[0].labels.len()
    );
}

#[test]
fn series_without_samples_are_not_returned() {
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![series(&[("__name__", "m")], &[])],
        ..Default::default()
    });
    assert!(d.series.is_empty());
    assert_eq!(d.skipped_invalid_series, 0);
}

#[test]
fn invalid_series_details_are_capped_but_all_counted() {
    let n = MAX_INVALID_SERIES_DETAILS + 5;
    let mut symbols = Symbols::new();
    let timeseries = (0..n)
        .map(|i| v2_series(&mut symbols, &[("job", &i.to_string())], &[(1, 1.0)]))
        .collect();
    let d = decode_v2(&v2::Request {
        symbols: symbols.table,
        timeseries,
    });
    assert_eq!(d.skipped_invalid_series, n);
    assert_eq!(d.invalid_series.len(), MAX_INVALID_SERIES_DETAILS);
    let err = d.rejection(HistogramPolicy::Drop).expect("rejected");
    assert!(err.to_string().ends_with("; and 5 more"), "{err}");
}

// ---- native histograms and exemplars ----

#[test]
fn histograms_are_counted_and_the_policy_decides() {
    let mut ts = series(&[("__name__", "m")], &[(1, 1.0)]);
    ts.histograms = vec![histogram(1), histogram(2)];
    ts.exemplars = vec![pb::Exemplar {
        labels: vec![label("trace_id", "abc")],
        value: 1.0,
        timestamp: 1,
    }];
    let only_histograms = pb::TimeSeries {
        histograms: vec![histogram(3)],
        ..series(&[("__name__", "h")], &[])
    };
    let d = decode_v1(&pb::WriteRequest {
        timeseries: vec![ts, only_histograms],
        ..Default::default()
    });
    assert_eq!(d.histograms_dropped, 3);
    assert_eq!(d.exemplars_dropped, 1);
    assert_eq!(
        d.series.len(),
        1,
        "histogram-only series carry nothing to store"
    );
    assert_eq!(d.rejection(HistogramPolicy::Drop), None);
    let err = d.rejection(HistogramPolicy::Reject).expect("rejected");
    assert_eq!(err.http_status(), 400);
    assert_eq!(
        err.to_string(),
        "rejected 3 native histogram samples: native histograms are not supported yet"
    );
    assert_eq!(DEFAULT_HISTOGRAM_POLICY, HistogramPolicy::Drop);
}

#[test]
fn v2_histograms_are_always_reported_as_a_partial_write() {
    let mut symbols = Symbols::new();
    let mut ts = v2_series(&mut symbols, &[("__name__", "h")], &[]);
    ts.histograms = vec![v2::Histogram {
        count: Some(v2::histogram::Count::CountFloat(2.0)),
        timestamp: 5,
        ..Default::default()
    }];
    let d = decode_v2(&v2::Request {
        symbols: symbols.table,
        timeseries: vec![ts],
    });
    assert_eq!(d.histograms_dropped, 1);
    for policy in [HistogramPolicy::Drop, HistogramPolicy::Reject] {
        let err = d.rejection(policy).expect("rejected");
        assert!(
            matches!(&err, RemoteWriteError::Rejected(r) if r.histograms == 1),
            "{err:?}"
        );
    }
}

// ---- 2.0 rules: the series is skipped and the request answered 400 ----

#[test]
fn v2_invalid_series_make_a_400_and_valid_ones_are_kept() {
    let mut symbols = Symbols::new();
    let good = v2_series(&mut symbols, &[("__name__", "ok")], &[(1, 1.0)]);
    let no_name = v2_series(&mut symbols, &[("job", "x")], &[(1, 1.0)]);
    let dup = v2_series(
        &mut symbols,
        &[("__name__", "m"), ("a", "1"), ("a", "2")],
        &[(1, 1.0)],
    );
    let out_of_range = v2::TimeSeries {
        labels_refs: vec![1, 999],
        ..good.clone()
    };
    let odd = v2::TimeSeries {
        labels_refs: vec![1, 2, 1],
        ..good.clone()
    };
    let bad_help = v2::TimeSeries {
        metadata: Some(v2::Metadata {
            r#type: 1,
            help_ref: 500,
            unit_ref: 0,
        }),
        ..good.clone()
    };
    let table_len = symbols.table.len();
    let request = v2::Request {
        symbols: symbols.table,
        timeseries: vec![good, no_name, dup, out_of_range, odd, bad_help],
    };
    let d = decode_v2(&request);
    assert_eq!(only_labels(&d), &Labels::new([("__name__", "ok")]));
    assert_eq!(d.skipped_invalid_series, 5);
    assert_eq!(d.skipped_invalid_samples, 5);
    let reasons: Vec<&InvalidSeriesReason> = d.invalid_series.iter().map(|i| &i.reason).collect();
    assert_eq!(
        reasons,
        [
            &InvalidSeriesReason::MissingMetricName,
            &InvalidSeriesReason::DuplicateLabelName("a".into()),
            &InvalidSeriesReason::SymbolOutOfRange {
                symbol_ref: 999,
                symbols: table_len
            },
            &InvalidSeriesReason::OddLabelRefs(3),
            &InvalidSeriesReason::SymbolOutOfRange {
                symbol_ref: 500,
                symbols: table_len
            },
        ]
    );
    let err = d
        .rejection(HistogramPolicy::Drop)
        .expect("2.0 invalid series are a 400");
    assert_eq!(err.http_status(), 400);
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "rejected 5 invalid series with 5 samples: series 1 {job=\"x\"}: missing metric name"
        ),
        "{msg}"
    );
}

#[test]
fn v2_invalid_utf8_symbol_skips_the_series() {
    let raw = wire::RequestV2 {
        symbols: vec![
            Bytes::new(),
            "__name__".into(),
            Bytes::from_static(b"\xff"),
            "ok".into(),
        ],
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![v2::Sample {
                    value: 1.0,
                    timestamp: 1,
                    start_timestamp: 0,
                }],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 3],
                samples: vec![v2::Sample {
                    value: 1.0,
                    timestamp: 1,
                    start_timestamp: 0,
                }],
                ..Default::default()
            },
        ],
    };
    let d = decode_write_request(&compress_snappy_block(&raw.encode_to_vec()), None, V2)
        .expect("decodes");
    assert_eq!(only_labels(&d), &Labels::new([("__name__", "ok")]));
    assert_eq!(d.invalid_series[0].reason, InvalidSeriesReason::InvalidUtf8);
    assert!(d.rejection(HistogramPolicy::Drop).is_some());
}

// ---- error messages ----

#[test]
fn error_messages_are_lowercase_without_trailing_period() {
    let errors = [
        parse_content_type(Some("text/plain")).expect_err("415"),
        check_content_encoding(Some("gzip")).expect_err("415"),
        decode_write_request(&[0x04, 0x01, 0x00], None, None).expect_err("corrupt"),
        decode_write_request(&[0x10, 0x00], None, None).expect_err("truncated"),
        decode_write_request(&compress_snappy_block(b"\xff"), None, None).expect_err("protobuf"),
        decode_write_request(&[0xff, 0xff, 0xff, 0x7f], None, None).expect_err("too large"),
        RemoteWriteError::BodyTooLarge { size: 2, limit: 1 },
    ];
    for err in errors {
        let msg = err.to_string();
        assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
        assert!(!msg.ends_with('.'), "{msg}");
    }
}

// ---- properties ----

fn arb_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits),
        Just(STALE_NAN),
        Just(f64::from_bits(NORMAL_NAN_BITS)),
    ]
}

fn arb_series() -> impl Strategy<Value = (BTreeMap<String, String>, Vec<(i64, f64)>)> {
    (
        "\\PC{1,12}",
        proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}|\\PC{1,4}", "\\PC{1,16}", 0..6),
        proptest::collection::vec((any::<i64>(), arb_value()), 1..8),
    )
        .prop_map(|(name, mut labels, samples)| {
            labels.insert(METRIC_NAME.to_string(), name);
            (labels, samples)
        })
}

fn bits(samples: &[Sample]) -> Vec<(i64, u64)> {
    samples.iter().map(|s| (s.t, s.v.to_bits())).collect()
}

/// What a receiver sees of sent samples: exact bits, except that the encoder
/// sends `-0.0` as the default (`+0.0`).
fn wire_bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples
        .iter()
        .map(|&(t, v)| (t, if v == 0.0 { 0 } else { v.to_bits() }))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_decode(&data);
        for content_type in [None, V2] {
            let _ = decode_write_request(&data, None, content_type);
        }
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        series in proptest::collection::vec(arb_series(), 0..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let request = pb::WriteRequest {
            timeseries: series.iter().map(|(l, s)| pb::TimeSeries {
                labels: l.iter().map(|(n, v)| label(n, v)).collect(),
                samples: s.iter().map(|&(timestamp, value)| pb::Sample { value, timestamp }).collect(),
                ..Default::default()
            }).collect(),
            ..Default::default()
        };
        let mut raw = request.encode_to_vec();
        if !raw.is_empty() {
            for (at, byte) in &flips {
                let i = at.index(raw.len());
                raw[i] ^= byte;
            }
        }
        for selector in [2u8, 3] {
            let mut data = vec![selector];
            data.extend_from_slice(&raw);
            fuzz_decode(&data);
        }
    }

    #[test]
    fn random_v1_requests_round_trip(series in proptest::collection::vec(arb_series(), 0..6)) {
        let request = pb::WriteRequest {
            timeseries: series.iter().rev().map(|(l, s)| pb::TimeSeries {
                // Sent in reverse order to exercise sorting.
                labels: l.iter().rev().map(|(n, v)| label(n, v)).collect(),
                samples: s.iter().map(|&(timestamp, value)| pb::Sample { value, timestamp }).collect(),
                ..Default::default()
            }).collect(),
            ..Default::default()
        };
        let decoded = decode_v1(&request);
        prop_assert_eq!(decoded.skipped_invalid_series, 0);
        prop_assert_eq!(decoded.series.len(), series.len());
        for (got, (labels, samples)) in decoded.series.iter().zip(series.iter().rev()) {
            prop_assert_eq!(&got.labels, &Labels::new(labels.iter()));
            prop_assert_eq!(bits(&got.samples), wire_bits(samples));
        }
    }

    #[test]
    fn random_v2_requests_round_trip(series in proptest::collection::vec(arb_series(), 0..6)) {
        let mut symbols = Symbols::new();
        let timeseries = series.iter().map(|(l, s)| {
            let pairs: Vec<(&str, &str)> = l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            v2_series(&mut symbols, &pairs, s)
        }).collect();
        let decoded = decode_v2(&v2::Request { symbols: symbols.table, timeseries });
        prop_assert_eq!(decoded.skipped_invalid_series, 0);
        prop_assert_eq!(decoded.series.len(), series.len());
        for (got, (labels, samples)) in decoded.series.iter().zip(&series) {
            prop_assert_eq!(&got.labels, &Labels::new(labels.iter()));
            prop_assert_eq!(bits(&got.samples), wire_bits(samples));
        }
        prop_assert_eq!(decoded.rejection(HistogramPolicy::Reject), None);
    }
}
