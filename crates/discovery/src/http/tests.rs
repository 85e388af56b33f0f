use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use hearth_config::Duration as ConfigDuration;
use tokio::sync::mpsc;

use super::*;
use crate::testing::{addresses, labels, next_update};

/// What the fake server answers: status, content type, body.
type Answer = (StatusCode, &'static str, String);

/// Serves `answer` on `/sd`, recording the request headers.
async fn serve(answer: Arc<Mutex<Answer>>, seen: Arc<Mutex<Vec<HeaderMap>>>) -> String {
    let app = Router::new().route(
        "/sd",
        get(move |headers: HeaderMap| {
            let answer = answer.clone();
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(headers);
                let (status, content_type, body) = answer.lock().unwrap().clone();
                (status, [("content-type", content_type)], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/sd")
}

fn config(url: &str, refresh: ConfigDuration) -> HttpSdConfig {
    let yaml = format!("url: {url}\nrefresh_interval: {refresh}\n");
    serde_saphyr::from_str(&yaml).unwrap()
}

#[tokio::test]
async fn groups_headers_failures_and_shrinking() {
    let answer = Arc::new(Mutex::new((
        StatusCode::OK,
        "application/json; charset=utf-8",
        r#"[{"targets": ["a:1", "b:2"], "labels": {"env": "prod"}}, {"targets": ["c:3"]}]"#
            .to_string(),
    )));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = serve(answer.clone(), seen.clone()).await;
    let discovery = HttpDiscovery::new(&config(&url, ConfigDuration::from_millis(200))).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(discovery.run(tx));

    let groups = next_update(&mut rx).await;
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].source, format!("{url}:0"));
    assert_eq!(addresses(&groups[0]), ["a:1", "b:2"]);
    assert_eq!(
        groups[0].labels,
        labels(&[("env", "prod"), ("__meta_url", &url)])
    );
    assert_eq!(groups[1].source, format!("{url}:1"));
    {
        let seen = seen.lock().unwrap();
        let headers = &seen[0];
        assert_eq!(headers["x-prometheus-refresh-interval-seconds"], "0.2");
        assert_eq!(headers["accept"], "application/json");
        assert!(headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("Hearth/"));
    }

    // Failures (status, content type, bad JSON) send nothing.
    for bad in [
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            "[]".to_string(),
        ),
        (StatusCode::OK, "text/plain", "[]".to_string()),
        (
            StatusCode::OK,
            "application/json",
            r#"[{"targets": 1}]"#.to_string(),
        ),
    ] {
        *answer.lock().unwrap() = bad;
        let requests = seen.lock().unwrap().len();
        tokio::time::timeout(Duration::from_secs(3), async {
            while seen.lock().unwrap().len() < requests + 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap();
        assert!(rx.try_recv().is_err(), "a failed fetch sent an update");
    }

    // One group fewer: the vanished index is cleared.
    *answer.lock().unwrap() = (
        StatusCode::OK,
        "application/json",
        r#"[{"targets": ["z:9"]}]"#.to_string(),
    );
    let groups = next_update(&mut rx).await;
    assert_eq!(groups.len(), 2);
    assert_eq!(addresses(&groups[0]), ["z:9"]);
    assert_eq!(groups[1], TargetGroup::empty(format!("{url}:1")));
}

#[test]
fn content_types() {
    for ok in [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=\"utf-8\"",
    ] {
        assert!(is_json_content_type(ok), "{ok}");
    }
    for bad in ["text/json", "application/json; charset=latin1", ""] {
        assert!(!is_json_content_type(bad), "{bad}");
    }
    assert_eq!(format_seconds(Duration::from_secs(60)), "60");
    assert_eq!(format_seconds(Duration::from_millis(1500)), "1.5");
}
