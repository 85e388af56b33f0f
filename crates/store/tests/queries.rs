//! Queries against blocks in a FILESYSTEM bucket: the same answers as the
//! TSDB that wrote the blocks, external labels per specs/storeapi.md §3.2
//! and §3.7, limits, label queries, `Info`, caches and their bounds, and
//! chunk reads longer than the size estimate.

mod support;

use hearth_model::{Labels, Matcher, Sample};
use hearth_storage_api::{Queryable, SelectHints, SeriesSamples};
use hearth_store::StoreOptions;
use hearth_storeapi::Store;
use hearth_tsdb::block::Block;
use hearth_tsdb::db::{Db, DbOptions};
use support::*;

/// Writes 45 minutes of 4 series into a TSDB with 10-minute blocks and
/// compacts; returns the Db and its blocks' directories, oldest first.
fn tsdb_with_blocks(dir: &std::path::Path) -> (Db, Vec<std::path::PathBuf>) {
    let opts = DbOptions {
        min_block_duration: 10 * MIN,
        max_block_duration: 10 * MIN,
        retention_time: 0,
        retention_size: 0,
        wal_segment_size: 64 * 1024,
        ..DbOptions::default()
    };
    let db = Db::open(dir, opts).unwrap();
    let mut t = 0;
    while t < 45 * MIN {
        let batch: Vec<SeriesSamples> = (0..4)
            .map(|i| SeriesSamples {
                labels: Labels::new([
                    ("__name__", if i < 3 { "m" } else { "other" }),
                    ("i", &i.to_string()),
                    ("odd", if i % 2 == 1 { "yes" } else { "" }),
                ]),
                samples: vec![Sample::new(t, (t / 1000) as f64 * 0.5 + i as f64)],
            })
            .collect();
        db.append_batch(&batch).unwrap();
        t += 15_000;
    }
    db.compact().unwrap();
    let mut blocks: Vec<(i64, std::path::PathBuf)> = db
        .blocks()
        .iter()
        .map(|b| (b.meta().min_time, b.dir().to_path_buf()))
        .collect();
    blocks.sort();
    assert!(blocks.len() >= 3, "{blocks:?}");
    (db, blocks.into_iter().map(|(_, p)| p).collect())
}

