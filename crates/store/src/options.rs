//! The store gateway's tuning knobs, with Thanos's defaults where Thanos has
//! the same knob. Every byte budget here is what bounds the gateway's
//! memory: nothing grows with the bucket's size.

use std::time::Duration;

/// Options of a [`crate::BucketStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Blocks whose `deletion-mark.json` is older than this are no longer
    /// served and their local files are removed (Thanos
    /// `--ignore-deletion-marks-delay`, 24h). The compactor deletes marked
    /// blocks only after its longer `--delete-delay`, so queries in flight
    /// never lose a block under them.
    pub ignore_deletion_marks_delay: Duration,
    /// A block's mmapped index is closed after this long without a query
    /// (Thanos `--store.index-header-lazy-reader-idle-timeout`, 5m). The
    /// file stays on disk, so reopening costs no download. Zero: never close.
    pub index_header_idle_timeout: Duration,
    /// Byte budget of the chunk cache.
    pub chunk_cache_bytes: u64,
    /// Byte budget of the postings cache (per block and label pair).
    pub postings_cache_bytes: u64,
    /// Byte budget of the series cache (labels and chunk metas per block
    /// and series).
    pub series_cache_bytes: u64,
    /// Chunks of one segment closer than this are fetched with one range
    /// read (Thanos's chunk partitioner gap, 512 KiB): fewer requests for a
    /// few wasted bytes.
    pub chunk_fetch_gap_bytes: u64,
    /// A chunk's length is only known once its record is read; this many
    /// bytes are read for the last chunk of a range, and the chunk is
    /// fetched again when longer (Thanos `EstimatedMaxChunkSize`, 16000).
    pub chunk_size_estimate: u64,
    /// No single range read is longer than this (unless one chunk is), so
    /// the bytes in flight are at most this times `fetch_concurrency` per
    /// block.
    pub max_fetch_range_bytes: u64,
    /// Concurrent range reads per block and query.
    pub fetch_concurrency: usize,
    /// Blocks a query works on concurrently.
    pub query_concurrency: usize,
    /// Concurrent `meta.json`/marker reads during a sync (Thanos
    /// `--block-meta-fetch-concurrency`, 32).
    pub sync_concurrency: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            ignore_deletion_marks_delay: Duration::from_secs(24 * 3600),
            index_header_idle_timeout: Duration::from_secs(5 * 60),
            chunk_cache_bytes: 256 << 20,
            postings_cache_bytes: 128 << 20,
            series_cache_bytes: 128 << 20,
            chunk_fetch_gap_bytes: 512 << 10,
            chunk_size_estimate: 16_000,
            max_fetch_range_bytes: 16 << 20,
            fetch_concurrency: 4,
            query_concurrency: 8,
            sync_concurrency: 32,
        }
    }
}
