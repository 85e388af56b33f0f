//! `/api/v1/targets`, `/api/v1/targets/metadata` and `/api/v1/scrape_pools`
//! over whatever scrapes ([`TargetsSource`]; without one the lists are
//! empty), in Prometheus's JSON shapes.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use hearth_model::Labels;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::{json, ApiState};

/// A target's health after its last scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
    /// Not scraped yet.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

/// A target being scraped.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    /// Labels before relabeling (with `__address__`, `__meta_*`, ...).
    pub discovered_labels: Labels,
    /// Labels after relabeling, without the `__` ones.
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub global_url: String,
    /// Empty when the last scrape succeeded.
    pub last_error: String,
    /// Start of the last scrape, ms since the epoch (`None`: never).
    pub last_scrape_ms: Option<i64>,
    pub last_scrape_duration_seconds: f64,
    pub health: Health,
    /// Prometheus duration strings (`1m`, `10s`).
    pub scrape_interval: String,
    pub scrape_timeout: String,
}

/// A target relabeling dropped.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
    pub scrape_pool: String,
}

/// Every target at one moment.
#[derive(Debug, Clone, Default)]
pub struct TargetsSnapshot {
    pub active: Vec<ActiveTarget>,
    /// The dropped targets kept (`keep_dropped_targets` may cap them).
    pub dropped: Vec<DroppedTarget>,
    /// Dropped targets per pool, counting those not kept.
    pub dropped_counts: BTreeMap<String, usize>,
    /// Every configured pool, including those without targets.
    pub pools: Vec<String>,
}

/// Metadata a target exposed for one metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetMetadata {
    /// The target's labels.
    pub target: Labels,
    pub metric: String,
    pub metric_type: String,
    pub help: String,
    pub unit: String,
}

/// What scrapes: the scrape manager of `standalone` and `scrape`.
pub trait TargetsSource: Send + Sync {
    fn targets(&self) -> TargetsSnapshot;
    fn metadata(&self) -> Vec<TargetMetadata>;
}

/// `GET /api/v1/targets?state=&scrapePool=`.
pub async fn targets(State(state): State<ApiState>, params: Params) -> ApiResult<Response> {
    let snapshot = state
        .targets
        .as_ref()
        .map(|t| t.targets())
        .unwrap_or_default();
    let which = params.get("state").unwrap_or("").to_ascii_lowercase();
    let pool = params.get("scrapePool").filter(|p| !p.is_empty());
    let (show_active, show_dropped) = match which.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        // Prometheus answers both lists empty for an unknown state.
        _ => (false, false),
    };
    let in_pool = |p: &str| pool.is_none_or(|want| want == p);
    let mut active: Vec<&ActiveTarget> = snapshot
        .active
        .iter()
        .filter(|t| show_active && in_pool(&t.scrape_pool))
        .collect();
    active.sort_by(|a, b| (&a.scrape_pool, &a.labels).cmp(&(&b.scrape_pool, &b.labels)));
    let mut out = String::from("{\"activeTargets\":[");
    for (i, t) in active.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"discoveredLabels\":");
        json::write_labels(&mut out, &t.discovered_labels);
        out.push_str(",\"labels\":");
        json::write_labels(&mut out, &t.labels);
        for (key, value) in [
            ("scrapePool", t.scrape_pool.as_str()),
            ("scrapeUrl", t.scrape_url.as_str()),
            ("globalUrl", t.global_url.as_str()),
            ("lastError", t.last_error.as_str()),
        ] {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            json::write_str(&mut out, value, true);
        }
        out.push_str(",\"lastScrape\":");
        let last = match t.last_scrape_ms {
            Some(ms) => crate::status::rfc3339(ms),
            None => "0001-01-01T00:00:00Z".to_string(),
        };
        json::write_str(&mut out, &last, true);
        out.push_str(",\"lastScrapeDuration\":");
        out.push_str(&format!("{}", t.last_scrape_duration_seconds));
        out.push_str(",\"health\":");
        json::write_str(&mut out, t.health.as_str(), true);
        out.push_str(",\"scrapeInterval\":");
        json::write_str(&mut out, &t.scrape_interval, true);
        out.push_str(",\"scrapeTimeout\":");
        json::write_str(&mut out, &t.scrape_timeout, true);
        out.push('}');
    }
    out.push_str("],\"droppedTargets\":[");
    let dropped = snapshot
        .dropped
        .iter()
        .filter(|t| show_dropped && in_pool(&t.scrape_pool));
    for (i, t) in dropped.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"discoveredLabels\":");
        json::write_labels(&mut out, &t.discovered_labels);
        out.push_str(",\"scrapePool\":");
        json::write_str(&mut out, &t.scrape_pool, true);
        out.push('}');
    }
    out.push_str("],\"droppedTargetCounts\":");
    if show_dropped {
        out.push('{');
        let counts = snapshot.dropped_counts.iter().filter(|(p, _)| in_pool(p));
        for (i, (p, n)) in counts.enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_str(&mut out, p, true);
            out.push_str(&format!(":{n}"));
        }
        out.push('}');
    } else {
        out.push_str("null");
    }
    out.push('}');
    Ok(json::success(&out, &[]))
}

/// `GET /api/v1/targets/metadata?match_target=&metric=&limit=`.
pub async fn metadata(State(state): State<ApiState>, params: Params) -> ApiResult<Response> {
    let limit = match params.get("limit") {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_data("limit must be a number"))?,
        ),
    };
    let metric = params.get("metric").filter(|m| !m.is_empty());
    let matchers = match params.get("match_target").filter(|m| !m.is_empty()) {
        None => Vec::new(),
        Some(sel) => crate::params::parse_selector(sel)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match_target\": {e}")))?,
    };
    let entries = state
        .targets
        .as_ref()
        .map(|t| t.metadata())
        .unwrap_or_default();
    let mut out = String::from("[");
    let mut n = 0i64;
    for m in &entries {
        if limit.is_some_and(|l| l >= 0 && n >= l) {
            break;
        }
        if metric.is_some_and(|want| want != m.metric) {
            continue;
        }
        let target_matches = |group: &Vec<hearth_model::Matcher>| {
            group
                .iter()
                .all(|mm| mm.matches(m.target.get(&mm.name).unwrap_or("")))
        };
        if !matchers.is_empty() && !matchers.iter().any(target_matches) {
            continue;
        }
        if n > 0 {
            out.push(',');
        }
        n += 1;
        out.push_str("{\"target\":");
        json::write_labels(&mut out, &m.target);
        if metric.is_none() {
            out.push_str(",\"metric\":");
            json::write_str(&mut out, &m.metric, true);
        }
        out.push_str(",\"type\":");
        json::write_str(&mut out, &m.metric_type, true);
        out.push_str(",\"help\":");
        json::write_str(&mut out, &m.help, true);
        out.push_str(",\"unit\":");
        json::write_str(&mut out, &m.unit, true);
        out.push('}');
    }
    out.push(']');
    Ok(json::success(&out, &[]))
}

/// `GET /api/v1/scrape_pools`.
pub async fn scrape_pools(State(state): State<ApiState>) -> ApiResult<Response> {
    let pools = state
        .targets
        .as_ref()
        .map(|t| t.targets().pools)
        .unwrap_or_default();
    let mut out = String::from("{\"scrapePools\":");
    json::write_str_array(&mut out, &pools, true);
    out.push('}');
    Ok(json::success(&out, &[]))
}
