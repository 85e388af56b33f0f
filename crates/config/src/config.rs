//! The whole of `prometheus.yml`: `global`, `scrape_configs`, `rule_files`,
//! `alerting`, `remote_write`, `remote_read`, `storage` and `tracing`,
//! loaded with Prometheus 3's defaults, inheritance and validation.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::discovery::{validate_label_names, ServiceDiscoveryConfigs};
use crate::http::{inline_http_client, HttpClientConfig, TlsConfig};
use crate::relabel::RelabelConfig;
use crate::yaml::{default_true, is_false, is_true, is_zero, zero_if_null};
use crate::{ByteSize, Duration, Error, Result};

/// A loaded configuration file, defaults filled in and validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub global: GlobalConfig,
    #[serde(skip_serializing_if = "AlertingConfig::is_empty")]
    pub alerting: AlertingConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_files: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(skip_serializing_if = "StorageConfig::is_empty")]
    pub storage: StorageConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote_write: Vec<RemoteWriteConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote_read: Vec<RemoteReadConfig>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: Option<GlobalConfig>,
    #[serde(default, deserialize_with = "zero_if_null")]
    alerting: AlertingConfig,
    #[serde(default, deserialize_with = "zero_if_null")]
    rule_files: Vec<String>,
    #[serde(default, deserialize_with = "zero_if_null")]
    scrape_configs: Vec<ScrapeConfig>,
    #[serde(default, deserialize_with = "zero_if_null")]
    storage: StorageConfig,
    #[serde(default)]
    tracing: Option<TracingConfig>,
    #[serde(default, deserialize_with = "zero_if_null")]
    remote_write: Vec<RemoteWriteConfig>,
    #[serde(default, deserialize_with = "zero_if_null")]
    remote_read: Vec<RemoteReadConfig>,
}

impl Default for Config {
    /// What an empty file gives.
    fn default() -> Self {
        Config {
            global: GlobalConfig::default(),
            alerting: AlertingConfig::default(),
            rule_files: Vec::new(),
            scrape_configs: Vec::new(),
            storage: StorageConfig::default(),
            tracing: None,
            remote_write: Vec::new(),
            remote_read: Vec::new(),
        }
    }
}

impl Config {
    /// Parses and validates a configuration (Prometheus's `config.Load`).
    /// `$VAR` and `${VAR}` in external label values are replaced by the
    /// environment variable, as Prometheus 3 does. Relative paths are left
    /// as written; [`Config::load_file`] resolves them.
    pub fn parse(text: &str) -> Result<Config> {
        Self::parse_with_env(text, |name| std::env::var(name).ok())
    }

    fn parse_with_env(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let raw: RawConfig = crate::yaml::from_str_opt(text)?.unwrap_or_default();
        let mut config = Config {
            global: raw.global.unwrap_or_default(),
            alerting: raw.alerting,
            rule_files: raw.rule_files,
            scrape_configs: raw.scrape_configs,
            storage: raw.storage,
            tracing: raw.tracing,
            remote_write: raw.remote_write,
            remote_read: raw.remote_read,
        };
        config.validate().map_err(Error::Invalid)?;
        for value in config.global.external_labels.values_mut() {
            *value = expand_env(value, &env);
        }
        Ok(config)
    }

