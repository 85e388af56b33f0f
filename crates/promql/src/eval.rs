//! The evaluator: walks a parsed expression at one timestamp over series
//! fetched beforehand, with Prometheus 3 semantics for lookback, staleness,
//! `offset`, `@` and subqueries.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use hearth_model::{Labels, METRIC_NAME};
use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};

use crate::range_modifiers::{interpolate, RangeModifier};
use crate::{EngineOptions, Error, FPoint, Result, Sample, Series, Value};

/// The default subquery step when `[range:]` has none (Prometheus's default
/// evaluation interval).
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// One fetched series: labels, its samples in the fetched range in time
/// order, and apart from them the times of its stale markers, so that range
/// windows are plain slices of `points`.
#[derive(Debug, Clone)]
pub(crate) struct StoredSeries {
    pub metric: Labels,
    /// Samples without stale markers.
    pub points: Vec<FPoint>,
    /// Times of stale markers, ascending (usually none).
    pub stale: Vec<i64>,
    /// Start times of `points` (0: none), or empty when the series has
    /// none or the engine does not use them.
    pub st: Vec<i64>,
}

impl StoredSeries {
    /// Splits samples in time order into points and stale marker times,
    /// and lines up the start times given as `(sample time, start time)`.
    pub fn new(
        metric: Labels,
        mut points: Vec<FPoint>,
        start_times: &[(i64, i64)],
    ) -> StoredSeries {
        let stale: Vec<i64> = points
            .iter()
            .filter(|p| hearth_model::is_stale_nan(p.f))
            .map(|p| p.t)
            .collect();
        if !stale.is_empty() {
            points.retain(|p| !hearth_model::is_stale_nan(p.f));
        }
        let mut st = Vec::new();
        if !start_times.is_empty() {
            let mut i = 0;
            st = points
                .iter()
                .map(|p| {
                    while i < start_times.len() && start_times[i].0 < p.t {
                        i += 1;
                    }
                    match start_times.get(i) {
                        Some(&(t, s)) if t == p.t => s,
                        _ => 0,
                    }
                })
                .collect();
        }
        StoredSeries {
            metric,
            points,
            stale,
            st,
        }
    }

    /// Whether a stale marker lies in `(after, upto]`.
    pub fn stale_between(&self, after: i64, upto: i64) -> bool {
        let i = self.stale.partition_point(|&s| s <= after);
        self.stale.get(i).is_some_and(|&s| s <= upto)
    }

    /// The sample an instant selector sees at `ts`: the latest at or
    /// before `ts`, if it lies within the lookback window and no stale
    /// marker follows it, with its index in `points`.
    pub fn lookback(&self, ts: i64, lookback: i64) -> Option<(usize, FPoint)> {
        self.lookback_at(self.points.partition_point(|p| p.t <= ts), ts, lookback)
    }

    /// [`Self::lookback`] given `idx`, the index of the first point after
    /// `ts`.
    pub fn lookback_at(&self, idx: usize, ts: i64, lookback: i64) -> Option<(usize, FPoint)> {
        let p = *self.points.get(idx.checked_sub(1)?)?;
        if p.t <= ts - lookback || self.stale_between(p.t, ts) {
            return None;
        }
        Some((idx - 1, p))
    }

    /// The samples of the left-open window `(start, end]`.
    pub fn window(&self, start: i64, end: i64) -> &[FPoint] {
        let lo = self.points.partition_point(|p| p.t <= start);
        let hi = lo + self.points[lo..].partition_point(|p| p.t <= end);
        &self.points[lo..hi]
    }

    /// The index of the first point after `t`, searched from `hint` (the
    /// answer for an earlier time, usually a few points back): evaluation
    /// steps ascend, and walking on from the last position touches memory
    /// in order where a binary search over every series' points misses the
    /// cache at every probe.
    pub fn seek(&self, hint: usize, t: i64) -> usize {
        const WALK: usize = 16;
        let pts = &self.points;
        let hint = hint.min(pts.len());
        if hint > 0 && pts[hint - 1].t > t {
            return pts[..hint].partition_point(|p| p.t <= t);
        }
        let mut i = hint;
        let stop = (hint + WALK).min(pts.len());
        while i < stop {
            if pts[i].t > t {
                return i;
            }
            i += 1;
        }
        i + pts[i..].partition_point(|p| p.t <= t)
    }
}

