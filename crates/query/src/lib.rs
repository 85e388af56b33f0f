//! The querier's fan-out over stores (`hearth query`), in the shape of
//! Thanos's querier (specs/storeapi.md §6, §7).
//!
//! - [`endpoints`]: the [`EndpointSet`] of stores, from flags, files and DNS,
//!   health-checked through `Info`.
//! - [`proxy`]: the [`Proxy`] `Queryable`/`Store` that selects stores per
//!   request, calls them concurrently and merges their answers, with
//!   partial-response and deduplication [`QueryOptions`].
//! - [`merge`]: replica-label removal and the k-way merge of sorted series.
//! - [`dedup`]: replica deduplication (penalty, chain) of merged series.

pub mod dedup;
pub mod endpoints;
pub mod error;
pub mod merge;
pub mod proxy;

pub use dedup::DedupFunc;
pub use endpoints::{ActiveStore, EndpointConfig, EndpointSet, EndpointStatus, StoreFactory};
pub use error::{Error, Result};
pub use proxy::{Proxy, ProxyQuery, QueryOptions};
