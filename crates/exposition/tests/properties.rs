//! Properties: no input makes a parser panic or loop, and expositions
//! written by a reference writer parse back to exactly what was written, in
//! both formats, including tricky label values, names and floats.

use std::collections::BTreeMap;

use hearth_exposition::float::format_go_float;
use hearth_exposition::{Entry, Exemplar, Format, MetricType, Parser};
use hearth_model::{Labels, NORMAL_NAN_BITS};
use proptest::prelude::*;

/// Parses everything, checking that progress is made on every entry.
fn drain(input: &[u8], format: Format, strict: bool) {
    let mut parser = Parser::new(input, format);
    if strict {
        parser = parser.strict();
    }
    let mut last = 0;
    let mut entries = 0usize;
    while let Some(entry) = parser.next() {
        let pos = parser.position();
        if entry.is_ok() {
            assert!(pos > last || input.is_empty(), "no progress at byte {last}");
        }
        assert!(pos <= input.len());
        last = pos;
        entries += 1;
        assert!(entries <= input.len() + 1, "more entries than bytes");
    }
}

/// Byte strings made of exposition tokens, to reach deep parser states.
fn tokens() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        &b"{"[..],
        b"}",
        b"\"",
        b"=",
        b",",
        b" ",
        b"\t",
        b"\n",
        b"#",
        b"# ",
        b"HELP ",
        b"TYPE ",
        b"UNIT ",
        b"EOF",
        b"# EOF",
        b"# EOF\n",
        b"a",
        b"a_total",
        b"_bucket",
        b"le",
        b"quantile",
        b"1",
        b"-1.5e3",
        b"NaN",
        b"+Inf",
        b"0x1p3",
        b"\\",
        b"\\n",
        b"\\\"",
        b"\xff",
        b"\xc3\xa9",
        b"\x00",
        b"\r",
        b" # {",
        b"counter",
        b"histogram",
        b"summary",
        b"gauge",
        b"info",
        b"1700000000.5",
        b"1700000000123",
        b"9999999999999999999999",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|ts| ts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for format in [Format::Text004, Format::OpenMetrics] {
            drain(&bytes, format, false);
            drain(&bytes, format, true);
        }
    }

    #[test]
    fn token_soup_never_panics(bytes in tokens()) {
        for format in [Format::Text004, Format::OpenMetrics] {
            drain(&bytes, format, false);
            drain(&bytes, format, true);
        }
    }
}

/// A reference writer, per the spec's writer rules.
fn escape_label_value(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn escape_help(s: &str, format: Format) -> String {
    let s = s.replace('\\', r"\\").replace('\n', r"\n");
    match format {
        Format::OpenMetrics => s.replace('"', "\\\""),
        _ => s,
    }
}

fn is_legacy_metric_name(s: &str) -> bool {
    hearth_model::labels::is_legacy_metric_name(s)
}

fn write_name(name: &str) -> String {
    if is_legacy_metric_name(name) {
        name.to_string()
    } else {
        format!("\"{}\"", escape_label_value(name))
    }
}

fn write_label_name(name: &str) -> String {
    if hearth_model::labels::is_legacy_label_name(name) {
        name.to_string()
    } else {
        format!("\"{}\"", escape_label_value(name))
    }
}

#[derive(Debug, Clone)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
    /// Milliseconds (text) or whole seconds × 1000 (OpenMetrics).
    timestamp: Option<i64>,
    exemplar: Option<(BTreeMap<String, String>, f64)>,
}

#[derive(Debug, Clone)]
struct Family {
    name: String,
    metric_type: MetricType,
    help: Option<String>,
    samples: Vec<Sample>,
}

/// Spaces the text format tolerates, chosen per exposition.
#[derive(Debug, Clone, Copy)]
struct Spacing {
    blanks: bool,
    trailing_comma: bool,
}

fn sample_name(family: &Family, format: Format) -> String {
    match (family.metric_type, format) {
        (MetricType::Counter, Format::OpenMetrics) => format!("{}_total", family.name),
        _ => family.name.clone(),
    }
}

fn write_labels(
    out: &mut String,
    name: Option<&str>,
    labels: &BTreeMap<String, String>,
    spacing: Spacing,
) {
    let sep = if spacing.blanks { " , " } else { "," };
    let eq = if spacing.blanks { " = " } else { "=" };
    let mut parts: Vec<String> = name.map(write_name).into_iter().collect();
    parts.extend(
        labels
            .iter()
            .map(|(k, v)| format!("{}{eq}\"{}\"", write_label_name(k), escape_label_value(v))),
    );
    out.push('{');
    if spacing.blanks {
        out.push('\t');
    }
    out.push_str(&parts.join(sep));
    if spacing.trailing_comma && !labels.is_empty() {
        out.push(',');
    }
    out.push('}');
}

