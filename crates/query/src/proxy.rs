//! The proxy store: one [`Queryable`] over every healthy endpoint
//! (specs/storeapi.md §6). Per request it selects the stores whose time
//! range and external labels can match, calls them concurrently, turns a
//! failing or slow store into a warning (partial response) or an error,
//! asks them to remove the replica labels ([`Store::select_without`]: the
//! store or its client-side default does it), k-way merges the sorted
//! answers and, when deduplication is on, deduplicates the replicas (§7).
//!
//! [`Proxy`] is the long-lived value; the HTTP API builds a [`ProxyQuery`]
//! per request with [`Proxy::with_options`] from `dedup=`,
//! `partial_response=` and `replicaLabels[]=`.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_storage_api::{LabelsResult, Queryable, SelectHints, Series, SeriesSet};
use hearth_storeapi::{Store, StoreInfo};
use tokio::task::JoinSet;

use crate::dedup::{dedup_series_set, DedupFunc};
use crate::endpoints::{ActiveStore, EndpointSet};
use crate::merge::{merge_sorted, sort_by_labels};
use crate::Error;

/// The component type the proxy announces in `Info`.
pub const COMPONENT: &str = "query";

/// How one request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    /// `dedup=`: deduplicate replicas (needs `replica_labels`).
    pub dedup: bool,
    /// `--query.replica-label` / `replicaLabels[]=`: labels that tell
    /// replicas of one series apart.
    pub replica_labels: Vec<String>,
    /// `partial_response=`: a failing store is a warning (WARN) rather
    /// than an error (ABORT).
    pub partial_response: bool,
    /// `--deduplication.func`.
    pub dedup_func: DedupFunc,
    /// `--store.response-timeout`: how long one store's call may take
    /// (`None`: no limit).
    pub store_timeout: Option<Duration>,
}

impl Default for QueryOptions {
    /// Thanos's defaults: dedup and partial response on, penalty.
    fn default() -> Self {
        QueryOptions {
            dedup: true,
            replica_labels: Vec::new(),
            partial_response: true,
            dedup_func: DedupFunc::Penalty,
            store_timeout: None,
        }
    }
}

impl QueryOptions {
    /// Deduplication applies only with replica labels to tell copies by.
    pub fn dedup_enabled(&self) -> bool {
        self.dedup && !self.replica_labels.is_empty()
    }
}

/// The querier's fan-out over an [`EndpointSet`].
///
/// As a [`Queryable`] or [`Store`] itself (what the gRPC server or a
/// higher-level querier sees) it does not deduplicate: as in Thanos,
/// deduplication is the decision of the querier that evaluates the query,
/// made per request through [`Proxy::with_options`].
#[derive(Clone)]
pub struct Proxy {
    endpoints: Arc<EndpointSet>,
    defaults: QueryOptions,
}

impl Proxy {
    pub fn new(endpoints: Arc<EndpointSet>, defaults: QueryOptions) -> Self {
        Proxy {
            endpoints,
            defaults,
        }
    }

    /// The configured defaults, for the API to override per request.
    pub fn defaults(&self) -> &QueryOptions {
        &self.defaults
    }

    pub fn endpoints(&self) -> &Arc<EndpointSet> {
        &self.endpoints
    }

    /// A view of the proxy answering with `options`.
    pub fn with_options(&self, options: QueryOptions) -> ProxyQuery {
        ProxyQuery {
            endpoints: Arc::clone(&self.endpoints),
            options,
        }
    }

    /// The raw fan-out: the defaults without deduplication.
    fn raw(&self) -> ProxyQuery {
        self.with_options(QueryOptions {
            dedup: false,
            ..self.defaults.clone()
        })
    }
}

#[async_trait]
impl Queryable for Proxy {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
    ) -> hearth_storage_api::Result<SeriesSet> {
        self.raw().select(matchers, hints).await
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        self.raw().label_names(matchers, mint, maxt).await
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        self.raw().label_values(name, matchers, mint, maxt).await
    }
}

#[async_trait]
impl Store for Proxy {
    /// The union of the healthy stores' label sets and time ranges. With no
    /// healthy store the range is empty (`min_time = max_time = i64::MAX`),
    /// so a querier above does not select this one.
    async fn info(&self) -> hearth_storage_api::Result<StoreInfo> {
        let stores = self.endpoints.healthy();
        let label_sets: BTreeSet<Labels> = stores
            .iter()
            .flat_map(|s| s.info.label_sets.iter().cloned())
            .collect();
        let min_time = stores.iter().map(|s| s.info.min_time).min();
        let max_time = stores.iter().map(|s| s.info.max_time).max();
        Ok(StoreInfo {
            component: COMPONENT.to_string(),
            label_sets: label_sets.into_iter().collect(),
            min_time: min_time.unwrap_or(i64::MAX),
            max_time: max_time.unwrap_or(i64::MAX),
            supports_without_replica_labels: false,
        })
    }
}

