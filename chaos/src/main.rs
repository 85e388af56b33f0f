//! `hearth-chaos`: faults under load against a docker-compose Hearth
//! cluster (deploy/compose). Writes remote-write load with two tenants and
//! records every acknowledged sample, probes the querier every second,
//! injects faults on a schedule (every kind once, then at random from the
//! seed), and after each fault and at the end checks that every
//! acknowledged sample is readable once, nothing unsent appears, replicas
//! agree and tenants stay apart. Writes `report.md` and `report.json`;
//! exits 1 when the verdict fails, 2 when the suite itself could not run.

mod checks;
mod clock;
mod cluster;
mod faults;
mod load;
mod probes;
mod promapi;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::checks::check_cluster;
use crate::clock::RunClock;
use crate::cluster::{Cluster, ComposeProject};
use crate::faults::{run_fault, schedule, wait_for_writes, FaultContext, FaultKind, FaultSettings};
use crate::load::{Ledger, TenantLoad, Writer, WriterConfig};
use crate::probes::{counts_between, Expectations, ProbeCounts, ProbeOutcome, ProbeRecord, Prober};
use crate::report::{render_markdown, tally, FaultRow, Report, Settings, Verdict};

/// Faults under load against a Hearth cluster run by docker-compose.
#[derive(Parser, Debug)]
#[command(name = "hearth-chaos", version)]
struct Args {
    /// How long the load runs (faults that run over extend it).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    duration: Duration,
    /// How many faults (at least one of each kind when 7 or more).
    #[arg(long, default_value_t = 10)]
    faults: usize,
    /// Where report.md, report.json and the services' logs go.
    #[arg(long = "report-dir")]
    report_dir: PathBuf,
    /// Seed of the fault schedule, the targets and the write pacing
    /// (default: from the clock; the report names it).
    #[arg(long)]
    seed: Option<u64>,
    /// Only these kinds of fault (comma separated), e.g. `leader-kill`
    /// to look into one; default: every kind.
    #[arg(long, value_enum, value_delimiter = ',')]
    kinds: Vec<FaultKind>,
    /// The docker-compose project name.
    #[arg(long, default_value = "hearth-chaos")]
    project: String,
    /// Compose files (default: deploy/compose/docker-compose.yml and
    /// docker-compose.s3s.yml of this checkout).
    #[arg(long = "compose-file")]
    compose_files: Vec<PathBuf>,
    /// Start the project first (`docker-compose up -d`) and take it down
    /// (`down -v`) afterwards; otherwise attach to a running one.
    #[arg(long)]
    up: bool,
    /// With --up: leave the project running.
    #[arg(long)]
    keep: bool,
    /// How long a follower is frozen, an ingester partitioned, a scraper
    /// down.
    #[arg(long = "fault-length", default_value = "20s", value_parser = parse_duration)]
    fault_length: Duration,
    /// How long S3 is down.
    #[arg(long = "s3-outage", default_value = "60s", value_parser = parse_duration)]
    s3_outage: Duration,
    /// How long a killed leader or store gateway stays down.
    #[arg(long = "kill-downtime", default_value = "3s", value_parser = parse_duration)]
    kill_downtime: Duration,
    /// The querier's HTTP API.
    #[arg(long = "query-url", default_value = "http://127.0.0.1:9090")]
    query_url: String,
    /// With --up: HEARTH_BLOCK_DURATION, so blocks are cut and uploaded
    /// during the run.
    #[arg(long = "block-duration", default_value = "2m")]
    block_duration: String,
}

