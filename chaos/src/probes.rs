//! Query probes through the querier, every second while the suite runs:
//! the number of series written per tenant, `up` of the scrape job (each
//! target once: the scrapers' HA pair deduplicated) and a range query.
//! Each answer is recorded as answered, partial (with its warnings) or
//! failed, and wrong answers as anomalies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{unix_ms, RunClock};

use crate::promapi::{api_time, parse_vector, Answer, Query, TENANT_LABEL};

/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A probe's query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ProbeKind {
    /// `count by (tenant_id) (chaos_load{run=...})`.
    SeriesCount,
    /// `up{job="hearth"}`.
    Up,
    /// A range query over the last 5 minutes.
    Range,
}

/// How a probe was answered.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum ProbeOutcome {
    Answered,
    Partial(Vec<String>),
    Failed(String),
}

/// One probe.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeRecord {
    pub at: Duration,
    pub kind: ProbeKind,
    pub outcome: ProbeOutcome,
    /// What was wrong with an answer, if anything.
    pub anomaly: Option<String>,
}

/// What the probes expect.
#[derive(Clone, Debug)]
pub struct Expectations {
    /// Series per tenant.
    pub series: BTreeMap<String, usize>,
    /// The selector of the run's series.
    pub selector: String,
}

/// The probes, running.
pub struct Prober {
    records: Arc<Mutex<Vec<ProbeRecord>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Prober {
    pub fn spawn(query_url: String, expect: Expectations, clock: RunClock) -> Prober {
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(probe_loop(
            query_url,
            expect,
            clock,
            Arc::clone(&records),
            stop.clone(),
        ));
        Prober {
            records,
            stop,
            task,
        }
    }

    /// The probes so far.
    pub fn records(&self) -> Vec<ProbeRecord> {
        self.records.lock().expect("the probes lock").clone()
    }

    pub async fn stop(self) -> Vec<ProbeRecord> {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!("probe task: {e}");
        }
        let records = self.records.lock().expect("the probes lock");
        records.clone()
    }
}

async fn probe_loop(
    base: String,
    expect: Expectations,
    clock: RunClock,
    records: Arc<Mutex<Vec<ProbeRecord>>>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let at = clock.now();
        let now = unix_ms();
        let kinds = [ProbeKind::SeriesCount, ProbeKind::Up, ProbeKind::Range];
        let answers = futures_join(kinds.map(|kind| {
            let query = probe_query(&base, &expect.selector, kind, now);
            let http = &http;
            async move { query.run(http).await }
        }))
        .await;
        let mut records = records.lock().expect("the probes lock");
        for (kind, answer) in kinds.into_iter().zip(answers) {
            records.push(record(at, kind, answer, &expect));
        }
    }
}

/// Runs three futures concurrently.
async fn futures_join<F: std::future::Future>(futures: [F; 3]) -> [F::Output; 3] {
    let [a, b, c] = futures;
    let (a, b, c) = tokio::join!(a, b, c);
    [a, b, c]
}

fn probe_query<'a>(base: &'a str, selector: &str, kind: ProbeKind, now: i64) -> Query<'a> {
    let mut params = match kind {
        ProbeKind::SeriesCount => vec![
            ("query", format!("count by ({TENANT_LABEL}) ({selector})")),
            ("time", api_time(now)),
        ],
        ProbeKind::Up => vec![
            ("query", "up{job=\"hearth\"}".into()),
            ("time", api_time(now)),
        ],
        ProbeKind::Range => vec![
            (
                "query",
                format!("sum by ({TENANT_LABEL}) (rate({selector}[1m]))"),
            ),
            ("start", api_time(now - 300_000)),
            ("end", api_time(now)),
            ("step", "15".into()),
        ],
    };
    params.push(("dedup", "true".into()));
    Query {
        base,
        endpoint: if kind == ProbeKind::Range {
            "query_range"
        } else {
            "query"
        },
        params,
        tenant: None,
        timeout: PROBE_TIMEOUT,
    }
}

/// A probe's record from its answer.
pub fn record(
    at: Duration,
    kind: ProbeKind,
    answer: Result<Answer, String>,
    expect: &Expectations,
) -> ProbeRecord {
    match answer {
        Err(e) => ProbeRecord {
            at,
            kind,
            outcome: ProbeOutcome::Failed(e),
            anomaly: None,
        },
        Ok(answer) => {
            let anomaly = match kind {
                ProbeKind::SeriesCount => series_count_anomaly(&answer, expect),
                ProbeKind::Up => up_anomaly(&answer),
                ProbeKind::Range => None,
            };
            let outcome = if answer.warnings.is_empty() {
                ProbeOutcome::Answered
            } else {
                ProbeOutcome::Partial(answer.warnings)
            };
            ProbeRecord {
                at,
                kind,
                outcome,
                anomaly,
            }
        }
    }
}

