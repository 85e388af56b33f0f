//! The scraper against an in-process exporter (axum on a loopback port):
//! what reaches the TSDB (samples, report series, stale markers), what the
//! targets API shows, and what the scrape requests carry.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use hearth_config::Config;
use hearth_discovery::{TargetGroup, TargetSets};
use hearth_model::{is_stale_nan, Labels, MatchOp, Matcher, Sample};
use hearth_scrape::{ScrapeManager, ScrapeOptions, TargetHealth};
use hearth_storage_api::SelectHints;
use hearth_tsdb::db::{Db, DbOptions};

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the exporter answers on its `n`-th request to a path (from 1).
enum Reply {
    Body(&'static str, Vec<u8>),
    Gzip(&'static str, Vec<u8>),
    Status(StatusCode),
    Hang,
}

type Responder = Box<dyn Fn(u64) -> Reply + Send + Sync>;

#[derive(Default)]
struct Exporter {
    routes: Mutex<HashMap<String, Responder>>,
    hits: Mutex<HashMap<String, u64>>,
    requests: Mutex<Vec<(String, HeaderMap)>>,
}

impl Exporter {
    async fn start() -> (Arc<Exporter>, SocketAddr) {
        let exporter = Arc::new(Exporter::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(exporter.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (exporter, addr)
    }

    fn route(&self, path: &str, responder: impl Fn(u64) -> Reply + Send + Sync + 'static) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_string(), Box::new(responder));
    }

    fn hits(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn requests(&self, path: &str) -> Vec<(String, HeaderMap)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(uri, _)| uri.split('?').next() == Some(path))
            .cloned()
            .collect()
    }
}

fn handle(
    State(exporter): State<Arc<Exporter>>,
    uri: Uri,
    headers: HeaderMap,
) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    let path = uri.path().to_string();
    let n = {
        let mut hits = exporter.hits.lock().unwrap();
        let count = hits.entry(path.clone()).or_insert(0);
        *count += 1;
        *count
    };
    exporter
        .requests
        .lock()
        .unwrap()
        .push((uri.to_string(), headers));
    let reply = exporter.routes.lock().unwrap().get(&path).map(|r| r(n));
    Box::pin(async move {
        let builder = Response::builder();
        match reply {
            None => builder.status(404).body(Body::empty()).unwrap(),
            Some(Reply::Body(ct, body)) => {
                let builder = if ct.is_empty() {
                    builder
                } else {
                    builder.header("content-type", ct)
                };
                builder.body(Body::from(body)).unwrap()
            }
            Some(Reply::Gzip(ct, body)) => {
                use std::io::Write;
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(&body).unwrap();
                builder
                    .header("content-type", ct)
                    .header("content-encoding", "gzip")
                    .body(Body::from(enc.finish().unwrap()))
                    .unwrap()
            }
            Some(Reply::Status(code)) => builder.status(code).body(Body::empty()).unwrap(),
            Some(Reply::Hang) => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                builder.body(Body::empty()).unwrap()
            }
        }
    })
}

fn text(body: &str) -> Reply {
    Reply::Body(TEXT, body.as_bytes().to_vec())
}

/// Extra labels of one target beside its `__address__`.
type TargetSpec<'a> = Vec<(&'a str, &'a str)>;

struct Harness {
    _dir: tempfile::TempDir,
    db: Arc<Db>,
    manager: ScrapeManager,
    exporter: Arc<Exporter>,
    addr: SocketAddr,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path(), DbOptions::default()).unwrap());
        let manager = ScrapeManager::new(db.clone(), ScrapeOptions::default());
        let (exporter, addr) = Exporter::start().await;
        Harness {
            _dir: dir,
            db,
            manager,
            exporter,
            addr,
        }
    }

    /// Applies `jobs` (YAML list items) with a 200 ms global interval.
    fn apply(&self, jobs: &str) {
        let yaml = format!("global:\n  scrape_interval: 200ms\nscrape_configs:\n{jobs}");
        let config = Config::parse(&yaml).expect("valid config");
        self.manager.apply_config(&config);
    }

    /// One group per job, each target given as extra labels beside
    /// `__address__` (the exporter).
    fn sync(&self, jobs: &[(&str, Vec<TargetSpec<'_>>)]) {
        let mut sets = TargetSets::new();
        for (job, targets) in jobs {
            let targets = targets
                .iter()
                .map(|extra| {
                    let mut pairs = vec![("__address__".to_string(), self.addr.to_string())];
                    pairs.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
                    Labels::new(pairs)
                })
                .collect();
            sets.insert(
                job.to_string(),
                vec![TargetGroup {
                    source: "test".into(),
                    targets,
                    labels: Labels::empty(),
                }],
            );
        }
        self.manager.sync(&sets);
    }

    /// Every series matching `name` and the `extra` equality matchers.
    fn series(&self, name: &str, extra: &[(&str, &str)]) -> Vec<(Labels, Vec<Sample>)> {
        let mut matchers = vec![Matcher::new(MatchOp::Equal, "__name__", name).unwrap()];
        for (n, v) in extra {
            matchers.push(Matcher::new(MatchOp::Equal, *n, *v).unwrap());
        }
        self.db
            .select_sync(&matchers, SelectHints::new(i64::MIN, i64::MAX))
            .unwrap()
            .into_iter()
            .map(|s| {
                let samples = s.samples(i64::MIN, i64::MAX).unwrap();
                (s.labels, samples)
            })
            .collect()
    }

    /// The samples of the one series matching, empty if none.
    fn samples(&self, name: &str, extra: &[(&str, &str)]) -> Vec<Sample> {
        let mut series = self.series(name, extra);
        assert!(series.len() <= 1, "more than one series for {name}");
        series.pop().map(|(_, s)| s).unwrap_or_default()
    }

    fn values(&self, name: &str, extra: &[(&str, &str)]) -> Vec<f64> {
        self.samples(name, extra).iter().map(|s| s.v).collect()
    }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while !check() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A target of the exporter at `path`, with `instance` set to the path so
/// that targets of one job differ.
fn job_path(path: &str) -> TargetSpec<'_> {
    vec![("__metrics_path__", path), ("instance", path)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_openmetrics_targets_are_scraped_with_report_series() {
    let h = Harness::new().await;
    h.exporter.route("/text", |_| {
        text("# HELP reqs Requests.\n# TYPE reqs counter\nreqs{code=\"200\"} 7\ntemp 21.5\n")
    });
    h.exporter.route("/om", |_| {
        Reply::Body(
            OPENMETRICS,
            b"# TYPE jobs counter\n# HELP jobs Jobs done.\njobs_total 3\n# EOF\n".to_vec(),
        )
    });
    h.apply(
        "  - job_name: text\n    metrics_path: /text\n  - job_name: om\n    metrics_path: /om\n",
    );
    h.sync(&[("text", vec![vec![]]), ("om", vec![vec![]])]);
    wait_for("two scrapes of each", || {
        h.values("up", &[("job", "text")]).len() >= 2 && h.values("up", &[("job", "om")]).len() >= 2
    })
    .await;
    let instance = h.addr.to_string();
    let reqs = h.series("reqs", &[]);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].0,
        Labels::new([
            ("__name__", "reqs"),
            ("code", "200"),
            ("instance", instance.as_str()),
            ("job", "text")
        ])
    );
    assert!(reqs[0].1.iter().all(|s| s.v == 7.0));
    assert!(h
        .values("jobs_total", &[("job", "om")])
        .iter()
        .all(|v| *v == 3.0));
    for job in ["text", "om"] {
        assert!(h.values("up", &[("job", job)]).iter().all(|v| *v == 1.0));
        let scraped = if job == "text" { 2.0 } else { 1.0 };
        assert!(h
            .values("scrape_samples_scraped", &[("job", job)])
            .iter()
            .all(|v| *v == scraped));
        assert!(h
            .values("scrape_samples_post_metric_relabeling", &[("job", job)])
            .iter()
            .all(|v| *v == scraped));
        let added = h.values("scrape_series_added", &[("job", job)]);
        assert_eq!(added[0], scraped, "first scrape adds every series");
        assert!(added[1..].iter().all(|v| *v == 0.0));
        assert!(h
            .values("scrape_duration_seconds", &[("job", job)])
            .iter()
            .all(|v| *v > 0.0 && *v < 1.0));
    }
    // The samples and the report series share the scrape timestamp.
    let up_times: Vec<i64> = h
        .samples("up", &[("job", "text")])
        .iter()
        .map(|s| s.t)
        .collect();
    let temp_times: Vec<i64> = h.samples("temp", &[]).iter().map(|s| s.t).collect();
    assert_eq!(up_times[..2], temp_times[..2]);

    let snapshot = h.manager.targets();
    assert_eq!(snapshot.active.len(), 2);
    let text_target = snapshot
        .active
        .iter()
        .find(|t| t.scrape_pool == "text")
        .unwrap();
    assert_eq!(text_target.health, TargetHealth::Up);
    assert_eq!(text_target.last_error, "");
    assert!(text_target.last_scrape.is_some());
    assert_eq!(text_target.scrape_url, format!("http://{instance}/text"));
    assert_eq!(text_target.scrape_interval, "200ms");
    assert_eq!(text_target.scrape_timeout, "200ms");
    assert_eq!(
        text_target.labels,
        Labels::new([("instance", instance.as_str()), ("job", "text")])
    );
    assert_eq!(
        text_target.discovered_labels.get("__metrics_path__"),
        Some("/text")
    );

    let metadata = h.manager.metadata();
    let om = metadata.iter().find(|m| m.scrape_pool == "om").unwrap();
    assert_eq!(om.metadata.len(), 1);
    assert_eq!(om.metadata[0].metric, "jobs");
    assert_eq!(om.metadata[0].metric_type, "counter");
    assert_eq!(om.metadata[0].help, "Jobs done.");
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_target_writes_up_zero_and_stale_markers_on_failure() {
    let h = Harness::new().await;
    h.exporter.route("/flap", |n| {
        if n % 2 == 1 {
            text("flappy 1\n")
        } else {
            Reply::Status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    });
    h.apply("  - job_name: flap\n    metrics_path: /flap\n");
    h.sync(&[("flap", vec![vec![]])]);
    wait_for("four scrapes", || h.values("up", &[]).len() >= 4).await;
    let up = h.samples("up", &[]);
    let flappy = h.samples("flappy", &[]);
    assert_eq!(up[0].v, 1.0);
    assert_eq!(up[1].v, 0.0);
    assert_eq!(up[2].v, 1.0);
    assert_eq!(up[3].v, 0.0);
    // Every failed scrape staled the series at its own timestamp.
    assert_eq!(flappy[0], Sample::new(up[0].t, 1.0));
    assert!(is_stale_nan(flappy[1].v));
    assert_eq!(flappy[1].t, up[1].t);
    assert_eq!(flappy[2], Sample::new(up[2].t, 1.0));
    assert!(is_stale_nan(flappy[3].v));
    // Report series are never staled by a failed scrape.
    assert!(h
        .values("scrape_samples_scraped", &[])
        .iter()
        .all(|v| !is_stale_nan(*v)));
    let scraped = h.values("scrape_samples_scraped", &[]);
    assert_eq!(scraped[..4], [1.0, 0.0, 1.0, 0.0]);
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_that_vanish_get_stale_markers_at_the_next_scrape() {
    let h = Harness::new().await;
    h.exporter.route("/change", |n| {
        if n == 1 {
            text("kept 1\ngone 1\n")
        } else {
            text("kept 2\n")
        }
    });
    h.apply("  - job_name: change\n    metrics_path: /change\n");
    h.sync(&[("change", vec![vec![]])]);
    wait_for("three scrapes", || h.values("up", &[]).len() >= 3).await;
    let up = h.samples("up", &[]);
    let gone = h.samples("gone", &[]);
    assert_eq!(gone.len(), 2, "one sample, then one stale marker");
    assert_eq!(gone[0], Sample::new(up[0].t, 1.0));
    assert!(is_stale_nan(gone[1].v));
    assert_eq!(gone[1].t, up[1].t);
    assert!(h.values("kept", &[]).iter().all(|v| !is_stale_nan(*v)));
    assert_eq!(h.values("scrape_series_added", &[])[..3], [2.0, 0.0, 0.0]);
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_scrapes_report_prometheus_errors_and_do_not_delay_others() {
    let h = Harness::new().await;
    h.exporter.route("/good", |_| text("good 1\n"));
    h.exporter.route("/hang", |_| Reply::Hang);
    h.exporter.route("/big", |_| text(&"x 1\n".repeat(100)));
    h.exporter.route("/malformed", |_| text("ok 1\nbad{ 2\n"));
    h.exporter.route("/utf8", |_| {
        Reply::Body(TEXT, b"m{l=\"\xff\xfe\"} 1\n".to_vec())
    });
    h.exporter
        .route("/no-type", |_| Reply::Body("", b"m 1\n".to_vec()));
    h.exporter.route("/limit", |_| text("a 1\nb 1\nc 1\n"));
    h.apply(
        "  - job_name: errs\n    body_size_limit: 100B\n  - job_name: limited\n    \
         sample_limit: 2\n    metrics_path: /limit\n",
    );
    let paths = ["/good", "/hang", "/big", "/malformed", "/utf8", "/no-type"];
    h.sync(&[
        ("errs", paths.iter().map(|p| job_path(p)).collect()),
        ("limited", vec![vec![]]),
    ]);
    wait_for("every target scraped twice", || {
        let snapshot = h.manager.targets();
        snapshot.active.len() == 7
            && paths.iter().all(|p| h.exporter.hits(p) >= 2)
            && h.exporter.hits("/limit") >= 2
            && snapshot
                .active
                .iter()
                .all(|t| t.health != TargetHealth::Unknown)
    })
    .await;
    let snapshot = h.manager.targets();
    let error_of = |path: &str| {
        let t = snapshot
            .active
            .iter()
            .find(|t| t.scrape_url.ends_with(path))
            .unwrap();
        (t.health, t.last_error.clone())
    };
    assert_eq!(error_of("/good"), (TargetHealth::Up, String::new()));
    let url = format!("http://{}/hang", h.addr);
    assert_eq!(
        error_of("/hang"),
        (
            TargetHealth::Down,
            format!("Get {url:?}: context deadline exceeded")
        )
    );
    assert_eq!(error_of("/big").1, "body size limit exceeded");
    assert!(
        error_of("/malformed").1.starts_with("line 2: "),
        "{:?}",
        error_of("/malformed")
    );
    assert!(
        error_of("/utf8").1.contains("UTF-8"),
        "{:?}",
        error_of("/utf8")
    );
    assert!(
        error_of("/no-type")
            .1
            .contains("no fallback_scrape_protocol specified"),
        "{:?}",
        error_of("/no-type")
    );
    assert_eq!(
        error_of("/limit"),
        (TargetHealth::Down, "sample limit exceeded".into())
    );
    // Nothing of a failed scrape is stored; up is 0.
    assert!(h.series("ok", &[]).is_empty());
    assert!(h.series("a", &[]).is_empty());
    assert!(h
        .values("up", &[("job", "limited")])
        .iter()
        .all(|v| *v == 0.0));
    assert!(h
        .values("scrape_samples_scraped", &[("job", "limited")])
        .iter()
        .all(|v| *v == 3.0));
    // The hanging target held nobody up: the good one kept its pace.
    let good_before = h.exporter.hits("/good");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(h.exporter.hits("/good") >= good_before + 3);
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_protocol_parses_a_missing_content_type() {
    let h = Harness::new().await;
    h.exporter.route("/no-type", |_| {
        Reply::Body("", b"fallback_metric 4\n".to_vec())
    });
    h.apply(
        "  - job_name: fb\n    metrics_path: /no-type\n    fallback_scrape_protocol: \
         PrometheusText0.0.4\n",
    );
    h.sync(&[("fb", vec![vec![]])]);
    wait_for("a sample", || !h.values("fallback_metric", &[]).is_empty()).await;
    assert_eq!(h.values("up", &[])[0], 1.0);
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_series_keep_the_first_sample() {
    let h = Harness::new().await;
    h.exporter.route("/dup", |_| text("d 1\nd 2\nother 3\n"));
    h.apply("  - job_name: dup\n    metrics_path: /dup\n");
    h.sync(&[("dup", vec![vec![]])]);
    wait_for("a scrape", || !h.values("up", &[]).is_empty()).await;
    assert_eq!(h.values("up", &[])[0], 1.0);
    assert_eq!(h.values("d", &[])[0], 1.0);
    assert_eq!(h.values("scrape_samples_scraped", &[])[0], 3.0);
    assert_eq!(
        h.values("scrape_samples_post_metric_relabeling", &[])[0],
        3.0
    );
    assert_eq!(h.values("scrape_series_added", &[])[0], 2.0);
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honor_labels_exported_prefixes_and_metric_relabeling() {
    let h = Harness::new().await;
    let body = "m{job=\"x\",instance=\"y\",exported_job=\"z\"} 1\ndropme 2\n";
    h.exporter.route("/labels", move |_| text(body));
    h.apply(
        "  - job_name: plain\n    metrics_path: /labels\n    metric_relabel_configs:\n      - \
         source_labels: [__name__]\n        regex: dropme\n        action: drop\n      - \
         target_label: added\n        replacement: yes\n  - job_name: honor\n    \
         metrics_path: /labels\n    honor_labels: true\n",
    );
    h.sync(&[("plain", vec![vec![]]), ("honor", vec![vec![]])]);
    wait_for("both scraped", || {
        !h.values("up", &[("job", "plain")]).is_empty()
            && !h.values("up", &[("job", "honor")]).is_empty()
    })
    .await;
    let instance = h.addr.to_string();
    let m = h.series("m", &[]);
    let labels: Vec<Labels> = m.iter().map(|(l, _)| l.clone()).collect();
    assert!(labels.contains(&Labels::new([
        ("__name__", "m"),
        ("added", "yes"),
        ("exported_exported_job", "x"),
        ("exported_instance", "y"),
        ("exported_job", "z"),
        ("instance", instance.as_str()),
        ("job", "plain"),
    ])));
    assert!(labels.contains(&Labels::new([
        ("__name__", "m"),
        ("exported_job", "z"),
        ("instance", "y"),
        ("job", "x"),
    ])));
    assert_eq!(h.series("dropme", &[("job", "plain")]).len(), 0);
    assert_eq!(h.series("dropme", &[]).len(), 1, "kept by the other job");
    assert_eq!(
        h.values("scrape_samples_post_metric_relabeling", &[("job", "plain")])[0],
        1.0
    );
    assert_eq!(
        h.values("scrape_samples_scraped", &[("job", "plain")])[0],
        2.0
    );
    // The report series carry the target labels only, never relabeled.
    assert_eq!(
        h.series("up", &[("job", "plain")])[0].0,
        Labels::new([
            ("__name__", "up"),
            ("instance", instance.as_str()),
            ("job", "plain")
        ])
    );
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_relabeling_params_and_dropped_targets() {
    let h = Harness::new().await;
    h.exporter.route("/probe", |_| text("probe_ok 1\n"));
    h.apply(
        "  - job_name: probe\n    metrics_path: /probe\n    keep_dropped_targets: 1\n    \
         params:\n      module: [http_2xx, other]\n    relabel_configs:\n      - \
         source_labels: [__meta_kind]\n        regex: skip\n        action: drop\n      - \
         source_labels: [__meta_kind]\n        target_label: kind\n",
    );
    h.sync(&[(
        "probe",
        vec![
            vec![("__meta_kind", "skip"), ("__meta_n", "1")],
            vec![("__meta_kind", "skip"), ("__meta_n", "2")],
            vec![("__meta_kind", "web")],
        ],
    )]);
    wait_for("a scrape", || !h.values("probe_ok", &[]).is_empty()).await;
    let snapshot = h.manager.targets();
    assert_eq!(snapshot.active.len(), 1);
    assert_eq!(snapshot.dropped.len(), 1, "keep_dropped_targets: 1");
    assert_eq!(snapshot.dropped_counts.get("probe"), Some(&2));
    assert_eq!(
        snapshot.dropped[0].discovered_labels.get("__meta_kind"),
        Some("skip")
    );
    let target = &snapshot.active[0];
    let instance = h.addr.to_string();
    assert_eq!(
        target.labels,
        Labels::new([
            ("instance", instance.as_str()),
            ("job", "probe"),
            ("kind", "web")
        ])
    );
    assert_eq!(
        target.scrape_url,
        format!("http://{instance}/probe?module=http_2xx&module=other")
    );
    let requests = h.exporter.requests("/probe");
    assert_eq!(requests[0].0, "/probe?module=http_2xx&module=other");
    assert_eq!(
        h.series("probe_ok", &[])[0].0,
        Labels::new([
            ("__name__", "probe_ok"),
            ("instance", instance.as_str()),
            ("job", "probe"),
            ("kind", "web")
        ])
    );
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_target_gets_stale_markers_for_all_its_series() {
    let h = Harness::new().await;
    h.exporter.route("/a", |_| text("a_metric 1\n"));
    h.exporter.route("/b", |_| text("b_metric 1\n"));
    h.apply("  - job_name: j\n");
    h.sync(&[("j", vec![job_path("/a"), job_path("/b")])]);
    wait_for("both scraped", || {
        !h.values("a_metric", &[]).is_empty() && !h.values("b_metric", &[]).is_empty()
    })
    .await;
    h.sync(&[("j", vec![job_path("/b")])]);
    assert_eq!(h.manager.targets().active.len(), 1);
    let stale = |h: &Harness, name: &str| {
        h.samples(name, &[])
            .last()
            .is_some_and(|s| is_stale_nan(s.v))
    };
    wait_for("stale markers of the removed target", || {
        stale(&h, "a_metric")
    })
    .await;
    let a = h.samples("a_metric", &[]);
    let marker = a.last().unwrap().t;
    assert!(a[..a.len() - 1].iter().all(|s| s.t < marker && s.v == 1.0));
    // Its report series too, at the same time.
    for name in [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        let last = *h.samples(name, &[("instance", "/a")]).last().unwrap();
        assert!(is_stale_nan(last.v), "no stale marker on {name}");
        assert_eq!(last.t, marker);
        let b = h.samples(name, &[("instance", "/b")]);
        assert!(b.iter().all(|s| !is_stale_nan(s.v)));
    }
    // The remaining target is untouched.
    assert!(!stale(&h, "b_metric"));
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_restarts_only_changed_jobs_without_stale_markers() {
    let h = Harness::new().await;
    h.exporter.route("/same", |_| text("same 1\n"));
    h.exporter.route("/changed", |_| text("changed 1\n"));
    let jobs = |limit: u32| {
        format!(
            "  - job_name: same\n    metrics_path: /same\n  - job_name: changed\n    \
             metrics_path: /changed\n    sample_limit: {limit}\n"
        )
    };
    h.apply(&jobs(10));
    h.sync(&[("same", vec![vec![]]), ("changed", vec![vec![]])]);
    wait_for("both scraped", || {
        h.values("up", &[("job", "same")]).len() >= 2
            && h.values("up", &[("job", "changed")]).len() >= 2
    })
    .await;
    let ids = |h: &Harness| {
        let snapshot = h.manager.targets();
        let id = |job: &str| {
            snapshot
                .active
                .iter()
                .find(|t| t.scrape_pool == job)
                .unwrap()
                .scrape_loop_id
        };
        (id("same"), id("changed"))
    };
    let (same_before, changed_before) = ids(&h);
    // An identical configuration changes nothing.
    h.apply(&jobs(10));
    assert_eq!(ids(&h), (same_before, changed_before));
    let same_hits = h.exporter.hits("/same");
    h.apply(&jobs(20));
    let (same_after, changed_after) = ids(&h);
    assert_eq!(same_after, same_before, "unchanged job keeps its loop");
    assert_ne!(
        changed_after, changed_before,
        "changed job restarts its loop"
    );
    assert!(
        h.exporter.hits("/same") <= same_hits + 1,
        "no extra scrape on reload"
    );
    let changed_count = h.values("up", &[("job", "changed")]).len();
    wait_for("the restarted loop scrapes", || {
        h.values("up", &[("job", "changed")]).len() >= changed_count + 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for job in ["same", "changed"] {
        assert!(
            h.values("up", &[("job", job)]).iter().all(|v| *v == 1.0),
            "no stale markers for {job}"
        );
        let metric = job;
        assert!(h.values(metric, &[]).iter().all(|v| *v == 1.0));
    }
    let snapshot = h.manager.targets();
    assert!(snapshot.active.iter().all(|t| t.health == TargetHealth::Up));
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_job_gets_stale_markers_but_shutdown_does_not() {
    let h = Harness::new().await;
    h.exporter.route("/r", |_| text("r 1\n"));
    h.exporter.route("/k", |_| text("k 1\n"));
    h.apply("  - job_name: r\n    metrics_path: /r\n  - job_name: k\n    metrics_path: /k\n");
    h.sync(&[("r", vec![vec![]]), ("k", vec![vec![]])]);
    wait_for("both scraped", || {
        !h.values("r", &[]).is_empty() && !h.values("k", &[]).is_empty()
    })
    .await;
    h.apply("  - job_name: k\n    metrics_path: /k\n");
    wait_for("stale markers of the removed job", || {
        h.values("r", &[]).last().is_some_and(|v| is_stale_nan(*v))
    })
    .await;
    h.manager.stop().await;
    let k_hits = h.exporter.hits("/k");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(h.exporter.hits("/k"), k_hits, "no scrapes after stop");
    assert!(h.values("k", &[]).iter().all(|v| !is_stale_nan(*v)));
    assert!(h
        .values("up", &[("job", "k")])
        .iter()
        .all(|v| !is_stale_nan(*v)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_prometheus_3_headers_and_gzip_is_decoded() {
    let h = Harness::new().await;
    h.exporter
        .route("/gz", |_| Reply::Gzip(TEXT, b"zipped 5\n".to_vec()));
    h.exporter.route("/plain", |_| text("plain 1\n"));
    h.apply(
        "  - job_name: gz\n    metrics_path: /gz\n    scrape_timeout: 150ms\n  - job_name: \
         plain\n    metrics_path: /plain\n    enable_compression: false\n    \
         scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]\n",
    );
    h.sync(&[("gz", vec![vec![]]), ("plain", vec![vec![]])]);
    wait_for("both scraped", || {
        !h.values("zipped", &[]).is_empty() && !h.values("plain", &[]).is_empty()
    })
    .await;
    assert_eq!(h.values("zipped", &[])[0], 5.0);
    let (_, gz) = &h.exporter.requests("/gz")[0];
    let header = |m: &HeaderMap, n: &str| m.get(n).unwrap().to_str().unwrap().to_string();
    assert_eq!(
        header(gz, "accept"),
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
         application/openmetrics-text;version=0.0.1;q=0.5,\
         text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
         text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    );
    assert_eq!(header(gz, "accept-encoding"), "gzip");
    assert_eq!(header(gz, "x-prometheus-scrape-timeout-seconds"), "0.15");
    assert!(header(gz, "user-agent").starts_with("Hearth/"));
    let (_, plain) = &h.exporter.requests("/plain")[0];
    assert_eq!(header(plain, "accept-encoding"), "identity");
    assert_eq!(
        header(plain, "accept"),
        "text/plain;version=0.0.4;q=0.6,\
         application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4"
    );
    assert_eq!(header(plain, "x-prometheus-scrape-timeout-seconds"), "0.2");
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_limit_fails_every_target_of_the_job() {
    let h = Harness::new().await;
    h.exporter.route("/t1", |_| text("t 1\n"));
    h.exporter.route("/t2", |_| text("t 2\n"));
    h.apply("  - job_name: lim\n    target_limit: 1\n");
    h.sync(&[("lim", vec![job_path("/t1"), job_path("/t2")])]);
    wait_for("both targets reported", || {
        h.series("up", &[("job", "lim")]).len() == 2
            && h.manager
                .targets()
                .active
                .iter()
                .all(|t| t.health == TargetHealth::Down)
    })
    .await;
    for t in h.manager.targets().active {
        assert_eq!(
            t.last_error,
            "target_limit exceeded (number of targets: 2, limit: 1)"
        );
    }
    assert!(h.series("t", &[]).is_empty());
    assert_eq!(h.exporter.hits("/t1") + h.exporter.hits("/t2"), 0);
    // Back under the limit: scrapes work again.
    h.sync(&[("lim", vec![job_path("/t1")])]);
    wait_for("a sample", || !h.values("t", &[]).is_empty()).await;
    h.manager.stop().await;
}

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// A protobuf body with a counter, a gauge with the explicit timestamp
/// `temp_time` (0: none), a summary and a histogram without its +Inf bucket.
fn protobuf_body(temp_time: i64) -> Vec<u8> {
    use hearth_proto::client::{
        Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
        Summary,
    };
    use prost::Message;
    let label = |n: &str, v: &str| LabelPair {
        name: Some(n.into()),
        value: Some(v.into()),
    };
    let family = |name: &str, t: MetricType, help: &str, metric: Metric| MetricFamily {
        name: Some(name.into()),
        help: Some(help.into()),
        r#type: Some(t as i32),
        metric: vec![metric],
        unit: None,
    };
    let families = [
        family(
            "reqs_total",
            MetricType::Counter,
            "Requests.",
            Metric {
                label: vec![label("code", "200")],
                counter: Some(Counter {
                    value: Some(7.0),
                    ..Counter::default()
                }),
                ..Metric::default()
            },
        ),
        family(
            "temp",
            MetricType::Gauge,
            "",
            Metric {
                gauge: Some(Gauge { value: Some(21.5) }),
                timestamp_ms: Some(temp_time),
                ..Metric::default()
            },
        ),
        family(
            "rpc_seconds",
            MetricType::Summary,
            "RPC latency.",
            Metric {
                summary: Some(Summary {
                    sample_count: Some(4),
                    sample_sum: Some(2.5),
                    quantile: vec![Quantile {
                        quantile: Some(0.5),
                        value: Some(0.25),
                    }],
                    created_timestamp: None,
                }),
                ..Metric::default()
            },
        ),
        family(
            "wait_seconds",
            MetricType::Histogram,
            "",
            Metric {
                histogram: Some(Histogram {
                    sample_count: Some(5),
                    sample_sum: Some(4.2),
                    bucket: vec![Bucket {
                        cumulative_count: Some(3),
                        upper_bound: Some(1.0),
                        ..Bucket::default()
                    }],
                    ..Histogram::default()
                }),
                ..Metric::default()
            },
        ),
    ];
    families
        .iter()
        .flat_map(|f| f.encode_length_delimited_to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_targets_are_scraped_as_their_text_equivalent() {
    let h = Harness::new().await;
    let temp_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 1000;
    h.exporter.route("/proto", move |_| {
        Reply::Body(PROTOBUF, protobuf_body(temp_time))
    });
    h.exporter.route("/proto-gz", move |_| {
        Reply::Gzip(PROTOBUF, protobuf_body(temp_time))
    });
    h.apply(
        "  - job_name: proto\n    metrics_path: /proto\n    scrape_protocols: [PrometheusProto, \
         PrometheusText0.0.4]\n  - job_name: default\n    metrics_path: /proto-gz\n",
    );
    h.sync(&[("proto", vec![vec![]]), ("default", vec![vec![]])]);
    wait_for("three scrapes of each", || {
        ["proto", "default"]
            .iter()
            .all(|job| h.values("up", &[("job", job)]).len() >= 3)
    })
    .await;
    let (_, request) = &h.exporter.requests("/proto")[0];
    assert_eq!(
        request.get("accept").unwrap().to_str().unwrap(),
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
         encoding=delimited;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.4"
    );
    // Without scrape_protocols (nor native histograms) protobuf is not
    // asked for, but a protobuf answer is still read as such.
    let (_, request) = &h.exporter.requests("/proto-gz")[0];
    assert!(request
        .get("accept")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text;version=1.0.0"));

    let instance = h.addr.to_string();
    for job in ["proto", "default"] {
        assert!(h.values("up", &[("job", job)]).iter().all(|v| *v == 1.0));
        type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);
        let expected: [Expected<'_>; 9] = [
            ("reqs_total", &[("code", "200")], 7.0),
            ("temp", &[], 21.5),
            ("rpc_seconds", &[("quantile", "0.5")], 0.25),
            ("rpc_seconds_sum", &[], 2.5),
            ("rpc_seconds_count", &[], 4.0),
            ("wait_seconds_bucket", &[("le", "1.0")], 3.0),
            ("wait_seconds_bucket", &[("le", "+Inf")], 5.0),
            ("wait_seconds_sum", &[], 4.2),
            ("wait_seconds_count", &[], 5.0),
        ];
        for (name, labels, value) in expected {
            let mut extra = labels.to_vec();
            extra.push(("job", job));
            let series = h.series(name, &extra);
            assert_eq!(series.len(), 1, "{name}{labels:?} of {job}");
            let mut want: Vec<(&str, &str)> =
                vec![("__name__", name), ("instance", &instance), ("job", job)];
            want.extend_from_slice(labels);
            assert_eq!(series[0].0, Labels::new(want));
            assert!(
                series[0].1.iter().all(|s| s.v == value),
                "{name}: {series:?}"
            );
        }
        // The explicit timestamp is kept (one sample, however many scrapes).
        assert_eq!(
            h.samples("temp", &[("job", job)]),
            vec![Sample::new(temp_time, 21.5)]
        );
        assert!(h
            .values("scrape_samples_scraped", &[("job", job)])
            .iter()
            .all(|v| *v == 9.0));
        let added = h.values("scrape_series_added", &[("job", job)]);
        assert_eq!(added[0], 9.0, "first scrape adds every series");
        assert!(added[1..].iter().all(|v| *v == 0.0), "cached: {added:?}");
    }
    let metadata = h.manager.metadata();
    let proto = metadata.iter().find(|m| m.scrape_pool == "proto").unwrap();
    let summary: Vec<(&str, &str, &str)> = proto
        .metadata
        .iter()
        .map(|m| (m.metric.as_str(), m.metric_type.as_str(), m.help.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("reqs_total", "counter", "Requests."),
            ("rpc_seconds", "summary", "RPC latency."),
            ("temp", "gauge", ""),
            ("wait_seconds", "histogram", ""),
        ]
    );
    h.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_fails_the_scrape_and_stales_the_series() {
    let h = Harness::new().await;
    h.exporter.route("/proto", |n| {
        let mut body = protobuf_body(0);
        if n == 2 {
            // A length prefix that runs past the end of the body.
            body.extend_from_slice(&[0x05, 0x0A]);
        }
        Reply::Body(PROTOBUF, body)
    });
    h.apply(
        "  - job_name: proto\n    metrics_path: /proto\n    scrape_protocols: [PrometheusProto]\n",
    );
    h.sync(&[("proto", vec![vec![]])]);
    wait_for("three scrapes", || h.values("up", &[]).len() >= 3).await;
    assert_eq!(h.values("up", &[])[..3], [1.0, 0.0, 1.0]);
    let reqs = h.values("reqs_total", &[]);
    assert_eq!(reqs[0], 7.0);
    assert!(is_stale_nan(reqs[1]), "the failed scrape stales: {reqs:?}");
    assert_eq!(reqs[2], 7.0);

    h.exporter.route("/proto", |_| {
        Reply::Body(PROTOBUF, vec![0x03, 0x0F, 0xFF, 0xFF])
    });
    wait_for("a failed scrape", || {
        h.manager
            .targets()
            .active
            .iter()
            .any(|t| t.health == TargetHealth::Down)
    })
    .await;
    let target = &h.manager.targets().active[0];
    assert!(
        target
            .last_error
            .starts_with("protobuf exposition, metric family at byte 0: failed to decode"),
        "{}",
        target.last_error
    );
    h.manager.stop().await;
}
