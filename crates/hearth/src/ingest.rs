//! `hearth ingest`: one raft-replicated ingester (crates/ingest). Takes
//! remote writes (1.0 and 2.0) on HTTP, spreads them over the shards'
//! leaders, and serves the heads of its shard replicas over StoreAPI (with
//! a replica label, so the querier deduplicates a shard's replicas) and the
//! HTTP query API. One gRPC port carries the raft transport, write
//! forwarding and StoreAPI.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use axum::routing::get;
use hearth_api::{ApiMetrics, ApiState};
use hearth_ingest::ingester::{ingester_of, DEFAULT_TENANT, TENANT_LABEL};
use hearth_ingest::node::NodeStatus;
use hearth_ingest::{Ingester, IngesterConfig, WriteError};
use hearth_model::Labels;
use hearth_storage_api::{AppendStats, Appendable, Error as StorageError, SeriesSamples};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

use crate::flags;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// This ingester's id (a key of `--peers`, not 0).
    #[arg(long = "node-id", required_unless_present = "node_id_from_hostname")]
    node_id: Option<u64>,
    /// Take the id from the host name instead: its number after the last
    /// `-`, plus 1 (a StatefulSet's pod `hearth-ingest-0` is ingester 1).
    #[arg(long = "node-id-from-hostname", conflicts_with = "node_id")]
    node_id_from_hostname: bool,
    /// Every ingester of the cluster as `id=host:port` (their gRPC
    /// addresses), comma separated or repeated.
    #[arg(long = "peers", value_delimiter = ',', required = true, value_parser = parse_peer)]
    peers: Vec<(u64, String)>,
    /// Address of the gRPC server: raft, write forwarding and StoreAPI.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    grpc_address: SocketAddr,
    /// Address of remote write, the HTTP API, status and metrics.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: SocketAddr,
    /// The raft logs (the WAL) of the shard replicas placed here.
    #[arg(long = "data-dir", default_value = "./data")]
    data_dir: PathBuf,
    /// Shards the series are spread over (fixed for the cluster's life).
    #[arg(long = "shards", default_value_t = 4)]
    shards: u64,
    /// Replicas per shard (a write is acknowledged by a majority of them).
    #[arg(long = "replication-factor", default_value_t = 3)]
    replication_factor: usize,
    /// Raft's clock: elections and heartbeats are counted in ticks.
    #[arg(long = "raft.tick-interval", default_value = "100ms", value_parser = flags::duration_ms)]
    tick_interval: i64,
    /// Ticks without a leader before a follower campaigns (randomized up to twice).
    #[arg(long = "raft.election-ticks", default_value_t = 10)]
    election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    #[arg(long = "raft.heartbeat-ticks", default_value_t = 2)]
    heartbeat_ticks: usize,
    /// Entries applied between snapshots of a shard (which compact its log).
    #[arg(long = "raft.snapshot-entries", default_value_t = 10_000)]
    snapshot_entries: u64,
    /// Bytes of entries applied between snapshots of a shard (live entries
    /// are kept in memory until then).
    #[arg(long = "raft.snapshot-bytes", default_value = "64MB", value_parser = flags::bytes)]
    snapshot_bytes: u64,
    /// Entries kept in a shard's log behind its snapshot, so that a replica
    /// lagging by less catches up from the log instead of a snapshot.
    #[arg(long = "raft.retained-entries", default_value_t = 1_000)]
    retained_entries: u64,
    /// How long a write waits for its shards to commit before 503.
    #[arg(long = "write-timeout", default_value = "5s", value_parser = flags::duration_ms)]
    write_timeout: i64,
    /// Read only the shards this ingester leads (read-your-writes through
    /// the leader); by default every local replica is read.
    #[arg(long = "read.leader-only", default_value_t = false)]
    leader_reads: bool,
    /// External label of this ingester's StoreAPI that marks it as one
    /// replica (the querier's `--query.replica-label`).
    #[arg(long = "replica-label", default_value = "replica")]
    replica_label: String,
    /// Further external labels, `name=value` (also on uploaded blocks).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Object storage the shard leaders upload blocks to (Thanos's
    /// format); without it blocks stay on the ingesters.
    #[arg(long = "objstore.config-file")]
    objstore_config_file: Option<PathBuf>,
    /// A tenant's head is cut into a block once it spans 1.5 times this.
    #[arg(long = "tsdb.block-duration", default_value = "2h", value_parser = flags::duration_ms)]
    block_duration: i64,
    /// How often shard leaders look for blocks to cut and upload.
    #[arg(long = "tsdb.housekeeping-interval", default_value = "10s", value_parser = flags::duration_ms)]
    housekeeping_interval: i64,
}

