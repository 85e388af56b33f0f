//! The query limits through the HTTP API, with Prometheus's errors: too many
//! samples (422 `execution`) and timeouts (503 `timeout`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hearth_api::router;
use hearth_model::chunkenc::{Encoding, XorChunk};
use hearth_model::{Labels, Matcher, Timestamp};
use hearth_storage_api::{
    LabelsResult, Queryable, Result, SelectHints, Series, SeriesChunk, SeriesSet,
};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// One series `x` with a sample every second over [0, 1000 s], answered
/// after `delay`.
struct OneSeries {
    delay: Duration,
}

#[async_trait::async_trait]
impl Queryable for OneSeries {
    async fn select(&self, _: &[Matcher], _: SelectHints) -> Result<SeriesSet> {
        tokio::time::sleep(self.delay).await;
        let mut chunks = Vec::new();
        for part in 0..9 {
            let mut c = XorChunk::new();
            let first = part * 120;
            let last = (first + 119).min(1000);
            for i in first..=last {
                c.append(i * 1000, i as f64).expect("in order");
            }
            chunks.push(SeriesChunk {
                mint: first * 1000,
                maxt: last * 1000,
                encoding: Encoding::Xor,
                data: c.bytes().into(),
            });
        }
        Ok(SeriesSet {
            series: vec![Series::new(Labels::new([("__name__", "x")]), chunks)],
            warnings: Vec::new(),
        })
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

fn app(delay: Duration, max_samples: usize) -> axum::Router {
    let options = hearth_promql::EngineOptions {
        max_samples,
        ..Default::default()
    };
    router(common::state(Arc::new(OneSeries { delay }), options, None))
}

async fn get(app: axum::Router, query: &str) -> (StatusCode, serde_json::Value) {
    let req = Request::get(format!("/api/v1/query?{query}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.expect("the router answers");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

#[tokio::test]
async fn within_the_sample_limit_the_query_answers() {
    // 301 samples in (700 s, 1000 s].
    let (status, v) = get(
        app(Duration::ZERO, 301),
        "query=count_over_time(x[5m])&time=1000",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "300");
}

#[tokio::test]
async fn too_many_samples_is_422_execution() {
    let (status, v) = get(
        app(Duration::ZERO, 100),
        "query=count_over_time(x[5m])&time=1000",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "execution");
    assert_eq!(
        v["error"],
        "query processing would load too many samples into memory in query execution"
    );
}

#[tokio::test]
async fn a_query_past_its_timeout_is_503_timeout() {
    let (status, v) = get(
        app(Duration::from_millis(500), 1_000_000),
        "query=x&time=1000&timeout=50ms",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["errorType"], "timeout");
    assert_eq!(v["error"], "query timed out in query execution");
}
