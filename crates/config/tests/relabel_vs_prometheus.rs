//! Target relabeling against the real Prometheus (Debian's 2.42): it runs
//! on a loopback port with static targets and relabel rules covering every
//! action, and for each target it reports the labels it discovered and the
//! labels left after relabeling (or that it dropped the target). Hearth's
//! [`hearth_config::relabel`] must turn the same discovered labels into
//! the same result. The inputs avoid the few places where 2.42 and 3.x
//! differ (newlines in values, invalid expanded target names).
//!
//! `scripts/test` installs Prometheus (Debian package `prometheus`); when
//! it is missing this test fails and says so.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_config::Config;
use hearth_model::Labels;

const CONFIG: &str = r#"
scrape_configs:
  - job_name: relabel
    scrape_interval: 1h
    scrape_timeout: 1s
    static_configs:
      - targets: [a:1, b:2, c:3, d:4, e:5, f:6, g:7, h:8, 10.0.0.1:9100, 10.0.0.2:9100,
                  'web-01.example.org:443', 'db-1:5432', '[::1]:9090', 'x:9', 'y:10', 'z:11']
        labels: {env: Prod, team: db, __meta_x_app: api, __meta_x_zone: eu-1a, owner: A-Team}
      - targets: ['k:1', 'l:2', 'm:3']
        labels: {env: staging, team: web, tier: Staging}
      - targets: ['n:1', 'o:2']
        labels: {env: dev, team: dev, dup: dev}
    relabel_configs:
      - source_labels: [env, team]
        separator: '-'
        regex: '(?P<e>\w+)-(\w+)'
        target_label: env_team
        replacement: '${e}/$2/$1x/${1}x'
      - source_labels: [team]
        regex: '(.+)'
        target_label: 'team_${1}'
        replacement: 'yes'
      - source_labels: [env]
        target_label: env_lower
        action: lowercase
      - source_labels: [owner]
        target_label: owner_upper
        action: uppercase
      - action: labelmap
        regex: __meta_x_(.+)
        replacement: x_$1
      - source_labels: [__address__]
        modulus: 7
        target_label: shard
        action: hashmod
      - source_labels: [__address__, env]
        modulus: 1000003
        target_label: __tmp_hash
        action: hashmod
      - source_labels: [__tmp_hash]
        target_label: hash_copy
      - source_labels: [shard]
        regex: '[0-5]'
        action: keep
      - source_labels: [tier]
        regex: Staging
        action: drop
      - source_labels: [dup]
        target_label: env
        action: dropequal
      - source_labels: [team]
        target_label: team
        action: keepequal
      - source_labels: [__address__]
        regex: '([^:]+):(\d+)'
        target_label: port
        replacement: '$2'
      - source_labels: [nonexistent]
        target_label: owner
      - action: labeldrop
        regex: 'x_zone|tmp_.*'
      - action: labelkeep
        regex: '__.*|env.*|team.*|owner.*|x_.*|shard|hash_copy|port|job|instance'
"#;

/// A Prometheus server we started, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(config: &str) -> Prometheus {
    let ok = Command::new("prometheus")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "prometheus is required: install Debian's `prometheus` package \
         (`apt-get install prometheus`) or run scripts/test, which installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        port,
        _dir: dir,
    }
}

/// A GET on loopback; the body, or None while the server is not up.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

fn labels_of(v: &serde_json::Value) -> Labels {
    let map: BTreeMap<String, String> = serde_json::from_value(v.clone()).unwrap();
    Labels::new(map)
}

/// What Prometheus does after relabeling (its `PopulateLabels`): drop the
/// `__meta_` labels, default `instance` to the address, and show only the
/// labels not starting with `__`.
fn public_labels(relabeled: &Labels) -> Labels {
    let mut pairs: Vec<(String, String)> = relabeled
        .iter()
        .filter(|l| !l.name.starts_with("__"))
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    if !relabeled.has("instance") {
        let address = relabeled.get("__address__").unwrap_or("").to_string();
        pairs.push(("instance".into(), address));
    }
    Labels::new(pairs)
}

/// Each target's labels before relabeling, as Prometheus's `PopulateLabels`
/// builds them: group labels, `__address__`, and the job's defaults.
/// (Prometheus 2.42's own `discoveredLabels` cannot be used: that release
/// reports them after relabeling has partly overwritten them.)
fn discovered_targets(config: &Config) -> Vec<Labels> {
    let job = &config.scrape_configs[0];
    let mut out = Vec::new();
    for group in &job.service_discovery.static_configs {
        for target in &group.targets {
            let mut pairs: Vec<(String, String)> = group
                .labels
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            pairs.push(("__address__".into(), target.clone()));
            for (name, value) in [
                ("job", job.job_name.clone()),
                ("__scrape_interval__", job.scrape_interval.to_string()),
                ("__scrape_timeout__", job.scrape_timeout.to_string()),
                ("__metrics_path__", job.metrics_path.clone()),
                ("__scheme__", job.scheme.clone()),
            ] {
                if !pairs.iter().any(|(n, _)| n == name) {
                    pairs.push((name.into(), value));
                }
            }
            out.push(Labels::new(pairs));
        }
    }
    out
}

#[test]
fn target_relabeling_matches_prometheus() {
    let prometheus = start_prometheus(CONFIG);
    let config = Config::parse(CONFIG).unwrap();
    let rules = &config.scrape_configs[0].relabel_configs;
    let discovered = discovered_targets(&config);

    // Wait until Prometheus has discovered every target.
    let deadline = Instant::now() + Duration::from_secs(60);
    let active = loop {
        assert!(
            Instant::now() < deadline,
            "prometheus did not report its targets in 60s"
        );
        if let Some(body) = http_get(prometheus.port, "/api/v1/targets?state=any") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let data = &v["data"];
            let active = data["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let dropped = data["droppedTargets"].as_array().map_or(0, Vec::len);
            if active.len() + dropped == discovered.len() {
                break active;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Prometheus's relabeled targets, by instance (= address here).
    let mut from_prometheus: BTreeMap<String, Labels> = active
        .iter()
        .map(|t| {
            let labels = labels_of(&t["labels"]);
            (labels.get("instance").unwrap().to_string(), labels)
        })
        .collect();
    assert!(
        !from_prometheus.is_empty() && from_prometheus.len() < discovered.len(),
        "the rules keep some targets and drop some"
    );

    let mut mismatches = Vec::new();
    for input in &discovered {
        let address = input.get("__address__").unwrap();
        let want = from_prometheus.remove(address);
        let got = hearth_config::relabel(input, rules).map(|l| public_labels(&l));
        if got != want {
            mismatches.push(format!(
                "{input}\n  prometheus: {want:?}\n  hearth:     {got:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
    assert!(
        from_prometheus.is_empty(),
        "unexpected targets: {from_prometheus:?}"
    );
}