    /// Reads, parses and validates the file at `path` (Prometheus's
    /// `config.LoadFile`), then resolves relative paths in it against the
    /// file's directory. Errors name the file.
    pub fn load_file(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| Error::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        config.set_directory(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        });
        Ok(config)
    }

    /// The configuration as Prometheus prints it on `/api/v1/status/config`:
    /// YAML with every default filled in and secrets shown as `<secret>`.
    pub fn to_yaml_redacted(&self) -> String {
        crate::render::to_yaml(self)
    }

    /// The scrape job named `job_name`.
    pub fn scrape_config(&self, job_name: &str) -> Option<&ScrapeConfig> {
        self.scrape_configs.iter().find(|s| s.job_name == job_name)
    }

    /// The checks across sections, and the inheritance of global settings
    /// by scrape jobs (`Config.UnmarshalYAML` and `ScrapeConfig.Validate`).
    fn validate(&mut self) -> std::result::Result<(), String> {
        for rule_file in &self.rule_files {
            if !is_valid_glob_path(rule_file) {
                return Err(format!("invalid rule file path {rule_file:?}"));
            }
        }
        let mut job_names = HashSet::new();
        for job in &mut self.scrape_configs {
            job.inherit(&self.global)?;
            if !job_names.insert(job.job_name.clone()) {
                return Err(format!(
                    "found multiple scrape configs with job name {:?}",
                    job.job_name
                ));
            }
        }
        let mut names = HashSet::new();
        for rw in &self.remote_write {
            if !rw.name.is_empty() && !names.insert(rw.name.as_str()) {
                return Err(format!(
                    "found multiple remote write configs with job name {:?}",
                    rw.name
                ));
            }
        }
        let mut names = HashSet::new();
        for rr in &self.remote_read {
            if !rr.name.is_empty() && !names.insert(rr.name.as_str()) {
                return Err(format!(
                    "found multiple remote read configs with job name {:?}",
                    rr.name
                ));
            }
        }
        Ok(())
    }

    /// `Config.SetDirectory`: relative file paths (rule files, file SD,
    /// TLS files, password and credential files, kubeconfig, log files)
    /// become relative to `dir`.
    pub fn set_directory(&mut self, dir: &Path) {
        let join = |p: &mut String| *p = join_dir(dir, p);
        join(&mut self.global.query_log_file);
        join(&mut self.global.scrape_failure_log_file);
        self.rule_files.iter_mut().for_each(join);
        for job in &mut self.scrape_configs {
            join(&mut job.scrape_failure_log_file);
            set_http_directory(&mut job.http_client, dir);
            set_discovery_directory(&mut job.service_discovery, dir);
        }
        for am in &mut self.alerting.alertmanagers {
            set_http_directory(&mut am.http_client, dir);
            set_discovery_directory(&mut am.service_discovery, dir);
        }
        for rw in &mut self.remote_write {
            set_http_directory(&mut rw.http_client, dir);
        }
        for rr in &mut self.remote_read {
            set_http_directory(&mut rr.http_client, dir);
        }
        if let Some(tracing) = &mut self.tracing {
            set_tls_directory(&mut tracing.tls_config, dir);
        }
    }
}

/// `config.JoinDir`: an empty or absolute path is kept, anything else is
/// joined to `dir` and cleaned like Go's `filepath.Join`.
fn join_dir(dir: &Path, path: &str) -> String {
    if path.is_empty() || Path::new(path).is_absolute() {
        return path.to_string();
    }
    clean_path(&dir.join(path))
}

