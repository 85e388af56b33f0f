//! The faults: what each kind does to the cluster and how it is healed,
//! and the schedule (every kind once, in turn, then kinds at random from
//! the seed). A fault returns only once healed: the containers it touched
//! are running, connected and ready again.

use std::time::Duration;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde::Serialize;

use crate::clock::RunClock;
use crate::cluster::{Cluster, IngesterEndpoint, S3_SERVICE, SCRAPER_SERVICES, STORE_SERVICE};
use crate::load::Writer;

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the leader of a shard, start it again after a few seconds.
    LeaderKill,
    /// `docker pause` a follower of a shard for the fault length.
    FollowerFreeze,
    /// Disconnect an ingester from the network for the fault length.
    Partition,
    /// Stop the S3 server for the S3 outage length.
    S3Outage,
    /// SIGKILL the store gateway, start it again after a few seconds.
    StoreKill,
    /// `docker restart` each ingester in turn, each ready and writes
    /// through before the next.
    RollingRestart,
    /// SIGKILL a scraper of the HA pair, start it after the fault length.
    ScraperLoss,
}

impl FaultKind {
    /// Every kind, in the order of the schedule's first round: those that
    /// matter only once blocks are in the bucket come last.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::LeaderKill,
        FaultKind::FollowerFreeze,
        FaultKind::Partition,
        FaultKind::RollingRestart,
        FaultKind::ScraperLoss,
        FaultKind::S3Outage,
        FaultKind::StoreKill,
    ];

    /// Whether the fault tests anything before the first block is in the
    /// bucket (an S3 outage then misses the uploads and the store
    /// gateway's reads, a store kill hides nothing).
    pub fn needs_blocks(self) -> bool {
        matches!(self, FaultKind::S3Outage | FaultKind::StoreKill)
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::LeaderKill => "leader-kill",
            FaultKind::FollowerFreeze => "follower-freeze",
            FaultKind::Partition => "partition",
            FaultKind::S3Outage => "s3-outage",
            FaultKind::StoreKill => "store-kill",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::ScraperLoss => "scraper-loss",
        }
    }
}

/// `count` faults of `kinds`: every kind once in turn (as far as `count`
/// goes), then kinds drawn at random.
pub fn schedule(count: usize, kinds: &[FaultKind], rng: &mut StdRng) -> Vec<FaultKind> {
    (0..count)
        .map(|i| match kinds.get(i) {
            Some(&kind) => kind,
            None => *kinds.choose(rng).expect("there are kinds"),
        })
        .collect()
}

/// How long faults last.
#[derive(Clone, Copy, Debug)]
pub struct FaultSettings {
    /// Freeze, partition and scraper loss.
    pub fault_length: Duration,
    pub s3_outage: Duration,
    /// How long a killed process stays down.
    pub kill_downtime: Duration,
}

/// A fault that happened.
#[derive(Clone, Debug)]
pub struct Fault {
    /// What it hit, e.g. "ingester-2 (leader of shard 3)".
    pub target: String,
    /// When the fault was injected: once the command that kills, pauses or
    /// disconnects an ingester has returned (the fault is in effect); just
    /// before the first command of the others.
    pub injected: Duration,
    /// When everything it touched was back.
    pub healed: Duration,
    pub notes: Vec<String>,
}

/// What a fault needs of the run.
pub struct FaultContext<'a> {
    pub cluster: &'a Cluster,
    pub settings: FaultSettings,
    pub clock: RunClock,
    /// The main writer: a rolling restart waits for its writes between
    /// restarts.
    pub writer: &'a Writer,
    pub shards: u64,
}

/// How long a restarted ingester may take to be ready.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// Injects a fault of `kind` and heals it.
pub async fn run_fault(kind: FaultKind, cx: &FaultContext<'_>, rng: &mut StdRng) -> Result<Fault> {
    match kind {
        FaultKind::LeaderKill => leader_kill(cx, rng).await,
        FaultKind::FollowerFreeze => follower_freeze(cx, rng).await,
        FaultKind::Partition => partition(cx, rng).await,
        FaultKind::S3Outage => s3_outage(cx).await,
        FaultKind::StoreKill => store_kill(cx).await,
        FaultKind::RollingRestart => rolling_restart(cx).await,
        FaultKind::ScraperLoss => scraper_loss(cx, rng).await,
    }
}

