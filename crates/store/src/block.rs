//! One block of the bucket as the gateway serves it: its `meta.json` and
//! external labels (known from the sync), and its index, loaded lazily.
//!
//! The first query that needs the block lists its chunk segments (checking
//! them against `meta.json`), downloads its `index` to
//! `<local_dir>/<ULID>/index` (temporary file, then rename) unless a valid
//! copy is already there, and maps it. The mapping is dropped after an idle
//! timeout; the file stays for the next query. A block whose files are
//! damaged is remembered as failed until the next sync, so queries do not
//! download a broken index again and again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_model::{Labels, Timestamp};
use hearth_objstore::{paths, Bucket};
use hearth_tsdb::block::{BlockMeta, IndexReader, CHUNKS_DIRNAME, INDEX_FILENAME};
use prometheus_client::metrics::gauge::Gauge;
use ulid::Ulid;

use crate::chunks::Segment;
use crate::metrics::{FetchKind, StoreMetrics};
use crate::{Error, Result};

/// A block's index and segments, ready for queries. Dropping the last
/// reference unmaps the index.
#[derive(Debug)]
pub(crate) struct LoadedBlock {
    pub index: IndexReader,
    pub segments: Vec<Segment>,
    _mapped: GaugeGuard,
}

/// Counts one mapped index in a gauge for as long as it lives.
#[derive(Debug)]
struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Debug)]
enum IndexState {
    Unloaded,
    Loaded(Arc<LoadedBlock>),
    /// The block's files are damaged (the reason); cleared by the next sync.
    Failed(String),
}

/// What loading a block needs from the store.
pub(crate) struct LoadContext<'a> {
    pub bucket: &'a Bucket,
    pub metrics: &'a StoreMetrics,
}

/// A block known from the bucket.
#[derive(Debug)]
pub(crate) struct BucketBlock {
    pub meta: BlockMeta,
    /// `thanos.labels`, added to every series of the block.
    pub external_labels: Labels,
    /// `<local_dir>/<ULID>`, where the index is kept.
    dir: PathBuf,
    state: tokio::sync::Mutex<IndexState>,
    last_used: parking_lot::Mutex<Instant>,
}

impl BucketBlock {
    pub fn new(meta: BlockMeta, local_dir: &FsPath) -> Self {
        let external_labels = meta
            .thanos
            .as_ref()
            .map(|t| Labels::new(t.labels.iter()))
            .unwrap_or_default();
        Self {
            dir: local_dir.join(meta.ulid.to_string()),
            meta,
            external_labels,
            state: tokio::sync::Mutex::new(IndexState::Unloaded),
            last_used: parking_lot::Mutex::new(Instant::now()),
        }
    }

    pub fn id(&self) -> Ulid {
        self.meta.ulid
    }

    /// Whether the block may hold samples in `[mint, maxt]` (its `maxTime`
    /// is exclusive).
    pub fn overlaps(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        self.meta.min_time <= maxt && self.meta.max_time > mint
    }

    /// The block's index and segments, loading them on first use.
    pub async fn open(&self, ctx: &LoadContext<'_>) -> Result<Arc<LoadedBlock>> {
        *self.last_used.lock() = Instant::now();
        let mut state = self.state.lock().await;
        match &*state {
            IndexState::Loaded(l) => return Ok(Arc::clone(l)),
            IndexState::Failed(reason) => return Err(Error::corrupt(self.id(), reason.clone())),
            IndexState::Unloaded => {}
        }
        match self.load(ctx).await {
            Ok(l) => {
                let l = Arc::new(l);
                *state = IndexState::Loaded(Arc::clone(&l));
                Ok(l)
            }
            Err(e) => {
                if let Error::CorruptBlock { reason, .. } = &e {
                    ctx.metrics.corrupt_blocks.inc();
                    tracing::error!(block = %self.id(), error = %e, "skipping corrupt block");
                    *state = IndexState::Failed(reason.clone());
                } else {
                    tracing::warn!(block = %self.id(), error = %e, "cannot load block, retrying at the next query");
                }
                Err(e)
            }
        }
    }

    /// Drops the index mapping when no query holds it and the block was
    /// not used for `timeout`; whether it did.
    pub fn close_if_idle(&self, timeout: Duration) -> bool {
        let Ok(mut state) = self.state.try_lock() else {
            return false;
        };
        let idle = self.last_used.lock().elapsed() >= timeout;
        if let IndexState::Loaded(l) = &*state {
            if idle && Arc::strong_count(l) == 1 {
                *state = IndexState::Unloaded;
                return true;
            }
        }
        false
    }

