//! What the cluster holds against what the ledgers say was written: every
//! acknowledged sample readable through the querier (none lost), no sample
//! twice, none that was never sent (phantoms), every replica of a shard
//! holding the same samples, and tenants' reads isolated. The comparisons
//! are pure functions; [`check_cluster`] reads the cluster and retries
//! them until they pass or the time for convergence is up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{unix_ms, RunClock};
use crate::cluster::Cluster;
use crate::load::{run_selector, Ledger};
use crate::promapi::{api_time, parse_matrix, parse_vector, Held, Query, SeriesKey, TENANT_LABEL};

/// Examples kept per kind of problem.
const EXAMPLES: usize = 5;

/// Samples of one read compared with the ledgers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SampleCheck {
    /// Acknowledged samples that should have been there.
    pub expected: usize,
    /// Acknowledged samples missing.
    pub lost: usize,
    /// Samples returned again at a time already returned for their series.
    pub duplicates: usize,
    /// Samples never sent (unknown series, time or value).
    pub phantoms: usize,
    /// Examples of each problem.
    pub problems: Vec<String>,
}

impl SampleCheck {
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.phantoms == 0
    }
}

/// Compares `held` (a read at time `upto`, Unix ms) with the ledgers: an
/// acknowledged sample at or before `upto` must be there once; anything
/// returned must have been sent (acknowledged or not).
pub fn check_samples(held: &Held, ledgers: &[Ledger], upto: i64) -> SampleCheck {
    let mut check = SampleCheck::default();
    let mut known = BTreeSet::new();
    for ledger in ledgers {
        let acknowledged: Vec<i64> = ledger.acknowledged_times().filter(|&t| t <= upto).collect();
        for (k, name) in ledger.load.series.iter().enumerate() {
            let key = SeriesKey {
                tenant: ledger.load.tenant.clone(),
                series: name.clone(),
            };
            let samples = held.get(&key).map(Vec::as_slice).unwrap_or_default();
            known.insert(key.clone());
            let mut seen = BTreeSet::new();
            let (mut twice, mut never_sent) = (Vec::new(), Vec::new());
            for &(t, v) in samples {
                if !seen.insert(t) {
                    twice.push(t);
                }
                if ledger.sent_value(k, t).map(f64::to_bits) != Some(v.to_bits()) {
                    never_sent.push((t, v));
                }
            }
            let missing: Vec<i64> = acknowledged
                .iter()
                .filter(|t| !seen.contains(*t))
                .copied()
                .collect();
            check.expected += acknowledged.len();
            check.lost += missing.len();
            check.duplicates += twice.len();
            check.phantoms += never_sent.len();
            let mut note = |what: String| {
                if check.problems.len() < EXAMPLES * 3 {
                    check.problems.push(what);
                }
            };
            if !missing.is_empty() {
                note(format!(
                    "{key}: {} of {} acknowledged samples missing, the first at {:?}",
                    missing.len(),
                    acknowledged.len(),
                    &missing[..missing.len().min(EXAMPLES)]
                ));
            }
            if !twice.is_empty() {
                note(format!(
                    "{key}: {} timestamps twice, the first {:?}",
                    twice.len(),
                    &twice[..twice.len().min(EXAMPLES)]
                ));
            }
            if !never_sent.is_empty() {
                note(format!(
                    "{key}: {} samples never sent, the first {:?}",
                    never_sent.len(),
                    &never_sent[..never_sent.len().min(EXAMPLES)]
                ));
            }
        }
    }
    for (key, samples) in held.iter().filter(|(k, _)| !known.contains(*k)) {
        check.phantoms += samples.len();
        if check.problems.len() < EXAMPLES * 3 {
            check.problems.push(format!(
                "{key}: a series never written, {} samples",
                samples.len()
            ));
        }
    }
    check
}

