//! The scrape manager: one scrape pool per job, holding one loop per
//! target. Configuration reloads restart only the loops of changed jobs
//! (handing each loop's series to its successor); discovery updates start
//! and stop loops; the API reads a snapshot of targets and metadata.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use hearth_config::{Config, NameValidationScheme, ScrapeConfig, ScrapeProtocol};
use hearth_discovery::{TargetGroup, TargetSets};
use hearth_exposition::Format;
use hearth_model::Labels;
use hearth_tsdb::db::Db;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::http::Scraper;
use crate::process::{MetricMetadata, SampleRules};
use crate::scrape_loop::{run, LoopContext, LoopState, TargetHealth, TargetStatus};
use crate::target::{targets_from_groups, Target};

/// Options of the manager that do not come from `prometheus.yml`.
#[derive(Debug, Clone, Default)]
pub struct ScrapeOptions {
    /// Per-server seed of the scrape offsets (Prometheus hashes its
    /// hostname and external labels): servers scraping the same targets
    /// spread differently.
    pub offset_seed: u64,
    /// The host name that replaces a loopback host in `globalUrl`; `None`
    /// keeps the scrape URL.
    pub hostname: Option<String>,
}

/// An active target as `/api/v1/targets` shows it.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    pub discovered_labels: Labels,
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub global_url: String,
    /// Empty after a successful scrape.
    pub last_error: String,
    /// When the last scrape started; `None` before the first.
    pub last_scrape: Option<SystemTime>,
    pub last_scrape_duration: std::time::Duration,
    pub health: TargetHealth,
    /// Rendered as Prometheus renders durations (`15s`, `1m`).
    pub scrape_interval: String,
    pub scrape_timeout: String,
    /// Identifies the loop scraping the target: changes only when the loop
    /// is restarted (its job's configuration changed).
    pub scrape_loop_id: u64,
}

/// A target dropped by relabeling.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
    pub scrape_pool: String,
}

/// Everything `/api/v1/targets` lists.
#[derive(Debug, Clone, Default)]
pub struct TargetsSnapshot {
    /// By job, then in discovery order.
    pub active: Vec<ActiveTarget>,
    /// Up to each job's `keep_dropped_targets` (0 = all).
    pub dropped: Vec<DroppedTarget>,
    /// How many targets each job dropped, kept or not.
    pub dropped_counts: BTreeMap<String, usize>,
}

/// The metric metadata one target exposed in its last successful scrape.
#[derive(Debug, Clone)]
pub struct TargetMetadata {
    pub scrape_pool: String,
    /// The target's public labels.
    pub labels: Labels,
    pub metadata: Vec<MetricMetadata>,
}

/// Scrapes every target of every job into a [`Db`].
pub struct ScrapeManager {
    db: Arc<Db>,
    options: ScrapeOptions,
    runtime: Handle,
    shutdown: CancellationToken,
    next_loop_id: AtomicU64,
    state: Mutex<ManagerState>,
}

#[derive(Default)]
struct ManagerState {
    pools: BTreeMap<String, Pool>,
    target_sets: TargetSets,
    /// Loops told to stop, still running (staleness) until done.
    retiring: Vec<JoinHandle<LoopState>>,
    stopped: bool,
}

/// One job's targets and loops.
struct Pool {
    config: ScrapeConfig,
    global_scheme: Option<NameValidationScheme>,
    scraper: Arc<Scraper>,
    rules: Arc<SampleRules>,
    fallback: Option<Format>,
    /// Target hashes in discovery order.
    order: Vec<u64>,
    loops: HashMap<u64, ScrapeLoop>,
    dropped: Vec<Labels>,
    dropped_count: usize,
    forced_error: Arc<Mutex<Option<String>>>,
}

struct ScrapeLoop {
    id: u64,
    target: Target,
    status: Arc<Mutex<TargetStatus>>,
    stop: CancellationToken,
    stale_on_stop: Arc<AtomicBool>,
    handle: JoinHandle<LoopState>,
}

impl ScrapeManager {
    /// A manager appending to `db`. Must be called within a Tokio runtime,
    /// where the loops will run.
    pub fn new(db: Arc<Db>, options: ScrapeOptions) -> ScrapeManager {
        ScrapeManager {
            db,
            options,
            runtime: Handle::current(),
            shutdown: CancellationToken::new(),
            next_loop_id: AtomicU64::new(1),
            state: Mutex::new(ManagerState::default()),
        }
    }