/// Go's `filepath.Clean`: no `.` segments, `..` resolved where possible.
fn clean_path(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut absolute = false;
    for component in path.components() {
        match component {
            Component::RootDir => absolute = true,
            Component::CurDir => {}
            Component::ParentDir => match parts.last() {
                Some(last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push("..".into()),
            },
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::Prefix(p) => parts.push(p.as_os_str().to_string_lossy().into_owned()),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn set_tls_directory(tls: &mut TlsConfig, dir: &Path) {
    for p in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file] {
        *p = join_dir(dir, p);
    }
}

fn set_http_directory(http: &mut HttpClientConfig, dir: &Path) {
    set_tls_directory(&mut http.tls_config, dir);
    if let Some(b) = &mut http.basic_auth {
        b.password_file = join_dir(dir, &b.password_file);
    }
    if let Some(a) = &mut http.authorization {
        a.credentials_file = join_dir(dir, &a.credentials_file);
    }
    if let Some(o) = &mut http.oauth2 {
        o.client_secret_file = join_dir(dir, &o.client_secret_file);
        set_tls_directory(&mut o.tls_config, dir);
    }
}

fn set_discovery_directory(sd: &mut ServiceDiscoveryConfigs, dir: &Path) {
    for f in &mut sd.file_sd_configs {
        f.files.iter_mut().for_each(|p| *p = join_dir(dir, p));
    }
    for h in &mut sd.http_sd_configs {
        set_http_directory(&mut h.http_client, dir);
    }
    for k in &mut sd.kubernetes_sd_configs {
        k.kubeconfig_file = join_dir(dir, &k.kubeconfig_file);
        set_http_directory(&mut k.http_client, dir);
    }
    for c in &mut sd.consul_sd_configs {
        set_http_directory(&mut c.http_client, dir);
    }
}

/// `patRulePath`: `^[^*]*(\*[^/]*)?$`, a `*` only in the last segment.
fn is_valid_glob_path(path: &str) -> bool {
    match path.split_once('*') {
        None => true,
        Some((_, after)) => !after.contains(['*', '/']),
    }
}

/// Go's `os.Expand` with Prometheus's mapping: `$$` is `$`, an unset or
/// empty variable expands to nothing, `${}` and an unclosed `${` are eaten.
fn expand_env(s: &str, env: &impl Fn(&str) -> Option<String>) -> String {
    let is_special = |c: u8| b"*#$@!?-0123456789".contains(&c);
    let is_alnum = |c: u8| c == b'_' || c.is_ascii_alphanumeric();
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut start = 0;
    let mut j = 0;
    while j < b.len() {
        if b[j] == b'$' && j + 1 < b.len() {
            out.push_str(&s[start..j]);
            let rest = &b[j + 1..];
            // (name, bytes consumed after the `$`)
            let (name, width): (&str, usize) = if rest[0] == b'{' {
                if rest.len() > 2 && is_special(rest[1]) && rest[2] == b'}' {
                    (&s[j + 2..j + 3], 3)
                } else {
                    match rest.iter().position(|&c| c == b'}') {
                        Some(1) => ("", 2),
                        Some(end) => (&s[j + 2..j + 1 + end], end + 1),
                        None => ("", 1),
                    }
                }
            } else if is_special(rest[0]) {
                (&s[j + 1..j + 2], 1)
            } else {
                let n = rest.iter().take_while(|&&c| is_alnum(c)).count();
                (&s[j + 1..j + 1 + n], n)
            };
            if name.is_empty() && width == 0 {
                out.push('$');
            } else if !name.is_empty() {
                if name == "$" {
                    out.push('$');
                } else {
                    out.push_str(&env(name).unwrap_or_default());
                }
            }
            j += width;
            start = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[start.min(s.len())..]);
    out
}

fn one_minute() -> Duration {
    Duration::from_mins(1)
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

/// How metric and label names are validated (Prometheus 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NameValidationScheme {
    #[serde(rename = "utf8")]
    Utf8,
    #[serde(rename = "legacy")]
    Legacy,
}

/// A format a target may answer a scrape with, for `scrape_protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ScrapeProtocol {
    #[serde(rename = "PrometheusProto")]
    PrometheusProto,
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText1_0_0,
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText0_0_1,
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText1_0_0,
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText0_0_4,
}

impl ScrapeProtocol {
    const ALL: [(ScrapeProtocol, &'static str); 5] = [
        (ScrapeProtocol::PrometheusProto, "PrometheusProto"),
        (ScrapeProtocol::OpenMetricsText1_0_0, "OpenMetricsText1.0.0"),
        (ScrapeProtocol::OpenMetricsText0_0_1, "OpenMetricsText0.0.1"),
        (ScrapeProtocol::PrometheusText1_0_0, "PrometheusText1.0.0"),
        (ScrapeProtocol::PrometheusText0_0_4, "PrometheusText0.0.4"),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map(|(_, s)| *s)
            .expect("every protocol is listed")
    }
}

impl<'de> Deserialize<'de> for ScrapeProtocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ScrapeProtocol::ALL
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(p, _)| *p)
            .ok_or_else(|| {
                let names: Vec<&str> = ScrapeProtocol::ALL.iter().map(|(_, n)| *n).collect();
                serde::de::Error::custom(format!(
                    "unknown scrape protocol {s}, supported: [{}]",
                    names.join(" ")
                ))
            })
    }
}

fn check_unique_protocols(protocols: &[ScrapeProtocol]) -> std::result::Result<(), String> {
    for (i, p) in protocols.iter().enumerate() {
        if protocols[..i].contains(p) {
            return Err(format!(
                "duplicated protocol in scrape_protocols, got {}",
                p.as_str()
            ));
        }
    }
    Ok(())
}

const ESCAPING_SCHEMES: [&str; 4] = ["allow-utf-8", "underscores", "dots", "values"];

fn check_escaping_scheme(scheme: &str, what: &str) -> std::result::Result<(), String> {
    if scheme.is_empty() || ESCAPING_SCHEMES.contains(&scheme) {
        return Ok(());
    }
    Err(format!(
        "unknown {what} name escaping method specified, must be one of 'allow-utf-8', \
         'underscores', 'dots', or 'values', got {scheme:?}"
    ))
}

/// `global`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawGlobalConfig")]
pub struct GlobalConfig {
    pub scrape_interval: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    pub scrape_timeout: Duration,
    pub evaluation_interval: Duration,
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub rule_query_offset: Duration,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query_log_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scrape_failure_log_file: String,
    /// Added to series and alerts leaving for other systems.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub external_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "ByteSize::is_zero")]
    pub body_size_limit: ByteSize,
    #[serde(skip_serializing_if = "is_zero")]
    pub sample_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub target_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub label_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub label_name_length_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub label_value_length_limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_dropped_targets: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_name_validation_scheme: Option<NameValidationScheme>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub metric_name_escaping_scheme: String,
}

impl Default for GlobalConfig {
    /// `DefaultGlobalConfig`: scrape every minute with a 10s timeout,
    /// evaluate rules every minute.
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: Duration::from_mins(1),
            scrape_protocols: None,
            scrape_timeout: Duration::from_secs(10),
            evaluation_interval: Duration::from_mins(1),
            rule_query_offset: Duration::ZERO,
            query_log_file: String::new(),
            scrape_failure_log_file: String::new(),
            external_labels: BTreeMap::new(),
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: None,
            metric_name_escaping_scheme: String::new(),
        }
    }
}

