//! `/api/v1/query`, `/api/v1/query_range` and `/api/v1/format_query`:
//! PromQL over the storage, answered in Prometheus's JSON.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use hearth_promql::{Engine, Error as QueryError, QueryResult, Value};

use crate::error::{ApiError, ApiResult, ErrorType};
use crate::json;
use crate::params::{parse_duration, Params};
use crate::ApiState;

/// At most this many points per series in a range query (Prometheus's).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

const TRUNCATED: &str = "results truncated due to limit";

/// The `query` parameter. An empty one is refused here with the parser's
/// message (Prometheus 3 has no position to give for it); anything else,
/// blank included, goes to the parser, whose errors say where they are.
fn query_param(params: &Params) -> ApiResult<String> {
    match params.get("query") {
        Some(q) if !q.is_empty() => Ok(q.to_string()),
        _ => Err(ApiError::invalid_param(
            "query",
            "unknown position: parse error: no expression found in input",
        )),
    }
}

/// The engine for one request: the server's options with this request's
/// `lookback_delta` and `timeout`.
fn engine_for(state: &ApiState, params: &Params) -> ApiResult<(Engine, Duration)> {
    let mut opts = state.engine_options.clone();
    if let Some(v) = params.get("lookback_delta").filter(|v| !v.is_empty()) {
        let ms = parse_duration(v).map_err(|e| ApiError::invalid_param("lookback_delta", e))?;
        if ms < 0 {
            return Err(ApiError::invalid_param(
                "lookback_delta",
                "lookback delta must not be negative",
            ));
        }
        if ms > 0 {
            opts.lookback_delta_ms = ms;
        }
    }
    let mut timeout = opts.timeout;
    if let Some(v) = params.get("timeout").filter(|v| !v.is_empty()) {
        let ms = parse_duration(v).map_err(|e| ApiError::invalid_param("timeout", e))?;
        if ms <= 0 {
            return Err(ApiError::invalid_param(
                "timeout",
                "timeout must be positive",
            ));
        }
        timeout = timeout.min(Duration::from_millis(ms as u64));
    }
    opts.timeout = timeout;
    Ok((Engine::new(opts), timeout))
}

fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Parse(m) => ApiError::invalid_param("query", m),
        QueryError::Execution(m) => ApiError::new(ErrorType::Execution, m),
        e @ QueryError::TooManySamples(_) => ApiError::new(ErrorType::Execution, e.to_string()),
        e @ QueryError::Timeout(_) => ApiError::new(ErrorType::Timeout, e.to_string()),
        e @ QueryError::Canceled(_) => ApiError::new(ErrorType::Canceled, e.to_string()),
        QueryError::Storage(e) => e.into(),
    }
}