    /// Applies a (re)loaded configuration: jobs that appeared start with the
    /// targets last discovered for them, jobs whose configuration changed
    /// restart their loops (without a gap in staleness tracking), removed
    /// jobs stop their loops with stale markers; unchanged jobs keep their
    /// loops running untouched.
    pub fn apply_config(&self, config: &Config) {
        let mut state = self.state.lock();
        if state.stopped {
            return;
        }
        let global_scheme = config.global.metric_name_validation_scheme;
        let mut retiring = Vec::new();
        let names: Vec<&str> = config
            .scrape_configs
            .iter()
            .map(|j| j.job_name.as_str())
            .collect();
        let removed: Vec<String> = state
            .pools
            .keys()
            .filter(|name| !names.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(pool) = state.pools.remove(&name) {
                for (_, l) in pool.loops {
                    retiring.push(stop_loop(l, true));
                }
            }
        }
        for job in &config.scrape_configs {
            let groups = state
                .target_sets
                .get(&job.job_name)
                .cloned()
                .unwrap_or_default();
            match state.pools.get_mut(&job.job_name) {
                Some(pool) if pool.config == *job && pool.global_scheme == global_scheme => {}
                Some(pool) => {
                    pool.set_config(job, global_scheme);
                    retiring.extend(self.sync_pool(pool, &groups, true));
                }
                None => {
                    let mut pool = Pool::new(job, global_scheme);
                    retiring.extend(self.sync_pool(&mut pool, &groups, false));
                    state.pools.insert(job.job_name.clone(), pool);
                }
            }
        }
        state.retiring.retain(|h| !h.is_finished());
        state.retiring.extend(retiring);
    }

    /// Applies discovered targets: per job present in `sets`, new targets
    /// start, gone ones stop with stale markers, the others keep running.
    /// Jobs absent from `sets` keep their targets.
    pub fn sync(&self, sets: &TargetSets) {
        let mut state = self.state.lock();
        if state.stopped {
            return;
        }
        let mut retiring = Vec::new();
        for (job, groups) in sets {
            state.target_sets.insert(job.clone(), groups.clone());
            if let Some(pool) = state.pools.get_mut(job) {
                retiring.extend(self.sync_pool(pool, groups, false));
            }
        }
        state.retiring.retain(|h| !h.is_finished());
        state.retiring.extend(retiring);
    }

    /// Stops every loop and waits for them. No stale markers are written:
    /// the series resume when the server comes back, as in Prometheus.
    pub async fn stop(&self) {
        let handles: Vec<JoinHandle<LoopState>> = {
            let mut state = self.state.lock();
            state.stopped = true;
            self.shutdown.cancel();
            let mut handles: Vec<_> = std::mem::take(&mut state.retiring);
            for (_, pool) in std::mem::take(&mut state.pools) {
                handles.extend(pool.loops.into_values().map(|l| l.handle));
            }
            handles
        };
        for h in handles {
            let _ = h.await;
        }
    }

    /// Active and dropped targets of every job.
    pub fn targets(&self) -> TargetsSnapshot {
        let state = self.state.lock();
        let mut out = TargetsSnapshot::default();
        for (name, pool) in &state.pools {
            for hash in &pool.order {
                let Some(l) = pool.loops.get(hash) else {
                    continue;
                };
                let status = l.status.lock().clone();
                let url = l.target.url().to_string();
                out.active.push(ActiveTarget {
                    discovered_labels: l.target.discovered_labels().clone(),
                    labels: l.target.labels(),
                    scrape_pool: name.clone(),
                    global_url: global_url(&url, self.options.hostname.as_deref()),
                    scrape_url: url,
                    last_error: status.last_error,
                    last_scrape: status.last_scrape,
                    last_scrape_duration: status.last_duration,
                    health: status.health,
                    scrape_interval: l.target.interval().to_string(),
                    scrape_timeout: l.target.timeout().to_string(),
                    scrape_loop_id: l.id,
                });
            }
            out.dropped
                .extend(pool.dropped.iter().map(|d| DroppedTarget {
                    discovered_labels: d.clone(),
                    scrape_pool: name.clone(),
                }));
            out.dropped_counts.insert(name.clone(), pool.dropped_count);
        }
        out
    }

    /// The metadata every active target exposed in its last successful
    /// scrape (`/api/v1/targets/metadata`, `/api/v1/metadata`).
    pub fn metadata(&self) -> Vec<TargetMetadata> {
        let state = self.state.lock();
        let mut out = Vec::new();
        for (name, pool) in &state.pools {
            for hash in &pool.order {
                if let Some(l) = pool.loops.get(hash) {
                    let metadata = l.status.lock().metadata.clone();
                    out.push(TargetMetadata {
                        scrape_pool: name.clone(),
                        labels: l.target.labels(),
                        metadata: metadata.values().cloned().collect(),
                    });
                }
            }
        }
        out
    }

