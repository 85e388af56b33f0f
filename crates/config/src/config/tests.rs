//! Loading whole files: defaults, inheritance, strictness, the checks
//! across sections, paths and rendering.

use super::*;

fn parse(yaml: &str) -> Config {
    Config::parse(yaml).unwrap_or_else(|e| panic!("{yaml}\n=> {e}"))
}

fn parse_err(yaml: &str) -> String {
    Config::parse(yaml).expect_err(yaml).to_string()
}

#[test]
fn empty_file_is_all_defaults() {
    for text in [
        "",
        "# nothing\n",
        "global:\n",
        "global: {}\n",
        "scrape_configs:\n",
    ] {
        let c = parse(text);
        assert_eq!(c, Config::default(), "{text:?}");
        assert_eq!(c.global.scrape_interval, Duration::from_mins(1));
        assert_eq!(c.global.scrape_timeout, Duration::from_secs(10));
        assert_eq!(c.global.evaluation_interval, Duration::from_mins(1));
    }
}

#[test]
fn global_timeout_defaults_to_a_shorter_interval() {
    let c = parse("global:\n  scrape_interval: 5s\n");
    assert_eq!(c.global.scrape_timeout, Duration::from_secs(5));
    let c = parse("global:\n  scrape_interval: 0s\n  scrape_timeout: 0s\n");
    assert_eq!(c.global.scrape_interval, Duration::from_mins(1));
    assert_eq!(c.global.scrape_timeout, Duration::from_secs(10));
    assert_eq!(
        parse_err("global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n"),
        "global: global scrape timeout greater than scrape interval at line 2, column 3"
    );
}

#[test]
fn jobs_inherit_from_global() {
    let c = parse(
        "global:\n  scrape_interval: 15s\n  scrape_timeout: 12s\n  sample_limit: 100\n\
         scrape_configs:\n\
         - job_name: a\n\
         - job_name: b\n  scrape_interval: 5s\n\
         - job_name: c\n  scrape_interval: 1m\n  scrape_timeout: 30s\n  sample_limit: 7\n\
         - job_name: d\n  scrape_interval: 0s\n",
    );
    let job = |n: &str| c.scrape_config(n).unwrap();
    assert_eq!(job("a").scrape_interval, Duration::from_secs(15));
    assert_eq!(job("a").scrape_timeout, Duration::from_secs(12));
    assert_eq!(job("a").sample_limit, 100);
    // An unset timeout is the global one, capped by the job's interval.
    assert_eq!(job("b").scrape_timeout, Duration::from_secs(5));
    assert_eq!(job("c").scrape_timeout, Duration::from_secs(30));
    assert_eq!(job("c").sample_limit, 7);
    // 0s means unset, as in Prometheus.
    assert_eq!(job("d").scrape_interval, Duration::from_secs(15));
}

#[test]
fn scrape_job_defaults() {
    let c = parse("scrape_configs:\n- job_name: a\n");
    let j = &c.scrape_configs[0];
    assert_eq!(j.metrics_path, "/metrics");
    assert_eq!(j.scheme, "http");
    assert!(j.honor_timestamps && !j.honor_labels);
    assert!(j.http_client.follow_redirects && j.http_client.enable_http2);
    assert!(j.enable_compression);
    assert_eq!(j.body_size_limit, ByteSize(0));
    assert!(j.service_discovery.is_empty());
}

#[test]
fn job_level_errors_name_the_job() {
    assert_eq!(
        parse_err("scrape_configs:\n- job_name: a\n  scrape_interval: 5s\n  scrape_timeout: 6s\n"),
        r#"scrape timeout greater than scrape interval for scrape config with job name "a""#
    );
    assert_eq!(
        parse_err("scrape_configs:\n- job_name: x\n- job_name: x\n"),
        r#"found multiple scrape configs with job name "x""#
    );
    assert!(parse_err("scrape_configs:\n- job_name: ''\n")
        .starts_with("scrape_configs[0]: job_name is empty"));
    assert!(
        parse_err("scrape_configs:\n- job_name: a\n  scheme: ftp\n").starts_with(
            r#"scrape_configs[0]: invalid scheme "ftp" for scrape config with job name "a""#
        )
    );
}