impl GlobalConfig {
    /// The external labels as a label set.
    pub fn external_label_set(&self) -> hearth_model::Labels {
        hearth_model::Labels::new(self.external_labels.iter())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobalConfig {
    #[serde(default)]
    scrape_interval: Duration,
    #[serde(default)]
    scrape_protocols: Option<Vec<ScrapeProtocol>>,
    #[serde(default)]
    scrape_timeout: Duration,
    #[serde(default)]
    evaluation_interval: Duration,
    #[serde(default)]
    rule_query_offset: Duration,
    #[serde(default, deserialize_with = "zero_if_null")]
    query_log_file: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    scrape_failure_log_file: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    body_size_limit: ByteSize,
    #[serde(default, deserialize_with = "zero_if_null")]
    sample_limit: u64,
    #[serde(default, deserialize_with = "zero_if_null")]
    target_limit: u64,
    #[serde(default, deserialize_with = "zero_if_null")]
    label_limit: u64,
    #[serde(default, deserialize_with = "zero_if_null")]
    label_name_length_limit: u64,
    #[serde(default, deserialize_with = "zero_if_null")]
    label_value_length_limit: u64,
    #[serde(default, deserialize_with = "zero_if_null")]
    keep_dropped_targets: u64,
    #[serde(default)]
    metric_name_validation_scheme: Option<NameValidationScheme>,
    #[serde(default, deserialize_with = "zero_if_null")]
    metric_name_escaping_scheme: String,
}

impl TryFrom<RawGlobalConfig> for GlobalConfig {
    type Error = String;

    /// `GlobalConfig.UnmarshalYAML`: zero means unset; an unset timeout is
    /// 10s, or the interval when that is shorter.
    fn try_from(raw: RawGlobalConfig) -> std::result::Result<Self, String> {
        let defaults = GlobalConfig::default();
        validate_label_names(&raw.external_labels)?;
        if raw.external_labels.contains_key(hearth_model::METRIC_NAME) {
            return Err(format!(
                "{:?} is not a valid external label name",
                hearth_model::METRIC_NAME
            ));
        }
        let scrape_interval = if raw.scrape_interval.is_zero() {
            defaults.scrape_interval
        } else {
            raw.scrape_interval
        };
        if raw.scrape_timeout > scrape_interval {
            return Err("global scrape timeout greater than scrape interval".into());
        }
        let scrape_timeout = if !raw.scrape_timeout.is_zero() {
            raw.scrape_timeout
        } else {
            defaults.scrape_timeout.min(scrape_interval)
        };
        let evaluation_interval = if raw.evaluation_interval.is_zero() {
            defaults.evaluation_interval
        } else {
            raw.evaluation_interval
        };
        if let Some(p) = &raw.scrape_protocols {
            check_unique_protocols(p)?;
        }
        check_escaping_scheme(&raw.metric_name_escaping_scheme, "global")?;
        Ok(GlobalConfig {
            scrape_interval,
            scrape_protocols: raw.scrape_protocols,
            scrape_timeout,
            evaluation_interval,
            rule_query_offset: raw.rule_query_offset,
            query_log_file: raw.query_log_file,
            scrape_failure_log_file: raw.scrape_failure_log_file,
            external_labels: raw.external_labels,
            body_size_limit: raw.body_size_limit,
            sample_limit: raw.sample_limit,
            target_limit: raw.target_limit,
            label_limit: raw.label_limit,
            label_name_length_limit: raw.label_name_length_limit,
            label_value_length_limit: raw.label_value_length_limit,
            keep_dropped_targets: raw.keep_dropped_targets,
            metric_name_validation_scheme: raw.metric_name_validation_scheme,
            metric_name_escaping_scheme: raw.metric_name_escaping_scheme,
        })
    }
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_scheme() -> String {
    "http".into()
}

inline_http_client! {
    /// A `scrape_configs` entry: one scrape job. Once loaded (through
    /// [`Config`]), `scrape_interval`, `scrape_timeout` and the limits hold
    /// the effective values, inherited from `global` where unset.
    pub struct ScrapeConfig parsed as RawScrapeConfig with HttpClientConfig::default {
        #[serde(default, deserialize_with = "zero_if_null")]
        pub job_name: String,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_false")]
        pub honor_labels: bool,
        #[serde(default = "default_true", deserialize_with = "zero_if_null")]
        pub honor_timestamps: bool,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_false")]
        pub track_timestamps_staleness: bool,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "BTreeMap::is_empty"
        )]
        pub params: BTreeMap<String, Vec<String>>,
        #[serde(default)]
        pub scrape_interval: Duration,
        #[serde(default)]
        pub scrape_timeout: Duration,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub fallback_scrape_protocol: Option<ScrapeProtocol>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scrape_native_histograms: Option<bool>,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_false")]
        pub always_scrape_classic_histograms: bool,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_false")]
        pub convert_classic_histograms_to_nhcb: bool,
        #[serde(default = "default_metrics_path", deserialize_with = "zero_if_null")]
        pub metrics_path: String,
        #[serde(default = "default_scheme", deserialize_with = "zero_if_null")]
        pub scheme: String,
        /// Printed only when false, as Prometheus 2 had no such key.
        #[serde(default = "default_true", deserialize_with = "zero_if_null", skip_serializing_if = "is_true")]
        pub enable_compression: bool,
        #[serde(default, skip_serializing_if = "ByteSize::is_zero")]
        pub body_size_limit: ByteSize,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero")]
        pub sample_limit: u64,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero")]
        pub target_limit: u64,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero")]
        pub label_limit: u64,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero")]
        pub label_name_length_limit: u64,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero")]
        pub label_value_length_limit: u64,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero")]
        pub native_histogram_bucket_limit: u64,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero_f64")]
        pub native_histogram_min_bucket_factor: f64,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero")]
        pub keep_dropped_targets: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metric_name_validation_scheme: Option<NameValidationScheme>,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "String::is_empty")]
        pub metric_name_escaping_scheme: String,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "String::is_empty")]
        pub scrape_failure_log_file: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub extra_scrape_metrics: Option<bool>,
        ..http_client,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "Vec::is_empty")]
        pub relabel_configs: Vec<RelabelConfig>,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "Vec::is_empty")]
        pub metric_relabel_configs: Vec<RelabelConfig>,
        ..service_discovery,
    }
}

