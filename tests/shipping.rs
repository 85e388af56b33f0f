//! `hearth standalone --objstore.config-file`: completed blocks reach the
//! bucket (Thanos's layout, `thanos` section with the external labels),
//! once, also across a restart.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{post_write, series, write_body, Standalone};

/// The blocks in a FILESYSTEM bucket: directories with a meta.json.
fn bucket_blocks(bucket: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(bucket)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("meta.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn completed_blocks_are_shipped_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let objstore = dir.path().join("objstore.yml");
    std::fs::write(
        &objstore,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        ),
    )
    .unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  external_labels:\n    cluster: test\n    replica: a\nscrape_configs: []\n",
    )
    .unwrap();
    let flags = [
        format!("--config.file={}", config.display()),
        format!("--objstore.config-file={}", objstore.display()),
        "--storage.tsdb.min-block-duration=5m".to_string(),
        "--storage.tsdb.compaction-interval=200ms".to_string(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Standalone::start(&data, &flags);
    let client = reqwest::blocking::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut t = now - 30 * 60_000;
    while t < now {
        let ts = vec![series(&[("__name__", "shipped"), ("k", "v")], &[(t, 1.0)])];
        let (status, body) = post_write(&client, &s.url("/api/v1/write"), write_body(ts)).unwrap();
        assert_eq!(status, 204, "{body}");
        t += 15_000;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while bucket_blocks(&bucket).is_empty() {
        assert!(Instant::now() < deadline, "no block reached the bucket");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let shipped = bucket_blocks(&bucket);
    // Every block in the bucket is a local block, with the thanos section.
    for id in &shipped {
        assert!(
            data.join(id).join("meta.json").exists(),
            "{id} is not local"
        );
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bucket.join(id).join("meta.json")).unwrap())
                .unwrap();
        assert_eq!(
            meta["thanos"]["labels"],
            serde_json::json!({"cluster": "test", "replica": "a"}),
            "{meta}"
        );
        assert_eq!(meta["thanos"]["source"], "sidecar");
        assert!(bucket.join(id).join("index").exists());
        assert!(bucket.join(id).join("chunks").join("000001").exists());
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("thanos.shipper.json")).unwrap()).unwrap();
    assert_eq!(state["version"], 1);
    assert_eq!(state["uploaded"].as_array().unwrap().len(), shipped.len());
    s.stop();

    // After a restart nothing is uploaded twice (the bucket's files stay
    // as they were).
    let written = || -> Vec<std::time::SystemTime> {
        shipped
            .iter()
            .map(|id| {
                let meta = bucket.join(id).join("meta.json");
                std::fs::metadata(meta).unwrap().modified().unwrap()
            })
            .collect()
    };
    let before = written();
    let s = Standalone::start(&data, &flags);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(before, written());
    s.stop();
}