/// Whether a store can hold data for a request (§6.1): its time range
/// meets `[mint, maxt]` and at least one of its label sets is compatible
/// with the matchers (a store without label sets always is).
pub fn store_matches(
    info: &StoreInfo,
    matchers: &[Matcher],
    mint: Timestamp,
    maxt: Timestamp,
) -> bool {
    if mint > info.max_time || maxt < info.min_time {
        return false;
    }
    info.label_sets.is_empty()
        || info
            .label_sets
            .iter()
            .any(|set| label_set_compatible(set, matchers))
}

/// A label set is compatible unless a matcher on one of its labels rejects
/// the label's value; matchers on other labels never exclude.
fn label_set_compatible(set: &Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| set.get(&m.name).is_none_or(|v| m.matches(v)))
}

/// The proxy answering with one request's [`QueryOptions`].
#[derive(Clone)]
pub struct ProxyQuery {
    endpoints: Arc<EndpointSet>,
    options: QueryOptions,
}

/// One store's answer or why there is none.
type StoreOutcome<T> = Result<T, Error>;

impl ProxyQuery {
    pub fn options(&self) -> &QueryOptions {
        &self.options
    }

    /// The labels the stores are asked to remove (§6.4): the replica
    /// labels, only when deduplicating.
    fn without_labels(&self) -> Arc<[String]> {
        if self.options.dedup_enabled() {
            self.options.replica_labels.as_slice().into()
        } else {
            Arc::from(Vec::new())
        }
    }

