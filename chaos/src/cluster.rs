//! The cluster under test: a docker-compose project. Owns every command
//! run against it (`docker-compose up/down/ps/port`, `docker kill/start/
//! pause/network`), the wait for healthy services, and the ingesters'
//! `/api/v1/ingest/status`: shard leaders, followers and the shards each
//! ingester holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tokio::process::Command;

/// The internal HTTP port of every Hearth container but the querier.
const HTTP_PORT: u16 = 10902;
/// Service names in the compose files the suite knows by role.
pub const S3_SERVICE: &str = "s3";
pub const S3_INIT_SERVICE: &str = "s3-init";
pub const STORE_SERVICE: &str = "store";
pub const SCRAPER_SERVICES: [&str; 2] = ["scrape-a", "scrape-b"];
const INGESTER_PREFIX: &str = "ingester-";

/// How to reach the compose project.
#[derive(Clone, Debug)]
pub struct ComposeProject {
    pub name: String,
    pub files: Vec<PathBuf>,
}

impl ComposeProject {
    /// Runs `docker-compose -p NAME -f F... ARGS` with extra environment,
    /// and gives its standard output.
    async fn compose(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let mut command = Command::new("docker-compose");
        command.arg("-p").arg(&self.name);
        for f in &self.files {
            command.arg("-f").arg(f);
        }
        command.args(args).envs(env.iter().copied());
        output_of(command, &format!("docker-compose {}", args.join(" "))).await
    }

    /// `docker-compose up -d` with the block duration the suite needs.
    pub async fn up(&self, block_duration: &str) -> Result<()> {
        self.compose(&["up", "-d"], &[("HEARTH_BLOCK_DURATION", block_duration)])
            .await
            .map(drop)
    }

    /// `docker-compose down -v`: containers, network and volumes.
    pub async fn down(&self) -> Result<()> {
        self.compose(&["down", "-v"], &[]).await.map(drop)
    }

    /// The services of the compose files.
    pub async fn services(&self) -> Result<Vec<String>> {
        let listed = self.compose(&["config", "--services"], &[]).await?;
        Ok(listed
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }

    /// The last `lines` log lines of a service.
    pub async fn logs(&self, service: &str, lines: usize) -> Result<String> {
        self.compose(
            &["logs", "--no-color", "--tail", &lines.to_string(), service],
            &[],
        )
        .await
    }
}

/// One ingester: its id, service and the HTTP API as published on the host.
#[derive(Clone, Debug)]
pub struct IngesterEndpoint {
    pub id: u64,
    pub service: String,
    pub base: String,
}

/// A shard replica as an ingester's status shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct ShardStatus {
    pub shard: u64,
    pub role: String,
    /// The leader's ingester id, 0 when unknown.
    pub leader: u64,
    pub term: u64,
    pub voters: Vec<u64>,
}

/// `/api/v1/ingest/status` of one ingester.
#[derive(Clone, Debug, Deserialize)]
pub struct IngesterStatus {
    pub node_id: u64,
    pub shards: Vec<ShardStatus>,
}

impl IngesterStatus {
    /// The shards this ingester holds a voting replica of.
    pub fn held_shards(&self) -> BTreeSet<u64> {
        self.shards
            .iter()
            .filter(|s| s.voters.contains(&self.node_id))
            .map(|s| s.shard)
            .collect()
    }
}

/// A running compose project: its containers by service and its endpoints.
pub struct Cluster {
    pub project: ComposeProject,
    pub query_url: String,
    pub ingesters: Vec<IngesterEndpoint>,
    containers: BTreeMap<String, String>,
    network: String,
    http: reqwest::Client,
}

impl Cluster {
    /// Finds the project's containers and the ingesters' published ports.
    pub async fn attach(project: ComposeProject, query_url: String) -> Result<Cluster> {
        let mut containers = BTreeMap::new();
        let mut ingesters = Vec::new();
        for service in &project.services().await? {
            let service = service.as_str();
            let id = project.compose(&["ps", "-q", service], &[]).await?;
            let id = id.trim();
            if id.is_empty() {
                bail!(
                    "service {service} of project {} has no container (is it up?)",
                    project.name
                );
            }
            containers.insert(service.to_string(), id.to_string());
            if let Some(n) = service.strip_prefix(INGESTER_PREFIX) {
                let id: u64 = n
                    .parse()
                    .with_context(|| format!("ingester service {service} has no number"))?;
                let published = project
                    .compose(&["port", service, &HTTP_PORT.to_string()], &[])
                    .await?;
                let port = published
                    .trim()
                    .rsplit_once(':')
                    .map(|(_, p)| p.to_string())
                    .with_context(|| format!("{service}: port {HTTP_PORT} is not published"))?;
                ingesters.push(IngesterEndpoint {
                    id,
                    service: service.to_string(),
                    base: format!("http://127.0.0.1:{port}"),
                });
            }
        }
        if ingesters.is_empty() {
            bail!("project {} has no ingester-N service", project.name);
        }
        ingesters.sort_by_key(|i| i.id);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("build the HTTP client")?;
        let network = format!("{}_hearth", project.name);
        Ok(Cluster {
            project,
            query_url,
            ingesters,
            containers,
            network,
            http,
        })
    }