/// Per selector node, the position reached in each of its series by the
/// last evaluation step (see [`StoredSeries::seek`]).
#[derive(Default)]
pub(crate) struct Cursors {
    map: std::cell::RefCell<FastMap<(usize, u8), Vec<usize>>>,
}

impl Cursors {
    /// The cursors of `node` (`which` tells a node's several apart), one per
    /// series, handed to `f`.
    pub fn with<R>(
        &self,
        node: usize,
        which: u8,
        n: usize,
        f: impl FnOnce(&mut [usize]) -> R,
    ) -> R {
        let mut map = self.map.borrow_mut();
        let v = map.entry((node, which)).or_insert_with(|| vec![0; n]);
        v.resize(n, 0);
        f(v)
    }
}

/// Identifies a selector node by its address in the (immovable during
/// evaluation) AST.
pub(crate) fn selector_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Times and durations are clamped to ±2^61 ms (73 million years) so that
/// sums of a few of them cannot overflow.
pub(crate) const TIME_LIMIT_MS: i64 = 1 << 61;

/// Clamps a timestamp to [`TIME_LIMIT_MS`].
pub(crate) fn clamp_time(t: i64) -> i64 {
    t.clamp(-TIME_LIMIT_MS, TIME_LIMIT_MS)
}

/// Converts a duration to milliseconds.
pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).map_or(TIME_LIMIT_MS, |ms| ms.min(TIME_LIMIT_MS))
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// The timestamp an `@` pins evaluation to, if any.
pub(crate) fn at_ms(at: &Option<AtModifier>, start: i64, end: i64) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::Start) => Some(start),
        Some(AtModifier::End) => Some(end),
        Some(AtModifier::At(st)) => Some(clamp_time(
            match st.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => duration_ms(&d),
                Err(e) => -duration_ms(&e.duration()),
            },
        )),
    }
}

/// The series' labels a selector asks for, as storage matchers; the metric
/// name goes in as `__name__=`.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<hearth_model::Matcher>>> {
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<hearth_model::Matcher>> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(name) = &vs.name {
            out.push(hearth_model::Matcher::equal(METRIC_NAME, name.clone()));
        }
        for m in ms {
            let op = match m.op {
                MatchOp::Equal => hearth_model::MatchOp::Equal,
                MatchOp::NotEqual => hearth_model::MatchOp::NotEqual,
                MatchOp::Re(_) => hearth_model::MatchOp::RegexMatch,
                MatchOp::NotRe(_) => hearth_model::MatchOp::RegexNoMatch,
            };
            out.push(
                hearth_model::Matcher::new(op, m.name.clone(), m.value.clone())
                    .map_err(|e| Error::Parse(format!("invalid matcher {}: {e}", m.name)))?,
            );
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers.matchers)?])
    } else {
        vs.matchers
            .or_matchers
            .iter()
            .map(|g| {
                let mut all = vs.matchers.matchers.clone();
                all.extend(g.iter().cloned());
                convert(&all)
            })
            .collect()
    }
}

/// A hash map with the engine's fast, unseeded hasher (keys come from
/// storage and the query, not from an adversary who sees the hashes).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Derivations of label sets.
pub(crate) const DERIVE_WITHOUT_NAME: usize = 1;
pub(crate) const DERIVE_WITHOUT_LE: usize = 2;

/// Label sets derived from others (a group's key, a set without its name),
/// remembered across the steps of a query: the series of a selector keep
/// their label sets from step to step, so each derivation is computed once
/// per series instead of once per step. Keyed by (derivation, identity of
/// the input set); an entry holds a clone of its input so that the identity
/// cannot be reused while the entry lives.
#[derive(Default)]
pub(crate) struct LabelsCache {
    /// (input, derived set, a number derived with it).
    #[allow(clippy::type_complexity)]
    map: std::cell::RefCell<FastMap<(usize, usize), (Labels, Labels, Option<f64>)>>,
}

impl LabelsCache {
    /// Enough for every series of a large query; past it, derivations are
    /// computed without being kept (inputs rebuilt at every step would
    /// otherwise grow the cache with the number of steps).
    const MAX_ENTRIES: usize = 1 << 20;

