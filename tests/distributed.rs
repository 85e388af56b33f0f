//! The distributed path end to end, with real processes and a real S3
//! server (s3s-fs): two `hearth scrape` replicas ship blocks to the bucket,
//! `hearth store` serves it, `hearth query` answers over all of them,
//! deduplicated, equal to one Prometheus 2.42 scraping the same targets;
//! and `hearth sidecar` beside Prometheus 2.42.
//!
//! Needs Debian's `prometheus` and `prometheus-node-exporter` (scripts/test
//! installs them) and s3s-fs (installed by the test when missing).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{binary, free_port, hearth_bin, now_s, spawn, wait_http, Proc, Prometheus};
use hearth_test_utils::s3::{find_s3s_fs, S3sFs};
use serde_json::Value;

/// Serves a fixed exposition: two gauges and a counter that grows by one
/// per second of wall time, so every scraper sees the same values at the
/// same time.
fn start_exporter() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let body = format!(
                    "# TYPE static_gauge gauge\nstatic_gauge{{kind=\"a\"}} 1\nstatic_gauge{{kind=\"b\"}} 2.5\n\
                     # TYPE wall_seconds_total counter\nwall_seconds_total {}\n",
                    now_s().floor()
                );
                let mut conn = conn;
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

fn start_node_exporter() -> (Proc, u16) {
    let bin = binary(
        "/usr/bin/prometheus-node-exporter",
        "prometheus-node-exporter",
    );
    let port = free_port();
    // Collectors whose series do not come and go.
    let p = spawn(
        Path::new(bin),
        &[
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--collector.disable-defaults".into(),
            "--collector.loadavg".into(),
            "--collector.meminfo".into(),
            "--collector.uname".into(),
        ],
        None,
    );
    wait_http(&format!("http://127.0.0.1:{port}/metrics"));
    (p, port)
}

/// A scrape configuration for the exporter and the node exporter, every
/// second, with the given external labels.
fn scrape_config(exporter: u16, node: u16, external: &[(&str, &str)]) -> String {
    let mut s = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n");
    if !external.is_empty() {
        s.push_str("  external_labels:\n");
        for (k, v) in external {
            s.push_str(&format!("    {k}: {v}\n"));
        }
    }
    s.push_str(&format!(
        "scrape_configs:\n  - job_name: static\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n  \
         - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node}']\n"
    ));
    s
}

fn hearth(sub: &str, args: &[String], log: &Path) -> Proc {
    let mut all = vec![sub.to_string()];
    all.extend_from_slice(args);
    spawn(&hearth_bin(), &all, Some(log))
}

fn get(base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let r = reqwest::blocking::Client::new()
        .get(format!("{base}{path}"))
        .query(params)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap_or_else(|e| panic!("{base}{path}: {e}"));
    let status = r.status();
    let body: Value = r.json().unwrap();
    assert_eq!(
        body["status"], "success",
        "{path} {params:?}: {status} {body}"
    );
    body
}

