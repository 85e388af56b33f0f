//! `POST /api/v1/write`: the remote-write receiver (specs/remote-write.md).
//!
//! Answers as Prometheus does: 204 when everything is stored, 400 with a
//! plain-text message for the client's fault (nothing of the request is
//! stored), 413 for a body over 32 MiB, 415 for an unknown encoding, 503
//! when the storage cannot take writes now (the sender retries), 500 for
//! any other failure of ours.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_proto::remote_write::{decode_write_request, HistogramPolicy, WriteProtocol};
use hearth_proto::RemoteWriteError;
use hearth_storage_api::{Error as StorageError, SeriesSamples};

use crate::ApiState;

/// Largest compressed body accepted, as Prometheus.
pub const MAX_BODY_BYTES: usize = 32 << 20;
/// Remote write 2.0's written-count headers (exemplars and native
/// histograms are not stored yet: always 0).
const WRITTEN_SAMPLES: &str = "x-prometheus-remote-write-samples-written";
const WRITTEN_HISTOGRAMS: &str = "x-prometheus-remote-write-histograms-written";
const WRITTEN_EXEMPLARS: &str = "x-prometheus-remote-write-exemplars-written";

/// Headers that name the tenant of a write, in order of precedence
/// (Cortex's and Thanos's names); only multi-tenant storages read them.
pub const TENANT_HEADERS: [&str; 2] = ["x-scope-orgid", "thanos-tenant"];

/// The tenant a request's headers name, if any (invalid UTF-8 kept as
/// replacement characters, for the storage to refuse).
pub fn tenant_of(headers: &HeaderMap) -> Option<String> {
    TENANT_HEADERS
        .iter()
        .find_map(|h| headers.get(*h))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
/// Samples further than this in the future are refused.
pub const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;

pub async fn handle(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    let mut written = 0u64;
    let mut response = receive(&state, &headers, body, &mut written).await;
    // Remote write 2.0: every answer says what got in (spec B.4); a sender
    // that gets a 2xx without them takes the receiver for a 1.0 one.
    let v2 = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(hearth_proto::remote_write::PROTO_MESSAGE_V2));
    if v2 {
        let h = response.headers_mut();
        h.insert(WRITTEN_SAMPLES, written.into());
        h.insert(WRITTEN_HISTOGRAMS, 0u64.into());
        h.insert(WRITTEN_EXEMPLARS, 0u64.into());
    }
    let code = response.status().as_u16();
    state
        .metrics
        .remote_write_requests
        .get_or_create(&crate::metrics::CodeLabel { code })
        .inc();
    response
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        m,
    )
        .into_response()
}

/// Handles one request; `written` gets the float samples stored.
async fn receive(state: &ApiState, headers: &HeaderMap, body: Body, written: &mut u64) -> Response {
    let Some(appendable) = &state.appendable else {
        return text(
            StatusCode::NOT_FOUND,
            "remote write receiver is not enabled on this component",
        );
    };
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {MAX_BODY_BYTES} bytes or could not be read: {e}"),
            )
        }
    };
    let decoded = match decode_write_request(
        &bytes,
        header_str(header::CONTENT_ENCODING),
        header_str(header::CONTENT_TYPE),
    ) {
        Ok(d) => d,
        Err(e) => return decode_error(e),
    };
    // Native histograms cannot be stored yet. A 1.0 request carrying them is
    // refused whole (400, nothing written) rather than acknowledged with
    // data silently dropped; a 2.0 request gets its float samples written
    // and then a 400 that says what was not (2.0's partial-write rule).
    let rejection = decoded.rejection(HistogramPolicy::Reject);
    let v2 = decoded.protocol == WriteProtocol::V2;
    if let (Some(e), false) = (&rejection, v2) {
        return text(StatusCode::BAD_REQUEST, e.to_string());
    }
    for m in decoded
        .metadata
        .iter()
        .chain(decoded.series.iter().filter_map(|s| s.metadata.as_ref()))
    {
        state.metadata.record(
            &m.metric_family_name,
            crate::metric_metadata::MetricMetadata {
                metric_type: m.metric_type.as_str_name().to_ascii_lowercase(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            },
        );
    }
    if decoded.skipped_invalid_series > 0 {
        state
            .metrics
            .remote_write_invalid_series
            .inc_by(decoded.skipped_invalid_series as u64);
    }
    let limit = (state.clock)() + MAX_FUTURE_MS;
    let mut batch = Vec::with_capacity(decoded.series.len());
    let mut samples = 0usize;
    for s in decoded.series {
        if let Some(bad) = s.samples.iter().find(|x| x.t > limit) {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "out of bounds: sample at {} for series {} is too far in the future",
                    bad.t, s.labels
                ),
            );
        }
        samples += s.samples.len();
        if !s.samples.is_empty() {
            batch.push(SeriesSamples {
                labels: s.labels,
                samples: s.samples,
            });
        }
    }
    let done = || match &rejection {
        Some(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    if batch.is_empty() {
        return done();
    }
    let tenant = tenant_of(headers);
    match appendable.append_for_tenant(tenant.as_deref(), batch).await {
        Ok(stats) => {
            state.metrics.remote_write_samples.inc_by(samples as u64);
            *written = (stats.samples_appended + stats.duplicates_dropped) as u64;
            done()
        }
        Err(StorageError::BadRequest(msg)) => text(StatusCode::BAD_REQUEST, msg),
        Err(StorageError::Unavailable(msg)) => text(StatusCode::SERVICE_UNAVAILABLE, msg),
        Err(e) => {
            tracing::error!(error = %e, "remote write: append failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

fn decode_error(e: RemoteWriteError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    text(status, e.to_string())
}
