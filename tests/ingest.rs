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
//!   replicas by their `replica` label.
//!
//! The tests run one at a time (a lock): raft's timing (100 ms ticks,
//! elections after about a second) and the recovery-time assertion need the
//! CPU of a small machine to themselves. Each test's cluster has its own
//! ports and temporary directory; the processes' logs are there, and their
//! last lines are part of a failure's message.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{free_port, hearth_bin, now_s, post_write, series, spawn, write_body, Proc};
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

/// An instant query whose answer is a matrix (a range selector) at `at_s`.
fn matrix(
    base: &str,
    query: &str,
    at_s: f64,
    extra: &[(&str, String)],
) -> Result<SeriesSamples, String> {
    let mut params = vec![("query", query.to_string()), ("time", format!("{at_s:.3}"))];
    params.extend_from_slice(extra);
    let data = api_get(base, "/api/v1/query", &params, Duration::from_secs(20))?;
    if data["resultType"] != "matrix" {
        return Err(format!("{query}: the answer is not a matrix: {data}"));
    }
    parse_matrix(&data["result"])
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
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the three ingesters and waits until each is ready and every
    /// shard has a leader that every ingester knows.
    fn start() -> Cluster {
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
        let mut cluster = Cluster { nodes, peers, dir };
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
