//! One target's scrape loop, as Prometheus's `scrapeLoop`: wait for the
//! target's offset, then scrape every interval (cut by the timeout), append
//! the samples, stale markers for vanished series and the report series
//! (`up`, `scrape_*`); when the target goes away, stale markers for all of
//! its series after two more intervals.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hearth_exposition::Format;
use hearth_model::{Labels, Sample, Timestamp, STALE_NAN};
use hearth_storage_api::SeriesSamples;
use hearth_tsdb::db::{AppendMode, Db};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::ScrapeCache;
use crate::error::Error;
use crate::http::Scraper;
use crate::process::{process, report_labels, MetricMetadata, SampleRules};
use crate::target::Target;

/// Names of the report series, in the order Prometheus appends them.
const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Whether a target's last scrape worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetHealth {
    #[default]
    Unknown,
    Up,
    Down,
}

impl TargetHealth {
    /// `up`, `down` or `unknown`, as `/api/v1/targets` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::Unknown => "unknown",
            TargetHealth::Up => "up",
            TargetHealth::Down => "down",
        }
    }
}

/// What the API shows of a target's scrapes; shared by a target's
/// successive loops.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetStatus {
    pub health: TargetHealth,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: std::time::Duration,
    pub metadata: Arc<BTreeMap<String, MetricMetadata>>,
}

/// What a loop hands to the loop that replaces it (a reload of its job):
/// its scrape cache with the series of its last scrape, so that staleness
/// carries on.
#[derive(Debug, Default)]
pub(crate) struct LoopState {
    /// Series texts to series, and the series of the last scrape.
    cache: ScrapeCache,
    /// Timestamp of the last scrape attempt.
    last_scrape: Option<Timestamp>,
}

/// Everything a loop needs.
pub(crate) struct LoopContext {
    pub db: Arc<Db>,
    pub target: Target,
    pub scraper: Arc<Scraper>,
    pub rules: Arc<SampleRules>,
    pub fallback: Option<Format>,
    pub offset_seed: u64,
    pub status: Arc<Mutex<TargetStatus>>,
    /// Set when the job is over its `target_limit`: every scrape fails.
    pub forced_error: Arc<Mutex<Option<String>>>,
    /// Stops this loop (a child of `shutdown`).
    pub stop: CancellationToken,
    /// The manager's shutdown: no stale markers once it is cancelled.
    pub shutdown: CancellationToken,
    /// Whether stopping means the target went away (write stale markers)
    /// rather than a restart.
    pub stale_on_stop: Arc<AtomicBool>,
}

/// Runs the loop until `ctx.stop`; `previous` is the loop it replaces,
/// awaited first so that the two never overlap.
pub(crate) async fn run(ctx: LoopContext, previous: Option<JoinHandle<LoopState>>) -> LoopState {
    let mut state = match previous {
        Some(handle) => {
            let mut state = handle.await.unwrap_or_default();
            // The job's rules changed: what series texts become, too.
            state.cache.invalidate();
            state
        }
        None => LoopState::default(),
    };
    let interval = ctx.target.interval().as_std();
    let interval_ms = ctx.target.interval().as_millis() as i64;
    let offset = ctx.target.offset(ctx.offset_seed, now_nanos());
    tokio::select! {
        _ = ctx.stop.cancelled() => return state,
        _ = tokio::time::sleep(offset) => {}
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut aligned = now_millis();
    let tolerance = (interval_ms / 100).min(2);
    loop {
        let mut scrape_time = now_millis();
        while scrape_time - aligned >= interval_ms {
            aligned += interval_ms;
        }
        if scrape_time - aligned <= tolerance {
            scrape_time = aligned;
        }
        state = scrape_and_report(&ctx, state, scrape_time).await;
        tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
    }
    if ctx.stale_on_stop.load(Ordering::SeqCst) {
        end_of_run_staleness(&ctx, &mut state, &mut ticker, interval).await;
    }
    state
}

/// One scrape: fetch (bounded by the timeout, abandoned if the loop stops),
/// then append. A loop stopped mid-request appends nothing.
async fn scrape_and_report(
    ctx: &LoopContext,
    state: LoopState,
    scrape_time: Timestamp,
) -> LoopState {
    let started = Instant::now();
    let wall_start = SystemTime::now();
    let forced = ctx.forced_error.lock().clone();
    let fetched = match forced {
        Some(message) => Err(FetchError::Forced(message)),
        None => {
            let url = ctx.target.url();
            let fetch = tokio::time::timeout(ctx.target.timeout().as_std(), ctx.scraper.fetch(url));
            tokio::select! {
                _ = ctx.stop.cancelled() => {
                    // Keep what the previous scrape left for the successor.
                    return state;
                }
                r = fetch => match r {
                    Ok(Ok(f)) => Ok(f),
                    Ok(Err(e)) => Err(FetchError::Scrape(e)),
                    Err(_) => Err(FetchError::Scrape(Error::Request {
                        url: url.to_string(),
                        message: "context deadline exceeded".into(),
                    })),
                },
            }
        }
    };
    let fetched = fetched.and_then(|f| {
        hearth_exposition::negotiate_format(&f.content_type, ctx.fallback)
            .map(|format| (f.body, format))
            .map_err(|e| FetchError::Scrape(e.into()))
    });
    let db = ctx.db.clone();
    let target_labels = ctx.target.labels();
    let rules = ctx.rules.clone();
    let ingest = tokio::task::spawn_blocking(move || {
        ingest(
            &db,
            fetched,
            &target_labels,
            &rules,
            state,
            scrape_time,
            started,
        )
    });
    let (state, outcome) = match ingest.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(target = ctx.target.url(), "scrape ingest task failed: {e}");
            return LoopState::default();
        }
    };
    let mut status = ctx.status.lock();
    status.last_scrape = Some(wall_start);
    status.last_duration = started.elapsed();
    match outcome {
        Ok(metadata) => {
            status.health = TargetHealth::Up;
            status.last_error.clear();
            status.metadata = Arc::new(metadata);
        }
        Err(message) => {
            tracing::debug!(target = ctx.target.url(), "scrape failed: {message}");
            status.health = TargetHealth::Down;
            status.last_error = message;
        }
    }
    state
}

