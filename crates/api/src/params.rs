//! Request parameters as Prometheus reads them: URL query and form body
//! merged (body first), times, durations and `match[]` selectors.

use axum::extract::{FromRequest, Request};
use axum::http::{header, Method};
use hearth_model::{MatchOp, Matcher, Timestamp, METRIC_NAME};

use crate::error::ApiError;

/// Prometheus's "minus infinity" instant, in milliseconds.
pub const MIN_TIME: Timestamp = -9_223_309_901_257_974 * 1000;
/// Prometheus's "plus infinity" instant, in milliseconds.
pub const MAX_TIME: Timestamp = 9_223_309_901_257_974 * 1000 + 999;

/// Largest accepted form body.
const MAX_FORM_BYTES: usize = 16 << 20;

/// All parameters of a request: form-body pairs first, then URL pairs.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// How many leading pairs came from the body.
    from_body: usize,
    /// The tenant the request named (`X-Scope-OrgID` / `THANOS-TENANT`).
    tenant: Option<String>,
}

impl Params {
    pub fn from_pairs(body: Vec<(String, String)>, url: Vec<(String, String)>) -> Self {
        let from_body = body.len();
        let mut pairs = body;
        pairs.extend(url);
        Self {
            pairs,
            from_body,
            tenant: None,
        }
    }

    /// The tenant the request's headers named, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Sets the request's tenant.
    pub fn with_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant = tenant;
        self
    }

    /// A single-valued parameter: the body's value wins over the URL's.
    pub fn get(&self, name: &str) -> Option<&str> {
        let body = self.pairs[..self.from_body].iter().find(|(n, _)| n == name);
        let url = || self.pairs[self.from_body..].iter().find(|(n, _)| n == name);
        body.or_else(url).map(|(_, v)| v.as_str())
    }

    /// A repeated parameter: body values, then URL values.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An optional time parameter, `default` when absent or empty.
    pub fn time_or(&self, name: &str, default: Timestamp) -> Result<Timestamp, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => parse_time(v).map_err(|e| {
                ApiError::invalid_param(name, format!("invalid time value for '{name}': {e}"))
            }),
        }
    }

    /// The `limit` parameter: 0 (no limit) when absent.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(n as usize),
                _ => Err(ApiError::invalid_param(
                    "limit",
                    format!("cannot parse \"{v}\": must be a non-negative integer"),
                )),
            },
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let url: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let tenant = crate::remote_write::tenant_of(req.headers());
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let mut body = Vec::new();
        if matches!(*req.method(), Method::POST | Method::PUT) && is_form {
            let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|e| ApiError::bad_data(format!("error parsing form body: {e}")))?;
            body = form_urlencoded::parse(&bytes).into_owned().collect();
        }
        let _ = state;
        Ok(Params::from_pairs(body, url).with_tenant(tenant))
    }
}

/// Parses a `<time>`: float seconds, RFC 3339, or the two magic instants.
pub fn parse_time(v: &str) -> Result<Timestamp, String> {
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() {
            let ms = (secs * 1000.0).round();
            if ms >= MIN_TIME as f64 && ms <= MAX_TIME as f64 {
                return Ok(ms as Timestamp);
            }
        }
    }
    match v {
        "-292273086-05-16T16:47:06Z" => return Ok(MIN_TIME),
        "292277025-08-18T07:12:54.999999999Z" => return Ok(MAX_TIME),
        _ => {}
    }
    if let Ok(t) = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        let ns = t.unix_timestamp_nanos();
        return Ok((ns / 1_000_000) as Timestamp);
    }
    Err(format!("cannot parse {v:?} to a valid timestamp"))
}

/// Parses a `<duration>` into milliseconds: float seconds or a Prometheus
/// duration string (`1h30m`, `500ms`, `2d`).
pub fn parse_duration(v: &str) -> Result<i64, String> {
    if let Ok(secs) = v.parse::<f64>() {
        let ns = secs * 1e9;
        if ns.is_finite() && ns.abs() < i64::MAX as f64 {
            return Ok((secs * 1000.0).round() as i64);
        }
        return Err(format!(
            "cannot parse {v:?} to a valid duration. It overflows int64"
        ));
    }
    parse_prometheus_duration(v).ok_or_else(|| format!("cannot parse {v:?} to a valid duration"))
}