    /// `derive(m)`, for derivation `kind` (a `DERIVE_*` constant or an AST
    /// node's address).
    pub fn get(&self, kind: usize, m: &Labels, derive: impl FnOnce(&Labels) -> Labels) -> Labels {
        self.get_with(kind, m, |m| (derive(m), None)).0
    }

    /// [`Self::get`] for a derivation that also yields a number (a bucket's
    /// parsed `le`).
    pub fn get_with(
        &self,
        kind: usize,
        m: &Labels,
        derive: impl FnOnce(&Labels) -> (Labels, Option<f64>),
    ) -> (Labels, Option<f64>) {
        let key = (kind, m.ptr_id());
        let mut map = self.map.borrow_mut();
        if let Some((_, derived, x)) = map.get(&key) {
            return (derived.clone(), *x);
        }
        let (derived, x) = derive(m);
        if map.len() < Self::MAX_ENTRIES {
            map.insert(key, (m.clone(), derived.clone(), x));
        }
        (derived, x)
    }
}

/// State shared by the whole evaluation of one query.
pub(crate) struct Evaluator<'a> {
    pub opts: &'a EngineOptions,
    /// Query start and end, for `@ start()` / `@ end()`.
    pub start: i64,
    pub end: i64,
    /// The range query's step (0 for instant queries), for `step()`.
    pub step: i64,
    pub data: HashMap<usize, Vec<StoredSeries>>,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    pub deadline: Instant,
    /// The query text, for annotation positions.
    pub query: String,
    /// Subquery inner results by (subquery node, timestamp): inner steps
    /// are aligned to multiples of the step, so consecutive outer steps
    /// share most of them.
    pub subquery_cache: HashMap<(usize, i64), Value>,
    /// `anchored`/`smoothed` selectors by node.
    pub modifiers: HashMap<usize, RangeModifier>,
    pub labels_cache: LabelsCache,
    pub cursors: Cursors,
}

/// A range vector with where it came from, as range functions need it.
pub(crate) struct RangeArg {
    pub series: Vec<Series>,
    pub range_ms: i64,
    /// The end of the range (evaluation time after `@` and `offset`).
    pub range_end: i64,
    /// Equality matchers of the selector, for `absent_over_time`.
    pub selector: Option<VectorSelector>,
}

/// The labels the engine removes with the metric name: the name and the
/// type and unit metadata labels.
pub(crate) const NAME_LABELS: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

/// `m` without the metric name and its metadata labels.
pub(crate) fn without_name(m: &Labels) -> Labels {
    m.without(&NAME_LABELS)
}

/// Prometheus's `labels.Hash`: xxHash64 over `name 0xff value 0xff ...`.
pub(crate) fn prometheus_labels_hash(m: &Labels) -> u64 {
    let mut b = Vec::with_capacity(m.byte_size() + 2 * m.len());
    for l in m.iter() {
        b.extend_from_slice(l.name.as_bytes());
        b.push(0xff);
        b.extend_from_slice(l.value.as_bytes());
        b.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&b, 0)
}

pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

