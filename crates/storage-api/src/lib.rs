//! The storage contract: what the PromQL engine, the HTTP API and StoreAPI
//! read through, whatever holds the data (a local TSDB, a bucket, a fan-out).
//!
//! A [`Queryable`] answers `select` with series sorted by labels, each with
//! its chunks in time order (chunks may overlap when data came from several
//! blocks; [`ChunkSamples`] merges them), plus label names and values.

pub mod error;
pub mod series;

pub use error::{Error, Result};
pub use series::{ChunkEncoder, ChunkSamples, Series, SeriesChunk};

use async_trait::async_trait;
use hearth_model::{Labels, Matcher, Sample, Timestamp};

/// What a select asks for beyond the matchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectHints {
    /// Inclusive lower bound of sample timestamps.
    pub mint: Timestamp,
    /// Inclusive upper bound of sample timestamps.
    pub maxt: Timestamp,
    /// Only labels are needed (e.g. `/api/v1/series`): chunks may be omitted.
    pub skip_chunks: bool,
    /// Stop after this many series (0 = no limit).
    pub limit: usize,
    /// The PromQL function directly around the selector (`rate`, …), when
    /// there is one: the querier adjusts counters across replicas only
    /// under `rate`, `irate`, `increase` and `resets`.
    pub func: Option<&'static str>,
}

impl SelectHints {
    pub fn new(mint: Timestamp, maxt: Timestamp) -> Self {
        Self {
            mint,
            maxt,
            skip_chunks: false,
            limit: 0,
            func: None,
        }
    }

    pub fn series_only(mut self) -> Self {
        self.skip_chunks = true;
        self
    }
}

/// The answer to a select: sorted series and any warnings.
#[derive(Debug, Default, Clone)]
pub struct SeriesSet {
    pub series: Vec<Series>,
    pub warnings: Vec<String>,
}

/// Label names or values with any warnings.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LabelsResult {
    pub values: Vec<String>,
    pub warnings: Vec<String>,
}

/// Something that can be queried for series over a time range.
#[async_trait]
pub trait Queryable: Send + Sync {
    /// Series matching every matcher with samples in `[hints.mint, hints.maxt]`,
    /// sorted by labels. An empty matcher list is an error for the caller
    /// to prevent, not for the store to guess.
    async fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<SeriesSet>;

    /// Label names of series matching `matchers` (all series when empty) in
    /// the range, sorted and unique.
    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult>;

    /// Values of label `name` over series matching `matchers` in the range,
    /// sorted and unique.
    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult>;
}

/// One series' samples in a write: the unit remote write and scrapes append.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// What an accepted write did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    pub samples_appended: usize,
    /// Samples equal to one already stored (same time, same value bits).
    pub duplicates_dropped: usize,
    pub series_created: usize,
}

/// Something that accepts writes. A write is all or nothing: on any
/// rejected sample nothing of it is stored and the error says which
/// ([`Error::BadRequest`]); on success every sample is durable.
#[async_trait]
pub trait Appendable: Send + Sync {
    async fn append(&self, batch: Vec<SeriesSamples>) -> Result<AppendStats>;

    /// As [`Appendable::append`], for the tenant a request named (remote
    /// write's `X-Scope-OrgID` / `THANOS-TENANT` header); storages without
    /// tenants ignore it.
    async fn append_for_tenant(
        &self,
        tenant: Option<&str>,
        batch: Vec<SeriesSamples>,
    ) -> Result<AppendStats> {
        let _ = tenant;
        self.append(batch).await
    }
}
