//! `hearth ingest` end to end: three real ingester processes on loopback
//! ports (node ids 1, 2, 3), 4 shards each replicated on all 3 with raft,
//! written to by Prometheus remote write.
//!
//! What is tested:
//! - SIGKILL of shard leaders while a writer writes: every acknowledged
//!   (204) sample is afterwards on every replica, none twice, none that was
//!   never sent; writes are acknowledged again within 5 s of each kill (the
//!   recovery times and the write latencies are printed: run with
//!   `--nocapture` to see them);
//! - a follower that receives a write after its shard's leader froze
//!   forwards it to the new leader, not to the frozen one it cached;
//! - a minority never acknowledges: loopback has no partitions, so nodes
//!   are frozen with SIGSTOP instead; with one of three frozen the other
//!   two acknowledge, with two frozen the last one answers 503; after
//!   SIGCONT writes are acknowledged again and the replicas agree;
//! - SIGKILL of the whole cluster and a restart on the same data
//!   directories keeps every acknowledged sample;
//! - client errors (garbage, out of order) answer 400 and store nothing;
//!   a retried request answers 204 again and is stored once; the tenant of
//!   `X-Scope-OrgID` / `THANOS-TENANT` shows as the `tenant_id` label;
//! - `hearth query` over the three ingesters' StoreAPI deduplicates the
//!   replicas by their `replica` label;
//! - Prometheus 2.42 scraping every second and remote-writing to one
//!   ingester while the leader of a shard elsewhere, then that ingester,
//!   are SIGKILLed and restarted: every ingester afterwards holds every
//!   sample Prometheus holds in its own TSDB over that time, and nothing
//!   else (the samples compared and Prometheus's retries are printed);
//! - a remote write 2.0 request is accepted and readable everywhere; a body
//!   over 32 MiB (413), an unsupported encoding or content type (415) and a
//!   sample too far in the future (400) are refused before anything is
//!   proposed: no shard's raft log grows, nothing is stored;
//! - with 4 s blocks and a real S3 server (s3s-fs): blocks are cut through
//!   raft with the same ULID and bytes on every replica, uploaded once each
//!   with the tenant label, and `hearth query` over the ingesters and
//!   `hearth store` returns every acknowledged sample once;
//! - an ingester whose disk is wiped comes back under new replica ids and
//!   catches up from a leader's snapshot, nothing acknowledged lost;
//! - a shard replica removed and added again online (the leader's own:
//!   leadership is handed over first) under a steady write load.
//!
//! The tests run one at a time (a lock): raft's timing (100 ms ticks,
//! elections after about a second) and the recovery-time assertion need the
//! CPU of a small machine to themselves. Each test's cluster has its own
//! ports and temporary directory; the processes' logs are there, and their
//! last lines are part of a failure's message.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{
    free_port, hearth_bin, now_s, post_write, series, spawn, write_body, Proc, Prometheus,
};
use hearth_proto::remote_write::{encode_write_request_v2, WriteProtocol, MAX_COMPRESSED_BYTES};
use hearth_proto::write_v2;
use hearth_test_utils::s3::{find_s3s_fs, S3sFs};
use reqwest::blocking::Client;
use serde_json::Value;

/// Shards of every test cluster.
const SHARDS: u64 = 4;
/// Ingesters of every test cluster (and the replication factor).
const NODES: u64 = 3;
/// Series the writer writes one sample to per request.
const WRITER_SERIES: usize = 20;
/// The tenant of a write without a tenant header.
const DEFAULT_TENANT: &str = "default-tenant";

/// Runs this file's tests one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lock that runs this file's tests one at a time (a failed test
/// poisons it; the next one still runs).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One HTTP client for the whole file, without a connection pool: a pooled
/// connection to a node that was killed and restarted would fail a request
/// for no reason of the system under test.
fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("build an HTTP client")
    })
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    (now_s() * 1000.0) as i64
}

/// Polls `check` every 200 ms until it gives `Ok`, for `within` at most;
/// gives its last error otherwise.
fn poll<T>(within: Duration, mut check: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// `n` distinct free loopback ports.
fn distinct_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// Sends a signal (`STOP`, `CONT`) to a process with kill(1).
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid} failed");
}

// ---------------------------------------------------------------------------
// The Prometheus HTTP API, as the tests read it.

/// GET `base` + `path` with `params`; the `data` of a `"status":"success"`
/// answer, or what went wrong.
fn api_get(
    base: &str,
    path: &str,
    params: &[(&str, String)],
    timeout: Duration,
) -> Result<Value, String> {
    let r = client()
        .get(format!("{base}{path}"))
        .query(params)
        .timeout(timeout)
        .send()
        .map_err(|e| format!("GET {base}{path} {params:?}: {e}"))?;
    let status = r.status();
    let text = r
        .text()
        .map_err(|e| format!("GET {base}{path} {params:?}: {status}, reading the body: {e}"))?;
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| format!("GET {base}{path} {params:?}: {status}, not JSON ({e}): {text}"))?;
    if body["status"] != "success" {
        return Err(format!("GET {base}{path} {params:?}: {status}: {body}"));
    }
    Ok(body["data"].clone())
}

/// Series (as [`labels_key`] writes them) → samples (ms, value) in the
/// order the API gave them.
type SeriesSamples = BTreeMap<String, Vec<(i64, f64)>>;

/// A label set as one comparable string, `{a="1",b="2"}`, sorted by name.
fn key(labels: &[(&str, &str)]) -> String {
    let sorted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let inner: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// [`key`] of a `metric` object of an API answer.
fn labels_key(metric: &Value) -> String {
    let labels: Vec<(&str, &str)> = metric
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("<not a string>")))
                .collect()
        })
        .unwrap_or_default();
    key(&labels)
}

/// The series of a matrix `result` (`[{metric, values}]`).
fn parse_matrix(result: &Value) -> Result<SeriesSamples, String> {
    let mut out = SeriesSamples::new();
    for s in result
        .as_array()
        .ok_or_else(|| format!("a result that is not an array: {result}"))?
    {
        let name = labels_key(&s["metric"]);
        let mut samples = Vec::new();
        for p in s["values"]
            .as_array()
            .ok_or_else(|| format!("a series without values: {s}"))?
        {
            let t = p[0]
                .as_f64()
                .ok_or_else(|| format!("a point without a numeric time: {p}"))?;
            let v: f64 = p[1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("a point without a numeric string value: {p}"))?;
            samples.push(((t * 1000.0).round() as i64, v));
        }
        if out.insert(name.clone(), samples).is_some() {
            return Err(format!("the series {name} twice in one result: {result}"));
        }
    }
    Ok(out)
}

/// The `result` of an instant query at `at_s` whose answer is a matrix.
fn matrix_result(
    base: &str,
    query: &str,
    at_s: f64,
    extra: &[(&str, String)],
) -> Result<Value, String> {
    let mut params = vec![("query", query.to_string()), ("time", format!("{at_s:.3}"))];
    params.extend_from_slice(extra);
    let mut data = api_get(base, "/api/v1/query", &params, Duration::from_secs(20))?;
    if data["resultType"] != "matrix" {
        return Err(format!("{query}: the answer is not a matrix: {data}"));
    }
    Ok(data["result"].take())
}

/// An instant query whose answer is a matrix (a range selector) at `at_s`.
fn matrix(
    base: &str,
    query: &str,
    at_s: f64,
    extra: &[(&str, String)],
) -> Result<SeriesSamples, String> {
    parse_matrix(&matrix_result(base, query, at_s, extra)?)
}

/// A range query from `start_s` to `end_s` every `step_s`.
fn query_range(
    base: &str,
    query: &str,
    (start_s, end_s, step_s): (f64, f64, f64),
    extra: &[(&str, String)],
) -> Result<SeriesSamples, String> {
    let mut params = vec![
        ("query", query.to_string()),
        ("start", format!("{start_s:.3}")),
        ("end", format!("{end_s:.3}")),
        ("step", format!("{step_s}")),
    ];
    params.extend_from_slice(extra);
    let data = api_get(
        base,
        "/api/v1/query_range",
        &params,
        Duration::from_secs(20),
    )?;
    if data["resultType"] != "matrix" {
        return Err(format!("{query}: the answer is not a matrix: {data}"));
    }
    parse_matrix(&data["result"])
}

/// The label sets `/api/v1/series` matches for `selector`, as [`key`]s.
fn series_matching(base: &str, selector: &str, around_ms: i64) -> Result<BTreeSet<String>, String> {
    let around = around_ms as f64 / 1000.0;
    let data = api_get(
        base,
        "/api/v1/series",
        &[
            ("match[]", selector.to_string()),
            ("start", format!("{:.3}", around - 600.0)),
            ("end", format!("{:.3}", around + 600.0)),
        ],
        Duration::from_secs(10),
    )?;
    Ok(data
        .as_array()
        .ok_or_else(|| format!("/api/v1/series {selector}: not an array: {data}"))?
        .iter()
        .map(labels_key)
        .collect())
}

// ---------------------------------------------------------------------------
// The cluster.

/// One ingester of a [`Cluster`]: its ports, its data directory, and its
/// process while it runs.
struct Node {
    id: u64,
    grpc: u16,
    http: u16,
    data: PathBuf,
    proc: Option<Proc>,
    /// Frozen with SIGSTOP.
    stopped: bool,
    /// How often it was started (each start logs to its own file).
    starts: u32,
}

/// Three `hearth ingest` processes (node ids 1, 2, 3), 4 shards, each
/// replicated on all three. Killed when dropped.
struct Cluster {
    // Before `dir`: the processes die before their directory is removed.
    nodes: Vec<Node>,
    peers: String,
    /// Flags every ingester gets beside the cluster's own.
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the three ingesters and waits until each is ready and every
    /// shard has a leader that every ingester knows.
    fn start() -> Cluster {
        Self::start_with(&[])
    }

    /// As [`Cluster::start`], every ingester with the flags `extra` too.
    fn start_with(extra: &[String]) -> Cluster {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let ports = distinct_ports(2 * NODES as usize);
        let nodes: Vec<Node> = (1..=NODES)
            .map(|id| {
                let i = (id - 1) as usize;
                Node {
                    id,
                    grpc: ports[2 * i],
                    http: ports[2 * i + 1],
                    data: dir.path().join(format!("node-{id}")),
                    proc: None,
                    stopped: false,
                    starts: 0,
                }
            })
            .collect();
        let peers = nodes
            .iter()
            .map(|n| format!("{}=127.0.0.1:{}", n.id, n.grpc))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nodes,
            peers,
            extra: extra.to_vec(),
            dir,
        };
        // All processes first: a node may need its peers to become ready.
        for id in 1..=NODES {
            cluster.launch(id);
        }
        for id in 1..=NODES {
            cluster.wait_ready(id);
        }
        cluster.wait_leaders();
        cluster.check_status_shape();
        cluster
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// The HTTP base URL of ingester `id`.
    fn base(&self, id: u64) -> String {
        format!("http://127.0.0.1:{}", self.node(id).http)
    }

