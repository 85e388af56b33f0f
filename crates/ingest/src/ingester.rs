//! One ingester: the replicas of the shards placed on it, the write path
//! that spreads a remote write over shards and hands each part to its
//! shard's leader, and the read side over the local replicas.
//!
//! - **Placement**: series go to shard `stable_hash(labels) % shards`;
//!   shard `s` has replicas on the `replication_factor` ingesters that
//!   follow position `s` in the sorted list of ingester ids (wrapping).
//! - **Replica ids**: a replica's raft id is its ingester's id shifted left
//!   16 bits, plus a generation. A new cluster bootstraps every replica
//!   with generation 0. An ingester whose shard directory is new while
//!   the shard has a history (a replaced or wiped disk, or a late first
//!   start) picks a random generation and asks the shard's leader to
//!   swap its old replica for the new one (`Join`); raft must never see a
//!   replica that forgot what it voted for or acknowledged under its old
//!   id. The id and the initial voters are kept in `shard-N.id`.
//! - **Writes** ([`Ingester::write`]): the batch is split by shard; each
//!   part becomes one [`Command`](crate::proto::ingest::Command) that is
//!   proposed on this ingester when it leads the shard, or forwarded
//!   (`hearth.ingest.Ingest/Forward`) to the ingester it believes leads it,
//!   following `NOT_LEADER` hints and trying the shard's other replicas
//!   until `write_timeout`. The write succeeds only when every part is
//!   committed (fsynced by a quorum) and applied by its leader; a part
//!   refused by the shard (out of order, ...) fails the write as the
//!   client's fault; a part whose fate is unknown (no quorum, leader lost,
//!   time out) fails it as unavailable, for the client to retry — a retry
//!   re-proposes the same samples, which every replica drops as duplicates.
//! - **Reads**: the local replicas' heads, every series with the tenant
//!   label; with `leader_reads`, only shards this ingester leads (a write
//!   acknowledged by a leader is then visible to the next read there).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use hearth_model::{Labels, MatchOp, Matcher, Timestamp};
use hearth_storage_api::{
    AppendStats, Error as StorageError, LabelsResult, Queryable, SelectHints, Series,
    SeriesSamples, SeriesSet,
};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::error::{Error, ProposeError, Result};
use crate::node::{NodeConfig, NodeHandle, NodeStatus, RaftNode, Role};
use crate::proto::ingest::forward_response::Outcome;
use crate::proto::ingest::ingest_client::IngestClient;
use crate::proto::ingest::ingest_server::{Ingest, IngestServer};
use crate::proto::ingest::join_response::Outcome as JoinOutcome;
use crate::proto::ingest::membership_response::Outcome as MembershipOutcome;
use crate::proto::ingest::{
    AddReplicaRequest, ForwardRequest, ForwardResponse, JoinRequest, JoinResponse,
    MembershipResponse, RemoveReplicaRequest,
};
use crate::shard::{ShardData, ShardStateMachine};
use crate::transport::grpc::{peer_endpoint, GrpcTransport, GrpcTransportConfig, RaftService};
use crate::transport::Router;
use crate::wire::encode_write_command;

/// The tenant of writes without a tenant header (Thanos's default).
pub const DEFAULT_TENANT: &str = "default-tenant";
/// Longest wait for one forwarded attempt (an election takes 1-2 s with the
/// default timing).
const FORWARD_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The label every series read from an ingester carries (Thanos's name).
pub const TENANT_LABEL: &str = "tenant_id";

/// How an ingester runs.
#[derive(Debug, Clone)]
pub struct IngesterConfig {
    /// This ingester's id; a key of `peers`.
    pub node_id: u64,
    /// Every ingester of the cluster: id → gRPC address.
    pub peers: BTreeMap<u64, String>,
    pub shards: u64,
    pub replication_factor: usize,
    pub data_dir: PathBuf,
    pub tick_interval: Duration,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// Entries applied between snapshots (and log compactions).
    pub snapshot_interval_entries: u64,
    /// Bytes of applied entries between snapshots (the log keeps live
    /// entries in memory).
    pub snapshot_interval_bytes: u64,
    /// Entries kept behind a snapshot for replicas that lag by less.
    pub retained_log_entries: u64,
    /// How long a write may wait for its shards before it fails as
    /// unavailable.
    pub write_timeout: Duration,
    /// Largest encoded part of a write for one shard.
    pub max_shard_write_bytes: usize,
    /// Reads see only the shards this ingester leads.
    pub leader_reads: bool,
    /// Heads cut a block once they span 1.5 times this (ms), as Prometheus.
    pub block_duration: i64,
    /// Where leaders upload the blocks; `None`: blocks stay on the replicas.
    pub bucket: Option<hearth_objstore::Bucket>,
    /// External labels of uploaded blocks (the tenant label is added).
    pub block_labels: BTreeMap<String, String>,
    /// How often leaders look for blocks to cut and upload.
    pub housekeeping_interval: Duration,
}

impl IngesterConfig {
    /// Defaults for ingester `node_id` of `peers`: 100 ms ticks, elections
    /// after 1-2 s, 5 s write timeout, RF 3 (or fewer ingesters).
    pub fn new(node_id: u64, peers: BTreeMap<u64, String>, data_dir: PathBuf) -> Self {
        Self {
            node_id,
            replication_factor: peers.len().min(3),
            peers,
            shards: 4,
            data_dir,
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 2,
            snapshot_interval_entries: 10_000,
            snapshot_interval_bytes: 64 << 20,
            retained_log_entries: 1_000,
            write_timeout: Duration::from_secs(5),
            max_shard_write_bytes: 32 << 20,
            leader_reads: false,
            block_duration: crate::shard::DEFAULT_BLOCK_DURATION_MS,
            bucket: None,
            block_labels: BTreeMap::new(),
            housekeeping_interval: Duration::from_secs(10),
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::InvalidArgument(m));
        if !self.peers.contains_key(&self.node_id) {
            return invalid(format!(
                "ingester id {} is not among the peers {:?}",
                self.node_id,
                self.peers.keys().collect::<Vec<_>>()
            ));
        }
        if self.peers.contains_key(&0) {
            return invalid("ingester id 0 is reserved".into());
        }
        if let Some(id) = self
            .peers
            .keys()
            .find(|id| **id >= 1 << (64 - GENERATION_BITS))
        {
            return invalid(format!("ingester id {id} is too large (at most 2^48 - 1)"));
        }
        if self.block_duration < 1000 {
            return invalid("the block duration must be at least 1s".into());
        }
        if self.shards == 0 {
            return invalid("the number of shards must be positive".into());
        }
        if self.replication_factor == 0 || self.replication_factor > self.peers.len() {
            return invalid(format!(
                "replication factor {} needs between 1 and {} ingesters",
                self.replication_factor,
                self.peers.len()
            ));
        }
        Ok(())
    }
}

/// The ingesters holding shard `shard`: `rf` consecutive ids from position
/// `shard` of the sorted ids, wrapping.
pub fn placement(shard: u64, nodes: &[u64], rf: usize) -> Vec<u64> {
    let mut sorted = nodes.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    (0..rf.min(n))
        .map(|k| sorted[(shard as usize + k) % n])
        .collect()
}

/// The shard of a series.
pub fn shard_of(labels: &Labels, shards: u64) -> u64 {
    labels.stable_hash() % shards
}

/// A write's failure, as the remote-write handler reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The client's fault: 400, do not retry.
    #[error("{0}")]
    Rejected(String),
    /// Not known to be stored: 503, retry.
    #[error("{0}")]
    Unavailable(String),
    /// Too large to propose: 413.
    #[error("{0}")]
    TooLarge(String),
}

