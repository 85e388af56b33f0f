//! Blocks in the bucket (specs/tsdb-blocks.md §8): upload in Thanos's order
//! (chunks, index, `meta.json` last, so a block is visible only once
//! complete), download to a local directory atomically, listing, marker
//! files and deletion in Thanos's order.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::meta::{with_thanos_section, BlockFile, BlockMetaSummary, ThanosSection};
use crate::paths::{self, CHUNKS_DIRNAME, INDEX_FILENAME, META_FILENAME};
use crate::{Bucket, Error, Result};

/// `thanos.source` values used by Hearth's components.
pub mod source {
    pub const SIDECAR: &str = "sidecar";
    pub const RECEIVE: &str = "receive";
    pub const COMPACTOR: &str = "compactor";
    pub const RULER: &str = "ruler";
    pub const BUCKET_UPLOAD: &str = "bucket.upload";
}

/// `deletion-mark.json` (specs/tsdb-blocks.md §8.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionMark {
    #[serde(with = "ulid_text")]
    pub id: Ulid,
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// Unix seconds.
    pub deletion_time: i64,
}

/// `no-compact-mark.json` (specs/tsdb-blocks.md §8.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoCompactMark {
    #[serde(with = "ulid_text")]
    pub id: Ulid,
    pub version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// Unix seconds.
    pub no_compact_time: i64,
    /// `manual`, `index-size-exceeding`, ...
    pub reason: String,
}

mod ulid_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use ulid::Ulid;

    pub fn serialize<S: Serializer>(id: &Ulid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ulid, D::Error> {
        let s = String::deserialize(d)?;
        Ulid::from_string(&s).map_err(serde::de::Error::custom)
    }
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Now in RFC 3339 with nanoseconds, UTC, as Go's `time.Time` marshals.
fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a current UTC time formats as RFC 3339")
}

/// The chunk segment files of a local block, sorted, with their sizes.
fn local_segments(dir: &FsPath) -> Result<Vec<(String, u64)>> {
    let chunks = dir.join(CHUNKS_DIRNAME);
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&chunks).map_err(|e| Error::io("read", &chunks, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read", &chunks, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        if !meta.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        out.push((name, meta.len()));
    }
    out.sort();
    Ok(out)
}

impl Bucket {
    /// Uploads the block in local directory `dir` (a Prometheus block:
    /// `meta.json`, `index`, `chunks/`) in Thanos's order: every chunk
    /// file, then `index`, then `meta.json` with its `thanos` section set
    /// (`labels`, `downsample`, `source`, `segment_files`, `files`,
    /// `upload_time`). The local `meta.json` is not modified; `tombstones`
    /// is not uploaded. External labels must not be empty.
    pub async fn upload_block(
        &self,
        dir: &FsPath,
        external_labels: &BTreeMap<String, String>,
        source: &str,
    ) -> Result<Ulid> {
        let meta_path = dir.join(META_FILENAME);
        let meta_bytes = std::fs::read(&meta_path).map_err(|e| Error::io("read", &meta_path, e))?;
        let shown = meta_path.display().to_string();
        let summary = BlockMetaSummary::parse(&meta_bytes, &shown)?;
        let id = summary.ulid;
        let fail = |message: String| Error::Block {
            action: "upload",
            id,
            message,
        };
        if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
            if paths::parse_block_id(name).is_some_and(|d| d != id) {
                return Err(fail(format!(
                    "meta.json ulid differs from directory {name}"
                )));
            }
        }
        if external_labels.is_empty() {
            return Err(fail("empty external labels".into()));
        }
        let segments = local_segments(dir)?;
        let index_path = dir.join(INDEX_FILENAME);
        let index_size = std::fs::metadata(&index_path)
            .map_err(|e| Error::io("stat", &index_path, e))?
            .len();
        let mut files: Vec<BlockFile> = segments
            .iter()
            .map(|(name, size)| BlockFile {
                rel_path: format!("{CHUNKS_DIRNAME}/{name}"),
                size_bytes: Some(*size),
            })
            .collect();
        files.push(BlockFile {
            rel_path: INDEX_FILENAME.into(),
            size_bytes: Some(index_size),
        });
        files.push(BlockFile {
            rel_path: META_FILENAME.into(),
            size_bytes: None,
        });
        let segment_files: Vec<String> = segments.iter().map(|(n, _)| n.clone()).collect();