#[test]
fn unknown_fields_are_errors_everywhere() {
    for (yaml, field) in [
        ("foo: 1\n", "foo"),
        ("global:\n  scrape_intervall: 1m\n", "scrape_intervall"),
        ("scrape_configs:\n- job_name: a\n  foo: 1\n", "foo"),
        (
            "scrape_configs:\n- job_name: a\n  static_configs:\n  - target: [x]\n",
            "target",
        ),
        (
            "scrape_configs:\n- job_name: a\n  basic_auth: {user: x}\n",
            "user",
        ),
        (
            "scrape_configs:\n- job_name: a\n  tls_config: {ca: x, insecure: true}\n",
            "insecure",
        ),
        (
            "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - {action: keep, regexp: x}\n",
            "regexp",
        ),
        (
            "scrape_configs:\n- job_name: a\n  dns_sd_configs: [{names: [x], ports: 1}]\n",
            "ports",
        ),
        (
            "alerting:\n  alertmanagers:\n  - static_config: []\n",
            "static_config",
        ),
        (
            "remote_write:\n- url: http://x/\n  queue_config: {capacityy: 1}\n",
            "capacityy",
        ),
        (
            "remote_write:\n- url: http://x/\n  static_configs: []\n",
            "static_configs",
        ),
        (
            "remote_read:\n- url: http://x/\n  write_relabel_configs: []\n",
            "write_relabel_configs",
        ),
    ] {
        let e = parse_err(yaml);
        assert!(
            e.contains(&format!("unknown field `{field}`")),
            "{yaml}: {e}"
        );
        assert!(e.contains("line "), "errors carry a position: {e}");
    }
}

#[test]
fn duplicate_keys_and_nulls() {
    assert!(parse_err("scrape_configs:\n- job_name: a\n  job_name: b\n").contains("duplicate"));
    assert!(parse_err("scrape_configs:\n- null\n").contains("line 2"));
    assert!(
        parse_err("scrape_configs:\n- job_name: a\n  relabel_configs:\n  - null\n")
            .contains("line 4")
    );
    // Null collections and strings are their zero values, as with yaml.v2.
    let c = parse(
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  static_configs:\n  - targets:\n    \
         labels:\n",
    );
    assert_eq!(
        c.scrape_configs[0].service_discovery.static_configs.len(),
        1
    );
}

#[test]
fn yaml_1_1_scalars_read_as_yaml_v2_does() {
    let c = parse(
        "scrape_configs:\n- job_name: 1\n  honor_labels: yes\n  static_configs:\n  - targets: \
         [h:1]\n    labels: {a: 1, b: on}\n",
    );
    let j = &c.scrape_configs[0];
    assert_eq!(j.job_name, "1");
    assert!(j.honor_labels);
    let labels = &j.service_discovery.static_configs[0].labels;
    assert_eq!(labels["a"], "1");
    assert_eq!(labels["b"], "on");
}

#[test]
fn static_targets_must_not_be_urls_without_relabeling() {
    let url = "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['http://x:9090']\n";
    assert_eq!(
        parse_err(url),
        r#"scrape_configs[0]: "http://x:9090" is not a valid hostname at line 2, column 3"#
    );
    parse(&format!(
        "{url}  relabel_configs:\n  - {{target_label: __param_target}}\n"
    ));
}

#[test]
fn http_client_block_is_validated() {
    let e = parse_err(
        "scrape_configs:\n- job_name: a\n  basic_auth: {username: u}\n  authorization: \
         {credentials: c}\n",
    );
    assert!(
        e.starts_with("scrape_configs[0]: at most one of basic_auth, oauth2 & authorization"),
        "{e}"
    );
    let e = parse_err("scrape_configs:\n- job_name: a\n  tls_config: {cert_file: c}\n");
    assert!(e.contains("exactly one of key or key_file"), "{e}");
    let e = parse_err("scrape_configs:\n- job_name: a\n  tls_config: {min_version: TLS14}\n");
    assert!(e.contains("unknown TLS version: TLS14"), "{e}");
    let c = parse("scrape_configs:\n- job_name: a\n  bearer_token_file: /t\n");
    let auth = c.scrape_configs[0]
        .http_client
        .authorization
        .as_ref()
        .unwrap();
    assert_eq!(
        (auth.kind.as_str(), auth.credentials_file.as_str()),
        ("Bearer", "/t")
    );
}