fn write(families: &[Family], format: Format, spacing: Spacing) -> String {
    let om = format == Format::OpenMetrics;
    let spacing = if om {
        Spacing {
            blanks: false,
            ..spacing
        }
    } else {
        spacing
    };
    let mut out = String::new();
    for f in families {
        let type_name = match (f.metric_type, om) {
            (MetricType::Unknown, false) => "untyped",
            (t, _) => t.as_str(),
        };
        out.push_str(&format!("# TYPE {} {type_name}\n", write_name(&f.name)));
        if let Some(help) = &f.help {
            out.push_str(&format!(
                "# HELP {} {}\n",
                write_name(&f.name),
                escape_help(help, format)
            ));
        }
        for s in &f.samples {
            let name = sample_name(f, format);
            if is_legacy_metric_name(&name) {
                out.push_str(&name);
                if !s.labels.is_empty() || spacing.blanks {
                    write_labels(&mut out, None, &s.labels, spacing);
                }
            } else {
                write_labels(&mut out, Some(&name), &s.labels, spacing);
            }
            out.push(' ');
            out.push_str(&format_go_float(s.value));
            if let Some(ts) = s.timestamp {
                if om {
                    out.push_str(&format!(" {}", ts / 1000));
                } else {
                    out.push_str(&format!(" {ts}"));
                }
            }
            if let (true, Some((labels, value))) = (om, &s.exemplar) {
                out.push_str(" # ");
                write_labels(&mut out, None, labels, spacing);
                out.push(' ');
                out.push_str(&format_go_float(*value));
            }
            if spacing.blanks {
                out.push_str(" \t");
            }
            out.push('\n');
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

fn expected(families: &[Family], format: Format) -> Vec<Entry<'static>> {
    let om = format == Format::OpenMetrics;
    let normal = |v: f64| {
        if v.is_nan() {
            f64::from_bits(NORMAL_NAN_BITS)
        } else {
            v
        }
    };
    let mut out = Vec::new();
    for f in families {
        out.push(Entry::Type {
            family: f.name.clone().into(),
            metric_type: f.metric_type,
        });
        if let Some(help) = &f.help {
            // The text format cannot carry a HELP of only blanks: Prometheus
            // reads a blank rest of line as no text.
            let blank = help.chars().all(|c| c == ' ' || c == '\t');
            let text = if blank && !om {
                String::new()
            } else {
                help.clone()
            };
            out.push(Entry::Help {
                family: f.name.clone().into(),
                text: text.into(),
            });
        }
        for s in &f.samples {
            let name = sample_name(f, format);
            let labels = Labels::new(
                s.labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .chain([("__name__", name.as_str())]),
            );
            let exemplar = s.exemplar.as_ref().filter(|_| om).map(|(l, v)| Exemplar {
                labels: Labels::new(l.iter()),
                value: normal(*v),
                timestamp: None,
            });
            out.push(Entry::Series {
                labels,
                value: normal(s.value),
                timestamp: s.timestamp,
                exemplar,
                metric_type: f.metric_type,
            });
        }
    }
    if om {
        out.push(Entry::Eof);
    }
    out
}

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        1 => "(\\PC|\\\\|\"|\n){1,6}",
    ]
    .prop_filter("reserved", |n| n != "__name__")
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9/_.:-]{0,10}",
        2 => "(\\PC|\\\\|\"|\n|\t|\\\\n| # \\{){0,8}",
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => (0u32..1_000_000).prop_map(f64::from),
        2 => any::<f64>(),
        1 => prop::sample::select(vec![0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN_POSITIVE, 1e-310]),
    ]
}

fn samples(om: bool) -> impl Strategy<Value = Vec<Sample>> {
    let timestamp = if om {
        prop::option::of((-10_000_000_000i64..10_000_000_000).prop_map(|s| s * 1000)).boxed()
    } else {
        prop::option::of(0i64..=i64::MAX).boxed()
    };
    let exemplar = prop::option::of((
        prop::collection::btree_map("[a-z_]{1,5}", "[a-z0-9]{0,8}", 0..3),
        float(),
    ));
    prop::collection::vec(
        (
            prop::collection::btree_map(label_name(), label_value(), 0..4),
            float(),
            timestamp,
            exemplar,
        )
            .prop_map(|(labels, value, timestamp, exemplar)| Sample {
                labels,
                value,
                timestamp,
                exemplar,
            }),
        1..4,
    )
}

