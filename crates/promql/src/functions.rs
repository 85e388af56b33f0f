//! PromQL functions: range-vector functions (`rate`, `*_over_time`, ...),
//! element-wise math, label manipulation, sorting, `histogram_quantile` over
//! classic buckets, `absent` and date functions, as Prometheus computes them.

use hearth_model::{Labels, METRIC_NAME};
use promql_parser::parser::{Call, Expr};

use crate::eval::{
    absent_labels, duration_ms, selector_key, unwrap_parens, Evaluator, FastMap, RangeArg,
    DERIVE_WITHOUT_LE,
};
use crate::{Error, FPoint, Result, Sample, Value};

/// Kahan-Neumaier summation step, as Prometheus's `kahanSumInc`.
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `quantile`: linear interpolation over sorted values, NaNs
/// sorted first.
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` does for
/// ordinary values, and `NaN`, `+Inf`, `-Inf` otherwise.
pub(crate) fn format_go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{f}")
    }
}

/// Go's `math.Max`: NaN wins, +0 beats -0.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN wins, -0 beats +0.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

/// Simple linear regression of the points against time in seconds relative
/// to `intercept_time`, as Prometheus's `linearRegression`.
fn linear_regression(points: &[FPoint], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = points[0].f;
    let mut const_y = true;
    for (i, p) in points.iter().enumerate() {
        if const_y && i > 0 && p.f != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(p.f, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * p.f, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// `rate`, `increase` and `delta` with Prometheus's extrapolation.
fn extrapolated_rate(
    arg: &RangeArg,
    points: &[FPoint],
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let first = points[0];
    let last = points[points.len() - 1];
    let mut result = last.f - first.f;
    if is_counter {
        let mut prev = first.f;
        for p in &points[1..] {
            if p.f < prev {
                result += prev;
            }
            prev = p.f;
        }
    }
    Some(extrapolate(arg, points, result, is_counter, is_rate))
}

/// Prometheus's extrapolation of `result`, the change over `points` (at
/// least two), to the range's edges.
fn extrapolate(
    arg: &RangeArg,
    points: &[FPoint],
    mut result: f64,
    is_counter: bool,
    is_rate: bool,
) -> f64 {
    let range_start = arg.range_end - arg.range_ms;
    let range_end = arg.range_end;
    let first = points[0];
    let last = points[points.len() - 1];
    let mut duration_to_start = (first.t - range_start) as f64 / 1000.0;
    let mut duration_to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let avg_between = sampled_interval / (points.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    if duration_to_start >= threshold {
        duration_to_start = avg_between / 2.0;
    }
    if is_counter && result > 0.0 && first.f >= 0.0 {
        let duration_to_zero = sampled_interval * (first.f / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    extrapolate_to += duration_to_start;
    if duration_to_end >= threshold {
        duration_to_end = avg_between / 2.0;
    }
    extrapolate_to += duration_to_end;
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= arg.range_ms as f64 / 1000.0;
    }
    result *= factor;
    result
}

/// Whether point `i` (≥ 1) starts a new counter: its value fell, or its
/// start time says the counter started after the previous sample, or at
/// the previous sample's time when that one covered an interval of its own
/// (OTel's deltas). A previous sample without a start time, with one at its
/// own time or with an invalid one after it is a cumulative series whose
/// start is unknown: no reset.
fn st_reset(p: &[FPoint], st: &[i64], i: usize) -> bool {
    let (cur, prev) = (p[i], p[i - 1]);
    if cur.f < prev.f {
        return true;
    }
    let s = st[i];
    if s == 0 {
        return false;
    }
    s > prev.t || (s == prev.t && st[i - 1] != 0 && st[i - 1] < prev.t)
}

/// What point `i` (≥ 1) adds to a counter's increase: the difference from
/// the previous point, or after a reset its whole value, except that a
/// counter starting at the very time of its sample (an empty interval)
/// adds nothing.
fn st_increment(p: &[FPoint], st: &[i64], i: usize) -> f64 {
    if !st_reset(p, st, i) {
        p[i].f - p[i - 1].f
    } else if st[i] == p[i].t {
        0.0
    } else {
        p[i].f
    }
}

/// Whether a start time in the window overlaps the sample before it (a
/// start time before the previous sample that is not that sample's own
/// start time): the data is inconsistent, which Prometheus warns about.
fn st_overlaps(p: &[FPoint], st: &[i64]) -> bool {
    (1..st.len().min(p.len())).any(|i| st[i] != 0 && st[i] < p[i - 1].t && st[i] != st[i - 1])
}

/// `rate`/`increase` with start times, as Prometheus's
/// `UseStartTimestamps`: resets per [`st_reset`]; and when the first
/// sample's start time lies inside the range (after its start, before the
/// sample), the counter is taken to be zero then instead of extrapolating
/// to the left (a single sample then suffices). Extrapolation to the right
/// is unchanged (its threshold from the samples' own spacing).
fn st_extrapolated_rate(arg: &RangeArg, p: &[FPoint], st: &[i64], is_rate: bool) -> Option<f64> {
    let range_start = arg.range_end - arg.range_ms;
    let first = *p.first()?;
    let last = p[p.len() - 1];
    let st0 = st[0];
    if !(st0 != 0 && st0 > range_start && st0 < first.t) {
        if p.len() < 2 {
            return None;
        }
        // Prometheus's extrapolation, of the increase with start-time resets.
        let increase: f64 = (1..p.len()).map(|i| st_increment(p, st, i)).sum();
        return Some(extrapolate(arg, p, increase, true, is_rate));
    }
    let increase = first.f + (1..p.len()).map(|i| st_increment(p, st, i)).sum::<f64>();
    let sampled = (last.t - st0) as f64 / 1000.0;
    let mut factor = 1.0;
    if p.len() >= 2 {
        let avg_between = (last.t - first.t) as f64 / 1000.0 / (p.len() - 1) as f64;
        let mut to_end = (arg.range_end - last.t) as f64 / 1000.0;
        if to_end >= avg_between * 1.1 {
            to_end = avg_between / 2.0;
        }
        factor = (sampled + to_end) / sampled;
    }
    if is_rate {
        factor /= arg.range_ms as f64 / 1000.0;
    }
    Some(increase * factor)
}

/// `irate` with start times: a reset per [`st_reset`] counts the last value
/// (nothing for an empty interval).
fn st_irate(p: &[FPoint], st: &[i64]) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let i = p.len() - 1;
    let dt = (p[i].t - p[i - 1].t) as f64 / 1000.0;
    Some(st_increment(p, st, i) / dt)
}

/// `irate` and `idelta` over the last two points.
fn instant_value(points: &[FPoint], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let last = points[points.len() - 1];
    let prev = points[points.len() - 2];
    let mut result = if is_rate && last.f < prev.f {
        last.f
    } else {
        last.f - prev.f
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn calc_trend_value(i: usize, tf: f64, s0: f64, s1: f64, b: f64) -> f64 {
    if i == 0 {
        return b;
    }
    tf * (s1 - s0) + (1.0 - tf) * b
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

/// A date part of a Unix time in seconds, in UTC.
fn date_part(name: &str, secs: f64) -> f64 {
    let s = secs as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let mut doy = d;
            for mm in 1..m {
                doy += days_in_month(y, mm);
            }
            doy as f64
        }
        "days_in_month" => days_in_month(y, m) as f64,
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

/// Natural ordering of strings: digit runs compare as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

fn sample(metric: Labels, t: i64, f: f64) -> Sample {
    Sample {
        metric,
        t,
        f,
        h: None,
        drop_name: false,
    }
}

impl Evaluator<'_> {
    fn string_arg(&mut self, e: &Expr, t: i64) -> Result<String> {
        match self.eval(e, t)? {
            Value::String { v, .. } => Ok(v),
            other => Err(Error::Execution(format!(
                "expected string, got {}",
                other.type_name()
            ))),
        }
    }

    /// Applies `f` to every sample of a vector argument, dropping the name.
    fn map_vector(&mut self, e: &Expr, t: i64, f: impl Fn(f64) -> f64) -> Result<Value> {
        let mut v = self.eval_vector(e, t)?;
        for s in &mut v {
            s.f = f(s.f);
            s.t = t;
            self.drop_metric_name(s);
        }
        self.check_duplicates(&v)?;
        Ok(Value::Vector(v))
    }

    /// Applies `f` to every series of a range argument, dropping the name
    /// unless `keep_name`.
    fn map_range(
        &mut self,
        e: &Expr,
        t: i64,
        keep_name: bool,
        f: impl Fn(&RangeArg, &[FPoint]) -> Option<f64>,
    ) -> Result<Value> {
        self.map_range_st(None, e, t, keep_name, |a, p, _| f(a, p))
    }

    /// [`Self::map_range`] for the counter functions that read start times
    /// (`st_func`, the function's name; `None` for the others): `f` also
    /// gets the window's start times (empty when there are none; subqueries
    /// have none), and a start time that overlaps the previous sample is
    /// warned about.
    fn map_range_st(
        &mut self,
        st_func: Option<&str>,
        e: &Expr,
        t: i64,
        keep_name: bool,
        f: impl Fn(&RangeArg, &[FPoint], &[i64]) -> Option<f64>,
    ) -> Result<Value> {
        if let Expr::MatrixSelector(ms) = unwrap_parens(e) {
            // The common case, without copying the windows.
            let range_ms = duration_ms(&ms.range);
            let end = self.selector_time(&ms.vs, t);
            let arg = RangeArg {
                series: Vec::new(),
                range_ms,
                range_end: end,
                selector: None,
            };
            let mut out = Vec::new();
            let key = selector_key(&ms.vs);
            let mut overlap: Option<Labels> = None;
            if let Some(data) = self.data.get(&key) {
                let n = data.len();
                self.cursors.with(key, 0, 2 * n, |cur| {
                    let (los, his) = cur.split_at_mut(n);
                    for (i, s) in data.iter().enumerate() {
                        los[i] = s.seek(los[i], end - range_ms);
                        his[i] = s.seek(his[i].max(los[i]), end);
                        let window = &s.points[los[i]..his[i]];
                        if window.is_empty() {
                            continue;
                        }
                        let st = match st_func {
                            Some(_) => s.st.get(los[i]..his[i]).unwrap_or(&[]),
                            None => &[],
                        };
                        if overlap.is_none() && st_overlaps(window, st) {
                            overlap = Some(s.metric.clone());
                        }
                        if let Some(v) = f(&arg, window, st) {
                            let mut smp = sample(s.metric.clone(), t, v);
                            if !keep_name {
                                self.drop_metric_name(&mut smp);
                            }
                            out.push(smp);
                        }
                    }
                });
            }
            if let (Some(m), Some(func)) = (overlap, st_func) {
                let pos = self.arg_position(func, 0);
                self.warn(
                    format!(
                        "sample has start time that overlaps with previous sample timestamp for metric {:?}",
                        m.metric_name().unwrap_or("")
                    ),
                    pos,
                );
            }
            self.check_duplicates(&out)?;
            return Ok(Value::Vector(out));
        }
        let arg = self.eval_range(e, t)?;
        let mut out = Vec::new();
        for s in &arg.series {
            if s.floats.is_empty() {
                continue;
            }
            if let Some(v) = f(&arg, &s.floats, &[]) {
                let mut smp = sample(s.metric.clone(), t, v);
                smp.drop_name = s.drop_name;
                if !keep_name {
                    self.drop_metric_name(&mut smp);
                }
                out.push(smp);
            }
        }
        self.check_duplicates(&out)?;
        Ok(Value::Vector(out))
    }

    pub(crate) fn eval_call(&mut self, c: &Call, t: i64) -> Result<Value> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
        let arg = |i: usize| -> Result<&Expr> {
            args.get(i)
                .copied()
                .ok_or_else(|| Error::Execution(format!("missing argument {i} of function {name}")))
        };
        if let Some(range_arg) = args.iter().find(|a| {
            matches!(
                a.value_type(),
                promql_parser::parser::value::ValueType::Matrix
            )
        }) {
            if let Some(m) = self.range_modifier(range_arg) {
                return self.modified_range(name, range_arg, t, m);
            }
        }
        match name {
            "time" => Ok(Value::Scalar {
                t,
                v: t as f64 / 1000.0,
            }),
            "start" => Ok(Value::Scalar {
                t,
                v: self.start as f64 / 1000.0,
            }),
            "end" => Ok(Value::Scalar {
                t,
                v: self.end as f64 / 1000.0,
            }),
            "step" => Ok(Value::Scalar {
                t,
                v: self.step as f64 / 1000.0,
            }),
            "range" => Ok(Value::Scalar {
                t,
                v: (self.end - self.start) as f64 / 1000.0,
            }),
            "min_of" | "max_of" => {
                let mut acc: Option<f64> = None;
                for e in &args {
                    let v = self.eval_scalar(e, t)?;
                    acc = Some(match acc {
                        None => v,
                        Some(a) if name == "min_of" => go_min(a, v),
                        Some(a) => go_max(a, v),
                    });
                }
                Ok(Value::Scalar {
                    t,
                    v: acc.unwrap_or(f64::NAN),
                })
            }
            "pi" => Ok(Value::Scalar {
                t,
                v: std::f64::consts::PI,
            }),
            "vector" => {
                let v = self.eval_scalar(arg(0)?, t)?;
                Ok(Value::Vector(vec![sample(Labels::empty(), t, v)]))
            }
            "scalar" => {
                let v = self.eval_vector(arg(0)?, t)?;
                let f = if v.len() == 1 { v[0].f } else { f64::NAN };
                Ok(Value::Scalar { t, v: f })
            }
            "abs" => self.map_vector(arg(0)?, t, f64::abs),
            "ceil" => self.map_vector(arg(0)?, t, f64::ceil),
            "floor" => self.map_vector(arg(0)?, t, f64::floor),
            "exp" => self.map_vector(arg(0)?, t, f64::exp),
            "ln" => self.map_vector(arg(0)?, t, f64::ln),
            "log2" => self.map_vector(arg(0)?, t, f64::log2),
            "log10" => self.map_vector(arg(0)?, t, f64::log10),
            "sqrt" => self.map_vector(arg(0)?, t, f64::sqrt),
            "sgn" => self.map_vector(arg(0)?, t, |f| {
                if f < 0.0 {
                    -1.0
                } else if f > 0.0 {
                    1.0
                } else {
                    f
                }
            }),
            "acos" => self.map_vector(arg(0)?, t, f64::acos),
            "acosh" => self.map_vector(arg(0)?, t, f64::acosh),
            "asin" => self.map_vector(arg(0)?, t, f64::asin),
            "asinh" => self.map_vector(arg(0)?, t, f64::asinh),
            "atan" => self.map_vector(arg(0)?, t, f64::atan),
            "atanh" => self.map_vector(arg(0)?, t, f64::atanh),
            "cos" => self.map_vector(arg(0)?, t, f64::cos),
            "cosh" => self.map_vector(arg(0)?, t, f64::cosh),
            "sin" => self.map_vector(arg(0)?, t, f64::sin),
            "sinh" => self.map_vector(arg(0)?, t, f64::sinh),
            "tan" => self.map_vector(arg(0)?, t, f64::tan),
            "tanh" => self.map_vector(arg(0)?, t, f64::tanh),
            "deg" => self.map_vector(arg(0)?, t, |f| f * 180.0 / std::f64::consts::PI),
            "rad" => self.map_vector(arg(0)?, t, |f| f * std::f64::consts::PI / 180.0),
            "round" => {
                let to_nearest = match args.get(1) {
                    Some(e) => self.eval_scalar(e, t)?,
                    None => 1.0,
                };
                let inv = 1.0 / to_nearest;
                self.map_vector(arg(0)?, t, move |f| (f * inv + 0.5).floor() / inv)
            }
            "clamp" => {
                let min = self.eval_scalar(arg(1)?, t)?;
                let max = self.eval_scalar(arg(2)?, t)?;
                if max < min {
                    return Ok(Value::Vector(Vec::new()));
                }
                self.map_vector(arg(0)?, t, move |f| go_max(min, go_min(max, f)))
            }
            "clamp_min" => {
                let min = self.eval_scalar(arg(1)?, t)?;
                self.map_vector(arg(0)?, t, move |f| go_max(f, min))
            }
            "clamp_max" => {
                let max = self.eval_scalar(arg(1)?, t)?;
                self.map_vector(arg(0)?, t, move |f| go_min(f, max))
            }
            "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour"
            | "minute" | "month" | "year" => match args.first() {
                None => Ok(Value::Vector(vec![sample(
                    Labels::empty(),
                    t,
                    date_part(name, t as f64 / 1000.0),
                )])),
                Some(e) => self.map_vector(e, t, |f| date_part(name, f)),
            },
            "timestamp" => {
                let mut v = match unwrap_parens(arg(0)?) {
                    Expr::VectorSelector(vs) => self.instant_selector_sample_times(vs, t),
                    e => self.eval_vector(e, t)?,
                };
                for s in &mut v {
                    s.f = s.t as f64 / 1000.0;
                    s.t = t;
                    self.drop_metric_name(s);
                }
                self.check_duplicates(&v)?;
                Ok(Value::Vector(v))
            }
            "start_timestamp" => {
                // Start times travel with selected samples only: of an
                // expression's result there are none.
                let Expr::VectorSelector(vs) = unwrap_parens(arg(0)?) else {
                    self.eval_vector(arg(0)?, t)?;
                    return Ok(Value::Vector(Vec::new()));
                };
                let mut v = self.instant_selector_start_times(vs, t);
                for s in &mut v {
                    self.drop_metric_name(s);
                }
                self.check_duplicates(&v)?;
                Ok(Value::Vector(v))
            }
            "rate" => self.map_range_st(Some(name), arg(0)?, t, false, |a, p, st| {
                if st.is_empty() {
                    extrapolated_rate(a, p, true, true)
                } else {
                    st_extrapolated_rate(a, p, st, true)
                }
            }),
            "increase" => self.map_range_st(Some(name), arg(0)?, t, false, |a, p, st| {
                if st.is_empty() {
                    extrapolated_rate(a, p, true, false)
                } else {
                    st_extrapolated_rate(a, p, st, false)
                }
            }),
            "delta" => self.map_range(arg(0)?, t, false, |a, p| {
                extrapolated_rate(a, p, false, false)
            }),
            "irate" => self.map_range_st(Some(name), arg(0)?, t, false, |_, p, st| {
                if st.is_empty() {
                    instant_value(p, true)
                } else {
                    st_irate(p, st)
                }
            }),
            "idelta" => self.map_range(arg(0)?, t, false, |_, p| instant_value(p, false)),
            "resets" => self.map_range_st(Some(name), arg(0)?, t, false, |_, p, st| {
                if st.is_empty() {
                    Some(p.windows(2).filter(|w| w[1].f < w[0].f).count() as f64)
                } else {
                    Some((1..p.len()).filter(|&i| st_reset(p, st, i)).count() as f64)
                }
            }),
            "changes" => self.map_range(arg(0)?, t, false, |_, p| {
                Some(
                    p.windows(2)
                        .filter(|w| w[1].f != w[0].f && !(w[1].f.is_nan() && w[0].f.is_nan()))
                        .count() as f64,
                )
            }),
            "deriv" => self.map_range(arg(0)?, t, false, |_, p| {
                if p.len() < 2 {
                    return None;
                }
                Some(linear_regression(p, p[0].t).0)
            }),
            "predict_linear" => {
                let d = self.eval_scalar(arg(1)?, t)?;
                self.map_range(arg(0)?, t, false, move |_, p| {
                    if p.len() < 2 {
                        return None;
                    }
                    let (slope, intercept) = linear_regression(p, t);
                    Some(slope * d + intercept)
                })
            }
            "double_exponential_smoothing" | "holt_winters" => {
                let sf = self.eval_scalar(arg(1)?, t)?;
                let tf = self.eval_scalar(arg(2)?, t)?;
                if sf <= 0.0 || sf >= 1.0 {
                    return Err(Error::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                    )));
                }
                if tf <= 0.0 || tf >= 1.0 {
                    return Err(Error::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                    )));
                }
                self.map_range(arg(0)?, t, false, move |_, p| {
                    if p.len() < 2 {
                        return None;
                    }
                    let (mut s0, mut s1) = (0.0, p[0].f);
                    let mut b = p[1].f - p[0].f;
                    for (i, pt) in p.iter().enumerate().skip(1) {
                        let x = sf * pt.f;
                        b = calc_trend_value(i - 1, tf, s0, s1, b);
                        let y = (1.0 - sf) * (s1 + b);
                        s0 = s1;
                        s1 = x + y;
                    }
                    Some(s1)
                })
            }
            "avg_over_time" => self.map_range(arg(0)?, t, false, |_, p| {
                let (mut sum, mut mean, mut count, mut c) = (0.0, 0.0, 0.0, 0.0);
                let mut incremental = false;
                for pt in p {
                    count += 1.0;
                    if !incremental {
                        let (ns, nc) = kahan_sum_inc(pt.f, sum, c);
                        if count == 1.0 || !ns.is_infinite() {
                            sum = ns;
                            c = nc;
                            continue;
                        }
                        incremental = true;
                        mean = sum / (count - 1.0);
                        c /= count - 1.0;
                    }
                    let q = (count - 1.0) / count;
                    (mean, c) = kahan_sum_inc(pt.f / count, q * mean, q * c);
                }
                Some(if incremental {
                    mean + c
                } else {
                    sum / count + c / count
                })
            }),
            "sum_over_time" => self.map_range(arg(0)?, t, false, |_, p| {
                let (mut sum, mut c) = (0.0, 0.0);
                for pt in p {
                    (sum, c) = kahan_sum_inc(pt.f, sum, c);
                }
                Some(if sum.is_infinite() { sum } else { sum + c })
            }),
            "count_over_time" => self.map_range(arg(0)?, t, false, |_, p| Some(p.len() as f64)),
            "min_over_time" => self.map_range(arg(0)?, t, false, |_, p| {
                let mut m = p[0].f;
                for pt in p {
                    if pt.f < m || m.is_nan() {
                        m = pt.f;
                    }
                }
                Some(m)
            }),
            "max_over_time" => self.map_range(arg(0)?, t, false, |_, p| {
                let mut m = p[0].f;
                for pt in p {
                    if pt.f > m || m.is_nan() {
                        m = pt.f;
                    }
                }
                Some(m)
            }),
            "last_over_time" => self.map_range(arg(0)?, t, true, |_, p| p.last().map(|x| x.f)),
            "first_over_time" => self.map_range(arg(0)?, t, true, |_, p| p.first().map(|x| x.f)),
            "ts_of_last_over_time" => self.map_range(arg(0)?, t, false, |_, p| {
                p.last().map(|x| x.t as f64 / 1000.0)
            }),
            "ts_of_first_over_time" => self.map_range(arg(0)?, t, false, |_, p| {
                p.first().map(|x| x.t as f64 / 1000.0)
            }),
            "ts_of_max_over_time" | "ts_of_min_over_time" => {
                let max = name == "ts_of_max_over_time";
                self.map_range(arg(0)?, t, false, move |_, p| {
                    let mut best = p[0];
                    for pt in p {
                        let better = if max {
                            pt.f >= best.f || best.f.is_nan()
                        } else {
                            pt.f <= best.f || best.f.is_nan()
                        };
                        if better {
                            best = *pt;
                        }
                    }
                    Some(best.t as f64 / 1000.0)
                })
            }
            "present_over_time" => self.map_range(arg(0)?, t, false, |_, _| Some(1.0)),
            "stddev_over_time" | "stdvar_over_time" => {
                let dev = name == "stddev_over_time";
                self.map_range(arg(0)?, t, false, move |_, p| {
                    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) =
                        (0.0, 0.0, 0.0, 0.0, 0.0);
                    for pt in p {
                        count += 1.0;
                        let delta = pt.f - (mean + c_mean);
                        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
                        (aux, c_aux) = kahan_sum_inc(delta * (pt.f - (mean + c_mean)), aux, c_aux);
                    }
                    let var = (aux + c_aux) / count;
                    Some(if dev { var.sqrt() } else { var })
                })
            }
            "quantile_over_time" => {
                let q = self.eval_scalar(arg(0)?, t)?;
                if !(0.0..=1.0).contains(&q) {
                    let pos = self.arg_position("quantile_over_time", 0);
                    self.warn(
                        format!(
                            "quantile value should be between 0 and 1, got {}",
                            format_go_float(q)
                        ),
                        pos,
                    );
                }
                self.map_range(arg(1)?, t, false, move |_, p| {
                    Some(quantile(q, p.iter().map(|x| x.f).collect()))
                })
            }
            "mad_over_time" => self.map_range(arg(0)?, t, false, |_, p| {
                let vals: Vec<f64> = p.iter().map(|x| x.f).collect();
                if vals.iter().any(|v| v.is_nan()) {
                    return Some(f64::NAN);
                }
                let median = quantile(0.5, vals.clone());
                Some(quantile(
                    0.5,
                    vals.iter().map(|v| (v - median).abs()).collect(),
                ))
            }),
            "absent" => {
                let v = self.eval_vector(arg(0)?, t)?;
                if !v.is_empty() {
                    return Ok(Value::Vector(Vec::new()));
                }
                let metric = match unwrap_parens(arg(0)?) {
                    Expr::VectorSelector(vs) => absent_labels(vs),
                    _ => Labels::empty(),
                };
                Ok(Value::Vector(vec![sample(metric, t, 1.0)]))
            }
            "absent_over_time" => {
                let a = self.eval_range(arg(0)?, t)?;
                if a.series.iter().any(|s| !s.floats.is_empty()) {
                    return Ok(Value::Vector(Vec::new()));
                }
                let metric = match (&a.selector, unwrap_parens(arg(0)?)) {
                    (Some(vs), Expr::MatrixSelector(_)) => absent_labels(vs),
                    _ => Labels::empty(),
                };
                Ok(Value::Vector(vec![sample(metric, t, 1.0)]))
            }
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" if self.step > 0 => {
                let pos = self.position(name);
                self.warn(
                    "sort is ineffective for range queries since results are always ordered by labels"
                        .into(),
                    pos,
                );
                self.eval_vector(arg(0)?, t).map(Value::Vector)
            }
            "sort" | "sort_desc" => {
                let mut v = self.eval_vector(arg(0)?, t)?;
                let desc = name == "sort_desc";
                v.sort_by(|a, b| match (a.f.is_nan(), b.f.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => b.f.partial_cmp(&a.f).unwrap_or(std::cmp::Ordering::Equal),
                    _ => a.f.partial_cmp(&b.f).unwrap_or(std::cmp::Ordering::Equal),
                });
                Ok(Value::Vector(v))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut v = self.eval_vector(arg(0)?, t)?;
                let mut labels = Vec::new();
                for e in args.iter().skip(1) {
                    labels.push(self.string_arg(e, t)?);
                }
                let desc = name == "sort_by_label_desc";
                v.sort_by(|a, b| {
                    for l in &labels {
                        let (x, y) = (a.metric.get(l).unwrap_or(""), b.metric.get(l).unwrap_or(""));
                        let o = natural_cmp(x, y);
                        if o != std::cmp::Ordering::Equal {
                            return if desc { o.reverse() } else { o };
                        }
                    }
                    let o = a.metric.cmp(&b.metric);
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                });
                Ok(Value::Vector(v))
            }
            "label_replace" => {
                let mut v = self.eval_vector(arg(0)?, t)?;
                let dst = self.string_arg(arg(1)?, t)?;
                let repl = self.string_arg(arg(2)?, t)?;
                let src = self.string_arg(arg(3)?, t)?;
                let re_src = self.string_arg(arg(4)?, t)?;
                // Go RE2 semantics (anchored, ASCII classes), as label
                // matchers; compiled once per process.
                let re = hearth_model::matcher::compile_anchored(&re_src).map_err(|_| {
                    Error::Execution(format!(
                        "invalid regular expression in label_replace(): {re_src}"
                    ))
                })?;
                if dst.is_empty() {
                    return Err(Error::Execution(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                // The arguments are literals: the result depends on the
                // series alone, so it is computed once per series.
                let node = c as *const Call as usize;
                for s in &mut v {
                    // The number beside the labels: whether the regex matched.
                    let (metric, matched) = self.labels_cache.get_with(node, &s.metric, |m| {
                        let Some(caps) = re.captures(m.get(&src).unwrap_or("")) else {
                            return (m.clone(), None);
                        };
                        let mut res = String::new();
                        caps.expand(&repl, &mut res);
                        let mut b = m.builder();
                        b.set(&dst, &res);
                        (b.build(), Some(1.0))
                    });
                    s.metric = metric;
                    if matched.is_some() && dst == METRIC_NAME {
                        s.drop_name = false;
                    }
                }
                self.check_duplicates(&v)?;
                Ok(Value::Vector(v))
            }
            "label_join" => {
                let mut v = self.eval_vector(arg(0)?, t)?;
                let dst = self.string_arg(arg(1)?, t)?;
                let sep = self.string_arg(arg(2)?, t)?;
                let mut srcs = Vec::new();
                for e in args.iter().skip(3) {
                    srcs.push(self.string_arg(e, t)?);
                }
                if dst.is_empty() {
                    return Err(Error::Execution(format!(
                        "invalid destination label name in label_join(): {dst}"
                    )));
                }
                // Literal arguments: once per series, as label_replace.
                let node = c as *const Call as usize;
                for s in &mut v {
                    s.metric = self.labels_cache.get(node, &s.metric, |m| {
                        let joined: Vec<&str> =
                            srcs.iter().map(|n| m.get(n).unwrap_or("")).collect();
                        let mut b = m.builder();
                        b.set(&dst, &joined.join(&sep));
                        b.build()
                    });
                    if dst == METRIC_NAME {
                        s.drop_name = false;
                    }
                }
                self.check_duplicates(&v)?;
                Ok(Value::Vector(v))
            }
            "info" => self.eval_info(&args, t),
            // Native histograms are not stored yet, and these functions
            // ignore float samples: the result is always empty.
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                self.eval_vector(arg(0)?, t)?;
                Ok(Value::Vector(Vec::new()))
            }
            "histogram_quantiles" => {
                let v = self.eval_vector(arg(0)?, t)?;
                let label = self.string_arg(arg(1)?, t)?;
                let mut qs = Vec::new();
                for e in args.iter().skip(2) {
                    qs.push(self.eval_scalar(e, t)?);
                }
                self.histogram_quantiles(v, &label, &qs, t)
            }
            "histogram_fraction" => {
                let lower = self.eval_scalar(arg(0)?, t)?;
                let upper = self.eval_scalar(arg(1)?, t)?;
                let v = self.eval_vector(arg(2)?, t)?;
                self.histogram_fraction(lower, upper, v, t)
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(arg(0)?, t)?;
                let v = self.eval_vector(arg(1)?, t)?;
                self.histogram_quantile(q, v, t)
            }
            other => Err(Error::Execution(format!(
                "function {other:?} is not supported yet"
            ))),
        }
    }

    /// Groups classic buckets by their series without `le`, warning about
    /// malformed `le` labels (reported at argument `arg` of `func`).
    fn classic_buckets(
        &mut self,
        v: Vec<Sample>,
        func: &str,
        arg: usize,
    ) -> Vec<(Labels, Vec<(f64, f64)>)> {
        let mut order: Vec<Labels> = Vec::new();
        let mut groups: FastMap<Labels, Vec<(f64, f64)>> = FastMap::default();
        for s in v {
            // The group and the bound, once per series for all steps.
            let (key, upper) = self
                .labels_cache
                .get_with(DERIVE_WITHOUT_LE, &s.metric, |m| {
                    let upper = parse_go_float(m.get("le").unwrap_or(""));
                    (m.without(&["le"]), upper)
                });
            let Some(upper) = upper else {
                let le = s.metric.get("le").unwrap_or("");
                let pos = self.arg_position(func, arg);
                self.warn(
                    format!(
                        "bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {:?}",
                        s.metric.metric_name().unwrap_or("")
                    ),
                    pos,
                );
                continue;
            };
            groups
                .entry(key.clone())
                .or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                })
                .push((upper, s.f));
        }
        order
            .into_iter()
            .filter_map(|k| groups.remove(&k).map(|b| (k, b)))
            .collect()
    }

    fn histogram_quantile(&mut self, q: f64, v: Vec<Sample>, t: i64) -> Result<Value> {
        if !(0.0..=1.0).contains(&q) {
            let pos = self.arg_position("histogram_quantile", 0);
            self.warn(
                format!(
                    "quantile value should be between 0 and 1, got {}",
                    format_go_float(q)
                ),
                pos,
            );
        }
        let mut out = Vec::new();
        for (key, mut buckets) in self.classic_buckets(v, "histogram_quantile", 1) {
            let (f, monotonic) = bucket_quantile(q, &mut buckets);
            if monotonic {
                let pos = self.arg_position("histogram_quantile", 1);
                self.info(
                    format!(
                        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                        key.metric_name().unwrap_or("")
                    ),
                    pos,
                );
            }
            let mut smp = sample(key, t, f);
            self.drop_metric_name(&mut smp);
            out.push(smp);
        }
        self.check_duplicates(&out)?;
        Ok(Value::Vector(out))
    }

    fn histogram_quantiles(
        &mut self,
        v: Vec<Sample>,
        label: &str,
        qs: &[f64],
        t: i64,
    ) -> Result<Value> {
        for (i, q) in qs.iter().enumerate() {
            if !(0.0..=1.0).contains(q) {
                let pos = self.arg_position("histogram_quantiles", i + 2);
                self.warn(
                    format!(
                        "quantile value should be between 0 and 1, got {}",
                        format_go_float(*q)
                    ),
                    pos,
                );
            }
        }
        let mut out = Vec::new();
        for (key, mut buckets) in self.classic_buckets(v, "histogram_quantiles", 0) {
            for q in qs {
                let (f, _) = bucket_quantile(*q, &mut buckets);
                let mut b = key.builder();
                b.set(label, &format_quantile_label(*q));
                let mut smp = sample(b.build(), t, f);
                self.drop_metric_name(&mut smp);
                out.push(smp);
            }
        }
        self.check_duplicates(&out)?;
        Ok(Value::Vector(out))
    }

    fn histogram_fraction(
        &mut self,
        lower: f64,
        upper: f64,
        v: Vec<Sample>,
        t: i64,
    ) -> Result<Value> {
        let mut out = Vec::new();
        for (key, mut buckets) in self.classic_buckets(v, "histogram_fraction", 2) {
            let f = bucket_fraction(lower, upper, &mut buckets);
            let mut smp = sample(key, t, f);
            self.drop_metric_name(&mut smp);
            out.push(smp);
        }
        self.check_duplicates(&out)?;
        Ok(Value::Vector(out))
    }
}

/// Sorts buckets by upper bound and merges equal bounds; `None` unless the
/// last bound is `+Inf`.
fn prepare_buckets(buckets: &mut [(f64, f64)]) -> Option<Vec<(f64, f64)>> {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return None,
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(u, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == u => last.1 += c,
            _ => merged.push((u, c)),
        }
    }
    Some(merged)
}

/// Prometheus's `BucketFraction`: the estimated share of observations
/// between `lower` and `upper`, interpolating linearly within finite
/// buckets (observations of the infinite first and last buckets sit at
/// their finite bound).
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    let Some(b) = prepare_buckets(buckets) else {
        return f64::NAN;
    };
    let count = b[b.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, &(upper_bound, bcount)) in b.iter().enumerate() {
        let lower_bound = if i > 0 {
            b[i - 1].0
        } else if upper_bound > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bcount
            } else if upper_bound == f64::INFINITY {
                rank
            } else {
                rank + (bcount - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bcount;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// A quantile as `histogram_quantiles` writes it into its label: the
/// shortest form, with `.0` on whole numbers (`0.0`, `0.25`, `1.0`).
fn format_quantile_label(q: f64) -> String {
    let s = format_go_float(q);
    if s.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
        format!("{s}.0")
    } else {
        s
    }
}

/// Parses a float as Go's `strconv.ParseFloat` accepts bucket bounds.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        x => x.parse().ok(),
    }
}

/// Prometheus's `BucketQuantile` over `(upper bound, cumulative count)`.
/// Returns the quantile and whether monotonicity had to be forced.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(mut merged) = prepare_buckets(buckets) else {
        return (f64::NAN, false);
    };
    let mut forced = false;
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    if merged.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let n = merged.len() - 1;
    let b = merged[..n].partition_point(|x| x.1 < rank);
    if b == n {
        return (merged[n - 1].0, forced);
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return (merged[0].0, forced);
    }
    let mut bucket_start = 0.0;
    let bucket_end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    (
        bucket_start + (bucket_end - bucket_start) * (rank / count),
        forced,
    )
}

/// Prometheus's `almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}