#[test]
fn rule_files_and_remote_storage() {
    assert_eq!(
        parse_err("rule_files: ['a/*/b.yml']\n"),
        r#"invalid rule file path "a/*/b.yml""#
    );
    parse("rule_files: ['rules/*.yml', 'x.yml']\n");
    assert!(parse_err("remote_write:\n- remote_timeout: 1s\n")
        .starts_with("remote_write[0]: url for remote_write is empty"));
    assert!(parse_err("remote_read:\n- name: x\n")
        .starts_with("remote_read[0]: url for remote_read is empty"));
    assert_eq!(
        parse_err("remote_write:\n- {url: 'http://a/', name: x}\n- {url: 'http://b/', name: x}\n"),
        r#"found multiple remote write configs with job name "x""#
    );
    let e = parse_err("remote_write:\n- url: http://a/\n  headers: {Content-Type: x}\n");
    assert!(
        e.starts_with("remote_write[0]: Content-Type is a reserved header"),
        "{e}"
    );
    let c = parse("remote_write:\n- url: http://a/\nremote_read:\n- url: http://b/\n");
    let rw = &c.remote_write[0];
    assert_eq!(rw.remote_timeout, Duration::from_secs(30));
    assert_eq!(rw.queue_config, QueueConfig::default());
    assert!(!rw.http_client.enable_http2);
    let rr = &c.remote_read[0];
    assert_eq!(rr.remote_timeout, Duration::from_mins(1));
    assert!(rr.filter_external_labels);
}

#[test]
fn alertmanager_defaults_and_api_version() {
    let c = parse("alerting:\n  alertmanagers:\n  - static_configs: [{targets: ['am:9093']}]\n");
    let am = &c.alerting.alertmanagers[0];
    assert_eq!(am.api_version, "v2");
    assert_eq!(am.scheme, "http");
    assert_eq!(am.timeout, Duration::from_secs(10));
    assert_eq!(am.service_discovery.static_configs[0].targets, ["am:9093"]);
    assert!(
        parse_err("alerting:\n  alertmanagers:\n  - api_version: v1\n")
            .starts_with("alerting.alertmanagers[0]: alertmanager api v1 is no longer supported")
    );
    assert!(
        parse_err("alerting:\n  alertmanagers:\n  - api_version: v3\n")
            .contains("expected Alertmanager api version to be one of [v2] but got v3")
    );
}

#[test]
fn external_labels_expand_environment_variables() {
    let env = |name: &str| match name {
        "REGION" => Some("eu-1".to_string()),
        _ => None,
    };
    let c = Config::parse_with_env(
        "global:\n  external_labels:\n    a: '${REGION}-x'\n    b: '$REGION$$'\n    c: \
         '$MISSING'\n    d: 'plain $ sign'\n",
        env,
    )
    .unwrap();
    let l = &c.global.external_labels;
    assert_eq!(l["a"], "eu-1-x");
    assert_eq!(l["b"], "eu-1$");
    assert_eq!(l["c"], "");
    assert_eq!(l["d"], "plain $ sign");
    assert_eq!(expand_env("${}x${", &env), "x");
}

#[test]
fn load_file_resolves_paths_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(
        &path,
        "rule_files: ['rules/*.yml', '/abs/r.yml']\nscrape_configs:\n- job_name: a\n  \
         tls_config: {ca_file: ca.pem}\n  file_sd_configs: [{files: ['../t/*.json']}]\n",
    )
    .unwrap();
    let c = Config::load_file(&path).unwrap();
    let d = dir.path().display();
    assert_eq!(
        c.rule_files,
        [format!("{d}/rules/*.yml"), "/abs/r.yml".to_string()]
    );
    let job = &c.scrape_configs[0];
    assert_eq!(job.http_client.tls_config.ca_file, format!("{d}/ca.pem"));
    let parent = dir.path().parent().unwrap().display();
    assert_eq!(
        job.service_discovery.file_sd_configs[0].files,
        [format!("{parent}/t/*.json")]
    );

    std::fs::write(&path, "global:\n  scrape_interval: 1.5s\n").unwrap();
    let e = Config::load_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("parsing YAML file {}: global.scrape_interval: not a valid duration string: \"1.5s\" at line 2, column 20", path.display())
    );
    assert!(matches!(
        Config::load_file(dir.path().join("missing.yml")),
        Err(Error::Read { .. })
    ));
    assert_eq!(clean_path(Path::new("./a/../../b/./c")), "../b/c");
    assert_eq!(clean_path(Path::new("/a/../../b")), "/b");
}

