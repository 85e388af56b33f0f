//! The write load and its ledger. A writer sends one remote-write 1.0
//! request at a time for its tenant's series (one sample each, the same
//! timestamp), round-robin over the ingesters; a request not acknowledged
//! (5xx, timeout, no connection) is sent again, the same bytes, to the next
//! ingester until it is acknowledged (2xx) or refused (4xx). The ledger
//! records every request, attempt and acknowledgement: it is the ground
//! truth the checks compare the cluster's answers with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hearth_model::Labels;
use hearth_proto::prometheus::{Sample, TimeSeries, WriteRequest};
use hearth_proto::remote_write::{encode_write_request, labels_to_proto};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{unix_ms, RunClock};

/// The metric name of every series the suite writes.
pub const METRIC: &str = "chaos_load";
/// The label that tells a tenant's series apart.
pub const SERIES_LABEL: &str = "series";
/// The label that tells runs apart (a kept cluster holds earlier runs).
pub const RUN_LABEL: &str = "run";
/// How long one attempt may take: more than the ingesters' write timeout
/// (5 s), so that their 503 arrives before ours.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(7);
/// How long a request in flight when the writer stops may still retry.
const SETTLE_AFTER_STOP: Duration = Duration::from_secs(30);

/// A tenant's series and how its writes name the tenant.
#[derive(Clone, Debug)]
pub struct TenantLoad {
    /// The tenant as reads show it (the `tenant_id` label).
    pub tenant: String,
    /// The `X-Scope-OrgID` header of its writes (none: the default tenant).
    pub header: Option<String>,
    /// The values of the `series` label, one series each.
    pub series: Vec<String>,
    /// The value of the `run` label of every series.
    pub run: String,
}

impl TenantLoad {
    /// `count` series named `prefix00`, `prefix01`, ... of run `run`.
    pub fn new(
        tenant: &str,
        header: Option<&str>,
        prefix: &str,
        count: usize,
        run: &str,
    ) -> TenantLoad {
        TenantLoad {
            tenant: tenant.to_string(),
            header: header.map(String::from),
            series: (0..count).map(|k| format!("{prefix}{k:02}")).collect(),
            run: run.to_string(),
        }
    }

    /// The label set of series `k` as written (no tenant label).
    pub fn labels(&self, k: usize) -> Labels {
        Labels::new([
            ("__name__", METRIC),
            (RUN_LABEL, self.run.as_str()),
            (SERIES_LABEL, self.series[k].as_str()),
        ])
    }

    /// The index of the series whose `series` label is `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.series.iter().position(|s| s == name)
    }

    /// The body of request `number` at time `t`: one sample per series.
    pub fn body(&self, t: i64, number: u64) -> Vec<u8> {
        let timeseries = (0..self.series.len())
            .map(|k| TimeSeries {
                labels: labels_to_proto(&self.labels(k)),
                samples: vec![Sample {
                    value: sample_value(number, k),
                    timestamp: t,
                }],
                ..Default::default()
            })
            .collect();
        encode_write_request(&WriteRequest {
            timeseries,
            ..Default::default()
        })
    }
}

/// The selector of a run's series.
pub fn run_selector(run: &str) -> String {
    format!("{METRIC}{{{RUN_LABEL}=\"{run}\"}}")
}

/// The value request `number` writes to series `k`: a counter per series
/// that also names the series, so a sample in the wrong series shows.
pub fn sample_value(number: u64, k: usize) -> f64 {
    (number * 1000 + k as u64) as f64
}

/// Where a request stands.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteState {
    /// In flight, or never settled: its samples may or may not exist.
    Unknown,
    /// Answered 2xx at this time: its samples must be readable.
    Acknowledged(Duration),
    /// Answered 4xx: the client's fault, none is expected.
    Refused(String),
}

/// One request of the ledger.
#[derive(Clone, Debug)]
pub struct WriteRecord {
    /// 1, 2, ... in the order sent.
    pub number: u64,
    /// The timestamp of all its samples (Unix ms).
    pub t: i64,
    pub first_attempt: Duration,
    pub state: WriteState,
    /// Attempts that failed (5xx, timeout, no connection): when and why.
    pub failures: Vec<(Duration, String)>,
}

/// Every request a writer sent, attempted and acknowledged.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub load: TenantLoad,
    records: Vec<WriteRecord>,
    /// Request index by timestamp.
    by_t: BTreeMap<i64, usize>,
}

impl Ledger {
    pub fn new(load: TenantLoad) -> Ledger {
        Ledger {
            load,
            records: Vec::new(),
            by_t: BTreeMap::new(),
        }
    }

