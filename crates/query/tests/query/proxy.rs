//! The proxy over in-process stores.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hearth_model::Sample;
use hearth_query::dedup::penalty_merge;
use hearth_query::merge::{merge_sorted, normalize_chunks};
use hearth_query::proxy::store_matches;
use hearth_query::{DedupFunc, Proxy, QueryOptions};
use hearth_storage_api::{Queryable, SelectHints, Series, SeriesSamples};
use hearth_storeapi::external_labels::remove_labels_and_sort;
use hearth_storeapi::Store;
use proptest::prelude::*;

use super::support::*;

const MINUTE: i64 = 60_000;

fn dedup_options() -> QueryOptions {
    QueryOptions {
        replica_labels: vec!["replica".into()],
        ..QueryOptions::default()
    }
}

fn no_dedup() -> QueryOptions {
    QueryOptions {
        dedup: false,
        ..dedup_options()
    }
}

fn up(job: &str, samples: Vec<Sample>) -> SeriesSamples {
    SeriesSamples {
        labels: labels(&[("__name__", "up"), ("job", job)]),
        samples,
    }
}

/// Two replicas of one Prometheus (`replica="a"`/`"b"`, scrapes 100 ms
/// apart, `a` down for ten minutes) and another cluster, each in its own
/// TSDB.
struct HaPair {
    a: Arc<TestStore>,
    b: Arc<TestStore>,
    us: Arc<TestStore>,
    proxy: Proxy,
    a_samples: Vec<Sample>,
    b_samples: Vec<Sample>,
}

async fn ha_pair() -> HaPair {
    let a_samples: Vec<Sample> = scrapes(0, 60 * MINUTE, 15_000)
        .into_iter()
        .filter(|s| !(20 * MINUTE..30 * MINUTE).contains(&s.t))
        .collect();
    let b_samples = scrapes(100, 60 * MINUTE, 15_000);
    let a = TestStore::tsdb(
        vec![
            up("node", a_samples.clone()),
            up("api", scrapes(0, MINUTE, 15_000)),
        ],
        &[("cluster", "eu"), ("replica", "a")],
    );
    let b = TestStore::tsdb(
        vec![up("node", b_samples.clone())],
        &[("cluster", "eu"), ("replica", "b")],
    );
    let us = TestStore::tsdb(
        vec![up("node", scrapes(0, 60 * MINUTE, 30_000))],
        &[("cluster", "us")],
    );
    let set = endpoint_set(&[
        ("eu-a:10901", a.clone()),
        ("eu-b:10901", b.clone()),
        ("us:10901", us.clone()),
    ])
    .await;
    HaPair {
        a,
        b,
        us,
        proxy: Proxy::new(set, dedup_options()),
        a_samples,
        b_samples,
    }
}

fn up_node() -> Vec<hearth_model::Matcher> {
    vec![matcher("__name__", "up"), matcher("job", "node")]
}

#[tokio::test]
async fn replicas_are_merged_and_deduplicated() {
    let ha = ha_pair().await;
    let set = ha
        .proxy
        .with_options(dedup_options())
        .select(&up_node(), SelectHints::new(0, 60 * MINUTE))
        .await
        .unwrap();
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    let names: Vec<String> = set.series.iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(
        names,
        [
            r#"{__name__="up", cluster="eu", job="node"}"#,
            r#"{__name__="up", cluster="us", job="node"}"#,
        ]
    );
    let eu = &set.series[0];
    let expected = penalty_merge(vec![ha.a_samples.clone(), ha.b_samples.clone()], false);
    assert_eq!(raw_samples(eu), expected);
    // The outage of a is filled from b, and the rest is not doubled.
    assert!(expected.iter().any(|s| s.t % 1000 == 100));
    assert!(expected.len() < ha.a_samples.len() + ha.b_samples.len());
    assert!(eu.chunks.iter().all(|c| c.num_samples() <= 120));
    // A single replica passes through untouched: same samples as stored.
    assert_eq!(decode(&set.series[1]), scrapes(0, 60 * MINUTE, 30_000));
}