/// Runs a query within `timeout` without holding up the async workers
/// (evaluation is CPU work): on the multi-threaded runtime in place, with
/// `block_in_place` handing this worker's other tasks to another thread
/// (no hand-over of the query itself, which costs a small query a third of
/// its latency in thread wake-ups), elsewhere on the blocking pool. `work`
/// gets the runtime to wait on storage with, and the timeout. A panic in
/// the engine is answered as an internal error instead of dropping the
/// connection.
async fn run_query<F>(timeout: Duration, work: F) -> ApiResult<QueryResult>
where
    F: FnOnce(&tokio::runtime::Handle, Duration) -> hearth_promql::Result<QueryResult>
        + Send
        + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let result = match handle.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => {
            let work = std::panic::AssertUnwindSafe(move || work(&handle, timeout));
            tokio::task::block_in_place(|| std::panic::catch_unwind(work))
                .map_err(|p| panic_message(p.as_ref()))
        }
        _ => tokio::task::spawn_blocking(move || work(&handle, timeout))
            .await
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(r) => r.map_err(query_error),
        Err(e) => {
            tracing::error!(error = %e, "query evaluation panicked");
            Err(ApiError::internal(format!("query evaluation failed: {e}")))
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// Waits for a query on `rt`, giving up with Prometheus's timeout error
/// after `timeout` (the engine also checks its deadline between steps).
fn block_on_within(
    rt: &tokio::runtime::Handle,
    timeout: Duration,
    query: impl std::future::Future<Output = hearth_promql::Result<QueryResult>>,
) -> hearth_promql::Result<QueryResult> {
    rt.block_on(async {
        tokio::time::timeout(timeout, query)
            .await
            .unwrap_or_else(|_| Err(QueryError::Timeout("query execution".into())))
    })
}

pub async fn instant(State(state): State<ApiState>, params: Params) -> ApiResult<Response> {
    let query = query_param(&params)?;
    let t = params.time_or("time", (state.clock)())?;
    let limit = params.limit()?;
    let (engine, timeout) = engine_for(&state, &params)?;
    let storage = state.queryable_for(&params)?;
    let r = run_query(timeout, move |rt, timeout| {
        block_on_within(
            rt,
            timeout,
            engine.instant_query(storage.as_ref(), &query, t),
        )
    })
    .await?;
    Ok(render(r, limit))
}

pub async fn range(State(state): State<ApiState>, params: Params) -> ApiResult<Response> {
    let query = query_param(&params)?;
    let start = required_time(&params, "start")?;
    let end = required_time(&params, "end")?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = match params.get("step") {
        None | Some("") => return Err(ApiError::invalid_param("step", "missing step")),
        Some(v) => parse_duration(v).map_err(|e| ApiError::invalid_param("step", e))?,
    };
    if step <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    if let Ok(expr) = promql_parser::parser::parse(&query) {
        use promql_parser::parser::value::ValueType;
        let vt = expr.value_type();
        if !matches!(vt, ValueType::Scalar | ValueType::Vector) {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"query\": invalid expression type \"{vt}\" for range query, must be Scalar or instant Vector"
            )));
        }
    }
    let limit = params.limit()?;
    let (engine, timeout) = engine_for(&state, &params)?;
    let storage = state.queryable_for(&params)?;
    let r = run_query(timeout, move |rt, timeout| {
        block_on_within(
            rt,
            timeout,
            engine.range_query(storage.as_ref(), &query, start, end, step),
        )
    })
    .await?;
    Ok(render(r, limit))
}

fn required_time(params: &Params, name: &str) -> ApiResult<i64> {
    match params.get(name) {
        None | Some("") => Err(ApiError::invalid_param(name, format!("missing {name}"))),
        Some(_) => params.time_or(name, 0),
    }
}

pub async fn format(params: Params) -> ApiResult<Response> {
    let query = query_param(&params)?;
    let expr =
        promql_parser::parser::parse(&query).map_err(|e| ApiError::invalid_param("query", e))?;
    let mut out = String::new();
    json::write_str(&mut out, &expr.prettify(), true);
    Ok(json::success(&out, &[]))
}

