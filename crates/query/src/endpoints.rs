//! The set of stores the querier fans out to (Thanos's endpoint set).
//!
//! Addresses come from `--endpoint` flags, file SD files and DNS names
//! (`sources`); each address gets one [`Store`] from the factory (the
//! binary's gRPC client, or in-process stores in tests), kept for as long as
//! the address is discovered so that connections are reused. Every
//! [`EndpointSet::refresh`] asks each store for its `Info` within a timeout:
//! the answer decides health and is what the proxy selects stores by
//! (specs/storeapi.md §3.9, §6.1). Unhealthy stores are not queried.

mod sources;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hearth_model::Labels;
use hearth_storeapi::{Store, StoreInfo};
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use sources::Discovery;

/// Builds the store for an address (`host:port`).
pub type StoreFactory = Arc<dyn Fn(&str) -> Arc<dyn Store> + Send + Sync>;

/// Milliseconds since the epoch; injected so tests control `lastCheck`.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Where endpoints come from and how they are checked.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// `--endpoint`: `host:port`, `dns+host:port` or `dnssrv+name`.
    pub addresses: Vec<String>,
    /// `--store.sd-files`: Thanos file SD files (YAML, or JSON by the
    /// `.json` extension) whose targets are addresses as above.
    pub files: Vec<PathBuf>,
    /// `--endpoint.info-timeout`: how long an `Info` call may take before
    /// the endpoint counts as unhealthy.
    pub info_timeout: Duration,
    /// DNS servers to ask instead of those of `/etc/resolv.conf`.
    pub dns_servers: Vec<SocketAddr>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            addresses: Vec::new(),
            files: Vec::new(),
            info_timeout: Duration::from_secs(5),
            dns_servers: Vec::new(),
        }
    }
}

/// A healthy store as the proxy uses it: its address, client and last
/// `Info` answer.
#[derive(Clone)]
pub struct ActiveStore {
    pub name: String,
    pub store: Arc<dyn Store>,
    pub info: StoreInfo,
}

impl std::fmt::Debug for ActiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveStore")
            .field("name", &self.name)
            .field("info", &self.info)
            .finish()
    }
}

/// One endpoint's entry in `/api/v1/stores` (Thanos's `EndpointStatus`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    pub name: String,
    /// RFC 3339 time of the last `Info` call, successful or not.
    pub last_check: String,
    /// Why the last `Info` call failed; `null` when it succeeded.
    pub last_error: Option<String>,
    pub label_sets: Vec<Labels>,
    pub min_time: i64,
    pub max_time: i64,
}

/// The status key of endpoints that never answered `Info` (their
/// component type is unknown).
pub const UNKNOWN_COMPONENT: &str = "unknown";

/// What the last check of an endpoint found.
#[derive(Debug, Clone, Default)]
struct EndpointState {
    healthy: bool,
    last_check_ms: i64,
    last_error: Option<String>,
    /// The last successful answer, kept while unhealthy for the status page.
    info: Option<StoreInfo>,
}

struct Endpoint {
    name: String,
    store: Arc<dyn Store>,
    state: Mutex<EndpointState>,
}

/// The stores the querier fans out to; see the module documentation.
pub struct EndpointSet {
    config: EndpointConfig,
    factory: StoreFactory,
    clock: Clock,
    endpoints: RwLock<BTreeMap<String, Arc<Endpoint>>>,
    /// Discovery state; its lock also keeps refreshes from interleaving.
    discovery: tokio::sync::Mutex<Discovery>,
}

impl EndpointSet {
    /// An empty set: nothing is known (or queried) until the first
    /// [`refresh`](Self::refresh).
    pub fn new(config: EndpointConfig, factory: StoreFactory) -> Self {
        let discovery = Discovery::new(config.dns_servers.clone());
        EndpointSet {
            config,
            factory,
            clock: Arc::new(system_now_ms),
            endpoints: RwLock::new(BTreeMap::new()),
            discovery: tokio::sync::Mutex::new(discovery),
        }
    }

