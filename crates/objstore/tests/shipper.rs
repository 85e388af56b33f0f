//! The shipper on a FILESYSTEM bucket: each block exactly once across
//! restarts, `.tmp` directories and compacted blocks skipped, failed
//! uploads retried at the next sync without a visible partial block.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hearth_objstore::object_store::local::LocalFileSystem;
use hearth_objstore::{paths, Bucket, RetryPolicy, Shipper, ShipperState};
use support::{labels, make_blocks, Recording};

fn setup(
    tmp: &std::path::Path,
) -> (
    std::path::PathBuf,
    Vec<std::path::PathBuf>,
    Bucket,
    Arc<Recording>,
) {
    let tsdb = tmp.join("tsdb");
    let blocks = make_blocks(&tsdb, 2, 45);
    let bucket_dir = tmp.join("bucket");
    std::fs::create_dir_all(&bucket_dir).unwrap();
    let rec = Recording::new(Arc::new(
        LocalFileSystem::new_with_prefix(&bucket_dir).unwrap(),
    ));
    let bucket = Bucket::new(rec.clone(), "test").with_retry(RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    });
    (tsdb, blocks, bucket, rec)
}

fn ids(blocks: &[std::path::PathBuf]) -> Vec<ulid::Ulid> {
    blocks
        .iter()
        .map(|b| ulid::Ulid::from_string(b.file_name().unwrap().to_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn ships_each_block_exactly_once_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let (tsdb, blocks, bucket, rec) = setup(tmp.path());
    let want = ids(&blocks);
    // A block being written is not shipped.
    let tmp_block = tsdb.join(format!("{}.tmp-for-creation", ulid::Ulid::new()));
    copy_dir(&blocks[0], &tmp_block);

    let shipper = Shipper::new(&tsdb, bucket.clone(), labels(), "sidecar");
    let stats = shipper.sync().await.unwrap();
    assert_eq!(stats.uploaded, want, "oldest first");
    let mut listed = want.clone();
    listed.sort();
    assert_eq!(bucket.list_blocks().await.unwrap(), listed);
    let state = ShipperState::read(&tsdb).unwrap().unwrap();
    assert_eq!(state.version, 1);
    assert_eq!(state.uploaded, listed);
    let text = std::fs::read_to_string(tsdb.join("thanos.shipper.json")).unwrap();
    assert!(
        text.starts_with("{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\""),
        "{text}"
    );
    assert!(text.ends_with("]\n}\n"), "{text}");
    assert!(!tsdb.join("thanos.shipper.json.tmp").exists());
    let puts = rec.puts().len();

    // Again, and after a restart: nothing more is uploaded.
    assert!(shipper.sync().await.unwrap().uploaded.is_empty());
    let restarted = Shipper::new(&tsdb, bucket.clone(), labels(), "sidecar");
    assert!(restarted.sync().await.unwrap().uploaded.is_empty());
    assert_eq!(rec.puts().len(), puts);

    // Without the state file, blocks already in the bucket are recorded,
    // not uploaded again.
    std::fs::remove_file(tsdb.join("thanos.shipper.json")).unwrap();
    let stats = restarted.sync().await.unwrap();
    assert!(stats.uploaded.is_empty());
    assert_eq!(stats.already_in_bucket, want);
    assert_eq!(rec.puts().len(), puts);
    assert_eq!(ShipperState::read(&tsdb).unwrap().unwrap().uploaded, listed);

    // A block deleted locally drops out of the state file.
    std::fs::remove_dir_all(&blocks[0]).unwrap();
    restarted.sync().await.unwrap();
    assert_eq!(
        ShipperState::read(&tsdb).unwrap().unwrap().uploaded.len(),
        want.len() - 1
    );
}

#[tokio::test]
async fn failed_upload_is_retried_at_next_sync_without_partial_block() {
    let tmp = tempfile::tempdir().unwrap();
    let (tsdb, blocks, bucket, rec) = setup(tmp.path());
    let want = ids(&blocks);
    let shipper = Shipper::new(&tsdb, bucket.clone(), labels(), "sidecar");
    // The newest block's index fails: the oldest ships, the newest does not.
    let newest = want[want.len() - 1];
    *rec.fail_matching.lock().unwrap() = Some(format!("{newest}/index"));
    let err = shipper.sync().await.unwrap_err();
    assert!(err.to_string().contains("1 of"), "{err}");
    assert!(!bucket.exists(&paths::meta(newest)).await.unwrap());
    assert!(bucket
        .exists(&paths::chunk_segment(newest, 1))
        .await
        .unwrap());
    assert!(!bucket.list_blocks().await.unwrap().contains(&newest));
    let state = ShipperState::read(&tsdb).unwrap().unwrap();
    assert!(!state.uploaded.contains(&newest));
    assert!(state.uploaded.contains(&want[0]));

    // The bucket is back: the next sync ships only the failed block.
    *rec.fail_matching.lock().unwrap() = None;
    let stats = shipper.sync().await.unwrap();
    assert_eq!(stats.uploaded, vec![newest]);
    let mut listed = want.clone();
    listed.sort();
    assert_eq!(bucket.list_blocks().await.unwrap(), listed);
    assert_eq!(ShipperState::read(&tsdb).unwrap().unwrap().uploaded, listed);

    // The first N puts fail: nothing is visible until a sync succeeds.
    let tmp2 = tempfile::tempdir().unwrap();
    let (tsdb2, _blocks2, bucket2, rec2) = setup(tmp2.path());
    rec2.fail_next_puts
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let shipper2 = Shipper::new(&tsdb2, bucket2.clone(), labels(), "receive");
    assert!(shipper2.sync().await.is_err());
    let partial_synced = bucket2.list_blocks().await.unwrap().len();
    assert_eq!(
        ShipperState::read(&tsdb2).unwrap().unwrap().uploaded.len(),
        partial_synced
    );
    shipper2.sync().await.unwrap();
    assert_eq!(bucket2.list_blocks().await.unwrap().len(), want.len());
}

#[tokio::test]
async fn compacted_blocks_are_skipped_unless_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let (tsdb, blocks, bucket, _rec) = setup(tmp.path());
    // Turn a copy of the first block into a level-2 block with a new ULID.
    let id = ulid::Ulid::new();
    let compacted = tsdb.join(id.to_string());
    copy_dir(&blocks[0], &compacted);
    let meta_path = compacted.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["ulid"] = serde_json::json!(id.to_string());
    meta["compaction"]["level"] = serde_json::json!(2);
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();

    let shipper = Shipper::new(&tsdb, bucket.clone(), labels(), "sidecar");
    let stats = shipper.sync().await.unwrap();
    assert_eq!(stats.uploaded.len(), blocks.len());
    assert_eq!(stats.skipped, 1);
    assert!(!bucket.exists(&paths::meta(id)).await.unwrap());

    let shipper = shipper.with_upload_compacted(true);
    let stats = shipper.sync().await.unwrap();
    assert_eq!(stats.uploaded, vec![id]);
    let summary = bucket.read_meta_summary(id).await.unwrap();
    assert_eq!(summary.level, 2);
    assert_eq!(summary.source, "sidecar");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}