/// The series counted per tenant, against the series written.
fn series_count_anomaly(answer: &Answer, expect: &Expectations) -> Option<String> {
    let counted: BTreeMap<String, usize> = match parse_vector(&answer.data) {
        Ok(v) => v
            .into_iter()
            .map(|(l, n)| (l.get(TENANT_LABEL).cloned().unwrap_or_default(), n as usize))
            .collect(),
        Err(e) => return Some(e),
    };
    (counted != expect.series)
        .then(|| format!("series by tenant {counted:?}, want {:?}", expect.series))
}

/// `up` twice for a target: the scrapers' replicas were not deduplicated.
fn up_anomaly(answer: &Answer) -> Option<String> {
    let series = match parse_vector(&answer.data) {
        Ok(v) => v,
        Err(e) => return Some(e),
    };
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    for (labels, _) in &series {
        *per_instance
            .entry(labels.get("instance").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    let twice: Vec<&String> = per_instance
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(i, _)| i)
        .collect();
    if !twice.is_empty() {
        return Some(format!("up more than once for {twice:?}"));
    }
    if let Some((labels, _)) = series.iter().find(|(l, _)| l.contains_key("replica")) {
        return Some(format!("up with a replica label: {labels:?}"));
    }
    None
}

/// Probes in `[from, to)`: (answered, failed, partial).
pub fn counts_between(records: &[ProbeRecord], from: Duration, to: Duration) -> ProbeCounts {
    let mut counts = ProbeCounts::default();
    for r in records.iter().filter(|r| (from..to).contains(&r.at)) {
        counts.add(r);
    }
    counts
}

/// Probes counted by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProbeCounts {
    pub answered: usize,
    pub failed: usize,
    pub partial: usize,
    pub anomalies: usize,
}

impl ProbeCounts {
    pub fn add(&mut self, r: &ProbeRecord) {
        match r.outcome {
            ProbeOutcome::Answered => self.answered += 1,
            ProbeOutcome::Partial(_) => self.partial += 1,
            ProbeOutcome::Failed(_) => self.failed += 1,
        }
        if r.anomaly.is_some() {
            self.anomalies += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn expect() -> Expectations {
        Expectations {
            series: BTreeMap::from([("default-tenant".into(), 64), ("team-b".into(), 4)]),
            selector: "chaos_load{run=\"1\"}".into(),
        }
    }

    fn answer(result: serde_json::Value, warnings: &[&str]) -> Answer {
        Answer {
            data: json!({"resultType": "vector", "result": result}),
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
        }
    }

    #[test]
    fn answers_are_answered_partial_or_failed() {
        let ok = answer(
            json!([{"metric": {"tenant_id": "default-tenant"}, "value": [1, "64"]},
                   {"metric": {"tenant_id": "team-b"}, "value": [1, "4"]}]),
            &[],
        );
        let r = record(Duration::ZERO, ProbeKind::SeriesCount, Ok(ok), &expect());
        assert_eq!((r.outcome, r.anomaly), (ProbeOutcome::Answered, None));

        let partial = answer(
            json!([{"metric": {"tenant_id": "default-tenant"}, "value": [1, "60"]}]),
            &["store 172.28.0.30:10901: unavailable"],
        );
        let r = record(
            Duration::ZERO,
            ProbeKind::SeriesCount,
            Ok(partial),
            &expect(),
        );
        assert!(matches!(r.outcome, ProbeOutcome::Partial(ref w) if w.len() == 1));
        assert!(r.anomaly.unwrap().contains("want"));

        let r = record(
            Duration::ZERO,
            ProbeKind::Range,
            Err("timeout".into()),
            &expect(),
        );
        assert_eq!(r.outcome, ProbeOutcome::Failed("timeout".into()));
    }

    #[test]
    fn up_must_be_once_per_target() {
        let once = answer(
            json!([{"metric": {"instance": "a:1"}, "value": [1, "1"]},
                   {"metric": {"instance": "b:1"}, "value": [1, "1"]}]),
            &[],
        );
        assert_eq!(up_anomaly(&once), None);
        let twice = answer(
            json!([{"metric": {"instance": "a:1"}, "value": [1, "1"]},
                   {"metric": {"instance": "a:1", "x": "y"}, "value": [1, "1"]}]),
            &[],
        );
        assert!(up_anomaly(&twice).unwrap().contains("a:1"));
    }

    #[test]
    fn probes_are_counted_in_a_window() {
        let at = |s| ProbeRecord {
            at: Duration::from_secs(s),
            kind: ProbeKind::Up,
            outcome: if s % 2 == 0 {
                ProbeOutcome::Answered
            } else {
                ProbeOutcome::Failed("x".into())
            },
            anomaly: None,
        };
        let records: Vec<_> = (0..10).map(at).collect();
        let c = counts_between(&records, Duration::from_secs(2), Duration::from_secs(6));
        assert_eq!((c.answered, c.failed, c.partial), (2, 2, 0));
    }
}
