//! What the API tests share: a storage without series and the router's
//! state around a storage. (Each test binary uses part of it.)
#![allow(dead_code)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use hearth_api::targets::TargetsSource;
use hearth_api::{ApiMetrics, ApiState};
use hearth_model::{Matcher, Timestamp};
use hearth_storage_api::{LabelsResult, Queryable, Result, SelectHints, SeriesSet};

/// A storage with no series.
pub struct Empty;

#[async_trait::async_trait]
impl Queryable for Empty {
    async fn select(&self, _: &[Matcher], _: SelectHints) -> Result<SeriesSet> {
        Ok(SeriesSet::default())
    }

    async fn label_names(&self, _: &[Matcher], _: Timestamp, _: Timestamp) -> Result<LabelsResult> {
        Ok(LabelsResult::default())
    }

    async fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: Timestamp,
        _: Timestamp,
    ) -> Result<LabelsResult> {
        Ok(LabelsResult::default())
    }
}

/// A ready server's state over `queryable`, with `engine_options` and
/// `targets`, at a fixed clock (1,000 s).
pub fn state(
    queryable: Arc<dyn Queryable>,
    engine_options: hearth_promql::EngineOptions,
    targets: Option<Arc<dyn TargetsSource>>,
) -> ApiState {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(ApiMetrics::new(&mut registry));
    ApiState {
        scoped: None,
        component: "Hearth test",
        queryable,
        engine_options,
        appendable: None,
        ready: Arc::new(AtomicBool::new(true)),
        metrics,
        metadata: Arc::default(),
        status: Default::default(),
        reloader: None,
        targets,
        registry: Arc::new(registry),
        clock: Arc::new(|| 1_000_000),
    }
}
