//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::response::Response;
use hearth_model::{Labels, Matcher};
use hearth_storage_api::SelectHints;

use crate::error::{ApiError, ApiResult};
use crate::params::{parse_match_params, Params, MAX_TIME, MIN_TIME};
use crate::{json, ApiState};

const TRUNCATED: &str = "results truncated due to limit";

fn range(params: &Params) -> ApiResult<(i64, i64)> {
    let start = params.time_or("start", MIN_TIME)?;
    let end = params.time_or("end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start timestamp",
        ));
    }
    Ok((start, end))
}

pub async fn series(State(state): State<ApiState>, params: Params) -> ApiResult<Response> {
    let (start, end) = range(&params)?;
    let limit = params.limit()?;
    let selectors = parse_match_params(&params)?;
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let queryable = state.queryable_for(&params)?;
    let mut all: BTreeSet<Labels> = BTreeSet::new();
    let mut warnings = Vec::new();
    for matchers in &selectors {
        let set = queryable
            .select(matchers, SelectHints::new(start, end).series_only())
            .await?;
        warnings.extend(set.warnings);
        all.extend(set.series.into_iter().map(|s| s.labels));
    }
    let mut out = String::from("[");
    for (i, l) in all.iter().enumerate() {
        if limit > 0 && i == limit {
            warnings.push(TRUNCATED.to_string());
            break;
        }
        if i > 0 {
            out.push(',');
        }
        json::write_labels(&mut out, l);
    }
    out.push(']');
    Ok(json::success(&out, &warnings))
}

pub async fn labels(State(state): State<ApiState>, params: Params) -> ApiResult<Response> {
    let (start, end) = range(&params)?;
    let limit = params.limit()?;
    let selectors = parse_match_params(&params)?;
    let queryable = state.queryable_for(&params)?;
    let mut names = BTreeSet::new();
    let mut warnings = Vec::new();
    for matchers in selectors_or_all(&selectors) {
        let r = queryable.label_names(matchers, start, end).await?;
        warnings.extend(r.warnings);
        names.extend(r.values);
    }
    Ok(render_values(names, limit, warnings))
}

pub async fn label_values(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let name = decode_label_name(&name)
        .ok_or_else(|| ApiError::bad_data(format!("invalid label name: {name:?}")))?;
    let (start, end) = range(&params)?;
    let limit = params.limit()?;
    let selectors = parse_match_params(&params)?;
    let queryable = state.queryable_for(&params)?;
    let mut values = BTreeSet::new();
    let mut warnings = Vec::new();
    for matchers in selectors_or_all(&selectors) {
        let r = queryable.label_values(&name, matchers, start, end).await?;
        warnings.extend(r.warnings);
        values.extend(r.values);
    }
    Ok(render_values(values, limit, warnings))
}

fn selectors_or_all(selectors: &[Vec<Matcher>]) -> Vec<&[Matcher]> {
    if selectors.is_empty() {
        vec![&[]]
    } else {
        selectors.iter().map(Vec::as_slice).collect()
    }
}

fn render_values(values: BTreeSet<String>, limit: usize, mut warnings: Vec<String>) -> Response {
    let mut list: Vec<String> = values.into_iter().collect();
    if limit > 0 && list.len() > limit {
        list.truncate(limit);
        warnings.push(TRUNCATED.to_string());
    }
    let mut out = String::new();
    json::write_str_array(&mut out, &list, false);
    json::success(&out, &warnings)
}

/// Decodes a label name from the path: `U__` names use Prometheus's
/// "values" escaping (`__` is `_`, `_<hex>_` a code point).
pub fn decode_label_name(raw: &str) -> Option<String> {
    let Some(rest) = raw.strip_prefix("U__") else {
        return (!raw.is_empty()).then(|| raw.to_string());
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() => hex.push(h),
                _ => return None,
            }
        }
        let cp = u32::from_str_radix(&hex, 16).ok()?;
        out.push(char::from_u32(cp)?);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_decode_u_escaping() {
        assert_eq!(decode_label_name("job").as_deref(), Some("job"));
        assert_eq!(
            decode_label_name("U__http_2e_status__code").as_deref(),
            Some("http.status_code")
        );
        assert_eq!(decode_label_name("U__bad_zz_"), None);
    }
}