    /// Records a new request at time `t` (later than every earlier one),
    /// first attempted `at`; gives its index.
    pub fn begin(&mut self, t: i64, at: Duration) -> usize {
        let last = self.records.last().map_or(i64::MIN, |r| r.t);
        assert!(t > last, "request times must increase ({t} after {last})");
        let index = self.records.len();
        self.records.push(WriteRecord {
            number: index as u64 + 1,
            t,
            first_attempt: at,
            state: WriteState::Unknown,
            failures: Vec::new(),
        });
        self.by_t.insert(t, index);
        index
    }

    /// Records a failed attempt of request `index`.
    pub fn fail(&mut self, index: usize, at: Duration, why: String) {
        self.records[index].failures.push((at, why));
    }

    pub fn acknowledge(&mut self, index: usize, at: Duration) {
        self.records[index].state = WriteState::Acknowledged(at);
    }

    pub fn refuse(&mut self, index: usize, why: String) {
        self.records[index].state = WriteState::Refused(why);
    }

    /// The value sent to series `k` at time `t`, if a request was sent then.
    pub fn sent_value(&self, k: usize, t: i64) -> Option<f64> {
        self.by_t
            .get(&t)
            .map(|&i| sample_value(self.records[i].number, k))
    }

    /// The timestamps of the acknowledged requests, ascending.
    pub fn acknowledged_times(&self) -> impl Iterator<Item = i64> + '_ {
        self.records
            .iter()
            .filter(|r| matches!(r.state, WriteState::Acknowledged(_)))
            .map(|r| r.t)
    }

    /// From `since` to the acknowledgement of the first request first
    /// attempted at or after `since`: how long writes took to go through
    /// again after something happened at `since`.
    pub fn recovery_after(&self, since: Duration) -> Option<Duration> {
        self.records
            .iter()
            .find(|r| r.first_attempt >= since)
            .and_then(|r| match r.state {
                WriteState::Acknowledged(at) => Some(at.saturating_sub(since)),
                _ => None,
            })
    }

    /// Failed attempts in `[from, to)`.
    pub fn failures_between(&self, from: Duration, to: Duration) -> usize {
        self.failures_in(from, to).count()
    }

    /// The failed attempts (when, and why) from `from` to `to`.
    pub fn failures_in(
        &self,
        from: Duration,
        to: Duration,
    ) -> impl Iterator<Item = &(Duration, String)> + '_ {
        self.records
            .iter()
            .flat_map(|r| &r.failures)
            .filter(move |(at, _)| (from..to).contains(at))
    }

    /// Requests by state: (sent, acknowledged, refused, unknown).
    pub fn totals(&self) -> WriteTotals {
        let mut totals = WriteTotals {
            requests: self.records.len(),
            ..WriteTotals::default()
        };
        for r in &self.records {
            match r.state {
                WriteState::Unknown => totals.unknown += 1,
                WriteState::Acknowledged(_) => totals.acknowledged += 1,
                WriteState::Refused(_) => totals.refused += 1,
            }
            totals.failed_attempts += r.failures.len();
        }
        totals
    }
}

/// A ledger's requests counted by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteTotals {
    pub requests: usize,
    pub acknowledged: usize,
    pub refused: usize,
    pub unknown: usize,
    pub failed_attempts: usize,
}

/// A running writer.
pub struct Writer {
    ledger: Arc<Mutex<Ledger>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// How a writer writes.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The ingesters' remote-write URLs, tried round-robin.
    pub urls: Vec<String>,
    /// A request starts every `interval.0..interval.1` (random, seeded).
    pub interval: (Duration, Duration),
    pub seed: u64,
}

impl Writer {
    /// Starts writing `load`'s series.
    pub fn spawn(load: TenantLoad, config: WriterConfig, clock: RunClock) -> Writer {
        let ledger = Arc::new(Mutex::new(Ledger::new(load)));
        let stop = CancellationToken::new();
        let task = tokio::spawn(write_loop(Arc::clone(&ledger), config, clock, stop.clone()));
        Writer { ledger, stop, task }
    }

    /// The ledger so far (locked: keep it short).
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .expect("the ledger lock is never poisoned")
    }

    /// A copy of the ledger so far.
    pub fn snapshot(&self) -> Ledger {
        self.ledger().clone()
    }

    /// Stops sending; the request in flight retries a while longer. Gives
    /// the final ledger.
    pub async fn stop(self) -> Ledger {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!("writer task: {e}");
        }
        let ledger = self
            .ledger
            .lock()
            .expect("the ledger lock is never poisoned");
        ledger.clone()
    }
}

/// The answer to one attempt.
enum Answer {
    Acknowledged,
    Refused(String),
    Failed(String),
}

