//! Thanos's StoreAPI (`thanos.Store`) and Info (`thanos.info.Info`) over
//! gRPC, wire compatible with Thanos (specs/storeapi.md).
//!
//! - [`Store`]: what the querier fans out to: a [`Queryable`] that also
//!   answers `Info`. The gRPC client is one; in-process stores can be too.
//! - [`StoreInfo`]: the `Info` answer the querier selects stores by.

use async_trait::async_trait;
use hearth_model::Labels;
use hearth_storage_api::{Queryable, Result};

/// What a StoreAPI server tells the querier about itself (`InfoResponse`,
/// specs/storeapi.md §3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// `ComponentType`: `sidecar`, `store`, `scrape`, `standalone`, `query`, …
    pub component: String,
    /// External label sets, each sorted (one per TSDB or block label set).
    pub label_sets: Vec<Labels>,
    /// Oldest data it may hold (`i64::MAX` when it holds none yet).
    pub min_time: i64,
    /// Newest data it may hold (`i64::MAX` when data keeps arriving).
    pub max_time: i64,
    /// It removes `without_replica_labels` and sorts after the removal.
    pub supports_without_replica_labels: bool,
}

/// A store the querier can fan out to.
#[async_trait]
pub trait Store: Queryable {
    /// The store's current `Info`.
    async fn info(&self) -> Result<StoreInfo>;
}
