//! `kubernetes_sd_configs`: targets from the Kubernetes API for the roles
//! node, pod, service, endpoints and endpointslice, with the meta labels of
//! Prometheus's Kubernetes discovery. Each needed resource (and namespace)
//! is listed, then watched from the list's `resourceVersion`; a watch that
//! fails or ends with an error is followed by a new list. After every batch
//! of changes all groups of the role are rebuilt, and the changed ones (and
//! empty groups for vanished objects) are sent.

mod kubeconfig;
mod objects;
mod targets;
mod token;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use hearth_config::discovery::{KubernetesRole, KubernetesSdConfig};
use hearth_config::http::HttpClientConfig;
use tokio::sync::mpsc;

use crate::client::HttpClient;
use crate::{Error, GroupSender, Result, TargetGroup};
use objects::{Kind, Object, Stores, WatchEvent};
use token::BearerToken;

const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// One `kubernetes_sd_configs` entry.
#[derive(Debug, Clone)]
pub struct KubernetesDiscovery {
    role: KubernetesRole,
    api_server: String,
    client: HttpClient,
    /// The bearer token of a kubeconfig user or of the in-cluster service
    /// account; `None` when the HTTP client settings authorize requests.
    token: Option<BearerToken>,
    /// Empty for all namespaces.
    namespaces: Vec<String>,
    /// Label and field selectors per watched kind.
    selectors: BTreeMap<Kind, (String, String)>,
    /// Delay before listing again after a failure.
    retry_delay: Duration,
}

/// Where the API server is and how to authenticate to it, whichever way it
/// was configured: `api_server` with the entry's HTTP client settings, a
/// kubeconfig file, or the in-cluster service account.
#[derive(Debug)]
pub(crate) struct ApiServerAccess {
    /// The base URL without a trailing `/` (it may end in a path prefix).
    pub server: String,
    /// TLS, basic auth, `authorization` and proxy settings.
    pub http_client: HttpClientConfig,
    /// A bearer token added to every request.
    pub token: Option<BearerToken>,
}

/// What a list or watch task reports to the role's loop.
enum Change {
    /// The full list of a kind in a namespace ("" for all).
    Listed(Kind, String, Vec<Object>),
    Event(Box<WatchEvent>),
}