#[tokio::test]
async fn without_dedup_replicas_stay_apart() {
    let ha = ha_pair().await;
    let set = ha
        .proxy
        .with_options(no_dedup())
        .select(&up_node(), SelectHints::new(0, 60 * MINUTE))
        .await
        .unwrap();
    let replicas: Vec<Option<&str>> = set.series.iter().map(|s| s.labels.get("replica")).collect();
    assert_eq!(replicas, [Some("a"), Some("b"), None]);
    assert_eq!(decode(&set.series[0]), ha.a_samples);
    // The proxy as a store (what a higher querier sees) does not dedup.
    let raw = ha
        .proxy
        .select(&up_node(), SelectHints::new(0, 60 * MINUTE))
        .await
        .unwrap();
    assert_eq!(raw.series.len(), 3);
}

#[tokio::test]
async fn chain_dedup_takes_the_union() {
    let ha = ha_pair().await;
    let options = QueryOptions {
        dedup_func: DedupFunc::Chain,
        ..dedup_options()
    };
    let set = ha
        .proxy
        .with_options(options)
        .select(&up_node(), SelectHints::new(0, 60 * MINUTE))
        .await
        .unwrap();
    assert_eq!(
        raw_samples(&set.series[0]).len(),
        ha.a_samples.len() + ha.b_samples.len()
    );
}

#[tokio::test]
async fn stores_are_selected_by_time_and_external_labels() {
    let ha = ha_pair().await;
    let query = ha.proxy.with_options(dedup_options());
    let us_only = [matcher("__name__", "up"), matcher("cluster", "us")];
    let set = query
        .select(&us_only, SelectHints::new(0, 60 * MINUTE))
        .await
        .unwrap();
    assert_eq!(set.series.len(), 1);
    assert_eq!((ha.a.calls(), ha.b.calls(), ha.us.calls()), (0, 0, 1));

    // b only holds the last half hour; a request before it leaves b out.
    ha.b.set_range(30 * MINUTE, i64::MAX);
    ha.proxy.endpoints().refresh().await;
    query
        .select(&up_node(), SelectHints::new(0, 10 * MINUTE))
        .await
        .unwrap();
    assert_eq!((ha.a.calls(), ha.b.calls(), ha.us.calls()), (1, 0, 2));
    query
        .select(&up_node(), SelectHints::new(0, 30 * MINUTE))
        .await
        .unwrap();
    assert_eq!((ha.a.calls(), ha.b.calls(), ha.us.calls()), (2, 1, 3));

    // Nothing selected: empty, without warnings or errors, even under ABORT.
    let strict = ha.proxy.with_options(QueryOptions {
        partial_response: false,
        ..dedup_options()
    });
    let set = strict
        .select(
            &[matcher("__name__", "up"), matcher("cluster", "asia")],
            SelectHints::new(0, 60 * MINUTE),
        )
        .await
        .unwrap();
    assert!(set.series.is_empty() && set.warnings.is_empty());
    assert_eq!((ha.a.calls(), ha.b.calls(), ha.us.calls()), (2, 1, 3));
}

#[test]
fn store_matching_rules() {
    let info = hearth_storeapi::StoreInfo {
        component: "sidecar".into(),
        label_sets: vec![
            labels(&[("cluster", "eu"), ("replica", "a")]),
            labels(&[("cluster", "us")]),
        ],
        min_time: 100,
        max_time: 200,
        supports_without_replica_labels: false,
    };
    let any = [matcher("__name__", "up")];
    assert!(store_matches(&info, &any, 200, 300));
    assert!(store_matches(&info, &any, 0, 100));
    assert!(!store_matches(&info, &any, 201, 300));
    assert!(!store_matches(&info, &any, 0, 99));
    // One compatible label set is enough; unknown labels never exclude.
    assert!(store_matches(&info, &[matcher("cluster", "us")], 0, 300));
    assert!(store_matches(&info, &[matcher("replica", "a")], 0, 300));
    // {cluster="us"} has no replica label, so replica="a" cannot exclude it.
    assert!(store_matches(
        &info,
        &[matcher("cluster", "us"), matcher("replica", "a")],
        0,
        300
    ));
    assert!(!store_matches(
        &info,
        &[matcher("cluster", "eu"), matcher("replica", "b")],
        0,
        300
    ));
    assert!(!store_matches(&info, &[matcher("cluster", "asia")], 0, 300));
    let bare = hearth_storeapi::StoreInfo {
        label_sets: Vec::new(),
        ..info
    };
    assert!(store_matches(&bare, &[matcher("cluster", "asia")], 0, 300));
}

