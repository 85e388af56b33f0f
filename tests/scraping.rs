//! `hearth standalone` as a scraper: without a configuration it scrapes
//! itself; with one it follows it, reloads it on `POST /-/reload` (with
//! `--web.enable-lifecycle`) and on SIGHUP, keeps the previous one when the
//! new one is invalid, and shows its targets in the targets API.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, Standalone};
use serde_json::Value;

fn get_json(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

/// Polls `f` until it returns `Some`, failing after `secs`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn query(s: &Standalone, q: &str) -> Vec<Value> {
    let url = s.url(&format!(
        "/api/v1/query?query={}",
        form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    ));
    get_json(&url)["data"]["result"].as_array().unwrap().clone()
}

fn pools(s: &Standalone) -> Vec<String> {
    let v = get_json(&s.url("/api/v1/targets"));
    let mut pools: Vec<String> = v["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["scrapePool"].as_str().unwrap().to_string())
        .collect();
    pools.sort();
    pools
}

fn config(port: u16, jobs: &[&str]) -> String {
    let mut c =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for job in jobs {
        c.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ));
    }
    c
}

#[test]
fn without_a_configuration_it_scrapes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let s = Standalone::start_exact(&dir.path().join("data"), &[]);
    // The default interval is 15 s; the first scrape comes within one.
    let up = wait_for(40, "up{job=\"hearth\"}", || {
        query(&s, "up{job=\"hearth\"}").first().cloned()
    });
    assert_eq!(up["value"][1], "1");
    assert_eq!(
        up["metric"]["instance"],
        format!("localhost:{}", s.port).as_str()
    );
    let scraped = query(&s, "scrape_samples_scraped{job=\"hearth\"}");
    assert!(
        scraped[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    let t = get_json(&s.url("/api/v1/targets"));
    let target = &t["data"]["activeTargets"][0];
    assert_eq!(target["scrapePool"], "hearth");
    assert_eq!(target["health"], "up");
    assert_eq!(target["scrapeInterval"], "15s");
    let yaml = get_json(&s.url("/api/v1/status/config"))["data"]["yaml"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(yaml.contains("job_name: hearth"), "{yaml}");
    // What it scraped has metadata.
    let md = get_json(&s.url("/api/v1/targets/metadata?match_target={job=\"hearth\"}"));
    assert!(!md["data"].as_array().unwrap().is_empty(), "{md}");
}

#[test]
fn reload_by_http_and_sighup_keeps_the_old_configuration_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config(port, &["a"])).unwrap();
    let flag = format!("--config.file={}", file.display());
    let s = Standalone::start_on(
        &dir.path().join("data"),
        port,
        &[&flag, "--web.enable-lifecycle"],
    );
    wait_for(20, "job a scraped", || {
        query(&s, "up{job=\"a\"} == 1").first().cloned()
    });
    let client = reqwest::blocking::Client::new();

    // A second job by POST /-/reload.
    std::fs::write(&file, config(port, &["a", "b"])).unwrap();
    let r = client.post(s.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(pools(&s), ["a", "b"]);
    wait_for(20, "job b scraped", || {
        query(&s, "up{job=\"b\"} == 1").first().cloned()
    });

    // An invalid file: 500 with the error, the running configuration stays.
    std::fs::write(
        &file,
        "scrape_configs:\n  - job_name: a\n    scrape_interval: 1x\n",
    )
    .unwrap();
    let r = client.put(s.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().unwrap();
    assert!(body.starts_with("failed to reload config: "), "{body}");
    assert_eq!(pools(&s), ["a", "b"]);
    let info = get_json(&s.url("/api/v1/status/runtimeinfo"));
    assert_eq!(info["data"]["reloadConfigSuccess"], false);

    // Job a removed by SIGHUP: its series go stale, b keeps being scraped.
    std::fs::write(&file, config(port, &["b"])).unwrap();
    Command::new("kill")
        .arg("-HUP")
        .arg(s.child.id().to_string())
        .status()
        .unwrap();
    wait_for(20, "job a gone", || (pools(&s) == ["b"]).then_some(()));
    wait_for(20, "up{job=\"a\"} stale", || {
        query(&s, "up{job=\"a\"}").is_empty().then_some(())
    });
    let info = get_json(&s.url("/api/v1/status/runtimeinfo"));
    assert_eq!(info["data"]["reloadConfigSuccess"], true);
    assert!(!query(&s, "up{job=\"b\"}").is_empty());
}

#[test]
fn reload_needs_the_lifecycle_flag() {
    let dir = tempfile::tempdir().unwrap();
    let s = Standalone::start(&dir.path().join("data"), &[]);
    let r = reqwest::blocking::Client::new()
        .post(s.url("/-/reload"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().unwrap(), "Lifecycle API is not enabled.\n");
}

#[test]
fn an_invalid_configuration_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(&file, "scrape_configs:\n  - job_name: x\n    bogus: 1\n").unwrap();
    let out = Command::new(common::hearth_bin())
        .arg("standalone")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("d").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn hearth_scrape_scrapes_into_its_tsdb_without_the_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config(port, &["self"])).unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(common::hearth_bin())
        .arg("scrape")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let healthy = wait_for(30, "two scrapes", || {
        let v: Value = reqwest::blocking::get(format!("{base}/api/v1/targets"))
            .ok()?
            .json()
            .ok()?;
        let t = &v["data"]["activeTargets"][0];
        (t["health"] == "up").then(|| t.clone())
    });
    assert_eq!(healthy["scrapePool"], "self");
    std::thread::sleep(Duration::from_millis(1500));
    // No PromQL, no remote write here.
    let r = reqwest::blocking::get(format!("{base}/api/v1/query?query=up")).unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/write"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    // What it scraped is in its TSDB.
    let up: Vec<_> = common::dump(&data)
        .into_iter()
        .filter(|d| d.labels.starts_with("{__name__=\"up\""))
        .collect();
    assert!(!up.is_empty());
    assert!(up.iter().all(|d| f64::from_bits(d.bits) == 1.0));
}