/// Series of the default tenant: enough to cover every shard in every request.
const DEFAULT_TENANT_SERIES: usize = 64;
/// Series of the second tenant, "team-b".
const TEAM_B_SERIES: usize = 4;
/// Load before the first fault.
const WARMUP: Duration = Duration::from_secs(15);
/// How long an S3 outage or store kill waits for the first block (cut
/// once a head spans 1.5 block durations: 3 minutes at 2m blocks).
const BLOCKS_WITHIN: Duration = Duration::from_secs(300);
/// How long replicas and the querier get to converge after a fault.
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_CHAOS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(verdict) if verdict.passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hearth-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(mut args: Args) -> Result<Verdict> {
    if args.compose_files.is_empty() {
        let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose");
        args.compose_files = vec![
            compose.join("docker-compose.yml"),
            compose.join("docker-compose.s3s.yml"),
        ];
    }
    std::fs::create_dir_all(&args.report_dir)
        .with_context(|| format!("create {}", args.report_dir.display()))?;
    let project = ComposeProject {
        name: args.project.clone(),
        files: args.compose_files.clone(),
    };
    if args.up {
        tracing::info!("starting project {}", project.name);
        project.up(&args.block_duration).await?;
    }
    let outcome = attach_and_exercise(&args, &project).await;
    save_logs(&project, &args.report_dir.join("logs")).await;
    if args.up && !args.keep {
        tracing::info!("taking project {} down", project.name);
        if let Err(e) = project.down().await {
            tracing::error!("{e:#}");
        }
    }
    outcome
}

async fn attach_and_exercise(args: &Args, project: &ComposeProject) -> Result<Verdict> {
    let cluster = Cluster::attach(project.clone(), args.query_url.clone()).await?;
    cluster
        .wait_healthy(Duration::from_secs(300))
        .await
        .context("wait for the cluster")?;
    for ingester in &cluster.ingesters {
        cluster
            .wait_ready(ingester, Duration::from_secs(120))
            .await?;
    }
    let report = exercise(args, &cluster).await?;
    std::fs::write(args.report_dir.join("report.md"), render_markdown(&report))
        .context("write report.md")?;
    std::fs::write(
        args.report_dir.join("report.json"),
        serde_json::to_string_pretty(&report).context("encode the report")?,
    )
    .context("write report.json")?;
    println!("{}", render_markdown(&report));
    if !report.verdict.passed {
        eprintln!("hearth-chaos: FAIL");
        for reason in &report.verdict.reasons {
            eprintln!("  - {reason}");
        }
    }
    Ok(report.verdict)
}