    /// Forgets an earlier load failure, so the next query tries again.
    pub fn clear_failure(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            if matches!(*state, IndexState::Failed(_)) {
                *state = IndexState::Unloaded;
            }
        }
    }

    /// Unmaps the index (queries holding it keep it until they finish).
    pub fn unload(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            *state = IndexState::Unloaded;
        }
    }

    async fn load(&self, ctx: &LoadContext<'_>) -> Result<LoadedBlock> {
        let segments = self.list_segments(ctx.bucket).await?;
        let index = self.local_index(ctx).await?;
        Ok(LoadedBlock {
            index,
            segments,
            _mapped: GaugeGuard::new(ctx.metrics.index_headers_loaded.clone()),
        })
    }

    /// The block's segment objects in reference order: `thanos.segment_files`
    /// by position when present (specs/tsdb-blocks.md §8.2), else the listed
    /// numeric names sorted. Each must exist, with the size `thanos.files`
    /// gives it, if any.
    async fn list_segments(&self, bucket: &Bucket) -> Result<Vec<Segment>> {
        let id = self.id();
        let prefix = paths::chunks_dir(id);
        let objects = bucket
            .list(Some(&prefix))
            .await
            .map_err(Error::bucket(format!("list chunks of block {id}")))?;
        let mut listed: BTreeMap<String, u64> = BTreeMap::new();
        for o in objects {
            let direct_child = o.location.prefix_match(&prefix).map(|p| p.count()) == Some(1);
            let Some(name) = o.location.filename() else {
                continue;
            };
            if direct_child && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                listed.insert(name.to_string(), o.size);
            }
        }
        let thanos = self.meta.thanos.as_ref();
        let names: Vec<String> = match thanos.map(|t| &t.segment_files) {
            Some(files) if !files.is_empty() => files.clone(),
            _ => listed.keys().cloned().collect(),
        };
        let prefix_name = format!("{CHUNKS_DIRNAME}/");
        let expected: HashMap<&str, i64> = thanos
            .map(|t| t.files.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| Some((f.rel_path.strip_prefix(&prefix_name)?, f.size_bytes)))
            .collect();
        if names.is_empty() {
            return Err(Error::corrupt(id, "no chunk segments in the bucket"));
        }
        for name in expected.keys() {
            if !listed.contains_key(*name) {
                return Err(Error::corrupt(
                    id,
                    format!("missing chunk segment {CHUNKS_DIRNAME}/{name}"),
                ));
            }
        }
        let mut segments = Vec::with_capacity(names.len());
        for name in names {
            let size = *listed.get(&name).ok_or_else(|| {
                Error::corrupt(id, format!("missing chunk segment {CHUNKS_DIRNAME}/{name}"))
            })?;
            if let Some(&want) = expected.get(name.as_str()) {
                if want > 0 && u64::try_from(want).ok() != Some(size) {
                    return Err(Error::corrupt(
                        id,
                        format!("chunk segment {CHUNKS_DIRNAME}/{name} has {size} bytes, meta.json lists {want}"),
                    ));
                }
            }
            segments.push(Segment {
                path: paths::block_file(id, &format!("{CHUNKS_DIRNAME}/{name}")),
                size,
            });
        }
        Ok(segments)
    }

    /// The size `thanos.files` gives the index, if any.
    fn expected_index_size(&self) -> Option<u64> {
        self.meta
            .thanos
            .as_ref()?
            .files
            .iter()
            .find(|f| f.rel_path == INDEX_FILENAME)
            .and_then(|f| u64::try_from(f.size_bytes).ok())
            .filter(|&s| s > 0)
    }

    /// Maps the local copy of the index, downloading it first when there is
    /// no valid copy.
    async fn local_index(&self, ctx: &LoadContext<'_>) -> Result<IndexReader> {
        let id = self.id();
        let path = self.dir.join(INDEX_FILENAME);
        let expected = self.expected_index_size();
        if path.exists() {
            let size = std::fs::metadata(&path).map(|m| m.len()).ok();
            if expected.is_none() || size == expected {
                match open_index(id, path.clone()).await {
                    Ok(r) => return Ok(r),
                    Err(e) => {
                        tracing::warn!(block = %id, error = %e, "local index copy unreadable, downloading it again")
                    }
                }
            } else {
                tracing::warn!(block = %id, ?size, ?expected, "local index copy has the wrong size, downloading it again");
            }
            remove_file(&path)?;
        }
        std::fs::create_dir_all(&self.dir).map_err(Error::io("create dir", &self.dir))?;
        let tmp = self.dir.join(format!("{INDEX_FILENAME}.tmp"));
        let size = ctx
            .bucket
            .download_file(&paths::index(id), &tmp)
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    Error::corrupt(id, "no index in the bucket")
                } else {
                    Error::bucket(format!("download index of block {id}"))(e)
                }
            })?;
        ctx.metrics.fetched(FetchKind::Index, size);
        ctx.metrics.index_header_downloads.inc();
        std::fs::rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
        sync_dir(&self.dir)?;
        match open_index(id, path.clone()).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // A broken copy must not be taken for a good one later.
                remove_file(&path)?;
                Err(e)
            }
        }
    }

    /// Removes the block's local directory (best effort: it is only a
    /// cache, logged when it fails).
    pub fn remove_local_files(&self) {
        remove_local_dir(&self.dir);
    }
}

/// Removes a local block directory, logging (not failing) on error.
pub(crate) fn remove_local_dir(dir: &FsPath) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "remove local block files"),
    }
}

fn remove_file(path: &FsPath) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path)(e)),
    }
}

fn sync_dir(dir: &FsPath) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync dir", dir))
}

/// Maps and parses an index off the async threads: parsing reads the
/// symbol and postings offset tables.
async fn open_index(id: Ulid, path: PathBuf) -> Result<IndexReader> {
    tokio::task::spawn_blocking(move || IndexReader::open(&path))
        .await
        .map_err(|e| Error::Internal(format!("open index of block {id}: {e}")))?
        .map_err(|e| Error::from_tsdb(id, e))
}
