//! `promtool query instant|range|series|labels` against Hearth and against
//! a real Prometheus 2.42 holding the same remote-written data: the same
//! commands must print the same answers (`-o json`, compared as JSON).

mod common;

use std::process::Command;

use common::*;

fn promtool_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new("promtool")
        .args(["query"])
        .args(args)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool query {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("promtool output is not JSON ({e}): {text}"))
}

#[test]
fn promtool_query_agrees_between_hearth_and_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::start(dir.path());
    let hearth = Standalone::start(&dir.path().join("hearth-data"), &[]);
    let client = reqwest::blocking::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let end = (now / 60_000 - 2) * 60_000;
    // Samples sit 1.234 s off the whole second, so that none lies exactly on
    // a range boundary, where Prometheus 2.42 (closed ranges) and 3
    // (left-open ranges, which Hearth follows) disagree.
    let start = end - 30 * 60_000 + 1234;
    let mut ts = Vec::new();
    for (job, inst) in [("node", "a:9100"), ("node", "b:9100"), ("api", "c:8080")] {
        let counter: Vec<(i64, f64)> = (0..=120)
            .map(|i| {
                (
                    start + i * 15_000,
                    (i * if job == "api" { 7 } else { 3 }) as f64,
                )
            })
            .collect();
        let gauge: Vec<(i64, f64)> = (0..=120)
            .map(|i| (start + i * 15_000, ((i % 13) as f64) * 0.5))
            .collect();
        ts.push(series(
            &[
                ("__name__", "http_requests_total"),
                ("job", job),
                ("instance", inst),
            ],
            &counter,
        ));
        ts.push(series(
            &[
                ("__name__", "temperature"),
                ("job", job),
                ("instance", inst),
            ],
            &gauge,
        ));
    }
    let body = write_body(ts);
    for url in [
        format!("http://127.0.0.1:{}/api/v1/write", prom.port),
        hearth.url("/api/v1/write"),
    ] {
        let (status, text) = post_write(&client, &url, body.clone()).unwrap();
        assert!(status == 204 || status == 200, "{url}: {status} {text}");
    }
    let servers = [
        format!("http://127.0.0.1:{}", prom.port),
        format!("http://127.0.0.1:{}", hearth.port),
    ];
    let t = (end / 1000).to_string();
    let s = ((end - 20 * 60_000) / 1000).to_string();
    let commands: Vec<Vec<String>> = vec![
        vec!["instant", "--time", &t, "SERVER", "http_requests_total"],
        vec![
            "instant",
            "--time",
            &t,
            "SERVER",
            "sum by (job) (rate(http_requests_total[5m]))",
        ],
        vec![
            "instant",
            "--time",
            &t,
            "SERVER",
            "max(temperature) - min(temperature)",
        ],
        vec!["instant", "--time", &t, "SERVER", "count(temperature > 2)"],
        vec![
            "range",
            "--start",
            &s,
            "--end",
            &t,
            "--step",
            "60s",
            "SERVER",
            "avg_over_time(temperature[3m])",
        ],
        vec![
            "range",
            "--start",
            &s,
            "--end",
            &t,
            "--step",
            "5m",
            "SERVER",
            "increase(http_requests_total{job=\"api\"}[10m])",
        ],
        vec!["series", "--match", "temperature", "SERVER"],
        vec!["series", "--match", "{job=\"node\"}", "SERVER"],
        vec!["labels", "SERVER", "instance"],
        vec!["labels", "SERVER", "__name__"],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(String::from).collect())
    .collect();
    for cmd in commands {
        let mut answers = Vec::new();
        for server in &servers {
            let mut args: Vec<&str> = vec![cmd[0].as_str(), "-o", "json"];
            args.extend(cmd[1..].iter().map(|a| {
                if a == "SERVER" {
                    server.as_str()
                } else {
                    a.as_str()
                }
            }));
            answers.push(promtool_json(&args));
        }
        let (p, h) = (normalize(&answers[0]), normalize(&answers[1]));
        assert!(
            same(&p, &h),
            "promtool query {cmd:?}: Prometheus {p}\nvs Hearth {h}"
        );
    }
}

/// Sorts arrays of objects by their `metric` (element order of an instant
/// vector is unspecified), recursively.
fn normalize(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(items) => {
            let mut items: Vec<serde_json::Value> = items.iter().map(normalize).collect();
            if items.iter().all(|i| i.get("metric").is_some()) {
                items.sort_by_key(|i| i["metric"].to_string());
            }
            serde_json::Value::Array(items)
        }
        serde_json::Value::Object(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// Equal JSON, where strings that are both numbers compare with a relative
/// tolerance of 1e-9 (one ULP differences come from the order of float
/// operations, as compare.py in shared/tools allows too).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::String(x), V::String(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => {
                p == q || (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-9 * p.abs().max(q.abs())
            }
            _ => x == y,
        },
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
