//! Keeping the set of served blocks in step with the bucket
//! (specs/tsdb-blocks.md §8.1, §8.3, §8.5).
//!
//! A sync lists the top-level prefixes that are ULIDs and decides for each:
//! a prefix without `meta.json` is a partial upload (or a block being
//! deleted) and is not served; a `meta.json` that does not parse is a
//! corrupt block, logged, counted and skipped; a downsampled block is
//! skipped (raw data only, for now); a block whose deletion mark is older
//! than `ignore_deletion_marks_delay` is dropped. Blocks no longer served
//! lose their local files. A failure to read one block's objects keeps the
//! block as it was (or leaves a new one out) until the next sync.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hearth_objstore::paths;
use hearth_tsdb::block::BlockMeta;
use ulid::Ulid;

use crate::block::{remove_local_dir, BucketBlock};
use crate::metrics::FetchKind;
use crate::store::BucketStore;
use crate::{Error, Result};

/// What a sync found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Blocks served after the sync.
    pub blocks: usize,
    pub added: usize,
    pub removed: usize,
    /// Prefixes without `meta.json`.
    pub partial: usize,
    /// Blocks dropped for a deletion mark older than the delay.
    pub deleted: usize,
    /// Downsampled blocks, not served.
    pub downsampled: usize,
    /// Blocks whose `meta.json` is damaged.
    pub corrupt: usize,
    /// Blocks whose objects could not be read this time.
    pub failed: usize,
}