impl KubernetesDiscovery {
    /// Uses `api_server`, else `kubeconfig_file`, else the in-cluster
    /// configuration (the `KUBERNETES_SERVICE_HOST`/`_PORT` variables and
    /// the service account's token and CA). A kubeconfig that cannot be
    /// read or used is an error here, so the manager reports it and runs
    /// the job's other providers. The `ingress` role is not supported yet.
    pub fn new(config: &KubernetesSdConfig) -> Result<Self> {
        let role = config.role();
        if role == KubernetesRole::Ingress {
            return Err(Error::Client(
                "kubernetes discovery: the ingress role is not supported yet".into(),
            ));
        }
        let access = if !config.api_server.is_empty() {
            ApiServerAccess {
                server: config.api_server.trim_end_matches('/').to_string(),
                http_client: config.http_client.clone(),
                token: None,
            }
        } else if !config.kubeconfig_file.is_empty() {
            kubeconfig::load(Path::new(&config.kubeconfig_file))?
        } else {
            in_cluster()?
        };
        // A bad certificate in a kubeconfig is reported as the kubeconfig's.
        let client = HttpClient::new(&access.http_client, None).map_err(|e| match e {
            Error::Client(message) if !config.kubeconfig_file.is_empty() => {
                Error::Client(format!("kubeconfig {}: {message}", config.kubeconfig_file))
            }
            other => other,
        })?;
        let mut namespaces = config.namespaces.names.clone();
        if config.namespaces.own_namespace {
            let path = format!("{SERVICE_ACCOUNT_DIR}/namespace");
            let own = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.into(),
                source,
            })?;
            namespaces.push(own.trim().to_string());
        }
        let selectors = config
            .selectors
            .iter()
            .filter_map(|s| Some((Kind::of_role(s.role)?, (s.label.clone(), s.field.clone()))))
            .collect();
        Ok(KubernetesDiscovery {
            role,
            api_server: access.server,
            client,
            token: access.token,
            namespaces,
            selectors,
            retry_delay: Duration::from_secs(1),
        })
    }

    /// The kinds a role needs: its own, plus services and pods for the
    /// endpoint roles.
    fn kinds(&self) -> Vec<Kind> {
        match self.role {
            KubernetesRole::Node => vec![Kind::Node],
            KubernetesRole::Pod => vec![Kind::Pod],
            KubernetesRole::Service => vec![Kind::Service],
            KubernetesRole::Endpoints => vec![Kind::Endpoints, Kind::Service, Kind::Pod],
            KubernetesRole::EndpointSlice => {
                vec![Kind::EndpointSlice, Kind::Service, Kind::Pod]
            }
            KubernetesRole::Ingress => vec![],
        }
    }

    /// Lists and watches every needed kind and namespace, and sends the
    /// changed groups after each batch of changes.
    pub async fn run(self, updates: GroupSender) {
        let (changes, mut received) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        for kind in self.kinds() {
            let namespaces = if kind == Kind::Node || self.namespaces.is_empty() {
                vec![String::new()]
            } else {
                self.namespaces.clone()
            };
            for namespace in namespaces {
                tasks.spawn(
                    self.clone()
                        .list_and_watch(kind, namespace, changes.clone()),
                );
            }
        }
        drop(changes);
        let mut stores = Stores::default();
        let mut listed = BTreeSet::new();
        let expected = tasks.len();
        let mut sent: BTreeMap<String, TargetGroup> = BTreeMap::new();
        let mut reported = false;
        while let Some(change) = received.recv().await {
            let mut batch = vec![change];
            while let Ok(more) = received.try_recv() {
                batch.push(more);
            }
            for change in batch {
                match change {
                    Change::Listed(kind, namespace, objects) => {
                        stores.replace(kind, &namespace, objects);
                        listed.insert((kind, namespace));
                    }
                    Change::Event(event) => stores.apply(*event),
                }
            }
            // Report only once every kind has been listed, so that endpoint
            // targets do not first appear without their pod and service.
            if listed.len() < expected {
                continue;
            }
            let groups = targets::build(self.role, &stores);
            let mut update: Vec<TargetGroup> = groups
                .values()
                .filter(|g| sent.get(&g.source) != Some(g))
                .cloned()
                .collect();
            update.extend(
                sent.keys()
                    .filter(|s| !groups.contains_key(*s))
                    .map(TargetGroup::empty),
            );
            sent = groups;
            if (!update.is_empty() || !reported) && updates.send(update).is_err() {
                return;
            }
            reported = true;
        }
    }

    /// The collection URL of a kind in a namespace ("" for all).
    fn collection_url(&self, kind: Kind, namespace: &str) -> String {
        let prefix = kind.api_prefix();
        let resource = kind.resource();
        if namespace.is_empty() {
            format!("{}{prefix}/{resource}", self.api_server)
        } else {
            format!(
                "{}{prefix}/namespaces/{namespace}/{resource}",
                self.api_server
            )
        }
    }

    fn request(
        &self,
        url: &str,
        kind: Kind,
        extra: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder> {
        let mut request = self.client.get(url)?;
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.current(url)?);
        }
        let mut query: Vec<(&str, &str)> = extra.to_vec();
        if let Some((label, field)) = self.selectors.get(&kind) {
            if !label.is_empty() {
                query.push(("labelSelector", label));
            }
            if !field.is_empty() {
                query.push(("fieldSelector", field));
            }
        }
        Ok(request.query(&query))
    }

    async fn list_and_watch(
        self,
        kind: Kind,
        namespace: String,
        changes: mpsc::UnboundedSender<Change>,
    ) {
        let url = self.collection_url(kind, &namespace);
        loop {
            let version = match self.list(&url, kind).await {
                Ok((objects, version)) => {
                    if changes
                        .send(Change::Listed(kind, namespace.clone(), objects))
                        .is_err()
                    {
                        return;
                    }
                    version
                }
                Err(e) => {
                    tracing::error!(error = %e, "kubernetes discovery: list failed");
                    tokio::time::sleep(self.retry_delay).await;
                    continue;
                }
            };
            if let Err(e) = self.watch(&url, kind, version, &changes).await {
                tracing::warn!(error = %e, "kubernetes discovery: watch ended, listing again");
                tokio::time::sleep(self.retry_delay).await;
            }
            if changes.is_closed() {
                return;
            }
        }
    }

    async fn list(&self, url: &str, kind: Kind) -> Result<(Vec<Object>, String)> {
        let response = self
            .request(url, kind, &[])?
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| Error::http(url, e))?;
        if !response.status().is_success() {
            return Err(Error::http(
                url,
                format!("server returned HTTP status {}", response.status()),
            ));
        }
        let body = response.bytes().await.map_err(|e| Error::http(url, e))?;
        objects::parse_list(kind, &body).map_err(|e| Error::http(url, e))
    }

    /// Follows a watch from `version`, re-watching from the last seen
    /// version when the server closes it; returns on errors (the caller
    /// lists again).
    async fn watch(
        &self,
        url: &str,
        kind: Kind,
        mut version: String,
        changes: &mpsc::UnboundedSender<Change>,
    ) -> Result<()> {
        loop {
            let query = [
                ("watch", "1"),
                ("allowWatchBookmarks", "true"),
                ("resourceVersion", version.as_str()),
            ];
            let mut response = self
                .request(url, kind, &query)?
                .send()
                .await
                .map_err(|e| Error::http(url, e))?;
            if !response.status().is_success() {
                return Err(Error::http(
                    url,
                    format!("watch: HTTP status {}", response.status()),
                ));
            }
            let mut buffer: Vec<u8> = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| Error::http(url, e))? {
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let event =
                        objects::parse_event(kind, &line).map_err(|e| Error::http(url, e))?;
                    if let Some(v) = event.resource_version() {
                        version = v.to_string();
                    }
                    if event.is_bookmark() {
                        continue;
                    }
                    if changes.send(Change::Event(Box::new(event))).is_err() {
                        return Ok(());
                    }
                }
            }
            if changes.is_closed() {
                return Ok(());
            }
        }
    }
}

/// client-go's `rest.InClusterConfig`: the API server from the
/// `KUBERNETES_SERVICE_HOST`/`_PORT` variables, the service account's token
/// (read on every request: it is rotated) and its CA when it can be read
/// (else the system's roots, as client-go logs and goes on).
fn in_cluster() -> Result<ApiServerAccess> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
    if host.is_empty() || port.is_empty() {
        return Err(Error::Client(
            "kubernetes discovery: no api_server and not running in a cluster".into(),
        ));
    }
    let mut http_client = HttpClientConfig::default();
    let ca_file = format!("{SERVICE_ACCOUNT_DIR}/ca.crt");
    if std::fs::File::open(&ca_file).is_ok() {
        http_client.tls_config.ca_file = ca_file;
    } else {
        tracing::warn!(
            ca_file,
            "kubernetes discovery: cannot read the service account's CA, using the system's"
        );
    }
    Ok(ApiServerAccess {
        server: format!("https://{}", crate::join_host_port(&host, port)),
        http_client,
        token: Some(BearerToken::from_file(
            format!("{SERVICE_ACCOUNT_DIR}/token"),
            "",
        )),
    })
}

#[cfg(test)]
mod tests;
