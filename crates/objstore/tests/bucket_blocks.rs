//! The bucket client and blocks on a FILESYSTEM bucket: round trips, upload
//! order with `meta.json` last, retries, multipart upload, deletion marks,
//! and listing that ignores partial blocks.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hearth_objstore::object_store::local::LocalFileSystem;
use hearth_objstore::object_store::path::Path;
use hearth_objstore::{paths, Bucket, Operation, RetryPolicy};
use support::{count_samples, labels, make_blocks, Recording};

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    }
}

fn recording_bucket(dir: &std::path::Path) -> (Bucket, Arc<Recording>) {
    let fs = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    let rec = Recording::new(fs);
    (Bucket::new(rec.clone(), "test"), rec)
}

#[tokio::test]
async fn filesystem_bucket_round_trips_objects_and_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket_dir = tmp.path().join("bucket");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir.display()
    );
    let config_file = tmp.path().join("objstore.yml");
    std::fs::write(&config_file, yaml).unwrap();
    let bucket = Bucket::from_config_file(&config_file).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    bucket.register_metrics(&mut registry);

    // Plain objects.
    let p = paths::debug("metas/x.json");
    assert!(!bucket.exists(&p).await.unwrap());
    assert_eq!(bucket.get_opt(&p).await.unwrap(), None);
    assert!(bucket.get(&p).await.unwrap_err().is_not_found());
    bucket
        .put(&p, Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    assert!(bucket.exists(&p).await.unwrap());
    assert_eq!(
        bucket.get(&p).await.unwrap(),
        Bytes::from_static(b"hello world")
    );
    assert_eq!(
        bucket.get_range(&p, 6..11).await.unwrap(),
        Bytes::from_static(b"world")
    );
    assert_eq!(bucket.attributes(&p).await.unwrap().size, 11);
    assert!(!bucket
        .put_if_absent(&p, Bytes::from_static(b"x"))
        .await
        .unwrap());
    assert_eq!(
        bucket.list_dirs(None).await.unwrap(),
        vec![Path::from("debug")]
    );
    bucket.delete(&p).await.unwrap();
    bucket.delete(&p).await.unwrap();
    assert!(!bucket.exists(&p).await.unwrap());

    // A block: upload, list, download, and the downloaded copy reads back.
    let tsdb = tmp.path().join("tsdb");
    let blocks = make_blocks(&tsdb, 3, 45);
    let id = bucket
        .upload_block(&blocks[0], &labels(), "sidecar")
        .await
        .unwrap();
    assert_eq!(bucket.list_blocks().await.unwrap(), vec![id]);
    let meta: serde_json::Value =
        serde_json::from_slice(&bucket.read_meta(id).await.unwrap()).unwrap();
    let thanos = &meta["thanos"];
    assert_eq!(
        thanos["labels"],
        serde_json::json!({"cluster": "eu-1", "replica": "a"})
    );
    assert_eq!(thanos["downsample"], serde_json::json!({"resolution": 0}));
    assert_eq!(thanos["source"], "sidecar");
    assert_eq!(thanos["segment_files"], serde_json::json!(["000001"]));
    let index_size = std::fs::metadata(blocks[0].join("index")).unwrap().len();
    let chunk_size = std::fs::metadata(blocks[0].join("chunks/000001"))
        .unwrap()
        .len();
    assert_eq!(
        thanos["files"],
        serde_json::json!([
            {"rel_path": "chunks/000001", "size_bytes": chunk_size},
            {"rel_path": "index", "size_bytes": index_size},
            {"rel_path": "meta.json"},
        ])
    );
    assert!(thanos["upload_time"].as_str().unwrap().ends_with('Z'));
    // Every other member is the local meta's.
    let local: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blocks[0].join("meta.json")).unwrap()).unwrap();
    for key in [
        "ulid",
        "minTime",
        "maxTime",
        "stats",
        "compaction",
        "version",
    ] {
        assert_eq!(meta[key], local[key], "{key}");
    }
    assert!(
        local.get("thanos").is_none(),
        "local meta.json was modified"
    );
    let summary = bucket.read_meta_summary(id).await.unwrap();
    assert_eq!(summary.level, 1);

    let download = tmp.path().join("download");
    std::fs::create_dir_all(&download).unwrap();
    let dir = bucket.download_block(id, &download).await.unwrap();
    assert_eq!(dir, download.join(id.to_string()));
    for f in ["index", "chunks/000001"] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(blocks[0].join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(!download.join(format!("{id}.tmp-for-creation")).exists());
    // 10 minutes of 3 series every 15 s.
    assert_eq!(count_samples(&download), 3 * 40);
    // Downloading again replaces the copy.
    bucket.download_block(id, &download).await.unwrap();
    assert_eq!(count_samples(&download), 3 * 40);

    let (calls, failures, _) = bucket.operation_count(Operation::Upload);
    assert!(calls >= 4 && failures == 0, "{calls} {failures}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("hearth_objstore_bucket_operations_total{bucket=\"filesystem:"),
        "{text}"
    );
}

#[tokio::test]
async fn upload_puts_chunks_then_index_then_meta_json_last() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = make_blocks(&tmp.path().join("tsdb"), 2, 45);
    std::fs::create_dir_all(tmp.path().join("bucket")).unwrap();
    let (bucket, rec) = recording_bucket(&tmp.path().join("bucket"));
    let id = bucket
        .upload_block(&blocks[1], &labels(), "receive")
        .await
        .unwrap();
    assert_eq!(
        rec.puts(),
        vec![
            format!("{id}/chunks/000001"),
            format!("{id}/index"),
            format!("{id}/meta.json"),
        ]
    );
    // Empty external labels are refused, before anything is uploaded.
    let err = bucket
        .upload_block(&blocks[0], &Default::default(), "receive")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty external labels"), "{err}");
    assert_eq!(rec.puts().len(), 3);
}

