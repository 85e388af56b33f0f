//! The web UI: one HTML page with plain JavaScript and CSS over the HTTP API
//! (query table and graph, targets, status, configuration), embedded in the
//! binary. Prometheus's page paths (`/graph`, `/targets`, ...) lead to it.

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/hearth.js");
const STYLE: &str = include_str!("../ui/hearth.css");

/// The UI's routes, for any state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/query") }))
        .route("/query", get(index))
        .route("/graph", get(index))
        .route("/targets", get(index))
        .route("/status", get(index))
        .route("/config", get(index))
        .route("/static/hearth.js", get(script))
        .route("/static/hearth.css", get(style))
}

async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}
