//! Same configuration, same targets, same series: Hearth and Prometheus 2.42
//! scrape a real node exporter, a real Pushgateway with pushed groups, and a
//! test exporter that flaps, changes its series and times out; the test
//! compares the two through their APIs (series sets, `up`, staleness).
//!
//! Needs Debian's `prometheus`, `prometheus-node-exporter` and
//! `prometheus-pushgateway` (scripts/test installs them): it fails, naming
//! the package, when one is missing.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::{binary, free_port, now_s, spawn, wait_http, Standalone};
use serde_json::Value;

/// The test exporter: `/flap` fails during odd 4-second windows, `/change`
/// exposes `change_a` during even windows and `change_b` during odd ones,
/// `/slow` answers after 3 s (past the 1 s timeout). Windows follow the
/// wall clock, so both servers see the same behaviour at the same time.
fn start_exporter() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let path = request_line.split(' ').nth(1).unwrap_or("/");
                let odd = (now_s() / 4.0) as u64 % 2 == 1;
                let (status, body) = match path {
                    "/flap" if odd => ("500 Internal Server Error", String::new()),
                    "/flap" => (
                        "200 OK",
                        "# TYPE flap_value gauge\nflap_value 1\n".to_string(),
                    ),
                    "/change" => {
                        let name = if odd { "change_b" } else { "change_a" };
                        (
                            "200 OK",
                            format!("# TYPE {name} gauge\n{name}{{k=\"v\"}} 2\n"),
                        )
                    }
                    "/slow" => {
                        std::thread::sleep(Duration::from_secs(3));
                        ("200 OK", "slow_value 1\n".to_string())
                    }
                    _ => ("404 Not Found", String::new()),
                };
                let mut conn = conn;
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

fn push(pushgateway: u16, job: &str, instance: &str, body: &str) {
    let r = reqwest::blocking::Client::new()
        .put(format!(
            "http://127.0.0.1:{pushgateway}/metrics/job/{job}/instance/{instance}"
        ))
        .body(body.to_string())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "push: {}", r.status());
}

fn config(node: u16, pushgateway: u16, exporter: u16, closed: u16) -> String {
    let job = |name: &str, path: &str, port: u16, extra: &str| {
        format!(
            "  - job_name: {name}\n    metrics_path: {path}\n{extra}    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
    };
    let mut c = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels: {}\nscrape_configs:\n",
    );
    c += &job("node", "/metrics", node, "");
    c += &job(
        "pushgateway",
        "/metrics",
        pushgateway,
        "    honor_labels: true\n",
    );
    c += &job("flap", "/flap", exporter, "");
    c += &job("change", "/change", exporter, "");
    c += &job("slow", "/slow", exporter, "");
    c += &job("closed", "/metrics", closed, "");
    c
}

fn get(base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let r = reqwest::blocking::Client::new()
        .get(format!("{base}{path}"))
        .query(params)
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"], "success", "{path} {params:?}: {v}");
    v["data"].clone()
}

/// Prometheus 3 stores the `le` of histogram buckets and the `quantile` of
/// summaries in a canonical float form (`0` and `0.0` both become `0.0`,
/// specs/exposition-format.md §1.7); 2.42 stores the text as exposed. This
/// rewrites 2.42's values the way 3 would, for the values exporters use
/// (integers below 1e6 and plain decimals from 1e-4).
fn canonical_float_labels(mut labels: Value) -> Value {
    for name in ["le", "quantile"] {
        let Some(v) = labels.get(name).and_then(Value::as_str) else {
            continue;
        };
        let canonical = match v.parse::<f64>() {
            Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e6 => format!("{f}.0"),
            Ok(f) if f.is_finite() && f.abs() >= 1e-4 && f.abs() < 1e6 => format!("{f}"),
            _ => v.to_string(),
        };
        labels[name] = Value::String(canonical);
    }
    labels
}

/// Label sets of the series matching `selector` with samples in the last
/// `secs` before `t`, as JSON strings.
fn series(base: &str, selector: &str, t: f64, secs: f64) -> BTreeSet<String> {
    get(
        base,
        "/api/v1/series",
        &[
            ("match[]", selector.to_string()),
            ("start", format!("{}", t - secs)),
            ("end", format!("{t}")),
        ],
    )
    .as_array()
    .unwrap()
    .iter()
    .map(|l| canonical_float_labels(l.clone()).to_string())
    .collect()
}

fn instant(base: &str, q: &str, t: f64) -> Vec<Value> {
    get(
        base,
        "/api/v1/query",
        &[("query", q.to_string()), ("time", format!("{t}"))],
    )["result"]
        .as_array()
        .unwrap()
        .clone()
}

/// Values of a range query's single series, `None` where it has none.
fn steps(base: &str, q: &str, start: f64, end: f64, step: f64) -> Vec<Option<f64>> {
    let data = get(
        base,
        "/api/v1/query_range",
        &[
            ("query", q.to_string()),
            ("start", format!("{start}")),
            ("end", format!("{end}")),
            ("step", format!("{step}")),
        ],
    );
    let n = ((end - start) / step).round() as usize + 1;
    let mut out = vec![None; n];
    if let Some(s) = data["result"].as_array().unwrap().first() {
        for p in s["values"].as_array().unwrap() {
            let t = p[0].as_f64().unwrap();
            let i = ((t - start) / step).round() as usize;
            out[i] = p[1].as_str().unwrap().parse().ok();
        }
    }
    out
}