/// An instant vector as `{labels without the external ones} → value`.
fn instant(base: &str, q: &str, t: f64) -> BTreeMap<String, String> {
    let body = get(
        base,
        "/api/v1/query",
        &[("query", q.into()), ("time", format!("{t:.3}"))],
    );
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut m = s["metric"].as_object().unwrap().clone();
            m.remove("cluster");
            m.remove("replica");
            (
                serde_json::to_string(&m).unwrap(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A range query's values of its only series, one slot per step.
fn steps(base: &str, q: &str, start: f64, end: f64, step: f64) -> Vec<Option<f64>> {
    let body = get(
        base,
        "/api/v1/query_range",
        &[
            ("query", q.into()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{step}")),
        ],
    );
    let result = body["data"]["result"].as_array().unwrap();
    assert!(result.len() <= 1, "{q}: more than one series: {body}");
    let n = ((end - start) / step).round() as usize + 1;
    let mut out = vec![None; n];
    if let Some(s) = result.first() {
        for p in s["values"].as_array().unwrap() {
            let i = ((p[0].as_f64().unwrap() - start) / step).round() as usize;
            out[i] = p[1].as_str().unwrap().parse().ok();
        }
    }
    out
}

/// Block directories (with a meta.json) in a bucket directory, with their
/// external labels.
fn shipped_blocks(bucket: &Path) -> Vec<(String, Value)> {
    let Ok(dir) = std::fs::read_dir(bucket) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let meta = std::fs::read_to_string(e.path().join("meta.json")).ok()?;
            let meta: Value = serde_json::from_str(&meta).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                meta["thanos"]["labels"].clone(),
            ))
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Scraper {
    proc: Proc,
    args: Vec<String>,
    log: PathBuf,
}

impl Scraper {
    fn start(dir: &Path, replica: &str, config: &str, objstore: &Path) -> (Scraper, u16) {
        let cfg = dir.join(format!("scrape-{replica}.yml"));
        std::fs::write(&cfg, config).unwrap();
        let grpc = free_port();
        let args = vec![
            format!("--config.file={}", cfg.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.join(format!("data-{replica}")).display()
            ),
            format!("--web.listen-address=127.0.0.1:{}", free_port()),
            format!("--grpc-address=127.0.0.1:{grpc}"),
            format!("--objstore.config-file={}", objstore.display()),
            "--storage.tsdb.min-block-duration=1m".into(),
            "--storage.tsdb.compaction-interval=1s".into(),
        ];
        let log = dir.join(format!("scrape-{replica}.log"));
        let proc = hearth("scrape", &args, &log);
        (Scraper { proc, args, log }, grpc)
    }

    fn restart(&mut self) {
        self.proc.kill();
        let log = self.log.with_extension("restarted.log");
        self.proc = hearth("scrape", &self.args, &log);
    }
}

fn wait_grpc(port: u16) {
    wait_for(&format!("gRPC on {port}"), Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// `hearth store` over the bucket of `objstore`, syncing every `sync`;
/// returns it with its StoreAPI port once that listens.
fn start_store(dir: &Path, name: &str, objstore: &Path, sync: &str) -> (Proc, u16) {
    let grpc = free_port();
    let p = hearth(
        "store",
        &[
            format!("--objstore.config-file={}", objstore.display()),
            format!("--data-dir={}", dir.join(name).display()),
            format!("--grpc-address=127.0.0.1:{grpc}"),
            format!("--http-address=127.0.0.1:{}", free_port()),
            format!("--sync-block-duration={sync}"),
        ],
        &dir.join(format!("{name}.log")),
    );
    wait_grpc(grpc);
    (p, grpc)
}

/// `hearth query` over the StoreAPI `endpoints` (ports), deduplicating by
/// `replica`; returns it with its base URL once it is ready.
fn start_query(dir: &Path, name: &str, endpoints: &[u16]) -> (Proc, String) {
    let http = free_port();
    let mut args: Vec<String> = endpoints
        .iter()
        .map(|p| format!("--endpoint=127.0.0.1:{p}"))
        .collect();
    args.extend([
        "--query.replica-label=replica".to_string(),
        format!("--http-address=127.0.0.1:{http}"),
        "--store.refresh-interval=1s".to_string(),
    ]);
    let p = hearth("query", &args, &dir.join(format!("{name}.log")));
    let url = format!("http://127.0.0.1:{http}");
    wait_http(&format!("{url}/-/ready"));
    (p, url)
}

/// Two scrape replicas, the store gateway and the querier against one
/// Prometheus 2.42 scraping the same targets.
#[test]
fn ha_scrapers_store_gateway_and_querier_agree_with_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3sFs::start(find_s3s_fs(), dir.path().join("s3data"));
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, s3.objstore_yaml()).unwrap();

    let exporter = start_exporter();
    let (_node, node) = start_node_exporter();
    let (mut a, grpc_a) = Scraper::start(
        dir.path(),
        "a",
        &scrape_config(exporter, node, &[("cluster", "eu"), ("replica", "a")]),
        &objstore,
    );
    let (mut b, grpc_b) = Scraper::start(
        dir.path(),
        "b",
        &scrape_config(exporter, node, &[("cluster", "eu"), ("replica", "b")]),
        &objstore,
    );
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(&prom_cfg, scrape_config(exporter, node, &[])).unwrap();
    let prom = Prometheus::start_with_config(&dir.path().join("prom"), &prom_cfg);
    let (_store, store_grpc) = start_store(dir.path(), "store", &objstore, "2s");
    wait_grpc(grpc_a);
    wait_grpc(grpc_b);
    let (_query, q) = start_query(dir.path(), "query", &[grpc_a, grpc_b, store_grpc]);
    let started = now_s();

    // Replica b is lost for 20 s and comes back.
    std::thread::sleep(Duration::from_secs(15));
    b.proc.kill();
    let b_down = now_s();
    std::thread::sleep(Duration::from_secs(20));
    b.restart();
    let b_up = now_s();

    // Blocks of both replicas land in the bucket (1 m blocks are cut once
    // the head spans 1.5 m).
    wait_for("blocks of both replicas", Duration::from_secs(240), || {
        let blocks = shipped_blocks(&s3.bucket_dir());
        ["a", "b"]
            .iter()
            .all(|r| blocks.iter().any(|(_, l)| l["replica"] == *r))
    });
    // The store gateway and the querier see the replicas' stores.
    wait_for("the querier's stores", Duration::from_secs(30), || {
        let v = get(&q, "/api/v1/stores", &[]);
        let n: usize = v["data"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_array).map(Vec::len).sum())
            .unwrap_or(0);
        n == 3
    });
    std::thread::sleep(Duration::from_secs(3));

    // Same answers as Prometheus, without the external labels: series sets
    // and values, no duplicates.
    let t = (now_s() - 5.0).floor();
    let p = prom.url("");
    for expr in [
        "static_gauge",
        "count by (__name__) ({job=\"node\"})",
        "sum(static_gauge)",
        "up",
        "node_uname_info",
    ] {
        assert_eq!(instant(&q, expr, t), instant(&p, expr, t), "{expr} at {t}");
    }
    let series = get(&q, "/api/v1/series", &[("match[]", "static_gauge".into())]);
    assert_eq!(series["data"].as_array().unwrap().len(), 2, "{series}");
    // One replica's sample rate, not two: about 30 samples in 30 s.
    let counted = instant(&q, "count_over_time(wall_seconds_total[30s])", t);
    let n: f64 = counted.values().next().unwrap().parse().unwrap();
    assert!((28.0..=32.0).contains(&n), "samples in 30 s: {n}");
    // Without dedup both replicas show.
    let raw = get(
        &q,
        "/api/v1/query",
        &[
            ("query", "wall_seconds_total".into()),
            ("time", format!("{t:.3}")),
            ("dedup", "false".into()),
        ],
    );
    assert_eq!(raw["data"]["result"].as_array().unwrap().len(), 2, "{raw}");

    // No gap while b was down (nor around it): a value every second.
    let got = steps(
        &q,
        "wall_seconds_total",
        (started + 5.0).floor(),
        (b_up + 10.0).floor(),
        1.0,
    );
    assert!(
        got.iter().all(Option::is_some),
        "gap around b's outage ({b_down:.0}..{b_up:.0}): {got:?}"
    );

    // The scrapers gone, the bucket alone answers for what was shipped.
    let blocks = shipped_blocks(&s3.bucket_dir());
    assert!(!blocks.is_empty());
    let before = steps(&q, "sum(static_gauge)", started + 5.0, started + 40.0, 5.0);
    a.proc.kill();
    b.proc.kill();
    std::thread::sleep(Duration::from_secs(3));
    let after = steps(&q, "sum(static_gauge)", started + 5.0, started + 40.0, 5.0);
    assert_eq!(before, after, "from the bucket alone");
    assert!(after.iter().all(|v| *v == Some(3.5)), "{after:?}");
}

/// `hearth sidecar` beside Prometheus 2.42: blocks reach the bucket, and
/// `hearth query` over the sidecar (and over the bucket alone) answers as
/// Prometheus itself.
#[test]
fn sidecar_beside_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(
        &objstore,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        ),
    )
    .unwrap();
    let exporter = start_exporter();
    let (_node, node) = start_node_exporter();
    let prom_dir = dir.path().join("prom");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        scrape_config(exporter, node, &[("cluster", "p"), ("replica", "x")]),
    )
    .unwrap();
    let prom = Prometheus::start_with_flags(
        &prom_dir,
        &prom_cfg,
        &[
            "--storage.tsdb.min-block-duration=1m",
            "--storage.tsdb.max-block-duration=1m",
        ],
    );
    let side_grpc = free_port();
    let _sidecar = hearth(
        "sidecar",
        &[
            format!("--prometheus.url={}", prom.url("")),
            format!("--tsdb.path={}", prom_dir.join("prom-data").display()),
            format!("--objstore.config-file={}", objstore.display()),
            format!("--grpc-address=127.0.0.1:{side_grpc}"),
            format!("--http-address=127.0.0.1:{}", free_port()),
            "--sync-interval=2s".into(),
        ],
        &dir.path().join("sidecar.log"),
    );
    wait_grpc(side_grpc);
    let (_query, q) = start_query(dir.path(), "query", &[side_grpc]);
    let started = now_s();
    wait_for(
        "the sidecar's first block",
        Duration::from_secs(240),
        || !shipped_blocks(&bucket).is_empty(),
    );
    let blocks = shipped_blocks(&bucket);
    assert!(
        blocks
            .iter()
            .all(|(_, l)| l["cluster"] == "p" && l["replica"] == "x"),
        "{blocks:?}"
    );
    std::thread::sleep(Duration::from_secs(2));

    let t = (now_s() - 3.0).floor();
    let p = prom.url("");
    for expr in [
        "static_gauge",
        "up",
        "count by (__name__) ({job=\"node\"})",
        "rate(wall_seconds_total[30s])",
        "node_uname_info",
    ] {
        assert_eq!(instant(&q, expr, t), instant(&p, expr, t), "{expr} at {t}");
    }
    let range = |base: &str| steps(base, "wall_seconds_total", started, t, 2.0);
    assert_eq!(range(&q), range(&p));

    // A store gateway over the sidecar's bucket answers for the shipped
    // block's range as Prometheus does.
    let (_store, store_grpc) = start_store(dir.path(), "store", &objstore, "3m");
    let (_q2, q2) = start_query(dir.path(), "query2", &[store_grpc]);
    // The oldest block: nothing before it, so Prometheus's lookback at its
    // start finds what the bucket has.
    let meta: Value = blocks
        .iter()
        .map(|(id, _)| {
            let text = std::fs::read_to_string(bucket.join(id).join("meta.json")).unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        })
        .min_by_key(|m| m["minTime"].as_i64().unwrap())
        .unwrap();
    let (mint, maxt) = (
        meta["minTime"].as_f64().unwrap() / 1000.0,
        meta["maxTime"].as_f64().unwrap() / 1000.0 - 1.0,
    );
    wait_for("the store gateway's block", Duration::from_secs(30), || {
        get(&q2, "/api/v1/stores", &[])["data"]["store"]
            .as_array()
            .is_some_and(|s| {
                s.iter()
                    .any(|e| e["minTime"].as_i64().is_some_and(|t| t < i64::MAX))
            })
    });
    let q_range = |base: &str| steps(base, "sum(static_gauge)", mint + 1.0, maxt, 1.0);
    let from_bucket = q_range(&q2);
    assert_eq!(from_bucket, q_range(&p));
    assert!(from_bucket.iter().any(Option::is_some));
}

