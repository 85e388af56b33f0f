//! The shipper (Thanos's `shipper`, specs/tsdb-blocks.md §8.4): uploads
//! every completed block of a local TSDB directory that is not in the
//! bucket yet, oldest first, and records what it shipped in
//! `<tsdb_dir>/thanos.shipper.json` (`{"version":1,"uploaded":[ULIDs]}`).
//!
//! A block is recorded only after its `meta.json`, uploaded last, is in the
//! bucket; a failed upload leaves no `meta.json`, so no partial block is
//! visible, and is retried at the next sync. Compacted blocks (level > 1)
//! are skipped unless configured, as Thanos's sidecar does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::block::{sync_dir, write_synced};
use crate::meta::BlockMetaSummary;
use crate::paths::{self, META_FILENAME};
use crate::{Bucket, Error, Result};

/// Name of the shipper's state file in the TSDB directory.
pub const SHIPPER_STATE_FILENAME: &str = "thanos.shipper.json";

/// The contents of `thanos.shipper.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipperState {
    pub version: u32,
    #[serde(default, with = "ulid_list")]
    pub uploaded: Vec<Ulid>,
}

mod ulid_list {
    use serde::{Deserialize, Deserializer, Serializer};
    use ulid::Ulid;

    pub fn serialize<S: Serializer>(ids: &[Ulid], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(|id| id.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ulid>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?
            .unwrap_or_default()
            .iter()
            .map(|s| Ulid::from_string(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

impl ShipperState {
    /// Reads the state file of `tsdb_dir`; `Ok(None)` when absent.
    pub fn read(tsdb_dir: &Path) -> Result<Option<Self>> {
        let path = tsdb_dir.join(SHIPPER_STATE_FILENAME);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let invalid = |message: String| Error::Invalid {
            what: "shipper state",
            path: path.display().to_string(),
            message,
        };
        let state: ShipperState =
            serde_json::from_slice(&data).map_err(|e| invalid(e.to_string()))?;
        if state.version != 1 {
            return Err(invalid(format!("unsupported version {}", state.version)));
        }
        Ok(Some(state))
    }

    /// Writes the state file atomically (temporary file, fsync, rename), in
    /// Thanos's layout: tab indentation and a trailing newline.
    pub fn write(&self, tsdb_dir: &Path) -> Result<()> {
        let mut buf = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
        self.serialize(&mut ser)
            .expect("serialising JSON into memory cannot fail");
        buf.push(b'\n');
        let path = tsdb_dir.join(SHIPPER_STATE_FILENAME);
        let tmp = tsdb_dir.join(format!("{SHIPPER_STATE_FILENAME}.tmp"));
        write_synced(&tmp, &buf)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
        sync_dir(tsdb_dir)
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Blocks uploaded by this sync, oldest first.
    pub uploaded: Vec<Ulid>,
    /// Blocks found already in the bucket and recorded as shipped.
    pub already_in_bucket: Vec<Ulid>,
    /// Blocks skipped: compacted (level > 1) or without samples.
    pub skipped: usize,
}

/// Ships the blocks of one TSDB directory to a bucket.
#[derive(Debug)]
pub struct Shipper {
    tsdb_dir: PathBuf,
    bucket: Bucket,
    external_labels: BTreeMap<String, String>,
    source: String,
    upload_compacted: bool,
    lock: tokio::sync::Mutex<()>,
}

impl Shipper {
    /// A shipper of `tsdb_dir`'s blocks to `bucket`, labelling them with
    /// `external_labels` and `source` (`sidecar`, `receive`, ...).
    pub fn new(
        tsdb_dir: impl Into<PathBuf>,
        bucket: Bucket,
        external_labels: BTreeMap<String, String>,
        source: impl Into<String>,
    ) -> Self {
        Self {
            tsdb_dir: tsdb_dir.into(),
            bucket,
            external_labels,
            source: source.into(),
            upload_compacted: false,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Also upload compacted blocks (`--shipper.upload-compacted`). Unlike
    /// Thanos, overlaps with blocks already in the bucket are not checked.
    pub fn with_upload_compacted(mut self, upload_compacted: bool) -> Self {
        self.upload_compacted = upload_compacted;
        self
    }

    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Uploads every completed block not shipped yet, oldest first. A
    /// failed block does not stop the others; the sync then returns
    /// [`Error::Sync`] and the failed blocks are retried at the next sync.
    /// Concurrent calls run one after the other.
    pub async fn sync(&self) -> Result<SyncStats> {
        let _guard = self.lock.lock().await;
        let mut shipped: BTreeSet<Ulid> = match ShipperState::read(&self.tsdb_dir) {
            Ok(state) => state.unwrap_or_default().uploaded.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable shipper state, starting afresh");
                BTreeSet::new()
            }
        };
        let blocks = self.local_blocks()?;
        let local: BTreeSet<Ulid> = blocks.iter().map(|(m, _)| m.ulid).collect();
        let mut stats = SyncStats::default();
        let mut failures = Vec::new();
        let mut attempted = 0;
        for (meta, dir) in &blocks {
            let id = meta.ulid;
            if shipped.contains(&id) {
                continue;
            }
            if meta.num_samples == 0 || (meta.level > 1 && !self.upload_compacted) {
                stats.skipped += 1;
                continue;
            }
            attempted += 1;
            match self.bucket.exists(&paths::meta(id)).await {
                Ok(true) => {
                    shipped.insert(id);
                    stats.already_in_bucket.push(id);
                    self.save(&shipped, &local)?;
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(block = %id, error = %e, "checking block in bucket failed");
                    failures.push(e);
                    continue;
                }
            }
            match self
                .bucket
                .upload_block(dir, &self.external_labels, &self.source)
                .await
            {
                Ok(_) => {
                    shipped.insert(id);
                    stats.uploaded.push(id);
                    self.save(&shipped, &local)?;
                }
                Err(e) => {
                    tracing::warn!(block = %id, error = %e, "shipping block failed");
                    failures.push(e);
                }
            }
        }
        self.save(&shipped, &local)?;
        if failures.is_empty() {
            Ok(stats)
        } else {
            Err(Error::Sync {
                failed: failures.len(),
                attempted,
                first: Box::new(failures.swap_remove(0)),
            })
        }
    }

    /// Records `shipped`, keeping only blocks that still exist locally.
    fn save(&self, shipped: &BTreeSet<Ulid>, local: &BTreeSet<Ulid>) -> Result<()> {
        ShipperState {
            version: 1,
            uploaded: shipped.intersection(local).copied().collect(),
        }
        .write(&self.tsdb_dir)
    }

    /// The completed blocks of the TSDB directory (`<ULID>/` with a
    /// readable `meta.json`; `*.tmp-*` directories never parse as ULIDs),
    /// sorted by `minTime`.
    fn local_blocks(&self) -> Result<Vec<(BlockMetaSummary, PathBuf)>> {
        let entries =
            std::fs::read_dir(&self.tsdb_dir).map_err(|e| Error::io("read", &self.tsdb_dir, e))?;
        let mut blocks = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &self.tsdb_dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if paths::parse_block_id(&name).is_none() || !entry.path().is_dir() {
                continue;
            }
            let meta_path = entry.path().join(META_FILENAME);
            let data = match std::fs::read(&meta_path) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(path = %meta_path.display(), error = %e, "skipping block without readable meta.json");
                    continue;
                }
            };
            match BlockMetaSummary::parse(&data, &meta_path.display().to_string()) {
                Ok(meta) => blocks.push((meta, entry.path())),
                Err(e) => tracing::warn!(error = %e, "skipping block with invalid meta.json"),
            }
        }
        blocks.sort_by_key(|(m, _)| (m.min_time, m.ulid));
        Ok(blocks)
    }
}