#[tokio::test]
async fn a_failing_store_is_a_warning_or_an_error() {
    let ha = ha_pair().await;
    ha.b.fail.store(true, Ordering::SeqCst);
    let set = ha
        .proxy
        .with_options(dedup_options())
        .select(&up_node(), SelectHints::new(0, 60 * MINUTE))
        .await
        .unwrap();
    assert_eq!(set.warnings.len(), 1);
    assert!(set.warnings[0].contains("eu-b:10901"), "{:?}", set.warnings);
    assert!(set.warnings[0].contains("connection refused"));
    // a's data alone, still deduplicated labels.
    assert_eq!(set.series.len(), 2);
    assert_eq!(decode(&set.series[0]), ha.a_samples);

    let strict = ha.proxy.with_options(QueryOptions {
        partial_response: false,
        ..dedup_options()
    });
    let err = strict
        .select(&up_node(), SelectHints::new(0, 60 * MINUTE))
        .await
        .unwrap_err();
    assert!(matches!(err, hearth_storage_api::Error::Unavailable(_)));
    assert!(err.to_string().contains("eu-b:10901"), "{err}");

    let err = strict
        .label_names(&up_node(), 0, 60 * MINUTE)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("eu-b:10901"), "{err}");
}

#[tokio::test]
async fn a_slow_store_times_out() {
    let ha = ha_pair().await;
    *ha.us.delay.lock() = Some(Duration::from_secs(30));
    let options = QueryOptions {
        store_timeout: Some(Duration::from_millis(200)),
        ..dedup_options()
    };
    let started = std::time::Instant::now();
    let set = ha
        .proxy
        .with_options(options.clone())
        .select(&up_node(), SelectHints::new(0, 60 * MINUTE))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(set.series.len(), 1);
    assert_eq!(set.warnings.len(), 1);
    assert!(set.warnings[0].contains("us:10901"), "{:?}", set.warnings);
    assert!(
        set.warnings[0].contains("no answer within"),
        "{:?}",
        set.warnings
    );

    let strict = ha.proxy.with_options(QueryOptions {
        partial_response: false,
        ..options
    });
    assert!(strict
        .select(&up_node(), SelectHints::new(0, 60 * MINUTE))
        .await
        .is_err());
}

