//! Service discovery blocks of scrape jobs and Alertmanager sets: static
//! targets and the file, DNS, HTTP, Kubernetes and Consul mechanisms, with
//! Prometheus's defaults and load-time checks. Discovery itself lives in
//! the scraper; this is only its configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::http::{inline_http_client, HttpClientConfig, Secret};
use crate::yaml::{default_true, zero_if_null};
use crate::Duration;

/// `static_configs` entry: a target group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawStaticConfig")]
pub struct StaticConfig {
    /// Each becomes a target with `__address__` set to it.
    pub targets: Vec<String>,
    /// Labels of every target of the group.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaticConfig {
    #[serde(default, deserialize_with = "zero_if_null")]
    targets: Vec<String>,
    #[serde(default, deserialize_with = "zero_if_null")]
    labels: BTreeMap<String, String>,
}

impl TryFrom<RawStaticConfig> for StaticConfig {
    type Error = String;

    fn try_from(raw: RawStaticConfig) -> Result<Self, String> {
        validate_label_names(&raw.labels)?;
        Ok(StaticConfig {
            targets: raw.targets,
            labels: raw.labels,
        })
    }
}

/// `model.LabelSet` validation under Prometheus 3's UTF-8 scheme.
pub(crate) fn validate_label_names(labels: &BTreeMap<String, String>) -> Result<(), String> {
    match labels
        .keys()
        .find(|n| !hearth_model::labels::is_valid_label_name(n))
    {
        Some(bad) => Err(format!("{bad:?} is not a valid label name")),
        None => Ok(()),
    }
}

fn five_minutes() -> Duration {
    Duration::from_mins(5)
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

fn one_minute() -> Duration {
    Duration::from_mins(1)
}

/// `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawFileSdConfig")]
pub struct FileSdConfig {
    /// Paths or globs (a `*` only in the last segment) of `.json`, `.yml`
    /// or `.yaml` files.
    pub files: Vec<String>,
    pub refresh_interval: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSdConfig {
    #[serde(default, deserialize_with = "zero_if_null")]
    files: Vec<String>,
    #[serde(default = "five_minutes")]
    refresh_interval: Duration,
}

/// `patFileSDName`: `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`.
fn is_valid_file_sd_name(name: &str) -> bool {
    let extensions = ["json", "yml", "yaml", "JSON", "YML", "YAML"];
    let Some((stem, extension)) = name.rsplit_once('.') else {
        return false;
    };
    if !extensions.contains(&extension) {
        return false;
    }
    match stem.split_once('*') {
        None => true,
        Some((_, after)) => !after.contains(['*', '/']),
    }
}

impl TryFrom<RawFileSdConfig> for FileSdConfig {
    type Error = String;

    fn try_from(raw: RawFileSdConfig) -> Result<Self, String> {
        if raw.files.is_empty() {
            return Err("file service discovery config must contain at least one path name".into());
        }
        if let Some(bad) = raw.files.iter().find(|f| !is_valid_file_sd_name(f)) {
            return Err(format!("path name {bad:?} is not valid for file discovery"));
        }
        Ok(FileSdConfig {
            files: raw.files,
            refresh_interval: raw.refresh_interval,
        })
    }
}

/// The DNS record type a `dns_sd_configs` entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsRecordType {
    Srv,
    A,
    Aaaa,
    Mx,
    Ns,
}

/// `dns_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawDnsSdConfig")]
pub struct DnsSdConfig {
    pub names: Vec<String>,
    pub refresh_interval: Duration,
    /// As written (case-insensitive); see [`DnsSdConfig::record_type`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Required for every type but SRV.
    #[serde(skip_serializing_if = "is_zero_port")]
    pub port: u16,
}

fn is_zero_port(p: &u16) -> bool {
    *p == 0
}

fn default_dns_type() -> String {
    "SRV".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDnsSdConfig {
    #[serde(default, deserialize_with = "zero_if_null")]
    names: Vec<String>,
    #[serde(default = "thirty_seconds")]
    refresh_interval: Duration,
    #[serde(rename = "type", default = "default_dns_type")]
    kind: String,
    #[serde(default, deserialize_with = "zero_if_null")]
    port: u16,
}

fn parse_record_type(kind: &str) -> Option<DnsRecordType> {
    match kind.to_ascii_uppercase().as_str() {
        "SRV" => Some(DnsRecordType::Srv),
        "A" => Some(DnsRecordType::A),
        "AAAA" => Some(DnsRecordType::Aaaa),
        "MX" => Some(DnsRecordType::Mx),
        "NS" => Some(DnsRecordType::Ns),
        _ => None,
    }
}

impl TryFrom<RawDnsSdConfig> for DnsSdConfig {
    type Error = String;

    fn try_from(raw: RawDnsSdConfig) -> Result<Self, String> {
        if raw.names.is_empty() {
            return Err("DNS-SD config must contain at least one SRV record name".into());
        }
        match parse_record_type(&raw.kind) {
            None => return Err(format!("invalid DNS-SD records type {}", raw.kind)),
            Some(DnsRecordType::Srv) => {}
            Some(_) if raw.port == 0 => {
                return Err(
                    "a port is required in DNS-SD configs for all record types except SRV".into(),
                )
            }
            Some(_) => {}
        }
        Ok(DnsSdConfig {
            names: raw.names,
            refresh_interval: raw.refresh_interval,
            kind: raw.kind,
            port: raw.port,
        })
    }
}

impl DnsSdConfig {
    pub fn record_type(&self) -> DnsRecordType {
        parse_record_type(&self.kind).expect("validated when the config was loaded")
    }
}

/// The scheme and host of a URL, split as Go's `url.Parse` would for the
/// absolute URLs configuration files hold.
fn url_scheme_and_host(url: &str) -> (&str, &str) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.split_once(':') {
            Some((scheme, _)) => (scheme, ""),
            None => ("", ""),
        };
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (scheme, host)
}

inline_http_client! {
    /// `http_sd_configs` entry.
    pub struct HttpSdConfig parsed as RawHttpSdConfig with HttpClientConfig::default {
        ..http_client,
        #[serde(default = "one_minute")]
        pub refresh_interval: Duration,
        #[serde(default, deserialize_with = "zero_if_null")]
        pub url: String,
    }
}

impl HttpSdConfig {
    fn validate(&mut self) -> Result<(), String> {
        if self.url.is_empty() {
            return Err("URL is missing".into());
        }
        let (scheme, host) = url_scheme_and_host(&self.url);
        if scheme != "http" && scheme != "https" {
            return Err("URL scheme must be 'http' or 'https'".into());
        }
        if host.is_empty() {
            return Err("host is missing in URL".into());
        }
        Ok(())
    }
}

/// The objects a Kubernetes discovery watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesRole {
    Node,
    Pod,
    Service,
    Endpoints,
    #[serde(rename = "endpointslice")]
    EndpointSlice,
    Ingress,
}