/// A shard drawn at random and its leader (waiting up to 10 s for one).
async fn random_shard_leader(cx: &FaultContext<'_>, rng: &mut StdRng) -> Result<(u64, u64)> {
    let shard = rng.random_range(0..cx.shards);
    for _ in 0..20 {
        if let Some(leader) = cx.cluster.leader_of(shard).await {
            return Ok((shard, leader));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("shard {shard} has no leader")
}

async fn leader_kill(cx: &FaultContext<'_>, rng: &mut StdRng) -> Result<Fault> {
    let (shard, leader) = random_shard_leader(cx, rng).await?;
    let ingester = cx.cluster.ingester(leader)?.clone();
    cx.cluster.kill(&ingester.service).await?;
    let injected = cx.clock.now();
    tokio::time::sleep(cx.settings.kill_downtime).await;
    let mut notes = Vec::new();
    if let Some(new_leader) = cx.cluster.leader_of(shard).await {
        notes.push(format!(
            "shard {shard} led by ingester {new_leader} while it was down"
        ));
    }
    cx.cluster.start(&ingester.service).await?;
    cx.cluster.wait_ready(&ingester, READY_WITHIN).await?;
    Ok(Fault {
        target: format!("{} (leader of shard {shard})", ingester.service),
        injected,
        healed: cx.clock.now(),
        notes,
    })
}

async fn follower_freeze(cx: &FaultContext<'_>, rng: &mut StdRng) -> Result<Fault> {
    let (shard, leader) = random_shard_leader(cx, rng).await?;
    let statuses = cx.cluster.statuses().await;
    let voters: Vec<u64> = statuses
        .get(&leader)
        .and_then(|s| s.shards.iter().find(|r| r.shard == shard))
        .map(|r| r.voters.clone())
        .context("the leader's status lacks the shard")?;
    let followers: Vec<u64> = voters.into_iter().filter(|&v| v != leader).collect();
    let follower = *followers
        .choose(rng)
        .with_context(|| format!("shard {shard} has no follower"))?;
    let leads: Vec<u64> = (0..cx.shards)
        .filter(|&s| crate::cluster::leader_in(&statuses, s) == Some(follower))
        .collect();
    let ingester = cx.cluster.ingester(follower)?.clone();
    cx.cluster.docker_on(&["pause"], &ingester.service).await?;
    let injected = cx.clock.now();
    tokio::time::sleep(cx.settings.fault_length).await;
    cx.cluster
        .docker_on(&["unpause"], &ingester.service)
        .await?;
    cx.cluster.wait_ready(&ingester, READY_WITHIN).await?;
    let notes = if leads.is_empty() {
        Vec::new()
    } else {
        vec![format!("it also led shards {leads:?}")]
    };
    Ok(Fault {
        target: format!("{} (follower of shard {shard})", ingester.service),
        injected,
        healed: cx.clock.now(),
        notes,
    })
}

async fn partition(cx: &FaultContext<'_>, rng: &mut StdRng) -> Result<Fault> {
    let ingester: IngesterEndpoint = cx
        .cluster
        .ingesters
        .choose(rng)
        .expect("a cluster has ingesters")
        .clone();
    let statuses = cx.cluster.statuses().await;
    let leads: Vec<u64> = (0..cx.shards)
        .filter(|&s| crate::cluster::leader_in(&statuses, s) == Some(ingester.id))
        .collect();
    let attachment = cx.cluster.disconnect(&ingester.service).await?;
    let injected = cx.clock.now();
    tokio::time::sleep(cx.settings.fault_length).await;
    cx.cluster.reconnect(&ingester.service, &attachment).await?;
    cx.cluster.wait_ready(&ingester, READY_WITHIN).await?;
    Ok(Fault {
        target: format!("{} (leading shards {leads:?})", ingester.service),
        injected,
        healed: cx.clock.now(),
        notes: Vec::new(),
    })
}

async fn s3_outage(cx: &FaultContext<'_>) -> Result<Fault> {
    let stop = cx.cluster.docker_on(&["stop", "-t", "5"], S3_SERVICE);
    service_down(cx, S3_SERVICE, stop, cx.settings.s3_outage).await
}

async fn store_kill(cx: &FaultContext<'_>) -> Result<Fault> {
    let kill = cx.cluster.kill(STORE_SERVICE);
    service_down(cx, STORE_SERVICE, kill, cx.settings.kill_downtime).await
}

/// Takes `service` down with `take_down`, keeps it down for `downtime`,
/// then starts it and waits until it is healthy again.
async fn service_down(
    cx: &FaultContext<'_>,
    service: &str,
    take_down: impl std::future::Future<Output = Result<()>>,
    downtime: Duration,
) -> Result<Fault> {
    let injected = cx.clock.now();
    take_down.await?;
    tokio::time::sleep(downtime).await;
    cx.cluster.start(service).await?;
    cx.cluster
        .wait_services_healthy(&[service], READY_WITHIN)
        .await?;
    Ok(Fault {
        target: service.into(),
        injected,
        healed: cx.clock.now(),
        notes: Vec::new(),
    })
}

async fn rolling_restart(cx: &FaultContext<'_>) -> Result<Fault> {
    let injected = cx.clock.now();
    let mut notes = Vec::new();
    for ingester in &cx.cluster.ingesters {
        let restarted = cx.clock.now();
        cx.cluster
            .docker_on(&["restart", "-t", "10"], &ingester.service)
            .await?;
        cx.cluster.wait_ready(ingester, READY_WITHIN).await?;
        let ready = cx.clock.now();
        let through = wait_for_writes(cx, ready, Duration::from_secs(60)).await;
        notes.push(format!(
            "{}: ready after {:.1}s, writes through {}",
            ingester.service,
            (ready - restarted).as_secs_f64(),
            through.map_or("not within 60s".to_string(), |d| format!(
                "{:.1}s later",
                d.as_secs_f64()
            ))
        ));
    }
    Ok(Fault {
        target: cx
            .cluster
            .ingesters
            .iter()
            .map(|i| i.service.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        injected,
        healed: cx.clock.now(),
        notes,
    })
}

async fn scraper_loss(cx: &FaultContext<'_>, rng: &mut StdRng) -> Result<Fault> {
    let scraper = *SCRAPER_SERVICES.choose(rng).expect("two scrapers");
    let injected = cx.clock.now();
    cx.cluster.kill(scraper).await?;
    tokio::time::sleep(cx.settings.fault_length).await;
    cx.cluster.start(scraper).await?;
    cx.cluster
        .wait_services_healthy(&[scraper], READY_WITHIN)
        .await?;
    Ok(Fault {
        target: scraper.into(),
        injected,
        healed: cx.clock.now(),
        notes: Vec::new(),
    })
}

/// Waits until a write first attempted at or after `since` is
/// acknowledged; gives the time from `since`.
pub async fn wait_for_writes(
    cx: &FaultContext<'_>,
    since: Duration,
    within: Duration,
) -> Option<Duration> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(d) = cx.writer.ledger().recovery_after(since) {
            return Some(d);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_kind_comes_first_then_the_seed_decides() {
        let mut rng = StdRng::seed_from_u64(7);
        let s = schedule(10, &FaultKind::ALL, &mut rng);
        assert_eq!(&s[..7], &FaultKind::ALL);
        assert_eq!(s.len(), 10);
        let again = schedule(10, &FaultKind::ALL, &mut StdRng::seed_from_u64(7));
        assert_eq!(s, again);
        assert_eq!(
            schedule(3, &FaultKind::ALL, &mut rng),
            FaultKind::ALL[..3].to_vec()
        );
    }

    #[test]
    fn a_long_schedule_draws_every_kind() {
        let s = schedule(60, &FaultKind::ALL, &mut StdRng::seed_from_u64(1));
        for kind in FaultKind::ALL {
            assert!(s[7..].contains(&kind), "{kind:?} never drawn");
        }
    }

    #[test]
    fn a_schedule_keeps_to_the_kinds_asked_for() {
        let kinds = [FaultKind::LeaderKill, FaultKind::Partition];
        let s = schedule(20, &kinds, &mut StdRng::seed_from_u64(3));
        assert_eq!(&s[..2], &kinds);
        assert!(s.iter().all(|k| kinds.contains(k)));
    }
}