#[tokio::test]
async fn selects_equal_the_tsdb_that_wrote_the_blocks() {
    let fx = Fixture::new();
    let (db, blocks) = tsdb_with_blocks(&fx.tmp.path().join("tsdb"));
    let ext = [("cluster", "eu-1"), ("replica", "a")];
    for b in &blocks {
        fx.bucket
            .upload_block(b, &ext_map(&ext), "sidecar")
            .await
            .unwrap();
    }
    let store = fx.store(test_options());
    let stats = store.sync().await.unwrap();
    assert_eq!(stats.blocks, blocks.len());
    let ext_labels = Labels::new(ext);
    let covered_max = Block::open(blocks.last().unwrap()).unwrap().meta().max_time - 1;

    let matcher_sets: Vec<Vec<Matcher>> = vec![
        vec![eq("__name__", "m")],
        vec![re("__name__", ".+")],
        vec![eq("__name__", "m"), eq("odd", "")],
        vec![
            eq("__name__", "m"),
            Matcher::new(hearth_model::MatchOp::NotEqual, "i", "1").unwrap(),
        ],
        vec![re("i", "1|3"), eq("cluster", "eu-1")],
        vec![Matcher::new(hearth_model::MatchOp::RegexNoMatch, "__name__", "m").unwrap()],
    ];
    for (mint, maxt) in [
        (0, covered_max),
        (5 * MIN, 12 * MIN),
        (10 * MIN, 10 * MIN),
        (-MIN, 0),
    ] {
        for ms in &matcher_sets {
            let tsdb_ms: Vec<Matcher> =
                ms.iter().filter(|m| m.name != "cluster").cloned().collect();
            let want: Vec<_> = db
                .select_sync(&tsdb_ms, SelectHints::new(mint, maxt))
                .unwrap()
                .into_iter()
                .map(|mut s| {
                    s.labels = hearth_storeapi::external_labels::extend_labels(
                        &s.labels,
                        &ext_labels,
                        &[],
                    );
                    s
                })
                .collect();
            if mint == 0 && maxt == covered_max {
                assert!(!want.is_empty(), "{ms:?}");
                assert!(want.iter().all(|s| !s.chunks.is_empty()), "{ms:?}");
            }
            let got = store
                .select(ms, SelectHints::new(mint, maxt))
                .await
                .unwrap();
            assert!(got.warnings.is_empty(), "{:?}", got.warnings);
            assert_eq!(got.series, want, "{ms:?} over [{mint}, {maxt}]");
            assert_eq!(
                samples_of(&got.series, mint, maxt),
                samples_of(&want, mint, maxt)
            );

            let only = store
                .select(ms, SelectHints::new(mint, maxt).series_only())
                .await
                .unwrap();
            let labels: Vec<&Labels> = only.series.iter().map(|s| &s.labels).collect();
            assert_eq!(labels, want.iter().map(|s| &s.labels).collect::<Vec<_>>());
            assert!(only.series.iter().all(|s| s.chunks.is_empty()));
        }
    }
    // Series of several blocks are one series with chunks in time order.
    let all = store
        .select(
            &[eq("__name__", "m"), eq("i", "0")],
            SelectHints::new(0, covered_max),
        )
        .await
        .unwrap();
    assert_eq!(all.series.len(), 1);
    let chunks = &all.series[0].chunks;
    assert!(chunks.len() >= blocks.len());
    assert!(chunks.windows(2).all(|w| w[0].mint < w[1].mint));

    // Limit: the first series in label order.
    let mut hints = SelectHints::new(0, covered_max);
    hints.limit = 2;
    let limited = store.select(&[re("__name__", ".+")], hints).await.unwrap();
    let full = store
        .select(&[re("__name__", ".+")], SelectHints::new(0, covered_max))
        .await
        .unwrap();
    assert_eq!(limited.series, full.series[..2].to_vec());

    // Label names and values: the TSDB's plus the external labels.
    let names = store.label_names(&[], 0, covered_max).await.unwrap();
    assert_eq!(
        names.values,
        vec!["__name__", "cluster", "i", "odd", "replica"]
    );
    let names = store
        .label_names(&[eq("__name__", "other")], 0, covered_max)
        .await
        .unwrap();
    assert_eq!(
        names.values,
        vec!["__name__", "cluster", "i", "odd", "replica"]
    );
    let values = store.label_values("i", &[], 0, covered_max).await.unwrap();
    assert_eq!(
        values.values,
        db.label_values_sync("i", &[], 0, covered_max).unwrap()
    );
    let values = store
        .label_values("i", &[eq("odd", "yes")], 0, covered_max)
        .await
        .unwrap();
    assert_eq!(values.values, vec!["1", "3"]);
    let values = store
        .label_values("cluster", &[], 0, covered_max)
        .await
        .unwrap();
    assert_eq!(values.values, vec!["eu-1"]);

    let info = store.info().await.unwrap();
    assert_eq!(info.component, "store");
    assert_eq!(info.label_sets, vec![ext_labels]);
    assert_eq!(info.min_time, 0);
    assert_eq!(info.max_time, covered_max);
    assert!(!info.supports_without_replica_labels);
    db.close().unwrap();
}

