//! Hearth's TSDB: a Prometheus-compatible time-series database.
//!
//! Samples enter through the [`wal`] and the in-memory [`head`]; the head is
//! cut into immutable [`block`]s in Prometheus's on-disk format; blocks are
//! merged by leveled compaction and dropped by retention. [`db::Db`] owns all
//! of it and answers queries over head and blocks.

pub mod block;
pub mod compact;
pub mod db;
pub mod encoding;
pub mod error;
pub mod head;
pub mod postings;
pub mod wal;

pub use error::{Error, Result};
