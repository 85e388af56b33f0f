//! Hearth's Prometheus-compatible HTTP API.
//!
//! [`router`] serves remote write, the metadata endpoints (`series`,
//! `labels`, `label/<name>/values`), health and readiness probes and the
//! process's own metrics, over any [`Queryable`] and [`Appendable`]. It
//! knows nothing of the engines behind them.

pub mod error;
pub mod json;
pub mod metadata;
pub mod metric_metadata;
pub mod metrics;
pub mod params;
mod parse_query;
pub mod query;
pub mod remote_write;
pub mod status;
pub mod targets;
pub mod tenancy;
pub mod ui;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hearth_storage_api::{Appendable, Queryable};

pub use error::{ApiError, ApiResult, ErrorType};
pub use metrics::ApiMetrics;

/// A clock returning milliseconds since the epoch; injected for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The component's name in probe answers (`Hearth standalone`).
    pub component: &'static str,
    pub queryable: Arc<dyn Queryable>,
    /// Builds the storage a request reads through from its parameters
    /// (the querier: `dedup`, `partial_response`, `replicaLabels[]`);
    /// `None`: every request reads `queryable`.
    pub scoped: Option<Arc<dyn ScopedQueryable>>,
    /// The server's PromQL options (`--query.*` flags).
    pub engine_options: hearth_promql::EngineOptions,
    /// `None` when this server does not accept remote writes.
    pub appendable: Option<Arc<dyn Appendable>>,
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<ApiMetrics>,
    /// Metric metadata for `/api/v1/metadata`.
    pub metadata: Arc<metric_metadata::MetadataStore>,
    /// What the status endpoints report (shared: the state is cloned for
    /// every request).
    pub status: Arc<status::StatusInfo>,
    /// Reloads the configuration on `POST /-/reload` (`None`: the lifecycle
    /// API is off, as Prometheus without `--web.enable-lifecycle`).
    pub reloader: Option<Arc<dyn Reload>>,
    /// What scrapes, for the targets API (`None`: nothing scrapes here).
    pub targets: Option<Arc<dyn targets::TargetsSource>>,
    /// The process registry served on `/metrics`.
    pub registry: Arc<prometheus_client::registry::Registry>,
    pub clock: Clock,
}

impl ApiState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The storage the request with `params` reads through.
    pub fn queryable_for(&self, params: &params::Params) -> ApiResult<Arc<dyn Queryable>> {
        match &self.scoped {
            None => Ok(self.queryable.clone()),
            Some(scoped) => scoped.for_request(params),
        }
    }
}

/// Storage whose behaviour a request's parameters choose (the querier's
/// replica deduplication and partial responses).
pub trait ScopedQueryable: Send + Sync {
    /// The storage for one request; a bad parameter is the client's error.
    fn for_request(&self, params: &params::Params) -> ApiResult<Arc<dyn Queryable>>;
}

/// Reloads the configuration (`POST /-/reload`, SIGHUP).
pub trait Reload: Send + Sync {
    /// Loads the configuration file again and applies it; on failure the
    /// previous configuration stays in force and the error is returned.
    fn reload(&self) -> Result<(), String>;
}

/// The routes of this crate. Other crates merge theirs (PromQL, UI) in.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/v1/write", post(remote_write::handle))
        .route("/api/v1/receive", post(remote_write::handle))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/format_query",
            get(query::format).post(query::format),
        )
        .route(
            "/api/v1/parse_query",
            get(parse_query::handle).post(parse_query::handle),
        )
        .route(
            "/api/v1/series",
            get(metadata::series).post(metadata::series),
        )
        .route(
            "/api/v1/labels",
            get(metadata::labels).post(metadata::labels),
        )
        .route("/api/v1/label/{name}/values", get(metadata::label_values))
        .route("/api/v1/metadata", get(metric_metadata::handle))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/targets/metadata", get(targets::metadata))
        .route("/api/v1/scrape_pools", get(targets::scrape_pools))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            readiness_gate,
        ));
    Router::new()
        .merge(api)
        .merge(ui::routes())
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/metrics", get(metrics::handle))
        // The fastest level: query responses are repetitive JSON, level 1
        // gets most of the size reduction at a fraction of the CPU. Bodies
        // under a kilobyte go as they are: compressing them costs more
        // time than it saves bytes.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest)
                .compress_when(tower_http::compression::Predicate::and(
                    tower_http::compression::DefaultPredicate::new(),
                    tower_http::compression::predicate::SizeAbove::new(1024),
                )),
        )
        .with_state(state)
}

/// The routes of `hearth scrape`: no query, metadata or write API; the
/// probes, `/metrics`, reload, the targets and status endpoints.
pub fn scraper_router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/targets/metadata", get(targets::metadata))
        .route("/api/v1/scrape_pools", get(targets::scrape_pools))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            readiness_gate,
        ));
    Router::new()
        .merge(api)
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/metrics", get(metrics::handle))
        .with_state(state)
}

async fn readiness_gate(
    axum::extract::State(state): axum::extract::State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !state.is_ready() {
        return not_ready();
    }
    next.run(req).await
}

fn not_ready() -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    r.headers_mut()
        .insert("X-Prometheus-Stopping", HeaderValue::from_static("false"));
    r
}

async fn healthy(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    format!("{} is Healthy.\n", state.component).into_response()
}

/// Prometheus's answers: 403 when the lifecycle API is off, 500 with the
/// error when the new configuration fails to load.
async fn reload(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    let Some(reloader) = state.reloader.clone() else {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response();
    };
    match tokio::task::spawn_blocking(move || reloader.reload()).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

async fn ready(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    if !state.is_ready() {
        return not_ready();
    }
    format!("{} is Ready.\n", state.component).into_response()
}
