//! Object storage for Hearth, in Thanos's bucket layout
//! (specs/tsdb-blocks.md §8).
//!
//! - [`config`]: the objstore YAML (`type: S3` / `FILESYSTEM`).
//! - [`Bucket`]: the `object_store` client behind retries with backoff,
//!   per-operation counters and typed block [`paths`].
//! - [`block`]: block upload (chunks, index, `meta.json` last, with its
//!   `thanos` section), download, listing, marker files and deletion.
//! - [`shipper`]: Thanos's shipper, which uploads each completed local
//!   block once and records it in `thanos.shipper.json`.

pub mod block;
pub mod bucket;
pub mod config;
pub mod error;
pub mod meta;
pub mod metrics;
pub mod paths;
pub mod shipper;

pub use block::{DeletionMark, NoCompactMark};
pub use bucket::{is_transient, Bucket, RetryPolicy};
pub use config::BucketConfig;
pub use error::{Error, Result};
pub use meta::BlockMetaSummary;
pub use metrics::{BucketMetrics, Operation};
pub use shipper::{Shipper, ShipperState, SyncStats};

/// Re-exported so that users can build stores and wrappers.
pub use object_store;