fn parse_peer(v: &str) -> Result<(u64, String), String> {
    let (id, address) = v
        .split_once('=')
        .ok_or_else(|| format!("peer {v:?} is not id=host:port"))?;
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| format!("peer id {id:?} is not a number"))?;
    if id == 0 {
        return Err("peer id 0 is reserved".into());
    }
    Ok((id, address.trim().to_string()))
}

/// This machine's host name (a pod's is its name).
fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .context("read the host name (/proc/sys/kernel/hostname, $HOSTNAME)")?;
    Ok(name.trim().to_string())
}

/// `--node-id-from-hostname`: `hearth-ingest-2` is ingester 3.
fn node_id_of_host(host: &str) -> anyhow::Result<u64> {
    let ordinal = host
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .with_context(|| format!("host name {host:?} does not end in -<number>"))?;
    Ok(ordinal + 1)
}

fn parse_label(v: &str) -> Result<(String, String), String> {
    let (name, value) = v
        .split_once('=')
        .ok_or_else(|| format!("label {v:?} is not name=value"))?;
    if !hearth_model::labels::is_valid_label_name(name) {
        return Err(format!("invalid label name {name:?}"));
    }
    Ok((name.to_string(), value.trim_matches('"').to_string()))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = hearth_api::system_clock()();
    let node_id = match args.node_id {
        Some(id) => id,
        None => node_id_of_host(&host_name()?)?,
    };
    let peers: BTreeMap<u64, String> = args.peers.iter().cloned().collect();
    anyhow::ensure!(
        peers.len() == args.peers.len(),
        "--peers names an ingester id twice"
    );
    let mut config = IngesterConfig::new(node_id, peers, args.data_dir.clone());
    config.shards = args.shards;
    config.replication_factor = args.replication_factor;
    config.tick_interval = Duration::from_millis(args.tick_interval.max(1) as u64);
    config.election_tick = args.election_ticks;
    config.heartbeat_tick = args.heartbeat_ticks;
    config.snapshot_interval_entries = args.snapshot_entries.max(1);
    config.retained_log_entries = args.retained_entries;
    config.snapshot_interval_bytes = args.snapshot_bytes.max(1);
    config.write_timeout = Duration::from_millis(args.write_timeout.max(1) as u64);
    config.leader_reads = args.leader_reads;
    config.block_duration = args.block_duration;
    config.housekeeping_interval = Duration::from_millis(args.housekeeping_interval.max(10) as u64);
    config.block_labels = args.labels.iter().cloned().collect();
    let mut registry = prometheus_client::registry::Registry::default();
    if let Some(path) = &args.objstore_config_file {
        let bucket = hearth_objstore::Bucket::from_config_file(path)
            .with_context(|| format!("load the object storage configuration {}", path.display()))?;
        bucket.register_metrics(&mut registry);
        config.bucket = Some(bucket);
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create {}", args.data_dir.display()))?;

    let shutdown = CancellationToken::new();
    crate::standalone::cancel_on_signal(&shutdown);

    let ingester = Ingester::start(config, shutdown.clone())
        .await
        .context("start the shard replicas")?;

    let mut external: Vec<(String, String)> = args.labels.clone();
    external.push((args.replica_label.clone(), format!("ingester-{node_id}")));
    let external = Labels::new(external.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let info = {
        let external = external.clone();
        let ingester = ingester.clone();
        Arc::new(move || hearth_storeapi::StoreInfo {
            component: "receive".to_string(),
            label_sets: tenant_label_sets(&ingester, &external),
            min_time: i64::MIN,
            max_time: i64::MAX,
            supports_without_replica_labels: true,
        })
    };
    let store = hearth_storeapi::StoreServer::new(ingester.clone(), external, info);
    let grpc_listener = tokio::net::TcpListener::bind(args.grpc_address)
        .await
        .with_context(|| format!("listen on {}", args.grpc_address))?;
    tracing::info!(address = %grpc_listener.local_addr()?, "gRPC (raft, forwarding, StoreAPI) listening");
    let routes = ingester.add_grpc_services(store.into_routes());
    let grpc_shutdown = shutdown.clone();
    let grpc = tokio::spawn(async move {
        let incoming =
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async move { grpc_shutdown.cancelled().await })
            .await
    });

    let api_metrics = Arc::new(ApiMetrics::new(&mut registry));
    let status_metrics = StatusMetrics::register(&mut registry, &ingester);
    let ready = Arc::new(AtomicBool::new(false));
    {
        // Ready once every local shard knows its leader; the raft state is
        // exported every second.
        let ready = ready.clone();
        let ingester = ingester.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            while !shutdown.is_cancelled() {
                tick.tick().await;
                if !ready.load(Ordering::Acquire) && ingester.ready() {
                    tracing::info!("every shard replica knows its leader; ready");
                    ready.store(true, Ordering::Release);
                }
                status_metrics.update(&ingester.status());
            }
        });
    }
    let state = ApiState {
        component: "Hearth ingester",
        queryable: ingester.clone(),
        scoped: Some(Arc::new(TenantScope(ingester.clone()))),
        engine_options: hearth_promql::EngineOptions::default(),
        appendable: Some(Arc::new(IngestAppendable(ingester.clone()))),
        ready,
        metrics: api_metrics,
        metadata: Arc::default(),
        status: Arc::new(hearth_api::status::StatusInfo {
            flags: BTreeMap::new(),
            config: Default::default(),
            storage_retention: String::new(),
            start_time: started,
            tsdb: None,
        }),
        reloader: None,
        targets: None,
        registry: Arc::new(registry),
        clock: hearth_api::system_clock(),
    };
    let status_source = ingester.clone();
    let page_source = ingester.clone();
    let members = ingester.clone();
    let app = hearth_api::router(state)
        .route(
            "/api/v1/ingest/status",
            get(move || {
                let ingester = status_source.clone();
                async move {
                    axum::Json(serde_json::json!({
                        "status": "success",
                        "data": status_json(&ingester),
                    }))
                }
            }),
        )
        .route(
            "/api/v1/ingest/shards/{shard}/replicas/{ingester}",
            axum::routing::post({
                let ingester = members.clone();
                move |path| change_membership(ingester.clone(), path, true)
            })
            .delete(move |path| change_membership(members.clone(), path, false)),
        )
        .route(
            "/ingest",
            get(move || {
                let ingester = page_source.clone();
                async move { axum::response::Html(status_page(&ingester)) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(args.http_address)
        .await
        .with_context(|| format!("listen on {}", args.http_address))?;
    tracing::info!(address = %listener.local_addr()?, "HTTP listening");
    let http_shutdown = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
        .await
        .context("serve HTTP")?;
    shutdown.cancel();
    if let Err(e) = ingester.stopped().await {
        tracing::error!(error = %e, "a shard replica stopped with an error");
    }
    grpc.await?.context("serve gRPC")?;
    Ok(())
}

/// `POST` (add) or `DELETE` (remove) `/api/v1/ingest/shards/{shard}/replicas/{ingester}`
/// on any ingester: adds `ingester`'s replica to the shard (it joins through
/// the leader and catches up) or removes it (through the leader; the
/// removed ingester deletes its copy). Moving a replica is an add, then a
/// remove.
async fn change_membership(
    ingester: Arc<Ingester>,
    axum::extract::Path((shard, target)): axum::extract::Path<(u64, u64)>,
    add: bool,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let error = |status: StatusCode, kind: &str, message: String| {
        (
            status,
            axum::Json(serde_json::json!({
                "status": "error", "errorType": kind, "error": message,
            })),
        )
            .into_response()
    };
    if shard >= ingester.config().shards {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("there is no shard {shard}"),
        );
    }
    if !ingester.config().peers.contains_key(&target) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_data",
            format!("ingester {target} is not among the peers"),
        );
    }
    let outcome = if add {
        ingester.add_replica_on(shard, target).await
    } else {
        ingester
            .remove_replica_of(shard, target, Duration::from_secs(15))
            .await
    };
    match outcome {
        Ok(()) => {
            axum::Json(serde_json::json!({"status": "success", "data": null})).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e),
    }
}