#[test]
fn hearth_and_prometheus_scrape_the_same() {
    let node_bin = binary(
        "/usr/bin/prometheus-node-exporter",
        "prometheus-node-exporter",
    );
    let pgw_bin = binary("/usr/bin/prometheus-pushgateway", "prometheus-pushgateway");
    let dir = tempfile::tempdir().unwrap();

    let node = free_port();
    // A fixed set of collectors whose series do not come and go.
    let _node = spawn(
        Path::new(node_bin),
        &[
            format!("--web.listen-address=127.0.0.1:{node}"),
            "--collector.disable-defaults".into(),
            "--collector.cpu".into(),
            "--collector.meminfo".into(),
            "--collector.loadavg".into(),
            "--collector.uname".into(),
            "--collector.stat".into(),
            "--collector.time".into(),
        ],
        None,
    );
    let pgw = free_port();
    let _pgw = spawn(
        Path::new(pgw_bin),
        &[
            format!("--web.listen-address=127.0.0.1:{pgw}"),
            format!("--persistence.file={}", dir.path().join("pgw").display()),
        ],
        None,
    );
    wait_http(&format!("http://127.0.0.1:{node}/metrics"));
    wait_http(&format!("http://127.0.0.1:{pgw}/metrics"));
    push(
        pgw,
        "batch",
        "a",
        "# TYPE batch_last_success gauge\nbatch_last_success 1.7e9\n# TYPE batch_processed_total counter\nbatch_processed_total{stage=\"x\"} 42\n",
    );
    push(
        pgw,
        "batch",
        "b",
        "# TYPE batch_last_success gauge\nbatch_last_success 1.6e9\n",
    );
    let exporter = start_exporter();
    let closed = free_port();

    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config(node, pgw, exporter, closed)).unwrap();
    let flag = format!("--config.file={}", file.display());
    let hearth = Standalone::start(&dir.path().join("hearth"), &[&flag]);
    let prom = common::Prometheus::start_with_config(&dir.path().join("prom"), &file);
    let h = hearth.url("");
    let p = prom.url("");

    // Prometheus applies discovered targets every 5 s: its first scrapes
    // come up to 5 s after start. Then two full flap/change cycles (16 s).
    let start = now_s();
    std::thread::sleep(Duration::from_secs(25));
    let t = now_s();

    // Identical series sets for the node exporter and the Pushgateway.
    for selector in ["{job=\"node\"}", "{job=\"pushgateway\"}"] {
        let hs = series(&h, selector, t, 3.0);
        let ps = series(&p, selector, t, 3.0);
        assert!(
            ps.len() > 20,
            "{selector}: Prometheus has only {}",
            ps.len()
        );
        let only_h: Vec<_> = hs.difference(&ps).collect();
        let only_p: Vec<_> = ps.difference(&hs).collect();
        assert!(
            only_h.is_empty() && only_p.is_empty(),
            "{selector}: only in Hearth {only_h:?}, only in Prometheus {only_p:?}"
        );
    }
    // Pushed groups keep their job and instance (honor_labels).
    let pushed = instant(&h, "batch_processed_total", t);
    assert_eq!(pushed[0]["metric"]["job"], "batch");
    assert_eq!(pushed[0]["metric"]["instance"], "a");

    // The same `up` for every job at the end.
    let ups = |base: &str| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = instant(base, "up", t)
            .iter()
            .filter(|s| !["flap"].contains(&s["metric"]["job"].as_str().unwrap()))
            .map(|s| {
                (
                    s["metric"]["job"].as_str().unwrap().to_string(),
                    s["value"][1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(ups(&h), ups(&p));
    assert_eq!(
        ups(&h),
        [
            ("change".to_string(), "1".to_string()),
            ("closed".into(), "0".into()),
            ("node".into(), "1".into()),
            ("pushgateway".into(), "1".into()),
            ("slow".into(), "0".into()),
        ]
    );

    // Flapping and changing targets: at half-window midpoints both servers
    // agree on `up`, and on which series are present (stale markers end
    // a series at once: no 5-minute lookback carries it over).
    let mut mids = Vec::new();
    let mut w = (start / 4.0).ceil() * 4.0 + 2.0;
    while w < t - 1.0 {
        if w > start + 8.0 {
            mids.push(w);
        }
        w += 4.0;
    }
    assert!(mids.len() >= 3, "{mids:?}");
    for m in mids {
        let odd = (m / 4.0) as u64 % 2 == 1;
        for (base, who) in [(&h, "Hearth"), (&p, "Prometheus")] {
            let up = steps(base, "up{job=\"flap\"}", m, m, 1.0)[0];
            assert_eq!(
                up,
                Some(if odd { 0.0 } else { 1.0 }),
                "{who} up at {m} (start {start}): {:?}",
                steps(base, "up{job=\"flap\"}", start.ceil(), t.floor(), 1.0)
            );
            let flap = steps(base, "flap_value", m, m, 1.0)[0];
            assert_eq!(flap.is_some(), !odd, "{who} flap_value at {m}");
            let a = steps(base, "change_a", m, m, 1.0)[0];
            let b = steps(base, "change_b", m, m, 1.0)[0];
            assert_eq!(
                (a.is_some(), b.is_some()),
                (!odd, odd),
                "{who} change at {m}"
            );
        }
    }
    // The target that times out is down with a timeout error on both.
    for base in [&h, &p] {
        let targets = get(base, "/api/v1/targets", &[]);
        let slow = targets["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["scrapePool"] == "slow")
            .cloned()
            .unwrap();
        assert_eq!(slow["health"], "down");
        assert!(
            !slow["lastError"].as_str().unwrap().is_empty(),
            "{base}: {slow}"
        );
    }
}
