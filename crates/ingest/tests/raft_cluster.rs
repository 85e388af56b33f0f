//! Three replicas of one raft group in one process, over the in-memory
//! network (with faults) and over gRPC on 127.0.0.1: elections,
//! replication, failover, restart from disk, minority partitions and
//! catch-up of a wiped replica from a snapshot.
//!
//! Timing: 20 ms ticks, elections after 10-20 ticks; every wait polls with a
//! generous deadline so a loaded 2-core machine slows the tests down
//! without failing them.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_ingest::node::{NodeConfig, NodeHandle, RaftNode, Role};
use hearth_ingest::transport::grpc::{self, GrpcTransport, GrpcTransportConfig};
use hearth_ingest::transport::memory::MemNetwork;
use hearth_ingest::transport::{Router, Transport};
use hearth_ingest::{ProposeError, StateMachine};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const GROUP: u64 = 7;
const IDS: [u64; 3] = [1, 2, 3];
const TICK: Duration = Duration::from_millis(20);
const ELECTION_TICKS: usize = 10;
/// Deadline of every wait; far beyond what an unloaded machine needs.
const PATIENCE: Duration = Duration::from_secs(60);
const MAX_MESSAGE_BYTES: usize = 64 << 20;
const MAX_PROPOSAL_BYTES: usize = 1 << 20;

/// The replicated state: the applied entries in order, shared with the test.
#[derive(Clone, Default)]
struct ListMachine {
    applied: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ListMachine {
    fn entries(&self) -> Vec<Vec<u8>> {
        self.applied.lock().expect("lock").clone()
    }
}

impl StateMachine for ListMachine {
    fn apply(&mut self, _index: u64, data: &[u8]) -> Result<(), String> {
        self.applied.lock().expect("lock").push(data.to_vec());
        Ok(())
    }

    fn snapshot(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for entry in self.applied.lock().expect("lock").iter() {
            out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
            out.extend_from_slice(entry);
        }
        Ok(out)
    }

    fn restore(&mut self, mut data: &[u8]) -> Result<(), String> {
        let mut entries = Vec::new();
        while !data.is_empty() {
            let len = data
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or("truncated snapshot")?;
            let entry = data.get(4..4 + len).ok_or("truncated snapshot")?;
            entries.push(entry.to_vec());
            data = &data[4 + len..];
        }
        *self.applied.lock().expect("lock") = entries;
        Ok(())
    }
}

/// How the replicas reach each other.
enum Network {
    Memory(MemNetwork),
    Grpc(HashMap<u64, GrpcPeer>),
}

/// One "process" on the gRPC network: its router, server and address.
struct GrpcPeer {
    address: SocketAddr,
    router: Router,
    server: Option<JoinHandle<()>>,
}

struct Running {
    handle: NodeHandle,
    task: JoinHandle<hearth_ingest::Result<()>>,
    machine: ListMachine,
}

struct Cluster {
    network: Network,
    root: tempfile::TempDir,
    nodes: BTreeMap<u64, Running>,
    snapshot_interval: u64,
    retained: u64,
}

impl Cluster {
    async fn memory() -> Self {
        Self::new(Network::Memory(MemNetwork::new())).await
    }

    async fn grpc() -> Self {
        let mut peers = HashMap::new();
        for id in IDS {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let router = Router::new();
            let server = spawn_server(listener, router.clone());
            peers.insert(
                id,
                GrpcPeer {
                    address,
                    router,
                    server: Some(server),
                },
            );
        }
        Self::new(Network::Grpc(peers)).await
    }

    async fn new(network: Network) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        Cluster {
            network,
            root: tempfile::tempdir().expect("tempdir"),
            nodes: BTreeMap::new(),
            snapshot_interval: 10_000,
            retained: 1_000,
        }
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    async fn start_all(&mut self) {
        for id in IDS {
            self.start(id, true).await;
        }
    }