/// One label set per tenant held here (the tenant label beside the
/// external labels), as Thanos's receiver announces its tenants.
fn tenant_label_sets(ingester: &Ingester, external: &Labels) -> Vec<Labels> {
    let tenants = ingester.tenants();
    tenants
        .iter()
        .map(|t| {
            let mut pairs: Vec<(&str, &str)> = external.iter().map(|l| (l.name, l.value)).collect();
            pairs.push((TENANT_LABEL, t.as_str()));
            Labels::new(pairs)
        })
        .collect()
}

/// Reads restricted to the tenant a request names (its `X-Scope-OrgID` /
/// `THANOS-TENANT` header); without one, every tenant's series.
struct TenantScope(Arc<Ingester>);

impl hearth_api::ScopedQueryable for TenantScope {
    fn for_request(
        &self,
        params: &hearth_api::params::Params,
    ) -> hearth_api::ApiResult<Arc<dyn hearth_storage_api::Queryable>> {
        match params.tenant() {
            None => Ok(self.0.clone()),
            Some(t) => {
                check_tenant(t).map_err(hearth_api::ApiError::bad_data)?;
                Ok(Arc::new(hearth_api::tenancy::TenantQueryable::new(
                    self.0.clone(),
                    TENANT_LABEL,
                    t,
                )))
            }
        }
    }
}