/// Captured from Prometheus 2.42's `/api/v1/status/config` for the input
/// below (`rule_files` and `remote_write` aside, which differ on purpose:
/// the former is absolute after `load_file`, the latter has Prometheus 3's
/// queue defaults).
#[test]
fn renders_like_prometheus() {
    let input = r#"
global:
  scrape_interval: 15s
  external_labels:
    cluster: lab
alerting:
  alert_relabel_configs:
    - action: labeldrop
      regex: replica
  alertmanagers:
    - path_prefix: /alertmanager
      timeout: 5s
      static_configs:
        - targets: ['am-1:9093']
scrape_configs:
  - job_name: prometheus
    basic_auth: {username: u, password: p}
    tls_config: {ca_file: /x/ca.pem, insecure_skip_verify: true}
    params: {module: [a, b]}
    body_size_limit: 10MB
    static_configs:
      - targets: ['localhost:9090', 'yes', '1', 'a: b']
        labels: {a: "1"}
  - job_name: nodes
    scrape_interval: 5s
    authorization: {credentials: secret}
    file_sd_configs:
      - files: ['targets/nodes-*.json']
    dns_sd_configs:
      - names: [a.b]
        type: A
        port: 80
    http_sd_configs:
      - url: http://x/sd
    relabel_configs:
      - source_labels: [__address__]
        modulus: 4
        target_label: __tmp_shard
        action: hashmod
      - source_labels: [__tmp_shard]
        regex: '0'
        action: keep
remote_read:
  - url: http://receiver:9201/api/v1/read
"#;
    let want = r#"global:
  scrape_interval: 15s
  scrape_timeout: 10s
  evaluation_interval: 1m
  external_labels:
    cluster: lab
alerting:
  alert_relabel_configs:
  - separator: ;
    regex: replica
    replacement: $1
    action: labeldrop
  alertmanagers:
  - follow_redirects: true
    enable_http2: true
    scheme: http
    path_prefix: /alertmanager
    timeout: 5s
    api_version: v2
    static_configs:
    - targets:
      - am-1:9093
scrape_configs:
- job_name: prometheus
  honor_timestamps: true
  params:
    module:
    - a
    - b
  scrape_interval: 15s
  scrape_timeout: 10s
  metrics_path: /metrics
  scheme: http
  body_size_limit: 10MiB
  basic_auth:
    username: u
    password: <secret>
  tls_config:
    ca_file: /x/ca.pem
    insecure_skip_verify: true
  follow_redirects: true
  enable_http2: true
  static_configs:
  - targets:
    - localhost:9090
    - "yes"
    - "1"
    - 'a: b'
    labels:
      a: "1"
- job_name: nodes
  honor_timestamps: true
  scrape_interval: 5s
  scrape_timeout: 5s
  metrics_path: /metrics
  scheme: http
  authorization:
    type: Bearer
    credentials: <secret>
  follow_redirects: true
  enable_http2: true
  relabel_configs:
  - source_labels: [__address__]
    separator: ;
    regex: (.*)
    modulus: 4
    target_label: __tmp_shard
    replacement: $1
    action: hashmod
  - source_labels: [__tmp_shard]
    separator: ;
    regex: "0"
    replacement: $1
    action: keep
  dns_sd_configs:
  - names:
    - a.b
    refresh_interval: 30s
    type: A
    port: 80
  file_sd_configs:
  - files:
    - targets/nodes-*.json
    refresh_interval: 5m
  http_sd_configs:
  - follow_redirects: true
    enable_http2: true
    refresh_interval: 1m
    url: http://x/sd
remote_read:
- url: http://receiver:9201/api/v1/read
  remote_timeout: 1m
  follow_redirects: true
  enable_http2: true
  filter_external_labels: true
"#;
    let got = parse(input).to_yaml_redacted();
    assert_eq!(got, want, "\n--- got ---\n{got}");
    // What is printed loads back to the same configuration.
    let secrets_removed = input
        .replace("password: p", "password: '<secret>'")
        .replace("credentials: secret", "credentials: '<secret>'");
    assert_eq!(parse(&got), parse(&secrets_removed));
}

#[test]
fn secrets_never_appear_in_the_rendering() {
    let c = parse(
        "scrape_configs:\n- job_name: a\n  oauth2: {client_id: i, client_secret: s3cr3t, \
         token_url: 'http://t/'}\n- job_name: b\n  bearer_token: t0k3n\n  \
         consul_sd_configs: [{token: c0nsul, password: pw}]\n",
    );
    let out = c.to_yaml_redacted();
    for secret in ["s3cr3t", "t0k3n", "c0nsul", "pw\n"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert!(format!("{c:?}").contains("<secret>") && !format!("{c:?}").contains("s3cr3t"));
}