fn is_zero_f64(f: &f64) -> bool {
    *f == 0.0
}

impl ScrapeConfig {
    /// The checks of `ScrapeConfig.UnmarshalYAML` that need only the job.
    fn validate(&mut self) -> std::result::Result<(), String> {
        if self.job_name.is_empty() {
            return Err("job_name is empty".into());
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(format!(
                "invalid scheme {:?} for scrape config with job name {:?}: must be http or https",
                self.scheme, self.job_name
            ));
        }
        if self.relabel_configs.is_empty() {
            self.service_discovery.check_static_targets()?;
        }
        check_escaping_scheme(&self.metric_name_escaping_scheme, "scrape config")?;
        Ok(())
    }

    /// `ScrapeConfig.Validate(globalConfig)`: inherit the interval, timeout,
    /// limits and protocols that the job leaves unset, and check the
    /// timeout against the interval.
    fn inherit(&mut self, global: &GlobalConfig) -> std::result::Result<(), String> {
        if self.scrape_interval.is_zero() {
            self.scrape_interval = global.scrape_interval;
        }
        if self.scrape_timeout > self.scrape_interval {
            return Err(format!(
                "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                self.job_name
            ));
        }
        if self.scrape_timeout.is_zero() {
            self.scrape_timeout = global.scrape_timeout.min(self.scrape_interval);
        }
        if self.body_size_limit.is_zero() {
            self.body_size_limit = global.body_size_limit;
        }
        for (limit, global_limit) in [
            (&mut self.sample_limit, global.sample_limit),
            (&mut self.target_limit, global.target_limit),
            (&mut self.label_limit, global.label_limit),
            (
                &mut self.label_name_length_limit,
                global.label_name_length_limit,
            ),
            (
                &mut self.label_value_length_limit,
                global.label_value_length_limit,
            ),
            (&mut self.keep_dropped_targets, global.keep_dropped_targets),
        ] {
            if *limit == 0 {
                *limit = global_limit;
            }
        }
        if self.scrape_protocols.is_none() {
            self.scrape_protocols = global.scrape_protocols.clone();
        }
        if let Some(p) = &self.scrape_protocols {
            check_unique_protocols(p)
                .map_err(|e| format!("{e} for scrape config with job name {:?}", self.job_name))?;
        }
        Ok(())
    }
}