        for (name, _) in &segments {
            let local = dir.join(CHUNKS_DIRNAME).join(name);
            self.upload_file(
                &paths::block_file(id, &format!("{CHUNKS_DIRNAME}/{name}")),
                &local,
            )
            .await?;
        }
        self.upload_file(&paths::index(id), &index_path).await?;
        let upload_time = rfc3339_now();
        let meta = with_thanos_section(
            &meta_bytes,
            &shown,
            &ThanosSection {
                labels: external_labels,
                source,
                segment_files: &segment_files,
                files: &files,
                upload_time: &upload_time,
            },
        )?;
        self.put(&paths::meta(id), Bytes::from(meta)).await?;
        tracing::info!(bucket = %self.name(), block = %id, source, "uploaded block");
        Ok(id)
    }

    /// The block's `meta.json` as stored (with its `thanos` section).
    pub async fn read_meta(&self, id: Ulid) -> Result<Bytes> {
        self.get(&paths::meta(id)).await
    }

    /// The parsed essentials of the block's `meta.json`.
    pub async fn read_meta_summary(&self, id: Ulid) -> Result<BlockMetaSummary> {
        let path = paths::meta(id);
        let data = self.get(&path).await?;
        BlockMetaSummary::parse(&data, path.as_ref())
    }

    /// The IDs of the blocks in the bucket, sorted: top-level prefixes that
    /// parse as ULIDs and have a `meta.json`. Partial uploads (no
    /// `meta.json`) and other prefixes (`debug/`) are not blocks.
    pub async fn list_blocks(&self) -> Result<Vec<Ulid>> {
        let mut ids = Vec::new();
        for object in self.list(None).await? {
            let mut parts = object.location.parts();
            let (Some(dir), Some(file), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if file.as_ref() != META_FILENAME {
                continue;
            }
            if let Some(id) = paths::parse_block_id(dir.as_ref()) {
                ids.push(id);
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Downloads block `id` into `<parent>/<ULID>`: every chunk file and the
    /// index into `<ULID>.tmp-for-creation`, `meta.json` last, fsync, then a
    /// rename, so `<parent>/<ULID>` appears only complete. A previous copy
    /// is replaced. Returns the block's directory.
    pub async fn download_block(&self, id: Ulid, parent: &FsPath) -> Result<PathBuf> {
        let fail = |message: String| Error::Block {
            action: "download",
            id,
            message,
        };
        let meta = self
            .get_opt(&paths::meta(id))
            .await?
            .ok_or_else(|| fail("no meta.json in the bucket".into()))?;
        let tmp = parent.join(format!("{id}.tmp-for-creation"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io("remove", &tmp, e))?;
        }
        let chunks_dir = tmp.join(CHUNKS_DIRNAME);
        std::fs::create_dir_all(&chunks_dir).map_err(|e| Error::io("create", &chunks_dir, e))?;
        let chunk_prefix = paths::chunks_dir(id);
        for object in self.list(Some(&chunk_prefix)).await? {
            let Some(name) = object.location.filename() else {
                continue;
            };
            if object
                .location
                .prefix_match(&chunk_prefix)
                .map(|p| p.count())
                != Some(1)
            {
                continue;
            }
            self.download_file(&object.location, &chunks_dir.join(name))
                .await?;
        }
        self.download_file(&paths::index(id), &tmp.join(INDEX_FILENAME))
            .await?;
        let meta_path = tmp.join(META_FILENAME);
        write_synced(&meta_path, &meta)?;
        sync_dir(&chunks_dir)?;
        sync_dir(&tmp)?;
        let dest = parent.join(id.to_string());
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| Error::io("remove", &dest, e))?;
        }
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &tmp, e))?;
        sync_dir(parent)?;
        Ok(dest)
    }

    /// Writes `<ULID>/deletion-mark.json` unless present; whether it was
    /// written. The block must exist (have a `meta.json`).
    pub async fn mark_for_deletion(&self, id: Ulid, details: &str) -> Result<bool> {
        if !self.exists(&paths::meta(id)).await? {
            return Err(Error::Block {
                action: "mark for deletion",
                id,
                message: "no meta.json in the bucket".into(),
            });
        }
        let mark = DeletionMark {
            id,
            version: 1,
            details: details.to_string(),
            deletion_time: unix_seconds(),
        };
        let data = serde_json::to_vec(&mark).expect("a mark serialises");
        self.put_if_absent(&paths::deletion_mark(id), data.into())
            .await
    }

    /// The block's deletion mark, if any.
    pub async fn read_deletion_mark(&self, id: Ulid) -> Result<Option<DeletionMark>> {
        let path = paths::deletion_mark(id);
        let Some(data) = self.get_opt(&path).await? else {
            return Ok(None);
        };
        let mark: DeletionMark = parse_mark(&data, "deletion mark", &path)?;
        check_mark(mark.version, mark.id, id, "deletion mark", &path)?;
        Ok(Some(mark))
    }

    /// Writes `<ULID>/no-compact-mark.json` unless present; whether it was
    /// written.
    pub async fn mark_no_compact(&self, id: Ulid, reason: &str, details: &str) -> Result<bool> {
        let mark = NoCompactMark {
            id,
            version: 1,
            details: details.to_string(),
            no_compact_time: unix_seconds(),
            reason: reason.to_string(),
        };
        let data = serde_json::to_vec(&mark).expect("a mark serialises");
        self.put_if_absent(&paths::no_compact_mark(id), data.into())
            .await
    }

    /// The block's no-compact mark, if any.
    pub async fn read_no_compact_mark(&self, id: Ulid) -> Result<Option<NoCompactMark>> {
        let path = paths::no_compact_mark(id);
        let Some(data) = self.get_opt(&path).await? else {
            return Ok(None);
        };
        let mark: NoCompactMark = parse_mark(&data, "no-compact mark", &path)?;
        check_mark(mark.version, mark.id, id, "no-compact mark", &path)?;
        Ok(Some(mark))
    }

    /// Deletes every object of the block in Thanos's order: `meta.json`
    /// first (the block turns partial, readers stop using it), then the
    /// other objects, then `deletion-mark.json` last.
    pub async fn delete_block(&self, id: Ulid) -> Result<()> {
        self.delete(&paths::meta(id)).await?;
        let mark = paths::deletion_mark(id);
        let mut has_mark = false;
        for object in self.list(Some(&paths::block_dir(id))).await? {
            if object.location == mark {
                has_mark = true;
                continue;
            }
            self.delete(&object.location).await?;
        }
        if has_mark {
            self.delete(&mark).await?;
        }
        Ok(())
    }
}

fn parse_mark<T: serde::de::DeserializeOwned>(
    data: &[u8],
    what: &'static str,
    path: &object_store::path::Path,
) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::Invalid {
        what,
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn check_mark(
    version: u32,
    got: Ulid,
    want: Ulid,
    what: &'static str,
    path: &object_store::path::Path,
) -> Result<()> {
    let message = if version != 1 {
        format!("unsupported version {version}")
    } else if got != want {
        format!("id {got} is not the block's")
    } else {
        return Ok(());
    };
    Err(Error::Invalid {
        what,
        path: path.to_string(),
        message,
    })
}

pub(crate) fn write_synced(path: &FsPath, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    f.write_all(data).map_err(|e| Error::io("write", path, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", path, e))
}

pub(crate) fn sync_dir(dir: &FsPath) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", dir, e))
}