/// Bits of a replica id below the ingester id: the generation.
const GENERATION_BITS: u32 = 16;

/// The raft id of generation `generation` of `ingester`'s replica.
pub fn replica_id(ingester: u64, generation: u64) -> u64 {
    (ingester << GENERATION_BITS) | (generation & 0xffff)
}

/// The ingester a replica id belongs to.
pub fn ingester_of(replica: u64) -> u64 {
    replica >> GENERATION_BITS
}

/// The task running one shard replica's raft node.
pub type NodeTask = JoinHandle<Result<()>>;

/// One shard replica on this ingester.
struct Replica {
    replica_id: u64,
    handle: NodeHandle,
    data: ShardData,
    /// Stops this replica's raft node (when it leaves the shard).
    stop: CancellationToken,
}

/// A running ingester; see the module documentation.
pub struct Ingester {
    config: IngesterConfig,
    replicas: parking_lot::RwLock<BTreeMap<u64, Arc<Replica>>>,
    router: Router,
    transport: Arc<GrpcTransport>,
    tasks: Mutex<Vec<NodeTask>>,
    shutdown: CancellationToken,
    clients: Mutex<HashMap<u64, IngestClient<Channel>>>,
    /// The leader last seen per shard, to forward to without asking.
    leaders: Mutex<HashMap<u64, u64>>,
    /// Joins change the configuration one at a time.
    joins: tokio::sync::Mutex<()>,
    pub metrics: IngestMetrics,
}

/// Counters of the write path.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub forwarded: prometheus_client::metrics::counter::Counter,
    pub forward_failures: prometheus_client::metrics::counter::Counter,
    pub proposals: prometheus_client::metrics::counter::Counter,
    pub proposal_failures: prometheus_client::metrics::counter::Counter,
}

impl Ingester {
    /// Opens the replicas of the shards this ingester holds (those placed
    /// here that it did not leave, and those it was added to), bootstrapping
    /// or joining those whose directory is new (see the module
    /// documentation), and starts their raft nodes. The gRPC services
    /// ([`Ingester::add_grpc_services`]) must be served by the caller for
    /// peers to reach them; [`Ingester::stopped`] waits for the tasks after
    /// `shutdown`.
    pub async fn start(config: IngesterConfig, shutdown: CancellationToken) -> Result<Arc<Self>> {
        config.validate()?;
        let peers = config.peers.clone();
        let resolver: crate::transport::grpc::Resolver =
            Arc::new(move |replica| peers.get(&ingester_of(replica)).cloned());
        let transport =
            Arc::new(GrpcTransport::new(GrpcTransportConfig::default()).with_resolver(resolver));
        std::fs::create_dir_all(&config.data_dir).map_err(Error::io("create", &config.data_dir))?;
        let ingester = Arc::new(Self {
            config,
            replicas: parking_lot::RwLock::new(BTreeMap::new()),
            router: Router::new(),
            transport,
            tasks: Mutex::new(Vec::new()),
            shutdown: shutdown.clone(),
            clients: Mutex::new(HashMap::new()),
            leaders: Mutex::new(HashMap::new()),
            joins: tokio::sync::Mutex::new(()),
            metrics: IngestMetrics::default(),
        });
        let config = &ingester.config;
        let nodes: Vec<u64> = config.peers.keys().copied().collect();
        for shard in 0..config.shards {
            let voters = placement(shard, &nodes, config.replication_factor);
            let placed =
                voters.contains(&config.node_id) && !left_marker(&config.data_dir, shard).exists();
            let identity = match ReplicaIdentity::read(&config.data_dir, shard)? {
                Some(identity) => identity,
                None if placed => {
                    let identity = ingester.discover(shard, Some(&voters)).await?;
                    identity.write(&config.data_dir, shard)?;
                    identity
                }
                None => continue,
            };
            ingester.open_replica(shard, identity)?;
        }
        let housekeeping = ingester.clone();
        ingester.tasks.lock().push(tokio::spawn(async move {
            housekeeping.housekeeping(shutdown).await;
            Ok(())
        }));
        Ok(ingester)
    }

