//! `hearth standalone` end to end: remote write with every kind of bad
//! input, the metadata API in Prometheus's JSON, probes and self-metrics.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn get_json(client: &reqwest::blocking::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap())
}

fn series_names(client: &reqwest::blocking::Client, s: &Standalone, selector: &str) -> Vec<String> {
    let url = s.url(&format!("/api/v1/series?match[]={}", urlencode(selector)));
    let (status, v) = get_json(client, &url);
    assert_eq!(status, 200, "{v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn bad_remote_write_input_gets_the_documented_answer_and_damages_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Standalone::start(&data, &[]);
    let client = reqwest::blocking::Client::new();
    let url = s.url("/api/v1/write");
    let t = now_ms() - 60_000;

    // A baseline that must survive everything below.
    let base = write_body(vec![series(
        &[("__name__", "baseline"), ("job", "a")],
        &[(t, 1.0), (t + 1000, 2.0)],
    )]);
    assert_eq!(post_write(&client, &url, base).unwrap().0, 204);

    let raw = write_body(vec![series(&[("__name__", "x")], &[(t, 1.0)])]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("truncated snappy", raw[..raw.len() / 2].to_vec(), 400),
        (
            "garbage snappy",
            b"\xff\xff\xff\xff\xffnot snappy at all".to_vec(),
            400,
        ),
        (
            "garbage protobuf",
            hearth_proto::remote_write::compress_snappy_block(b"\x0a\xff\xff\xff\xff\x0fgarbage"),
            400,
        ),
        (
            "out of order samples",
            write_body(vec![
                series(&[("__name__", "rolled_back")], &[(t, 1.0)]),
                series(&[("__name__", "ooo")], &[(t + 10, 1.0), (t + 5, 2.0)]),
            ]),
            400,
        ),
        (
            "duplicate sample with another value",
            write_body(vec![series(
                &[("__name__", "baseline"), ("job", "a")],
                &[(t, 5.0)],
            )]),
            400,
        ),
        (
            "sample older than the head's lower bound",
            write_body(vec![series(
                &[("__name__", "too_old")],
                &[(t - 3 * 3_600_000, 1.0)],
            )]),
            400,
        ),
        (
            "sample far in the future",
            write_body(vec![series(
                &[("__name__", "future")],
                &[(now_ms() + 3_600_000, 1.0)],
            )]),
            400,
        ),
    ];
    for (what, body, want) in cases {
        let (status, text) = post_write(&client, &url, body).unwrap();
        assert_eq!(status, want, "{what}: got {status} {text}");
        assert!(!text.trim().is_empty(), "{what}: a 4xx must say why");
    }

    // Skipped silently as Prometheus 3 does: the request still succeeds.
    let skipped = write_body(vec![
        series(
            &[("__name__", "dup_names"), ("a", "1"), ("a", "2")],
            &[(t, 1.0)],
        ),
        series(&[], &[(t, 1.0)]),
        series(&[("", "x"), ("__name__", "empty_name")], &[(t, 1.0)]),
        series(&[("job", "no_metric_name")], &[(t, 1.0)]),
    ]);
    assert_eq!(post_write(&client, &url, skipped).unwrap().0, 204);

    // Accepted: unsorted labels (sorted by the receiver), special values,
    // a 1 MB label value, a duplicate with the identical value.
    let long = "v".repeat(1 << 20);
    let accepted = write_body(vec![
        series(&[("zone", "z"), ("__name__", "unsorted")], &[(t, 1.0)]),
        series(
            &[("__name__", "special")],
            &[
                (t, f64::NAN),
                (t + 1, f64::INFINITY),
                (t + 2, f64::NEG_INFINITY),
            ],
        ),
        series(&[("__name__", "long_value"), ("v", &long)], &[(t, 1.0)]),
        series(
            &[("__name__", "baseline"), ("job", "a")],
            &[(t + 1000, 2.0)],
        ),
    ]);
    assert_eq!(post_write(&client, &url, accepted).unwrap().0, 204);

    // A 100 MB body is refused before it is read whole.
    let huge = vec![0u8; 100 << 20];
    let (status, _) = post_write(&client, &url, huge).unwrap_or((413, String::new()));
    assert_eq!(status, 413);

    // Wrong method and unknown encodings.
    let r = client.get(&url).send().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = client
        .post(&url)
        .header("Content-Encoding", "gzip")
        .body(vec![1, 2, 3])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);

    let names = series_names(&client, &s, r#"{__name__=~".+"}"#);
    let joined = names.join("\n");
    for present in ["baseline", "unsorted", "special", "long_value"] {
        assert!(
            joined.contains(&format!("\"{present}\"")),
            "{present} missing from {joined}"
        );
    }
    for absent in [
        "rolled_back",
        "ooo",
        "too_old",
        "future",
        "dup_names",
        "empty_name",
        "x\"",
    ] {
        assert!(
            !joined.contains(&format!("\"{absent}")),
            "{absent} must not be stored: {joined}"
        );
    }
    assert!(!joined.contains("no_metric_name"));
    s.stop();

    let dumped = dump(&data);
    let baseline: Vec<_> = dumped
        .iter()
        .filter(|d| d.labels.contains("baseline"))
        .collect();
    assert_eq!(baseline.len(), 2);
    assert_eq!((baseline[0].t, f64::from_bits(baseline[0].bits)), (t, 1.0));
    assert_eq!(
        (baseline[1].t, f64::from_bits(baseline[1].bits)),
        (t + 1000, 2.0)
    );
    let special: Vec<u64> = dumped
        .iter()
        .filter(|d| d.labels.contains("special"))
        .map(|d| d.bits)
        .collect();
    assert_eq!(
        special,
        vec![
            f64::NAN.to_bits(),
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits()
        ]
    );
}

#[test]
fn metadata_api_answers_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let s = Standalone::start(&dir.path().join("data"), &[]);
    let client = reqwest::blocking::Client::new();
    let t = now_ms() - 60_000;
    let body = write_body(vec![
        series(
            &[("__name__", "up"), ("job", "node"), ("instance", "a:9100")],
            &[(t, 1.0)],
        ),
        series(
            &[("__name__", "up"), ("job", "prom"), ("instance", "b:9090")],
            &[(t, 0.0)],
        ),
        series(
            &[
                ("__name__", "http_requests_total"),
                ("job", "prom"),
                ("code", "200"),
            ],
            &[(t, 10.0)],
        ),
    ]);
    assert_eq!(
        post_write(&client, &s.url("/api/v1/write"), body)
            .unwrap()
            .0,
        204
    );

    let (status, v) = get_json(&client, &s.url("/api/v1/series?match[]=up"));
    assert_eq!(status, 200);
    assert_eq!(
        v,
        serde_json::json!({"status":"success","data":[
            {"__name__":"up","instance":"a:9100","job":"node"},
            {"__name__":"up","instance":"b:9090","job":"prom"}]})
    );

    // POST form, two selectors ORed, limit with its warning.
    let r = client
        .post(s.url("/api/v1/series"))
        .form(&[
            ("match[]", "up{job=\"node\"}"),
            ("match[]", "http_requests_total"),
            ("limit", "1"),
        ])
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"][0], "results truncated due to limit");

    let (_, v) = get_json(&client, &s.url("/api/v1/labels"));
    assert_eq!(
        v["data"],
        serde_json::json!(["__name__", "code", "instance", "job"])
    );
    let r = client
        .post(s.url("/api/v1/labels"))
        .form(&[("match[]", "up")])
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["data"],
        serde_json::json!(["__name__", "instance", "job"])
    );
    let (_, v) = get_json(&client, &s.url("/api/v1/label/job/values"));
    assert_eq!(v["data"], serde_json::json!(["node", "prom"]));
    let (_, v) = get_json(
        &client,
        &s.url("/api/v1/label/__name__/values?match[]={job=\"prom\"}"),
    );
    assert_eq!(v["data"], serde_json::json!(["http_requests_total", "up"]));
    let (_, v) = get_json(&client, &s.url("/api/v1/label/nope/values"));
    assert_eq!(v["data"], serde_json::json!([]));
    // A range before the data has nothing.
    let (_, v) = get_json(
        &client,
        &s.url(&format!(
            "/api/v1/series?match[]=up&end={}",
            (t - 600_000) / 1000
        )),
    );
    assert_eq!(v["data"], serde_json::json!([]));

    // Errors in Prometheus's envelope.
    for (path, msg) in [
        ("/api/v1/series", "no match[] parameter provided"),
        (
            "/api/v1/series?match[]={job=~\".*\"}",
            "at least one non-empty matcher",
        ),
        (
            "/api/v1/series?match[]=up{",
            "invalid parameter \"match[]\"",
        ),
        (
            "/api/v1/series?match[]=up&start=yesterday",
            "invalid parameter \"start\"",
        ),
        ("/api/v1/labels?limit=-1", "invalid parameter \"limit\""),
        (
            "/api/v1/series?match[]=up&start=10&end=5",
            "end timestamp must not be before start",
        ),
    ] {
        let (status, v) = get_json(&client, &s.url(path));
        assert_eq!(status, 400, "{path}: {v}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "bad_data");
        assert!(v["error"].as_str().unwrap().contains(msg), "{path}: {v}");
    }

    // Metric metadata shipped by remote write is served on /api/v1/metadata.
    use hearth_proto::prometheus::{metric_metadata::MetricType, MetricMetadata, WriteRequest};
    let md = hearth_proto::remote_write::encode_write_request(&WriteRequest {
        metadata: vec![MetricMetadata {
            r#type: MetricType::Counter as i32,
            metric_family_name: "http_requests_total".into(),
            help: "Requests <served>.".into(),
            unit: String::new(),
        }],
        ..Default::default()
    });
    assert_eq!(
        post_write(&client, &s.url("/api/v1/write"), md).unwrap().0,
        204
    );
    let (_, v) = get_json(&client, &s.url("/api/v1/metadata"));
    assert_eq!(
        v["data"],
        serde_json::json!({"http_requests_total":[{"type":"counter","unit":"","help":"Requests <served>."}]})
    );
    let (_, v) = get_json(&client, &s.url("/api/v1/metadata?metric=nope"));
    assert_eq!(v["data"], serde_json::json!({}));
    let (status, _) = get_json(&client, &s.url("/api/v1/metadata?limit=x"));
    assert_eq!(status, 400);

    let r = client.get(s.url("/-/healthy")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client.get(s.url("/-/ready")).send().unwrap();
    assert_eq!(r.text().unwrap(), "Hearth standalone is Ready.\n");
    let metrics = client
        .get(s.url("/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("hearth_api_remote_write_requests_total{code=\"204\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("hearth_tsdb_head_series 3"), "{metrics}");
}

#[test]
fn query_api_answers_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let s = Standalone::start(&dir.path().join("data"), &[]);
    let client = reqwest::blocking::Client::new();
    // Whole seconds, 60 s apart, ending two minutes ago.
    let end = (now_ms() / 60_000 - 2) * 60_000;
    let start = end - 10 * 60_000;
    let points: Vec<(i64, f64)> = (0..=10).map(|i| (start + i * 60_000, i as f64)).collect();
    let body = write_body(vec![
        series(
            &[("__name__", "up"), ("job", "node"), ("instance", "a")],
            &points,
        ),
        series(
            &[("__name__", "up"), ("job", "prom"), ("instance", "b")],
            &points,
        ),
    ]);
    assert_eq!(
        post_write(&client, &s.url("/api/v1/write"), body)
            .unwrap()
            .0,
        204
    );
    let q = |path: &str, form: &[(&str, String)]| -> (u16, Value) {
        let r = client.post(s.url(path)).form(form).send().unwrap();
        (r.status().as_u16(), r.json().unwrap())
    };
    let t = (end / 1000).to_string();

    let (status, v) = q(
        "/api/v1/query",
        &[("query", "sum by (job) (up)".into()), ("time", t.clone())],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"node"},"value":[end / 1000,"10"]},
            {"metric":{"job":"prom"},"value":[end / 1000,"10"]}]}})
    );
    let (_, v) = q(
        "/api/v1/query",
        &[("query", "1 + 1".into()), ("time", t.clone())],
    );
    assert_eq!(
        v["data"],
        serde_json::json!({"resultType":"scalar","result":[end / 1000,"2"]})
    );

    let (status, v) = q(
        "/api/v1/query_range",
        &[
            ("query", "up{job=\"node\"} * 2".into()),
            ("start", ((end - 120_000) / 1000).to_string()),
            ("end", t.clone()),
            ("step", "60".into()),
        ],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["data"],
        serde_json::json!({"resultType":"matrix","result":[{"metric":{"instance":"a","job":"node"},
            "values":[[(end - 120_000) / 1000,"16"],[(end - 60_000) / 1000,"18"],[end / 1000,"20"]]}]})
    );

    // Errors, with Prometheus's types and statuses.
    let (status, v) = q("/api/v1/query", &[("query", "sum(".into())]);
    assert_eq!(
        (status, v["errorType"].as_str()),
        (400, Some("bad_data")),
        "{v}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"query\""),
        "{v}"
    );
    let (status, v) = q(
        "/api/v1/query_range",
        &[
            ("query", "up".into()),
            ("start", "0".into()),
            ("end", "100".into()),
            ("step", "0".into()),
        ],
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = q(
        "/api/v1/query_range",
        &[
            ("query", "up".into()),
            ("start", "0".into()),
            ("end", "100000".into()),
            ("step", "1".into()),
        ],
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("11,000 points"),
        "{v}"
    );
    let (status, v) = q(
        "/api/v1/query",
        &[("query", "up + on() up".into()), ("time", t.clone())],
    );
    assert_eq!(
        (status, v["errorType"].as_str()),
        (422, Some("execution")),
        "{v}"
    );
    let (_, v) = q(
        "/api/v1/format_query",
        &[("query", "sum(rate(x[5m]))by(job)".into())],
    );
    assert_eq!(v["data"], "sum by (job) (rate(x[5m]))");

    // Status endpoints in Prometheus's shapes.
    let (status, v) = get_json(&client, &s.url("/api/v1/status/buildinfo"));
    assert_eq!(status, 200);
    assert!(v["data"]["version"].is_string());
    let (_, v) = get_json(&client, &s.url("/api/v1/status/flags"));
    assert_eq!(v["data"]["storage.tsdb.retention.time"], "15d");
    assert_eq!(v["data"]["query.lookback-delta"], "300000ms");
    let (_, v) = get_json(&client, &s.url("/api/v1/status/runtimeinfo"));
    assert_eq!(v["data"]["storageRetention"], "15d");
    let (_, v) = get_json(&client, &s.url("/api/v1/status/tsdb"));
    assert_eq!(v["data"]["headStats"]["numSeries"], 2);
    assert_eq!(
        v["data"]["seriesCountByMetricName"],
        serde_json::json!([{"name":"up","value":2}])
    );
    assert_eq!(
        v["data"]["labelValueCountByLabelName"][0],
        serde_json::json!({"name":"instance","value":2})
    );
    let (status, _) = get_json(&client, &s.url("/api/v1/status/tsdb?limit=0"));
    assert_eq!(status, 400);
    // The harness's configuration without jobs, with Prometheus's defaults.
    let (_, v) = get_json(&client, &s.url("/api/v1/status/config"));
    assert_eq!(
        v["data"]["yaml"],
        "global:\n  scrape_interval: 1m\n  scrape_timeout: 10s\n  evaluation_interval: 1m\n"
    );
}
