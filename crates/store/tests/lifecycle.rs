//! The life of blocks in the gateway: index files downloaded only when a
//! query needs them, memory-mapped, reused after a restart and unmapped
//! when idle; partial uploads invisible; deletion marks honoured after the
//! delay; damaged blocks skipped while the rest is served; downsampled
//! blocks skipped; the periodic sync task.

mod support;

use std::time::Duration;

use bytes::Bytes;
use hearth_objstore::paths;
use hearth_storage_api::{Queryable, SelectHints};
use hearth_store::StoreOptions;
use support::*;
use ulid::Ulid;

fn index_path(fx: &Fixture, id: Ulid) -> std::path::PathBuf {
    fx.local_dir.join(id.to_string()).join("index")
}

#[tokio::test]
async fn index_files_load_lazily_are_mapped_reused_and_closed_when_idle() {
    let fx = Fixture::new();
    let a: &[(&str, &str)] = &[("replica", "a")];
    let (b1, d1) = fx
        .add_block(0, HOUR, &series_set(3, 0, HOUR, 30_000, &[]), a)
        .await;
    let (b2, _) = fx
        .add_block(
            HOUR,
            2 * HOUR,
            &series_set(3, HOUR, 2 * HOUR, 30_000, &[]),
            a,
        )
        .await;
    let (b3, _) = fx
        .add_block(
            0,
            HOUR,
            &series_set(3, 0, HOUR, 30_000, &[]),
            &[("replica", "b")],
        )
        .await;
    let options = StoreOptions {
        index_header_idle_timeout: Duration::from_millis(500),
        ..test_options()
    };
    let store = fx.store(options.clone());
    store.sync().await.unwrap();
    assert_eq!(store.block_ids().len(), 3);
    for id in [b1, b2, b3] {
        assert!(
            !index_path(&fx, id).exists(),
            "index of {id} fetched by the sync"
        );
    }
    assert_eq!(store.stats().index_header_downloads, 0);

    // Only b1 overlaps the range and has replica="a".
    let ms = [eq("__name__", "m"), eq("replica", "a")];
    let hints = SelectHints::new(0, HOUR - 1);
    let want = expected_select(&[(d1.as_path(), a)], &ms, 0, HOUR - 1);
    let got = store.select(&ms, hints).await.unwrap();
    assert_eq!(got.series, want);
    assert!(index_path(&fx, b1).exists());
    assert!(!index_path(&fx, b2).exists() && !index_path(&fx, b3).exists());
    let stats = store.stats();
    assert_eq!(stats.index_header_downloads, 1);
    assert_eq!(stats.index_headers_loaded, 1);
    assert_eq!(
        stats.fetched_index_bytes,
        std::fs::metadata(d1.join("index")).unwrap().len()
    );
    // The index is mapped from the local file, not read onto the heap.
    assert!(is_mapped(&index_path(&fx, b1)), "index not memory-mapped");
    assert!(!fx.local_dir.join(b1.to_string()).join("index.tmp").exists());

    store.select(&ms, hints).await.unwrap();
    assert_eq!(store.stats().index_header_downloads, 1);
    assert_eq!(store.close_idle_index_headers(), 0, "used just now");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(store.close_idle_index_headers(), 1);
    assert_eq!(store.stats().index_headers_loaded, 0);
    assert!(!is_mapped(&index_path(&fx, b1)));
    assert!(
        index_path(&fx, b1).exists(),
        "the file stays for the next query"
    );
    assert_eq!(store.select(&ms, hints).await.unwrap().series, want);
    let stats = store.stats();
    assert_eq!(
        (stats.index_header_downloads, stats.index_headers_loaded),
        (1, 1)
    );

    // A restart reuses the file on disk.
    drop(store);
    let store = fx.store(options.clone());
    store.sync().await.unwrap();
    assert!(index_path(&fx, b1).exists(), "sync kept the local index");
    assert_eq!(store.select(&ms, hints).await.unwrap().series, want);
    assert_eq!(store.stats().index_header_downloads, 0);

    // A damaged local copy is replaced, not trusted.
    drop(store);
    let len = std::fs::metadata(index_path(&fx, b1)).unwrap().len() as usize;
    std::fs::write(index_path(&fx, b1), vec![0x5a; len]).unwrap();
    let store = fx.store(options);
    store.sync().await.unwrap();
    assert_eq!(store.select(&ms, hints).await.unwrap().series, want);
    let stats = store.stats();
    assert_eq!((stats.index_header_downloads, stats.corrupt_blocks), (1, 0));
}