    /// Starts replica `id` on its directory; `bootstrap` gives it the initial
    /// voters (a fresh directory then starts the group), otherwise it joins.
    async fn start(&mut self, id: u64, bootstrap: bool) {
        let mut config = NodeConfig::new(GROUP, id);
        config.tick_interval = TICK;
        config.election_tick = ELECTION_TICKS;
        config.heartbeat_tick = 2;
        config.snapshot_interval_entries = self.snapshot_interval;
        config.retained_log_entries = self.retained;
        config.max_proposal_bytes = MAX_PROPOSAL_BYTES;
        if bootstrap {
            config.initial_voters = IDS.to_vec();
        }
        let (transport, router) = self.endpoints(id).await;
        let machine = ListMachine::default();
        let (node, handle) =
            RaftNode::open(config, self.dir(id), machine.clone(), transport, router)
                .expect("open node");
        let task = tokio::spawn(node.run(CancellationToken::new()));
        self.nodes.insert(
            id,
            Running {
                handle,
                task,
                machine,
            },
        );
    }

    /// The transport and router of replica `id`; on gRPC, (re)starts its
    /// server on its address.
    async fn endpoints(&mut self, id: u64) -> (Arc<dyn Transport>, Router) {
        match &mut self.network {
            Network::Memory(network) => (Arc::new(network.transport(id)), network.router(id)),
            Network::Grpc(peers) => {
                let transport = GrpcTransport::new(GrpcTransportConfig {
                    min_backoff: Duration::from_millis(10),
                    max_backoff: Duration::from_millis(200),
                    ..GrpcTransportConfig::default()
                });
                for (peer, p) in peers.iter() {
                    if *peer != id {
                        transport
                            .set_peer(*peer, p.address.to_string())
                            .expect("peer address");
                    }
                }
                let peer = peers.get_mut(&id).expect("known peer");
                if peer.server.is_none() {
                    let listener = bind_again(peer.address).await;
                    peer.server = Some(spawn_server(listener, peer.router.clone()));
                }
                (Arc::new(transport), peer.router.clone())
            }
        }
    }

    /// Kills replica `id` abruptly (its task is dropped mid-flight; on gRPC
    /// its server goes too); its directory stays.
    async fn kill(&mut self, id: u64) {
        let running = self.nodes.remove(&id).expect("running node");
        running.task.abort();
        let _ = running.task.await;
        if let Network::Grpc(peers) = &mut self.network {
            if let Some(server) = peers.get_mut(&id).and_then(|p| p.server.take()) {
                server.abort();
                let _ = server.await;
            }
        }
    }

    fn running(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    fn handle(&self, id: u64) -> &NodeHandle {
        &self.nodes[&id].handle
    }

    fn entries(&self, id: u64) -> Vec<Vec<u8>> {
        self.nodes[&id].machine.entries()
    }

    /// Waits until the running replicas agree on one leader, and returns it.
    async fn leader(&self) -> u64 {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        self.leader_among(&ids).await
    }

    async fn leader_among(&self, ids: &[u64]) -> u64 {
        let mut found = None;
        eventually("a leader everyone follows", || {
            let statuses: Vec<_> = ids.iter().map(|id| self.handle(*id).status()).collect();
            let leader = statuses.iter().find(|s| s.role == Role::Leader)?;
            let agreed = statuses
                .iter()
                .all(|s| s.leader_id == Some(leader.node_id) && s.term == leader.term);
            found = Some(leader.node_id);
            agreed.then_some(())
        })
        .await;
        found.expect("leader found")
    }

    /// The leader of the highest term among the running replicas, without
    /// waiting for the others to agree (some may be cut off).
    async fn newest_leader(&self) -> u64 {
        eventually("a leader", || {
            self.nodes
                .values()
                .map(|n| n.handle.status())
                .filter(|s| s.role == Role::Leader)
                .max_by_key(|s| s.term)
                .map(|s| s.node_id)
        })
        .await
    }

    /// Proposes `data` through whoever leads, retrying while leadership moves.
    async fn propose(&self, data: &str) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leader = self.newest_leader().await;
            match self.handle(leader).propose(data.as_bytes().to_vec()).await {
                Ok(index) => return index,
                Err(ProposeError::NotLeader { .. } | ProposeError::Dropped) => {}
                Err(e) => panic!("proposal {data} failed: {e}"),
            }
            assert!(Instant::now() < deadline, "proposal {data} never committed");
            tokio::time::sleep(TICK).await;
        }
    }