impl KubernetesRole {
    pub fn as_str(self) -> &'static str {
        match self {
            KubernetesRole::Node => "node",
            KubernetesRole::Pod => "pod",
            KubernetesRole::Service => "service",
            KubernetesRole::Endpoints => "endpoints",
            KubernetesRole::EndpointSlice => "endpointslice",
            KubernetesRole::Ingress => "ingress",
        }
    }

    /// The selector roles a discovery role accepts.
    fn allowed_selectors(self) -> &'static [KubernetesRole] {
        use KubernetesRole::*;
        match self {
            Pod => &[Pod],
            Service => &[Service],
            EndpointSlice => &[Pod, Service, EndpointSlice],
            Endpoints => &[Pod, Service, Endpoints],
            Node => &[Node],
            Ingress => &[Ingress],
        }
    }
}

impl<'de> Deserialize<'de> for KubernetesRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        use KubernetesRole::*;
        [Node, Pod, Service, Endpoints, EndpointSlice, Ingress]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown Kubernetes SD role {s:?}")))
    }
}

/// `kubernetes_sd_configs[].namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesNamespaces {
    #[serde(default, deserialize_with = "zero_if_null")]
    pub own_namespace: bool,
    #[serde(default, deserialize_with = "zero_if_null")]
    pub names: Vec<String>,
}

impl KubernetesNamespaces {
    fn is_zero(&self) -> bool {
        *self == KubernetesNamespaces::default()
    }
}

/// `kubernetes_sd_configs[].selectors` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSelector {
    pub role: KubernetesRole,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "String::is_empty"
    )]
    pub label: String,
    #[serde(
        default,
        deserialize_with = "zero_if_null",
        skip_serializing_if = "String::is_empty"
    )]
    pub field: String,
}

/// `kubernetes_sd_configs[].attach_metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAttachMetadata {
    #[serde(default, deserialize_with = "zero_if_null")]
    pub node: bool,
}

impl KubernetesAttachMetadata {
    fn is_zero(&self) -> bool {
        !self.node
    }
}

