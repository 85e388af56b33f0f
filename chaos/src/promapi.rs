//! The Prometheus HTTP API as the probes and the checks use it: instant and
//! range queries against the querier or one ingester, and their answers
//! parsed into the suite's series (keyed by tenant and `series` label), with
//! the warnings a partial response carries.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::load::SERIES_LABEL;

/// The label reads put the tenant in.
pub const TENANT_LABEL: &str = "tenant_id";

/// A series of the suite as reads show it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SeriesKey {
    pub tenant: String,
    pub series: String,
}

impl std::fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{tenant_id={:?}, series={:?}}}",
            self.tenant, self.series
        )
    }
}

/// Samples by series; a series answered twice (say, two label sets that
/// differ only by a label the suite ignores) has its samples concatenated,
/// so the duplicate shows.
pub type Held = BTreeMap<SeriesKey, Vec<(i64, f64)>>;

/// A successful answer: `data` and the warnings.
#[derive(Debug)]
pub struct Answer {
    pub data: Value,
    pub warnings: Vec<String>,
}

/// A query: against which API, with what parameters.
pub struct Query<'a> {
    pub base: &'a str,
    /// `query` or `query_range`.
    pub endpoint: &'a str,
    pub params: Vec<(&'a str, String)>,
    /// `X-Scope-OrgID`, to see one tenant.
    pub tenant: Option<&'a str>,
    pub timeout: Duration,
}

impl Query<'_> {
    /// Runs the query: an answer with status "success", or why not.
    pub async fn run(&self, http: &reqwest::Client) -> Result<Answer, String> {
        let url = format!("{}/api/v1/{}", self.base, self.endpoint);
        let mut request = http.post(&url).form(&self.params).timeout(self.timeout);
        if let Some(tenant) = self.tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        let answer = request.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("timeout after {:?}", self.timeout)
            } else if e.is_connect() {
                "no connection".to_string()
            } else {
                e.to_string()
            }
        })?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .await
            .map_err(|e| format!("{status}: unreadable answer: {e}"))?;
        parse_envelope(status.as_u16(), body)
    }
}

/// The API envelope: data and warnings of a success, the error otherwise.
pub fn parse_envelope(status: u16, body: Value) -> Result<Answer, String> {
    if status != 200 || body["status"] != "success" {
        return Err(format!(
            "{status}: {} {}",
            body["errorType"].as_str().unwrap_or(""),
            body["error"].as_str().unwrap_or("")
        ));
    }
    let warnings = body["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut body = body;
    Ok(Answer {
        data: body["data"].take(),
        warnings,
    })
}

/// The suite's series of a matrix answer (`resultType` "matrix"): each
/// series by its tenant and `series` label, samples as (ms, value).
pub fn parse_matrix(data: &Value) -> Result<Held, String> {
    if data["resultType"] != "matrix" {
        return Err(format!("not a matrix: {}", data["resultType"]));
    }
    let mut held = Held::new();
    for series in data["result"].as_array().into_iter().flatten() {
        let key = series_key(&series["metric"]);
        let samples = held.entry(key).or_default();
        for pair in series["values"].as_array().into_iter().flatten() {
            samples.push(parse_pair(pair)?);
        }
    }
    Ok(held)
}

/// A label set as an answer gives it.
pub type LabelMap = BTreeMap<String, String>;

/// The label sets of a vector answer with their values, as given.
pub fn parse_vector(data: &Value) -> Result<Vec<(LabelMap, f64)>, String> {
    if data["resultType"] != "vector" {
        return Err(format!("not a vector: {}", data["resultType"]));
    }
    data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            Ok((labels, parse_pair(&s["value"])?.1))
        })
        .collect()
}

/// The tenant and `series` of a label set.
pub fn series_key(metric: &Value) -> SeriesKey {
    SeriesKey {
        tenant: metric[TENANT_LABEL].as_str().unwrap_or("").to_string(),
        series: metric[SERIES_LABEL].as_str().unwrap_or("").to_string(),
    }
}

/// `[seconds, "value"]` as (ms, value).
fn parse_pair(pair: &Value) -> Result<(i64, f64), String> {
    let t = pair[0]
        .as_f64()
        .ok_or_else(|| format!("bad sample time in {pair}"))?;
    let v = pair[1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("bad sample value in {pair}"))?;
    Ok(((t * 1000.0).round() as i64, v))
}

/// Seconds with millisecond precision, as the API takes times.
pub fn api_time(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matrices_become_samples_by_tenant_and_series() {
        let data = json!({
            "resultType": "matrix",
            "result": [
                {"metric": {"__name__": "chaos_load", "series": "01", "tenant_id": "t"},
                 "values": [[1.5, "2"], [2.25, "3"]]},
                {"metric": {"__name__": "chaos_load", "series": "01", "tenant_id": "t", "x": "y"},
                 "values": [[2.25, "3"]]},
            ]
        });
        let held = parse_matrix(&data).unwrap();
        let key = SeriesKey {
            tenant: "t".into(),
            series: "01".into(),
        };
        assert_eq!(held.len(), 1);
        assert_eq!(held[&key], vec![(1500, 2.0), (2250, 3.0), (2250, 3.0)]);
        assert!(parse_matrix(&json!({"resultType": "vector", "result": []})).is_err());
    }

    #[test]
    fn envelopes_give_data_and_warnings_or_the_error() {
        let ok = parse_envelope(
            200,
            json!({"status": "success", "data": {"resultType": "vector", "result": []},
                   "warnings": ["store s1 down"]}),
        )
        .unwrap();
        assert_eq!(ok.warnings, vec!["store s1 down"]);
        let v = parse_vector(&ok.data).unwrap();
        assert!(v.is_empty());
        let err = parse_envelope(
            422,
            json!({"status": "error", "errorType": "execution", "error": "boom"}),
        )
        .unwrap_err();
        assert_eq!(err, "422: execution boom");
    }

    #[test]
    fn api_times_have_milliseconds() {
        assert_eq!(api_time(1_700_000_000_123), "1700000000.123");
        assert_eq!(api_time(5), "0.005");
    }
}
