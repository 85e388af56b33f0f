//! [`BucketStore`]: the store gateway's state (the blocks known from the
//! last sync, the caches, the metrics) and its StoreAPI face
//! ([`Queryable`] and [`Store`]). Syncing is in [`crate::sync`], query
//! evaluation in [`crate::query`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_objstore::Bucket;
use hearth_storage_api::{LabelsResult, Queryable, SelectHints, SeriesSet};
use hearth_storeapi::{Store, StoreInfo};
use prometheus_client::registry::Registry;
use ulid::Ulid;

use crate::block::{BucketBlock, LoadContext};
use crate::cache::Caches;
use crate::chunks::{ChunkFetcher, FetchPlan};
use crate::metrics::{CacheKind, FetchKind, StoreMetrics, StoreStats};
use crate::options::StoreOptions;
use crate::{Error, Result};

/// Serves every raw block of a bucket. Cheap to clone; clones share
/// everything.
///
/// Downsampled blocks (resolution > 0) are not served yet: the sync skips
/// them, so only raw data is answered and `max_resolution_window` has
/// nothing to choose from.
#[derive(Clone)]
pub struct BucketStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub bucket: Bucket,
    pub local_dir: PathBuf,
    pub options: StoreOptions,
    pub blocks: parking_lot::RwLock<BTreeMap<Ulid, Arc<BucketBlock>>>,
    pub caches: Caches,
    pub metrics: StoreMetrics,
    /// One sync at a time.
    pub sync_lock: tokio::sync::Mutex<()>,
}

impl BucketStore {
    /// A store over `bucket` keeping index files under `local_dir`
    /// (created if missing). It knows no block until [`BucketStore::sync`].
    pub fn new(bucket: Bucket, local_dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        let local_dir = local_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&local_dir).map_err(Error::io("create dir", &local_dir))?;
        let metrics = StoreMetrics::default();
        let caches = Caches::new(&options, metrics.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                bucket,
                local_dir,
                options,
                blocks: parking_lot::RwLock::new(BTreeMap::new()),
                caches,
                metrics,
                sync_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Registers the `hearth_store_*` metrics.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
    }

    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    pub fn local_dir(&self) -> &Path {
        &self.inner.local_dir
    }

    /// The IDs of the blocks served, sorted.
    pub fn block_ids(&self) -> Vec<Ulid> {
        self.inner.blocks.read().keys().copied().collect()
    }

    /// The metrics as numbers (runs the caches' pending evictions first, so
    /// the sizes are exact).
    pub fn stats(&self) -> StoreStats {
        let m = &self.inner.metrics;
        let c = &self.inner.caches;
        let gauge = |v: i64| u64::try_from(v).unwrap_or(0);
        StoreStats {
            blocks_loaded: gauge(m.blocks_loaded.get()),
            syncs: m.syncs.get(),
            sync_failures: m.sync_failures.get(),
            corrupt_blocks: m.corrupt_blocks.get(),
            index_headers_loaded: gauge(m.index_headers_loaded.get()),
            index_header_downloads: m.index_header_downloads.get(),
            block_query_failures: m.block_query_failures.get(),
            chunk_refetches: m.chunk_refetches.get(),
            chunks_cache: c.stats(CacheKind::Chunks),
            postings_cache: c.stats(CacheKind::Postings),
            series_cache: c.stats(CacheKind::Series),
            fetched_index_bytes: m.fetched_bytes(FetchKind::Index),
            fetched_chunk_bytes: m.fetched_bytes(FetchKind::Chunks),
            fetched_meta_bytes: m.fetched_bytes(FetchKind::Meta),
        }
    }

    /// Unmaps the indexes of blocks not queried for the idle timeout; how
    /// many. Run periodically by [`BucketStore::spawn_sync`].
    pub fn close_idle_index_headers(&self) -> usize {
        let timeout = self.inner.options.index_header_idle_timeout;
        if timeout.is_zero() {
            return 0;
        }
        self.snapshot_blocks()
            .iter()
            .filter(|b| b.close_if_idle(timeout))
            .count()
    }

    /// The blocks served now; queries work on this snapshot while syncs
    /// change the map.
    pub(crate) fn snapshot_blocks(&self) -> Vec<Arc<BucketBlock>> {
        self.inner.blocks.read().values().cloned().collect()
    }

    pub(crate) fn load_context(&self) -> LoadContext<'_> {
        LoadContext {
            bucket: &self.inner.bucket,
            metrics: &self.inner.metrics,
        }
    }

    pub(crate) fn chunk_fetcher(&self) -> ChunkFetcher<'_> {
        ChunkFetcher {
            bucket: &self.inner.bucket,
            caches: &self.inner.caches,
            metrics: &self.inner.metrics,
            plan: FetchPlan::from_options(&self.inner.options),
            concurrency: self.inner.options.fetch_concurrency,
        }
    }

    /// The `Info` answer: the distinct external label sets and the time
    /// range of the blocks served (`min_time = i64::MAX`, `max_time =
    /// i64::MIN` without blocks, so the querier never selects the store).
    pub fn store_info(&self) -> StoreInfo {
        let blocks = self.snapshot_blocks();
        // Blocks without external labels add no set: an empty set would
        // say nothing a missing one does not.
        let label_sets: BTreeSet<Labels> = blocks
            .iter()
            .map(|b| b.external_labels.clone())
            .filter(|l| !l.is_empty())
            .collect();
        let min_time = blocks.iter().map(|b| b.meta.min_time).min();
        // meta.json's maxTime is exclusive; Info's is inclusive.
        let max_time = blocks
            .iter()
            .map(|b| b.meta.max_time.saturating_sub(1))
            .max();
        StoreInfo {
            component: "store".to_string(),
            label_sets: label_sets.into_iter().collect(),
            min_time: min_time.unwrap_or(i64::MAX),
            max_time: max_time.unwrap_or(i64::MIN),
            supports_without_replica_labels: false,
        }
    }
}

#[async_trait]
impl Queryable for BucketStore {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
    ) -> hearth_storage_api::Result<SeriesSet> {
        Ok(self.select_series(matchers, hints).await?)
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        Ok(self.select_label_names(matchers, mint, maxt).await?)
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        Ok(self.select_label_values(name, matchers, mint, maxt).await?)
    }
}

#[async_trait]
impl Store for BucketStore {
    async fn info(&self) -> hearth_storage_api::Result<StoreInfo> {
        Ok(self.store_info())
    }
}