inline_http_client! {
    /// `kubernetes_sd_configs` entry: the API server from `api_server`,
    /// `kubeconfig_file` or the in-cluster service account
    /// (hearth-discovery's kubernetes module).
    pub struct KubernetesSdConfig parsed as RawKubernetesSdConfig with HttpClientConfig::default {
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "String::is_empty"
        )]
        pub api_server: String,
        #[serde(default)]
        pub role: Option<KubernetesRole>,
        #[serde(default, deserialize_with = "zero_if_null")]
        pub kubeconfig_file: String,
        ..http_client,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "KubernetesNamespaces::is_zero"
        )]
        pub namespaces: KubernetesNamespaces,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "Vec::is_empty"
        )]
        pub selectors: Vec<KubernetesSelector>,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "KubernetesAttachMetadata::is_zero"
        )]
        pub attach_metadata: KubernetesAttachMetadata,
    }
}

impl KubernetesSdConfig {
    /// The discovery role (always set once loaded).
    pub fn role(&self) -> KubernetesRole {
        self.role.expect("validated when the config was loaded")
    }

    fn validate(&mut self) -> Result<(), String> {
        let Some(role) = self.role else {
            return Err(
                "role missing (one of: pod, service, endpoints, endpointslice, node, \
                        ingress)"
                    .into(),
            );
        };
        let has_api_server = !self.api_server.is_empty();
        let has_kubeconfig = !self.kubeconfig_file.is_empty();
        let custom_http = self.http_client != HttpClientConfig::default();
        if has_api_server && has_kubeconfig {
            return Err("cannot use 'kubeconfig_file' and 'api_server' simultaneously".into());
        }
        if has_kubeconfig && custom_http {
            return Err(
                "cannot use a custom HTTP client configuration together with \
                        'kubeconfig_file'"
                    .into(),
            );
        }
        if !has_api_server && custom_http {
            return Err(
                "to use custom HTTP client configuration please provide the \
                        'api_server' URL explicitly"
                    .into(),
            );
        }
        if has_api_server && self.namespaces.own_namespace {
            return Err(
                "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously".into(),
            );
        }
        if has_kubeconfig && self.namespaces.own_namespace {
            return Err(
                "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously".into(),
            );
        }
        let mut seen = Vec::new();
        for selector in &self.selectors {
            if seen.contains(&selector.role) {
                return Err(format!(
                    "duplicated selector role: {}",
                    selector.role.as_str()
                ));
            }
            seen.push(selector.role);
            let allowed = role.allowed_selectors();
            if !allowed.contains(&selector.role) {
                let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                return Err(format!(
                    "{} role supports only {} selectors",
                    role.as_str(),
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn default_consul_server() -> String {
    "localhost:8500".into()
}

fn default_tag_separator() -> String {
    ",".into()
}

fn default_http() -> String {
    "http".into()
}

inline_http_client! {
    /// `consul_sd_configs` entry. Accepted and validated; Hearth has no
    /// Consul discovery yet. The deprecated `username`/`password` become
    /// `basic_auth`.
    pub struct ConsulSdConfig parsed as RawConsulSdConfig with HttpClientConfig::default {
        #[serde(default = "default_consul_server", deserialize_with = "zero_if_null")]
        pub server: String,
        #[serde(default, skip_serializing_if = "Secret::is_empty")]
        pub token: Secret,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "String::is_empty"
        )]
        pub datacenter: String,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "String::is_empty"
        )]
        pub namespace: String,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "String::is_empty"
        )]
        pub partition: String,
        #[serde(default = "default_tag_separator", deserialize_with = "zero_if_null")]
        pub tag_separator: String,
        #[serde(default = "default_http", deserialize_with = "zero_if_null")]
        pub scheme: String,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "String::is_empty"
        )]
        pub username: String,
        #[serde(default, skip_serializing_if = "Secret::is_empty")]
        pub password: Secret,
        #[serde(default = "default_true", deserialize_with = "zero_if_null")]
        pub allow_stale: bool,
        #[serde(default = "thirty_seconds")]
        pub refresh_interval: Duration,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "Vec::is_empty"
        )]
        pub services: Vec<String>,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "Vec::is_empty"
        )]
        pub tags: Vec<String>,
        #[serde(
            default,
            deserialize_with = "zero_if_null",
            skip_serializing_if = "BTreeMap::is_empty"
        )]
        pub node_meta: BTreeMap<String, String>,
        ..http_client,
    }
}

