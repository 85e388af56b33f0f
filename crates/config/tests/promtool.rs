//! hearth-config against the real `promtool check config` (Debian's
//! Prometheus 2.42): configurations both must reject, each with a Hearth
//! message that names the offending field or job, and the example
//! configurations in `testdata/`, which both must accept, as must promtool
//! for Hearth's rendering of them.
//!
//! `scripts/test` installs promtool (Debian package `prometheus`); when it
//! is missing these tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_config::Config;

fn promtool() -> &'static str {
    let ok = Command::new("promtool")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "promtool is required: install Debian's `prometheus` package \
         (`apt-get install prometheus`) or run scripts/test, which installs it"
    );
    "promtool"
}

/// Runs `promtool check config` on `path`: its success and its output.
fn promtool_check(path: &Path) -> (bool, String) {
    let out = Command::new(promtool())
        .args(["check", "config"])
        .arg(path)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// (name, configuration, text Hearth's error must contain). The text names
/// the field (by its path in the file, or its own name) or the job.
const INVALID: &[(&str, &str, &str)] = &[
    (
        "fractional duration",
        "global:\n  scrape_interval: 1.5s\n",
        r#"global.scrape_interval: not a valid duration string: "1.5s""#,
    ),
    (
        "duration units out of order",
        "scrape_configs:\n- job_name: a\n  scrape_timeout: 1m1h\n",
        "scrape_configs[0].scrape_timeout: not a valid duration string",
    ),
    (
        "duration without a unit",
        "global:\n  evaluation_interval: 15\n",
        r#"global.evaluation_interval: not a valid duration string: "15""#,
    ),
    (
        "global timeout above the interval",
        "global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n",
        "global: global scrape timeout greater than scrape interval",
    ),
    (
        "job timeout above the interval",
        "scrape_configs:\n- job_name: slow\n  scrape_interval: 10s\n  scrape_timeout: 20s\n",
        r#"scrape timeout greater than scrape interval for scrape config with job name "slow""#,
    ),
    (
        "duplicate job names",
        "scrape_configs:\n- job_name: node\n- job_name: node\n",
        r#"found multiple scrape configs with job name "node""#,
    ),
    (
        "unknown field in a job",
        "scrape_configs:\n- job_name: a\n  scrape_intervall: 1m\n",
        "scrape_configs[0].scrape_intervall: unknown field `scrape_intervall`",
    ),
    (
        "unknown top-level field",
        "scrape_config:\n- job_name: a\n",
        "unknown field `scrape_config`",
    ),
    (
        "unknown field in a static config",
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - target: ['h:1']\n",
        "scrape_configs[0].static_configs[0].target: unknown field `target`",
    ),
    (
        "duplicate key",
        "scrape_configs:\n- job_name: a\n  job_name: b\n",
        "duplicate mapping key: job_name",
    ),
    (
        "replace without target_label",
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - source_labels: [x]\n",
        "scrape_configs[0].relabel_configs[0]: relabel configuration for replace action \
         requires 'target_label' value",
    ),
    (
        "hashmod without modulus",
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - source_labels: [x]\n    \
         target_label: y\n    action: hashmod\n",
        "relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus",
    ),
    (
        "invalid regex",
        "scrape_configs:\n- job_name: a\n  metric_relabel_configs:\n  - source_labels: \
         [__name__]\n    regex: '(abc'\n    action: drop\n",
        r#"scrape_configs[0].metric_relabel_configs[0].regex: invalid regular expression "(abc""#,
    ),
    (
        "unknown relabel action",
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - action: copy\n",
        r#"relabel_configs[0].action: unknown relabel action "copy""#,
    ),
    (
        "lowercase with a replacement",
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - source_labels: [a]\n    \
         target_label: b\n    replacement: x\n    action: lowercase\n",
        "relabel_configs[0]: 'replacement' can not be set for lowercase action",
    ),
    (
        "labeldrop with source_labels",
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - source_labels: [a]\n    \
         regex: b\n    action: labeldrop\n",
        "relabel_configs[0]: labeldrop action requires only 'regex', and no other fields",
    ),
    (
        "keepequal with a regex",
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - source_labels: [a]\n    \
         target_label: b\n    regex: x\n    action: keepequal\n",
        "keepequal action requires only 'source_labels' and `target_label`",
    ),
    (
        "A records without a port",
        "scrape_configs:\n- job_name: a\n  dns_sd_configs:\n  - names: [db.internal]\n    \
         type: A\n",
        "scrape_configs[0].dns_sd_configs[0]: a port is required in DNS-SD configs for all \
         record types except SRV",
    ),
    (
        "unknown DNS record type",
        "scrape_configs:\n- job_name: a\n  dns_sd_configs:\n  - names: [x]\n    type: TXT\n    \
         port: 1\n",
        "dns_sd_configs[0]: invalid DNS-SD records type TXT",
    ),
    (
        "file SD with a bad extension",
        "scrape_configs:\n- job_name: a\n  file_sd_configs:\n  - files: [targets.txt]\n",
        r#"file_sd_configs[0]: path name "targets.txt" is not valid for file discovery"#,
    ),
    (
        "HTTP SD over ftp",
        "scrape_configs:\n- job_name: a\n  http_sd_configs:\n  - url: ftp://sd/targets\n",
        "http_sd_configs[0]: URL scheme must be 'http' or 'https'",
    ),
    (
        "two authentication methods",
        "scrape_configs:\n- job_name: a\n  basic_auth: {username: u}\n  authorization: \
         {credentials: c}\n",
        "scrape_configs[0]: at most one of basic_auth, oauth2 & authorization must be configured",
    ),
    (
        "authorization type basic",
        "scrape_configs:\n- job_name: a\n  authorization: {type: Basic, credentials: c}\n",
        r#"authorization type cannot be set to "basic""#,
    ),
    (
        "a URL as a static target",
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['http://h:9100']\n",
        r#"scrape_configs[0]: "http://h:9100" is not a valid hostname"#,
    ),
    (
        "empty job name",
        "scrape_configs:\n- job_name: ''\n",
        "scrape_configs[0]: job_name is empty",
    ),
    (
        "size without a unit",
        "scrape_configs:\n- job_name: a\n  body_size_limit: 100\n",
        "scrape_configs[0].body_size_limit: units: unknown unit  in 100",
    ),
    (
        "rule file glob in a directory",
        "rule_files: ['rules/*/alerts.yml']\n",
        r#"invalid rule file path "rules/*/alerts.yml""#,
    ),
    (
        "remote write without url",
        "remote_write:\n- remote_timeout: 10s\n",
        "remote_write[0]: url for remote_write is empty",
    ),
    (
        "remote write with a reserved header",
        "remote_write:\n- url: http://r/write\n  headers: {User-Agent: x}\n",
        "remote_write[0]: User-Agent is a reserved header",
    ),
    (
        "unknown Alertmanager API version",
        "alerting:\n  alertmanagers:\n  - api_version: v3\n",
        "alerting.alertmanagers[0]: expected Alertmanager api version to be one of [v2] but got v3",
    ),
];

#[test]
fn invalid_configs_are_rejected_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, (name, yaml, want)) in INVALID.iter().enumerate() {
        let path = dir.path().join(format!("invalid-{i}.yml"));
        std::fs::write(&path, yaml).unwrap();
        let (promtool_ok, promtool_out) = promtool_check(&path);
        if promtool_ok {
            failures.push(format!("{name}: promtool accepted it:\n{promtool_out}"));
        }
        match Config::load_file(&path) {
            Ok(_) => failures.push(format!("{name}: hearth-config accepted it")),
            Err(e) => {
                let message = e.to_string();
                if !message.contains(want) {
                    failures.push(format!(
                        "{name}: hearth-config said\n  {message}\nwant\n  {want}"
                    ));
                }
                let prefix = format!("parsing YAML file {}: ", path.display());
                if !message.starts_with(&prefix) {
                    failures.push(format!("{name}: error does not name the file: {message}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(INVALID.len() >= 15);
}

/// The example configurations promtool can check (Debian's build has no
/// Kubernetes or Consul discovery, so `kubernetes-consul.yml` is checked by
/// Hearth only).
const VALID: &[&str] = &[
    "minimal.yml",
    "spec-example.yml",
    "hearth-scrape-ha.yml",
    "relabel-actions.yml",
];

/// Examples whose rendering promtool 2.42 rejects although it prints them
/// the same way: its `keepequal`/`dropequal` check compares the parsed
/// `regex` with the default by pointer, so the `regex: (.*)` that
/// Prometheus itself prints for those actions fails to load again.
const PROMTOOL_REJECTS_ITS_OWN_RENDERING: &[&str] = &["relabel-actions.yml"];

/// The configurations Hearth ships for users: `deploy/config/` and the
/// compose cluster's scrapers (`deploy/compose/config/`, but its bucket).
fn shipped_examples() -> Vec<PathBuf> {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut files = Vec::new();
    for dir in [deploy.join("config"), deploy.join("compose/config")] {
        files.extend(
            std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "yml"))
                .filter(|p| !p.ends_with("bucket.yml")),
        );
    }
    files.sort();
    assert!(files.len() >= 2, "shipped examples missing: {files:?}");
    files
}

#[test]
fn shipped_configs_are_accepted_by_both() {
    for path in shipped_examples() {
        let (ok, out) = promtool_check(&path);
        assert!(ok, "{}: promtool rejected it:\n{out}", path.display());
        Config::load_file(&path)
            .unwrap_or_else(|e| panic!("{}: hearth-config rejected it: {e}", path.display()));
    }
}

#[test]
fn example_configs_are_accepted_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for name in VALID {
        let path = testdata().join(name);
        let (ok, out) = promtool_check(&path);
        if !ok {
            failures.push(format!("{name}: promtool rejected it:\n{out}"));
        }
        let config = match Config::load_file(&path) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: hearth-config rejected it: {e}"));
                continue;
            }
        };
        // What Hearth prints (defaults filled in, secrets redacted) is a
        // configuration promtool accepts and Hearth loads back unchanged.
        let rendered = config.to_yaml_redacted();
        let rendered_path = dir.path().join(name);
        std::fs::write(&rendered_path, &rendered).unwrap();
        let (ok, out) = promtool_check(&rendered_path);
        if !ok && !PROMTOOL_REJECTS_ITS_OWN_RENDERING.contains(name) {
            failures.push(format!(
                "{name}: promtool rejected the rendering:\n{out}\n{rendered}"
            ));
        }
        match Config::parse(&rendered) {
            Ok(again) if again.to_yaml_redacted() == rendered => {}
            Ok(again) => failures.push(format!(
                "{name}: rendering is not stable:\n{rendered}\n---\n{}",
                again.to_yaml_redacted()
            )),
            Err(e) => failures.push(format!("{name}: rendering does not load: {e}\n{rendered}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn kubernetes_and_consul_example_loads() {
    let path = testdata().join("kubernetes-consul.yml");
    let config = Config::load_file(&path).unwrap();
    let pods = config.scrape_config("kubernetes-pods").unwrap();
    let k8s = &pods.service_discovery.kubernetes_sd_configs[0];
    assert_eq!(k8s.role(), hearth_config::discovery::KubernetesRole::Pod);
    assert_eq!(k8s.namespaces.names, ["default", "monitoring"]);
    let consul = &config
        .scrape_config("consul")
        .unwrap()
        .service_discovery
        .consul_sd_configs[0];
    assert_eq!(consul.token.expose(), "consul-token");
    assert!(!consul.allow_stale);
    let rendered = config.to_yaml_redacted();
    assert!(rendered.contains("token: <secret>") && !rendered.contains("consul-token"));
}

/// Every file under `testdata/` is one of the examples above, so a new one
/// cannot be added without being checked.
#[test]
fn every_example_is_checked() {
    let mut names: Vec<String> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    let mut checked: Vec<String> = VALID.iter().map(|s| s.to_string()).collect();
    checked.push("kubernetes-consul.yml".into());
    checked.sort();
    assert_eq!(names, checked);
}
