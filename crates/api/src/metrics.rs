//! The process's own metrics (`/metrics`) and the API's metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::ApiState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: u16,
}

/// Metrics of the HTTP API, registered in the process registry.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    pub remote_write_requests: Family<CodeLabel, Counter>,
    pub remote_write_samples: Counter,
    pub remote_write_invalid_series: Counter,
}

impl ApiMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("hearth_api");
        r.register(
            "remote_write_requests",
            "Remote-write requests answered, by HTTP status code",
            m.remote_write_requests.clone(),
        );
        r.register(
            "remote_write_samples",
            "Samples accepted through remote write",
            m.remote_write_samples.clone(),
        );
        r.register(
            "remote_write_invalid_series",
            "Series skipped in remote-write requests for invalid labels",
            m.remote_write_invalid_series.clone(),
        );
        m
    }
}

/// Serves the registry in OpenMetrics text, which Prometheus scrapes.
pub async fn handle(State(state): State<ApiState>) -> Response {
    render(&state.registry)
}

/// `registry` in the OpenMetrics text format, as `/metrics` serves it (also
/// for components without the API: sidecar, store gateway).
pub fn render(registry: &prometheus_client::registry::Registry) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, registry) {
        return crate::ApiError::internal(format!("encode metrics: {e}")).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