    /// The healthy stores that may hold data for the request; under ABORT
    /// the absence of any healthy store is an error (§6.1).
    fn select_stores(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<Vec<ActiveStore>, Error> {
        let healthy = self.endpoints.healthy();
        if healthy.is_empty() && !self.options.partial_response {
            return Err(Error::NoStores);
        }
        Ok(healthy
            .into_iter()
            .filter(|s| store_matches(&s.info, matchers, mint, maxt))
            .collect())
    }

    /// Calls `call` on every store concurrently (each on its own task, so
    /// in-process stores doing CPU work run in parallel), within the store
    /// timeout. Returns the answers in store order and the warnings of the
    /// stores that failed; under ABORT the first failure is returned as the
    /// error and the other calls are cancelled.
    async fn fan_out<T, F, Fut>(
        &self,
        stores: &[ActiveStore],
        call: F,
    ) -> Result<(Vec<T>, Vec<String>), Error>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = hearth_storage_api::Result<T>> + Send + 'static,
    {
        let timeout = self.options.store_timeout;
        if let [only] = stores {
            // One store: no task to hand the call to and back.
            let outcome =
                call_store(only.name.clone(), call(Arc::clone(&only.store)), timeout).await;
            return match outcome {
                Ok(answer) => Ok((vec![answer], Vec::new())),
                Err(e) if !self.options.partial_response => Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "partial response");
                    Ok((Vec::new(), vec![e.to_string()]))
                }
            };
        }
        let mut tasks = JoinSet::new();
        let mut index_of = HashMap::with_capacity(stores.len());
        for (i, s) in stores.iter().enumerate() {
            let name = s.name.clone();
            let call = call(Arc::clone(&s.store));
            let handle = tasks.spawn(async move { call_store(name, call, timeout).await });
            index_of.insert(handle.id(), i);
        }
        let mut outcomes: Vec<Option<StoreOutcome<T>>> = stores.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next_with_id().await {
            let (i, outcome) = match joined {
                Ok((id, outcome)) => (index_of[&id], outcome),
                Err(e) => {
                    let i = index_of[&e.id()];
                    let failure = Error::StoreTask {
                        store: stores[i].name.clone(),
                        message: e.to_string(),
                    };
                    (i, Err(failure))
                }
            };
            match outcome {
                Err(e) if !self.options.partial_response => return Err(e),
                outcome => outcomes[i] = Some(outcome),
            }
        }
        let mut answers = Vec::with_capacity(stores.len());
        let mut warnings = Vec::new();
        for outcome in outcomes.into_iter().flatten() {
            match outcome {
                Ok(answer) => answers.push(answer),
                Err(e) => {
                    tracing::debug!(error = %e, "partial response");
                    warnings.push(e.to_string());
                }
            }
        }
        Ok((answers, warnings))
    }

    async fn select_impl(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
    ) -> Result<SeriesSet, Error> {
        let stores = self.select_stores(matchers, hints.mint, hints.maxt)?;
        if stores.is_empty() {
            return Ok(SeriesSet::default());
        }
        let dedup = self.options.dedup_enabled();
        // Removing replica labels reorders a store's series, so its first
        // `limit` series may not be the first after the removal: then the
        // limit applies to the merged output only.
        let store_hints = if dedup {
            SelectHints { limit: 0, ..hints }
        } else {
            hints
        };
        let matchers: Arc<[Matcher]> = matchers.into();
        let without = self.without_labels();
        let (answers, mut warnings) = self
            .fan_out(&stores, |store| {
                let matchers = Arc::clone(&matchers);
                let without = Arc::clone(&without);
                async move { store.select_without(&matchers, store_hints, &without).await }
            })
            .await?;
        let mut parts = Vec::with_capacity(answers.len());
        for mut set in answers {
            warnings.append(&mut set.warnings);
            // The merge needs sorted input whatever the store did.
            sort_by_labels(&mut set.series);
            parts.push(set.series);
        }
        let mut series = merge_sorted(parts, hints.limit);
        if dedup && !hints.skip_chunks && series.iter().any(has_overlapping_chunks) {
            series = self.deduplicate(series, hints).await?;
        }
        Ok(SeriesSet { series, warnings })
    }

    /// Runs deduplication off the async workers: it decodes and re-encodes
    /// chunks.
    async fn deduplicate(
        &self,
        series: Vec<Series>,
        hints: SelectHints,
    ) -> Result<Vec<Series>, Error> {
        let func = self.options.dedup_func;
        tokio::task::spawn_blocking(move || dedup_series_set(series, &hints, func))
            .await
            .map_err(|e| Error::Dedup {
                series: "(all)".into(),
                message: e.to_string(),
            })?
    }

    async fn label_names_impl(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult, Error> {
        let stores = self.select_stores(matchers, mint, maxt)?;
        let matchers: Arc<[Matcher]> = matchers.into();
        let without = self.without_labels();
        let (answers, warnings) = self
            .fan_out(&stores, |store| {
                let matchers = Arc::clone(&matchers);
                let without = Arc::clone(&without);
                async move {
                    store
                        .label_names_without(&matchers, mint, maxt, &without)
                        .await
                }
            })
            .await?;
        Ok(union(answers, warnings, |name| !without.contains(name)))
    }

    async fn label_values_impl(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult, Error> {
        if self.options.dedup_enabled() && self.options.replica_labels.iter().any(|r| r == name) {
            return Ok(LabelsResult::default());
        }
        let stores = self.select_stores(matchers, mint, maxt)?;
        let matchers: Arc<[Matcher]> = matchers.into();
        let name: Arc<str> = name.into();
        let without = self.without_labels();
        let (answers, warnings) = self
            .fan_out(&stores, |store| {
                let matchers = Arc::clone(&matchers);
                let name = Arc::clone(&name);
                let without = Arc::clone(&without);
                async move {
                    store
                        .label_values_without(&name, &matchers, mint, maxt, &without)
                        .await
                }
            })
            .await?;
        Ok(union(answers, warnings, |_| true))
    }
}

/// Calls one store within the timeout, naming it in any failure.
async fn call_store<T>(
    name: String,
    call: impl Future<Output = hearth_storage_api::Result<T>>,
    timeout: Option<Duration>,
) -> StoreOutcome<T> {
    let result = match timeout {
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(r) => r,
            Err(_) => {
                return Err(Error::StoreTimeout {
                    store: name,
                    timeout: limit,
                })
            }
        },
        None => call.await,
    };
    result.map_err(|source| Error::Store {
        store: name,
        source,
    })
}

/// The sorted union of the stores' names or values that `keep` accepts,
/// with every warning.
fn union(
    answers: Vec<LabelsResult>,
    mut warnings: Vec<String>,
    keep: impl Fn(&String) -> bool,
) -> LabelsResult {
    let mut values = BTreeSet::new();
    for mut answer in answers {
        values.extend(answer.values.into_iter().filter(|v| keep(v)));
        warnings.append(&mut answer.warnings);
    }
    LabelsResult {
        values: values.into_iter().collect(),
        warnings,
    }
}

/// Whether a series' (sorted) chunks overlap, i.e. replicas need merging.
fn has_overlapping_chunks(series: &Series) -> bool {
    series.chunks.windows(2).any(|w| w[1].mint <= w[0].maxt)
}

#[async_trait]
impl Queryable for ProxyQuery {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: SelectHints,
    ) -> hearth_storage_api::Result<SeriesSet> {
        Ok(self.select_impl(matchers, hints).await?)
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        Ok(self.label_names_impl(matchers, mint, maxt).await?)
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> hearth_storage_api::Result<LabelsResult> {
        Ok(self.label_values_impl(name, matchers, mint, maxt).await?)
    }
}