#[tokio::test]
async fn failed_upload_leaves_no_meta_json() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = make_blocks(&tmp.path().join("tsdb"), 2, 45);
    std::fs::create_dir_all(tmp.path().join("bucket")).unwrap();
    let (bucket, rec) = recording_bucket(&tmp.path().join("bucket"));
    let bucket = bucket.with_retry(fast_retry(3));
    *rec.fail_matching.lock().unwrap() = Some("/index".into());
    let err = bucket
        .upload_block(&blocks[0], &labels(), "sidecar")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    // The chunks are there, the block is not.
    assert_eq!(rec.puts().len(), 1);
    assert!(bucket.list_blocks().await.unwrap().is_empty());
    assert_eq!(bucket.operation_count(Operation::Upload), (2, 1, 2));
}

#[tokio::test]
async fn transient_errors_are_retried_with_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let (bucket, rec) = recording_bucket(tmp.path());
    let bucket = bucket.with_retry(fast_retry(3));
    rec.fail_next_puts.store(2, Ordering::SeqCst);
    bucket
        .put(&Path::from("a"), Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert_eq!(bucket.operation_count(Operation::Upload), (1, 0, 2));
    rec.fail_next_puts.store(3, Ordering::SeqCst);
    assert!(bucket
        .put(&Path::from("b"), Bytes::from_static(b"1"))
        .await
        .is_err());
    assert_eq!(bucket.operation_count(Operation::Upload), (2, 1, 4));
    // A missing object is not retried, and not a failure.
    assert!(bucket
        .get(&Path::from("missing"))
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(bucket.operation_count(Operation::Get), (1, 0, 0));
}

#[tokio::test]
async fn large_files_are_uploaded_in_parts() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("bucket")).unwrap();
    let (bucket, _rec) = recording_bucket(&tmp.path().join("bucket"));
    let bucket = bucket.with_part_size(4096);
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let local = tmp.path().join("big");
    std::fs::write(&local, &data).unwrap();
    let p = Path::from("big");
    assert_eq!(bucket.upload_file(&p, &local).await.unwrap(), 50_000);
    assert_eq!(bucket.get(&p).await.unwrap(), Bytes::from(data.clone()));
    let back = tmp.path().join("back");
    assert_eq!(bucket.download_file(&p, &back).await.unwrap(), 50_000);
    assert_eq!(std::fs::read(&back).unwrap(), data);
}

#[tokio::test]
async fn deletion_marks_and_listing_ignore_partial_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = make_blocks(&tmp.path().join("tsdb"), 2, 45);
    std::fs::create_dir_all(tmp.path().join("bucket")).unwrap();
    let (bucket, rec) = recording_bucket(&tmp.path().join("bucket"));
    let id = bucket
        .upload_block(&blocks[0], &labels(), "sidecar")
        .await
        .unwrap();
    // A partial block (no meta.json) and a debug object are not blocks.
    let partial = ulid::Ulid::new();
    bucket
        .put(&paths::chunk_segment(partial, 1), Bytes::from_static(b"x"))
        .await
        .unwrap();
    bucket
        .put(
            &paths::debug(&format!("metas/{partial}.json")),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    assert_eq!(bucket.list_blocks().await.unwrap(), vec![id]);
    assert!(bucket.download_block(partial, tmp.path()).await.is_err());
    assert!(bucket.mark_for_deletion(partial, "x").await.is_err());

    assert_eq!(bucket.read_deletion_mark(id).await.unwrap(), None);
    assert!(bucket
        .mark_for_deletion(id, "source of compacted block")
        .await
        .unwrap());
    assert!(!bucket.mark_for_deletion(id, "again").await.unwrap());
    let raw = bucket.get(&paths::deletion_mark(id)).await.unwrap();
    let raw = std::str::from_utf8(&raw).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mark = bucket.read_deletion_mark(id).await.unwrap().unwrap();
    assert!((now - mark.deletion_time).abs() < 60, "{raw}");
    assert_eq!(
        raw,
        format!(
            "{{\"id\":\"{id}\",\"version\":1,\"details\":\"source of compacted block\",\"deletion_time\":{}}}",
            mark.deletion_time
        )
    );
    // A marked block is still a block until deleted.
    assert_eq!(bucket.list_blocks().await.unwrap(), vec![id]);
    assert!(bucket.mark_no_compact(id, "manual", "").await.unwrap());
    let nc = bucket.read_no_compact_mark(id).await.unwrap().unwrap();
    assert_eq!(nc.reason, "manual");

    bucket.delete_block(id).await.unwrap();
    let deletes = rec.deletes.lock().unwrap().clone();
    assert_eq!(deletes.first().unwrap(), &format!("{id}/meta.json"));
    assert_eq!(deletes.last().unwrap(), &format!("{id}/deletion-mark.json"));
    assert_eq!(deletes.len(), 5, "{deletes:?}");
    assert!(bucket.list_blocks().await.unwrap().is_empty());
    assert!(bucket
        .list(Some(&paths::block_dir(id)))
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn config_file_errors_name_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("objstore.yml");
    std::fs::write(
        &f,
        "type: FILESYSTEM\nconfig:\n  directory: /tmp/x\n  bucket: b\n",
    )
    .unwrap();
    let e = Bucket::from_config_file(&f).unwrap_err().to_string();
    assert!(e.contains("objstore.yml") && e.contains("bucket"), "{e}");
    let e = Bucket::from_config_file(tmp.path().join("missing.yml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.yml"), "{e}");
    let e = Bucket::from_yaml("type: SWIFT\nconfig: {}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("SWIFT"), "{e}");
}