fn families(om: bool) -> impl Strategy<Value = Vec<Family>> {
    let family = (
        prop_oneof![4 => "[a-zA-Z_:][a-zA-Z0-9_:]{0,8}", 1 => "(\\PC|\\\\|\"){1,8}"],
        prop::sample::select(vec![
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Unknown,
        ]),
        prop::option::of("(\\PC|\\\\|\"|\n|\t|\\\\n){0,12}"),
        samples(om),
    )
        .prop_map(|(name, metric_type, help, samples)| Family {
            name,
            metric_type,
            help,
            samples,
        });
    prop::collection::vec(family, 0..5).prop_map(|mut fs| {
        // Unique family names, and no family named like another's samples.
        let mut seen = std::collections::HashSet::new();
        fs.retain(|f| {
            seen.insert(f.name.clone())
                && seen.insert(format!("{}_total", f.name))
                && !f.name.ends_with("_total")
        });
        fs
    })
}

fn check_round_trip(
    families: &[Family],
    format: Format,
    spacing: Spacing,
) -> Result<(), TestCaseError> {
    let text = write(families, format, spacing);
    let parsed: Result<Vec<Entry<'_>>, _> = Parser::new(text.as_bytes(), format).collect();
    let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    let want = expected(families, format);
    prop_assert_eq!(parsed.len(), want.len(), "{}", text);
    for (got, want) in parsed.iter().zip(&want) {
        prop_assert_eq!(got, want, "{}", text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn text_expositions_round_trip(fs in families(false), blanks in any::<bool>(), trailing_comma in any::<bool>()) {
        check_round_trip(&fs, Format::Text004, Spacing { blanks, trailing_comma })?;
    }

    #[test]
    fn openmetrics_expositions_round_trip(fs in families(true), trailing_comma in any::<bool>()) {
        check_round_trip(&fs, Format::OpenMetrics, Spacing { blanks: false, trailing_comma })?;
    }

    #[test]
    fn openmetrics_fractional_timestamps_truncate_like_prometheus(ms in -10_000_000_000_000i64..10_000_000_000_000) {
        let seconds = format!("{}{}.{:03}", if ms < 0 { "-" } else { "" }, (ms / 1000).abs(), (ms % 1000).abs());
        let input = format!("a 1 {seconds}\n# EOF\n");
        let entries: Vec<Entry<'_>> = Parser::new(input.as_bytes(), Format::OpenMetrics).collect::<Result<_, _>>().unwrap();
        let Entry::Series { timestamp: Some(ts), .. } = entries[0] else { panic!("{entries:?}") };
        let want = (seconds.parse::<f64>().unwrap() * 1000.0) as i64;
        prop_assert_eq!(ts, want);
        prop_assert!((ts - ms).abs() <= 1, "{} -> {}", seconds, ts);
    }
}

#[test]
fn tricky_label_values_round_trip_in_both_formats() {
    let values = [
        "",
        "\\",
        "\"",
        "\n",
        "\\n",
        "\\\\n",
        "a\\",
        "\\\"",
        "é",
        "\u{10FFFF}",
        "#",
        "{",
        "}",
        ",",
        "=",
        " # {a=\"b\"} 1",
        "\u{0}",
        "\t",
        "line one\nline \"two\"",
        "C:\\tmp",
        "}} 1\nb 2",
    ];
    for value in values {
        for format in [Format::Text004, Format::OpenMetrics] {
            let family = Family {
                name: "m".to_string(),
                metric_type: MetricType::Gauge,
                help: Some(value.to_string()),
                samples: vec![Sample {
                    labels: BTreeMap::from([
                        ("v".to_string(), value.to_string()),
                        (value.to_string(), "x".to_string()),
                    ])
                    .into_iter()
                    .filter(|(k, _)| !k.is_empty())
                    .collect(),
                    value: 1.0,
                    timestamp: None,
                    exemplar: None,
                }],
            };
            check_round_trip(
                &[family],
                format,
                Spacing {
                    blanks: false,
                    trailing_comma: false,
                },
            )
            .unwrap_or_else(|e| panic!("{value:?} in {format:?}: {e}"));
        }
    }
}

#[test]
fn tricky_floats_round_trip() {
    for v in [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        1e-5,
        1e21,
        123456.0,
        1234567.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::EPSILON,
        9007199254740993.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let family = Family {
            name: "m".to_string(),
            metric_type: MetricType::Gauge,
            help: None,
            samples: vec![Sample {
                labels: BTreeMap::new(),
                value: v,
                timestamp: Some(1),
                exemplar: None,
            }],
        };
        check_round_trip(
            &[family],
            Format::Text004,
            Spacing {
                blanks: false,
                trailing_comma: false,
            },
        )
        .unwrap();
    }
}
