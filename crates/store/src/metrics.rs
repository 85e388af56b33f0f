//! The store gateway's self-metrics (`hearth_store_*`): blocks served, sync
//! outcomes, corrupt blocks, index headers mapped, cache effectiveness and
//! bytes read from the bucket. [`StoreStats`] is the same numbers as a
//! snapshot, for tests and status pages.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The caches, as the `cache` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheKind {
    Chunks,
    Postings,
    Series,
}

impl CacheKind {
    pub const ALL: [CacheKind; 3] = [CacheKind::Chunks, CacheKind::Postings, CacheKind::Series];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Chunks => "chunks",
            CacheKind::Postings => "postings",
            CacheKind::Series => "series",
        }
    }
}

/// What a bucket read was for, as the `kind` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchKind {
    Meta,
    Index,
    Chunks,
}

impl FetchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchKind::Meta => "meta",
            FetchKind::Index => "index",
            FetchKind::Chunks => "chunks",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLabels {
    cache: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FetchLabels {
    kind: &'static str,
}

/// Every metric of a store. Clones share the values.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreMetrics {
    pub blocks_loaded: Gauge,
    pub syncs: Counter,
    pub sync_failures: Counter,
    pub corrupt_blocks: Counter,
    pub index_headers_loaded: Gauge,
    pub index_header_downloads: Counter,
    pub block_query_failures: Counter,
    pub chunk_refetches: Counter,
    cache_hits: Family<CacheLabels, Counter>,
    cache_misses: Family<CacheLabels, Counter>,
    cache_bytes: Family<CacheLabels, Gauge>,
    cache_items: Family<CacheLabels, Gauge>,
    fetched_bytes: Family<FetchLabels, Counter>,
}

impl StoreMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("hearth_store");
        r.register(
            "blocks_loaded",
            "Blocks currently served",
            self.blocks_loaded.clone(),
        );
        r.register(
            "block_syncs",
            "Syncs of the block list with the bucket",
            self.syncs.clone(),
        );
        r.register(
            "block_sync_failures",
            "Syncs that failed, entirely or for some blocks",
            self.sync_failures.clone(),
        );
        r.register(
            "corrupt_blocks",
            "Times a block was skipped because its meta.json, index or chunks are damaged",
            self.corrupt_blocks.clone(),
        );
        r.register(
            "index_headers_loaded",
            "Block indexes currently mapped from local disk",
            self.index_headers_loaded.clone(),
        );
        r.register(
            "index_header_downloads",
            "Block indexes downloaded from the bucket to local disk",
            self.index_header_downloads.clone(),
        );
        r.register(
            "block_query_failures",
            "Blocks left out of a query's answer (reported as a warning)",
            self.block_query_failures.clone(),
        );
        r.register(
            "chunk_refetches",
            "Chunks read again because they were longer than the size estimate",
            self.chunk_refetches.clone(),
        );
        r.register(
            "cache_hits",
            "Cache lookups that found the item, by cache",
            self.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Cache lookups that did not find the item, by cache",
            self.cache_misses.clone(),
        );
        r.register(
            "cache_bytes",
            "Bytes held by the cache (weighed), by cache",
            self.cache_bytes.clone(),
        );
        r.register(
            "cache_items",
            "Items held by the cache, by cache",
            self.cache_items.clone(),
        );
        r.register(
            "bucket_fetched_bytes",
            "Bytes read from the bucket, by what they were for",
            self.fetched_bytes.clone(),
        );
    }

    fn cache_labels(kind: CacheKind) -> CacheLabels {
        CacheLabels {
            cache: kind.as_str(),
        }
    }

    pub fn cache_hit(&self, kind: CacheKind) {
        self.cache_hits
            .get_or_create(&Self::cache_labels(kind))
            .inc();
    }

    pub fn cache_miss(&self, kind: CacheKind) {
        self.cache_misses
            .get_or_create(&Self::cache_labels(kind))
            .inc();
    }

    pub fn set_cache_size(&self, kind: CacheKind, bytes: u64, items: u64) {
        let l = Self::cache_labels(kind);
        self.cache_bytes
            .get_or_create(&l)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.cache_items
            .get_or_create(&l)
            .set(i64::try_from(items).unwrap_or(i64::MAX));
    }

    pub fn fetched(&self, kind: FetchKind, bytes: u64) {
        self.fetched_bytes
            .get_or_create(&FetchLabels {
                kind: kind.as_str(),
            })
            .inc_by(bytes);
    }

    pub fn cache_counts(&self, kind: CacheKind) -> (u64, u64) {
        let l = Self::cache_labels(kind);
        (
            self.cache_hits.get_or_create(&l).get(),
            self.cache_misses.get_or_create(&l).get(),
        )
    }

    pub fn fetched_bytes(&self, kind: FetchKind) -> u64 {
        self.fetched_bytes
            .get_or_create(&FetchLabels {
                kind: kind.as_str(),
            })
            .get()
    }
}

/// One cache's numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Weighed bytes held, after pending evictions ran.
    pub bytes: u64,
    pub items: u64,
    /// The configured budget.
    pub capacity: u64,
}

/// A snapshot of a store's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub blocks_loaded: u64,
    pub syncs: u64,
    pub sync_failures: u64,
    pub corrupt_blocks: u64,
    pub index_headers_loaded: u64,
    pub index_header_downloads: u64,
    pub block_query_failures: u64,
    pub chunk_refetches: u64,
    pub chunks_cache: CacheStats,
    pub postings_cache: CacheStats,
    pub series_cache: CacheStats,
    pub fetched_index_bytes: u64,
    pub fetched_chunk_bytes: u64,
    pub fetched_meta_bytes: u64,
}