/// `alerting`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Applied to every alert sent, after the external labels were added.
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

impl AlertingConfig {
    fn is_empty(&self) -> bool {
        self.alert_relabel_configs.is_empty() && self.alertmanagers.is_empty()
    }
}

fn default_api_version() -> String {
    "v2".into()
}

inline_http_client! {
    /// An `alerting.alertmanagers` entry: a set of Alertmanagers found by
    /// static or discovered targets.
    pub struct AlertmanagerConfig parsed as RawAlertmanagerConfig with HttpClientConfig::default {
        ..http_client,
        #[serde(default = "default_scheme", deserialize_with = "zero_if_null")]
        pub scheme: String,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "String::is_empty")]
        pub path_prefix: String,
        #[serde(default = "ten_seconds")]
        pub timeout: Duration,
        /// Only `v2` (Prometheus 3 rejects `v1`).
        #[serde(default = "default_api_version", deserialize_with = "zero_if_null")]
        pub api_version: String,
        /// Applied to the discovered Alertmanager targets.
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "Vec::is_empty")]
        pub relabel_configs: Vec<RelabelConfig>,
        /// Applied to alerts sent to this set, after the global ones.
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "Vec::is_empty")]
        pub alert_relabel_configs: Vec<RelabelConfig>,
        ..service_discovery,
    }
}

