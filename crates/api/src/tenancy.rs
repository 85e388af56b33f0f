//! Tenant isolation of reads: a request's tenant (the `X-Scope-OrgID` or
//! `THANOS-TENANT` header, as for remote write) restricts every selector to
//! the series whose tenant label has that value, as Thanos's querier does
//! with `--query.enforce-tenancy`.

use std::sync::Arc;

use async_trait::async_trait;
use hearth_model::{MatchOp, Matcher, Timestamp};
use hearth_storage_api::{LabelsResult, Queryable, Result, SelectHints, SeriesSet};

/// A storage seen through one tenant: every call gets the matcher
/// `<label>="<tenant>"` added.
pub struct TenantQueryable {
    inner: Arc<dyn Queryable>,
    matcher: Matcher,
}

impl TenantQueryable {
    /// `inner` restricted to series with `label="tenant"`.
    pub fn new(inner: Arc<dyn Queryable>, label: &str, tenant: &str) -> Self {
        Self {
            inner,
            matcher: Matcher::new(MatchOp::Equal, label, tenant)
                .expect("an equality matcher always builds"),
        }
    }

    fn with_tenant(&self, matchers: &[Matcher]) -> Vec<Matcher> {
        matchers
            .iter()
            .cloned()
            .chain(std::iter::once(self.matcher.clone()))
            .collect()
    }
}

#[async_trait]
impl Queryable for TenantQueryable {
    async fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<SeriesSet> {
        self.inner.select(&self.with_tenant(matchers), hints).await
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        self.inner
            .label_names(&self.with_tenant(matchers), mint, maxt)
            .await
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<LabelsResult> {
        self.inner
            .label_values(name, &self.with_tenant(matchers), mint, maxt)
            .await
    }
}

#[cfg(test)]
mod tests {
    use hearth_model::Labels;
    use hearth_storage_api::Series;

    use super::*;

    /// Records the matchers it was called with.
    #[derive(Default)]
    struct Recorder(parking_lot::Mutex<Vec<Vec<Matcher>>>);

    #[async_trait]
    impl Queryable for Recorder {
        async fn select(&self, matchers: &[Matcher], _: SelectHints) -> Result<SeriesSet> {
            self.0.lock().push(matchers.to_vec());
            Ok(SeriesSet {
                series: vec![Series::new(Labels::new([("a", "b")]), Vec::new())],
                warnings: Vec::new(),
            })
        }

        async fn label_names(&self, matchers: &[Matcher], _: i64, _: i64) -> Result<LabelsResult> {
            self.0.lock().push(matchers.to_vec());
            Ok(LabelsResult {
                values: Vec::new(),
                warnings: Vec::new(),
            })
        }

        async fn label_values(
            &self,
            _: &str,
            matchers: &[Matcher],
            _: i64,
            _: i64,
        ) -> Result<LabelsResult> {
            self.0.lock().push(matchers.to_vec());
            Ok(LabelsResult {
                values: Vec::new(),
                warnings: Vec::new(),
            })
        }
    }

    #[tokio::test]
    async fn every_call_carries_the_tenant_matcher() {
        let recorder = Arc::new(Recorder::default());
        let scoped = TenantQueryable::new(recorder.clone(), "tenant_id", "team-a");
        let m = Matcher::new(MatchOp::Equal, "__name__", "up").expect("matcher");
        scoped
            .select(std::slice::from_ref(&m), SelectHints::new(0, 1))
            .await
            .expect("select");
        scoped.label_names(&[], 0, 1).await.expect("names");
        scoped.label_values("job", &[], 0, 1).await.expect("values");
        let calls = recorder.0.lock();
        assert_eq!(calls.len(), 3);
        for call in calls.iter() {
            assert!(call
                .iter()
                .any(|x| x.name == "tenant_id" && x.value == "team-a" && x.op == MatchOp::Equal));
        }
        assert!(calls[0].contains(&m));
    }
}
