//! Hearth's scraper and Prometheus 2.42 (Debian's `prometheus`, which asks
//! for protobuf with `--enable-feature=native-histograms`) scrape the same
//! protobuf endpoint; the stored series sets, their values and explicit
//! timestamps, and the metric metadata must be the same.
//!
//! Every metric type is exposed with classic buckets only: Prometheus stores
//! native histograms natively, Hearth their classic series, so they are
//! left out here (the exposition crate's tests cover them). So are gauge
//! histograms: 2.42 names all their series after the family, without
//! `_bucket`, `_sum` and `_count` (fixed in Prometheus 3, which Hearth
//! follows). Exemplars are not compared: the scraper does not store them.
//!
//! Fails, naming the package, when /usr/bin/prometheus is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::response::Response;
use hearth_config::Config;
use hearth_discovery::{TargetGroup, TargetSets};
use hearth_model::{is_stale_nan, Labels, MatchOp, Matcher};
use hearth_proto::client::{
    Bucket, Counter, Exemplar, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
    Quantile, Summary, Untyped,
};
use hearth_scrape::{ScrapeManager, ScrapeOptions};
use hearth_storage_api::SelectHints;
use hearth_tsdb::db::{Db, DbOptions};
use prost::Message;
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Series labels as sorted name/value pairs, comparable across both sides.
type SeriesKey = BTreeMap<String, String>;

fn label(n: &str, v: &str) -> LabelPair {
    LabelPair {
        name: Some(n.into()),
        value: Some(v.into()),
    }
}

fn family(name: &str, t: MetricType, help: &str, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: Some(help.into()),
        r#type: Some(t as i32),
        metric,
        unit: None,
    }
}

fn counter(labels: Vec<LabelPair>, value: f64, exemplar: Option<Exemplar>) -> Metric {
    Metric {
        label: labels,
        counter: Some(Counter {
            value: Some(value),
            exemplar,
            created_timestamp: None,
        }),
        ..Metric::default()
    }
}

fn gauge(labels: Vec<LabelPair>, value: f64) -> Metric {
    Metric {
        label: labels,
        gauge: Some(Gauge { value: Some(value) }),
        ..Metric::default()
    }
}

fn histogram(labels: Vec<LabelPair>, bounds: &[(f64, u64)], sum: f64, count: u64) -> Metric {
    Metric {
        label: labels,
        histogram: Some(Histogram {
            sample_count: Some(count),
            sample_sum: Some(sum),
            bucket: bounds
                .iter()
                .map(|&(b, c)| Bucket {
                    cumulative_count: Some(c),
                    upper_bound: Some(b),
                    ..Bucket::default()
                })
                .collect(),
            ..Histogram::default()
        }),
        ..Metric::default()
    }
}

/// Every metric type, escapes and UTF-8 in label values, an empty label
/// value, NaN, an explicit timestamp `explicit_ms`, and an empty family.
fn exposition(explicit_ms: i64) -> Vec<u8> {
    let exemplar = Exemplar {
        label: vec![label("trace_id", "abc")],
        value: Some(1.0),
        timestamp: None,
    };
    let families = [
        family(
            "reqs_total",
            MetricType::Counter,
            "Requests handled.\nBy code.",
            vec![
                counter(
                    vec![label("method", "GET"), label("code", "200")],
                    1027.0,
                    Some(exemplar),
                ),
                counter(
                    vec![label("code", "500"), label("method", "GET")],
                    3.0,
                    None,
                ),
            ],
        ),
        family(
            "jobs",
            MetricType::Counter,
            "",
            vec![counter(vec![], 12.0, None)],
        ),
        family(
            "temp_celsius",
            MetricType::Gauge,
            "Temperature \"inside\" \\ C.",
            vec![
                gauge(
                    vec![
                        label("path", "C:\\tmp"),
                        label("note", "line one\nline \"two\" é"),
                    ],
                    -1.5e-7,
                ),
                gauge(vec![label("room", "b"), label("empty", "")], f64::NAN),
            ],
        ),
        family(
            "explicit_time",
            MetricType::Gauge,
            "",
            vec![Metric {
                timestamp_ms: Some(explicit_ms),
                ..gauge(vec![], 42.0)
            }],
        ),
        family(
            "some_untyped",
            MetricType::Untyped,
            "",
            vec![Metric {
                untyped: Some(Untyped { value: Some(0.5) }),
                ..Metric::default()
            }],
        ),
        family(
            "rpc_seconds",
            MetricType::Summary,
            "RPC latency.",
            vec![Metric {
                label: vec![label("service", "api")],
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
                ..Metric::default()
            }],
        ),
        family(
            "wait_seconds",
            MetricType::Histogram,
            "Waits.",
            vec![
                histogram(
                    vec![label("queue", "a")],
                    &[
                        (0.005, 1),
                        (0.1, 3),
                        (1.0, 7),
                        (10.0, 9),
                        (1e5, 10),
                        (1e6, 11),
                    ],
                    93.2,
                    12,
                ),
                histogram(
                    vec![label("queue", "b")],
                    &[(0.5, 1), (f64::INFINITY, 2)],
                    0.75,
                    2,
                ),
            ],
        ),
        family(
            "no_buckets",
            MetricType::Histogram,
            "",
            vec![histogram(vec![], &[], 3.0, 4)],
        ),
        family("nothing_yet", MetricType::Counter, "Never exposed.", vec![]),
    ];
    families
        .iter()
        .flat_map(|f| f.encode_length_delimited_to_vec())
        .collect()
}