impl Evaluator<'_> {
    /// Removes `__name__` from a sample now, or marks it for removal at the
    /// end when delayed name removal is on.
    pub(crate) fn drop_metric_name(&self, s: &mut Sample) {
        if self.opts.enable_delayed_name_removal {
            s.drop_name = true;
        } else {
            s.metric = self
                .labels_cache
                .get(DERIVE_WITHOUT_NAME, &s.metric, without_name);
        }
    }

    /// `(line:col)` of the first occurrence of `needle` in the query
    /// (Prometheus reports the offending sub-expression's start; this finds
    /// it by text), or `(1:1)`.
    pub fn position(&self, needle: &str) -> String {
        let off = self.query.find(needle).unwrap_or(0);
        position_of(&self.query, off)
    }

    /// The position of an aggregation's parameter: after `op (` (skipping
    /// a leading `by (...)`/`without (...)` clause).
    pub fn param_position(&self, op: &str) -> String {
        self.arg_position(op, 0)
    }

    /// The position of argument `idx` of the first call of `func` (or of
    /// aggregation `func`) in the query text.
    pub fn arg_position(&self, func: &str, idx: usize) -> String {
        let q = &self.query;
        let b = q.as_bytes();
        let Some(mut i) = q.find(func).map(|i| i + func.len()) else {
            return position_of(q, 0);
        };
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        skip_ws(&mut i);
        if q[i..].starts_with("by") || q[i..].starts_with("without") {
            if let Some(close) = q[i..].find(')') {
                i += close + 1;
            }
            skip_ws(&mut i);
        }
        if i < b.len() && b[i] == b'(' {
            i += 1;
        }
        let mut n = 0;
        let mut depth = 0i32;
        let mut quote: Option<u8> = None;
        while n < idx && i < b.len() {
            let c = b[i];
            match quote {
                Some(qc) => {
                    if c == b'\\' {
                        i += 1;
                    } else if c == qc {
                        quote = None;
                    }
                }
                None => match c {
                    b'"' | b'\'' | b'`' => quote = Some(c),
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' => depth -= 1,
                    b',' if depth == 0 => n += 1,
                    _ => {}
                },
            }
            i += 1;
        }
        skip_ws(&mut i);
        position_of(q, i)
    }

    pub fn warn(&mut self, msg: String, pos: String) {
        self.warnings.push(format!("PromQL warning: {msg} {pos}"));
    }

    pub fn info(&mut self, msg: String, pos: String) {
        self.infos.push(format!("PromQL info: {msg} {pos}"));
    }

    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout("query execution".into()));
        }
        Ok(())
    }

    /// Evaluates `e` at `t` (milliseconds).
    pub fn eval(&mut self, e: &Expr, t: i64) -> Result<Value> {
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar { t, v: n.val }),
            Expr::StringLiteral(s) => Ok(Value::String {
                t,
                v: s.val.clone(),
            }),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar { t, v } => Ok(Value::Scalar { t, v: -v }),
                Value::Vector(mut vec) => {
                    for s in &mut vec {
                        s.f = -s.f;
                        self.drop_metric_name(s);
                    }
                    self.check_duplicates(&vec)?;
                    Ok(Value::Vector(vec))
                }
                other => Err(Error::Execution(format!(
                    "unary expression only allowed on expressions of type scalar or vector, got: {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.instant_selector(vs, t))),
            Expr::MatrixSelector(ms) => {
                let arg = self.range_selector(&ms.vs, duration_ms(&ms.range), t);
                Ok(Value::Matrix(
                    arg.series
                        .into_iter()
                        .filter(|s| !s.floats.is_empty())
                        .collect(),
                ))
            }
            Expr::Subquery(sq) => {
                let arg = self.subquery(sq, t)?;
                Ok(Value::Matrix(arg.series))
            }
            Expr::Binary(b) => self.eval_binary(b, t),
            Expr::Aggregate(a) => self.eval_aggregate(a, t),
            Expr::Call(c) => self.eval_call(c, t),
            Expr::Extension(_) => Err(Error::Execution(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates `e` expecting an instant vector.
    pub fn eval_vector(&mut self, e: &Expr, t: i64) -> Result<Vec<Sample>> {
        match self.eval(e, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `e` expecting a scalar.
    pub fn eval_scalar(&mut self, e: &Expr, t: i64) -> Result<f64> {
        match self.eval(e, t)? {
            Value::Scalar { v, .. } => Ok(v),
            other => Err(Error::Execution(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `e` expecting a range vector (a matrix selector or a subquery).
    pub fn eval_range(&mut self, e: &Expr, t: i64) -> Result<RangeArg> {
        match unwrap_parens(e) {
            Expr::MatrixSelector(ms) => Ok(self.range_selector(&ms.vs, duration_ms(&ms.range), t)),
            Expr::Subquery(sq) => self.subquery(sq, t),
            other => Err(Error::Execution(format!(
                "expected range vector, got {}",
                other.value_type()
            ))),
        }
    }

    pub(crate) fn selector_time(&self, vs: &VectorSelector, t: i64) -> i64 {
        at_ms(&vs.at, self.start, self.end).unwrap_or(t) - offset_ms(&vs.offset)
    }

    /// An instant selector at `t`: per series the latest sample in
    /// `(t - lookback, t]`, unless it is a stale marker.
    pub fn instant_selector(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        if self.modifiers.get(&selector_key(vs)) == Some(&RangeModifier::Smoothed) {
            return self.smoothed_selector(vs, t);
        }
        self.lookback_samples(vs, t, false)
    }

    /// The latest sample per series within the lookback window of `t`,
    /// stale markers excluded, stamped with `t` or with the sample's own
    /// time (`sample_times`, for `timestamp()`).
    fn lookback_samples(&self, vs: &VectorSelector, t: i64, sample_times: bool) -> Vec<Sample> {
        let ts = self.selector_time(vs, t);
        let lookback = self.opts.lookback_delta_ms;
        let Some(data) = self.data.get(&selector_key(vs)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.cursors.with(selector_key(vs), 1, data.len(), |cur| {
            for (s, c) in data.iter().zip(cur.iter_mut()) {
                *c = s.seek(*c, ts);
                let Some((_, p)) = s.lookback_at(*c, ts, lookback) else {
                    continue;
                };
                out.push(Sample {
                    metric: s.metric.clone(),
                    t: if sample_times { p.t } else { t },
                    f: p.f,
                    h: None,
                    drop_name: false,
                });
            }
        });
        out
    }

    /// A `smoothed` instant selector: the value interpolated at the
    /// evaluation time between the samples around it.
    fn smoothed_selector(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let ts = self.selector_time(vs, t);
        let lookback = self.opts.lookback_delta_ms;
        let Some(data) = self.data.get(&selector_key(vs)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in data {
            let Some((idx, p)) = s.lookback(ts, lookback) else {
                continue;
            };
            // Interpolated towards the next sample unless a stale marker
            // comes first.
            let f = match s.points.get(idx + 1) {
                Some(n) if n.t < ts + lookback && !s.stale_between(ts, n.t) => {
                    interpolate(p, *n, ts, false)
                }
                _ => p.f,
            };
            out.push(Sample {
                metric: s.metric.clone(),
                t,
                f,
                h: None,
                drop_name: false,
            });
        }
        out
    }

    /// The start times (in seconds) of the samples an instant selector sees
    /// at `t`, for the samples that have one (`start_timestamp()`).
    pub fn instant_selector_start_times(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let ts = self.selector_time(vs, t);
        let Some(data) = self.data.get(&selector_key(vs)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in data {
            if let Some((i, _)) = s.lookback(ts, self.opts.lookback_delta_ms) {
                if let Some(&st) = s.st.get(i).filter(|st| **st != 0) {
                    out.push(Sample {
                        metric: s.metric.clone(),
                        t,
                        f: st as f64 / 1000.0,
                        h: None,
                        drop_name: false,
                    });
                }
            }
        }
        out
    }

    /// Like [`Self::instant_selector`] but keeps the samples' own timestamps
    /// (for `timestamp()`).
    pub fn instant_selector_sample_times(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        self.lookback_samples(vs, t, true)
    }

    /// A range selector at `t`: per series the samples in `(t - range, t]`
    /// without stale markers. Series without samples are kept (empty).
    pub fn range_selector(&self, vs: &VectorSelector, range_ms: i64, t: i64) -> RangeArg {
        let end = self.selector_time(vs, t);
        let start = end - range_ms;
        let mut series = Vec::new();
        if let Some(data) = self.data.get(&selector_key(vs)) {
            for s in data {
                series.push(Series {
                    metric: s.metric.clone(),
                    floats: s.window(start, end).to_vec(),
                    histograms: Vec::new(),
                    drop_name: false,
                });
            }
        }
        RangeArg {
            series,
            range_ms,
            range_end: end,
            selector: Some(vs.clone()),
        }
    }

    /// The inner steps of a subquery evaluated at `t`.
    pub fn subquery_steps(&self, sq: &SubqueryExpr, t: i64) -> (i64, i64, i64) {
        let step = sq
            .step
            .as_ref()
            .map(duration_ms)
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        let range = duration_ms(&sq.range);
        let end = at_ms(&sq.at, self.start, self.end).unwrap_or(t) - offset_ms(&sq.offset);
        let mint = end - range;
        let mut start = step * (mint / step);
        if start <= mint {
            start += step;
        }
        (start, end, step)
    }

    /// Evaluates a subquery at `t` into a range vector.
    pub fn subquery(&mut self, sq: &SubqueryExpr, t: i64) -> Result<RangeArg> {
        let (start, end, step) = self.subquery_steps(sq, t);
        if usize::try_from((end - start) / step).unwrap_or(0) >= self.opts.max_samples {
            return Err(Error::TooManySamples("query execution".into()));
        }
        let key = sq as *const SubqueryExpr as usize;
        // Outer steps ascend: inner results before this window are done.
        self.subquery_cache
            .retain(|(k, ts), _| *k != key || *ts >= start);
        let mut by_labels: FastMap<Labels, usize> = FastMap::default();
        let mut series: Vec<Series> = Vec::new();
        // Evaluate the inner steps not cached yet, then read them all.
        let mut steps = Vec::new();
        let mut ts = start;
        while ts <= end {
            steps.push(ts);
            match ts.checked_add(step) {
                Some(next) => ts = next,
                None => break,
            }
        }
        for &ts in &steps {
            if !self.subquery_cache.contains_key(&(key, ts)) {
                self.check_deadline()?;
                let v = self.eval(&sq.expr, ts)?;
                self.subquery_cache.insert((key, ts), v);
            }
        }
        for &ts in &steps {
            match self.subquery_cache.get(&(key, ts)) {
                Some(Value::Scalar { v, .. }) => {
                    push_point(&mut by_labels, &mut series, Labels::empty(), false, ts, *v)
                }
                Some(Value::Vector(vec)) => {
                    for s in vec {
                        push_point(
                            &mut by_labels,
                            &mut series,
                            s.metric.clone(),
                            s.drop_name,
                            ts,
                            s.f,
                        );
                    }
                }
                Some(other) => {
                    return Err(Error::Execution(format!(
                        "subquery expression must be a scalar or instant vector, got {}",
                        other.type_name()
                    )))
                }
                None => {}
            }
        }
        Ok(RangeArg {
            series,
            range_ms: duration_ms(&sq.range),
            range_end: end,
            selector: None,
        })
    }

    /// Fails with Prometheus's message when two samples share a label set
    /// (only when names are dropped eagerly; otherwise at the end).
    pub fn check_duplicates(&self, v: &[Sample]) -> Result<()> {
        if self.opts.enable_delayed_name_removal {
            return Ok(());
        }
        check_same_labelset(v)
    }
}

/// `(line:col)` of byte offset `off` in `q` (col is the byte offset in the
/// line plus one).
pub(crate) fn position_of(q: &str, off: usize) -> String {
    let mut off = off.min(q.len());
    while !q.is_char_boundary(off) {
        off -= 1;
    }
    let before = &q[..off];
    let line = before.matches('\n').count() + 1;
    let col = off - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("({line}:{col})")
}

/// Fails when two samples of a vector have the same labels.
pub(crate) fn check_same_labelset(v: &[Sample]) -> Result<()> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen: std::collections::HashSet<&Labels, foldhash::fast::FixedState> =
        std::collections::HashSet::with_capacity_and_hasher(v.len(), Default::default());
    for s in v {
        if !seen.insert(&s.metric) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Appends a point to the series with `metric`, creating it when new.
pub(crate) fn push_point(
    by_labels: &mut FastMap<Labels, usize>,
    series: &mut Vec<Series>,
    metric: Labels,
    drop_name: bool,
    t: i64,
    f: f64,
) {
    let idx = match by_labels.get(&metric) {
        Some(i) => *i,
        None => {
            series.push(Series {
                metric: metric.clone(),
                floats: Vec::new(),
                histograms: Vec::new(),
                drop_name,
            });
            by_labels.insert(metric, series.len() - 1);
            series.len() - 1
        }
    };
    series[idx].floats.push(FPoint { t, f });
}

/// Every selector of `e` with the sample range `[mint, maxt]` it needs when
/// `e` is evaluated over `[start, end]`.
pub(crate) fn collect_selectors<'e>(
    e: &'e Expr,
    start: i64,
    end: i64,
    qstart: i64,
    qend: i64,
    lookback: i64,
    out: &mut Vec<(&'e VectorSelector, i64, i64)>,
) {
    let rec = |e: &'e Expr, out: &mut Vec<(&'e VectorSelector, i64, i64)>| {
        collect_selectors(e, start, end, qstart, qend, lookback, out)
    };
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        Expr::Paren(p) => rec(&p.expr, out),
        Expr::Unary(u) => rec(&u.expr, out),
        Expr::Binary(b) => {
            rec(&b.lhs, out);
            rec(&b.rhs, out);
        }
        Expr::Aggregate(a) => {
            rec(&a.expr, out);
            if let Some(p) = &a.param {
                rec(p, out);
            }
        }
        Expr::Call(c) if c.func.name == "info" && c.args.args.len() == 2 => {
            // The info series are read as of the base's reference times,
            // which may lie anywhere the base's selectors read.
            let before = out.len();
            rec(&c.args.args[0], out);
            let (mut lo, mut hi) = (start - lookback, end);
            for (_, mint, maxt) in &out[before..] {
                lo = lo.min(*mint - lookback);
                hi = hi.max(*maxt);
            }
            if let Expr::VectorSelector(vs) = unwrap_parens(&c.args.args[1]) {
                out.push((vs, lo, hi));
            }
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                rec(a, out);
            }
        }
        Expr::VectorSelector(vs) => {
            let (s, e) = selector_span(vs, start, end, qstart, qend);
            out.push((vs, s - lookback, e));
        }
        Expr::MatrixSelector(ms) => {
            let (s, e) = selector_span(&ms.vs, start, end, qstart, qend);
            out.push((&ms.vs, s - duration_ms(&ms.range), e));
        }
        Expr::Subquery(sq) => {
            let off = offset_ms(&sq.offset);
            let (s, e) = match at_ms(&sq.at, qstart, qend) {
                Some(at) => (at - off, at - off),
                None => (start - off, end - off),
            };
            collect_selectors(
                &sq.expr,
                s - duration_ms(&sq.range),
                e,
                qstart,
                qend,
                lookback,
                out,
            );
        }
    }
}

/// The function each selector is a direct argument of (`rate(x[5m])` →
/// `rate`), keyed by [`selector_key`]: the querier's replica deduplication
/// adjusts counters only under `rate`, `irate`, `increase` and `resets`.
pub(crate) fn enclosing_functions(e: &Expr, out: &mut HashMap<usize, &'static str>) {
    match e {
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_) => {}
        Expr::Paren(p) => enclosing_functions(&p.expr, out),
        Expr::Unary(u) => enclosing_functions(&u.expr, out),
        Expr::Binary(b) => {
            enclosing_functions(&b.lhs, out);
            enclosing_functions(&b.rhs, out);
        }
        Expr::Aggregate(a) => {
            enclosing_functions(&a.expr, out);
            if let Some(p) = &a.param {
                enclosing_functions(p, out);
            }
        }
        Expr::Subquery(sq) => enclosing_functions(&sq.expr, out),
        Expr::Call(c) => {
            for a in &c.args.args {
                match unwrap_parens(a) {
                    Expr::VectorSelector(vs) => {
                        out.insert(selector_key(vs), c.func.name);
                    }
                    Expr::MatrixSelector(ms) => {
                        out.insert(selector_key(&ms.vs), c.func.name);
                    }
                    other => enclosing_functions(other, out),
                }
            }
        }
    }
}

fn selector_span(vs: &VectorSelector, start: i64, end: i64, qstart: i64, qend: i64) -> (i64, i64) {
    let off = offset_ms(&vs.offset);
    match at_ms(&vs.at, qstart, qend) {
        Some(at) => (at - off, at - off),
        None => (start - off, end - off),
    }
}

/// The label set `absent()` reports for a selector: its equality matchers,
/// except the metric name and labels matched more than once.
pub(crate) fn absent_labels(vs: &VectorSelector) -> Labels {
    let ms: &Matchers = &vs.matchers;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &ms.matchers {
        *counts.entry(m.name.as_str()).or_default() += 1;
    }
    let mut b = hearth_model::LabelsBuilder::new();
    for m in &ms.matchers {
        if m.name != METRIC_NAME
            && m.op == MatchOp::Equal
            && counts.get(m.name.as_str()) == Some(&1)
        {
            b.set(&m.name, &m.value);
        }
    }
    b.build()
}
