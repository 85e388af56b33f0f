//! `/api/v1/targets`, `/api/v1/targets/metadata` and `/api/v1/scrape_pools`
//! in Prometheus's shapes, over a fake scraper.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Empty;
use hearth_api::router;
use hearth_api::targets::{
    ActiveTarget, DroppedTarget, Health, TargetMetadata, TargetsSnapshot, TargetsSource,
};
use hearth_model::Labels;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

struct Fake;

fn target(job: &str, instance: &str) -> Labels {
    Labels::new([("job", job), ("instance", instance)])
}

impl TargetsSource for Fake {
    fn targets(&self) -> TargetsSnapshot {
        TargetsSnapshot {
            active: vec![
                ActiveTarget {
                    discovered_labels: Labels::new([
                        ("__address__", "b:9100"),
                        ("__metrics_path__", "/metrics"),
                        ("__scheme__", "http"),
                        ("job", "node"),
                    ]),
                    labels: target("node", "b:9100"),
                    scrape_pool: "node".into(),
                    scrape_url: "http://b:9100/metrics".into(),
                    global_url: "http://b:9100/metrics".into(),
                    last_error: "connection refused".into(),
                    last_scrape_ms: Some(1_700_000_000_123),
                    last_scrape_duration_seconds: 0.25,
                    health: Health::Down,
                    scrape_interval: "15s".into(),
                    scrape_timeout: "10s".into(),
                },
                ActiveTarget {
                    discovered_labels: Labels::new([("__address__", "a:9100"), ("job", "node")]),
                    labels: target("node", "a:9100"),
                    scrape_pool: "node".into(),
                    scrape_url: "http://a:9100/metrics".into(),
                    global_url: "http://a:9100/metrics".into(),
                    last_error: String::new(),
                    last_scrape_ms: None,
                    last_scrape_duration_seconds: 0.0,
                    health: Health::Unknown,
                    scrape_interval: "1m".into(),
                    scrape_timeout: "10s".into(),
                },
            ],
            dropped: vec![DroppedTarget {
                discovered_labels: Labels::new([("__address__", "c:1"), ("job", "other")]),
                scrape_pool: "other".into(),
            }],
            dropped_counts: BTreeMap::from([("other".to_string(), 3)]),
            pools: vec!["node".into(), "other".into()],
        }
    }

    fn metadata(&self) -> Vec<TargetMetadata> {
        vec![
            TargetMetadata {
                target: target("node", "a:9100"),
                metric: "up_total".into(),
                metric_type: "counter".into(),
                help: "Ups.".into(),
                unit: String::new(),
            },
            TargetMetadata {
                target: target("node", "b:9100"),
                metric: "temp".into(),
                metric_type: "gauge".into(),
                help: "Temperature.".into(),
                unit: "celsius".into(),
            },
        ]
    }
}

fn app(targets: Option<Arc<dyn TargetsSource>>) -> axum::Router {
    router(common::state(Arc::new(Empty), Default::default(), targets))
}

async fn get(app: axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let resp = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .expect("the router answers");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    (status, serde_json::from_slice(&body).expect("JSON"))
}

#[tokio::test]
async fn targets_in_prometheus_shape() {
    let (status, v) = get(app(Some(Arc::new(Fake))), "/api/v1/targets").await;
    assert_eq!(status, StatusCode::OK);
    let active = &v["data"]["activeTargets"];
    // Sorted by pool, then labels: a before b.
    assert_eq!(
        active[0]["labels"],
        json!({"instance": "a:9100", "job": "node"})
    );
    assert_eq!(active[0]["health"], "unknown");
    assert_eq!(active[0]["lastScrape"], "0001-01-01T00:00:00Z");
    assert_eq!(
        active[1],
        json!({
            "discoveredLabels": {"__address__": "b:9100", "__metrics_path__": "/metrics", "__scheme__": "http", "job": "node"},
            "labels": {"instance": "b:9100", "job": "node"},
            "scrapePool": "node",
            "scrapeUrl": "http://b:9100/metrics",
            "globalUrl": "http://b:9100/metrics",
            "lastError": "connection refused",
            "lastScrape": "2023-11-14T22:13:20.123Z",
            "lastScrapeDuration": 0.25,
            "health": "down",
            "scrapeInterval": "15s",
            "scrapeTimeout": "10s",
        })
    );
    assert_eq!(
        v["data"]["droppedTargets"],
        json!([{"discoveredLabels": {"__address__": "c:1", "job": "other"}, "scrapePool": "other"}])
    );
    assert_eq!(v["data"]["droppedTargetCounts"], json!({"other": 3}));

    let (_, v) = get(app(Some(Arc::new(Fake))), "/api/v1/targets?state=active").await;
    assert_eq!(v["data"]["activeTargets"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"]["droppedTargets"], json!([]));
    assert_eq!(v["data"]["droppedTargetCounts"], json!(null));
    let (_, v) = get(
        app(Some(Arc::new(Fake))),
        "/api/v1/targets?state=Dropped&scrapePool=node",
    )
    .await;
    assert_eq!(v["data"]["activeTargets"], json!([]));
    assert_eq!(v["data"]["droppedTargets"], json!([]));
    let (_, v) = get(app(Some(Arc::new(Fake))), "/api/v1/targets?state=bogus").await;
    assert_eq!(v["data"]["activeTargets"], json!([]));

    // Nothing scrapes: empty lists.
    let (_, v) = get(app(None), "/api/v1/targets").await;
    assert_eq!(
        v["data"],
        json!({"activeTargets": [], "droppedTargets": [], "droppedTargetCounts": {}})
    );
}

#[tokio::test]
async fn target_metadata_and_pools() {
    let (_, v) = get(app(Some(Arc::new(Fake))), "/api/v1/targets/metadata").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["data"][1],
        json!({"target": {"instance": "b:9100", "job": "node"}, "metric": "temp", "type": "gauge", "help": "Temperature.", "unit": "celsius"})
    );
    // With metric=, the key is left out.
    let (_, v) = get(
        app(Some(Arc::new(Fake))),
        "/api/v1/targets/metadata?metric=temp",
    )
    .await;
    assert_eq!(
        v["data"],
        json!([{"target": {"instance": "b:9100", "job": "node"}, "type": "gauge", "help": "Temperature.", "unit": "celsius"}])
    );
    let uri = "/api/v1/targets/metadata?match_target=%7Binstance%3D%22a%3A9100%22%7D";
    let (_, v) = get(app(Some(Arc::new(Fake))), uri).await;
    assert_eq!(v["data"][0]["metric"], "up_total");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (status, v) = get(
        app(Some(Arc::new(Fake))),
        "/api/v1/targets/metadata?limit=x",
    )
    .await;
    assert_eq!(
        (status, v["errorType"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_data"))
    );
    let (_, v) = get(app(Some(Arc::new(Fake))), "/api/v1/scrape_pools").await;
    assert_eq!(v["data"], json!({"scrapePools": ["node", "other"]}));
}
