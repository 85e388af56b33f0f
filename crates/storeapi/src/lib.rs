//! Thanos's StoreAPI (`thanos.Store`) and Info (`thanos.info.Info`) over
//! gRPC, wire compatible with Thanos (specs/storeapi.md).
//!
//! - [`Store`]: what the querier fans out to: a [`Queryable`] that also
//!   answers `Info`. The gRPC client is one; in-process stores can be too.
//! - [`StoreInfo`]: the `Info` answer the querier selects stores by.
//! - [`server::StoreServer`]: serves any [`Queryable`] plus external labels
//!   as `thanos.Store` and `thanos.info.Info` ([`server::serve`]).
//! - [`client::GrpcStore`]: a remote StoreAPI (Hearth's or Thanos's) as a
//!   [`Store`].
//! - [`acceptance`]: the suite every StoreAPI implementation (TSDB, store
//!   gateway, sidecar) runs against its own server, over the wire.
//! - [`external_labels`]: the label rewriting of specs/storeapi.md §3.2 and
//!   §3.4, shared by the server and the [`Store`] defaults.

pub mod acceptance;
pub mod client;
pub mod convert;
pub mod error;
pub mod external_labels;
pub mod server;

pub use client::GrpcStore;
pub use error::Error;
pub use server::{serve, InfoProvider, StoreServer};

use async_trait::async_trait;
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_storage_api::{LabelsResult, Queryable, Result, SelectHints, SeriesSet};

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
///
/// The `*_without` methods are the replica-label-aware forms the querier
/// uses when deduplicating (specs/storeapi.md §3.4, §7.4). Their defaults
/// do the removal on this side of the wire; a store that can do it itself
/// (the gRPC client, when the server announces support) overrides them.
#[async_trait]
pub trait Store: Queryable {
    /// The store's current `Info`.
    async fn info(&self) -> Result<StoreInfo>;

    /// [`Queryable::select`] with the labels named in
    /// `without_replica_labels` removed from every series, sorted by the
    /// labels after the removal (stable: series that became equal stay in
    /// their former order, adjacent, and are not merged).
    async fn select_without(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
        without_replica_labels: &[String],
    ) -> Result<SeriesSet> {
        let mut set = self.select(matchers, hints).await?;
        external_labels::remove_labels_and_sort(&mut set.series, without_replica_labels);
        Ok(set)
    }

    /// [`Queryable::label_names`] without the names in
    /// `without_replica_labels`.
    async fn label_names_without(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        without_replica_labels: &[String],
    ) -> Result<LabelsResult> {
        let mut names = self.label_names(matchers, mint, maxt).await?;
        names.values.retain(|n| !without_replica_labels.contains(n));
        Ok(names)
    }

    /// [`Queryable::label_values`], empty for a name in
    /// `without_replica_labels` (those labels are gone from every series).
    async fn label_values_without(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        without_replica_labels: &[String],
    ) -> Result<LabelsResult> {
        if without_replica_labels.iter().any(|n| n == name) {
            return Ok(LabelsResult::default());
        }
        self.label_values(name, matchers, mint, maxt).await
    }
}