enum FetchError {
    Forced(String),
    Scrape(Error),
}

impl FetchError {
    fn message(&self) -> String {
        match self {
            FetchError::Forced(m) => m.clone(),
            FetchError::Scrape(e) => e.to_string(),
        }
    }
}

/// Counts of one scrape for the report series.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    post_relabel: usize,
    series_added: usize,
}

/// Appends a scrape's samples, stale markers and report series.
fn ingest(
    db: &Db,
    fetched: Result<(Vec<u8>, Format), FetchError>,
    target: &Labels,
    rules: &SampleRules,
    mut state: LoopState,
    t: Timestamp,
    started: Instant,
) -> (LoopState, Result<BTreeMap<String, MetricMetadata>, String>) {
    let mut counts = Counts::default();
    let cache = &mut state.cache;
    cache.begin();
    let processed = match fetched {
        Err(e) => Err(e.message()),
        Ok((body, format)) => process(&body, format, target, rules, t, cache).map_err(|f| {
            counts.total = f.total;
            counts.post_relabel = f.post_relabel;
            f.error.to_string()
        }),
    };
    let outcome = match processed {
        Ok(p) => {
            counts.total = p.total;
            counts.post_relabel = p.post_relabel;
            let scraped = p.batch.len();
            let mut batch = p.batch;
            batch.extend(cache.stale_unseen(t));
            let mut heads = cache.take_heads(&p.ids);
            heads.resize(batch.len(), None);
            let appended = db.append_with_series(&batch, &mut heads, AppendMode::KeepValid);
            heads.truncate(scraped);
            cache.put_heads(&p.ids, heads);
            match appended {
                Ok(appended) => {
                    let mut rejected_series = HashSet::new();
                    let mut rejected = 0;
                    for r in &appended.rejected {
                        if r.series < scraped {
                            rejected += 1;
                            if batch[r.series].samples.len() == 1 {
                                rejected_series.insert(r.series);
                            }
                        }
                    }
                    if rejected > 0 || p.duplicates > 0 {
                        tracing::debug!(
                            rejected,
                            duplicates = p.duplicates,
                            "scrape samples not appended"
                        );
                    }
                    counts.series_added = p
                        .in_previous
                        .iter()
                        .enumerate()
                        .filter(|&(i, &in_previous)| !in_previous && !rejected_series.contains(&i))
                        .count();
                    cache.commit();
                    cache.recycle_batch(batch);
                    Ok(p.metadata)
                }
                Err(e) => {
                    cache.abort();
                    cache.forget_previous();
                    Err(Error::Storage(e).to_string())
                }
            }
        }
        Err(message) => {
            // A failed scrape is an empty one: every series goes stale.
            cache.abort();
            let stale = cache.stale_all(t);
            if let Err(e) = db.append(&stale, AppendMode::KeepValid) {
                tracing::warn!("append stale markers: {e}");
            }
            Err(message)
        }
    };
    let up = if outcome.is_ok() { 1.0 } else { 0.0 };
    let values = [
        up,
        started.elapsed().as_secs_f64(),
        counts.total as f64,
        counts.post_relabel as f64,
        counts.series_added as f64,
    ];
    let report: Vec<SeriesSamples> = REPORT_SERIES
        .iter()
        .zip(values)
        .map(|(name, v)| SeriesSamples {
            labels: report_labels(name, target),
            samples: vec![Sample::new(t, v)],
        })
        .collect();
    if let Err(e) = db.append(&report, AppendMode::KeepValid) {
        tracing::warn!("append report series: {e}");
    }
    state.last_scrape = Some(t);
    (state, outcome)
}

/// Prometheus's `endOfRunStaleness`: the stale time is when the next scrape
/// would have been; the markers are written two intervals plus 10 % later,
/// so that a target recreated under a new loop wins (its samples are newer
/// and the markers are then refused as out of order). Nothing is written if
/// the manager shuts down meanwhile.
async fn end_of_run_staleness(
    ctx: &LoopContext,
    state: &mut LoopState,
    ticker: &mut tokio::time::Interval,
    interval: std::time::Duration,
) {
    if state.last_scrape.is_none() {
        return;
    }
    let stale_time;
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = ticker.tick() => stale_time = now_millis(),
    }
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = ticker.tick() => {}
    }
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        _ = tokio::time::sleep(interval / 10) => {}
    }
    let target = ctx.target.labels();
    let mut batch = state.cache.stale_all(stale_time);
    for name in REPORT_SERIES {
        batch.push(SeriesSamples {
            labels: report_labels(name, &target),
            samples: vec![Sample::new(stale_time, STALE_NAN)],
        });
    }
    let db = ctx.db.clone();
    let written = tokio::task::spawn_blocking(move || db.append(&batch, AppendMode::KeepValid));
    match written.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("append end-of-run stale markers: {e}"),
        Err(e) => tracing::warn!("append end-of-run stale markers: {e}"),
    }
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn now_millis() -> Timestamp {
    (now_nanos() / 1_000_000) as Timestamp
}
