//! `consul_sd_configs`: one target group per Consul service, kept up to
//! date with blocking queries (2 minute wait) on the catalog's service list
//! and on each watched service's health endpoint, no more often than every
//! `refresh_interval`, as Prometheus's Consul discovery.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hearth_config::discovery::ConsulSdConfig;
use hearth_model::Labels;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::HttpClient;
use crate::{
    join_host_port, labels_without_empty, sanitize_label_name, Error, GroupSender, Result,
    TargetGroup, ADDRESS_LABEL,
};

const META_PREFIX: &str = "__meta_consul_";

/// How long a blocking query may wait for a change.
const WATCH_TIMEOUT: Duration = Duration::from_secs(120);

/// One `consul_sd_configs` entry.
#[derive(Debug, Clone)]
pub struct ConsulDiscovery {
    inner: Consul,
}

#[derive(Debug, Clone)]
struct Consul {
    base_url: String,
    client: HttpClient,
    token: String,
    datacenter: String,
    services: Vec<String>,
    tags: Vec<String>,
    node_meta: BTreeMap<String, String>,
    allow_stale: bool,
    tag_separator: String,
    refresh_interval: Duration,
    watch_timeout: Duration,
}

/// A `/v1/health/service/<name>` entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceEntry {
    node: Node,
    service: AgentService,
    #[serde(default)]
    checks: Vec<HealthCheck>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Node {
    node: String,
    address: String,
    tagged_addresses: Option<BTreeMap<String, String>>,
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AgentService {
    #[serde(rename = "ID")]
    id: String,
    address: String,
    port: u16,
    tags: Option<Vec<String>>,
    meta: Option<BTreeMap<String, String>>,
    namespace: String,
    partition: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HealthCheck {
    #[serde(rename = "CheckID")]
    check_id: String,
    status: String,
}

impl ConsulDiscovery {
    /// Fails on HTTP client settings Hearth does not support (oauth2, TLS).
    pub fn new(config: &ConsulSdConfig) -> Result<Self> {
        Ok(ConsulDiscovery {
            inner: Consul {
                base_url: format!(
                    "{}://{}",
                    config.scheme,
                    config.server.trim_end_matches('/')
                ),
                client: HttpClient::new(&config.http_client, None)?,
                token: config.token.expose().to_string(),
                datacenter: config.datacenter.clone(),
                services: config.services.clone(),
                tags: config.tags.clone(),
                node_meta: config.node_meta.clone(),
                allow_stale: config.allow_stale,
                tag_separator: config.tag_separator.clone(),
                refresh_interval: config.refresh_interval.as_std(),
                watch_timeout: WATCH_TIMEOUT,
            },
        })
    }

    /// Watches the services; each watcher sends its service's group on
    /// every change, and a service leaving the catalog gets an empty group.
    pub async fn run(self, updates: GroupSender) {
        let mut consul = self.inner;
        let datacenter = loop {
            match consul.datacenter().await {
                Ok(dc) => break dc,
                Err(e) => {
                    tracing::error!(error = %e, "Consul discovery: cannot get the datacenter");
                    tokio::time::sleep(consul.refresh_interval.max(Duration::from_secs(1))).await;
                }
            }
        };
        consul.datacenter = datacenter;
        let consul = Arc::new(consul);
        let mut watchers = Watchers::default();
        // A fixed list of services without tag filter needs no catalog watch.
        if !consul.services.is_empty() && consul.tags.is_empty() {
            for service in &consul.services {
                watchers.start(&consul, service, &updates);
            }
            std::future::pending::<()>().await;
        }
        let mut index = 0;
        loop {
            let started = Instant::now();
            match consul.catalog_services(index).await {
                Ok((services, new_index)) => {
                    // Consul's index may go backwards (a restored snapshot).
                    index = if new_index < index { 0 } else { new_index };
                    let watched: Vec<&String> = services
                        .iter()
                        .filter(|(name, tags)| consul.should_watch(name, tags))
                        .map(|(name, _)| name)
                        .collect();
                    for name in &watched {
                        if !watchers.running.contains_key(*name) {
                            watchers.start(&consul, name, &updates);
                        }
                    }
                    let gone: Vec<String> = watchers
                        .running
                        .keys()
                        .filter(|name| !watched.contains(name))
                        .cloned()
                        .collect();
                    for name in gone {
                        watchers.stop(&name);
                        if updates.send(vec![TargetGroup::empty(name)]).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "Consul discovery: cannot list services");
                    index = 0;
                }
            }
            if updates.is_closed() {
                return;
            }
            let elapsed = started.elapsed();
            if elapsed < consul.refresh_interval {
                tokio::time::sleep(consul.refresh_interval - elapsed).await;
            }
        }
    }
}

/// The per-service watch tasks, aborted when dropped.
#[derive(Default)]
struct Watchers {
    running: HashMap<String, JoinHandle<()>>,
}

impl Watchers {
    fn start(&mut self, consul: &Arc<Consul>, service: &str, updates: &GroupSender) {
        let task = tokio::spawn(watch_service(
            consul.clone(),
            service.to_string(),
            updates.clone(),
        ));
        self.running.insert(service.to_string(), task);
    }

    fn stop(&mut self, service: &str) {
        if let Some(task) = self.running.remove(service) {
            task.abort();
        }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.running.values().for_each(JoinHandle::abort);
    }
}

async fn watch_service(consul: Arc<Consul>, service: String, updates: GroupSender) {
    let mut index = 0;
    loop {
        let started = Instant::now();
        match consul.health_service(&service, index).await {
            Ok((entries, new_index)) => {
                if new_index != index || index == 0 {
                    let group = consul.group(&service, &entries);
                    if updates.send(vec![group]).is_err() {
                        return;
                    }
                }
                index = if new_index < index { 0 } else { new_index };
            }
            Err(e) => {
                tracing::error!(error = %e, service, "Consul discovery: cannot get service");
                index = 0;
            }
        }
        let elapsed = started.elapsed();
        if elapsed < consul.refresh_interval {
            tokio::time::sleep(consul.refresh_interval - elapsed).await;
        }
    }
}

impl Consul {
    /// The configured datacenter, or the agent's own.
    async fn datacenter(&self) -> Result<String> {
        if !self.datacenter.is_empty() {
            return Ok(self.datacenter.clone());
        }
        #[derive(Deserialize)]
        struct AgentSelf {
            #[serde(rename = "Config")]
            config: AgentConfig,
        }
        #[derive(Deserialize)]
        struct AgentConfig {
            #[serde(rename = "Datacenter")]
            datacenter: String,
        }
        let url = format!("{}/v1/agent/self", self.base_url);
        let (agent, _): (AgentSelf, _) = self.get(&url, &[], Duration::from_secs(30)).await?;
        Ok(agent.config.datacenter)
    }

    /// `shouldWatch`: the service is listed (or no list is given) and
    /// carries every configured tag.
    fn should_watch(&self, name: &str, tags: &[String]) -> bool {
        (self.services.is_empty() || self.services.iter().any(|s| s == name))
            && self.tags.iter().all(|t| tags.contains(t))
    }

    /// The query parameters common to the blocking queries.
    fn query(&self, index: u64) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("dc", self.datacenter.clone()),
            ("index", index.to_string()),
            ("wait", format!("{}ms", self.watch_timeout.as_millis())),
        ];
        if self.allow_stale {
            query.push(("stale", String::new()));
        }
        for (k, v) in &self.node_meta {
            query.push(("node-meta", format!("{k}:{v}")));
        }
        query
    }

    async fn catalog_services(&self, index: u64) -> Result<(BTreeMap<String, Vec<String>>, u64)> {
        let url = format!("{}/v1/catalog/services", self.base_url);
        let timeout = self.watch_timeout + Duration::from_secs(10);
        let (services, index): (BTreeMap<String, Option<Vec<String>>>, u64) =
            self.get(&url, &self.query(index), timeout).await?;
        let services = services
            .into_iter()
            .map(|(name, tags)| (name, tags.unwrap_or_default()))
            .collect();
        Ok((services, index))
    }

    async fn health_service(&self, service: &str, index: u64) -> Result<(Vec<ServiceEntry>, u64)> {
        let url = format!("{}/v1/health/service/{}", self.base_url, service);
        let mut query = self.query(index);
        query.extend(self.tags.iter().map(|t| ("tag", t.clone())));
        let timeout = self.watch_timeout + Duration::from_secs(10);
        let (entries, index): (Option<Vec<ServiceEntry>>, u64) =
            self.get(&url, &query, timeout).await?;
        Ok((entries.unwrap_or_default(), index))
    }

    /// A GET with the token, decoded from JSON, with the `X-Consul-Index`.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&'static str, String)],
        timeout: Duration,
    ) -> Result<(T, u64)> {
        let mut request = self.client.get(url)?.query(query).timeout(timeout);
        if !self.token.is_empty() {
            request = request.header("X-Consul-Token", &self.token);
        }
        let response = request.send().await.map_err(|e| Error::http(url, e))?;
        if !response.status().is_success() {
            return Err(Error::http(
                url,
                format!("server returned HTTP status {}", response.status()),
            ));
        }
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = response.bytes().await.map_err(|e| Error::http(url, e))?;
        let value = serde_json::from_slice(&body).map_err(|e| Error::http(url, e))?;
        Ok((value, index))
    }

    /// The group of a service: one target per instance.
    fn group(&self, service: &str, entries: &[ServiceEntry]) -> TargetGroup {
        let targets = entries.iter().map(|e| self.target(e)).collect();
        TargetGroup {
            source: service.to_string(),
            targets,
            labels: labels_without_empty(vec![
                (meta("service"), service.to_string()),
                (meta("dc"), self.datacenter.clone()),
            ]),
        }
    }

    fn target(&self, entry: &ServiceEntry) -> Labels {
        let node = &entry.node;
        let service = &entry.service;
        let host = if service.address.is_empty() {
            &node.address
        } else {
            &service.address
        };
        let tags = service.tags.as_deref().unwrap_or_default();
        let tags = if tags.is_empty() {
            String::new()
        } else {
            let separator = &self.tag_separator;
            format!("{separator}{}{separator}", tags.join(separator))
        };
        let mut labels = vec![
            (
                ADDRESS_LABEL.to_string(),
                join_host_port(host, service.port),
            ),
            (meta("address"), node.address.clone()),
            (meta("node"), node.node.clone()),
            (meta("namespace"), service.namespace.clone()),
            (meta("partition"), service.partition.clone()),
            (meta("tags"), tags),
            (meta("service_address"), service.address.clone()),
            (meta("service_port"), service.port.to_string()),
            (meta("service_id"), service.id.clone()),
            (meta("health"), aggregated_status(&entry.checks).to_string()),
        ];
        let maps = [
            ("metadata_", &node.meta),
            ("service_metadata_", &service.meta),
            ("tagged_address_", &node.tagged_addresses),
        ];
        for (prefix, map) in maps {
            for (k, v) in map.iter().flatten() {
                labels.push((
                    meta(&format!("{prefix}{}", sanitize_label_name(k))),
                    v.clone(),
                ));
            }
        }
        labels_without_empty(labels)
    }
}

fn meta(name: &str) -> String {
    format!("{META_PREFIX}{name}")
}

/// The consul API's `HealthChecks.AggregatedStatus`: maintenance, then
/// critical, then warning, then passing (also for no checks).
fn aggregated_status(checks: &[HealthCheck]) -> &'static str {
    let (mut warning, mut critical, mut maintenance) = (false, false, false);
    for check in checks {
        if check.check_id == "_node_maintenance"
            || check.check_id.starts_with("_service_maintenance:")
        {
            maintenance = true;
            continue;
        }
        match check.status.as_str() {
            "passing" => {}
            "warning" => warning = true,
            "critical" => critical = true,
            _ => return "",
        }
    }
    if maintenance {
        "maintenance"
    } else if critical {
        "critical"
    } else if warning {
        "warning"
    } else {
        "passing"
    }
}

#[cfg(test)]
mod tests;