/// Where the replicas of a shard differ. `views` holds each ingester's
/// read of its local replicas, `held_shards` the shards each holds;
/// `shard_of` gives a series' shard. Every holder of a shard must return
/// the same samples for the shard's series, and no ingester a series of a
/// shard it does not hold.
pub fn compare_replicas(
    views: &BTreeMap<u64, Held>,
    held_shards: &BTreeMap<u64, BTreeSet<u64>>,
    shard_of: impl Fn(&SeriesKey) -> Option<u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_shard: BTreeMap<u64, Vec<(u64, Held)>> = BTreeMap::new();
    for (&ingester, view) in views {
        let holds = held_shards.get(&ingester).cloned().unwrap_or_default();
        for shard in &holds {
            by_shard
                .entry(*shard)
                .or_default()
                .push((ingester, Held::new()));
        }
        for (key, samples) in view {
            let Some(shard) = shard_of(key) else {
                problems.push(format!(
                    "ingester {ingester}: a series never written: {key}"
                ));
                continue;
            };
            if !holds.contains(&shard) {
                problems.push(format!(
                    "ingester {ingester} returns {key} of shard {shard}, which it does not hold"
                ));
                continue;
            }
            let mut sorted = samples.clone();
            sorted.sort_by_key(|&(t, v)| (t, v.to_bits()));
            let replicas = by_shard
                .get_mut(&shard)
                .expect("every held shard has an entry");
            let (_, replica) = replicas
                .iter_mut()
                .find(|(i, _)| *i == ingester)
                .expect("the ingester holds the shard");
            replica.insert(key.clone(), sorted);
        }
    }
    for (shard, replicas) in &by_shard {
        let Some((first, reference)) = replicas.first() else {
            continue;
        };
        for (other, replica) in &replicas[1..] {
            if let Some(d) = first_difference(reference, replica) {
                problems.push(format!(
                    "shard {shard}: ingesters {first} and {other} differ: {d}"
                ));
            }
        }
    }
    problems
}

/// The first series on which two reads differ, described.
fn first_difference(a: &Held, b: &Held) -> Option<String> {
    let keys: BTreeSet<&SeriesKey> = a.keys().chain(b.keys()).collect();
    keys.into_iter().find_map(|key| {
        let as_set = |h: &Held| -> BTreeSet<(i64, u64)> {
            h.get(key)
                .map(|s| s.iter().map(|&(t, v)| (t, v.to_bits())).collect())
                .unwrap_or_default()
        };
        let (sa, sb) = (as_set(a), as_set(b));
        let count = |h: &Held| h.get(key).map_or(0, Vec::len);
        (sa != sb || count(a) != count(b)).then(|| {
            let only_a: Vec<i64> = sa.difference(&sb).take(3).map(|p| p.0).collect();
            let only_b: Vec<i64> = sb.difference(&sa).take(3).map(|p| p.0).collect();
            format!(
                "{key}: {} vs {} samples, only in the first at {only_a:?}, only in the second at \
                 {only_b:?}",
                count(a),
                count(b)
            )
        })
    })
}

/// Series a read through tenant `tenant` returned that are not that
/// tenant's: the series' `tenant_id` and whether it is one of the tenant's
/// series, by the ledgers.
pub fn isolation_problems(tenant: &str, seen: &[SeriesKey], ledgers: &[Ledger]) -> Vec<String> {
    let own: BTreeSet<&str> = ledgers
        .iter()
        .filter(|l| l.load.tenant == tenant)
        .flat_map(|l| l.load.series.iter().map(String::as_str))
        .collect();
    seen.iter()
        .filter(|k| k.tenant != tenant || !own.contains(k.series.as_str()))
        .map(|k| format!("a read as tenant {tenant:?} returned {k}"))
        .collect()
}

/// The outcome of [`check_cluster`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckOutcome {
    /// The time read at (seconds since the start of the run).
    pub at_s: f64,
    /// Through the querier (dedup on, partial responses off).
    pub querier: SampleCheck,
    /// Duplicates and phantoms in the ingesters' own reads.
    pub replica_samples: SampleCheck,
    pub replicas_identical: bool,
    pub replica_problems: Vec<String>,
    pub isolation_problems: Vec<String>,
    /// Reads that failed on the last try.
    pub read_errors: Vec<String>,
    /// Tries until clean (or the last one).
    pub tries: usize,
    pub took_s: f64,
}