async fn start_exporter(body: Vec<u8>) -> SocketAddr {
    let body = Arc::new(body);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            Response::builder()
                .header("content-type", PROTOBUF)
                .body(Body::from(body.as_ref().clone()))
                .unwrap()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Prometheus 2.42, killed (by its own handle) when dropped.
struct Prometheus {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: install the Debian package `prometheus` \
             (apt-get install prometheus)"
        );
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
                 - job_name: proto\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=native-histograms")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Option<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .ok()?;
        let v: Value = response.json().await.ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A value as both sides compare it: NaNs alike, else the shortest digits.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// Per series of the job: the distinct values, and the sample timestamps
/// when they were exposed (`explicit_time`), else nothing.
type Observed = BTreeMap<SeriesKey, (BTreeSet<String>, BTreeSet<i64>)>;

/// Whether a series' values are compared: the report series that vary
/// from scrape to scrape are not.
fn compared(key: &SeriesKey) -> bool {
    key.get("__name__")
        .is_some_and(|n| n != "scrape_duration_seconds")
}

async fn prometheus_observed(p: &Prometheus) -> Option<Observed> {
    let data = p
        .get(
            "/api/v1/query",
            &[
                ("query", "{job=\"proto\"}[1h]".to_string()),
                ("time", format!("{}", now_ms() as f64 / 1000.0)),
            ],
        )
        .await?;
    let mut out = Observed::new();
    for series in data["result"].as_array()? {
        let key: SeriesKey = series["metric"]
            .as_object()?
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let entry = out.entry(key.clone()).or_default();
        for point in series["values"].as_array()? {
            let t = (point[0].as_f64()? * 1000.0).round() as i64;
            let v: f64 = point[1].as_str()?.parse().ok()?;
            if compared(&key) {
                entry.0.insert(value_text(v));
            }
            if key.get("__name__").map(String::as_str) == Some("explicit_time") {
                entry.1.insert(t);
            }
        }
    }
    Some(out)
}

fn hearth_observed(db: &Db) -> Observed {
    let matchers = [Matcher::new(MatchOp::Equal, "job", "proto").unwrap()];
    let mut out = Observed::new();
    for s in db
        .select_sync(&matchers, SelectHints::new(i64::MIN, i64::MAX))
        .unwrap()
    {
        let key: SeriesKey = s
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        let entry = out.entry(key.clone()).or_default();
        for sample in s.samples(i64::MIN, i64::MAX).unwrap() {
            assert!(!is_stale_nan(sample.v), "no scrape failed: {key:?}");
            if compared(&key) {
                entry.0.insert(value_text(sample.v));
            }
            if key.get("__name__").map(String::as_str) == Some("explicit_time") {
                entry.1.insert(sample.t);
            }
        }
    }
    out
}

/// `(metric, type, help, unit)` of every metadata entry Prometheus has for
/// the job's target.
async fn prometheus_metadata(p: &Prometheus) -> Option<BTreeSet<(String, String, String, String)>> {
    let data = p
        .get(
            "/api/v1/targets/metadata",
            &[("match_target", "{job=\"proto\"}".to_string())],
        )
        .await?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Some(
        data.as_array()?
            .iter()
            .map(|m| {
                (
                    text(&m["metric"]),
                    text(&m["type"]),
                    text(&m["help"]),
                    text(&m["unit"]),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_and_prometheus_2_42_store_the_same_from_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let explicit_ms = now_ms() - 5_000;
    let addr = start_exporter(exposition(explicit_ms)).await;
    let prometheus = Prometheus::start(dir.path(), addr);

    let db = Arc::new(Db::open(dir.path().join("hearth"), DbOptions::default()).unwrap());
    let manager = ScrapeManager::new(db.clone(), ScrapeOptions::default());
    let config = Config::parse(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
         - job_name: proto\n    scrape_protocols: [PrometheusProto]\n",
    )
    .unwrap();
    manager.apply_config(&config);
    let mut sets = TargetSets::new();
    sets.insert(
        "proto".to_string(),
        vec![TargetGroup {
            source: "test".into(),
            targets: vec![Labels::new([("__address__", addr.to_string())])],
            labels: Labels::empty(),
        }],
    );
    manager.sync(&sets);

    // Both have scraped at least three times.
    let deadline = Instant::now() + Duration::from_secs(60);
    let scrapes = |o: &Observed| {
        o.iter()
            .find(|(k, _)| k.get("__name__").map(String::as_str) == Some("scrape_series_added"))
            .map_or(0, |(_, (values, _))| values.len())
    };
    let (theirs, ours) = loop {
        let theirs = prometheus_observed(&prometheus).await;
        let ours = hearth_observed(&db);
        let ups = |o: &Observed| {
            o.iter()
                .filter(|(k, _)| k.get("__name__").map(String::as_str) == Some("up"))
                .count()
        };
        if let Some(theirs) = theirs {
            // Two distinct `scrape_series_added` values: a first scrape
            // and a cached one.
            if ups(&theirs) == 1 && scrapes(&theirs) == 2 && scrapes(&ours) == 2 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                break (
                    prometheus_observed(&prometheus).await.unwrap(),
                    hearth_observed(&db),
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "no scrapes by both within 60 s; Prometheus's log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let names = |o: &Observed| -> BTreeSet<SeriesKey> { o.keys().cloned().collect() };
    let instance = addr.to_string();
    // Sanity: what both should have, Prometheus 3's `le` and `quantile`.
    let expected_some = [
        vec![
            ("__name__", "wait_seconds_bucket"),
            ("le", "1e+06"),
            ("queue", "a"),
        ],
        vec![
            ("__name__", "wait_seconds_bucket"),
            ("le", "100000.0"),
            ("queue", "a"),
        ],
        vec![
            ("__name__", "wait_seconds_bucket"),
            ("le", "+Inf"),
            ("queue", "a"),
        ],
        vec![
            ("__name__", "rpc_seconds"),
            ("quantile", "1.0"),
            ("service", "api"),
        ],
        vec![("__name__", "no_buckets_bucket"), ("le", "+Inf")],
        vec![("__name__", "jobs")],
    ];
    for pairs in expected_some {
        let mut key: SeriesKey = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        key.insert("job".into(), "proto".into());
        key.insert("instance".into(), instance.clone());
        assert!(ours.contains_key(&key), "Hearth lacks {key:?}");
    }
    let (ours_only, theirs_only): (Vec<_>, Vec<_>) = (
        names(&ours).difference(&names(&theirs)).cloned().collect(),
        names(&theirs).difference(&names(&ours)).cloned().collect(),
    );
    assert!(
        ours_only.is_empty() && theirs_only.is_empty(),
        "series sets differ: Hearth only {ours_only:?}, Prometheus only {theirs_only:?}; \
         Prometheus's log:\n{}",
        prometheus.log()
    );
    assert_eq!(ours, theirs, "values or explicit timestamps differ");
    assert_eq!(
        ours.iter()
            .find(|(k, _)| k.get("__name__").map(String::as_str) == Some("explicit_time"))
            .map(|(_, (_, times))| times.clone()),
        Some(BTreeSet::from([explicit_ms]))
    );

    let theirs = prometheus_metadata(&prometheus).await.expect("metadata");
    let ours: BTreeSet<(String, String, String, String)> = manager
        .metadata()
        .iter()
        .filter(|m| m.scrape_pool == "proto")
        .flat_map(|m| m.metadata.iter())
        .map(|m| {
            (
                m.metric.clone(),
                m.metric_type.clone(),
                m.help.clone(),
                m.unit.clone(),
            )
        })
        .filter(|(metric, ..)| !metric.starts_with("scrape_") && metric != "up")
        .collect();
    let theirs: BTreeSet<_> = theirs
        .into_iter()
        .filter(|(metric, ..)| !metric.starts_with("scrape_") && metric != "up")
        .collect();
    assert_eq!(ours, theirs, "metadata differs");
    let entry = |metric: &str, t: &str, help: &str| {
        (
            metric.to_string(),
            t.to_string(),
            help.to_string(),
            String::new(),
        )
    };
    assert!(ours.contains(&entry(
        "reqs_total",
        "counter",
        "Requests handled.\nBy code."
    )));
    assert!(ours.contains(&entry("some_untyped", "unknown", "")));
    assert!(
        !ours.iter().any(|(metric, ..)| metric == "nothing_yet"),
        "families without metrics are skipped"
    );
    manager.stop().await;
}