    /// Brings a pool's loops in line with `groups`; with `restart`, loops
    /// of targets that stay are restarted (a new configuration). Returns
    /// the handles of loops told to stop.
    fn sync_pool(
        &self,
        pool: &mut Pool,
        groups: &[TargetGroup],
        restart: bool,
    ) -> Vec<JoinHandle<LoopState>> {
        let found = targets_from_groups(&pool.config, groups);
        for e in &found.errors {
            tracing::warn!(job = pool.config.job_name, "creating target failed: {e}");
        }
        pool.dropped_count = found.dropped.len();
        let keep = pool.config.keep_dropped_targets as usize;
        pool.dropped = found.dropped;
        if keep > 0 {
            pool.dropped.truncate(keep);
        }
        // Before any loop starts, so that none scrapes over the limit.
        let limit = pool.config.target_limit;
        let count = found.active.len();
        *pool.forced_error.lock() = (limit > 0 && count as u64 > limit)
            .then(|| Error::TargetLimit { count, limit }.to_string());
        let mut retiring = Vec::new();
        let mut loops = HashMap::with_capacity(found.active.len());
        let mut order = Vec::with_capacity(found.active.len());
        for target in found.active {
            let hash = target.hash();
            order.push(hash);
            let l = match pool.loops.remove(&hash) {
                Some(old) if restart => {
                    let status = old.status.clone();
                    let previous = stop_loop(old, false);
                    self.start_loop(pool, target, status, Some(previous))
                }
                Some(mut old) => {
                    // Same identity: keep the loop, refresh what the API shows.
                    old.target = target;
                    old
                }
                None => self.start_loop(pool, target, Arc::default(), None),
            };
            loops.insert(hash, l);
        }
        for (_, gone) in pool.loops.drain() {
            retiring.push(stop_loop(gone, true));
        }
        pool.loops = loops;
        pool.order = order;
        retiring
    }

    fn start_loop(
        &self,
        pool: &Pool,
        target: Target,
        status: Arc<Mutex<TargetStatus>>,
        previous: Option<JoinHandle<LoopState>>,
    ) -> ScrapeLoop {
        let stop = self.shutdown.child_token();
        let stale_on_stop = Arc::new(AtomicBool::new(false));
        let ctx = LoopContext {
            db: self.db.clone(),
            target: target.clone(),
            scraper: pool.scraper.clone(),
            rules: pool.rules.clone(),
            fallback: pool.fallback,
            offset_seed: self.options.offset_seed,
            status: status.clone(),
            forced_error: pool.forced_error.clone(),
            stop: stop.clone(),
            shutdown: self.shutdown.clone(),
            stale_on_stop: stale_on_stop.clone(),
        };
        let handle = self.runtime.spawn(run(ctx, previous));
        ScrapeLoop {
            id: self.next_loop_id.fetch_add(1, Ordering::Relaxed),
            target,
            status,
            stop,
            stale_on_stop,
            handle,
        }
    }
}

impl Drop for ScrapeManager {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Tells a loop to stop; with `stale`, the target went away and the loop
/// writes stale markers before it ends.
fn stop_loop(l: ScrapeLoop, stale: bool) -> JoinHandle<LoopState> {
    l.stale_on_stop.store(stale, Ordering::SeqCst);
    l.stop.cancel();
    l.handle
}

impl Pool {
    fn new(job: &ScrapeConfig, global_scheme: Option<NameValidationScheme>) -> Pool {
        let mut pool = Pool {
            config: job.clone(),
            global_scheme,
            scraper: Arc::new(Scraper::new(job, global_scheme)),
            rules: Arc::default(),
            fallback: None,
            order: Vec::new(),
            loops: HashMap::new(),
            dropped: Vec::new(),
            dropped_count: 0,
            forced_error: Arc::default(),
        };
        pool.set_config(job, global_scheme);
        pool
    }

    fn set_config(&mut self, job: &ScrapeConfig, global_scheme: Option<NameValidationScheme>) {
        self.config = job.clone();
        self.global_scheme = global_scheme;
        self.scraper = Arc::new(Scraper::new(job, global_scheme));
        self.rules = Arc::new(SampleRules {
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            track_timestamps_staleness: job.track_timestamps_staleness,
            metric_relabel_configs: job.metric_relabel_configs.clone(),
            sample_limit: job.sample_limit,
            label_limit: job.label_limit,
            label_name_length_limit: job.label_name_length_limit,
            label_value_length_limit: job.label_value_length_limit,
        });
        self.fallback = job.fallback_scrape_protocol.map(|p| match p {
            ScrapeProtocol::OpenMetricsText1_0_0 | ScrapeProtocol::OpenMetricsText0_0_1 => {
                Format::OpenMetrics
            }
            ScrapeProtocol::PrometheusText1_0_0 | ScrapeProtocol::PrometheusText0_0_4 => {
                Format::Text004
            }
            ScrapeProtocol::PrometheusProto => Format::PrometheusProto,
        });
    }
}

/// The scrape URL with a loopback host replaced by `hostname`, as the
/// Prometheus UI's `globalUrl`.
fn global_url(url: &str, hostname: Option<&str>) -> String {
    let Some(hostname) = hostname else {
        return url.to_string();
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], &authority[i..]),
        _ => (authority, ""),
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        format!("{scheme}://{hostname}{port}{tail}")
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_url_replaces_loopback_hosts() {
        let h = Some("box");
        assert_eq!(
            global_url("http://localhost:9090/metrics", h),
            "http://box:9090/metrics"
        );
        assert_eq!(
            global_url("http://127.0.0.1:1/m?a=b", h),
            "http://box:1/m?a=b"
        );
        assert_eq!(global_url("http://[::1]:1/m", h), "http://box:1/m");
        assert_eq!(global_url("http://h:1/m", h), "http://h:1/m");
        assert_eq!(global_url("http://h:1/m", None), "http://h:1/m");
    }
}
