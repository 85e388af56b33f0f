//! The store gateway (`hearth store`): serves every block of a bucket
//! through the storage contract, as Thanos's store gateway does
//! (specs/storeapi.md §2–3, specs/tsdb-blocks.md §8).
//!
//! - [`BucketStore`]: the blocks known from the last [`BucketStore::sync`],
//!   answering [`hearth_storage_api::Queryable`] and
//!   [`hearth_storeapi::Store`]. The gRPC server is built around it
//!   elsewhere.
//! - Memory is bounded by [`StoreOptions`], not by the bucket: a block's
//!   index is downloaded to local disk and memory-mapped on the first query
//!   that needs it (and unmapped when idle); chunks are read by range reads;
//!   chunks, postings and series are cached within byte budgets.
//! - Only raw blocks are served; downsampled blocks are skipped by the sync.

mod block;
mod cache;
mod chunks;
pub mod error;
pub mod metrics;
pub mod options;
mod query;
mod store;
mod sync;

pub use error::{Error, Result};
pub use metrics::{CacheStats, StoreStats};
pub use options::StoreOptions;
pub use store::BucketStore;
pub use sync::SyncStats;