/// Prometheus's `model.ParseDuration`: units y w d h m s ms, largest first,
/// each at most once; `0` alone is allowed.
pub fn parse_prometheus_duration(v: &str) -> Option<i64> {
    if v == "0" {
        return Some(0);
    }
    if v.is_empty() {
        return None;
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bytes = v.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last_unit = usize::MAX;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: i64 = v[start..i].parse().ok()?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &v[ustart..i];
        let idx = UNITS.iter().position(|(u, _)| *u == unit)?;
        if last_unit != usize::MAX && idx <= last_unit {
            return None;
        }
        last_unit = idx;
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    Some(total)
}

/// Parses one `match[]` selector into alternatives of matcher lists (a
/// selector with `or` gives several).
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = promql_parser::parser::parse(s).map_err(|e| e.to_string())?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "1:1: parse error: unexpected expression, expected a series selector: {s}"
        ));
    };
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, String> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(name) = &vs.name {
            out.push(Matcher::equal(METRIC_NAME, name.clone()));
        }
        for m in ms {
            use promql_parser::label::MatchOp as P;
            let op = match m.op {
                P::Equal => MatchOp::Equal,
                P::NotEqual => MatchOp::NotEqual,
                P::Re(_) => MatchOp::RegexMatch,
                P::NotRe(_) => MatchOp::RegexNoMatch,
            };
            out.push(Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| e.to_string())?);
        }
        Ok(out)
    };
    let mut alternatives = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        alternatives.push(convert(&vs.matchers.matchers)?);
    } else {
        for group in &vs.matchers.or_matchers {
            alternatives.push(convert(group)?);
        }
    }
    Ok(alternatives)
}

/// Every `match[]` of a request, each checked to have a matcher that does
/// not match the empty string.
pub fn parse_match_params(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut all = Vec::new();
    for s in params.get_all("match[]") {
        let alternatives = parse_selector(s).map_err(|e| ApiError::invalid_param("match[]", e))?;
        for ms in alternatives {
            if ms.iter().all(Matcher::matches_empty) {
                return Err(ApiError::bad_data(
                    "match[] must contain at least one non-empty matcher",
                ));
            }
            all.push(ms);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000.5").unwrap(), 1_700_000_000_500);
        assert_eq!(parse_time("-1.25").unwrap(), -1250);
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z").unwrap(),
            1_435_781_451_781
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51.781+02:00").unwrap(),
            1_435_781_451_781
        );
        assert_eq!(parse_time("-292273086-05-16T16:47:06Z").unwrap(), MIN_TIME);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("15").unwrap(), 15_000);
        assert_eq!(parse_duration("0.5").unwrap(), 500);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500);
        assert_eq!(parse_duration("2d12h").unwrap(), 216_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("1m1h").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("-5m").is_err());
        assert_eq!(parse_duration("-5").unwrap(), -5000);
    }

    #[test]
    fn body_values_win_and_come_first() {
        let p = Params::from_pairs(
            vec![("a".into(), "body".into()), ("m".into(), "1".into())],
            vec![("a".into(), "url".into()), ("m".into(), "2".into())],
        );
        assert_eq!(p.get("a"), Some("body"));
        assert_eq!(p.get_all("m"), vec!["1", "2"]);
    }

    #[test]
    fn selectors_parse_and_empty_matchers_are_refused() {
        let ms = parse_selector(r#"up{job=~"a|b"}"#).unwrap();
        assert_eq!(ms[0].len(), 2);
        assert_eq!(ms[0][0], Matcher::equal("__name__", "up"));
        let p = Params::from_pairs(vec![("match[]".into(), r#"{job=~".*"}"#.into())], vec![]);
        assert!(parse_match_params(&p).is_err());
        assert!(parse_selector("rate(x[5m])").is_err());
    }
}