/// Remote write into the cluster, for the tenant the request names.
struct IngestAppendable(Arc<Ingester>);

#[async_trait]
impl Appendable for IngestAppendable {
    async fn append(&self, batch: Vec<SeriesSamples>) -> hearth_storage_api::Result<AppendStats> {
        self.append_for_tenant(None, batch).await
    }

    async fn append_for_tenant(
        &self,
        tenant: Option<&str>,
        batch: Vec<SeriesSamples>,
    ) -> hearth_storage_api::Result<AppendStats> {
        let tenant = tenant.unwrap_or(DEFAULT_TENANT);
        check_tenant(tenant).map_err(StorageError::BadRequest)?;
        self.0.write(tenant, batch).await.map_err(|e| match e {
            WriteError::Rejected(m) | WriteError::TooLarge(m) => StorageError::BadRequest(m),
            WriteError::Unavailable(m) => StorageError::Unavailable(m),
        })
    }
}

/// Tenant names as Thanos accepts them: they become label values and
/// must be safe as directory names.
fn check_tenant(t: &str) -> Result<(), String> {
    let valid = !t.is_empty()
        && t.len() <= 128
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid tenant {t:?}: 1 to 128 characters of A-Z a-z 0-9 _ - ."
        ))
    }
}

fn role_name(s: &NodeStatus) -> &'static str {
    use hearth_ingest::node::Role;
    match s.role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre_candidate",
    }
}

fn status_json(ingester: &Ingester) -> serde_json::Value {
    let shards: Vec<serde_json::Value> = ingester
        .status()
        .iter()
        .map(|s| {
            let replicas: Vec<serde_json::Value> = s
                .match_index
                .iter()
                .map(|(replica, m)| {
                    serde_json::json!({
                        "node": ingester_of(*replica),
                        "replica_id": replica,
                        "match": m,
                        "lag": s.last_index.saturating_sub(*m),
                    })
                })
                .collect();
            serde_json::json!({
                "shard": s.group_id,
                "replica_id": s.node_id,
                "role": role_name(s),
                "leader": s.leader_id.map_or(0, ingester_of),
                "term": s.term,
                "commit": s.commit,
                "applied": s.applied,
                "first_index": s.first_index,
                "last_index": s.last_index,
                "snapshot_index": s.snapshot_index,
                "voters": s.voters.iter().map(|v| ingester_of(*v)).collect::<Vec<_>>(),
                "voter_replica_ids": s.voters,
                "replicas": replicas,
            })
        })
        .collect();
    serde_json::json!({
        "node_id": ingester.config().node_id,
        "shards": shards,
    })
}