    /// Uses `clock` for the check times.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Re-reads the sources, creates stores for new addresses, drops those
    /// of vanished ones, and checks every endpoint's `Info` concurrently.
    pub async fn refresh(&self) {
        let mut discovery = self.discovery.lock().await;
        let addresses = discovery
            .resolve(&self.config.addresses, &self.config.files)
            .await;
        let current = self.endpoints.read().clone();
        let endpoints: Vec<Arc<Endpoint>> = addresses
            .into_iter()
            .map(|name| match current.get(&name) {
                Some(e) => Arc::clone(e),
                None => {
                    tracing::info!(endpoint = %name, "endpoint discovered");
                    Arc::new(Endpoint {
                        store: (self.factory)(&name),
                        name,
                        state: Mutex::new(EndpointState::default()),
                    })
                }
            })
            .collect();
        futures::future::join_all(endpoints.iter().map(|e| self.check(e))).await;
        let next: BTreeMap<String, Arc<Endpoint>> =
            endpoints.into_iter().map(|e| (e.name.clone(), e)).collect();
        for name in current.keys().filter(|n| !next.contains_key(*n)) {
            tracing::info!(endpoint = %name, "endpoint removed");
        }
        *self.endpoints.write() = next;
    }

    /// Asks one endpoint for its `Info` and records the outcome.
    async fn check(&self, endpoint: &Endpoint) {
        let timeout = self.config.info_timeout;
        let result = match tokio::time::timeout(timeout, endpoint.store.info()).await {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(e)) => Err(format!("info: {e}")),
            Err(_) => Err(format!("info: no answer within {timeout:?}")),
        };
        let now = (self.clock)();
        let mut state = endpoint.state.lock();
        state.last_check_ms = now;
        match result {
            Ok(info) => {
                if !state.healthy {
                    tracing::info!(endpoint = %endpoint.name, component = %info.component, "endpoint healthy");
                }
                state.healthy = true;
                state.last_error = None;
                state.info = Some(info);
            }
            Err(e) => {
                if state.healthy || state.last_error.is_none() {
                    tracing::warn!(endpoint = %endpoint.name, error = %e, "endpoint unhealthy");
                }
                state.healthy = false;
                state.last_error = Some(e);
            }
        }
    }

    /// Refreshes now and then every `interval` until `shutdown`.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let set = Arc::clone(self);
        let interval = interval.max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = set.refresh() => {}
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        })
    }

    /// The healthy stores, in address order (which makes merge ties
    /// deterministic).
    pub fn healthy(&self) -> Vec<ActiveStore> {
        self.endpoints
            .read()
            .values()
            .filter_map(|e| {
                let state = e.state.lock();
                let info = state.info.as_ref().filter(|_| state.healthy)?;
                Some(ActiveStore {
                    name: e.name.clone(),
                    store: Arc::clone(&e.store),
                    info: info.clone(),
                })
            })
            .collect()
    }

    /// Every known address, healthy or not.
    pub fn addresses(&self) -> Vec<String> {
        self.endpoints.read().keys().cloned().collect()
    }

    /// What `/api/v1/stores` serves: endpoints grouped by component type,
    /// each group in address order. Endpoints that never answered are
    /// listed under [`UNKNOWN_COMPONENT`] (Thanos leaves them out; showing
    /// them is what an operator looking for a broken store needs).
    pub fn status(&self) -> BTreeMap<String, Vec<EndpointStatus>> {
        let mut out: BTreeMap<String, Vec<EndpointStatus>> = BTreeMap::new();
        for e in self.endpoints.read().values() {
            let state = e.state.lock().clone();
            let (component, status) = endpoint_status(&e.name, state);
            out.entry(component).or_default().push(status);
        }
        out
    }
}

/// One endpoint's status entry and the component it is listed under.
fn endpoint_status(name: &str, state: EndpointState) -> (String, EndpointStatus) {
    let (component, label_sets, min_time, max_time) = match state.info {
        Some(info) => (
            info.component,
            info.label_sets,
            info.min_time,
            info.max_time,
        ),
        None => (
            UNKNOWN_COMPONENT.to_string(),
            Vec::new(),
            i64::MIN,
            i64::MAX,
        ),
    };
    let status = EndpointStatus {
        name: name.to_string(),
        last_check: rfc3339(state.last_check_ms),
        last_error: state.last_error,
        label_sets,
        min_time,
        max_time,
    };
    (component, status)
}

fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// RFC 3339 in UTC with milliseconds (`2024-05-01T12:00:00.123Z`).
fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
    }
}
