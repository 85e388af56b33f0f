//! The gateway's three in-memory caches, each bounded by a byte budget
//! (moka with a weigher that counts an entry's heap bytes plus a fixed
//! overhead): chunks by block and chunk reference, postings lists by block
//! and label pair, and series (stored labels and chunk metas) by block and
//! series ID. Every lookup counts a hit or a miss.

use std::sync::Arc;

use hearth_model::chunkenc::Encoding;
use hearth_model::Labels;
use hearth_tsdb::block::ChunkMeta;
use moka::sync::Cache;
use ulid::Ulid;

use crate::metrics::{CacheKind, CacheStats, StoreMetrics};
use crate::options::StoreOptions;

/// Bytes counted for an entry on top of its payload: the key, the moka
/// node, the `Arc` headers. An estimate; it keeps many tiny entries from
/// looking free.
const ENTRY_OVERHEAD: usize = 96;

/// A chunk as cached: its encoding and record data (CRC already checked).
#[derive(Debug, Clone)]
pub(crate) struct CachedChunk {
    pub encoding: Encoding,
    pub data: Arc<[u8]>,
}

/// A series as the index stores it: labels without external labels, and
/// every chunk meta.
#[derive(Debug)]
pub(crate) struct CachedSeries {
    pub labels: Labels,
    pub chunks: Vec<ChunkMeta>,
}

type PostingsKey = (Ulid, String, String);

fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes.saturating_add(ENTRY_OVERHEAD)).unwrap_or(u32::MAX)
}

/// The caches of one store, shared by its queries.
#[derive(Clone)]
pub(crate) struct Caches {
    chunks: Cache<(Ulid, u64), CachedChunk>,
    postings: Cache<PostingsKey, Arc<[u64]>>,
    series: Cache<(Ulid, u64), Arc<CachedSeries>>,
    capacities: [u64; 3],
    metrics: StoreMetrics,
}

impl Caches {
    pub fn new(options: &StoreOptions, metrics: StoreMetrics) -> Self {
        let chunks = Cache::builder()
            .max_capacity(options.chunk_cache_bytes)
            .weigher(|_: &(Ulid, u64), c: &CachedChunk| weight(c.data.len()))
            .build();
        let postings = Cache::builder()
            .max_capacity(options.postings_cache_bytes)
            .weigher(|k: &PostingsKey, p: &Arc<[u64]>| weight(k.1.len() + k.2.len() + p.len() * 8))
            .build();
        let series = Cache::builder()
            .max_capacity(options.series_cache_bytes)
            .weigher(|_: &(Ulid, u64), s: &Arc<CachedSeries>| {
                weight(s.labels.byte_size() + s.chunks.len() * std::mem::size_of::<ChunkMeta>())
            })
            .build();
        Self {
            chunks,
            postings,
            series,
            capacities: [
                options.chunk_cache_bytes,
                options.postings_cache_bytes,
                options.series_cache_bytes,
            ],
            metrics,
        }
    }

    fn count<V>(&self, kind: CacheKind, v: Option<V>) -> Option<V> {
        match v {
            Some(_) => self.metrics.cache_hit(kind),
            None => self.metrics.cache_miss(kind),
        }
        v
    }

    pub fn chunk(&self, block: Ulid, chunk_ref: u64) -> Option<CachedChunk> {
        self.count(CacheKind::Chunks, self.chunks.get(&(block, chunk_ref)))
    }

    pub fn put_chunk(&self, block: Ulid, chunk_ref: u64, chunk: CachedChunk) {
        self.chunks.insert((block, chunk_ref), chunk);
    }

    pub fn postings(&self, block: Ulid, name: &str, value: &str) -> Option<Arc<[u64]>> {
        let key = (block, name.to_string(), value.to_string());
        self.count(CacheKind::Postings, self.postings.get(&key))
    }

    pub fn put_postings(&self, block: Ulid, name: &str, value: &str, list: Arc<[u64]>) {
        self.postings
            .insert((block, name.to_string(), value.to_string()), list);
    }

    pub fn series(&self, block: Ulid, id: u64) -> Option<Arc<CachedSeries>> {
        self.count(CacheKind::Series, self.series.get(&(block, id)))
    }

    pub fn put_series(&self, block: Ulid, id: u64, series: Arc<CachedSeries>) {
        self.series.insert((block, id), series);
    }

    /// Publishes the caches' sizes to the gauges (moka keeps them as
    /// atomics: cheap enough after every query).
    pub fn publish_sizes(&self) {
        self.metrics.set_cache_size(
            CacheKind::Chunks,
            self.chunks.weighted_size(),
            self.chunks.entry_count(),
        );
        self.metrics.set_cache_size(
            CacheKind::Postings,
            self.postings.weighted_size(),
            self.postings.entry_count(),
        );
        self.metrics.set_cache_size(
            CacheKind::Series,
            self.series.weighted_size(),
            self.series.entry_count(),
        );
    }

    /// The cache's numbers after its pending evictions ran.
    pub fn stats(&self, kind: CacheKind) -> CacheStats {
        let (bytes, items, capacity) = match kind {
            CacheKind::Chunks => {
                self.chunks.run_pending_tasks();
                (
                    self.chunks.weighted_size(),
                    self.chunks.entry_count(),
                    self.capacities[0],
                )
            }
            CacheKind::Postings => {
                self.postings.run_pending_tasks();
                (
                    self.postings.weighted_size(),
                    self.postings.entry_count(),
                    self.capacities[1],
                )
            }
            CacheKind::Series => {
                self.series.run_pending_tasks();
                (
                    self.series.weighted_size(),
                    self.series.entry_count(),
                    self.capacities[2],
                )
            }
        };
        let (hits, misses) = self.metrics.cache_counts(kind);
        CacheStats {
            hits,
            misses,
            bytes,
            items,
            capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_budget_bounds_the_chunk_cache() {
        let options = StoreOptions {
            chunk_cache_bytes: 10_000,
            ..StoreOptions::default()
        };
        let caches = Caches::new(&options, StoreMetrics::default());
        let block = Ulid::nil();
        for i in 0..200u64 {
            let chunk = CachedChunk {
                encoding: Encoding::Xor,
                data: Arc::from(vec![0u8; 500]),
            };
            caches.put_chunk(block, i, chunk);
        }
        let stats = caches.stats(CacheKind::Chunks);
        assert!(stats.bytes <= 10_000, "{stats:?}");
        assert!(stats.items > 0 && stats.items <= 10_000 / 500, "{stats:?}");
        assert_eq!(stats.capacity, 10_000);
    }

    #[test]
    fn lookups_count_hits_and_misses() {
        let metrics = StoreMetrics::default();
        let caches = Caches::new(&StoreOptions::default(), metrics);
        let block = Ulid::nil();
        assert!(caches.postings(block, "a", "b").is_none());
        caches.put_postings(block, "a", "b", Arc::from(vec![1u64, 2, 3]));
        assert_eq!(&*caches.postings(block, "a", "b").unwrap(), &[1, 2, 3]);
        let stats = caches.stats(CacheKind::Postings);
        assert_eq!((stats.hits, stats.misses, stats.items), (1, 1, 1));
    }
}