    /// Starts the raft node of this ingester's replica of `shard`.
    fn open_replica(&self, shard: u64, identity: ReplicaIdentity) -> Result<()> {
        let config = &self.config;
        tracing::info!(shard, replica = identity.replica_id, "shard replica");
        let mut node_config = NodeConfig::new(shard, identity.replica_id);
        node_config.tick_interval = config.tick_interval;
        node_config.election_tick = config.election_tick;
        node_config.heartbeat_tick = config.heartbeat_tick;
        node_config.snapshot_interval_entries = config.snapshot_interval_entries;
        node_config.retained_log_entries = config.retained_log_entries;
        node_config.snapshot_interval_bytes = config.snapshot_interval_bytes;
        node_config.max_proposal_bytes = config.max_shard_write_bytes;
        node_config.initial_voters = identity.voters;
        let data = ShardData::new(config.block_duration);
        let blocks_dir = blocks_dir(&config.data_dir, shard);
        let state_machine = ShardStateMachine::new(shard, data.clone(), blocks_dir.clone())
            .map_err(Error::io("create", blocks_dir))?;
        let (node, handle) = RaftNode::open(
            node_config,
            log_dir(&config.data_dir, shard),
            state_machine,
            self.transport.clone(),
            self.router.clone(),
        )?;
        let stop = self.shutdown.child_token();
        self.tasks.lock().push(tokio::spawn(node.run(stop.clone())));
        self.replicas.write().insert(
            shard,
            Arc::new(Replica {
                replica_id: identity.replica_id,
                handle,
                data,
                stop,
            }),
        );
        Ok(())
    }

    /// Waits for every raft node and the housekeeping task to end (after
    /// the shutdown token was cancelled); the first error is returned.
    pub async fn stopped(&self) -> Result<()> {
        let tasks: Vec<NodeTask> = std::mem::take(&mut *self.tasks.lock());
        let mut first = Ok(());
        for task in tasks {
            let outcome = task.await.unwrap_or_else(|e| {
                Err(Error::StateMachine(format!("a raft node task failed: {e}")))
            });
            if first.is_ok() {
                first = outcome;
            }
        }
        first
    }

    fn replica(&self, shard: u64) -> Option<Arc<Replica>> {
        self.replicas.read().get(&shard).cloned()
    }

    fn replica_list(&self) -> Vec<(u64, Arc<Replica>)> {
        self.replicas
            .read()
            .iter()
            .map(|(s, r)| (*s, r.clone()))
            .collect()
    }

    pub fn config(&self) -> &IngesterConfig {
        &self.config
    }

    /// `routes` (the StoreAPI's) with the raft transport's and the
    /// forwarding service added, for the ingester's gRPC server.
    pub fn add_grpc_services(
        self: &Arc<Self>,
        routes: tonic::service::Routes,
    ) -> tonic::service::Routes {
        let max = 256 << 20;
        routes
            .add_service(RaftService::new(self.router.clone()).into_server(max))
            .add_service(
                IngestServer::new(ForwardService(self.clone()))
                    .max_decoding_message_size(self.config.max_shard_write_bytes + 1024),
            )
    }

    /// The status of every local replica, by shard.
    pub fn status(&self) -> Vec<NodeStatus> {
        self.replica_list()
            .iter()
            .map(|(_, r)| r.handle.status())
            .collect()
    }

    /// Whether every local replica knows a leader.
    pub fn ready(&self) -> bool {
        self.replica_list()
            .iter()
            .all(|(_, r)| r.handle.leadership().1.is_some())
    }

    /// Writes `batch` for `tenant`; see the module documentation.
    pub async fn write(
        &self,
        tenant: &str,
        batch: Vec<SeriesSamples>,
    ) -> Result<AppendStats, WriteError> {
        let mut by_shard: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, s) in batch.iter().enumerate() {
            if !s.samples.is_empty() {
                by_shard
                    .entry(shard_of(&s.labels, self.config.shards))
                    .or_default()
                    .push(i);
            }
        }
        let deadline = Instant::now() + self.config.write_timeout;
        let parts = by_shard.into_iter().map(|(shard, indexes)| {
            let series: Vec<_> = indexes
                .iter()
                .map(|&i| (&batch[i].labels, batch[i].samples.as_slice()))
                .collect();
            let samples = series.iter().map(|(_, s)| s.len()).sum();
            let command = Bytes::from(encode_write_command(tenant, &series));
            self.write_shard(shard, command, samples, deadline)
        });
        let outcomes = futures::future::join_all(parts).await;
        let mut stats = AppendStats::default();
        let (mut unavailable, mut refused) = (None, None);
        for outcome in outcomes {
            match outcome {
                Ok(s) => {
                    stats.samples_appended += s.samples_appended;
                    stats.duplicates_dropped += s.duplicates_dropped;
                    stats.series_created += s.series_created;
                }
                Err(e @ WriteError::Unavailable(_)) => unavailable = Some(e),
                Err(e) => refused = Some(e),
            }
        }
        // A part that may still get in wins over a refused one: the sender
        // retries, the good part is stored, and the retry's answer is the
        // refusal (a sender drops a request answered 4xx).
        match unavailable.or(refused) {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }

    /// Gets one shard's part committed, proposing here or forwarding.
    async fn write_shard(
        &self,
        shard: u64,
        command: Bytes,
        samples: usize,
        deadline: Instant,
    ) -> Result<AppendStats, WriteError> {
        if command.len() > self.config.max_shard_write_bytes {
            return Err(WriteError::TooLarge(format!(
                "the write's part for shard {shard} is {} bytes, above the limit of {}",
                command.len(),
                self.config.max_shard_write_bytes
            )));
        }
        let nodes: Vec<u64> = self.config.peers.keys().copied().collect();
        let replicas = placement(shard, &nodes, self.config.replication_factor);
        let mut attempt = 0usize;
        let mut last_error = String::from("no attempt");
        let mut backoff = Duration::from_millis(20);
        // Leader hints followed at once in a row (replicas with stale views
        // may point at each other: then the attempts back off too).
        let mut hops = 0;
        // The leader named by the last NOT_LEADER answer: fresher than any
        // other view, tried next.
        let mut hint = None;
        // Ingesters whose attempt failed (no answer in time, no quorum),
        // with when: not tried again for FORWARD_ATTEMPT_TIMEOUT while
        // another is left, so that a write does not wait on a dead leader
        // twice while the shard elects a new one.
        let mut failed: HashMap<u64, Instant> = HashMap::new();
        while Instant::now() < deadline {
            failed.retain(|_, at| at.elapsed() < FORWARD_ATTEMPT_TIMEOUT);
            let target = self.pick_target(shard, &replicas, attempt, hint.take(), &failed);
            attempt += 1;
            let answer = if target == self.config.node_id {
                self.propose_local(shard, command.clone(), samples, deadline)
                    .await
            } else {
                self.forward(target, shard, command.clone(), samples, deadline)
                    .await
            };
            match answer.outcome() {
                Outcome::Ok => {
                    self.leaders.lock().insert(shard, target);
                    return Ok(AppendStats {
                        samples_appended: answer.samples_appended as usize,
                        duplicates_dropped: answer.duplicates_dropped as usize,
                        series_created: answer.series_created as usize,
                    });
                }
                Outcome::Rejected => return Err(WriteError::Rejected(answer.message)),
                Outcome::TooLarge => return Err(WriteError::TooLarge(answer.message)),
                Outcome::NotLeader => {
                    if answer.leader != 0 && answer.leader != target {
                        self.leaders.lock().insert(shard, answer.leader);
                        hint = Some(answer.leader);
                        last_error =
                            format!("ingester {target} is not the leader of shard {shard}");
                        hops += 1;
                        if hops < 3 {
                            continue;
                        }
                    }
                    self.leaders.lock().remove(&shard);
                    last_error = format!("shard {shard} has no known leader");
                }
                Outcome::Unavailable => {
                    self.leaders.lock().remove(&shard);
                    failed.insert(target, Instant::now());
                    last_error = answer.message;
                }
            }
            hops = 0;
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
        Err(WriteError::Unavailable(format!(
            "shard {shard} did not commit the write within {:?}: {last_error}",
            self.config.write_timeout
        )))
    }

    /// The ingester to send the next attempt to: the leader the last
    /// answer named (`hint`), else the local replica's leader (raft keeps
    /// it current: it moves on from a dead leader as soon as the shard has
    /// elected another), else the leader last written through, else the
    /// replicas in turn. None of them that `failed` while another is left.
    fn pick_target(
        &self,
        shard: u64,
        replicas: &[u64],
        attempt: usize,
        hint: Option<u64>,
        failed: &HashMap<u64, Instant>,
    ) -> u64 {
        let usable = |node: &u64| !failed.contains_key(node);
        let local = self
            .replica(shard)
            .and_then(|r| r.handle.leadership().1.map(ingester_of));
        let cached = self.leaders.lock().get(&shard).copied();
        if let Some(leader) = [hint, local, cached].into_iter().flatten().find(usable) {
            return leader;
        }
        // The placement first, then every other ingester: replicas may have
        // moved away from the placement.
        let others = self.config.peers.keys().filter(|p| !replicas.contains(p));
        let all: Vec<u64> = replicas.iter().copied().chain(others.copied()).collect();
        let candidates: Vec<u64> = all.iter().copied().filter(usable).collect();
        let candidates = if candidates.is_empty() {
            all
        } else {
            candidates
        };
        candidates[attempt % candidates.len()]
    }

    /// Proposes on the local replica of `shard` if it leads.
    async fn propose_local(
        &self,
        shard: u64,
        command: Bytes,
        samples: usize,
        deadline: Instant,
    ) -> ForwardResponse {
        let Some(replica) = self.replica(shard) else {
            return answer(Outcome::NotLeader, "no replica of this shard here", 0);
        };
        let (role, leader_id) = replica.handle.leadership();
        if role != Role::Leader {
            return answer(
                Outcome::NotLeader,
                "not the leader",
                leader_id.map_or(0, ingester_of),
            );
        }
        self.metrics.proposals.inc();
        let timeout = deadline.saturating_duration_since(Instant::now());
        let outcome = tokio::time::timeout(timeout, replica.handle.propose(command.to_vec())).await;
        let response = match outcome {
            Ok(Ok(_)) => ForwardResponse {
                outcome: Outcome::Ok as i32,
                samples_appended: samples as u64,
                ..Default::default()
            },
            Ok(Err(ProposeError::Rejected(m))) => answer(Outcome::Rejected, &m, 0),
            Ok(Err(ProposeError::NotLeader { leader })) => answer(
                Outcome::NotLeader,
                "not the leader",
                leader.map_or(0, ingester_of),
            ),
            Ok(Err(e @ ProposeError::TooLarge { .. })) => {
                answer(Outcome::TooLarge, &e.to_string(), 0)
            }
            Ok(Err(e)) => answer(Outcome::Unavailable, &format!("shard {shard}: {e}"), 0),
            Err(_) => answer(
                Outcome::Unavailable,
                &format!("shard {shard}: no quorum committed the write in time"),
                0,
            ),
        };
        if response.outcome() != Outcome::Ok && response.outcome() != Outcome::Rejected {
            self.metrics.proposal_failures.inc();
        }
        response
    }

    async fn forward(
        &self,
        target: u64,
        shard: u64,
        command: Bytes,
        samples: usize,
        deadline: Instant,
    ) -> ForwardResponse {
        let Some(mut client) = self.client(target) else {
            return answer(
                Outcome::Unavailable,
                &format!("unknown ingester {target}"),
                0,
            );
        };
        self.metrics.forwarded.inc();
        let mut request = Request::new(ForwardRequest {
            shard,
            command,
            samples: samples as u64,
        });
        // A leader that stopped answering (frozen, cut off) must not hold
        // the write for the whole timeout: after a bounded attempt the
        // next one goes to whoever leads by then.
        let left = deadline.saturating_duration_since(Instant::now());
        request.set_timeout(left.min(FORWARD_ATTEMPT_TIMEOUT));
        match client.forward(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                self.metrics.forward_failures.inc();
                answer(
                    Outcome::Unavailable,
                    &format!("forward to ingester {target}: {}", status.message()),
                    0,
                )
            }
        }
    }