    /// The remote-write URL of ingester `id`.
    fn write_url(&self, id: u64) -> String {
        format!("{}/api/v1/write", self.base(id))
    }

    /// The remote-write URLs of every ingester, running or not.
    fn write_urls(&self) -> Vec<String> {
        (1..=NODES).map(|id| self.write_url(id)).collect()
    }

    /// The StoreAPI (gRPC) ports of every ingester.
    fn grpc_ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.grpc).collect()
    }

    /// The ingesters that run and are not frozen.
    fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.proc.is_some() && !n.stopped)
            .map(|n| n.id)
            .collect()
    }

    /// Starts ingester `id`'s process on its ports and data directory
    /// (without waiting for it).
    fn launch(&mut self, id: u64) {
        let peers = self.peers.clone();
        let extra = self.extra.clone();
        let dir = self.dir.path().to_path_buf();
        let node = self.node_mut(id);
        node.starts += 1;
        let log = dir.join(format!("node-{id}.start-{}.log", node.starts));
        std::fs::create_dir_all(&node.data).expect("create an ingester's data directory");
        let args = vec![
            "ingest".to_string(),
            format!("--node-id={id}"),
            format!("--peers={peers}"),
            format!("--grpc-address=127.0.0.1:{}", node.grpc),
            format!("--http-address=127.0.0.1:{}", node.http),
            format!("--data-dir={}", node.data.display()),
            format!("--shards={SHARDS}"),
            format!("--replication-factor={NODES}"),
            "--raft.tick-interval=100ms".to_string(),
            "--raft.election-ticks=10".to_string(),
            "--raft.heartbeat-ticks=2".to_string(),
            "--write-timeout=5s".to_string(),
        ];
        let args: Vec<String> = args.into_iter().chain(extra).collect();
        node.proc = Some(spawn(&hearth_bin(), &args, Some(&log)));
        node.stopped = false;
    }

    /// Waits (60 s at most) until ingester `id` answers 200 on `/-/ready`;
    /// fails at once if its process exits.
    fn wait_ready(&mut self, id: u64) {
        let url = format!("{}/-/ready", self.base(id));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let exited = self
                .node_mut(id)
                .proc
                .as_mut()
                .and_then(|p| p.0.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "ingester {id} exited ({status}) before it was ready\n{}",
                    self.logs()
                );
            }
            let ready = client()
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ingester {id} did not answer 200 on /-/ready within 60 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL ingester `id` and wait for it.
    fn kill(&mut self, id: u64) {
        if let Some(mut p) = self.node_mut(id).proc.take() {
            p.kill();
        }
    }

    /// Starts ingester `id` again on the same data directory and waits
    /// until it is ready.
    fn restart(&mut self, id: u64) {
        self.kill(id);
        self.launch(id);
        self.wait_ready(id);
    }

    /// Freezes ingester `id` (SIGSTOP): it holds its sockets but answers
    /// nothing, as a node cut off by a partition.
    fn freeze(&mut self, id: u64) {
        let pid = self
            .node(id)
            .proc
            .as_ref()
            .expect("a running ingester")
            .0
            .id();
        signal(pid, "STOP");
        self.node_mut(id).stopped = true;
    }

    /// Lets a frozen ingester go on (SIGCONT).
    fn thaw(&mut self, id: u64) {
        let pid = self
            .node(id)
            .proc
            .as_ref()
            .expect("a running ingester")
            .0
            .id();
        signal(pid, "CONT");
        self.node_mut(id).stopped = false;
    }

    /// `/api/v1/ingest/status`'s data of ingester `id`.
    fn status(&self, id: u64) -> Result<Value, String> {
        api_get(
            &self.base(id),
            "/api/v1/ingest/status",
            &[],
            Duration::from_secs(2),
        )
        .map_err(|e| format!("status of ingester {id}: {e}"))
    }

    /// Ok once every shard has exactly one live node in the role of leader
    /// and every live node names it as the shard's leader; else what is not
    /// so yet.
    fn leaders_agreed(&self) -> Result<(), String> {
        let live = self.live();
        let statuses = live
            .iter()
            .map(|&id| self.status(id).map(|s| (id, s)))
            .collect::<Result<Vec<_>, _>>()?;
        for shard in 0..SHARDS {
            let mut leaders = BTreeSet::new();
            let mut named = BTreeSet::new();
            for (id, status) in &statuses {
                let s = shard_status(status, shard).ok_or_else(|| {
                    format!("ingester {id} does not list shard {shard}: {status}")
                })?;
                if s["role"] == "leader" {
                    leaders.insert(*id);
                }
                named.insert(s["leader"].as_u64().unwrap_or(0));
            }
            if leaders.len() != 1 || named != leaders {
                return Err(format!(
                    "shard {shard}: nodes in the role of leader {leaders:?}, leaders named by the \
                     live nodes {named:?}"
                ));
            }
        }
        Ok(())
    }

    /// Waits (30 s at most) until every shard has a leader every live node
    /// knows.
    fn wait_leaders(&self) {
        if let Err(e) = poll(Duration::from_secs(30), || self.leaders_agreed()) {
            panic!(
                "no agreed leader for every shard within 30 s: {e}\n{}",
                self.logs()
            );
        }
    }

    /// The live node that leads `shard` (the one with the highest term if
    /// two think they do), waiting 20 s at most for one.
    fn leader_of(&self, shard: u64) -> u64 {
        let found = poll(Duration::from_secs(20), || {
            let mut best: Option<(u64, u64)> = None;
            for id in self.live() {
                let Ok(status) = self.status(id) else {
                    continue;
                };
                let Some(s) = shard_status(&status, shard) else {
                    continue;
                };
                if s["role"] == "leader" {
                    let term = s["term"].as_u64().unwrap_or(0);
                    if best.is_none_or(|(t, _)| term > t) {
                        best = Some((term, id));
                    }
                }
            }
            best.map(|(_, id)| id)
                .ok_or_else(|| format!("no live ingester leads shard {shard}"))
        });
        found.unwrap_or_else(|e| panic!("{e} within 20 s\n{}", self.logs()))
    }

    /// The status reads as documented: each ingester names itself, holds a
    /// replica of every shard with voters 1, 2, 3, and a leader lists the
    /// other two as its replicas.
    fn check_status_shape(&self) {
        for id in self.live() {
            let status = self
                .status(id)
                .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
            assert_eq!(
                status["node_id"].as_u64(),
                Some(id),
                "ingester {id}'s status names another node: {status}"
            );
            let shards = status["shards"]
                .as_array()
                .unwrap_or_else(|| panic!("ingester {id}'s status has no shards array: {status}"));
            let mut listed: Vec<u64> = shards.iter().filter_map(|s| s["shard"].as_u64()).collect();
            listed.sort_unstable();
            assert_eq!(
                listed,
                (0..SHARDS).collect::<Vec<_>>(),
                "with {NODES} ingesters and replication factor {NODES} ingester {id} holds a \
                 replica of every shard: {status}"
            );
            for s in shards {
                let mut voters: Vec<u64> = s["voters"]
                    .as_array()
                    .map(|v| v.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                voters.sort_unstable();
                assert_eq!(
                    voters,
                    (1..=NODES).collect::<Vec<_>>(),
                    "ingester {id}: a shard's voters are every ingester: {s}"
                );
                for field in [
                    "term",
                    "commit",
                    "applied",
                    "first_index",
                    "last_index",
                    "snapshot_index",
                ] {
                    assert!(
                        s[field].is_u64(),
                        "ingester {id}: a shard's status lacks the number {field}: {s}"
                    );
                }
                if s["role"] == "leader" {
                    let replicas: BTreeSet<u64> = s["replicas"]
                        .as_array()
                        .map(|r| r.iter().filter_map(|r| r["node"].as_u64()).collect())
                        .unwrap_or_default();
                    for other in (1..=NODES).filter(|&n| n != id) {
                        assert!(
                            replicas.contains(&other),
                            "ingester {id} leads a shard but does not list ingester {other} \
                             among its replicas: {s}"
                        );
                    }
                }
            }
        }
    }

    /// The last lines of every log in the cluster's directory (every start
    /// of every ingester, and the querier's).
    fn logs(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "log"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| {
                format!(
                    "--- last lines of {} ---\n{}",
                    p.file_name().unwrap_or_default().to_string_lossy(),
                    tail(p, 20)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The entry of `shard` in an ingester's status.
fn shard_status(status: &Value, shard: u64) -> Option<&Value> {
    status["shards"]
        .as_array()?
        .iter()
        .find(|s| s["shard"].as_u64() == Some(shard))
}

/// `hearth query` over the StoreAPI ports `endpoints`, deduplicating by
/// `replica`; its process and base URL once it is ready. Logs to
/// `dir/query.log`.
fn start_query(dir: &Path, endpoints: &[u16]) -> (Proc, String) {
    let http = free_port();
    let mut args = vec!["query".to_string()];
    args.extend(
        endpoints
            .iter()
            .map(|p| format!("--endpoint=127.0.0.1:{p}")),
    );
    args.extend([
        "--query.replica-label=replica".to_string(),
        format!("--http-address=127.0.0.1:{http}"),
        "--store.refresh-interval=1s".to_string(),
    ]);
    let log = dir.join("query.log");
    let p = spawn(&hearth_bin(), &args, Some(&log));
    let url = format!("http://127.0.0.1:{http}");
    let ready = poll(Duration::from_secs(60), || {
        client()
            .get(format!("{url}/-/ready"))
            .timeout(Duration::from_secs(2))
            .send()
            .map_err(|e| e.to_string())
            .and_then(|r| {
                r.status()
                    .is_success()
                    .then_some(())
                    .ok_or_else(|| r.status().to_string())
            })
    });
    if let Err(e) = ready {
        panic!(
            "hearth query not ready within 60 s ({e})\n{}",
            tail(&log, 30)
        );
    }
    (p, url)
}

// ---------------------------------------------------------------------------
// Writing.

/// One answer to one attempt of a remote write.
struct Answer {
    url: String,
    /// None: no HTTP answer (connection refused, reset, timed out).
    status: Option<u16>,
    text: String,
    took: Duration,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(
                f,
                "{} → {s} after {:?}: {}",
                self.url,
                self.took,
                self.text.trim()
            ),
            None => write!(
                f,
                "{} → no answer after {:?}: {}",
                self.url, self.took, self.text
            ),
        }
    }
}

/// How a remote write retried until settled ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// 2xx: committed on a quorum.
    Acknowledged,
    /// 4xx: the client's fault.
    Rejected,
    /// Still 503s or no answers when the time was up.
    Unsettled,
}

/// A remote write retried until settled: its outcome, every answer, and
/// the time from the first attempt to the last answer.
struct Delivery {
    outcome: Outcome,
    answers: Vec<Answer>,
    took: Duration,
}

impl Delivery {
    /// Every answer, one a line.
    fn listing(&self) -> String {
        self.answers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Posts the same remote-write `body` round-robin over `urls` (from
/// `urls[first]`), again after a 5xx or no answer, until an answer settles
/// it (2xx or 4xx) or `within` has passed.
fn deliver(urls: &[String], first: usize, body: &[u8], within: Duration) -> Delivery {
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in first.. {
        let url = &urls[i % urls.len()];
        let attempt = Instant::now();
        let (status, text) = match post_write(client(), url, body.to_vec()) {
            Ok((status, text)) => (Some(status), text),
            Err(e) => (None, e.to_string()),
        };
        answers.push(Answer {
            url: url.clone(),
            status,
            text,
            took: attempt.elapsed(),
        });
        let outcome = match status {
            Some(200..=299) => Some(Outcome::Acknowledged),
            Some(400..=499) => Some(Outcome::Rejected),
            _ if started.elapsed() >= within => Some(Outcome::Unsettled),
            _ => None,
        };
        if let Some(outcome) = outcome {
            return Delivery {
                outcome,
                answers,
                took: started.elapsed(),
            };
        }
        // A 503 took its time already; connection refused is immediate.
        std::thread::sleep(Duration::from_millis(if status.is_some() {
            50
        } else {
            20
        }));
    }
    unreachable!("the loop over an unbounded range only returns")
}

/// The name of the writer's `k`th series as the query API shows it.
fn writer_series_key(k: usize) -> String {
    key(&[
        ("__name__", "ingest_test"),
        ("series", k.to_string().as_str()),
        ("tenant_id", DEFAULT_TENANT),
    ])
}

/// The samples a test writes to the series `ingest_test{series="0".."19"}`:
/// one request per [`Ledger::next`], the same (t, v) for every series; t
/// strictly increasing (the wall clock in ms, or one more than the last), v
/// the request's number. Records what was sent and what was acknowledged.
#[derive(Default)]
struct Ledger {
    last_t: i64,
    requests: u64,
    /// t → v of every request sent.
    attempted: BTreeMap<i64, f64>,
    /// t → v of every request answered 204.
    acknowledged: BTreeMap<i64, f64>,
}

impl Ledger {
    /// The next request: its timestamp, its value and its body.
    fn next(&mut self) -> (i64, f64, Vec<u8>) {
        let t = now_ms().max(self.last_t + 1);
        self.last_t = t;
        self.requests += 1;
        let v = self.requests as f64;
        self.attempted.insert(t, v);
        let body = write_body(
            (0..WRITER_SERIES)
                .map(|k| {
                    series(
                        &[
                            ("__name__", "ingest_test"),
                            ("series", k.to_string().as_str()),
                        ],
                        &[(t, v)],
                    )
                })
                .collect(),
        );
        (t, v, body)
    }

    /// Records the request of timestamp `t` as acknowledged.
    fn acknowledge(&mut self, t: i64) {
        let v = self.attempted[&t];
        self.acknowledged.insert(t, v);
    }
}

/// Writes the ledger's next request to `urls` (retried until settled, for
/// `within` at most) and fails the test, saying `what` it was, unless it is
/// acknowledged. Gives the time it took.
fn write_acknowledged(
    cluster: &Cluster,
    ledger: &mut Ledger,
    urls: &[String],
    within: Duration,
    what: &str,
) -> Duration {
    let (t, _, body) = ledger.next();
    let d = deliver(urls, 0, &body, within);
    assert!(
        d.outcome == Outcome::Acknowledged,
        "a write {what} was not acknowledged within {within:?} ({:?}); answers:\n{}\n{}",
        d.outcome,
        d.listing(),
        cluster.logs()
    );
    ledger.acknowledge(t);
    d.took
}

/// What a [`Writer`] did.
struct WriterReport {
    ledger: Ledger,
    /// First attempt to acknowledgement, of every acknowledged request.
    latencies: Vec<Duration>,
    /// The answers of requests that were refused (4xx): none should be.
    rejected: Vec<String>,
    /// Answers neither 2xx, 400 nor 503 (the first 20).
    unexpected: Vec<String>,
    /// Requests neither acknowledged nor refused within 60 s.
    unsettled: usize,
}

/// Writes in the background: every ~20 ms one request of the [`Ledger`],
/// round-robin over the ingesters, the same request again (to the next
/// ingester) after a 503 or no answer until it is acknowledged or refused.
struct Writer {
    stopping: Arc<AtomicBool>,
    /// (first attempt, acknowledgement) of every acknowledged request.
    acks: Arc<Mutex<Vec<(Instant, Instant)>>>,
    thread: Option<JoinHandle<WriterReport>>,
}

impl Writer {
    /// Starts writing to the remote-write `urls`.
    fn start(urls: Vec<String>) -> Writer {
        let stopping = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stopping = Arc::clone(&stopping);
            let acks = Arc::clone(&acks);
            std::thread::spawn(move || write_loop(&urls, &stopping, &acks))
        };
        Writer {
            stopping,
            acks,
            thread: Some(thread),
        }
    }

    /// Requests acknowledged so far.
    fn acknowledged(&self) -> usize {
        self.acks.lock().expect("the acks lock").len()
    }

    /// From `since` to the acknowledgement of the first request first
    /// attempted after `since`, if there is one yet: how long writes took to
    /// go through again after a fault at `since`.
    fn recovered_after(&self, since: Instant) -> Option<Duration> {
        self.acks
            .lock()
            .expect("the acks lock")
            .iter()
            .find(|(started, _)| *started >= since)
            .map(|(_, acked)| *acked - since)
    }

    /// Stops writing (the request in flight is settled first) and reports.
    fn stop(mut self) -> WriterReport {
        self.stopping.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("a writer is stopped once")
            .join()
            .expect("the writer thread panicked")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
    }
}

/// The [`Writer`]'s thread.
fn write_loop(
    urls: &[String],
    stopping: &AtomicBool,
    acks: &Mutex<Vec<(Instant, Instant)>>,
) -> WriterReport {
    let mut report = WriterReport {
        ledger: Ledger::default(),
        latencies: Vec::new(),
        rejected: Vec::new(),
        unexpected: Vec::new(),
        unsettled: 0,
    };
    let mut turn = 0;
    while !stopping.load(Ordering::SeqCst) {
        let (t, _, body) = report.ledger.next();
        let started = Instant::now();
        let d = deliver(urls, turn, &body, Duration::from_secs(60));
        turn += 1;
        for a in &d.answers {
            let expected = a
                .status
                .is_none_or(|s| s == 503 || s == 400 || (200..300).contains(&s));
            if !expected && report.unexpected.len() < 20 {
                report.unexpected.push(format!("t={t}: {a}"));
            }
        }
        match d.outcome {
            Outcome::Acknowledged => {
                report.ledger.acknowledge(t);
                report.latencies.push(d.took);
                acks.lock()
                    .expect("the acks lock")
                    .push((started, Instant::now()));
            }
            Outcome::Rejected => report.rejected.push(format!(
                "t={t}: {}",
                d.answers
                    .last()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )),
            Outcome::Unsettled => report.unsettled += 1,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    report
}

/// Fails the test if the writer saw a refusal or an answer outside the
/// interface, or got (almost) nothing through.
fn check_writer(cluster: &Cluster, report: &WriterReport, at_least: usize) {
    assert!(
        report.rejected.is_empty(),
        "{} writer requests were refused (4xx), none should be:\n{}\n{}",
        report.rejected.len(),
        report.rejected.join("\n"),
        cluster.logs()
    );
    assert!(
        report.unexpected.is_empty(),
        "answers other than 204, 400 or 503 to the writer:\n{}\n{}",
        report.unexpected.join("\n"),
        cluster.logs()
    );
    assert!(
        report.ledger.acknowledged.len() >= at_least,
        "only {} of {} writer requests acknowledged ({} unsettled), want {at_least} at least\n{}",
        report.ledger.acknowledged.len(),
        report.ledger.requests,
        report.unsettled,
        cluster.logs()
    );
}

// ---------------------------------------------------------------------------
// Checking the replicas.

/// What is wrong with the `ingest_test` samples one ingester holds, given
/// the ledger: acknowledged samples missing, a timestamp twice, samples
/// never sent, series that are not the writer's.
fn problems(held: &SeriesSamples, ledger: &Ledger) -> Vec<String> {
    let mut out = Vec::new();
    let expected: BTreeSet<String> = (0..WRITER_SERIES).map(writer_series_key).collect();
    for name in held.keys().filter(|n| !expected.contains(*n)) {
        out.push(format!("a series the writer did not write: {name}"));
    }
    for name in &expected {
        let samples = held.get(name).map(Vec::as_slice).unwrap_or_default();
        let mut seen = BTreeSet::new();
        let mut twice = Vec::new();
        let mut never_sent = Vec::new();
        for &(t, v) in samples {
            if !seen.insert(t) {
                twice.push(t);
            }
            if ledger.attempted.get(&t) != Some(&v) {
                never_sent.push((t, v));
            }
        }
        let missing: Vec<i64> = ledger
            .acknowledged
            .keys()
            .filter(|t| !seen.contains(*t))
            .copied()
            .collect();
        if !missing.is_empty() {
            out.push(format!(
                "{name}: {} of {} acknowledged samples missing (holds {}), the first at {:?}",
                missing.len(),
                ledger.acknowledged.len(),
                samples.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        if !twice.is_empty() {
            out.push(format!(
                "{name}: {} timestamps twice, the first {:?}",
                twice.len(),
                &twice[..twice.len().min(5)]
            ));
        }
        if !never_sent.is_empty() {
            out.push(format!(
                "{name}: {} samples never sent, the first {:?}",
                never_sent.len(),
                &never_sent[..never_sent.len().min(5)]
            ));
        }
    }
    out
}

/// How two ingesters' samples differ, series by series.
fn difference(a: &SeriesSamples, b: &SeriesSamples) -> String {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let as_set = |m: &SeriesSamples, n: &String| -> BTreeSet<(i64, u64)> {
        m.get(n)
            .map(|s| s.iter().map(|&(t, v)| (t, v.to_bits())).collect())
            .unwrap_or_default()
    };
    names
        .into_iter()
        .filter_map(|n| {
            let (sa, sb) = (as_set(a, n), as_set(b, n));
            (sa != sb).then(|| {
                let only_a: Vec<i64> = sa.difference(&sb).take(3).map(|p| p.0).collect();
                let only_b: Vec<i64> = sb.difference(&sa).take(3).map(|p| p.0).collect();
                format!(
                    "{n}: {} vs {} samples, only in the first at {only_a:?}, only in the second \
                     at {only_b:?}",
                    sa.len(),
                    sb.len()
                )
            })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Waits (`within` at most) until every live ingester holds every
/// acknowledged sample of the ledger, each once, nothing never sent, and
/// all hold the same samples; fails the test with what is wrong otherwise.
fn wait_replicas_hold(cluster: &Cluster, ledger: &Ledger, within: Duration) {
    let at = ledger.last_t as f64 / 1000.0 + 1.0;
    let agreed = poll(within, || {
        let mut issues = Vec::new();
        let mut views: Vec<(u64, SeriesSamples)> = Vec::new();
        for id in cluster.live() {
            match matrix(&cluster.base(id), "ingest_test[1h]", at, &[]) {
                Ok(held) => {
                    issues.extend(
                        problems(&held, ledger)
                            .into_iter()
                            .map(|p| format!("ingester {id}: {p}")),
                    );
                    views.push((id, held));
                }
                Err(e) => issues.push(format!("ingester {id}: {e}")),
            }
        }
        if let Some((first_id, first)) = views.first() {
            for (id, held) in &views[1..] {
                if held != first {
                    issues.push(format!(
                        "ingesters {first_id} and {id} hold different samples: {}",
                        difference(first, held)
                    ));
                }
            }
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues.join("\n"))
        }
    });
    if let Err(issues) = agreed {
        panic!(
            "after {within:?} the replicas still do not hold what was acknowledged ({} of {} \
             requests):\n{issues}\n{}",
            ledger.acknowledged.len(),
            ledger.requests,
            cluster.logs()
        );
    }
}

/// The value at fraction `p` (0..=1) of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---------------------------------------------------------------------------
// Prometheus remote-writing to the cluster, and requests made by hand.

/// Gauges the in-test exporter serves beside its counter: enough series
/// that every shard gets some.
const EXPORTER_GAUGES: usize = 24;
/// The series Prometheus adds to every scrape (`up`, `scrape_*`).
const SCRAPE_SERIES: usize = 5;

/// Serves `exporter_gauge{n="0".."23"}`, whose values follow the wall
/// clock, and `exporter_scrapes_total`, the number of scrapes served, for
/// the rest of the test process.
fn start_exporter() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the exporter's port");
    let port = listener
        .local_addr()
        .expect("the exporter's address")
        .port();
    std::thread::spawn(move || {
        for (n, conn) in (1u64..).zip(listener.incoming().flatten()) {
            std::thread::spawn(move || serve_exposition(conn, n));
        }
    });
    port
}

/// Answers the `n`th scrape on `conn` and closes it.
fn serve_exposition(mut conn: TcpStream, n: u64) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_or(true, |read| read == 0) || line.trim().is_empty() {
            break;
        }
    }
    let wall = (now_ms() % 100_000) as f64 / 8.0;
    let mut body = String::from("# TYPE exporter_gauge gauge\n");
    for k in 0..EXPORTER_GAUGES {
        body.push_str(&format!(
            "exporter_gauge{{n=\"{k}\"}} {}\n",
            wall + k as f64
        ));
    }
    body.push_str(&format!(
        "# TYPE exporter_scrapes_total counter\nexporter_scrapes_total {n}\n"
    ));
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A Prometheus configuration: the exporter on port `exporter` scraped
/// every second as job `exporter`, everything remote-written to
/// `write_url`, retried quickly (100 ms to 1 s apart).
fn prometheus_config(exporter: u16, write_url: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: exporter\n    static_configs:\n      \
         - targets: ['127.0.0.1:{exporter}']\n\
         remote_write:\n  - url: {write_url}\n    remote_timeout: 10s\n    queue_config:\n      \
         batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n"
    )
}

/// The sum of metric `name` over its label sets on `base`'s `/metrics`
/// (0 when it has none).
fn metric_sum(base: &str, name: &str) -> Result<f64, String> {
    let text = client()
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .map_err(|e| format!("GET {base}/metrics: {e}"))?;
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = match rest.strip_prefix('{') {
            Some(labelled) => labelled.rsplit_once('}').map(|(_, v)| v),
            None if rest.starts_with(' ') => Some(rest),
            None => continue,
        };
        let value: f64 = value
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{base}/metrics: a line without a value: {line:?}"))?;
        sum += value;
    }
    Ok(sum)
}

/// Prometheus's remote-write counters, summed over its queues.
#[derive(Debug, Default)]
struct RemoteWriteCounters {
    sent: f64,
    retried: f64,
    failed: f64,
    dropped: f64,
}

impl RemoteWriteCounters {
    fn read(prometheus: &str) -> Result<Self, String> {
        let get = |what: &str| metric_sum(prometheus, &format!("prometheus_remote_storage_{what}"));
        Ok(Self {
            sent: get("samples_total")?,
            retried: get("samples_retried_total")?,
            failed: get("samples_failed_total")?,
            dropped: get("samples_dropped_total")?,
        })
    }

    /// Samples Prometheus gave up on: at most this many may be missing.
    fn lost(&self) -> usize {
        (self.failed + self.dropped) as usize
    }
}

/// [`matrix`] on an ingester, each series without its `tenant_id` label,
/// which must name the default tenant: the series as their writer named
/// them.
fn matrix_without_tenant(base: &str, query: &str, at_s: f64) -> Result<SeriesSamples, String> {
    let mut result = matrix_result(base, query, at_s, &[])?;
    for s in result.as_array_mut().into_iter().flatten() {
        let tenant = s["metric"]
            .as_object_mut()
            .and_then(|m| m.remove("tenant_id"));
        if tenant.as_ref().and_then(Value::as_str) != Some(DEFAULT_TENANT) {
            return Err(format!(
                "{query}: a series whose tenant_id is {tenant:?}, want {DEFAULT_TENANT:?}: {s}"
            ));
        }
    }
    parse_matrix(&result)
}

/// How the samples an ingester holds compare with Prometheus's own over a
/// window.
#[derive(Default)]
struct Comparison {
    /// Prometheus's samples looked up.
    compared: usize,
    /// Prometheus's samples the ingester lacks (or holds with another
    /// value).
    missing: usize,
    /// The ingester's samples strictly inside the window that Prometheus
    /// does not hold.
    extra: usize,
    /// The first few of either, described.
    examples: Vec<String>,
}

/// Compares `held` (queried over more than the window) with `prometheus`
/// (queried over the window from `from_ms` to `to_ms`).
fn compare_with_prometheus(
    prometheus: &SeriesSamples,
    held: &SeriesSamples,
    (from_ms, to_ms): (i64, i64),
) -> Comparison {
    let as_set = |samples: Option<&Vec<(i64, f64)>>| -> BTreeSet<(i64, u64)> {
        samples
            .into_iter()
            .flatten()
            .map(|&(t, v)| (t, v.to_bits()))
            .collect()
    };
    let mut c = Comparison::default();
    let names: BTreeSet<&String> = prometheus.keys().chain(held.keys()).collect();
    for name in names {
        let want = as_set(prometheus.get(name));
        let got = as_set(held.get(name));
        c.compared += want.len();
        for &(t, bits) in want.difference(&got) {
            c.missing += 1;
            if c.examples.len() < 5 {
                c.examples
                    .push(format!("missing {name} at {t} = {}", f64::from_bits(bits)));
            }
        }
        for &(t, bits) in got.difference(&want) {
            if t > from_ms && t < to_ms {
                c.extra += 1;
                if c.examples.len() < 5 {
                    c.examples.push(format!(
                        "not in Prometheus: {name} at {t} = {}",
                        f64::from_bits(bits)
                    ));
                }
            }
        }
    }
    c
}

/// The answer to a request made by hand.
struct Reply {
    status: u16,
    /// `X-Prometheus-Remote-Write-Samples-Written`, if given.
    samples_written: Option<String>,
    text: String,
}

/// POSTs `body` to `url` with `headers`.
fn post_raw(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Reply, String> {
    let mut request = client().post(url).timeout(Duration::from_secs(30));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request
        .body(body)
        .send()
        .map_err(|e| format!("POST {url} {headers:?}: {e}"))?;
    let status = r.status().as_u16();
    let samples_written = r
        .headers()
        .get("X-Prometheus-Remote-Write-Samples-Written")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Ok(Reply {
        status,
        samples_written,
        text: r.text().unwrap_or_default(),
    })
}

/// The headers of a remote write of `protocol`, with `encoding` as its
/// `Content-Encoding`.
fn write_headers(
    protocol: WriteProtocol,
    encoding: &'static str,
) -> Vec<(&'static str, &'static str)> {
    vec![
        ("Content-Encoding", encoding),
        ("Content-Type", protocol.content_type()),
        (
            "X-Prometheus-Remote-Write-Version",
            protocol.version_header(),
        ),
    ]
}

/// One series of [`write_body_v2`]: its labels (in any order) and samples.
type SeriesV2<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

/// A remote write 2.0 body: each series' labels (sorted here) and
/// samples, the strings interned in the symbols table.
fn write_body_v2(series: &[SeriesV2<'_>]) -> Vec<u8> {
    let mut symbols = vec![String::new()];
    let mut refs: BTreeMap<String, u32> = BTreeMap::new();
    let mut intern = |s: &str| -> u32 {
        *refs.entry(s.to_string()).or_insert_with(|| {
            symbols.push(s.to_string());
            (symbols.len() - 1) as u32
        })
    };
    let timeseries = series
        .iter()
        .map(|(labels, samples)| {
            let sorted: BTreeMap<&str, &str> = labels.iter().copied().collect();
            write_v2::TimeSeries {
                labels_refs: sorted
                    .iter()
                    .flat_map(|(name, value)| [intern(name), intern(value)])
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(timestamp, value)| write_v2::Sample {
                        value,
                        timestamp,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    encode_write_request_v2(&write_v2::Request {
        symbols,
        timeseries,
    })
}

/// A request the receiver must refuse, and the status it must answer.
struct Refusal {
    what: &'static str,
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

/// Per shard, its leader as the leader itself reports it: (ingester, term,
/// last log index).
fn log_tips(cluster: &Cluster) -> Result<BTreeMap<u64, (u64, u64, u64)>, String> {
    let mut tips = BTreeMap::new();
    for id in cluster.live() {
        let status = cluster.status(id)?;
        for shard in 0..SHARDS {
            let Some(s) = shard_status(&status, shard).filter(|s| s["role"] == "leader") else {
                continue;
            };
            let tip = (
                id,
                s["term"].as_u64().unwrap_or(0),
                s["last_index"].as_u64().unwrap_or(0),
            );
            if let Some(other) = tips.insert(shard, tip) {
                return Err(format!(
                    "shard {shard} has two leaders: {other:?} and {tip:?}"
                ));
            }
        }
    }
    match (0..SHARDS).find(|s| !tips.contains_key(s)) {
        Some(shard) => Err(format!("shard {shard} has no leader")),
        None => Ok(tips),
    }
}

/// Shard parts of writes proposed or forwarded, over every ingester.
fn proposals_and_forwards(cluster: &Cluster) -> Result<f64, String> {
    let mut sum = 0.0;
    for id in cluster.live() {
        let base = cluster.base(id);
        sum += metric_sum(&base, "hearth_ingest_proposals_total")?;
        sum += metric_sum(&base, "hearth_ingest_forwarded_writes_total")?;
    }
    Ok(sum)
}

// ---------------------------------------------------------------------------
// The tests.

/// SIGKILL the leader of each shard in turn under a steady write load: no
/// acknowledged sample is lost or doubled, and writes go through again
/// within 5 s of each kill.
#[test]
fn sigkill_of_shard_leaders_loses_no_acknowledged_sample() {
    let _serial = serial();
    let mut cluster = Cluster::start();
    let writer = Writer::start(cluster.write_urls());
    if let Err(e) = poll(Duration::from_secs(15), || {
        (writer.acknowledged() > 0)
            .then_some(())
            .ok_or_else(|| "no write acknowledged".to_string())
    }) {
        panic!("{e} within 15 s of a healthy cluster\n{}", cluster.logs());
    }
    std::thread::sleep(Duration::from_secs(2));

    let mut recoveries = Vec::new();
    for round in 0..4u64 {
        let shard = round % SHARDS;
        let victim = cluster.leader_of(shard);
        let killed_at = Instant::now();
        cluster.kill(victim);
        std::thread::sleep(Duration::from_secs(3));
        let recovery = poll(Duration::from_secs(7), || {
            writer
                .recovered_after(killed_at)
                .ok_or_else(|| "none".to_string())
        })
        .unwrap_or_else(|_| {
            panic!(
                "round {round}: no write acknowledged within 10 s of the SIGKILL of ingester \
                 {victim}, the leader of shard {shard}\n{}",
                cluster.logs()
            )
        });
        println!(
            "round {round}: SIGKILL of ingester {victim} (leader of shard {shard}); writes \
             acknowledged again after {recovery:?}"
        );
        recoveries.push(recovery);
        cluster.restart(victim);
        std::thread::sleep(Duration::from_secs(3));
    }
    let report = writer.stop();

    let mut latencies = report.latencies.clone();
    latencies.sort_unstable();
    let mut sorted_recoveries = recoveries.clone();
    sorted_recoveries.sort_unstable();
    println!(
        "recovery after the SIGKILL of a shard leader: min {:?}, median {:?}, max {:?}",
        percentile(&sorted_recoveries, 0.0),
        percentile(&sorted_recoveries, 0.5),
        percentile(&sorted_recoveries, 1.0)
    );
    println!(
        "write latency (first attempt to 204) of {} acknowledged requests ({} sent, {} \
         unsettled): p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        report.ledger.requests,
        report.unsettled,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );

    check_writer(&cluster, &report, 100);
    // The restarted followers catch up.
    wait_replicas_hold(&cluster, &report.ledger, Duration::from_secs(20));
    for (round, r) in recoveries.iter().enumerate() {
        assert!(
            *r < Duration::from_secs(5),
            "round {round}: writes were acknowledged again only {r:?} after the SIGKILL of a \
             shard leader, want under 5 s (all rounds: {recoveries:?})"
        );
    }
}

/// With one ingester of three frozen the other two acknowledge writes;
/// with two frozen the last one never does (503); once all run again
/// writes are acknowledged and the three replicas agree.
#[test]
fn partitioned_minority_never_acknowledges() {
    let _serial = serial();
    let mut cluster = Cluster::start();
    let mut ledger = Ledger::default();
    let all = cluster.write_urls();
    write_acknowledged(
        &cluster,
        &mut ledger,
        &all,
        Duration::from_secs(10),
        "to a healthy cluster",
    );

    // A majority: the leader of shard 0 frozen, the other two write.
    let first = cluster.leader_of(0);
    cluster.freeze(first);
    let majority = cluster.live();
    for &id in &majority {
        for _ in 0..3 {
            let took = write_acknowledged(
                &cluster,
                &mut ledger,
                &[cluster.write_url(id)],
                Duration::from_secs(10),
                &format!("sent to ingester {id} with ingester {first} frozen"),
            );
            println!("ingester {first} frozen: a write to ingester {id} acknowledged in {took:?}");
        }
    }

    // A minority: a second one frozen, the last one alone.
    let (second, lone) = (majority[0], majority[1]);
    cluster.freeze(second);
    let (_, _, body) = ledger.next();
    let d = deliver(
        &[cluster.write_url(lone)],
        0,
        &body,
        Duration::from_secs(10),
    );
    println!(
        "ingesters {first} and {second} frozen, answers of ingester {lone}:\n{}",
        d.listing()
    );
    assert!(
        d.answers.iter().all(|a| a.status.is_none_or(|s| s >= 500)),
        "ingester {lone}, alone of three, settled a write it cannot have committed on a quorum \
         (a 2xx loses data, a 4xx refuses a retry):\n{}\n{}",
        d.listing(),
        cluster.logs()
    );
    let first_answer = &d.answers[0];
    assert!(
        first_answer.status == Some(503) && first_answer.took < Duration::from_secs(8),
        "ingester {lone}, alone of three, should answer 503 within its 5 s write timeout; its \
         first answer: {first_answer}\n{}",
        cluster.logs()
    );

    // All three again.
    cluster.thaw(first);
    cluster.thaw(second);
    let took = write_acknowledged(
        &cluster,
        &mut ledger,
        &all,
        Duration::from_secs(10),
        "after SIGCONT of the frozen ingesters",
    );
    println!("after SIGCONT a write was acknowledged in {took:?}");
    for id in 1..=NODES {
        write_acknowledged(
            &cluster,
            &mut ledger,
            &[cluster.write_url(id)],
            Duration::from_secs(10),
            &format!("sent to ingester {id} after SIGCONT"),
        );
    }
    cluster.wait_leaders();
    // The unacknowledged write of the minority may or may not have been
    // committed since; either way the three agree.
    wait_replicas_hold(&cluster, &ledger, Duration::from_secs(20));
}

/// A write that reaches a follower after its shard's leader stopped
/// answering goes to the newly elected leader once the follower knows it,
/// never to the frozen leader it last forwarded to. Found by the chaos
/// suite: in containers a killed leader's connections hang instead of
/// being reset, and the parts a follower forwarded to the leader it had
/// cached waited out a 2 s attempt even after the shard had elected
/// another (5.7 s to accept writes again after a leader kill, over 5 s).
#[test]
fn forwards_follow_the_new_leader_not_the_frozen_one() {
    let _serial = serial();
    let mut cluster = Cluster::start();
    let mut ledger = Ledger::default();
    let victim = cluster.leader_of(0);
    let via = (1..=NODES)
        .find(|&id| id != victim)
        .expect("three ingesters");
    let through = [cluster.write_url(via)];
    // Writes through `via` forward shard 0's part to the victim, which
    // `via` then remembers as the leader.
    for _ in 0..3 {
        write_acknowledged(
            &cluster,
            &mut ledger,
            &through,
            Duration::from_secs(10),
            &format!("sent to ingester {via}"),
        );
    }
    cluster.freeze(victim);
    // `via`'s own replicas elect or learn other leaders for every shard.
    let known = poll(Duration::from_secs(20), || {
        let status = cluster.status(via)?;
        match (0..SHARDS).find(|&shard| {
            shard_status(&status, shard)
                .and_then(|s| s["leader"].as_u64())
                .is_none_or(|leader| leader == victim || leader == 0)
        }) {
            Some(shard) => Err(format!(
                "ingester {via} knows no leader of shard {shard} but the frozen {victim}"
            )),
            None => Ok(()),
        }
    });
    if let Err(e) = known {
        panic!("{e} within 20 s\n{}", cluster.logs());
    }
    let forward_failures = || {
        metric_sum(&cluster.base(via), "hearth_ingest_forward_failures_total")
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let before = forward_failures();
    let took = write_acknowledged(
        &cluster,
        &mut ledger,
        &through,
        Duration::from_secs(10),
        &format!("sent to ingester {via} with ingester {victim} frozen"),
    );
    let after = forward_failures();
    cluster.thaw(victim);
    assert_eq!(
        after,
        before,
        "ingester {via} forwarded to the frozen ingester {victim} although its replicas knew \
         the new leaders (the write took {took:?})\n{}",
        cluster.logs()
    );
    println!("with ingester {victim} frozen, a write through ingester {via} took {took:?}");
    cluster.wait_leaders();
    wait_replicas_hold(&cluster, &ledger, Duration::from_secs(20));
}

/// SIGKILL of all three ingesters right after writing, a restart on the
/// same data directories: every acknowledged sample is still on every
/// replica, and writes are accepted again.
#[test]
fn whole_cluster_restart_keeps_everything_acknowledged() {
    let _serial = serial();
    let mut cluster = Cluster::start();
    let writer = Writer::start(cluster.write_urls());
    std::thread::sleep(Duration::from_secs(5));
    let mut report = writer.stop();
    check_writer(&cluster, &report, 50);

    for id in 1..=NODES {
        cluster.kill(id);
    }
    for id in 1..=NODES {
        cluster.launch(id);
    }
    for id in 1..=NODES {
        cluster.wait_ready(id);
    }
    cluster.wait_leaders();
    wait_replicas_hold(&cluster, &report.ledger, Duration::from_secs(30));

    let all = cluster.write_urls();
    let took = write_acknowledged(
        &cluster,
        &mut report.ledger,
        &all,
        Duration::from_secs(15),
        "after the restart of the whole cluster",
    );
    println!("after the restart of the whole cluster a write was acknowledged in {took:?}");
    wait_replicas_hold(&cluster, &report.ledger, Duration::from_secs(20));
}

/// Posts a remote-write body with the tenant header `header: tenant`.
fn post_write_as(url: &str, header: &str, tenant: &str, body: Vec<u8>) -> (u16, String) {
    let r = client()
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header(header, tenant)
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap_or_else(|e| panic!("POST {url} as {header}: {tenant}: {e}"));
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

/// Garbage and out-of-order samples answer 400 and store nothing; the same
/// request again (to the same or another ingester, on either path) answers
/// 204 and stores nothing twice; tenants show as `tenant_id`.
#[test]
fn bad_input_and_retries() {
    let _serial = serial();
    let cluster = Cluster::start();
    let url = cluster.write_url(1);
    let post = |url: &str, body: Vec<u8>| {
        post_write(client(), url, body).unwrap_or_else(|e| panic!("POST {url}: {e}"))
    };

    for (what, body) in [
        (
            "a body that is not snappy",
            b"this is not a snappy block".to_vec(),
        ),
        (
            "snappy of bytes that are not a WriteRequest",
            hearth_proto::remote_write::compress_snappy_block(&[0xff; 64]),
        ),
    ] {
        let (status, text) = post(&url, body);
        assert_eq!(status, 400, "{what}: answered {status} ({text}), want 400");
    }

    let t0 = (now_s().floor() as i64) * 1000;
    let retry_body = |samples: &[(i64, f64)]| {
        write_body(vec![series(
            &[("__name__", "retry_test"), ("job", "t")],
            samples,
        )])
    };
    let first = retry_body(&[(t0, 1.0)]);
    for (n, (id, path)) in [
        (1, "/api/v1/write"),
        (1, "/api/v1/write"),
        (2, "/api/v1/write"),
        (3, "/api/v1/receive"),
    ]
    .into_iter()
    .enumerate()
    {
        let target = format!("{}{path}", cluster.base(id));
        let (status, text) = post(&target, first.clone());
        assert_eq!(
            status, 204,
            "attempt {n} of the same request, to {target}: answered {status} ({text}), want 204 \
             (a retry is idempotent)"
        );
    }
    let (status, text) = post(&url, retry_body(&[(t0 - 5000, 2.0)]));
    assert_eq!(
        status, 400,
        "a sample 5 s older than its series' newest: answered {status} ({text}), want 400 (out \
         of order)"
    );
    let (status, text) = post(&url, retry_body(&[(t0 + 1000, 3.0)]));
    assert_eq!(
        status, 204,
        "the next sample in order after a refused one: answered {status} ({text}), want 204"
    );
    let want: SeriesSamples = [(
        key(&[
            ("__name__", "retry_test"),
            ("job", "t"),
            ("tenant_id", DEFAULT_TENANT),
        ]),
        vec![(t0, 1.0), (t0 + 1000, 3.0)],
    )]
    .into_iter()
    .collect();
    let at = (t0 + 10_000) as f64 / 1000.0;
    for id in 1..=NODES {
        let held = poll(Duration::from_secs(10), || {
            let held = matrix(&cluster.base(id), "retry_test[1h]", at, &[])?;
            if held == want {
                Ok(held)
            } else {
                Err(format!("{held:?}"))
            }
        });
        if let Err(held) = held {
            panic!(
                "ingester {id} holds {held}, want the retried sample once, the next one, and \
                 nothing of the refused ones: {want:?}\n{}",
                cluster.logs()
            );
        }
    }

    // Tenants.
    let tenant_body = |team: &str| {
        write_body(vec![series(
            &[("__name__", "x"), ("team", team)],
            &[(t0, 7.0)],
        )])
    };
    for (header, tenant, team) in [
        ("X-Scope-OrgID", "team-a", "a"),
        ("THANOS-TENANT", "team-b", "b"),
    ] {
        let (status, text) = post_write_as(&url, header, tenant, tenant_body(team));
        assert_eq!(
            status, 204,
            "a write as {header}: {tenant}: answered {status} ({text}), want 204"
        );
    }
    let want: BTreeSet<String> = [
        key(&[("__name__", "x"), ("team", "a"), ("tenant_id", "team-a")]),
        key(&[("__name__", "x"), ("team", "b"), ("tenant_id", "team-b")]),
    ]
    .into_iter()
    .collect();
    for id in 1..=NODES {
        let base = cluster.base(id);
        let found = poll(Duration::from_secs(10), || {
            let got = series_matching(&base, "{__name__=\"x\"}", t0)?;
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
        if let Err(got) = found {
            panic!(
                "ingester {id}: /api/v1/series of x gives {got}, want each team under its own \
                 tenant_id: {want:?}\n{}",
                cluster.logs()
            );
        }
        for (selector, what) in [
            (
                "{__name__=\"x\",tenant_id=\"default-tenant\"}",
                "the default tenant",
            ),
            ("{__name__=\"x\",tenant_id=\"team-c\"}", "another tenant"),
        ] {
            let got = series_matching(&base, selector, t0).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                got.is_empty(),
                "ingester {id}: a tenant's series show under {what}: {selector} gives {got:?}"
            );
        }
        let only_a = series_matching(&base, "{__name__=\"x\",tenant_id=\"team-a\"}", t0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            only_a,
            [key(&[
                ("__name__", "x"),
                ("team", "a"),
                ("tenant_id", "team-a")
            ])]
            .into_iter()
            .collect::<BTreeSet<_>>(),
            "ingester {id}: tenant_id=\"team-a\" selects team-a's series alone"
        );
        // A read naming its tenant in the header sees that tenant alone.
        let as_b = client()
            .get(format!("{base}/api/v1/series"))
            .query(&[("match[]", "{__name__=\"x\"}")])
            .header("X-Scope-OrgID", "team-b")
            .send()
            .and_then(|r| r.json::<Value>())
            .unwrap_or_else(|e| panic!("ingester {id}: /api/v1/series as team-b: {e}"));
        let seen: BTreeSet<String> = as_b["data"]
            .as_array()
            .unwrap_or_else(|| panic!("ingester {id}: no series list: {as_b}"))
            .iter()
            .map(labels_key)
            .collect();
        assert_eq!(
            seen,
            [key(&[
                ("__name__", "x"),
                ("team", "b"),
                ("tenant_id", "team-b")
            ])]
            .into_iter()
            .collect::<BTreeSet<_>>(),
            "ingester {id}: a read as team-b"
        );
        let bad = client()
            .get(format!("{base}/api/v1/series"))
            .query(&[("match[]", "{__name__=\"x\"}")])
            .header("X-Scope-OrgID", "../etc")
            .send()
            .expect("a read with an invalid tenant");
        assert_eq!(
            bad.status().as_u16(),
            400,
            "ingester {id}: an invalid tenant"
        );
    }
}

/// `hearth query` over the three ingesters' StoreAPI: one series per
/// replica without deduplication, one with it, each sample once.
#[test]
fn querier_over_ingesters_deduplicates() {
    let _serial = serial();
    let cluster = Cluster::start();
    let t0 = (now_s().floor() as i64 - 30) * 1000;
    let samples: Vec<(i64, f64)> = (0..10).map(|i| (t0 + i * 1000, i as f64 * 1.5)).collect();
    let body = write_body(vec![series(
        &[("__name__", "dedup_test"), ("job", "t")],
        &samples,
    )]);
    let d = deliver(&cluster.write_urls(), 0, &body, Duration::from_secs(15));
    assert!(
        d.outcome == Outcome::Acknowledged,
        "10 samples of one series not acknowledged within 15 s ({:?}):\n{}\n{}",
        d.outcome,
        d.listing(),
        cluster.logs()
    );

    let (_query, q) = start_query(cluster.dir.path(), &cluster.grpc_ports());
    if let Err(e) = poll(Duration::from_secs(30), || {
        let stores = api_get(&q, "/api/v1/stores", &[], Duration::from_secs(5))?;
        let n: usize = stores
            .as_object()
            .map(|m| m.values().filter_map(Value::as_array).map(Vec::len).sum())
            .unwrap_or(0);
        (n == NODES as usize)
            .then_some(())
            .ok_or_else(|| format!("the querier's stores: {stores}"))
    }) {
        panic!(
            "the querier does not list the {NODES} ingesters within 30 s: {e}\n{}",
            cluster.logs()
        );
    }

    let steps = (t0 as f64 / 1000.0, (t0 + 9000) as f64 / 1000.0, 1.0);
    let plain = key(&[
        ("__name__", "dedup_test"),
        ("job", "t"),
        ("tenant_id", DEFAULT_TENANT),
    ]);
    let per_replica: SeriesSamples = (1..=NODES)
        .map(|n| {
            let replica = format!("ingester-{n}");
            (
                key(&[
                    ("__name__", "dedup_test"),
                    ("job", "t"),
                    ("replica", replica.as_str()),
                    ("tenant_id", DEFAULT_TENANT),
                ]),
                samples.clone(),
            )
        })
        .collect();
    // Without deduplication: each replica's copy, once every follower has
    // applied the write.
    let raw = poll(Duration::from_secs(20), || {
        let got = query_range(&q, "dedup_test", steps, &[("dedup", "false".to_string())])?;
        if got == per_replica {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    if let Err(got) = raw {
        panic!(
            "query_range with dedup=false gives {got}, want one series per ingester with the 10 \
             samples: {per_replica:?}\n{}",
            cluster.logs()
        );
    }

    let want: SeriesSamples = [(plain, samples.clone())].into_iter().collect();
    let deduped = query_range(&q, "dedup_test", steps, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        deduped, want,
        "query_range through the querier: one series without the replica label, each sample once"
    );
    let selected = matrix(&q, "dedup_test[1m]", steps.1, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        selected, want,
        "dedup_test[1m] through the querier: the 10 samples, each once"
    );
}

/// Prometheus 2.42 scrapes an exporter every second and remote-writes to
/// one ingester while the leader of a shard elsewhere is SIGKILLed and
/// restarted, then the ingester it writes to: afterwards every ingester
/// holds every sample Prometheus holds over the window of the faults
/// (unless Prometheus itself gave up on some), and none it does not.
#[test]
fn prometheus_remote_writing_through_an_ingester_kill_has_no_gap() {
    let _serial = serial();
    let mut cluster = Cluster::start();
    // The leader of shard 0 dies; Prometheus writes to another ingester,
    // the one that leads the fewest shards, so most of its writes are
    // forwarded.
    let leaders: Vec<u64> = (0..SHARDS).map(|s| cluster.leader_of(s)).collect();
    let victim = leaders[0];
    let target = (1..=NODES)
        .filter(|&id| id != victim)
        .min_by_key(|&id| leaders.iter().filter(|&&l| l == id).count())
        .expect("three ingesters");
    println!(
        "shard leaders {leaders:?}: Prometheus writes to ingester {target}; ingester {victim}, \
         the leader of shard 0, is killed"
    );

    let exporter = start_exporter();
    let prom_dir = cluster.dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).expect("create the Prometheus directory");
    let config = prom_dir.join("prometheus.yml");
    std::fs::write(
        &config,
        prometheus_config(exporter, &cluster.write_url(target)),
    )
    .expect("write prometheus.yml");
    let prom = Prometheus::start_with_config(&prom_dir, &config);
    let prom_base = prom.url("");
    let prom_log = || tail(&prom_dir.join("prometheus.log"), 20);

    if let Err(e) = poll(Duration::from_secs(30), || {
        let held =
            matrix_without_tenant(&cluster.base(target), "exporter_scrapes_total[1m]", now_s())?;
        (!held.is_empty())
            .then_some(())
            .ok_or_else(|| "nothing yet".to_string())
    }) {
        panic!(
            "no sample of Prometheus reached ingester {target} within 30 s: {e}\n--- \
             prometheus.log ---\n{}\n{}",
            prom_log(),
            cluster.logs()
        );
    }
    let from_ms = now_ms();
    std::thread::sleep(Duration::from_secs(5));

    let killed = Instant::now();
    cluster.kill(victim);
    std::thread::sleep(Duration::from_secs(4));
    cluster.restart(victim);
    let after: Vec<u64> = (0..SHARDS).map(|s| cluster.leader_of(s)).collect();
    println!(
        "SIGKILL of ingester {victim}, restarted and ready {:?} later; shard leaders now \
         {after:?}",
        killed.elapsed()
    );
    std::thread::sleep(Duration::from_secs(3));

    let forwarded = metric_sum(
        &cluster.base(target),
        "hearth_ingest_forwarded_writes_total",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        forwarded > 0.0,
        "ingester {target} leads at most one shard but forwarded none of Prometheus's writes"
    );
    let killed = Instant::now();
    cluster.kill(target);
    std::thread::sleep(Duration::from_secs(3));
    cluster.restart(target);
    println!(
        "ingester {target} had forwarded {forwarded} shard parts of Prometheus's writes; \
         SIGKILL of it, restarted and ready {:?} later",
        killed.elapsed()
    );
    std::thread::sleep(Duration::from_secs(3));
    let to_ms = now_ms();

    // Prometheus's own samples over the window, and each ingester's over a
    // little more (range selectors' ends differ between versions).
    let selector = "{job=\"exporter\"}";
    let window = (from_ms, to_ms);
    let ours = matrix(
        &prom_base,
        &format!("{selector}[{}ms]", to_ms - from_ms),
        to_ms as f64 / 1000.0,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}\n--- prometheus.log ---\n{}", prom_log()));
    let series = ours.len();
    let window_s = (to_ms - from_ms) as f64 / 1000.0;
    let in_prometheus: usize = ours.values().map(Vec::len).sum();
    assert!(
        series == EXPORTER_GAUGES + 1 + SCRAPE_SERIES
            && in_prometheus as f64 >= series as f64 * window_s / 2.0,
        "Prometheus holds {in_prometheus} samples of {series} series over the {window_s} s \
         window, want {} series scraped about every second\n--- prometheus.log ---\n{}",
        EXPORTER_GAUGES + 1 + SCRAPE_SERIES,
        prom_log()
    );
    let wider = format!("{selector}[{}ms]", to_ms - from_ms + 2000);
    let wider_at = (to_ms + 1000) as f64 / 1000.0;
    let waited = Instant::now();
    let outcome = poll(Duration::from_secs(30), || {
        let counters = RemoteWriteCounters::read(&prom_base)?;
        let mut issues = Vec::new();
        let mut compared = 0;
        for id in 1..=NODES {
            let held = matrix_without_tenant(&cluster.base(id), &wider, wider_at)?;
            let c = compare_with_prometheus(&ours, &held, window);
            compared = c.compared;
            if c.missing > counters.lost() || c.extra > 0 {
                issues.push(format!(
                    "ingester {id}: {} of {} samples missing (Prometheus gave up on {}), {} not \
                     in Prometheus: {}",
                    c.missing,
                    c.compared,
                    counters.lost(),
                    c.extra,
                    c.examples.join("; ")
                ));
            }
        }
        if issues.is_empty() {
            Ok((compared, counters))
        } else {
            Err(issues.join("\n"))
        }
    });
    let (compared, counters) = outcome.unwrap_or_else(|issues| {
        panic!(
            "30 s after the {window_s} s window the ingesters still do not hold what Prometheus \
             holds:\n{issues}\n--- prometheus.log ---\n{}\n{}",
            prom_log(),
            cluster.logs()
        )
    });
    println!(
        "compared {compared} samples of {series} series over {window_s} s with Prometheus's \
         own: on each of the {NODES} ingesters {:?} after the window; Prometheus sent {} samples, \
         retried {}, failed {}, dropped {}",
        waited.elapsed(),
        counters.sent,
        counters.retried,
        counters.failed,
        counters.dropped
    );
    if counters.lost() > 0 {
        println!(
            "Prometheus gave up on {} samples (failed or dropped): that many were allowed to be \
             missing",
            counters.lost()
        );
    }
}

/// A body over 32 MiB (413), an unsupported `Content-Encoding` or
/// `Content-Type` (415), a sample too far in the future (400), on 1.0 and
/// 2.0: refused before anything is proposed, so no shard's log grows and
/// nothing of them is stored; a well-formed 2.0 request is accepted and
/// readable on every ingester.
#[test]
fn oversized_and_malformed_requests_are_refused_before_they_are_proposed() {
    let _serial = serial();
    let cluster = Cluster::start();
    let t0 = (now_s().floor() as i64) * 1000;

    // Remote write 2.0: accepted, readable on every replica.
    let names: Vec<String> = (0..8).map(|k| k.to_string()).collect();
    let labels: Vec<[(&str, &str); 3]> = names
        .iter()
        .map(|n| [("job", "t"), ("__name__", "v2_test"), ("n", n.as_str())])
        .collect();
    let samples: Vec<Vec<(i64, f64)>> = (0..names.len())
        .map(|k| {
            (0..3)
                .map(|i| (t0 - 2000 + i * 1000, k as f64 + i as f64 * 0.25))
                .collect()
        })
        .collect();
    let body = write_body_v2(
        &labels
            .iter()
            .zip(&samples)
            .map(|(l, s)| (&l[..], &s[..]))
            .collect::<Vec<_>>(),
    );
    let url = cluster.write_url(2);
    let reply = post_raw(&url, &write_headers(WriteProtocol::V2, "snappy"), body)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reply.status,
        204,
        "a remote write 2.0 request of {} samples: answered {} ({}), want 204",
        names.len() * 3,
        reply.status,
        reply.text
    );
    // The 2.0 spec: every answer to a 2.0 request says what got in (a 2.0
    // sender takes a 2xx without it for a 1.0 receiver's).
    assert_eq!(
        reply.samples_written.as_deref(),
        Some(format!("{}", names.len() * 3).as_str()),
        "X-Prometheus-Remote-Write-Samples-Written of a 2.0 request of {} samples",
        names.len() * 3
    );
    let want: SeriesSamples = names
        .iter()
        .zip(&samples)
        .map(|(n, s)| {
            (
                key(&[
                    ("__name__", "v2_test"),
                    ("job", "t"),
                    ("n", n.as_str()),
                    ("tenant_id", DEFAULT_TENANT),
                ]),
                s.clone(),
            )
        })
        .collect();
    for id in 1..=NODES {
        let held = poll(Duration::from_secs(10), || {
            let held = matrix(
                &cluster.base(id),
                "v2_test[1m]",
                (t0 + 1000) as f64 / 1000.0,
                &[],
            )?;
            if held == want {
                Ok(())
            } else {
                Err(format!("{held:?}"))
            }
        });
        if let Err(held) = held {
            panic!(
                "ingester {id} holds {held}, want the 2.0 request's samples: {want:?}\n{}",
                cluster.logs()
            );
        }
    }

    // The refused requests, all of the series refused_test.
    let refused = |t: i64| series(&[("__name__", "refused_test"), ("job", "t")], &[(t, 1.0)]);
    let future = t0 + 60 * 60 * 1000;
    let v1_now = write_body(vec![refused(t0)]);
    let v1_future = write_body(vec![
        series(
            &[("__name__", "refused_test"), ("job", "now")],
            &[(t0, 1.0)],
        ),
        refused(future),
    ]);
    let v2_now = write_body_v2(&[(&[("__name__", "refused_test"), ("job", "t")], &[(t0, 1.0)])]);
    let v2_future = write_body_v2(&[
        (
            &[("__name__", "refused_test"), ("job", "now")],
            &[(t0, 1.0)],
        ),
        (
            &[("__name__", "refused_test"), ("job", "t")],
            &[(future, 1.0)],
        ),
    ]);
    let mut json = write_headers(WriteProtocol::V1, "snappy");
    json[1].1 = "application/json";
    let refusals = [
        Refusal {
            what: "a body of 32 MiB and one byte",
            status: 413,
            headers: write_headers(WriteProtocol::V1, "snappy"),
            body: vec![0; MAX_COMPRESSED_BYTES + 1],
        },
        Refusal {
            what: "a 1.0 request with Content-Encoding: gzip",
            status: 415,
            headers: write_headers(WriteProtocol::V1, "gzip"),
            body: v1_now,
        },
        Refusal {
            what: "a 2.0 request with Content-Encoding: zstd",
            status: 415,
            headers: write_headers(WriteProtocol::V2, "zstd"),
            body: v2_now,
        },
        Refusal {
            what: "a request with Content-Type: application/json",
            status: 415,
            headers: json,
            body: write_body(vec![refused(t0)]),
        },
        Refusal {
            what: "a 1.0 request with a sample an hour in the future beside one of now",
            status: 400,
            headers: write_headers(WriteProtocol::V1, "snappy"),
            body: v1_future,
        },
        Refusal {
            what: "a 2.0 request with a sample an hour in the future beside one of now",
            status: 400,
            headers: write_headers(WriteProtocol::V2, "snappy"),
            body: v2_future,
        },
    ];

    // Readings of the shards' logs on their leaders around the refused
    // requests; an election in between appends an entry of its own, so
    // such a round is not counted and done again.
    let mut rounds = 0;
    loop {
        rounds += 1;
        cluster.wait_leaders();
        let tips = || log_tips(&cluster).unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        let proposed = || proposals_and_forwards(&cluster).unwrap_or_else(|e| panic!("{e}"));
        let (tips_before, proposed_before) = (tips(), proposed());
        assert!(
            proposed_before > 0.0,
            "the ingesters' counters of proposed and forwarded shard parts do not count the 2.0 \
             write: the check below would prove nothing"
        );
        for (n, r) in (0u64..).zip(&refusals) {
            let url = cluster.write_url(1 + n % NODES);
            let reply = post_raw(&url, &r.headers, r.body.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", r.what));
            assert_eq!(
                reply.status,
                r.status,
                "{}, to {url}: answered {} ({}), want {}",
                r.what,
                reply.status,
                reply.text.trim(),
                r.status
            );
            if rounds == 1 {
                println!("{}: {} {}", r.what, reply.status, reply.text.trim());
            }
        }
        let (tips_after, proposed_after) = (tips(), proposed());
        assert_eq!(
            proposed_after, proposed_before,
            "shard parts proposed or forwarded by the ingesters before and after the refused \
             requests: they were not refused before the raft write path"
        );
        let leaders = |tips: &BTreeMap<u64, (u64, u64, u64)>| {
            tips.iter()
                .map(|(shard, (id, term, _))| (*shard, *id, *term))
                .collect::<Vec<_>>()
        };
        if leaders(&tips_after) != leaders(&tips_before) && rounds < 3 {
            println!(
                "round {rounds}: a shard elected a leader meanwhile ({tips_before:?} → \
                 {tips_after:?}); again"
            );
            continue;
        }
        assert_eq!(
            tips_after, tips_before,
            "per shard (leader, term, last log index) before and after the refused requests: \
             the logs grew"
        );
        println!(
            "per shard (leader, term, last log index) the same before and after the refused \
             requests: {tips_after:?}"
        );
        break;
    }
    for id in 1..=NODES {
        let stored = series_matching(&cluster.base(id), "{__name__=\"refused_test\"}", t0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            stored.is_empty(),
            "ingester {id} stored series of refused requests: {stored:?}"
        );
    }
}

/// The external labels of the blocks in the bucket, by ULID, read from the
/// s3s-fs bucket directory (`<ULID>/meta.json`).
fn bucket_blocks(bucket: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(bucket).expect("list the bucket directory") {
        let entry = entry.expect("a bucket entry");
        let meta = entry.path().join("meta.json");
        if let Ok(text) = std::fs::read_to_string(&meta) {
            let v: Value = serde_json::from_str(&text).expect("meta.json is JSON");
            out.insert(entry.file_name().to_string_lossy().into_owned(), v);
        }
    }
    out
}

/// The blocks an ingester cut, by ULID, with the bytes of their index.
fn local_blocks(data: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(shards) = std::fs::read_dir(data.join("blocks")) else {
        return out;
    };
    for shard in shards.flatten() {
        for block in std::fs::read_dir(shard.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let index = block.path().join("index");
            if block.path().join("meta.json").exists() {
                out.insert(
                    block.file_name().to_string_lossy().into_owned(),
                    std::fs::read(&index).expect("read a block's index"),
                );
            }
        }
    }
    out
}

/// `hearth store` over the bucket of `objstore`; returns it with its gRPC
/// port once it answers.
fn start_store(dir: &Path, objstore: &Path) -> (Proc, u16) {
    let grpc = free_port();
    let p = spawn(
        &hearth_bin(),
        &[
            "store".to_string(),
            format!("--objstore.config-file={}", objstore.display()),
            format!("--data-dir={}", dir.join("store").display()),
            format!("--grpc-address=127.0.0.1:{grpc}"),
            format!("--http-address=127.0.0.1:{}", free_port()),
            "--sync-block-duration=1s".to_string(),
        ],
        Some(&dir.join("store.log")),
    );
    poll(Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", grpc))
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .expect("the store gateway listens");
    (p, grpc)
}

/// With 4 s blocks, the shard leaders cut blocks through raft (the same
/// ULID and bytes on every replica), upload each once with the tenant as
/// external label, and `hearth query` over the ingesters and the store
/// gateway returns every acknowledged sample exactly once.
#[test]
fn blocks_are_cut_identically_uploaded_once_and_queried_with_the_store_gateway() {
    let _serial = serial();
    let scratch = tempfile::tempdir().expect("create a temporary directory");
    let s3 = S3sFs::start(find_s3s_fs(), scratch.path().join("s3data"));
    let objstore = scratch.path().join("objstore.yml");
    std::fs::write(&objstore, s3.objstore_yaml()).expect("write the objstore config");
    let cluster = Cluster::start_with(&[
        format!("--objstore.config-file={}", objstore.display()),
        "--tsdb.block-duration=4s".to_string(),
        "--tsdb.housekeeping-interval=500ms".to_string(),
    ]);
    let writer = Writer::start(cluster.write_urls());
    std::thread::sleep(Duration::from_secs(16));
    let report = writer.stop();
    check_writer(&cluster, &report, 100);

    // Every replica cut the same blocks, byte for byte.
    let views: Vec<BTreeMap<String, Vec<u8>>> = (1..=NODES)
        .map(|id| local_blocks(&cluster.node(id).data))
        .collect();
    assert!(
        views[0].len() >= SHARDS as usize,
        "at least one block per shard after 16 s of 4 s blocks, got {}\n{}",
        views[0].len(),
        cluster.logs()
    );
    // A replica may not have applied the newest cut yet: compare what all have.
    for (id, view) in views.iter().enumerate().skip(1) {
        for (ulid, index) in view {
            if let Some(first) = views[0].get(ulid) {
                assert!(
                    first == index,
                    "block {ulid} differs between ingesters 1 and {}",
                    id + 1
                );
            }
        }
    }

    // Each uploaded once: the bucket's blocks are the cut ones, with the
    // tenant and the configured labels, no replica label.
    let uploaded = poll(Duration::from_secs(20), || {
        let in_bucket = bucket_blocks(&s3.bucket_dir());
        let cut = local_blocks(&cluster.node(1).data);
        let cut_older: Vec<&String> = cut.keys().filter(|u| !in_bucket.contains_key(*u)).collect();
        if cut_older.len() <= SHARDS as usize && in_bucket.len() >= SHARDS as usize {
            Ok(in_bucket)
        } else {
            Err(format!(
                "{} cut blocks not in the bucket yet",
                cut_older.len()
            ))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let mut ranges: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for (ulid, meta) in &uploaded {
        assert!(
            views[0].contains_key(ulid),
            "block {ulid} in the bucket was not cut by the ingesters"
        );
        assert_eq!(
            meta["thanos"]["labels"],
            serde_json::json!({"tenant_id": DEFAULT_TENANT}),
            "labels of block {ulid}"
        );
        let range = (
            meta["minTime"].as_i64().expect("minTime"),
            meta["maxTime"].as_i64().expect("maxTime"),
        );
        *ranges.entry(range).or_default() += 1;
    }
    for (range, blocks) in &ranges {
        assert!(
            *blocks <= SHARDS as usize,
            "{blocks} blocks for range {range:?}: at most one per shard"
        );
    }
    println!(
        "{} blocks uploaded over {} ranges; every ingester holds the same {} blocks",
        uploaded.len(),
        ranges.len(),
        views[0].len()
    );

    // The querier over ingesters and store gateway: every sample once.
    let (_store, store_grpc) = start_store(scratch.path(), &objstore);
    let mut endpoints = cluster.grpc_ports();
    endpoints.push(store_grpc);
    let (_query, query_url) = start_query(scratch.path(), &endpoints);
    let at = report.ledger.last_t as f64 / 1000.0 + 1.0;
    poll(Duration::from_secs(20), || {
        let held = matrix(&query_url, "ingest_test[1h]", at, &[])?;
        let issues = problems(&held, &report.ledger);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues.join("\n"))
        }
    })
    .unwrap_or_else(|e| {
        panic!(
            "the querier over ingesters and store gateway: {e}\n{}",
            cluster.logs()
        )
    });
}

/// An ingester loses its disk under a steady write load: it comes back
/// under a new replica id (raft never sees a replica that forgot its votes)
/// and catches up from a leader's snapshot; nothing acknowledged is lost.
#[test]
fn a_wiped_replica_rejoins_under_a_new_id_and_catches_up_from_a_snapshot() {
    let _serial = serial();
    let mut cluster = Cluster::start_with(&[
        "--raft.snapshot-entries=20".to_string(),
        "--raft.retained-entries=5".to_string(),
    ]);
    let writer = Writer::start(cluster.write_urls());
    std::thread::sleep(Duration::from_secs(4));
    cluster.kill(3);
    std::fs::remove_dir_all(&cluster.node(3).data).expect("wipe ingester 3's data");
    std::thread::sleep(Duration::from_secs(3));
    cluster.launch(3);
    cluster.wait_ready(3);
    std::thread::sleep(Duration::from_secs(3));
    let report = writer.stop();
    check_writer(&cluster, &report, 50);
    wait_replicas_hold(&cluster, &report.ledger, Duration::from_secs(20));

    let status = cluster.status(3).expect("ingester 3's status");
    let mut from_snapshot = 0;
    for shard in 0..SHARDS {
        let s = shard_status(&status, shard).expect("ingester 3 holds every shard");
        let replica = s["replica_id"].as_u64().expect("replica_id");
        assert_eq!(
            replica >> 16,
            3,
            "shard {shard}: the replica is ingester 3's"
        );
        assert_ne!(
            replica,
            3 << 16,
            "shard {shard}: a new generation, not the wiped id"
        );
        // A shard none of the writer's series hash to has too short a log
        // for snapshots; the others have compacted theirs past the start.
        if s["first_index"].as_u64().expect("first_index") > 1 {
            from_snapshot += 1;
        }
        let voters: Vec<u64> =
            serde_json::from_value(s["voter_replica_ids"].clone()).expect("voter_replica_ids");
        assert!(
            !voters.contains(&(3 << 16)),
            "shard {shard}: the wiped id is no voter: {s}"
        );
    }
    assert!(
        from_snapshot >= 2,
        "the new replicas of the written shards start from a snapshot: {status}"
    );
}

/// A shard replica leaves an ingester and comes back online, under a
/// steady write load, through any ingester's membership API: no
/// acknowledged sample is lost, the removed copy is deleted, and the
/// re-added replica (a new generation) catches up.
#[test]
fn shard_replicas_are_removed_and_added_online() {
    let _serial = serial();
    let cluster = Cluster::start();
    let writer = Writer::start(cluster.write_urls());
    std::thread::sleep(Duration::from_secs(2));
    let shard = 1;
    // Remove the leader's replica: leadership is handed over first.
    let leader = cluster.leader_of(shard);
    let other = if leader == 1 { 2 } else { 1 };
    let url = |via: u64, of: u64| {
        format!(
            "{}/api/v1/ingest/shards/{shard}/replicas/{of}",
            cluster.base(via)
        )
    };
    let r = client()
        .delete(url(other, leader))
        .timeout(Duration::from_secs(20))
        .send()
        .expect("remove a replica");
    assert_eq!(
        r.status().as_u16(),
        200,
        "remove: {}",
        r.text().unwrap_or_default()
    );
    poll(Duration::from_secs(10), || {
        let status = cluster.status(leader)?;
        match shard_status(&status, shard) {
            None => Ok(()),
            Some(_) => Err(format!("ingester {leader} still holds shard {shard}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let removed_log = cluster.node(leader).data.join(format!("shard-{shard}"));
    poll(Duration::from_secs(5), || {
        if removed_log.exists() {
            Err(format!("{} still exists", removed_log.display()))
        } else {
            Ok(())
        }
    })
    .unwrap_or_else(|e| panic!("the removed replica's log is deleted: {e}"));
    std::thread::sleep(Duration::from_secs(2));
    let r = client()
        .post(url(other, leader))
        .timeout(Duration::from_secs(20))
        .send()
        .expect("add a replica");
    assert_eq!(
        r.status().as_u16(),
        200,
        "add: {}",
        r.text().unwrap_or_default()
    );
    std::thread::sleep(Duration::from_secs(2));
    let report = writer.stop();
    check_writer(&cluster, &report, 50);
    wait_replicas_hold(&cluster, &report.ledger, Duration::from_secs(20));
    let status = cluster.status(leader).expect("status");
    let s = shard_status(&status, shard).expect("the replica is back");
    assert_ne!(
        s["replica_id"].as_u64(),
        Some(leader << 16),
        "a new generation: {s}"
    );

    // Bad requests.
    let r = client().post(url(other, 9)).send().expect("request");
    assert_eq!(r.status().as_u16(), 400);
    let r = client()
        .post(format!(
            "{}/api/v1/ingest/shards/99/replicas/1",
            cluster.base(1)
        ))
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
}