/// Renders a result as `{"resultType":…,"result":…}`.
fn render(r: QueryResult, limit: usize) -> Response {
    let mut warnings = r.warnings;
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"resultType":""#);
    out.push_str(r.value.type_name());
    out.push_str(r#"","result":"#);
    match r.value {
        Value::Scalar { t, v } => {
            out.push('[');
            out.push_str(&format_float_seconds(t));
            out.push_str(",\"");
            out.push_str(&format_value_plain(v));
            out.push_str("\"]");
        }
        Value::String { t, v } => {
            out.push('[');
            out.push_str(&format_float_seconds(t));
            out.push(',');
            json::write_str(&mut out, &v, true);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if limit > 0 && i == limit {
                    warnings.push(TRUNCATED.into());
                    break;
                }
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                json::write_labels(&mut out, &s.metric);
                out.push_str(r#","value":"#);
                write_point(&mut out, s.t, s.f);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if limit > 0 && i == limit {
                    warnings.push(TRUNCATED.into());
                    break;
                }
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                json::write_labels(&mut out, &s.metric);
                out.push_str(r#","values":["#);
                for (j, p) in s.floats.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, p.t, p.f);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    json::success_with_infos(&out, &warnings, &r.infos)
}

/// `[<timestamp>,"<value>"]`, a sample as vectors and matrices show it.
fn write_point(out: &mut String, t: i64, f: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push_str(",\"");
    write_sample_value(out, f);
    out.push_str("\"]");
}

/// A sample timestamp appended to `out`: integer seconds, then `.` and
/// exactly three digits when there are milliseconds (specs/http-api.md
/// §2.2).
pub fn write_timestamp(out: &mut String, t: i64) {
    use std::fmt::Write;
    if t < 0 {
        out.push('-');
    }
    let a = t.unsigned_abs();
    // Writing to a String cannot fail.
    if a.is_multiple_of(1000) {
        let _ = write!(out, "{}", a / 1000);
    } else {
        let _ = write!(out, "{}.{:03}", a / 1000, a % 1000);
    }
}

/// A scalar or string result's timestamp: `t / 1000` as the shortest float.
pub fn format_float_seconds(t: i64) -> String {
    // Rust's shortest round-trip form prints whole numbers without a point.
    format!("{}", t as f64 / 1000.0)
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// Rule F: plain decimal, never an exponent.
pub fn format_value_plain(v: f64) -> String {
    special(v)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{v}"))
}

/// Rule S, appended to `out`: Go's `FormatFloat(v, 'f' or 'e', -1, 64)` as
/// Prometheus's JSON encoder picks it: exponent form below 1e-6 and from
/// 1e21.
pub fn write_sample_value(out: &mut String, v: f64) {
    use std::fmt::Write;
    if let Some(s) = special(v) {
        out.push_str(s);
        return;
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let e = format!("{v:e}");
        let (mantissa, exp) = e.split_once('e').expect("{:e} always has an exponent");
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
        return;
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_sample_value(v: f64) -> String {
        let mut s = String::new();
        write_sample_value(&mut s, v);
        s
    }

    fn format_timestamp(t: i64) -> String {
        let mut s = String::new();
        write_timestamp(&mut s, t);
        s
    }

    #[test]
    fn values_format_like_prometheus() {
        for (x, s, f) in [
            (1.0, "1", "1"),
            (0.1, "0.1", "0.1"),
            (-2.5, "-2.5", "-2.5"),
            (1234567.125, "1234567.125", "1234567.125"),
            (0.000001, "0.000001", "0.000001"),
            (1.5e-7, "1.5e-07", "0.00000015"),
            (1e21, "1e+21", "1000000000000000000000"),
            (
                1.2345678901234568e20,
                "123456789012345680000",
                "123456789012345680000",
            ),
            (-0.0, "-0", "-0"),
            (f64::NAN, "NaN", "NaN"),
            (f64::INFINITY, "+Inf", "+Inf"),
            (f64::NEG_INFINITY, "-Inf", "-Inf"),
        ] {
            assert_eq!(format_sample_value(x), s, "rule S for {x}");
            assert_eq!(format_value_plain(x), f, "rule F for {x}");
        }
        assert_eq!(format_sample_value(1e100), "1e+100");
    }

    #[test]
    fn timestamps_format_like_prometheus() {
        assert_eq!(format_timestamp(1435781451781), "1435781451.781");
        assert_eq!(format_timestamp(1435781451780), "1435781451.780");
        assert_eq!(format_timestamp(1435781451001), "1435781451.001");
        assert_eq!(format_timestamp(1435781451000), "1435781451");
        assert_eq!(format_timestamp(-1500), "-1.500");
        assert_eq!(format_float_seconds(1435781451780), "1435781451.78");
        assert_eq!(format_float_seconds(1435781451000), "1435781451");
    }
}