impl ConsulSdConfig {
    fn validate(&mut self) -> Result<(), String> {
        if self.server.trim().is_empty() {
            return Err("consul SD configuration requires a server address".into());
        }
        if !self.username.is_empty() || !self.password.is_empty() {
            if self.http_client.basic_auth.is_some() {
                return Err(
                    "at most one of consul SD configuration username and password and \
                            basic auth can be configured"
                        .into(),
                );
            }
            self.http_client.basic_auth = Some(crate::http::BasicAuth {
                username: std::mem::take(&mut self.username),
                password: std::mem::take(&mut self.password),
                password_file: String::new(),
            });
        }
        if !self.token.is_empty()
            && (self.http_client.authorization.is_some() || self.http_client.oauth2.is_some())
        {
            return Err(
                "at most one of consul SD token, authorization, or oauth2 can be configured".into(),
            );
        }
        Ok(())
    }
}

/// The discovery blocks a scrape job or an Alertmanager set may hold.
/// Printed after every other key, in this (alphabetical) order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceDiscoveryConfigs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consul_sd_configs: Vec<ConsulSdConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_sd_configs: Vec<DnsSdConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_sd_configs: Vec<HttpSdConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
}

impl ServiceDiscoveryConfigs {
    /// `checkStaticTargets`: without relabeling, a static target holding a
    /// `/` is a URL by mistake.
    pub(crate) fn check_static_targets(&self) -> Result<(), String> {
        for target in self.static_configs.iter().flat_map(|g| &g.targets) {
            if target.contains('/') {
                return Err(format!("{target:?} is not a valid hostname"));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == ServiceDiscoveryConfigs::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::from_str;

    #[test]
    fn defaults() {
        let f: FileSdConfig = from_str("files: [a.json]").unwrap();
        assert_eq!(f.refresh_interval, Duration::from_mins(5));
        let d: DnsSdConfig = from_str("names: [x]").unwrap();
        assert_eq!(d.refresh_interval, Duration::from_secs(30));
        assert_eq!(d.record_type(), DnsRecordType::Srv);
        let h: HttpSdConfig = from_str("url: http://sd/targets").unwrap();
        assert_eq!(h.refresh_interval, Duration::from_mins(1));
        assert!(h.http_client.follow_redirects);
        let c: ConsulSdConfig = from_str("services: [web]").unwrap();
        assert_eq!(c.server, "localhost:8500");
        assert_eq!(c.refresh_interval, Duration::from_secs(30));
        assert!(c.allow_stale);
        assert_eq!(c.tag_separator, ",");
        assert_eq!(c.scheme, "http");
    }

    #[test]
    fn validation() {
        fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(yaml: &str) -> String {
            from_str::<T>(yaml).unwrap_err().to_string()
        }
        for (yaml, want) in [
            (
                "names: [x]\ntype: A",
                "a port is required in DNS-SD configs",
            ),
            (
                "names: [x]\ntype: TXT\nport: 1",
                "invalid DNS-SD records type TXT",
            ),
            ("type: SRV", "must contain at least one SRV record name"),
        ] {
            assert!(err::<DnsSdConfig>(yaml).contains(want), "{yaml}");
        }
        let d: DnsSdConfig = from_str("names: [x]\ntype: aaaa\nport: 9100").unwrap();
        assert_eq!(d.record_type(), DnsRecordType::Aaaa);
        assert!(err::<FileSdConfig>("files: [x.txt]").contains(r#"path name "x.txt" is not valid"#));
        assert!(err::<FileSdConfig>("files: ['a/*/b.json']").contains("is not valid"));
        from_str::<FileSdConfig>("files: ['a/b/*.yml', 'c.JSON', 'd/x*y.yaml']").unwrap();
        assert!(err::<FileSdConfig>("refresh_interval: 1m").contains("at least one path name"));
        assert!(err::<HttpSdConfig>("url: ftp://x/").contains("URL scheme must be"));
        assert!(err::<HttpSdConfig>("url: http:///x").contains("host is missing in URL"));
        assert!(err::<KubernetesSdConfig>("api_server: http://k").contains("role missing"));
        assert!(err::<KubernetesSdConfig>("role: pods")
            .contains(r#"unknown Kubernetes SD role "pods""#));
        assert!(
            err::<KubernetesSdConfig>("role: pod\nselectors: [{role: service}]")
                .contains("pod role supports only pod selectors")
        );
        assert!(
            err::<KubernetesSdConfig>("role: node\nbasic_auth: {username: u}")
                .contains("provide the 'api_server' URL explicitly")
        );
        assert!(err::<StaticConfig>("labels: {'': x}").contains(r#""" is not a valid label name"#));
    }

    #[test]
    fn consul_username_becomes_basic_auth() {
        let c: ConsulSdConfig = from_str("username: u\npassword: p").unwrap();
        let b = c.http_client.basic_auth.unwrap();
        assert_eq!((b.username.as_str(), b.password.expose()), ("u", "p"));
        assert!(c.username.is_empty());
    }
}
