//! `/api/v1/metadata`: metric metadata (type, help, unit) per metric family.
//!
//! From what remote-write senders ship (1.0 `metadata`, 2.0 per-series
//! metadata), kept here, and from what the scraper's targets currently
//! expose. Distinct entries per family are kept, the newest last, at most
//! [`MAX_PER_FAMILY`] of the remote-written ones.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use parking_lot::RwLock;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::{json, ApiState};

/// Distinct metadata entries kept per metric family.
pub const MAX_PER_FAMILY: usize = 16;

/// One metadata entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`,
    /// `stateset` or `unknown`.
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

/// Metadata by metric family name.
#[derive(Debug, Default)]
pub struct MetadataStore {
    families: RwLock<BTreeMap<String, Vec<MetricMetadata>>>,
}

impl MetadataStore {
    pub fn record(&self, family: &str, m: MetricMetadata) {
        if family.is_empty() {
            return;
        }
        if self
            .families
            .read()
            .get(family)
            .is_some_and(|v| v.contains(&m))
        {
            return;
        }
        let mut families = self.families.write();
        let list = families.entry(family.to_string()).or_default();
        if !list.contains(&m) {
            if list.len() == MAX_PER_FAMILY {
                list.remove(0);
            }
            list.push(m);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, Vec<MetricMetadata>> {
        self.families.read().clone()
    }
}

fn int_param(params: &Params, name: &str) -> ApiResult<Option<i64>> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_data(format!("{name} must be a number"))),
    }
}

pub async fn handle(State(state): State<ApiState>, params: Params) -> ApiResult<Response> {
    let limit = int_param(&params, "limit")?;
    let per_metric = int_param(&params, "limit_per_metric")?.filter(|&n| n > 0);
    let metric = params.get("metric").filter(|m| !m.is_empty());
    let mut out = String::from("{");
    let mut n = 0i64;
    let mut families = state.metadata.snapshot();
    if let Some(targets) = &state.targets {
        for m in targets.metadata() {
            let entry = MetricMetadata {
                metric_type: m.metric_type,
                help: m.help,
                unit: m.unit,
            };
            let list = families.entry(m.metric).or_default();
            if !list.contains(&entry) {
                list.push(entry);
            }
        }
    }
    for (family, entries) in families {
        if metric.is_some_and(|m| m != family) {
            continue;
        }
        if limit.is_some_and(|l| l >= 0 && n >= l) {
            break;
        }
        if n > 0 {
            out.push(',');
        }
        n += 1;
        json::write_str(&mut out, &family, false);
        out.push_str(":[");
        let take = per_metric.map(|p| p as usize).unwrap_or(usize::MAX);
        for (i, m) in entries.iter().take(take).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"type\":");
            json::write_str(&mut out, &m.metric_type, true);
            out.push_str(",\"unit\":");
            json::write_str(&mut out, &m.unit, true);
            out.push_str(",\"help\":");
            json::write_str(&mut out, &m.help, true);
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    Ok(json::success(&out, &[]))
}