impl AlertmanagerConfig {
    fn validate(&mut self) -> std::result::Result<(), String> {
        match self.api_version.as_str() {
            "v2" => {}
            "v1" => return Err("alertmanager api v1 is no longer supported".into()),
            other => {
                return Err(format!(
                    "expected Alertmanager api version to be one of [v2] but got {other}"
                ))
            }
        }
        if self.relabel_configs.is_empty() {
            self.service_discovery.check_static_targets()?;
        }
        Ok(())
    }
}

/// Headers that remote storage configs may not set.
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

fn validate_headers(headers: &BTreeMap<String, String>) -> std::result::Result<(), String> {
    for name in headers.keys() {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" {
            return Err("authorization header must be changed via the basic_auth, \
                        authorization, oauth2, sigv4, azuread or google_iam parameter"
                .into());
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "{name} is a reserved header. It must not be changed"
            ));
        }
    }
    Ok(())
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

/// `remote_write[].queue_config` (Prometheus 3 defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub capacity: u64,
    pub max_shards: u64,
    pub min_shards: u64,
    pub max_samples_per_send: u64,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    #[serde(skip_serializing_if = "is_false")]
    pub retry_on_http_429: bool,
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub sample_age_limit: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
            sample_age_limit: Duration::ZERO,
        }
    }
}

/// `remote_write[].metadata_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub send: bool,
    pub send_interval: Duration,
    pub max_samples_per_send: u64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            send: true,
            send_interval: Duration::from_mins(1),
            max_samples_per_send: 2_000,
        }
    }
}

/// The default HTTP client of remote write: HTTP/2 off (Prometheus 3).
fn remote_write_http_defaults() -> HttpClientConfig {
    HttpClientConfig {
        enable_http2: false,
        ..HttpClientConfig::default()
    }
}

inline_http_client! {
    /// A `remote_write` entry.
    pub struct RemoteWriteConfig parsed as RawRemoteWriteConfig with remote_write_http_defaults {
        #[serde(default, deserialize_with = "zero_if_null")]
        pub url: String,
        #[serde(default = "thirty_seconds")]
        pub remote_timeout: Duration,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "BTreeMap::is_empty")]
        pub headers: BTreeMap<String, String>,
        /// Applied to every series sent, after the external labels were added.
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "Vec::is_empty")]
        pub write_relabel_configs: Vec<RelabelConfig>,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "String::is_empty")]
        pub name: String,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_false")]
        pub send_exemplars: bool,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_false")]
        pub send_native_histograms: bool,
        /// `prometheus.WriteRequest` (1.0) unless set to
        /// `io.prometheus.write.v2.Request` (2.0).
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "String::is_empty")]
        pub protobuf_message: String,
        ..http_client,
        #[serde(default, deserialize_with = "zero_if_null")]
        pub queue_config: QueueConfig,
        #[serde(default, deserialize_with = "zero_if_null")]
        pub metadata_config: MetadataConfig,
    }
}

impl RemoteWriteConfig {
    fn validate(&mut self) -> std::result::Result<(), String> {
        if self.url.is_empty() {
            return Err("url for remote_write is empty".into());
        }
        validate_headers(&self.headers)?;
        match self.protobuf_message.as_str() {
            "" | "prometheus.WriteRequest" | "io.prometheus.write.v2.Request" => Ok(()),
            other => Err(format!(
                "unknown remote write protobuf message {other}, supported: \
                 prometheus.WriteRequest, io.prometheus.write.v2.Request"
            )),
        }
    }
}