/// The status page: one table row per local shard replica.
fn status_page(ingester: &Ingester) -> String {
    let mut rows = String::new();
    for s in ingester.status() {
        let lag: Vec<String> = s
            .match_index
            .iter()
            .map(|(n, m)| format!("{}: {}", ingester_of(*n), s.last_index.saturating_sub(*m)))
            .collect();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>\n",
            s.group_id,
            role_name(&s),
            s.leader_id
                .map(|l| ingester_of(l).to_string())
                .unwrap_or_else(|| "none".into()),
            s.term,
            s.commit,
            s.applied,
            s.snapshot_index,
            s.voters.iter().map(|v| ingester_of(*v)).collect::<Vec<_>>(),
            lag.join(", "),
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Hearth ingester {id}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head>\
         <body><h1>Hearth ingester {id}</h1>\
         <p>Shard replicas on this ingester (<a href=\"/api/v1/ingest/status\">JSON</a>).</p>\
         <table><tr><th>shard</th><th>role</th><th>leader</th><th>term</th><th>commit</th>\
         <th>applied</th><th>snapshot</th><th>voters</th><th>replica lag (entries)</th></tr>\n{rows}</table>\
         </body></html>\n",
        id = ingester.config().node_id
    )
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ShardLabel {
    shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ReplicaLabel {
    shard: String,
    replica: String,
}

/// The raft state of the local replicas as gauges.
struct StatusMetrics {
    leader: Family<ShardLabel, Gauge>,
    term: Family<ShardLabel, Gauge>,
    commit: Family<ShardLabel, Gauge>,
    applied: Family<ShardLabel, Gauge>,
    snapshot: Family<ShardLabel, Gauge>,
    lag: Family<ReplicaLabel, Gauge>,
}

impl StatusMetrics {
    fn register(registry: &mut prometheus_client::registry::Registry, ingester: &Ingester) -> Self {
        let m = Self {
            leader: Family::default(),
            term: Family::default(),
            commit: Family::default(),
            applied: Family::default(),
            snapshot: Family::default(),
            lag: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("hearth_ingest");
        r.register(
            "shard_is_leader",
            "1 when this ingester leads the shard",
            m.leader.clone(),
        );
        r.register(
            "shard_term",
            "Raft term of the shard replica",
            m.term.clone(),
        );
        r.register(
            "shard_commit_index",
            "Highest log index known committed",
            m.commit.clone(),
        );
        r.register(
            "shard_applied_index",
            "Highest log index applied to the heads",
            m.applied.clone(),
        );
        r.register(
            "shard_snapshot_index",
            "Log index of the last snapshot (the log is compacted up to it)",
            m.snapshot.clone(),
        );
        r.register(
            "shard_replica_lag_entries",
            "On the leader: entries a replica's log is behind the leader's",
            m.lag.clone(),
        );
        let metrics = &ingester.metrics;
        r.register(
            "forwarded_writes",
            "Shard parts of writes forwarded to another ingester",
            metrics.forwarded.clone(),
        );
        r.register(
            "forward_failures",
            "Forwarded shard parts that got no answer",
            metrics.forward_failures.clone(),
        );
        r.register(
            "proposals",
            "Shard parts of writes proposed on a local leader",
            metrics.proposals.clone(),
        );
        r.register(
            "proposal_failures",
            "Proposals not known to be committed (timeout, leader change)",
            metrics.proposal_failures.clone(),
        );
        m
    }

    fn update(&self, status: &[NodeStatus]) {
        for s in status {
            let shard = ShardLabel {
                shard: s.group_id.to_string(),
            };
            let is_leader = s.role == hearth_ingest::node::Role::Leader;
            self.leader.get_or_create(&shard).set(i64::from(is_leader));
            self.term.get_or_create(&shard).set(s.term as i64);
            self.commit.get_or_create(&shard).set(s.commit as i64);
            self.applied.get_or_create(&shard).set(s.applied as i64);
            self.snapshot
                .get_or_create(&shard)
                .set(s.snapshot_index as i64);
            for (replica, m) in &s.match_index {
                self.lag
                    .get_or_create(&ReplicaLabel {
                        shard: shard.shard.clone(),
                        replica: ingester_of(*replica).to_string(),
                    })
                    .set(s.last_index.saturating_sub(*m) as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_and_labels_parse() {
        assert_eq!(
            parse_peer("2=ingest-2:10901"),
            Ok((2, "ingest-2:10901".to_string()))
        );
        assert!(parse_peer("0=a:1").is_err());
        assert!(parse_peer("x=a:1").is_err());
        assert!(parse_peer("a:1").is_err());
        assert_eq!(
            parse_label("cluster=eu"),
            Ok(("cluster".to_string(), "eu".to_string()))
        );
        assert!(parse_label("=eu").is_err());
        assert!(parse_label("eu").is_err());
    }

    #[test]
    fn node_ids_come_from_pod_names() {
        assert_eq!(node_id_of_host("hearth-ingest-0").unwrap(), 1);
        assert_eq!(node_id_of_host("ingester-12").unwrap(), 13);
        assert!(node_id_of_host("ingester").is_err());
        assert!(node_id_of_host("ingester-x").is_err());
    }

    #[test]
    fn tenants_are_checked() {
        assert!(check_tenant("team-a.prod_1").is_ok());
        assert!(check_tenant("").is_err());
        assert!(check_tenant("..").is_err());
        assert!(check_tenant("a/b").is_err());
        assert!(check_tenant(&"x".repeat(129)).is_err());
    }
}