#[tokio::test]
async fn partial_uploads_are_invisible_and_vanished_blocks_dropped() {
    let fx = Fixture::new();
    let a: &[(&str, &str)] = &[("replica", "a")];
    let data = series_set(2, 0, HOUR, 60_000, &[]);
    let (b1, _) = fx.add_block(0, HOUR, &data, a).await;
    // A second block with its chunks and index but no meta.json yet.
    let dir2 = write_block(
        &fx.blocks_dir,
        HOUR,
        2 * HOUR,
        &series_set(2, HOUR, 2 * HOUR, 60_000, &[]),
    );
    let b2: Ulid = dir2.file_name().unwrap().to_str().unwrap().parse().unwrap();
    for rel in ["chunks/000001", "index"] {
        let data = std::fs::read(dir2.join(rel)).unwrap();
        fx.bucket
            .put(&paths::block_file(b2, rel), Bytes::from(data))
            .await
            .unwrap();
    }
    // Not a block at all.
    fx.bucket
        .put(&paths::debug("metas/x.json"), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let store = fx.store(test_options());
    let stats = store.sync().await.unwrap();
    assert_eq!(store.block_ids(), vec![b1]);
    assert_eq!((stats.partial, stats.added, stats.failed), (1, 1, 0));
    let got = store
        .select(&[eq("__name__", "m")], SelectHints::new(0, 2 * HOUR))
        .await
        .unwrap();
    assert_eq!(got.series.len(), 2);
    assert!(got
        .series
        .iter()
        .all(|s| s.chunks.iter().all(|c| c.maxt < HOUR)));

    // meta.json arrives last: the block appears.
    fx.bucket
        .upload_block(&dir2, &ext_map(a), "test")
        .await
        .unwrap();
    let stats = store.sync().await.unwrap();
    assert_eq!((stats.added, stats.blocks), (1, 2));
    let mut ids = vec![b1, b2];
    ids.sort();
    assert_eq!(store.block_ids(), ids);

    // Deletion removes meta.json first: the block goes, with its local files.
    assert!(fx.local_dir.join(b1.to_string()).exists());
    fx.bucket.delete(&paths::meta(b1)).await.unwrap();
    let stats = store.sync().await.unwrap();
    assert_eq!((stats.removed, stats.partial), (1, 1));
    assert_eq!(store.block_ids(), vec![b2]);
    assert!(!fx.local_dir.join(b1.to_string()).exists());
    // And a block whose objects are all gone.
    std::fs::remove_dir_all(fx.bucket_dir.join(b2.to_string())).unwrap();
    let stats = store.sync().await.unwrap();
    assert_eq!((stats.removed, stats.blocks), (1, 0));
    assert_eq!(store.store_info().min_time, i64::MAX);
}

#[tokio::test]
async fn deletion_marks_are_honoured_after_the_delay() {
    let fx = Fixture::new();
    let a: &[(&str, &str)] = &[("replica", "a")];
    let (b1, _) = fx
        .add_block(0, HOUR, &series_set(2, 0, HOUR, 60_000, &[]), a)
        .await;
    let (b2, _) = fx
        .add_block(
            HOUR,
            2 * HOUR,
            &series_set(2, HOUR, 2 * HOUR, 60_000, &[]),
            a,
        )
        .await;
    let store = fx.store(test_options());
    store.sync().await.unwrap();
    let ms = [eq("__name__", "m")];
    store
        .select(&ms, SelectHints::new(0, 2 * HOUR))
        .await
        .unwrap();
    assert!(fx.local_dir.join(b1.to_string()).join("index").exists());

    assert!(fx.bucket.mark_for_deletion(b1, "test").await.unwrap());
    // Thanos's default delay: a fresh mark changes nothing.
    let patient = hearth_store::BucketStore::new(
        fx.bucket.clone(),
        fx.tmp.path().join("patient"),
        StoreOptions::default(),
    )
    .unwrap();
    let stats = patient.sync().await.unwrap();
    assert_eq!((stats.blocks, stats.deleted), (2, 0));

    // Delay 0: the marked block is dropped and its local files removed.
    let stats = store.sync().await.unwrap();
    assert_eq!((stats.blocks, stats.deleted, stats.removed), (1, 1, 1));
    assert_eq!(store.block_ids(), vec![b2]);
    assert!(!fx.local_dir.join(b1.to_string()).exists());
    let got = store
        .select(&ms, SelectHints::new(0, 2 * HOUR))
        .await
        .unwrap();
    assert!(got
        .series
        .iter()
        .all(|s| s.chunks.iter().all(|c| c.mint >= HOUR)));
    assert_eq!(store.store_info().min_time, HOUR);
}

#[tokio::test]
async fn damaged_blocks_are_skipped_and_the_rest_served() {
    let fx = Fixture::new();
    let a: &[(&str, &str)] = &[("replica", "a")];
    let span = |k: i64| (k * HOUR, (k + 1) * HOUR);
    let mut ids = Vec::new();
    let mut good_dir = None;
    for k in 0..5 {
        let (mint, maxt) = span(k);
        let (id, dir) = fx
            .add_block(mint, maxt, &series_set(3, mint, maxt, 30_000, &[]), a)
            .await;
        if k == 0 {
            good_dir = Some(dir);
        }
        ids.push(id);
    }
    let (good, bad_index, truncated, bad_crc, bad_meta) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    // Garbage index of the right size.
    let path = fx.object(bad_index, "index");
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    std::fs::write(&path, vec![0xAB; len]).unwrap();
    // Chunk segment cut in half.
    let path = fx.object(truncated, "chunks/000001");
    let data = std::fs::read(&path).unwrap();
    std::fs::write(&path, &data[..data.len() / 2]).unwrap();
    // One flipped byte inside a chunk record.
    let path = fx.object(bad_crc, "chunks/000001");
    let mut data = std::fs::read(&path).unwrap();
    data[20] ^= 0xFF;
    std::fs::write(&path, data).unwrap();
    // An unreadable meta.json.
    std::fs::write(fx.object(bad_meta, "meta.json"), b"{\"ulid\": ").unwrap();

    let store = fx.store(test_options());
    let stats = store.sync().await.unwrap();
    assert_eq!((stats.blocks, stats.corrupt), (4, 1));
    assert!(!store.block_ids().contains(&bad_meta));
    assert_eq!(store.stats().corrupt_blocks, 1);

    let ms = [eq("__name__", "m")];
    let good_dir = good_dir.unwrap();
    let want = expected_select(&[(good_dir.as_path(), a)], &ms, 0, 5 * HOUR);
    let got = store
        .select(&ms, SelectHints::new(0, 5 * HOUR))
        .await
        .unwrap();
    assert_eq!(got.series, want, "the good block's data is served");
    assert_eq!(got.warnings.len(), 3, "{:?}", got.warnings);
    for (id, what) in [
        (bad_index, "index"),
        (truncated, "bytes"),
        (bad_crc, "checksum"),
    ] {
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains(&id.to_string()) && w.contains(what)),
            "no warning for {id} ({what}) in {:?}",
            got.warnings
        );
    }
    assert!(!got.warnings.iter().any(|w| w.contains(&good.to_string())));
    let stats = store.stats();
    assert_eq!(stats.corrupt_blocks, 1 + 3);
    assert_eq!(stats.block_query_failures, 3);

    // A query that touches only a damaged block: no series, a warning; the
    // broken index is not downloaded again until the next sync.
    let downloads = store.stats().index_header_downloads;
    let (mint, maxt) = span(1);
    let only = store
        .select(&ms, SelectHints::new(mint, maxt - 1))
        .await
        .unwrap();
    assert!(only.series.is_empty());
    assert_eq!(only.warnings.len(), 1);
    assert!(only.warnings[0].contains(&bad_index.to_string()));
    assert_eq!(store.stats().index_header_downloads, downloads);
    assert!(
        !index_path(&fx, bad_index).exists(),
        "a broken copy is not kept"
    );
    store.sync().await.unwrap();
    let again = store
        .select(&ms, SelectHints::new(mint, maxt - 1))
        .await
        .unwrap();
    assert_eq!(again.warnings.len(), 1);
    assert_eq!(store.stats().index_header_downloads, downloads + 1);

    // Label queries: the readable indexes answer, the rest are warnings.
    let names = store.label_names(&[], 0, 5 * HOUR).await.unwrap();
    assert_eq!(names.values, vec!["__name__", "i", "replica"]);
    assert_eq!(names.warnings.len(), 2, "{:?}", names.warnings);
    let values = store.label_values("i", &ms, 0, 5 * HOUR).await.unwrap();
    assert_eq!(values.values, vec!["000", "001", "002"]);
    assert_eq!(values.warnings.len(), 2, "{:?}", values.warnings);
}