    /// The container id of a service.
    pub fn container(&self, service: &str) -> Result<&str> {
        self.containers
            .get(service)
            .map(String::as_str)
            .with_context(|| format!("no service {service} in project {}", self.project.name))
    }

    /// The ingester of id `id`.
    pub fn ingester(&self, id: u64) -> Result<&IngesterEndpoint> {
        self.ingesters
            .iter()
            .find(|i| i.id == id)
            .with_context(|| format!("no ingester {id}"))
    }

    /// Runs `docker ARGS` on a service's container (its id appended).
    pub async fn docker_on(&self, args: &[&str], service: &str) -> Result<()> {
        let id = self.container(service)?;
        let mut all: Vec<&str> = args.to_vec();
        all.push(id);
        docker(&all).await.map(drop)
    }

    /// `docker kill -s KILL`.
    pub async fn kill(&self, service: &str) -> Result<()> {
        self.docker_on(&["kill", "-s", "KILL"], service).await
    }

    /// `docker start` (a no-op when the restart policy already did it).
    pub async fn start(&self, service: &str) -> Result<()> {
        self.docker_on(&["start"], service).await
    }

    /// Disconnects a service's container from the project network; gives
    /// what [`Cluster::reconnect`] needs to put it back as it was.
    pub async fn disconnect(&self, service: &str) -> Result<Attachment> {
        let id = self.container(service)?;
        let format = format!(
            "{{{{json (index .NetworkSettings.Networks \"{}\")}}}}",
            self.network
        );
        let endpoint = docker(&["inspect", "-f", &format, id]).await?;
        let endpoint: serde_json::Value =
            serde_json::from_str(endpoint.trim()).context("parse the container's endpoint")?;
        let ip = endpoint["IPAMConfig"]["IPv4Address"]
            .as_str()
            .filter(|ip| !ip.is_empty())
            .or_else(|| endpoint["IPAddress"].as_str())
            .with_context(|| format!("{service} has no address on {}", self.network))?
            .to_string();
        // Without its aliases (the service name) the peers could not resolve it.
        let aliases: Vec<String> = endpoint["Aliases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        docker(&["network", "disconnect", &self.network, id]).await?;
        Ok(Attachment { ip, aliases })
    }

    /// Connects a container back with its address and aliases.
    pub async fn reconnect(&self, service: &str, attachment: &Attachment) -> Result<()> {
        let id = self.container(service)?;
        let mut args = vec!["network", "connect", "--ip", attachment.ip.as_str()];
        for alias in &attachment.aliases {
            args.extend(["--alias", alias.as_str()]);
        }
        args.extend([self.network.as_str(), id]);
        docker(&args).await.map(drop)
    }

    /// Waits until every service is healthy (or running, without a health
    /// check) and s3-init has exited 0.
    pub async fn wait_healthy(&self, within: Duration) -> Result<()> {
        let services: Vec<&str> = self.containers.keys().map(String::as_str).collect();
        self.wait_services_healthy(&services, within).await
    }

    /// Waits until `services` are healthy (or running, without a health
    /// check; s3-init: exited 0).
    pub async fn wait_services_healthy(&self, services: &[&str], within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let mut waiting = Vec::new();
            for service in services {
                let state = docker(&[
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                    self.container(service)?,
                ])
                .await?;
                if !service_settled(service, &state) {
                    waiting.push(format!("{service} ({})", state.trim()));
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "services not healthy after {within:?}: {}",
                    waiting.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Whether an ingester answers `/-/ready` with 200.
    pub async fn ready(&self, ingester: &IngesterEndpoint) -> bool {
        let url = format!("{}/-/ready", ingester.base);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// Waits until an ingester is ready.
    pub async fn wait_ready(&self, ingester: &IngesterEndpoint, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while !self.ready(ingester).await {
            if Instant::now() >= deadline {
                bail!("{} not ready after {within:?}", ingester.service);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// One ingester's status.
    pub async fn status(&self, ingester: &IngesterEndpoint) -> Result<IngesterStatus> {
        let url = format!("{}/api/v1/ingest/status", ingester.base);
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))?;
        let mut body: serde_json::Value = answer
            .json()
            .await
            .with_context(|| format!("read the status of {}", ingester.service))?;
        // The API's envelope: {"status": "success", "data": {...}}.
        serde_json::from_value(body["data"].take())
            .with_context(|| format!("parse the status of {}", ingester.service))
    }

    /// The status of every ingester that answers.
    pub async fn statuses(&self) -> BTreeMap<u64, IngesterStatus> {
        let mut out = BTreeMap::new();
        for i in &self.ingesters {
            if let Ok(s) = self.status(i).await {
                out.insert(i.id, s);
            }
        }
        out
    }

    /// The current leader of `shard`: the ingester whose replica says it
    /// leads (the highest term wins if two do), else the leader its
    /// followers name.
    pub async fn leader_of(&self, shard: u64) -> Option<u64> {
        leader_in(&self.statuses().await, shard)
    }

    /// Whether the store gateway serves blocks yet, as the querier's
    /// `/api/v1/stores` shows it (no blocks: `minTime` is i64::MAX).
    pub async fn store_gateway_has_blocks(&self) -> bool {
        let url = format!("{}/api/v1/stores", self.query_url);
        let Ok(answer) = self.http.get(url).send().await else {
            return false;
        };
        let Ok(body) = answer.json::<serde_json::Value>().await else {
            return false;
        };
        let prefix = format!("{STORE_SERVICE}:");
        body["data"]
            .as_object()
            .into_iter()
            .flat_map(|groups| groups.values())
            .filter_map(serde_json::Value::as_array)
            .flatten()
            .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
            .any(|e| e["minTime"].as_i64().is_some_and(|t| t < i64::MAX))
    }

    /// The number of shards: one more than the highest shard any ingester
    /// reports.
    pub async fn shard_count(&self) -> Result<u64> {
        let statuses = self.statuses().await;
        statuses
            .values()
            .flat_map(|s| s.shards.iter().map(|r| r.shard + 1))
            .max()
            .context("no ingester answered its status")
    }
}

/// A container's place on the network, to restore after a partition.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub ip: String,
    pub aliases: Vec<String>,
}

/// The leader of `shard` according to a set of statuses.
pub fn leader_in(statuses: &BTreeMap<u64, IngesterStatus>, shard: u64) -> Option<u64> {
    let replicas = statuses.values().filter_map(|s| {
        s.shards
            .iter()
            .find(|r| r.shard == shard)
            .map(|r| (s.node_id, r))
    });
    let leading = replicas
        .clone()
        .filter(|(_, r)| r.role == "leader")
        .max_by_key(|(_, r)| r.term)
        .map(|(node, _)| node);
    leading.or_else(|| {
        replicas
            .filter(|(_, r)| r.leader != 0)
            .max_by_key(|(_, r)| r.term)
            .map(|(_, r)| r.leader)
    })
}

/// Whether `docker inspect`'s "status exit-code health" says a service is
/// where it should be.
fn service_settled(service: &str, state: &str) -> bool {
    let mut parts = state.split_whitespace();
    let (status, exit_code, health) = (parts.next(), parts.next(), parts.next());
    if service == S3_INIT_SERVICE {
        return status == Some("exited") && exit_code == Some("0");
    }
    status == Some("running") && health.is_none_or(|h| h == "healthy")
}

/// Runs `docker ARGS`, giving its standard output.
pub async fn docker(args: &[&str]) -> Result<String> {
    let mut command = Command::new("docker");
    command.args(args);
    output_of(command, &format!("docker {}", args.join(" "))).await
}

async fn output_of(mut command: Command, what: &str) -> Result<String> {
    let output = command
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(node: u64, shards: &[(u64, &str, u64, u64)]) -> IngesterStatus {
        IngesterStatus {
            node_id: node,
            shards: shards
                .iter()
                .map(|&(shard, role, leader, term)| ShardStatus {
                    shard,
                    role: role.into(),
                    leader,
                    term,
                    voters: vec![1, 2, 3],
                })
                .collect(),
        }
    }

    #[test]
    fn the_leader_is_who_says_it_leads_in_the_highest_term() {
        let mut statuses = BTreeMap::new();
        statuses.insert(1, status(1, &[(0, "leader", 1, 3), (1, "follower", 3, 4)]));
        statuses.insert(2, status(2, &[(0, "leader", 2, 4), (1, "follower", 3, 4)]));
        assert_eq!(leader_in(&statuses, 0), Some(2));
        // Nobody who answered leads shard 1: its followers name ingester 3.
        assert_eq!(leader_in(&statuses, 1), Some(3));
        assert_eq!(leader_in(&statuses, 2), None);
    }

    #[test]
    fn held_shards_are_those_voted_in() {
        let mut s = status(2, &[(0, "follower", 1, 1), (1, "leader", 2, 1)]);
        s.shards[0].voters = vec![1, 3, 4];
        assert_eq!(s.held_shards(), BTreeSet::from([1]));
    }

    #[test]
    fn services_settle_by_health_or_exit() {
        assert!(service_settled("query", "running 0 healthy"));
        assert!(!service_settled("query", "running 0 starting"));
        assert!(service_settled("plain", "running 0"));
        assert!(service_settled(S3_INIT_SERVICE, "exited 0"));
        assert!(!service_settled(S3_INIT_SERVICE, "exited 1"));
        assert!(!service_settled(S3_INIT_SERVICE, "running 0"));
    }
}