inline_http_client! {
    /// A `remote_read` entry.
    pub struct RemoteReadConfig parsed as RawRemoteReadConfig with HttpClientConfig::default {
        #[serde(default, deserialize_with = "zero_if_null")]
        pub url: String,
        #[serde(default = "one_minute")]
        pub remote_timeout: Duration,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "BTreeMap::is_empty")]
        pub headers: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_false")]
        pub read_recent: bool,
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "String::is_empty")]
        pub name: String,
        ..http_client,
        /// Equality matchers a query must have for this endpoint to be asked.
        #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "BTreeMap::is_empty")]
        pub required_matchers: BTreeMap<String, String>,
        #[serde(default = "default_true", deserialize_with = "zero_if_null", skip_serializing_if = "is_false")]
        pub filter_external_labels: bool,
    }
}

impl RemoteReadConfig {
    fn validate(&mut self) -> std::result::Result<(), String> {
        if self.url.is_empty() {
            return Err("url for remote_read is empty".into());
        }
        validate_headers(&self.headers)?;
        validate_label_names(&self.required_matchers)
    }
}

/// `storage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsdb: Option<TsdbConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemplars: Option<ExemplarsConfig>,
}

impl StorageConfig {
    fn is_empty(&self) -> bool {
        self.tsdb.is_none() && self.exemplars.is_none()
    }
}

/// `storage.tsdb`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsdbConfig {
    /// How far behind the newest sample a sample may still be accepted.
    #[serde(default, skip_serializing_if = "Duration::is_zero")]
    pub out_of_order_time_window: Duration,
}

/// `storage.exemplars`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemplarsConfig {
    #[serde(default = "default_max_exemplars", deserialize_with = "zero_if_null")]
    pub max_exemplars: i64,
}

fn default_max_exemplars() -> i64 {
    100_000
}

/// `tracing`: OTLP trace export. Accepted and validated; Hearth does not
/// export traces through it yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawTracingConfig")]
pub struct TracingConfig {
    pub client_type: String,
    pub endpoint: String,
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub sampling_fraction: f64,
    #[serde(skip_serializing_if = "is_false")]
    pub insecure: bool,
    #[serde(skip_serializing_if = "TlsConfig::is_zero")]
    pub tls_config: TlsConfig,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compression: String,
    pub timeout: Duration,
}

fn default_client_type() -> String {
    "grpc".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracingConfig {
    #[serde(default = "default_client_type", deserialize_with = "zero_if_null")]
    client_type: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    endpoint: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    sampling_fraction: f64,
    #[serde(default, deserialize_with = "zero_if_null")]
    insecure: bool,
    #[serde(default, deserialize_with = "zero_if_null")]
    tls_config: TlsConfig,
    #[serde(default, deserialize_with = "zero_if_null")]
    headers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "zero_if_null")]
    compression: String,
    #[serde(default = "ten_seconds")]
    timeout: Duration,
}

impl TryFrom<RawTracingConfig> for TracingConfig {
    type Error = String;

    fn try_from(raw: RawTracingConfig) -> std::result::Result<Self, String> {
        if raw.client_type != "grpc" && raw.client_type != "http" {
            return Err(format!(
                "expected tracing client type to be to be one of [grpc http] but got {}",
                raw.client_type
            ));
        }
        if raw.endpoint.is_empty() {
            return Err("tracing endpoint must be set".into());
        }
        if !raw.compression.is_empty() && raw.compression != "gzip" {
            return Err(format!(
                "invalid compression type {} provided, valid options: \"gzip\"",
                raw.compression
            ));
        }
        Ok(TracingConfig {
            client_type: raw.client_type,
            endpoint: raw.endpoint,
            sampling_fraction: raw.sampling_fraction,
            insecure: raw.insecure,
            tls_config: raw.tls_config,
            headers: raw.headers,
            compression: raw.compression,
            timeout: raw.timeout,
        })
    }
}

#[cfg(test)]
mod tests;