/// The StoreAPI acceptance suite (hearth-storeapi's, which every
/// implementation passes) against `hearth sidecar` beside Prometheus 2.42
/// holding the suite's data set (remote-written in time order).
#[test]
fn sidecar_passes_the_storeapi_acceptance_suite() {
    use hearth_storeapi::acceptance::{dataset, DATASET_END, DATASET_START};
    let dir = tempfile::tempdir().unwrap();
    let prom_dir = dir.path().join("prom");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        "global:\n  external_labels:\n    cluster: c1\n    replica: a\nscrape_configs: []\n",
    )
    .unwrap();
    let prom = Prometheus::start_with_config(&prom_dir, &cfg);
    // Time slices of ten minutes over all series: Prometheus refuses
    // samples an hour older than its newest.
    let data = dataset();
    let client = reqwest::blocking::Client::new();
    let slice = 600_000;
    let mut from = DATASET_START;
    while from <= DATASET_END {
        let batch: Vec<_> = data
            .iter()
            .filter_map(|s| {
                let samples: Vec<(i64, f64)> = s
                    .samples
                    .iter()
                    .filter(|p| p.t >= from && p.t < from + slice)
                    .map(|p| (p.t, p.v))
                    .collect();
                let labels: Vec<(&str, &str)> =
                    s.labels.iter().map(|l| (l.name, l.value)).collect();
                (!samples.is_empty()).then(|| common::series(&labels, &samples))
            })
            .collect();
        if !batch.is_empty() {
            let (status, body) = common::post_write(
                &client,
                &prom.url("/api/v1/write"),
                common::write_body(batch),
            )
            .unwrap();
            assert!(
                status / 100 == 2,
                "remote write to Prometheus: {status} {body}"
            );
        }
        from += slice;
    }
    let grpc = free_port();
    let _sidecar = hearth(
        "sidecar",
        &[
            format!("--prometheus.url={}", prom.url("")),
            format!("--tsdb.path={}", prom_dir.join("prom-data").display()),
            format!("--grpc-address=127.0.0.1:{grpc}"),
            format!("--http-address=127.0.0.1:{}", free_port()),
        ],
        &dir.path().join("sidecar.log"),
    );
    wait_grpc(grpc);
    let external = hearth_model::Labels::new([("cluster", "c1"), ("replica", "a")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // What Prometheus holds: -0.0 arrives as +0.0 (remote write 1.0's
    // protobuf omits a zero double, sign and all).
    let mut held = dataset();
    for s in &mut held {
        for p in &mut s.samples {
            if p.v == 0.0 {
                p.v = 0.0;
            }
        }
    }
    if let Err(report) = rt.block_on(hearth_storeapi::acceptance::check_data(
        &format!("127.0.0.1:{grpc}"),
        &external,
        DATASET_START,
        DATASET_END,
        held,
    )) {
        panic!("the sidecar fails the StoreAPI acceptance suite:\n{report}");
    }
}

/// Every block file in the bucket as meta.json's `thanos.files` lists it,
/// with its size: a block is complete or absent.
fn assert_complete(bucket: &Path, id: &str) {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(bucket.join(id).join("meta.json")).unwrap())
            .unwrap();
    for f in meta["thanos"]["files"].as_array().unwrap() {
        let rel = f["rel_path"].as_str().unwrap();
        if rel == "meta.json" {
            continue;
        }
        let len = std::fs::metadata(bucket.join(id).join(rel))
            .unwrap_or_else(|e| panic!("{id}/{rel}: {e}"))
            .len();
        assert_eq!(Some(len as i64), f["size_bytes"].as_i64(), "{id}/{rel}");
    }
}