/// The run: load, probes, faults with their checks, the final check.
async fn exercise(args: &Args, cluster: &Cluster) -> Result<Report> {
    let seed = args.seed.unwrap_or_else(|| clock::unix_ms() as u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let clock = RunClock::start();
    let shards = cluster.shard_count().await?;
    let run = clock.start_unix_ms().to_string();
    let loads = [
        TenantLoad::new(
            hearth_ingest::ingester::DEFAULT_TENANT,
            None,
            "",
            DEFAULT_TENANT_SERIES,
            &run,
        ),
        TenantLoad::new("team-b", Some("team-b"), "b", TEAM_B_SERIES, &run),
    ];
    let covered: BTreeSet<u64> = (0..DEFAULT_TENANT_SERIES)
        .map(|k| hearth_ingest::ingester::shard_of(&loads[0].labels(k), shards))
        .collect();
    if covered.len() as u64 != shards {
        bail!("the load's series cover shards {covered:?} of {shards}");
    }
    tracing::info!(
        "run {run}: seed {seed}, {shards} shards, {} ingesters",
        cluster.ingesters.len()
    );

    let urls: Vec<String> = cluster
        .ingesters
        .iter()
        .map(|i| format!("{}/api/v1/write", i.base))
        .collect();
    let writer = Writer::spawn(
        loads[0].clone(),
        WriterConfig {
            urls: urls.clone(),
            interval: (Duration::from_millis(250), Duration::from_millis(500)),
            seed,
        },
        clock,
    );
    let writer_b = Writer::spawn(
        loads[1].clone(),
        WriterConfig {
            urls,
            interval: (Duration::from_millis(500), Duration::from_millis(1000)),
            seed: seed.wrapping_add(1),
        },
        clock,
    );
    let settings = FaultSettings {
        fault_length: args.fault_length,
        s3_outage: args.s3_outage,
        kill_downtime: args.kill_downtime,
    };
    let cx = FaultContext {
        cluster,
        settings,
        clock,
        writer: &writer,
        shards,
    };
    if wait_for_writes(&cx, Duration::ZERO, Duration::from_secs(60))
        .await
        .is_none()
    {
        bail!("no write acknowledged in the first minute");
    }
    let expect = Expectations {
        series: loads
            .iter()
            .map(|l| (l.tenant.clone(), l.series.len()))
            .collect(),
        selector: load::run_selector(&run),
    };
    let prober = Prober::spawn(cluster.query_url.clone(), expect.clone(), clock);

    let kinds = if args.kinds.is_empty() {
        FaultKind::ALL.to_vec()
    } else {
        args.kinds.clone()
    };
    let kinds = schedule(args.faults, &kinds, &mut rng);
    let span = args.duration.saturating_sub(WARMUP);
    let mut rows = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        let slot = WARMUP + span.mul_f64(i as f64 / kinds.len().max(1) as f64);
        sleep_until(&clock, slot).await;
        let mut waited = None;
        if kind.needs_blocks() && !cluster.store_gateway_has_blocks().await {
            tracing::info!(
                "fault #{}: waiting for the first block in the bucket",
                i + 1
            );
            let since = clock.now();
            wait_for_blocks(cluster, BLOCKS_WITHIN).await;
            waited = Some(clock.now() - since);
        }
        tracing::info!("fault #{}: {}", i + 1, kind.name());
        let attempted = clock.now();
        let (fault, error) = match run_fault(kind, &cx, &mut rng).await {
            Ok(f) => (Some(f), None),
            Err(e) => {
                tracing::error!("fault #{} ({}): {e:#}", i + 1, kind.name());
                heal_everything(cluster).await;
                (None, Some(format!("{e:#}")))
            }
        };
        let injected = fault.as_ref().map_or(attempted, |f| f.injected);
        let recovery = wait_for_writes(&cx, injected, Duration::from_secs(60)).await;
        let window_end = clock.now();
        let ledgers = [writer.snapshot(), writer_b.snapshot()];
        let probes = prober.records();
        let check = check_cluster(cluster, &ledgers, &clock, shards, CONVERGE_WITHIN).await;
        let in_window: Vec<&ProbeRecord> = probes
            .iter()
            .filter(|r| (injected..window_end).contains(&r.at))
            .collect();
        let row = FaultRow {
            number: i + 1,
            fault: kind,
            target: fault.as_ref().map_or("-".into(), |f| f.target.clone()),
            started_s: injected.as_secs_f64(),
            length_s: fault
                .as_ref()
                .map_or(0.0, |f| (f.healed - f.injected).as_secs_f64()),
            recovery_s: recovery.map(|d| d.as_secs_f64()),
            writes_failed: ledgers
                .iter()
                .map(|l| l.failures_between(injected, window_end))
                .sum(),
            write_failures: {
                let mut failures: Vec<(Duration, String)> = ledgers
                    .iter()
                    .flat_map(|l| l.failures_in(injected, window_end))
                    .cloned()
                    .collect();
                failures.sort();
                failures
                    .into_iter()
                    .map(|(at, why)| format!("+{:.2}s {why}", (at - injected).as_secs_f64()))
                    .collect()
            },
            queries: counts_between(&probes, injected, window_end),
            partial_warnings: tally(in_window.iter().flat_map(|r| warnings_of(r))),
            query_failures: tally(in_window.iter().filter_map(|r| failure_of(r))),
            check,
            notes: waited
                .map(|w| {
                    format!(
                        "waited {:.0}s for the first block in the bucket",
                        w.as_secs_f64()
                    )
                })
                .into_iter()
                .chain(fault.map(|f| f.notes).unwrap_or_default())
                .collect(),
            error,
        };
        tracing::info!(
            "fault #{} {} on {}: writes again after {}, {} writes failed, queries {} failed {} \
             partial, lost {}, replicas identical {}",
            row.number,
            kind.name(),
            row.target,
            row.recovery_s
                .map_or("never".into(), |s| format!("{s:.2}s")),
            row.writes_failed,
            row.queries.failed,
            row.queries.partial,
            row.check.querier.lost,
            row.check.replicas_identical
        );
        rows.push(row);
    }
    sleep_until(&clock, args.duration).await;

    let ledgers: Vec<Ledger> = vec![writer.stop().await, writer_b.stop().await];
    let probes = prober.stop().await;
    tracing::info!("load stopped; final check");
    let final_check =
        check_cluster(cluster, &ledgers, &clock, shards, Duration::from_secs(60)).await;

    let mut queries = ProbeCounts::default();
    for r in &probes {
        queries.add(r);
    }
    let mut report = Report {
        settings: Settings {
            project: args.project.clone(),
            run,
            seed,
            duration_s: args.duration.as_secs_f64(),
            faults: args.faults,
            fault_length_s: args.fault_length.as_secs_f64(),
            s3_outage_s: args.s3_outage.as_secs_f64(),
            series: expect.series,
            shards,
        },
        run_s: clock.now().as_secs_f64(),
        faults: rows,
        faults_by_kind: BTreeMap::new(),
        writes: ledgers
            .iter()
            .map(|l| (l.load.tenant.clone(), l.totals()))
            .collect(),
        acknowledged_samples: ledgers
            .iter()
            .map(|l| l.totals().acknowledged * l.load.series.len())
            .sum(),
        leader_kill_recovery: Default::default(),
        recovery_by_kind: BTreeMap::new(),
        queries,
        partial_warnings: tally(probes.iter().flat_map(warnings_of)),
        query_failures: tally(probes.iter().filter_map(failure_of)),
        anomalies: tally(probes.iter().filter_map(|r| r.anomaly.as_deref())),
        wrong_full_answers: probes
            .iter()
            .filter(|r| r.anomaly.is_some() && matches!(r.outcome, ProbeOutcome::Answered))
            .count(),
        final_check,
        verdict: Verdict::default(),
    };
    report.summarize();
    Ok(report)
}