#[tokio::test]
async fn external_labels_select_blocks_and_extend_series() {
    let fx = Fixture::new();
    let data = series_set(3, 0, HOUR, 30_000, &[("cluster", "stored")]);
    let a_ext: &[(&str, &str)] = &[("cluster", "eu"), ("replica", "a")];
    let b_ext: &[(&str, &str)] = &[("cluster", "eu"), ("replica", "b")];
    let later_ext: &[(&str, &str)] = &[("cluster", "us"), ("replica", "a")];
    let (_, a) = fx.add_block(0, HOUR, &data, a_ext).await;
    let (_, b) = fx.add_block(0, HOUR, &data, b_ext).await;
    let later = series_set(2, HOUR, 2 * HOUR, 30_000, &[]);
    let (_, c) = fx.add_block(HOUR, 2 * HOUR, &later, later_ext).await;
    let store = fx.store(test_options());
    store.sync().await.unwrap();
    let blocks: Vec<(&std::path::Path, &[(&str, &str)])> = vec![
        (a.as_path(), a_ext),
        (b.as_path(), b_ext),
        (c.as_path(), later_ext),
    ];

    let check = |ms: Vec<Matcher>, mint: i64, maxt: i64| {
        let store = store.clone();
        let want = expected_select(&blocks, &ms, mint, maxt);
        async move {
            let got = store
                .select(&ms, SelectHints::new(mint, maxt))
                .await
                .unwrap();
            assert!(got.warnings.is_empty());
            assert_eq!(got.series, want, "{ms:?}");
            got.series
        }
    };
    // The external value wins over the stored `cluster`.
    let got = check(vec![eq("__name__", "m"), eq("replica", "a")], 0, 2 * HOUR).await;
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].labels.get("cluster"), Some("eu"));
    assert!(got.iter().all(|s| s.labels.get("replica") == Some("a")));
    let got = check(vec![eq("__name__", "m"), re("replica", "a|b")], 0, HOUR - 1).await;
    assert_eq!(got.len(), 6);
    let got = check(vec![eq("__name__", "m"), eq("cluster", "us")], 0, 2 * HOUR).await;
    assert_eq!(got.len(), 2);
    let got = check(
        vec![eq("__name__", "m"), eq("cluster", "stored")],
        0,
        2 * HOUR,
    )
    .await;
    assert!(got.is_empty());
    // A matcher on a name no block carries as external label is evaluated
    // against the series (missing = "").
    let got = check(vec![eq("__name__", "m"), eq("zone", "")], 0, 2 * HOUR).await;
    assert_eq!(got.len(), 3 + 3 + 2);

    // Only external-label matchers: a bad request.
    let err = store
        .select(&[eq("replica", "a")], SelectHints::new(0, 2 * HOUR))
        .await
        .unwrap_err();
    assert!(
        matches!(err, hearth_storage_api::Error::BadRequest(_)),
        "{err}"
    );
    assert!(store
        .select(&[], SelectHints::new(0, 2 * HOUR))
        .await
        .is_err());

    // Label queries (§3.7).
    let v = store
        .label_values("replica", &[], 0, 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(v.values, vec!["a", "b"]);
    let v = store
        .label_values("replica", &[eq("cluster", "us")], 0, 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(v.values, vec!["a"]);
    let v = store
        .label_values("replica", &[eq("i", "002")], HOUR, 2 * HOUR)
        .await
        .unwrap();
    assert!(v.values.is_empty(), "{v:?}");
    let v = store
        .label_values("cluster", &[], 0, 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(v.values, vec!["eu", "us"]);
    let v = store
        .label_values("i", &[eq("cluster", "us")], 0, 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(v.values, vec!["000", "001"]);
    let n = store
        .label_names(&[eq("cluster", "nowhere")], 0, 2 * HOUR)
        .await
        .unwrap();
    assert!(n.values.is_empty());
    let n = store.label_names(&[], HOUR, 2 * HOUR).await.unwrap();
    assert_eq!(n.values, vec!["__name__", "cluster", "i", "replica"]);
    assert!(store.label_values("", &[], 0, HOUR).await.is_err());

    let info = store.info().await.unwrap();
    assert_eq!(
        info.label_sets,
        vec![
            Labels::new(a_ext.iter().copied()),
            Labels::new(b_ext.iter().copied()),
            Labels::new(later_ext.iter().copied())
        ]
    );
    assert_eq!((info.min_time, info.max_time), (0, 2 * HOUR - 1));
}

#[tokio::test]
async fn empty_store_announces_no_data() {
    let fx = Fixture::new();
    let store = fx.store(test_options());
    store.sync().await.unwrap();
    let info = store.info().await.unwrap();
    assert_eq!(info.min_time, i64::MAX);
    assert!(info.label_sets.is_empty());
    let got = store
        .select(&[eq("__name__", "m")], SelectHints::new(0, HOUR))
        .await
        .unwrap();
    assert!(got.series.is_empty() && got.warnings.is_empty());
}

#[tokio::test]
async fn caches_hit_on_a_second_identical_query() {
    let fx = Fixture::new();
    fx.add_block(
        0,
        HOUR,
        &series_set(5, 0, HOUR, 15_000, &[]),
        &[("replica", "a")],
    )
    .await;
    let store = fx.store(test_options());
    store.sync().await.unwrap();
    let ms = [eq("__name__", "m"), re("i", "00[0-3]")];
    let first = store.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
    let s1 = store.stats();
    assert_eq!(s1.chunks_cache.hits, 0);
    assert!(s1.chunks_cache.misses > 0 && s1.fetched_chunk_bytes > 0);
    let second = store.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
    assert_eq!(first.series, second.series);
    let s2 = store.stats();
    assert_eq!(
        s2.chunks_cache.hits, s1.chunks_cache.misses,
        "every chunk from the cache"
    );
    assert_eq!(s2.chunks_cache.misses, s1.chunks_cache.misses);
    assert!(s2.postings_cache.hits > s1.postings_cache.hits);
    assert_eq!(s2.series_cache.hits, 4);
    assert_eq!(
        s2.fetched_chunk_bytes, s1.fetched_chunk_bytes,
        "no new bucket reads"
    );
    assert!(s2.chunks_cache.bytes > 0 && s2.chunks_cache.items > 0);
}

#[tokio::test]
async fn cache_budgets_bound_the_caches() {
    let fx = Fixture::new();
    let (_, dir) = fx
        .add_block(
            0,
            HOUR,
            &series_set(60, 0, HOUR, 15_000, &[]),
            &[("replica", "a")],
        )
        .await;
    let options = StoreOptions {
        chunk_cache_bytes: 4096,
        postings_cache_bytes: 1024,
        series_cache_bytes: 2048,
        ..test_options()
    };
    let store = fx.store(options);
    store.sync().await.unwrap();
    let blocks: Vec<(&std::path::Path, &[(&str, &str)])> =
        vec![(dir.as_path(), &[("replica", "a")])];
    for ms in [
        vec![eq("__name__", "m")],
        vec![re("i", "0[0-4].")],
        vec![eq("__name__", "m")],
    ] {
        let got = store.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
        assert_eq!(got.series, expected_select(&blocks, &ms, 0, HOUR));
        let stats = store.stats();
        for c in [stats.chunks_cache, stats.postings_cache, stats.series_cache] {
            assert!(c.bytes <= c.capacity, "{c:?}");
        }
        assert!(stats.chunks_cache.items > 0 && stats.chunks_cache.items < 120);
    }
}

#[tokio::test]
async fn chunks_longer_than_the_estimate_are_read_again() {
    let fx = Fixture::new();
    let (_, dir) = fx
        .add_block(
            0,
            HOUR,
            &series_set(8, 0, HOUR, 10_000, &[]),
            &[("replica", "a")],
        )
        .await;
    let blocks: Vec<(&std::path::Path, &[(&str, &str)])> =
        vec![(dir.as_path(), &[("replica", "a")])];
    let ms = [re("i", "00[1357]")];
    let want = expected_select(&blocks, &ms, 0, HOUR);
    // Tiny estimate, no merging of ranges: every chunk is cut short.
    let options = StoreOptions {
        chunk_size_estimate: 1,
        chunk_fetch_gap_bytes: 0,
        ..test_options()
    };
    let store = fx.store(options);
    store.sync().await.unwrap();
    let got = store.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
    assert_eq!(got.series, want);
    assert!(store.stats().chunk_refetches > 0);

    // A range budget smaller than a chunk: still correct.
    let store = fx.store(StoreOptions {
        max_fetch_range_bytes: 1,
        ..test_options()
    });
    store.sync().await.unwrap();
    let got = store.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
    assert_eq!(got.series, want);
}

#[tokio::test]
async fn metrics_are_registered() {
    let fx = Fixture::new();
    fx.add_block(
        0,
        HOUR,
        &series_set(2, 0, HOUR, 60_000, &[]),
        &[("replica", "a")],
    )
    .await;
    let store = fx.store(test_options());
    let mut registry = prometheus_client::registry::Registry::default();
    store.register_metrics(&mut registry);
    store.sync().await.unwrap();
    store
        .select(&[eq("__name__", "m")], SelectHints::new(0, HOUR))
        .await
        .unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for want in [
        "hearth_store_blocks_loaded 1",
        "hearth_store_block_syncs_total 1",
        "hearth_store_block_sync_failures_total 0",
        "hearth_store_corrupt_blocks_total 0",
        "hearth_store_index_headers_loaded 1",
        "hearth_store_index_header_downloads_total 1",
        "hearth_store_cache_misses_total{cache=\"chunks\"}",
        "hearth_store_cache_bytes{cache=\"chunks\"}",
        "hearth_store_bucket_fetched_bytes_total{kind=\"chunks\"}",
        "hearth_store_bucket_fetched_bytes_total{kind=\"index\"}",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}

#[tokio::test]
async fn nearby_chunks_share_one_range_read() {
    let fx = Fixture::new();
    let a: &[(&str, &str)] = &[("replica", "a")];
    let (_, dir) = fx
        .add_block(0, HOUR, &series_set(20, 0, HOUR, 15_000, &[]), a)
        .await;
    let ms = [eq("__name__", "m")];
    let want = expected_select(&[(dir.as_path(), a)], &ms, 0, HOUR);
    let num_chunks: usize = want.iter().map(|s| s.chunks.len()).sum();
    assert!(num_chunks >= 40);

    let faulty = Faulty::new(&fx.bucket_dir);
    let merged =
        hearth_store::BucketStore::new(faulty.bucket(), &fx.local_dir, test_options()).unwrap();
    merged.sync().await.unwrap();
    let got = merged.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
    assert_eq!(got.series, want);
    let reads = faulty.range_reads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reads, 1, "one segment, all chunks within the gap: one read");

    let faulty = Faulty::new(&fx.bucket_dir);
    let apart = hearth_store::BucketStore::new(
        faulty.bucket(),
        fx.tmp.path().join("apart"),
        StoreOptions {
            chunk_fetch_gap_bytes: 0,
            chunk_size_estimate: 16,
            ..test_options()
        },
    )
    .unwrap();
    apart.sync().await.unwrap();
    let got = apart.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
    assert_eq!(got.series, want);
    let reads = faulty.range_reads.load(std::sync::atomic::Ordering::SeqCst);
    assert!(reads >= num_chunks, "{reads} reads for {num_chunks} chunks");
}

#[tokio::test]
async fn blocks_without_external_labels_are_served_as_stored() {
    let fx = Fixture::new();
    let (id, dir) = fx
        .add_block(
            0,
            HOUR,
            &series_set(6, 0, HOUR, 60_000, &[]),
            &[("replica", "a")],
        )
        .await;
    // A meta.json with `thanos.labels: null`, as some uploaders write it.
    let meta_path = hearth_objstore::paths::meta(id);
    let mut meta: serde_json::Value =
        serde_json::from_slice(&fx.bucket.get(&meta_path).await.unwrap()).unwrap();
    meta["thanos"]["labels"] = serde_json::Value::Null;
    fx.bucket
        .put(&meta_path, serde_json::to_vec(&meta).unwrap().into())
        .await
        .unwrap();
    let store = fx.store(test_options());
    store.sync().await.unwrap();
    assert!(store.store_info().label_sets.is_empty());
    let ms = [eq("__name__", "m")];
    let want = expected_select(&[(dir.as_path(), &[])], &ms, 0, HOUR);
    let mut hints = SelectHints::new(0, HOUR);
    hints.limit = 4;
    let got = store.select(&ms, hints).await.unwrap();
    assert_eq!(got.series, want[..4].to_vec());
    let names = store.label_names(&[], 0, HOUR).await.unwrap();
    assert_eq!(names.values, vec!["__name__", "i"]);
}