    /// Waits until replica `id` has applied exactly `expected`.
    async fn wait_entries(&self, id: u64, expected: &[Vec<u8>]) {
        eventually(
            &format!("replica {id} to apply {} entries", expected.len()),
            || (self.entries(id) == expected).then_some(()),
        )
        .await;
    }
}

fn spawn_server(listener: TcpListener, router: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        let never = std::future::pending::<()>();
        if let Err(e) = grpc::serve(listener, router, MAX_MESSAGE_BYTES, never).await {
            tracing::warn!(error = %e, "raft server stopped");
        }
    })
}

/// Binds `address` again after its server was killed.
async fn bind_again(address: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(%address, error = %e, "rebinding");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("rebind {address}: {e}"),
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after `PATIENCE`.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn bytes(items: &[String]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Proposes `count` entries named `{prefix}{n}` concurrently through the
/// leader and returns them in log order.
async fn propose_many(cluster: &Cluster, prefix: &str, count: usize) -> Vec<String> {
    let proposals = (0..count).map(|n| {
        let data = format!("{prefix}{n}");
        async move {
            let index = cluster.propose(&data).await;
            (index, data)
        }
    });
    let mut acked = futures::future::join_all(proposals).await;
    acked.sort();
    let indexes: Vec<u64> = acked.iter().map(|(i, _)| *i).collect();
    let mut unique = indexes.clone();
    unique.dedup();
    assert_eq!(unique, indexes, "every proposal has its own index");
    acked.into_iter().map(|(_, data)| data).collect()
}

async fn elects_and_replicates_in_order(cluster: &mut Cluster) {
    cluster.start_all().await;
    let leader = cluster.leader().await;
    let acked = propose_many(cluster, "w", 50).await;
    for id in IDS {
        cluster.wait_entries(id, &bytes(&acked)).await;
    }
    let status = cluster.handle(leader).status();
    assert_eq!(status.voters, IDS.to_vec());
    assert_eq!(
        status.match_index.len(),
        3,
        "the leader tracks every replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_elects_a_leader_and_replicates_in_order() {
    let mut cluster = Cluster::memory().await;
    elects_and_replicates_in_order(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_followers_refuse_proposals_with_a_leader_hint() {
    let mut cluster = Cluster::memory().await;
    cluster.start_all().await;
    let leader = cluster.leader().await;
    let follower = IDS
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let refused = cluster.handle(follower).propose(b"x".to_vec()).await;
    assert_eq!(
        refused,
        Err(ProposeError::NotLeader {
            leader: Some(leader)
        })
    );
    let huge = vec![0; MAX_PROPOSAL_BYTES + 1];
    assert_eq!(
        cluster.handle(leader).propose(huge).await,
        Err(ProposeError::TooLarge {
            size: MAX_PROPOSAL_BYTES + 1,
            limit: MAX_PROPOSAL_BYTES
        })
    );
}

async fn fails_over_and_restarts(cluster: &mut Cluster) {
    cluster.start_all().await;
    let mut acked = propose_many(cluster, "before", 20).await;
    let old_leader = cluster.leader().await;
    let survivors: Vec<u64> = IDS.into_iter().filter(|id| *id != old_leader).collect();

    cluster.kill(old_leader).await;
    let killed_at = Instant::now();
    let new_leader = cluster.leader_among(&survivors).await;
    let failover = killed_at.elapsed();
    assert_ne!(new_leader, old_leader);
    // Elections start after 10-20 ticks of silence (0.2-0.4 s); allow for
    // split votes and a loaded machine, which delays ticks.
    let election_timeout = TICK * 2 * ELECTION_TICKS as u32;
    eprintln!("failover took {failover:?}");
    assert!(
        failover < election_timeout * 50,
        "failover took {failover:?}"
    );

    // Everything acknowledged before the kill is on both survivors.
    acked.extend(propose_many(cluster, "after", 10).await);
    for id in &survivors {
        cluster.wait_entries(*id, &bytes(&acked)).await;
    }

    // The old leader comes back from its directory and catches up.
    cluster.start(old_leader, true).await;
    cluster.wait_entries(old_leader, &bytes(&acked)).await;
    acked.extend(propose_many(cluster, "rejoined", 5).await);
    for id in IDS {
        cluster.wait_entries(id, &bytes(&acked)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_new_leader_takes_over_and_the_old_one_catches_up() {
    let mut cluster = Cluster::memory().await;
    fails_over_and_restarts(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_partitioned_minority_never_acknowledges() {
    let mut cluster = Cluster::memory().await;
    cluster.start_all().await;
    let mut acked = propose_many(&cluster, "w", 5).await;
    let Network::Memory(network) = &cluster.network else {
        unreachable!("memory cluster")
    };
    let network = network.clone();

    // Cut the leader off; proposals made to it while it still thinks it
    // leads must never be acknowledged.
    let old_leader = cluster.leader().await;
    let majority: Vec<u64> = IDS.into_iter().filter(|id| *id != old_leader).collect();
    network.partition(&[&[old_leader], &majority]);
    let minority_handle = cluster.handle(old_leader).clone();
    let minority_proposals: Vec<_> = (0..5)
        .map(|n| {
            let handle = minority_handle.clone();
            tokio::spawn(async move { handle.propose(format!("lost{n}").into_bytes()).await })
        })
        .collect();

    // The majority elects a leader and goes on.
    let new_leader = cluster.leader_among(&majority).await;
    assert_ne!(new_leader, old_leader);
    acked.extend(propose_many(&cluster, "majority", 5).await);

    // The cut-off leader steps down (check quorum) and refuses proposals.
    eventually("the cut-off leader to step down", || {
        (minority_handle.status().role != Role::Leader).then_some(())
    })
    .await;
    assert!(matches!(
        minority_handle.propose(b"late".to_vec()).await,
        Err(ProposeError::NotLeader { .. })
    ));

    // After healing, its uncommitted entries lose to the new leader's log.
    network.heal();
    for proposal in minority_proposals {
        let outcome = tokio::time::timeout(PATIENCE, proposal)
            .await
            .expect("minority proposals resolve after healing")
            .expect("join");
        assert!(
            matches!(
                outcome,
                Err(ProposeError::Dropped | ProposeError::NotLeader { .. })
            ),
            "a proposal to the cut-off leader resolved {outcome:?}"
        );
    }
    for id in IDS {
        cluster.wait_entries(id, &bytes(&acked)).await;
    }
    assert!(network.dropped() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_an_isolated_follower_refuses_proposals() {
    let mut cluster = Cluster::memory().await;
    cluster.start_all().await;
    let leader = cluster.leader().await;
    let follower = IDS
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let Network::Memory(network) = &cluster.network else {
        unreachable!("memory cluster")
    };
    network.isolate(follower);
    // Pre-vote keeps it from disrupting the group; it never leads alone.
    tokio::time::sleep(TICK * 4 * ELECTION_TICKS as u32).await;
    let status = cluster.handle(follower).status();
    assert_ne!(status.role, Role::Leader);
    assert!(matches!(
        cluster.handle(follower).propose(b"x".to_vec()).await,
        Err(ProposeError::NotLeader { .. })
    ));
    network.heal();
    let acked = propose_many(&cluster, "w", 3).await;
    for id in IDS {
        cluster.wait_entries(id, &bytes(&acked)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_wiped_replica_rejoins_and_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::memory().await;
    cluster.snapshot_interval = 20;
    cluster.retained = 5;
    cluster.start_all().await;
    let mut acked = Vec::new();
    for round in 0..4 {
        acked.extend(propose_many(&cluster, &format!("r{round}-"), 25).await);
    }
    for id in IDS {
        cluster.wait_entries(id, &bytes(&acked)).await;
    }
    let leader = cluster.leader().await;
    let wiped = IDS
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");

    // Every replica compacted its log well past the start.
    eventually("the replicas to compact their logs", || {
        IDS.iter()
            .all(|id| cluster.handle(*id).status().first_index > 50)
            .then_some(())
    })
    .await;

    // The replica loses its disk. Raft forbids it to come back under its
    // old id: the leader trusts it to hold entries it no longer has. Tried
    // anyway, it must neither crash nor disturb the group.
    cluster.kill(wiped).await;
    std::fs::remove_dir_all(cluster.dir(wiped)).expect("wipe");
    cluster.start(wiped, false).await;
    tokio::time::sleep(TICK * 3 * ELECTION_TICKS as u32).await;
    assert!(
        !cluster.nodes[&wiped].task.is_finished(),
        "the wiped replica survives"
    );
    cluster.kill(wiped).await;
    std::fs::remove_dir_all(cluster.dir(wiped)).expect("wipe");

    // So it is replaced by a new replica, 4, which starts empty.
    let leader = cluster.newest_leader().await;
    cluster
        .handle(leader)
        .remove_node(wiped)
        .await
        .expect("remove the wiped replica");
    acked.extend(propose_many(&cluster, "while-away-", 10).await);
    let replacement = 4;
    let leader = cluster.newest_leader().await;
    cluster
        .handle(leader)
        .add_voter(replacement)
        .await
        .expect("add the replacement");
    cluster.start(replacement, false).await;

    // It gets the leader's snapshot (the log before it is gone), then the log.
    cluster.wait_entries(replacement, &bytes(&acked)).await;
    eventually(
        "the replacement to report the snapshot it installed",
        || (cluster.handle(replacement).status().snapshot_index > 0).then_some(()),
    )
    .await;
    acked.extend(propose_many(&cluster, "after-", 10).await);
    for id in cluster.running() {
        cluster.wait_entries(id, &bytes(&acked)).await;
    }
    let mut voters: Vec<u64> = IDS.into_iter().filter(|id| *id != wiped).collect();
    voters.push(replacement);
    eventually("the new configuration everywhere", || {
        cluster
            .running()
            .iter()
            .all(|id| cluster.handle(*id).status().voters == voters)
            .then_some(())
    })
    .await;

    // And it restarts from what it received.
    cluster.kill(replacement).await;
    cluster.start(replacement, false).await;
    cluster.wait_entries(replacement, &bytes(&acked)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_elects_a_leader_and_replicates_in_order() {
    let mut cluster = Cluster::grpc().await;
    elects_and_replicates_in_order(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_a_new_leader_takes_over_and_the_old_one_catches_up() {
    let mut cluster = Cluster::grpc().await;
    fails_over_and_restarts(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_a_restarted_follower_catches_up() {
    let mut cluster = Cluster::grpc().await;
    cluster.start_all().await;
    let mut acked = propose_many(&cluster, "w", 10).await;
    let leader = cluster.leader().await;
    let follower = IDS
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    cluster.kill(follower).await;
    acked.extend(propose_many(&cluster, "away", 20).await);
    cluster.start(follower, true).await;
    for id in IDS {
        cluster.wait_entries(id, &bytes(&acked)).await;
    }
}