/// The error of a failed probe.
fn failure_of(r: &ProbeRecord) -> Option<&str> {
    match &r.outcome {
        ProbeOutcome::Failed(e) => Some(e),
        _ => None,
    }
}

/// Waits until the store gateway serves blocks (or `within` is up).
async fn wait_for_blocks(cluster: &Cluster, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while !cluster.store_gateway_has_blocks().await {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("no block in the bucket after {within:?}");
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The warnings of a partial answer.
fn warnings_of(r: &ProbeRecord) -> impl Iterator<Item = &str> {
    let warnings: &[String] = match &r.outcome {
        ProbeOutcome::Partial(w) => w,
        _ => &[],
    };
    warnings.iter().map(String::as_str)
}

async fn sleep_until(clock: &RunClock, at: Duration) {
    let now = clock.now();
    if at > now {
        tokio::time::sleep(at - now).await;
    }
}

/// After a fault that failed half way: every container unpaused and
/// started (errors ignored: most are already running).
async fn heal_everything(cluster: &Cluster) {
    let services: Vec<String> = cluster
        .ingesters
        .iter()
        .map(|i| i.service.clone())
        .chain(
            [cluster::S3_SERVICE, cluster::STORE_SERVICE]
                .into_iter()
                .chain(cluster::SCRAPER_SERVICES)
                .map(String::from),
        )
        .collect();
    for service in &services {
        let _ = cluster.docker_on(&["unpause"], service).await;
        let _ = cluster.start(service).await;
    }
}

/// The last lines of every service's log, for the report.
async fn save_logs(project: &ComposeProject, dir: &Path) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        tracing::warn!("create {}: {e}", dir.display());
        return;
    }
    let services = match project.services().await {
        Ok(services) => services,
        Err(e) => {
            tracing::warn!("services of {}: {e:#}", project.name);
            return;
        }
    };
    for service in &services {
        match project.logs(service, 5000).await {
            Ok(text) => {
                let _ = std::fs::write(dir.join(format!("{service}.log")), text);
            }
            Err(e) => tracing::warn!("logs of {service}: {e:#}"),
        }
    }
}

/// `500ms`, `20s`, `5m`, `1h`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 20s or 5m"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn the_flags_parse() {
        let args = Args::try_parse_from([
            "hearth-chaos",
            "--duration",
            "5m",
            "--faults",
            "10",
            "--report-dir",
            "/tmp/r",
            "--fault-length",
            "10s",
            "--s3-outage",
            "20s",
            "--up",
        ])
        .unwrap();
        assert_eq!(args.duration, Duration::from_secs(300));
        assert!(args.up && !args.keep);
        assert_eq!(args.s3_outage, Duration::from_secs(20));
    }
}
