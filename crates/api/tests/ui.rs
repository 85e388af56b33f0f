//! The web UI is served: Prometheus's page paths lead to the page, which
//! loads its script and style.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(path: &str) -> (StatusCode, String, String) {
    let app: axum::Router = hearth_api::ui::routes();
    let resp = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .expect("the router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    let ct = headers
        .get("content-type")
        .or_else(|| headers.get("location"))
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn pages_script_and_style_are_served() {
    let (status, location, _) = get("/").await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/query")
    );
    for page in ["/query", "/graph", "/targets", "/status", "/config"] {
        let (status, ct, body) = get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(ct.starts_with("text/html"), "{page}: {ct}");
        assert!(
            body.contains(r#"<script src="/static/hearth.js">"#),
            "{page}"
        );
    }
    let (status, ct, body) = get("/static/hearth.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/javascript"), "{ct}");
    // The script reads the API Prometheus's UI reads.
    for path in ["/api/v1/query", "/api/v1/query_range", "/api/v1/targets"] {
        assert!(body.contains(path), "{path}");
    }
    let (status, ct, _) = get("/static/hearth.css").await;
    assert_eq!((status, ct.starts_with("text/css")), (StatusCode::OK, true));
    let (status, _, _) = get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
