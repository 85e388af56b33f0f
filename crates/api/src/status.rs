//! `/api/v1/status/*`: build information, flags, runtime information,
//! configuration and TSDB statistics, in Prometheus's JSON shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::{json, ApiState};

/// Statistics of the storage's head for `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Default)]
pub struct TsdbStatus {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    pub min_time: i64,
    pub max_time: i64,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// Whatever can report [`TsdbStatus`]; the binary implements it for its
/// storage so that this crate depends on no engine.
pub trait TsdbStatusSource: Send + Sync {
    /// The statistics, each list sorted by value descending and cut to `limit`.
    fn tsdb_status(&self, limit: usize) -> TsdbStatus;
}

/// The configuration as last (re)loaded.
#[derive(Clone, Debug, Default)]
pub struct ConfigStatus {
    /// The loaded configuration as YAML, secrets redacted (empty when
    /// there is none).
    pub yaml: String,
    /// Whether the last reload succeeded (a failed one keeps the previous
    /// configuration).
    pub last_reload_ok: bool,
    /// When the configuration was last loaded successfully (ms).
    pub last_load_ms: i64,
}

/// What the status endpoints report about the process.
#[derive(Default)]
pub struct StatusInfo {
    /// Command-line flags, name (without dashes) to value.
    pub flags: BTreeMap<String, String>,
    /// The configuration, updated by reloads.
    pub config: parking_lot::RwLock<ConfigStatus>,
    /// `--storage.tsdb.retention.time` as given, e.g. `15d`.
    pub storage_retention: String,
    pub start_time: i64,
    pub tsdb: Option<Arc<dyn TsdbStatusSource>>,
}

fn object(pairs: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(&mut out, k, false);
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
    out
}

fn string(v: &str) -> String {
    let mut s = String::new();
    json::write_str(&mut s, v, true);
    s
}

pub(crate) fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub async fn buildinfo() -> Response {
    let data = object(&[
        ("version", string(env!("CARGO_PKG_VERSION"))),
        (
            "revision",
            string(option_env!("HEARTH_GIT_REVISION").unwrap_or("unknown")),
        ),
        (
            "branch",
            string(option_env!("HEARTH_GIT_BRANCH").unwrap_or("unknown")),
        ),
        ("buildUser", string("hearth")),
        (
            "buildDate",
            string(option_env!("HEARTH_BUILD_DATE").unwrap_or("unknown")),
        ),
        ("goVersion", string("none (Hearth is written in Rust)")),
    ]);
    json::success(&data, &[])
}

pub async fn flags(State(state): State<ApiState>) -> Response {
    let pairs: Vec<(&str, String)> = state
        .status
        .flags
        .iter()
        .map(|(k, v)| (k.as_str(), string(v)))
        .collect();
    json::success(&object(&pairs), &[])
}

pub async fn config(State(state): State<ApiState>) -> Response {
    let yaml = state.status.config.read().yaml.clone();
    json::success(&object(&[("yaml", string(&yaml))]), &[])
}

pub async fn runtimeinfo(State(state): State<ApiState>) -> Response {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let config = state.status.config.read().clone();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let data = object(&[
        ("startTime", string(&rfc3339(state.status.start_time))),
        ("CWD", string(&cwd)),
        ("hostname", string(&hostname)),
        ("serverTime", string(&rfc3339((state.clock)()))),
        ("reloadConfigSuccess", config.last_reload_ok.to_string()),
        ("lastConfigTime", string(&rfc3339(config.last_load_ms))),
        ("corruptionCount", "0".into()),
        ("goroutineCount", "0".into()),
        ("GOMAXPROCS", cpus.to_string()),
        ("GOMEMLIMIT", i64::MAX.to_string()),
        ("GOGC", string("")),
        ("GODEBUG", string("")),
        ("storageRetention", string(&state.status.storage_retention)),
    ]);
    json::success(&data, &[])
}

pub async fn tsdb(State(state): State<ApiState>, params: Params) -> ApiResult<Response> {
    let limit = match params.get("limit") {
        None | Some("") => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => return Err(ApiError::bad_data("limit must be a positive number")),
        },
    };
    let Some(src) = &state.status.tsdb else {
        return Err(ApiError::new(
            crate::ErrorType::Unavailable,
            "no local TSDB on this component",
        ));
    };
    let s = src.tsdb_status(limit);
    let list = |items: &[(String, u64)]| {
        let mut out = String::from("[");
        for (i, (name, value)) in items.iter().take(limit).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&object(&[
                ("name", string(name)),
                ("value", value.to_string()),
            ]));
        }
        out.push(']');
        out
    };
    let head = object(&[
        ("numSeries", s.num_series.to_string()),
        ("numLabelPairs", s.num_label_pairs.to_string()),
        ("chunkCount", s.chunk_count.to_string()),
        ("minTime", s.min_time.to_string()),
        ("maxTime", s.max_time.to_string()),
    ]);
    let data = object(&[
        ("headStats", head),
        (
            "seriesCountByMetricName",
            list(&s.series_count_by_metric_name),
        ),
        (
            "labelValueCountByLabelName",
            list(&s.label_value_count_by_label_name),
        ),
        (
            "memoryInBytesByLabelName",
            list(&s.memory_in_bytes_by_label_name),
        ),
        (
            "seriesCountByLabelValuePair",
            list(&s.series_count_by_label_value_pair),
        ),
    ]);
    Ok(json::success(&data, &[]))
}