#[tokio::test]
async fn downsampled_blocks_are_skipped() {
    let fx = Fixture::new();
    let (id, _) = fx
        .add_block(
            0,
            HOUR,
            &series_set(2, 0, HOUR, 60_000, &[]),
            &[("replica", "a")],
        )
        .await;
    let meta_path = paths::meta(id);
    let mut meta: serde_json::Value =
        serde_json::from_slice(&fx.bucket.get(&meta_path).await.unwrap()).unwrap();
    meta["thanos"]["downsample"]["resolution"] = serde_json::json!(300_000);
    fx.bucket
        .put(&meta_path, Bytes::from(serde_json::to_vec(&meta).unwrap()))
        .await
        .unwrap();
    let store = fx.store(test_options());
    let stats = store.sync().await.unwrap();
    assert_eq!((stats.blocks, stats.downsampled), (0, 1));
}

#[tokio::test]
async fn the_sync_task_follows_the_bucket_until_shutdown() {
    let fx = Fixture::new();
    let store = fx.store(StoreOptions {
        index_header_idle_timeout: Duration::from_millis(50),
        ..test_options()
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = store.spawn_sync(Duration::from_millis(50), async move {
        let _ = stopped.await;
    });
    let (id, _) = fx
        .add_block(
            0,
            HOUR,
            &series_set(2, 0, HOUR, 60_000, &[]),
            &[("replica", "a")],
        )
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.block_ids() != vec![id] {
        assert!(tokio::time::Instant::now() < deadline, "block never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store
        .select(&[eq("__name__", "m")], SelectHints::new(0, HOUR))
        .await
        .unwrap();
    assert_eq!(store.stats().index_headers_loaded, 1);
    // The idle sweep unmaps the index.
    while store.stats().index_headers_loaded != 0 {
        assert!(tokio::time::Instant::now() < deadline, "index never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn bucket_failures_keep_the_served_blocks_and_become_warnings() {
    let fx = Fixture::new();
    let a: &[(&str, &str)] = &[("replica", "a")];
    let (_, dir) = fx
        .add_block(0, HOUR, &series_set(3, 0, HOUR, 30_000, &[]), a)
        .await;
    let faulty = Faulty::new(&fx.bucket_dir);
    let store =
        hearth_store::BucketStore::new(faulty.bucket(), &fx.local_dir, test_options()).unwrap();
    store.sync().await.unwrap();
    let ids = store.block_ids();
    assert_eq!(ids.len(), 1);

    // The bucket cannot be listed: the sync fails, the blocks stay.
    faulty
        .fail_list
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(store.sync().await.is_err());
    assert_eq!(store.block_ids(), ids);
    assert_eq!(store.stats().sync_failures, 1);
    faulty
        .fail_list
        .store(false, std::sync::atomic::Ordering::SeqCst);

    // Range reads fail: a warning, not a corrupt block; then it recovers.
    let ms = [eq("__name__", "m")];
    faulty
        .fail_range_reads
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let got = store.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
    assert!(got.series.is_empty());
    assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
    assert!(
        got.warnings[0].contains("injected failure"),
        "{:?}",
        got.warnings
    );
    assert_eq!(store.stats().corrupt_blocks, 0);
    faulty
        .fail_range_reads
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let got = store.select(&ms, SelectHints::new(0, HOUR)).await.unwrap();
    assert!(got.warnings.is_empty());
    assert_eq!(
        got.series,
        expected_select(&[(dir.as_path(), a)], &ms, 0, HOUR)
    );
}
