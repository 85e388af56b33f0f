//! Against a real S3 server, s3s-fs (shared/README.md): objects, multipart
//! upload, a block round trip, and the shipper riding out an S3 outage
//! (s3s-fs stopped and started during a sync). Installs s3s-fs 0.14.1 with
//! `cargo install` when it is not on the PATH nor in ~/.cargo/bin (about 3
//! minutes, once).

mod support;

use std::time::Duration;

use bytes::Bytes;
use hearth_objstore::object_store::path::Path;
use hearth_objstore::{paths, Bucket, Operation, RetryPolicy, Shipper};
use hearth_test_utils::s3::{find_s3s_fs, S3sFs};
use support::{count_samples, labels, make_blocks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_round_trip_and_shipper_across_an_outage() {
    let bin = find_s3s_fs();
    let tmp = tempfile::tempdir().unwrap();
    let mut server = S3sFs::start(bin, tmp.path().join("s3data"));
    let bucket = Bucket::from_yaml(&server.objstore_yaml())
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 40,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        });

    // Objects.
    let p = paths::debug("hello");
    bucket
        .put(&p, Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    assert_eq!(
        bucket.get(&p).await.unwrap(),
        Bytes::from_static(b"hello world")
    );
    assert_eq!(
        bucket.get_range(&p, 0..5).await.unwrap(),
        Bytes::from_static(b"hello")
    );
    assert!(bucket.exists(&p).await.unwrap());
    assert!(!bucket.exists(&paths::debug("nope")).await.unwrap());
    assert!(bucket
        .get(&paths::debug("nope"))
        .await
        .unwrap_err()
        .is_not_found());
    // Multipart: 11 MiB in 5 MiB parts.
    let big: Vec<u8> = (0..11u32 << 20).map(|i| (i % 253) as u8).collect();
    let local = tmp.path().join("big");
    std::fs::write(&local, &big).unwrap();
    bucket
        .upload_file(&Path::from("big"), &local)
        .await
        .unwrap();
    assert_eq!(
        bucket.get(&Path::from("big")).await.unwrap().len(),
        big.len()
    );
    assert_eq!(
        bucket
            .get_range(&Path::from("big"), 6_000_000..6_000_010)
            .await
            .unwrap(),
        Bytes::copy_from_slice(&big[6_000_000..6_000_010])
    );
    bucket.delete(&Path::from("big")).await.unwrap();

    // A block round trip.
    let tsdb = tmp.path().join("tsdb");
    let blocks = make_blocks(&tsdb, 3, 45);
    let id = bucket
        .upload_block(&blocks[0], &labels(), "sidecar")
        .await
        .unwrap();
    assert_eq!(bucket.list_blocks().await.unwrap(), vec![id]);
    let download = tmp.path().join("download");
    std::fs::create_dir_all(&download).unwrap();
    let dir = bucket.download_block(id, &download).await.unwrap();
    assert_eq!(
        std::fs::read(dir.join("index")).unwrap(),
        std::fs::read(blocks[0].join("index")).unwrap()
    );
    assert_eq!(count_samples(&download), 3 * 40);
    assert!(bucket.mark_for_deletion(id, "test").await.unwrap());
    assert!(bucket.read_deletion_mark(id).await.unwrap().is_some());
    bucket.delete_block(id).await.unwrap();
    assert!(bucket.list_blocks().await.unwrap().is_empty());

    // The shipper, with s3s-fs down when the sync starts and back 1.5 s
    // later: the sync rides it out with retries and ships every block once.
    let want = blocks.len();
    let shipper = Shipper::new(&tsdb, bucket.clone(), labels(), "sidecar");
    server.stop();
    let (_, _, retries_before) = bucket.operation_count(Operation::Exists);
    let sync = tokio::spawn(async move { shipper.sync().await.map(|s| (s, shipper)) });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!sync.is_finished(), "sync finished while S3 was down");
    server.restart();
    let (stats, shipper) = sync.await.unwrap().unwrap();
    assert_eq!(stats.uploaded.len(), want);
    let (_, _, retries_after) = bucket.operation_count(Operation::Exists);
    assert!(retries_after > retries_before, "no retry happened");
    assert_eq!(bucket.list_blocks().await.unwrap().len(), want);
    // Exactly once: a second sync uploads nothing.
    assert!(shipper.sync().await.unwrap().uploaded.is_empty());

    // Data persists in s3s-fs's directory across a restart.
    server.stop();
    server.restart();
    assert_eq!(bucket.list_blocks().await.unwrap().len(), want);
}