/// Faults: the S3 server stopped while blocks are due (the scraper also
/// restarted during the outage), then a corrupt block in the bucket. Every
/// block lands once and complete, the shipper's record survives the
/// restart, the store gateway keeps answering, and skips the corrupt block
/// with a warning while serving the rest.
#[test]
fn s3_outage_and_a_corrupt_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3sFs::start(find_s3s_fs(), dir.path().join("s3data"));
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(&objstore, s3.objstore_yaml()).unwrap();
    let exporter = start_exporter();
    let (_node, node) = start_node_exporter();
    let (mut a, _) = Scraper::start(
        dir.path(),
        "a",
        &scrape_config(exporter, node, &[("cluster", "eu"), ("replica", "a")]),
        &objstore,
    );
    let (_store, store_grpc) = start_store(dir.path(), "store", &objstore, "1s");
    let (_query, q) = start_query(dir.path(), "query", &[store_grpc]);
    let bucket = s3.bucket_dir();
    wait_for("the first block", Duration::from_secs(240), || {
        !shipped_blocks(&bucket).is_empty()
    });
    let first = shipped_blocks(&bucket);

    // The outage: long enough for the next block to be cut and its upload
    // to fail; the scraper restarts in the middle of it.
    s3.stop();
    std::thread::sleep(Duration::from_secs(35));
    // Meanwhile the store gateway still answers from what it has.
    let during = get(
        &q,
        "/api/v1/query",
        &[("query", "count(static_gauge)".into())],
    );
    assert!(
        during["data"]["result"].as_array().is_some(),
        "answer during the outage: {during}"
    );
    a.restart();
    std::thread::sleep(Duration::from_secs(35));
    s3.restart();
    wait_for(
        "a block shipped after the outage",
        Duration::from_secs(180),
        || shipped_blocks(&bucket).len() >= first.len() + 2,
    );
    let blocks = shipped_blocks(&bucket);
    for (id, _) in &blocks {
        assert_complete(&bucket, id);
    }
    // Each block once: no two with the same time range.
    let mut ranges: Vec<(i64, i64)> = blocks
        .iter()
        .map(|(id, _)| {
            let m: Value = serde_json::from_str(
                &std::fs::read_to_string(bucket.join(id).join("meta.json")).unwrap(),
            )
            .unwrap();
            (
                m["minTime"].as_i64().unwrap(),
                m["maxTime"].as_i64().unwrap(),
            )
        })
        .collect();
    ranges.sort();
    let unique = ranges.len();
    ranges.dedup();
    assert_eq!(ranges.len(), unique, "a block uploaded twice: {ranges:?}");
    // The shipper's record, across the restart, names every shipped block.
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("data-a").join("thanos.shipper.json")).unwrap(),
    )
    .unwrap();
    let recorded: Vec<&str> = state["uploaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for (id, _) in &blocks {
        assert!(recorded.contains(&id.as_str()), "{id} not in {state}");
    }

    // A corrupt block: a copy of a good one with a garbage index.
    let good = &blocks[0].0;
    let bad = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let bad_dir = bucket.join(bad);
    std::fs::create_dir_all(bad_dir.join("chunks")).unwrap();
    for entry in std::fs::read_dir(bucket.join(good).join("chunks")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), bad_dir.join("chunks").join(e.file_name())).unwrap();
    }
    std::fs::write(bad_dir.join("index"), b"not an index at all").unwrap();
    let meta = std::fs::read_to_string(bucket.join(good).join("meta.json"))
        .unwrap()
        .replace(good.as_str(), bad);
    std::fs::write(bad_dir.join("meta.json"), meta).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // At the end of the copied block's range: both it and the good one are
    // read.
    let good_meta: Value = serde_json::from_str(
        &std::fs::read_to_string(bucket.join(good).join("meta.json")).unwrap(),
    )
    .unwrap();
    let t = (good_meta["maxTime"].as_i64().unwrap() - 1) as f64 / 1000.0;
    let body = get(
        &q,
        "/api/v1/query",
        &[
            ("query", "static_gauge".into()),
            ("time", format!("{t:.3}")),
        ],
    );
    assert_eq!(
        body["data"]["result"].as_array().unwrap().len(),
        2,
        "the good blocks still answer: {body}"
    );
    let warnings = body["warnings"].to_string();
    assert!(
        warnings.contains(bad),
        "a warning names the corrupt block: {body}"
    );
    let log = std::fs::read_to_string(dir.path().join("store.log")).unwrap();
    assert!(
        log.contains(bad),
        "the store gateway logs the corrupt block"
    );
}