async fn write_loop(
    ledger: Arc<Mutex<Ledger>>,
    config: WriterConfig,
    clock: RunClock,
    stop: CancellationToken,
) {
    let client = reqwest::Client::new();
    let load = ledger.lock().expect("the ledger lock").load.clone();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut last_t = 0;
    let mut turn = 0usize;
    while !stop.is_cancelled() {
        let started = tokio::time::Instant::now();
        let t = unix_ms().max(last_t + 1);
        last_t = t;
        let index = ledger
            .lock()
            .expect("the ledger lock")
            .begin(t, clock.now());
        let number = index as u64 + 1;
        let body = load.body(t, number);
        let mut stopped_at = None;
        for attempt in 0.. {
            let url = &config.urls[(turn + attempt) % config.urls.len()];
            let answer = post(&client, url, load.header.as_deref(), &body).await;
            let settled = {
                let mut ledger = ledger.lock().expect("the ledger lock");
                match answer {
                    Answer::Acknowledged => {
                        ledger.acknowledge(index, clock.now());
                        true
                    }
                    Answer::Refused(why) => {
                        tracing::warn!("{}: request {number} refused: {why}", load.tenant);
                        ledger.refuse(index, format!("{url}: {why}"));
                        true
                    }
                    Answer::Failed(why) => {
                        ledger.fail(index, clock.now(), format!("{url}: {why}"));
                        false
                    }
                }
            };
            if settled {
                break;
            }
            if stop.is_cancelled() {
                let since = *stopped_at.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= SETTLE_AFTER_STOP {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        turn += 1;
        let pause = rng.random_range(config.interval.0..=config.interval.1);
        tokio::select! {
            _ = tokio::time::sleep_until(started + pause) => {}
            _ = stop.cancelled() => {}
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, tenant: Option<&str>, body: &[u8]) -> Answer {
    let mut request = client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .timeout(ATTEMPT_TIMEOUT)
        .body(body.to_vec());
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let text = answer.text().await.unwrap_or_default();
            if status.is_success() {
                Answer::Acknowledged
            } else if status.is_client_error() {
                Answer::Refused(format!("{status}: {}", text.trim()))
            } else {
                Answer::Failed(format!("{status}: {}", text.trim()))
            }
        }
        Err(e) if e.is_timeout() => Answer::Failed("timeout".into()),
        Err(e) if e.is_connect() => Answer::Failed("no connection".into()),
        Err(e) => Answer::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ledger() -> Ledger {
        Ledger::new(TenantLoad::new("default-tenant", None, "", 3, "1"))
    }

    #[test]
    fn the_ledger_keeps_what_was_sent_and_acknowledged() {
        let mut l = ledger();
        let a = l.begin(1000, secs(1));
        let b = l.begin(1500, secs(2));
        let c = l.begin(2000, secs(3));
        l.acknowledge(a, secs(1));
        l.fail(b, secs(2), "503".into());
        l.acknowledge(b, secs(4));
        l.refuse(c, "400".into());
        assert_eq!(l.acknowledged_times().collect::<Vec<_>>(), vec![1000, 1500]);
        assert_eq!(l.sent_value(2, 1500), Some(2002.0));
        assert_eq!(l.sent_value(0, 1600), None);
        assert_eq!(
            l.totals(),
            WriteTotals {
                requests: 3,
                acknowledged: 2,
                refused: 1,
                unknown: 0,
                failed_attempts: 1
            }
        );
        assert_eq!(l.failures_between(secs(2), secs(3)), 1);
        assert_eq!(l.failures_between(secs(3), secs(4)), 0);
    }

    #[test]
    fn recovery_counts_from_the_fault_to_the_first_later_request_acknowledged() {
        let mut l = ledger();
        let a = l.begin(1, secs(10));
        let b = l.begin(2, secs(12));
        l.acknowledge(a, secs(15));
        // The first request started after the fault at 11 s is b.
        assert_eq!(l.recovery_after(secs(11)), None);
        l.acknowledge(b, secs(14));
        assert_eq!(l.recovery_after(secs(11)), Some(secs(3)));
        assert_eq!(l.recovery_after(secs(13)), None);
    }

    #[test]
    #[should_panic(expected = "must increase")]
    fn request_times_increase() {
        let mut l = ledger();
        l.begin(5, secs(0));
        l.begin(5, secs(0));
    }

    #[test]
    fn a_body_decodes_to_one_sample_per_series() {
        let load = TenantLoad::new("team-b", Some("team-b"), "b", 2, "1");
        let body = load.body(1234, 7);
        let decoded = hearth_proto::remote_write::decode_write_request(
            &body,
            Some("snappy"),
            Some("application/x-protobuf"),
        )
        .expect("the body decodes");
        assert_eq!(decoded.sample_count(), 2);
        assert_eq!(load.series, vec!["b00", "b01"]);
        assert_eq!(load.index_of("b01"), Some(1));
        assert_eq!(run_selector("7"), "chaos_load{run=\"7\"}");
    }
}