/// The sync's decision on one prefix.
enum Verdict {
    Serve(Arc<BucketBlock>),
    Partial,
    Deleted,
    Downsampled,
    Corrupt,
    /// The bucket failed; keep the block as known before, if it was.
    Failed(Option<Arc<BucketBlock>>),
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl BucketStore {
    /// Brings the served blocks in line with the bucket. Fails only when the
    /// bucket cannot be listed (the blocks served stay as they were);
    /// per-block failures are counted in the stats and the failure metric.
    pub async fn sync(&self) -> Result<SyncStats> {
        let _one_at_a_time = self.inner.sync_lock.lock().await;
        self.inner.metrics.syncs.inc();
        let result = self.sync_blocks().await;
        match &result {
            Ok(stats) if stats.failed > 0 => self.inner.metrics.sync_failures.inc(),
            Ok(_) => 0,
            Err(e) => {
                tracing::warn!(error = %e, "block sync failed");
                self.inner.metrics.sync_failures.inc()
            }
        };
        result
    }

    async fn sync_blocks(&self) -> Result<SyncStats> {
        let inner = &self.inner;
        let dirs = inner
            .bucket
            .list_dirs(None)
            .await
            .map_err(Error::bucket("list blocks"))?;
        let ids: Vec<Ulid> = dirs
            .iter()
            .filter_map(|d| paths::parse_block_id(d.as_ref()))
            .collect();
        let known = inner.blocks.read().clone();
        let verdicts: Vec<(Ulid, Verdict)> = futures::stream::iter(ids)
            .map(|id| {
                let known = known.get(&id).cloned();
                async move { (id, self.inspect(id, known).await) }
            })
            .buffer_unordered(inner.options.sync_concurrency.max(1))
            .collect()
            .await;

        let mut stats = SyncStats::default();
        let mut served: BTreeMap<Ulid, Arc<BucketBlock>> = BTreeMap::new();
        for (id, verdict) in verdicts {
            match verdict {
                Verdict::Serve(b) => {
                    served.insert(id, b);
                }
                Verdict::Failed(b) => {
                    stats.failed += 1;
                    if let Some(b) = b {
                        served.insert(id, b);
                    }
                }
                Verdict::Partial => stats.partial += 1,
                Verdict::Deleted => stats.deleted += 1,
                Verdict::Downsampled => stats.downsampled += 1,
                Verdict::Corrupt => stats.corrupt += 1,
            }
        }
        stats.added = served.keys().filter(|id| !known.contains_key(id)).count();
        for (id, b) in &known {
            if !served.contains_key(id) {
                stats.removed += 1;
                tracing::info!(block = %id, "block no longer served");
                b.unload();
                b.remove_local_files();
            }
        }
        for b in served.values() {
            b.clear_failure();
        }
        stats.blocks = served.len();
        inner
            .metrics
            .blocks_loaded
            .set(i64::try_from(served.len()).unwrap_or(i64::MAX));
        self.remove_stray_local_dirs(&served);
        *inner.blocks.write() = served;
        Ok(stats)
    }

    /// Decides what to do with prefix `id`; `known` is the block served
    /// before this sync, if any (its `meta.json` is immutable, so only its
    /// presence is checked again).
    async fn inspect(&self, id: Ulid, known: Option<Arc<BucketBlock>>) -> Verdict {
        let inner = &self.inner;
        let meta_path = paths::meta(id);
        let was_known = known.is_some();
        let block = match known {
            Some(b) => match inner.bucket.exists(&meta_path).await {
                Ok(true) => b,
                Ok(false) => return Verdict::Partial,
                Err(e) => {
                    tracing::warn!(block = %id, error = %e, "check meta.json");
                    return Verdict::Failed(Some(b));
                }
            },
            None => {
                let data = match inner.bucket.get_opt(&meta_path).await {
                    Ok(Some(data)) => data,
                    Ok(None) => return Verdict::Partial,
                    Err(e) => {
                        tracing::warn!(block = %id, error = %e, "read meta.json");
                        return Verdict::Failed(None);
                    }
                };
                inner.metrics.fetched(FetchKind::Meta, data.len() as u64);
                match parse_meta(id, &data) {
                    Ok(meta) => Arc::new(BucketBlock::new(meta, &inner.local_dir)),
                    Err(e) => {
                        inner.metrics.corrupt_blocks.inc();
                        tracing::error!(block = %id, error = %e, "skipping block with a damaged meta.json");
                        return Verdict::Corrupt;
                    }
                }
            }
        };
        let resolution = block
            .meta
            .thanos
            .as_ref()
            .map_or(0, |t| t.downsample.resolution);
        if resolution != 0 {
            tracing::debug!(block = %id, resolution, "skipping downsampled block: only raw blocks are served");
            return Verdict::Downsampled;
        }
        match inner.bucket.read_deletion_mark(id).await {
            Ok(Some(mark)) => {
                let age_ms = now_millis().saturating_sub(mark.deletion_time.saturating_mul(1000));
                let delay = inner.options.ignore_deletion_marks_delay;
                if age_ms >= i64::try_from(delay.as_millis()).unwrap_or(i64::MAX) {
                    tracing::info!(block = %id, "dropping block marked for deletion");
                    return Verdict::Deleted;
                }
            }
            Ok(None) => {}
            Err(e @ hearth_objstore::Error::Invalid { .. }) => {
                // As Thanos: a damaged mark is ignored, the block stays.
                tracing::warn!(block = %id, error = %e, "ignoring damaged deletion mark");
            }
            Err(e) => {
                tracing::warn!(block = %id, error = %e, "read deletion mark");
                return Verdict::Failed(was_known.then_some(block));
            }
        }
        Verdict::Serve(block)
    }

    /// Removes local block directories that belong to no served block
    /// (left from before a restart, or from blocks dropped meanwhile).
    fn remove_stray_local_dirs(&self, served: &BTreeMap<Ulid, Arc<BucketBlock>>) {
        let dir = &self.inner.local_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "list local block dirs");
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(hearth_tsdb::block::parse_ulid_strict)
            else {
                continue;
            };
            if !served.contains_key(&id) && entry.path().is_dir() {
                tracing::info!(block = %id, "removing local files of a block not served");
                remove_local_dir(&entry.path());
            }
        }
    }

    /// Runs [`BucketStore::sync`] every `interval` (the first one interval
    /// from now: call `sync` once before serving) and unmaps idle indexes,
    /// until `shutdown` completes (e.g. `token.cancelled_owned()`). A
    /// failed sync is logged and retried at the next tick.
    pub fn spawn_sync(
        &self,
        interval: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        let interval = interval.max(Duration::from_millis(10));
        let idle_timeout = store.inner.options.index_header_idle_timeout;
        let idle_every = if idle_timeout.is_zero() {
            interval
        } else {
            (idle_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(60))
        };
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let start = tokio::time::Instant::now();
            let mut sync_tick = tokio::time::interval_at(start + interval, interval);
            sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut idle_tick = tokio::time::interval_at(start + idle_every, idle_every);
            idle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = sync_tick.tick() => {
                        tokio::select! {
                            _ = &mut shutdown => break,
                            r = store.sync() => {
                                if let Ok(stats) = r {
                                    tracing::debug!(?stats, "block sync done");
                                }
                            }
                        }
                    }
                    _ = idle_tick.tick() => {
                        let closed = store.close_idle_index_headers();
                        if closed > 0 {
                            tracing::debug!(closed, "closed idle block indexes");
                        }
                    }
                }
            }
        })
    }
}

/// Parses a bucket `meta.json` of block `id`: version 1, Thanos section
/// version 0 or 1, the same ULID as its prefix.
fn parse_meta(id: Ulid, data: &[u8]) -> std::result::Result<BlockMeta, String> {
    let meta = BlockMeta::from_json(data).map_err(|e| e.to_string())?;
    if meta.ulid != id {
        return Err(format!("meta.json names block {}", meta.ulid));
    }
    if let Some(v) = meta.thanos.as_ref().map(|t| t.version).filter(|&v| v > 1) {
        return Err(format!("unsupported thanos section version {v}"));
    }
    Ok(meta)
}