    fn client(&self, node: u64) -> Option<IngestClient<Channel>> {
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&node) {
            return Some(c.clone());
        }
        let endpoint = peer_endpoint(self.config.peers.get(&node)?)
            .ok()?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        let client = IngestClient::new(endpoint.connect_lazy())
            .max_encoding_message_size(self.config.max_shard_write_bytes + 1024);
        clients.insert(node, client.clone());
        Some(client)
    }

    /// Tenants with data in a local replica, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .replica_list()
            .iter()
            .flat_map(|(_, r)| r.data.heads().into_iter().map(|(t, _)| t))
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// The local replicas' data that reads see.
    fn readable(&self) -> Vec<ShardData> {
        self.replica_list()
            .into_iter()
            .filter(|(_, r)| !self.config.leader_reads || r.handle.leadership().0 == Role::Leader)
            .map(|(_, r)| r.data.clone())
            .collect()
    }

    /// Until `shutdown`: on every local shard this ingester leads, cuts
    /// blocks from heads that span 1.5 block durations and uploads the
    /// blocks not uploaded yet, recording each upload through raft; every
    /// replica compacts its log once an upload was applied.
    async fn housekeeping(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.housekeeping_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (shard, replica) in self.replica_list() {
                let status = replica.handle.status();
                if !status.voters.is_empty() && !status.voters.contains(&replica.replica_id) {
                    self.leave(shard, &replica).await;
                    continue;
                }
                if status.role == Role::Leader {
                    self.cut_blocks(shard, &replica).await;
                    self.upload_blocks(shard, &replica).await;
                }
                if replica.data.take_uploaded() {
                    if let Err(e) = replica.handle.snapshot().await {
                        tracing::warn!(shard, error = %e, "log compaction after an upload failed");
                    }
                }
            }
        }
    }

    async fn cut_blocks(&self, shard: u64, replica: &Replica) {
        let range = replica.data.block_duration();
        for (tenant, head) in replica.data.heads() {
            let (min, max) = (head.min_time(), head.max_time());
            if head.is_empty() || max - min <= range / 2 * 3 {
                continue;
            }
            let maxt = hearth_tsdb::head::range_for_timestamp(min, range);
            let command = crate::shard::cut_block_command(&tenant, min, maxt, ulid::Ulid::new());
            match replica.handle.propose(command).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(shard, %tenant, error = %e, "cutting a block failed; retrying later")
                }
            }
        }
    }

    async fn upload_blocks(&self, shard: u64, replica: &Replica) {
        let Some(bucket) = &self.config.bucket else {
            return;
        };
        for b in replica.data.blocks() {
            if b.uploaded || b.block.is_none() {
                continue;
            }
            let mut labels = self.config.block_labels.clone();
            labels.insert(TENANT_LABEL.to_string(), b.tenant.clone());
            if let Err(e) = bucket.upload_block(&b.dir, &labels, "receive").await {
                tracing::warn!(shard, block = %b.ulid, error = %e, "upload failed; retrying later");
                continue;
            }
            if let Err(e) = replica
                .handle
                .propose(crate::shard::block_uploaded_command(b.ulid))
                .await
            {
                // The next leader uploads it again: the same ULID, the same
                // objects.
                tracing::warn!(shard, block = %b.ulid, error = %e, "recording the upload failed");
            }
        }
    }

    /// Series from every readable head whose tenant passes the tenant
    /// matchers, with the tenant label added.
    fn select_sync(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        skip_chunks: bool,
    ) -> hearth_storage_api::Result<Vec<Series>> {
        let (tenant_matchers, rest): (Vec<Matcher>, Vec<Matcher>) = matchers
            .iter()
            .cloned()
            .partition(|m| m.name == TENANT_LABEL);
        // A selector of only tenant matchers selects every series.
        let rest = if rest.is_empty() {
            vec![Matcher::new(MatchOp::RegexMatch, "__name__", ".+")
                .map_err(|e| StorageError::Internal(e.to_string()))?]
        } else {
            rest
        };
        let mut out = Vec::new();
        for data in self.readable() {
            let blocks = data.blocks();
            for (tenant, head) in data.heads() {
                if !tenant_matchers.iter().all(|m| m.matches(&tenant)) {
                    continue;
                }
                let mut parts = Vec::new();
                for b in blocks.iter().filter(|b| b.tenant == tenant) {
                    let Some(block) = &b.block else { continue };
                    if b.max_time <= mint || b.min_time > maxt {
                        continue;
                    }
                    parts.push(
                        block
                            .select(&rest, mint, maxt, skip_chunks)
                            .map_err(|e| StorageError::Internal(e.to_string()))?,
                    );
                }
                parts.push(
                    head.select(&rest, mint, maxt, skip_chunks)
                        .map_err(|e| StorageError::Internal(e.to_string()))?,
                );
                let series = hearth_tsdb::db::merge_series(parts);
                out.extend(series.into_iter().map(|mut s| {
                    s.labels = with_tenant(&s.labels, &tenant);
                    s
                }));
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

fn with_tenant(labels: &Labels, tenant: &str) -> Labels {
    let mut pairs: Vec<(&str, &str)> = labels
        .iter()
        .filter(|l| l.name != TENANT_LABEL)
        .map(|l| (l.name, l.value))
        .collect();
    pairs.push((TENANT_LABEL, tenant));
    Labels::new(pairs)
}

fn answer(outcome: Outcome, message: &str, leader: u64) -> ForwardResponse {
    ForwardResponse {
        outcome: outcome as i32,
        message: message.to_string(),
        leader,
        ..Default::default()
    }
}

/// `hearth.ingest.Ingest`: proposes forwarded parts on the local leader.
struct ForwardService(Arc<Ingester>);

#[tonic::async_trait]
impl Ingest for ForwardService {
    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> std::result::Result<Response<ForwardResponse>, Status> {
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(self.0.config.write_timeout)
            .min(self.0.config.write_timeout);
        let ForwardRequest {
            shard,
            command,
            samples,
        } = request.into_inner();
        let deadline = Instant::now() + timeout;
        Ok(Response::new(
            self.0
                .propose_local(shard, command, samples as usize, deadline)
                .await,
        ))
    }

    async fn join(
        &self,
        request: Request<JoinRequest>,
    ) -> std::result::Result<Response<JoinResponse>, Status> {
        let JoinRequest { shard, replica_id } = request.into_inner();
        let _one_at_a_time = self.0.joins.lock().await;
        Ok(Response::new(self.0.join(shard, replica_id).await))
    }

    async fn add_replica(
        &self,
        request: Request<AddReplicaRequest>,
    ) -> std::result::Result<Response<MembershipResponse>, Status> {
        let shard = request.into_inner().shard;
        Ok(Response::new(match self.0.add_replica_here(shard).await {
            Ok(()) => membership(MembershipOutcome::Ok, self.0.config.node_id, ""),
            Err(e) => membership(MembershipOutcome::Failed, 0, &e),
        }))
    }

    async fn remove_replica(
        &self,
        request: Request<RemoveReplicaRequest>,
    ) -> std::result::Result<Response<MembershipResponse>, Status> {
        let RemoveReplicaRequest { shard, ingester } = request.into_inner();
        let _one_at_a_time = self.0.joins.lock().await;
        Ok(Response::new(self.0.remove_replica(shard, ingester).await))
    }
}

impl Ingester {
    /// Makes `replica_id` a voter of `shard` in place of the other replicas
    /// of its ingester, if this ingester leads the shard.
    async fn join(&self, shard: u64, new_replica: u64) -> JoinResponse {
        let Some(replica) = self.replica(shard) else {
            return join_answer(
                JoinOutcome::Unavailable,
                0,
                0,
                "no replica of this shard here",
            );
        };
        let status = replica.handle.status();
        if status.role != Role::Leader {
            return join_answer(
                JoinOutcome::NotLeader,
                status.leader_id.map_or(0, ingester_of),
                status.commit,
                "not the leader",
            );
        }
        if ingester_of(new_replica) == 0
            || !self.config.peers.contains_key(&ingester_of(new_replica))
        {
            return join_answer(
                JoinOutcome::Unavailable,
                0,
                status.commit,
                &format!("replica {new_replica} belongs to no known ingester"),
            );
        }
        if !status.voters.contains(&new_replica) {
            let old: Vec<u64> = status
                .voters
                .iter()
                .copied()
                .filter(|v| ingester_of(*v) == ingester_of(new_replica))
                .collect();
            for v in old {
                tracing::info!(shard, old = v, new = new_replica, "replacing a replica");
                if let Err(e) = replica.handle.remove_node(v).await {
                    return join_answer(
                        JoinOutcome::Unavailable,
                        0,
                        status.commit,
                        &format!("remove replica {v}: {e}"),
                    );
                }
            }
            if let Err(e) = replica.handle.add_voter(new_replica).await {
                return join_answer(
                    JoinOutcome::Unavailable,
                    0,
                    status.commit,
                    &format!("add replica {new_replica}: {e}"),
                );
            }
        }
        let status = replica.handle.status();
        JoinResponse {
            outcome: JoinOutcome::Joined as i32,
            leader: self.config.node_id,
            voters: status.voters,
            commit: status.commit,
            message: String::new(),
        }
    }
}

impl Ingester {
    /// Makes this ingester hold a replica of `shard`: a new replica joins
    /// through the shard's leader (never bootstrapping) and catches up.
    pub async fn add_replica_here(&self, shard: u64) -> Result<(), String> {
        if shard >= self.config.shards {
            return Err(format!(
                "there is no shard {shard} (shards: {})",
                self.config.shards
            ));
        }
        let _one_at_a_time = self.joins.lock().await;
        if self.replica(shard).is_some() {
            return Ok(());
        }
        let identity = self
            .discover(shard, None)
            .await
            .map_err(|e| format!("join shard {shard}: {e}"))?;
        identity
            .write(&self.config.data_dir, shard)
            .map_err(|e| e.to_string())?;
        let marker = left_marker(&self.config.data_dir, shard);
        if marker.exists() {
            std::fs::remove_file(&marker)
                .map_err(|e| format!("remove {}: {e}", marker.display()))?;
        }
        self.open_replica(shard, identity)
            .map_err(|e| e.to_string())
    }

    /// On the shard's leader: removes every replica of `ingester` from
    /// `shard`. When this leader is one of them it hands leadership to
    /// another voter first and answers `NotLeader` for the caller to retry.
    async fn remove_replica(&self, shard: u64, ingester: u64) -> MembershipResponse {
        let Some(replica) = self.replica(shard) else {
            return membership(
                MembershipOutcome::NotLeader,
                0,
                "no replica of this shard here",
            );
        };
        let status = replica.handle.status();
        if status.role != Role::Leader {
            return membership(
                MembershipOutcome::NotLeader,
                status.leader_id.map_or(0, ingester_of),
                "not the leader",
            );
        }
        let (going, staying): (Vec<u64>, Vec<u64>) = status
            .voters
            .iter()
            .partition(|v| ingester_of(**v) == ingester);
        if going.is_empty() {
            return membership(MembershipOutcome::Ok, self.config.node_id, "");
        }
        if staying.is_empty() {
            return membership(
                MembershipOutcome::Failed,
                0,
                &format!("ingester {ingester} holds the last replica of shard {shard}"),
            );
        }
        if going.contains(&replica.replica_id) {
            let to = staying[0];
            tracing::info!(shard, to, "handing leadership over before leaving");
            if let Err(e) = replica.handle.transfer_leader(to).await {
                return membership(MembershipOutcome::Failed, 0, &e.to_string());
            }
            return membership(
                MembershipOutcome::NotLeader,
                ingester_of(to),
                "leadership handed over",
            );
        }
        for v in going {
            tracing::info!(shard, replica = v, "removing a replica");
            if let Err(e) = replica.handle.remove_node(v).await {
                return membership(
                    MembershipOutcome::Failed,
                    0,
                    &format!("remove replica {v}: {e}"),
                );
            }
        }
        membership(MembershipOutcome::Ok, self.config.node_id, "")
    }

    /// Removes `ingester`'s replica of `shard` through the shard's leader,
    /// found from any replica's hint; retried until `timeout`.
    pub async fn remove_replica_of(
        &self,
        shard: u64,
        ingester: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut target = self
            .replica(shard)
            .and_then(|r| r.handle.leadership().1)
            .map_or(self.config.node_id, ingester_of);
        let mut attempt = 0usize;
        let mut last = String::from("no leader found");
        while Instant::now() < deadline {
            let answer = if target == self.config.node_id {
                self.remove_replica(shard, ingester).await
            } else {
                match self.client(target) {
                    Some(mut c) => match c
                        .remove_replica(RemoveReplicaRequest { shard, ingester })
                        .await
                    {
                        Ok(r) => r.into_inner(),
                        Err(e) => membership(MembershipOutcome::NotLeader, 0, e.message()),
                    },
                    None => membership(MembershipOutcome::NotLeader, 0, "unknown ingester"),
                }
            };
            match answer.outcome() {
                MembershipOutcome::Ok => return Ok(()),
                MembershipOutcome::Failed => return Err(answer.message),
                MembershipOutcome::NotLeader => {
                    last = answer.message;
                    attempt += 1;
                    target = if answer.leader != 0 {
                        answer.leader
                    } else {
                        let peers: Vec<u64> = self.config.peers.keys().copied().collect();
                        peers[attempt % peers.len()]
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("shard {shard}: {last}"))
    }

    /// Asks `ingester` (maybe this one) to hold a replica of `shard`.
    pub async fn add_replica_on(&self, shard: u64, ingester: u64) -> Result<(), String> {
        if ingester == self.config.node_id {
            return self.add_replica_here(shard).await;
        }
        let mut client = self
            .client(ingester)
            .ok_or_else(|| format!("unknown ingester {ingester}"))?;
        let answer = client
            .add_replica(AddReplicaRequest { shard })
            .await
            .map_err(|e| format!("ingester {ingester}: {}", e.message()))?
            .into_inner();
        match answer.outcome() {
            MembershipOutcome::Ok => Ok(()),
            _ => Err(answer.message),
        }
    }

    /// This replica was removed from its shard: stops it and deletes its
    /// log and blocks; a marker keeps the ingester from taking its place
    /// in the placement again.
    async fn leave(&self, shard: u64, replica: &Replica) {
        tracing::info!(
            shard,
            replica = replica.replica_id,
            "removed from the shard; deleting the replica"
        );
        replica.stop.cancel();
        self.replicas.write().remove(&shard);
        let data_dir = &self.config.data_dir;
        let marker = left_marker(data_dir, shard);
        // The node task may still be closing its log: give it a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let outcome = std::fs::write(&marker, b"")
            .and_then(|()| std::fs::remove_file(ReplicaIdentity::path(data_dir, shard)))
            .and_then(|()| std::fs::remove_dir_all(log_dir(data_dir, shard)))
            .and_then(|()| std::fs::remove_dir_all(blocks_dir(data_dir, shard)));
        if let Err(e) = outcome {
            tracing::warn!(shard, error = %e, "cleaning up the removed replica");
        }
    }
}

fn membership(outcome: MembershipOutcome, leader: u64, message: &str) -> MembershipResponse {
    MembershipResponse {
        outcome: outcome as i32,
        leader,
        message: message.to_string(),
    }
}

/// A random generation for a new replica id (1..=0xfffe).
fn new_generation() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) ^ d.as_secs())
        .unwrap_or(7);
    1 + (now ^ u64::from(std::process::id()).rotate_left(17)) % 0xfffe
}

fn join_answer(outcome: JoinOutcome, leader: u64, commit: u64, message: &str) -> JoinResponse {
    JoinResponse {
        outcome: outcome as i32,
        leader,
        voters: Vec::new(),
        commit,
        message: message.to_string(),
    }
}

/// The raft log (the WAL) of this ingester's replica of `shard`.
fn log_dir(data_dir: &std::path::Path, shard: u64) -> PathBuf {
    data_dir.join(format!("shard-{shard}"))
}

/// The blocks of this ingester's replica of `shard`.
fn blocks_dir(data_dir: &std::path::Path, shard: u64) -> PathBuf {
    data_dir.join("blocks").join(format!("shard-{shard}"))
}

/// Present when this ingester left `shard`: it does not take its place in
/// the placement again on restart.
fn left_marker(data_dir: &std::path::Path, shard: u64) -> PathBuf {
    data_dir.join(format!("shard-{shard}.left"))
}

/// A shard replica's id and the voters its log was (or is to be)
/// bootstrapped with, kept in `<data>/shard-N.id` as two lines: the id, and
/// the voters comma separated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReplicaIdentity {
    replica_id: u64,
    voters: Vec<u64>,
}

impl ReplicaIdentity {
    fn path(data_dir: &std::path::Path, shard: u64) -> PathBuf {
        data_dir.join(format!("shard-{shard}.id"))
    }

    fn read(data_dir: &std::path::Path, shard: u64) -> Result<Option<Self>> {
        let path = Self::path(data_dir, shard);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let corrupt = || Error::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: format!("not a replica identity: {text:?}"),
        };
        let mut lines = text.lines();
        let replica_id = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(corrupt)?;
        let voters = lines
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().parse().map_err(|_| corrupt()))
            .collect::<Result<Vec<u64>>>()?;
        Ok(Some(Self { replica_id, voters }))
    }

    fn write(&self, data_dir: &std::path::Path, shard: u64) -> Result<()> {
        let path = Self::path(data_dir, shard);
        let tmp = path.with_extension("id.tmp");
        let voters: Vec<String> = self.voters.iter().map(u64::to_string).collect();
        let text = format!("{}\n{}\n", self.replica_id, voters.join(","));
        let mut f = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(Error::io("write", &tmp))?;
        f.sync_all().map_err(Error::io("sync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("rename", &path))?;
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("sync", data_dir))
    }
}

impl Ingester {
    /// How a replica with a new directory starts. With `bootstrap` (the
    /// ingesters the shard is placed on), it is bootstrapped as generation 0
    /// when no peer of the shard has committed anything yet (the cluster is
    /// new). Otherwise, and always without `bootstrap` (a replica added
    /// online), it joins under a new generation through the leader, found by
    /// asking the peers and following their hints; retried until it succeeds
    /// or `shutdown`.
    async fn discover(&self, shard: u64, bootstrap: Option<&[u64]>) -> Result<ReplicaIdentity> {
        let config = &self.config;
        let shutdown = &self.shutdown;
        let candidate = replica_id(config.node_id, new_generation());
        let peers: Vec<u64> = bootstrap
            .map_or_else(|| config.peers.keys().copied().collect(), <[u64]>::to_vec)
            .into_iter()
            .filter(|p| *p != config.node_id)
            .collect();
        let mut history = bootstrap.is_none();
        let mut round = 0u32;
        loop {
            let mut next: Vec<u64> = peers.clone();
            let mut asked = std::collections::HashSet::new();
            while let Some(peer) = next.pop() {
                if !asked.insert(peer) {
                    continue;
                }
                let Ok(answer) = self.join_rpc(peer, shard, candidate).await else {
                    continue;
                };
                match answer.outcome() {
                    JoinOutcome::Joined => {
                        tracing::info!(
                            shard,
                            replica = candidate,
                            leader = peer,
                            "joined the shard"
                        );
                        return Ok(ReplicaIdentity {
                            replica_id: candidate,
                            voters: answer.voters,
                        });
                    }
                    JoinOutcome::NotLeader => {
                        history |= answer.commit > 0;
                        if answer.leader != 0 {
                            next.push(answer.leader);
                        }
                    }
                    JoinOutcome::Unavailable => history |= answer.commit > 0,
                }
            }
            if let (false, Some(placed)) = (history, bootstrap) {
                return Ok(ReplicaIdentity {
                    replica_id: replica_id(config.node_id, 0),
                    voters: placed.iter().map(|p| replica_id(*p, 0)).collect(),
                });
            }
            if round.is_multiple_of(10) {
                tracing::warn!(
                    shard,
                    "the shard has a history: waiting for its leader to let this new replica join"
                );
            }
            round += 1;
            tokio::select! {
                _ = shutdown.cancelled() => return Err(Error::Shutdown),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Asks ingester `peer` to let `replica` join `shard`.
    async fn join_rpc(&self, peer: u64, shard: u64, replica: u64) -> Result<JoinResponse, Status> {
        let mut client = self
            .client(peer)
            .ok_or_else(|| Status::invalid_argument(format!("unknown ingester {peer}")))?;
        let mut request = Request::new(JoinRequest {
            shard,
            replica_id: replica,
        });
        request.set_timeout(Duration::from_secs(10));
        Ok(client.join(request).await?.into_inner())
    }
}

/// A `grpc-timeout` header value (`<digits><unit>`).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[async_trait]
impl Queryable for Ingester {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
    ) -> hearth_storage_api::Result<SeriesSet> {
        let mut series = self.select_sync(matchers, hints.mint, hints.maxt, hints.skip_chunks)?;
        if hints.limit > 0 {
            series.truncate(hints.limit);
        }
        Ok(SeriesSet {
            series,
            warnings: Vec::new(),
        })
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        let mut names = std::collections::BTreeSet::new();
        for s in self.select_sync(matchers, mint, maxt, true)? {
            names.extend(s.labels.iter().map(|l| l.name.to_string()));
        }
        Ok(LabelsResult {
            values: names.into_iter().collect(),
            warnings: Vec::new(),
        })
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        let mut values = std::collections::BTreeSet::new();
        for s in self.select_sync(matchers, mint, maxt, true)? {
            if let Some(v) = s.labels.get(name) {
                values.insert(v.to_string());
            }
        }
        Ok(LabelsResult {
            values: values.into_iter().collect(),
            warnings: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_spreads_shards_over_consecutive_ingesters() {
        let nodes = [3, 1, 2];
        assert_eq!(placement(0, &nodes, 3), vec![1, 2, 3]);
        assert_eq!(placement(1, &nodes, 3), vec![2, 3, 1]);
        assert_eq!(placement(4, &nodes, 2), vec![2, 3]);
        assert_eq!(placement(2, &[1, 2, 3, 4, 5], 3), vec![3, 4, 5]);
        assert_eq!(placement(4, &[1, 2, 3, 4, 5], 3), vec![5, 1, 2]);
    }

    #[test]
    fn replica_ids_name_their_ingester() {
        assert_eq!(replica_id(3, 0), 3 << 16);
        assert_eq!(ingester_of(replica_id(3, 0)), 3);
        assert_eq!(ingester_of(replica_id(7, 0xbeef)), 7);
        assert_ne!(replica_id(7, 1), replica_id(7, 2));
    }

    #[test]
    fn replica_identities_round_trip_through_their_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(ReplicaIdentity::read(dir.path(), 2).expect("read"), None);
        let id = ReplicaIdentity {
            replica_id: replica_id(2, 9),
            voters: vec![replica_id(1, 0), replica_id(2, 9)],
        };
        id.write(dir.path(), 2).expect("write");
        assert_eq!(
            ReplicaIdentity::read(dir.path(), 2).expect("read"),
            Some(id)
        );
        std::fs::write(dir.path().join("shard-3.id"), "x\n").expect("write");
        assert!(ReplicaIdentity::read(dir.path(), 3).is_err());
    }

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }

    #[test]
    fn the_tenant_label_replaces_a_stored_one() {
        let l = Labels::new([("__name__", "a"), ("tenant_id", "forged"), ("z", "1")]);
        assert_eq!(
            with_tenant(&l, "team-a"),
            Labels::new([("__name__", "a"), ("tenant_id", "team-a"), ("z", "1")])
        );
    }
}