impl CheckOutcome {
    pub fn clean(&self) -> bool {
        self.querier.clean()
            && self.replica_samples.clean()
            && self.replicas_identical
            && self.isolation_problems.is_empty()
            && self.read_errors.is_empty()
    }
}

/// Reads the cluster at the current time and checks it against the
/// ledgers (copies taken now), again every 2 s until clean or `within` is
/// up: replicas and the querier converge after a fault.
pub async fn check_cluster(
    cluster: &Cluster,
    ledgers: &[Ledger],
    clock: &RunClock,
    shards: u64,
    within: Duration,
) -> CheckOutcome {
    let started = Instant::now();
    let at_s = clock.now().as_secs_f64();
    let upto = unix_ms();
    let range_s = (upto - clock.start_unix_ms()) / 1000 + 120;
    let http = reqwest::Client::new();
    let mut tries = 0;
    loop {
        tries += 1;
        let mut outcome = read_and_compare(cluster, &http, ledgers, shards, upto, range_s).await;
        outcome.at_s = at_s;
        outcome.tries = tries;
        outcome.took_s = started.elapsed().as_secs_f64();
        if outcome.clean() || started.elapsed() >= within {
            return outcome;
        }
        tracing::debug!(
            "check at {at_s:.1}s not clean yet (try {tries}): {:?} {:?} {:?}",
            outcome.querier.problems,
            outcome.replica_problems,
            outcome.read_errors
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One try of [`check_cluster`].
async fn read_and_compare(
    cluster: &Cluster,
    http: &reqwest::Client,
    ledgers: &[Ledger],
    shards: u64,
    upto: i64,
    range_s: i64,
) -> CheckOutcome {
    let run = ledgers.first().map_or("", |l| l.load.run.as_str());
    let selector = format!("{}[{range_s}s]", run_selector(run));
    let read = |base, tenant| Query {
        base,
        endpoint: "query",
        params: vec![
            ("query", selector.clone()),
            ("time", api_time(upto)),
            ("dedup", "true".into()),
            ("partial_response", "false".into()),
        ],
        tenant,
        timeout: Duration::from_secs(60),
    };
    let mut outcome = CheckOutcome::default();
    match read(&cluster.query_url, None)
        .run(http)
        .await
        .and_then(|a| parse_matrix(&a.data))
    {
        Ok(held) => outcome.querier = check_samples(&held, ledgers, upto),
        Err(e) => outcome.read_errors.push(format!("querier: {e}")),
    }

    let statuses = cluster.statuses().await;
    let mut views = BTreeMap::new();
    let mut held_shards = BTreeMap::new();
    for ingester in &cluster.ingesters {
        let Some(status) = statuses.get(&ingester.id) else {
            outcome
                .read_errors
                .push(format!("{}: no status", ingester.service));
            continue;
        };
        match read(&ingester.base, None)
            .run(http)
            .await
            .and_then(|a| parse_matrix(&a.data))
        {
            Ok(held) => {
                let check = check_samples_without_loss(&held, ledgers, upto);
                outcome.replica_samples.duplicates += check.duplicates;
                outcome.replica_samples.phantoms += check.phantoms;
                outcome.replica_samples.problems.extend(
                    check
                        .problems
                        .into_iter()
                        .map(|p| format!("{}: {p}", ingester.service)),
                );
                views.insert(ingester.id, held);
                held_shards.insert(ingester.id, status.held_shards());
            }
            Err(e) => outcome
                .read_errors
                .push(format!("{}: {e}", ingester.service)),
        }
        for ledger in ledgers {
            let tenant = ledger.load.tenant.as_str();
            match tenant_series(http, &ingester.base, tenant, run, upto).await {
                Ok(seen) => outcome.isolation_problems.extend(
                    isolation_problems(tenant, &seen, ledgers)
                        .into_iter()
                        .map(|p| format!("{}: {p}", ingester.service)),
                ),
                Err(e) => outcome
                    .read_errors
                    .push(format!("{} as tenant {tenant}: {e}", ingester.service)),
            }
        }
    }
    let shard_of = |key: &SeriesKey| series_shard(ledgers, key, shards);
    outcome.replica_problems = compare_replicas(&views, &held_shards, shard_of);
    outcome.replicas_identical =
        outcome.replica_problems.is_empty() && views.len() == cluster.ingesters.len();
    outcome
}

/// [`check_samples`] for a read of some shards only: duplicates and
/// phantoms count, missing samples do not.
fn check_samples_without_loss(held: &Held, ledgers: &[Ledger], upto: i64) -> SampleCheck {
    let mut check = check_samples(held, ledgers, upto);
    check.lost = 0;
    check.expected = 0;
    check
        .problems
        .retain(|p| !p.contains("acknowledged samples missing"));
    check
}

/// The shard of a series written by one of the ledgers.
pub fn series_shard(ledgers: &[Ledger], key: &SeriesKey, shards: u64) -> Option<u64> {
    let ledger = ledgers.iter().find(|l| l.load.tenant == key.tenant)?;
    let k = ledger.load.index_of(&key.series)?;
    Some(hearth_ingest::ingester::shard_of(
        &ledger.load.labels(k),
        shards,
    ))
}

/// The suite's series an ingester shows a reader of `tenant`.
async fn tenant_series(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    run: &str,
    at: i64,
) -> Result<Vec<SeriesKey>, String> {
    let query = Query {
        base,
        endpoint: "query",
        params: vec![
            (
                "query",
                format!("count by ({TENANT_LABEL}, series) ({})", run_selector(run)),
            ),
            ("time", api_time(at)),
        ],
        tenant: Some(tenant),
        timeout: Duration::from_secs(20),
    };
    let answer = query.run(http).await?;
    Ok(parse_vector(&answer.data)?
        .into_iter()
        .map(|(labels, _)| SeriesKey {
            tenant: labels.get(TENANT_LABEL).cloned().unwrap_or_default(),
            series: labels.get("series").cloned().unwrap_or_default(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::{sample_value, TenantLoad};

    /// A ledger of 2 series with requests at t = 10, 20, 30 (numbers 1..3);
    /// those at 10 and 20 acknowledged, 30 unknown.
    fn ledger(tenant: &str) -> Ledger {
        let mut l = Ledger::new(TenantLoad::new(tenant, None, "", 2, "1"));
        for t in [10, 20, 30] {
            l.begin(t, Duration::ZERO);
        }
        l.acknowledge(0, Duration::ZERO);
        l.acknowledge(1, Duration::ZERO);
        l
    }

    fn key(tenant: &str, series: &str) -> SeriesKey {
        SeriesKey {
            tenant: tenant.into(),
            series: series.into(),
        }
    }

    /// Every sample of requests `numbers` (1-based) for both series.
    fn held(tenant: &str, numbers: &[u64]) -> Held {
        (0..2)
            .map(|k| {
                let samples = numbers
                    .iter()
                    .map(|&n| (n as i64 * 10, sample_value(n, k)))
                    .collect();
                (key(tenant, &format!("{k:02}")), samples)
            })
            .collect()
    }

    #[test]
    fn all_acknowledged_once_is_clean_unknown_samples_may_be_there_or_not() {
        let ledgers = [ledger("a")];
        assert!(check_samples(&held("a", &[1, 2]), &ledgers, 100).clean());
        let with_unknown = check_samples(&held("a", &[1, 2, 3]), &ledgers, 100);
        assert!(with_unknown.clean(), "{with_unknown:?}");
        assert_eq!(with_unknown.expected, 4);
    }

    #[test]
    fn missing_twice_and_never_sent_are_counted() {
        let ledgers = [ledger("a")];
        let mut h = held("a", &[1]);
        let lost = check_samples(&h, &ledgers, 100);
        assert_eq!((lost.lost, lost.duplicates, lost.phantoms), (2, 0, 0));
        // Only what was acknowledged by the time read counts.
        assert!(check_samples(&h, &ledgers, 15).clean());

        h.get_mut(&key("a", "00")).unwrap().push((20, 1000.0));
        h.get_mut(&key("a", "00")).unwrap().push((20, 1000.0));
        h.get_mut(&key("a", "01")).unwrap().push((20, 2001.0));
        h.get_mut(&key("a", "01")).unwrap().push((25, 2001.0));
        let c = check_samples(&h, &ledgers, 100);
        // 00 has t=20 twice with the wrong value (both phantoms, one duplicate);
        // 01 has t=20 right and t=25 never sent.
        assert_eq!((c.lost, c.duplicates, c.phantoms), (0, 1, 3), "{c:?}");
        assert_eq!(c.problems.len(), 3);
    }

    #[test]
    fn series_of_another_tenant_or_never_written_are_phantoms() {
        let ledgers = [ledger("a")];
        let mut h = held("a", &[1, 2]);
        h.insert(key("b", "00"), vec![(10, 1000.0)]);
        let c = check_samples(&h, &ledgers, 100);
        assert_eq!(c.phantoms, 1);
        assert!(c.problems[0].contains("never written"));
    }

    #[test]
    fn replicas_are_compared_shard_by_shard() {
        let ledgers = [ledger("a")];
        // Series 00 on shard 0 (ingesters 1, 2), series 01 on shard 1 (2, 3).
        let shard_of = |k: &SeriesKey| match k.series.as_str() {
            "00" => Some(0),
            "01" => Some(1),
            _ => None,
        };
        let full = held("a", &[1, 2]);
        let only = |s: &str, h: &Held| -> Held {
            h.iter()
                .filter(|(k, _)| k.series == s)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let placement = BTreeMap::from([
            (1, BTreeSet::from([0])),
            (2, BTreeSet::from([0, 1])),
            (3, BTreeSet::from([1])),
        ]);
        let mut views = BTreeMap::from([
            (1, only("00", &full)),
            (2, full.clone()),
            (3, only("01", &full)),
        ]);
        assert_eq!(
            compare_replicas(&views, &placement, shard_of),
            Vec::<String>::new()
        );

        views
            .get_mut(&3)
            .unwrap()
            .get_mut(&key("a", "01"))
            .unwrap()
            .pop();
        let problems = compare_replicas(&views, &placement, shard_of);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("shard 1: ingesters 2 and 3 differ"));

        // A series of a shard the ingester does not hold.
        let mut views = BTreeMap::from([(1, full.clone()), (2, full)]);
        views.get_mut(&1).unwrap().remove(&key("a", "00"));
        let problems = compare_replicas(&views, &placement, shard_of);
        assert!(problems
            .iter()
            .any(|p| p.contains("which it does not hold")));
        assert!(problems.iter().any(|p| p.starts_with("shard 0:")));
        let _ = ledgers;
    }

    #[test]
    fn a_replica_missing_a_whole_series_differs() {
        let full = held("a", &[1]);
        let placement = BTreeMap::from([(1, BTreeSet::from([0])), (2, BTreeSet::from([0]))]);
        let views = BTreeMap::from([(1, full.clone()), (2, Held::new())]);
        let problems = compare_replicas(&views, &placement, |_| Some(0));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("2 vs 0") || problems[0].contains("1 vs 0"));
    }

    #[test]
    fn a_tenant_sees_only_its_own_series() {
        let ledgers = [ledger("a"), ledger("b")];
        assert!(isolation_problems("a", &[key("a", "00"), key("a", "01")], &ledgers).is_empty());
        let leaked = isolation_problems("a", &[key("a", "00"), key("b", "00")], &ledgers);
        assert_eq!(leaked.len(), 1);
        assert!(leaked[0].contains("tenant_id=\"b\""));
        // The tenant's label on a series of another's name is a leak too.
        let b_load = TenantLoad::new("b", None, "b", 1, "1");
        let ledgers = [ledger("a"), Ledger::new(b_load)];
        assert_eq!(
            isolation_problems("a", &[key("a", "b00")], &ledgers).len(),
            1
        );
    }
}