#[tokio::test]
async fn no_healthy_store_at_all_fails_only_under_abort() {
    let set = endpoint_set(&[]).await;
    let proxy = Proxy::new(set, dedup_options());
    let warn = proxy
        .with_options(dedup_options())
        .select(&up_node(), SelectHints::new(0, 1))
        .await
        .unwrap();
    assert!(warn.series.is_empty());
    let err = proxy
        .with_options(QueryOptions {
            partial_response: false,
            ..dedup_options()
        })
        .select(&up_node(), SelectHints::new(0, 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no StoreAPIs available"), "{err}");
}

#[tokio::test]
async fn label_names_and_values_union_without_replica_labels() {
    let ha = ha_pair().await;
    let dedup = ha.proxy.with_options(dedup_options());
    let names = dedup.label_names(&[], 0, 60 * MINUTE).await.unwrap();
    assert_eq!(names.values, ["__name__", "cluster", "job"]);
    let raw = ha.proxy.with_options(no_dedup());
    let names = raw.label_names(&[], 0, 60 * MINUTE).await.unwrap();
    assert_eq!(names.values, ["__name__", "cluster", "job", "replica"]);

    let calls = ha.a.calls();
    let replicas = dedup
        .label_values("replica", &[], 0, 60 * MINUTE)
        .await
        .unwrap();
    assert!(replicas.values.is_empty());
    assert_eq!(ha.a.calls(), calls);
    let replicas = raw
        .label_values("replica", &[], 0, 60 * MINUTE)
        .await
        .unwrap();
    assert_eq!(replicas.values, ["a", "b"]);

    let clusters = dedup
        .label_values("cluster", &[], 0, 60 * MINUTE)
        .await
        .unwrap();
    assert_eq!(clusters.values, ["eu", "us"]);
    let jobs = dedup
        .label_values("job", &[matcher("cluster", "eu")], 0, 60 * MINUTE)
        .await
        .unwrap();
    assert_eq!(jobs.values, ["api", "node"]);
}

#[tokio::test]
async fn limit_and_skip_chunks_apply_to_the_merged_series() {
    let ha = ha_pair().await;
    let query = ha.proxy.with_options(dedup_options());
    let all = [matcher("__name__", "up")];
    let hints = SelectHints::new(0, 60 * MINUTE).series_only();
    let set = query.select(&all, hints).await.unwrap();
    let names: Vec<String> = set.series.iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(
        names,
        [
            r#"{__name__="up", cluster="eu", job="api"}"#,
            r#"{__name__="up", cluster="eu", job="node"}"#,
            r#"{__name__="up", cluster="us", job="node"}"#,
        ]
    );
    let limited = query
        .select(&all, SelectHints { limit: 2, ..hints })
        .await
        .unwrap();
    assert_eq!(limited.series.len(), 2);
    assert_eq!(limited.series[1].labels.to_string(), names[1]);
}

#[tokio::test]
async fn the_proxy_as_a_store_announces_its_stores() {
    let ha = ha_pair().await;
    let info = ha.proxy.info().await.unwrap();
    assert_eq!(info.component, "query");
    assert_eq!(
        info.label_sets,
        [
            labels(&[("cluster", "eu"), ("replica", "a")]),
            labels(&[("cluster", "eu"), ("replica", "b")]),
            labels(&[("cluster", "us")]),
        ]
    );
    assert_eq!((info.min_time, info.max_time), (i64::MIN, i64::MAX));
}

#[tokio::test]
async fn identical_chunks_from_two_stores_are_kept_once() {
    // The same block served by two store gateways.
    let series = || {
        vec![Series::new(
            labels(&[("__name__", "up")]),
            chunks(&scrapes(0, 10 * MINUTE, 15_000)),
        )]
    };
    let one = TestStore::memory(series(), &[("site", "x")]);
    let two = TestStore::memory(series(), &[("site", "x")]);
    let set = endpoint_set(&[("one:1", one), ("two:1", two)]).await;
    let proxy = Proxy::new(set, QueryOptions::default());
    let out = proxy
        .select(
            &[matcher("__name__", "up")],
            SelectHints::new(0, 10 * MINUTE),
        )
        .await
        .unwrap();
    assert_eq!(out.series.len(), 1);
    assert_eq!(out.series[0].chunks, series()[0].chunks);
}

/// The reference: everything in one list, sorted, equal labels combined,
/// chunks sorted and de-duplicated.
fn naive_merge(parts: Vec<Vec<Series>>) -> Vec<Series> {
    let mut all: Vec<Series> = parts.into_iter().flatten().collect();
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<Series> = Vec::new();
    for s in all {
        match out.last_mut() {
            Some(last) if last.labels == s.labels => last.chunks.extend(s.chunks),
            _ => out.push(s),
        }
    }
    for s in &mut out {
        s.chunks.sort_by_key(|c| (c.mint, c.maxt));
        let mut kept: Vec<hearth_storage_api::SeriesChunk> = Vec::new();
        for c in s.chunks.drain(..) {
            if !kept.contains(&c) {
                kept.push(c);
            }
        }
        s.chunks = kept;
    }
    out
}

/// One store's answer: series over a small label space (so stores share
/// series), with chunks from a small set (so some are byte-identical).
fn store_answer() -> impl Strategy<Value = Vec<Series>> {
    let chunk = (0i64..4, 0i64..3).prop_map(|(start, len)| {
        let samples = scrapes(start * 1000, start * 1000 + len * 1000 + 1, 1000);
        chunks(&samples).remove(0)
    });
    let series = (0u8..3, 0u8..3, 0u8..2, prop::collection::vec(chunk, 0..4)).prop_map(
        |(job, instance, replica, chunks)| {
            Series::new(
                labels(&[
                    ("job", &job.to_string()),
                    ("instance", &instance.to_string()),
                    ("replica", &replica.to_string()),
                ]),
                chunks,
            )
        },
    );
    prop::collection::vec(series, 0..8).prop_map(|mut s| {
        s.sort_by(|a, b| a.labels.cmp(&b.labels));
        s.dedup_by(|a, b| a.labels == b.labels);
        for series in &mut s {
            normalize_chunks(&mut series.chunks);
        }
        s
    })
}

proptest! {
    #[test]
    fn k_way_merge_equals_naive_merge(
        parts in prop::collection::vec(store_answer(), 0..5),
        strip in any::<bool>(),
        limit in 0usize..6,
    ) {
        let mut parts = parts;
        if strip {
            for p in &mut parts {
                remove_labels_and_sort(p, &["replica".to_string()]);
            }
        }
        let mut expected = naive_merge(parts.clone());
        if limit > 0 {
            expected.truncate(limit);
        }
        prop_assert_eq!(merge_sorted(parts, limit), expected);
    }
}
