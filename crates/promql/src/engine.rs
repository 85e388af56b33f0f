//! The query engine's entry points: options, instant and range queries.
//!
//! A query is parsed with `promql-parser`, the series of every selector are
//! fetched up front through [`Queryable::select`], then the expression is
//! evaluated synchronously step by step.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hearth_model::Labels;
use hearth_storage_api::{Queryable, SelectHints};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::Expr;

use crate::duration_expr::{self, DurationContext};
use crate::eval::{
    check_same_labelset, clamp_time, collect_selectors, enclosing_functions, push_point,
    selector_key, selector_matchers, without_name, Evaluator, FastMap, StoredSeries,
};
use crate::info::{add_default_info_selectors, rewrite_info_selectors};
use crate::range_modifiers::{self, RangeModifier};
use crate::{Error, FPoint, Result, Sample, Series, Value};

/// How the engine evaluates queries.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (5m).
    pub lookback_delta_ms: i64,
    /// The most samples a query may hold in memory at once.
    pub max_samples: usize,
    /// How long a query may run.
    pub timeout: Duration,
    /// Enables functions Prometheus gates behind a feature flag.
    pub enable_experimental_functions: bool,
    /// Keeps `__name__` until the end of evaluation (Prometheus's flag).
    pub enable_delayed_name_removal: bool,
    /// Counter functions read samples' start times where the storage has
    /// them (Prometheus's `UseStartTimestamps`).
    pub use_start_timestamps: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            enable_experimental_functions: false,
            enable_delayed_name_removal: false,
            use_start_timestamps: false,
        }
    }
}

/// A query's value with the warnings and infos gathered on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// Evaluates PromQL against a [`Queryable`].
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// A lookback delta of 0 (or less) means the default of 5m, as in
    /// Prometheus.
    pub fn new(mut opts: EngineOptions) -> Self {
        if opts.lookback_delta_ms <= 0 {
            opts.lookback_delta_ms = EngineOptions::default().lookback_delta_ms;
        }
        Self { opts }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `t_ms`.
    pub async fn instant_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        t_ms: i64,
    ) -> Result<QueryResult> {
        let t_ms = clamp_time(t_ms);
        let expr = self.parse(
            query,
            DurationContext {
                step_ms: 0,
                range_ms: 0,
            },
        )?;
        let mut expr = expr;
        let mut modifiers = HashMap::new();
        range_modifiers::extract(&mut expr, &mut modifiers);
        let mut ev = self
            .prepare(storage, query, &expr, modifiers, t_ms, t_ms, 0)
            .await?;
        ev.check_deadline()?;
        let value = match ev.eval(&expr, t_ms)? {
            Value::Vector(v) => Value::Vector(self.finish_vector(v)?),
            Value::Matrix(m) => Value::Matrix(finish_matrix(m)?),
            other => other,
        };
        Ok(QueryResult {
            value,
            warnings: dedup(ev.warnings),
            infos: dedup(ev.infos),
        })
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`; the value
    /// is a [`Value::Matrix`].
    pub async fn range_query(
        &self,
        storage: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        let (start_ms, end_ms) = (clamp_time(start_ms), clamp_time(end_ms));
        if step_ms <= 0 {
            return Err(Error::Execution(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::Execution(
                "end timestamp must not be before start time".into(),
            ));
        }
        if usize::try_from((end_ms - start_ms) / step_ms).unwrap_or(0) >= self.opts.max_samples {
            return Err(Error::TooManySamples("query execution".into()));
        }
        let expr = self.parse(
            query,
            DurationContext {
                step_ms,
                range_ms: end_ms - start_ms,
            },
        )?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(Error::Execution(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                match other {
                    ValueType::Matrix => "range vector",
                    ValueType::String => "string",
                    _ => "unknown",
                }
            )))
            }
        }
        let mut expr = expr;
        let mut modifiers = HashMap::new();
        range_modifiers::extract(&mut expr, &mut modifiers);
        let mut ev = self
            .prepare(storage, query, &expr, modifiers, start_ms, end_ms, step_ms)
            .await?;
        let mut by_labels: FastMap<Labels, usize> = FastMap::default();
        let mut series: Vec<Series> = Vec::new();
        // A step-invariant expression (every selector pinned with `@`, no
        // time-dependent function) is evaluated once, as Prometheus does.
        let invariant = is_step_invariant(&expr);
        let mut once: Option<Value> = None;
        let mut t = start_ms;
        while t <= end_ms {
            ev.check_deadline()?;
            let value = match &once {
                Some(v) => v.clone(),
                None => {
                    let v = ev.eval(&expr, t)?;
                    if invariant {
                        once = Some(v.clone());
                    }
                    v
                }
            };
            match value {
                Value::Scalar { v, .. } => {
                    push_point(&mut by_labels, &mut series, Labels::empty(), false, t, v)
                }
                Value::Vector(v) => {
                    for s in self.finish_vector(v)? {
                        push_point(&mut by_labels, &mut series, s.metric, false, t, s.f);
                    }
                }
                other => {
                    return Err(Error::Execution(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        other.type_name()
                    )))
                }
            }
            match t.checked_add(step_ms) {
                Some(next) => t = next,
                None => break,
            }
        }
        series.retain(|s| !s.floats.is_empty() || !s.histograms.is_empty());
        series.sort_by(|a, b| a.metric.cmp(&b.metric));
        Ok(QueryResult {
            value: Value::Matrix(series),
            warnings: dedup(ev.warnings),
            infos: dedup(ev.infos),
        })
    }

    fn parse(&self, query: &str, ctx: DurationContext) -> Result<Expr> {
        let mut expr = match promql_parser::parser::parse(query) {
            Ok(e) => e,
            // The parser does not read duration expressions; retry with
            // them evaluated, but report the original error.
            Err(original) => {
                let mut text = duration_expr::rewrite(query, ctx).unwrap_or_else(|_| query.into());
                if let Some(t) = range_modifiers::rewrite(&text) {
                    text = t;
                }
                if let Some(t) = rewrite_info_selectors(&text) {
                    text = t;
                }
                if text == query {
                    return Err(Error::Parse(original));
                }
                promql_parser::parser::parse(&text).map_err(|_| Error::Parse(original))?
            }
        };
        if !self.opts.enable_experimental_functions {
            check_experimental(&expr)?;
        }
        add_default_info_selectors(&mut expr);
        Ok(expr)
    }

    /// Fetches every selector's series for evaluation over `[start, end]`.
    async fn prepare<'e>(
        &'e self,
        storage: &dyn Queryable,
        query: &str,
        expr: &Expr,
        modifiers: HashMap<usize, RangeModifier>,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Evaluator<'e>> {
        let deadline = Instant::now() + self.opts.timeout;
        let mut selectors = Vec::new();
        collect_selectors(
            expr,
            start,
            end,
            start,
            end,
            self.opts.lookback_delta_ms,
            &mut selectors,
        );
        let mut functions = HashMap::new();
        enclosing_functions(expr, &mut functions);
        let mut warnings = Vec::new();
        // Fetch every selector's series (encoded), all at once: against a
        // remote store each select is a round trip, and a query's selects
        // then cost one round trip instead of one each. Then decode them.
        let mut requests = Vec::new();
        let mut windows = Vec::with_capacity(selectors.len());
        for (vs, mut mint, mut maxt) in selectors {
            if modifiers.contains_key(&selector_key(vs)) {
                // Anchors and interpolation read one sample beyond the window
                // on either side.
                mint -= self.opts.lookback_delta_ms;
                maxt += self.opts.lookback_delta_ms;
            }
            let groups = selector_matchers(vs)?;
            windows.push((vs, mint, maxt, groups.len()));
            for matchers in groups {
                let mut hints = SelectHints::new(mint, maxt);
                hints.func = functions.get(&selector_key(vs)).copied();
                requests.push((matchers, hints));
            }
        }
        let sets = futures::future::try_join_all(
            requests
                .iter()
                .map(|(matchers, hints)| storage.select(matchers, *hints)),
        )
        .await?;
        let mut sets = sets.into_iter();
        let mut fetched: Vec<(usize, i64, i64, Vec<hearth_storage_api::Series>)> = Vec::new();
        for (vs, mint, maxt, groups) in windows {
            let mut merged: Vec<hearth_storage_api::Series> = Vec::new();
            let several = groups > 1;
            for set in sets.by_ref().take(groups) {
                warnings.extend(set.warnings);
                for s in set.series {
                    if several && merged.iter().any(|m| m.labels == s.labels) {
                        continue;
                    }
                    merged.push(s);
                }
            }
            if several {
                merged.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
            fetched.push((selector_key(vs), mint, maxt, merged));
        }
        let data = decode_all(
            fetched,
            self.opts.use_start_timestamps,
            self.opts.max_samples,
        )?;
        Ok(Evaluator {
            opts: &self.opts,
            start,
            end,
            step,
            data,
            warnings,
            infos: Vec::new(),
            deadline,
            query: query.to_string(),
            subquery_cache: HashMap::new(),
            modifiers,
            labels_cache: Default::default(),
            cursors: Default::default(),
        })
    }

    /// Applies delayed name removal and checks for duplicate label sets.
    fn finish_vector(&self, mut v: Vec<Sample>) -> Result<Vec<Sample>> {
        for s in &mut v {
            if s.drop_name {
                s.metric = without_name(&s.metric);
                s.drop_name = false;
            }
        }
        check_same_labelset(&v)?;
        Ok(v)
    }
}

fn finish_matrix(mut m: Vec<Series>) -> Result<Vec<Series>> {
    for s in &mut m {
        if s.drop_name {
            s.metric = without_name(&s.metric);
            s.drop_name = false;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for s in &m {
        if !seen.insert(&s.metric) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(m)
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

/// Rejects experimental functions and aggregators unless enabled.
fn check_experimental(e: &Expr) -> Result<()> {
    match e {
        Expr::Call(c) => {
            if c.func.experimental {
                return Err(Error::Parse(format!(
                    "function \"{}\" is not enabled",
                    c.func.name
                )));
            }
            for a in &c.args.args {
                check_experimental(a)?;
            }
            Ok(())
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if op == "limitk" || op == "limit_ratio" {
                return Err(Error::Parse(format!(
                    "{op}() is experimental and must be enabled with --enable-feature=promql-experimental-functions"
                )));
            }
            check_experimental(&a.expr)?;
            if let Some(p) = &a.param {
                check_experimental(p)?;
            }
            Ok(())
        }
        Expr::Paren(p) => check_experimental(&p.expr),
        Expr::Unary(u) => check_experimental(&u.expr),
        Expr::Subquery(s) => check_experimental(&s.expr),
        Expr::Binary(b) => {
            check_experimental(&b.lhs)?;
            check_experimental(&b.rhs)
        }
        _ => Ok(()),
    }
}

/// Functions whose result depends on the evaluation time even when their
/// arguments are pinned with `@` (Prometheus's `AtModifierUnsafeFunctions`).
const AT_MODIFIER_UNSAFE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "start_timestamp",
    "time",
    "timestamp",
];

/// Whether `e` evaluates to the same value at every step of a range query:
/// literals, selectors and subqueries pinned with `@`, and operators,
/// aggregations and (time-independent) functions over such operands.
fn is_step_invariant(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::Subquery(sq) => sq.at.is_some(),
        Expr::Paren(p) => is_step_invariant(&p.expr),
        Expr::Unary(u) => is_step_invariant(&u.expr),
        Expr::Binary(b) => is_step_invariant(&b.lhs) && is_step_invariant(&b.rhs),
        Expr::Aggregate(a) => {
            is_step_invariant(&a.expr) && a.param.as_deref().is_none_or(is_step_invariant)
        }
        Expr::Call(c) => {
            !AT_MODIFIER_UNSAFE_FUNCTIONS.contains(&c.func.name)
                && c.args.args.iter().all(|a| is_step_invariant(a))
        }
        Expr::Extension(_) => false,
    }
}

/// Decodes fetched series (per selector: its key, the time range it needs
/// and its series) into the engine's form. Decoding is most of a large
/// query's time, so above [`PARALLEL_DECODE_SAMPLES`] it is spread over the
/// machine's cores (each series decodes on its own; order is kept). Fails
/// when the samples exceed `max_samples`.
fn decode_all(
    fetched: Vec<(usize, i64, i64, Vec<hearth_storage_api::Series>)>,
    use_start_timestamps: bool,
    max_samples: usize,
) -> Result<HashMap<usize, Vec<StoredSeries>>> {
    let jobs: Vec<(i64, i64, &hearth_storage_api::Series)> = fetched
        .iter()
        .flat_map(|(_, mint, maxt, series)| series.iter().map(move |s| (*mint, *maxt, s)))
        .collect();
    // The chunks' own sample counts bound the work from above.
    let estimate: usize = jobs
        .iter()
        .flat_map(|(_, _, s)| &s.chunks)
        .map(hearth_storage_api::SeriesChunk::num_samples)
        .sum();
    let decode =
        |(mint, maxt, s): &(i64, i64, &hearth_storage_api::Series)| -> Result<StoredSeries> {
            let points = s
                .samples(*mint, *maxt)?
                .into_iter()
                .map(|p| FPoint { t: p.t, f: p.v })
                .collect();
            let start_times: &[(i64, i64)] = if use_start_timestamps {
                &s.start_times
            } else {
                &[]
            };
            Ok(StoredSeries::new(s.labels.clone(), points, start_times))
        };
    let threads = if estimate >= PARALLEL_DECODE_SAMPLES && jobs.len() > 1 {
        decode_threads()
    } else {
        1
    };
    let decoded: Vec<Result<StoredSeries>> = if threads > 1 {
        let per = jobs.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .chunks(per)
                .map(|part| scope.spawn(move || part.iter().map(decode).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| match h.join() {
                    Ok(v) => v,
                    Err(_) => vec![Err(Error::Execution("series decoding panicked".into()))],
                })
                .collect()
        })
    } else {
        jobs.iter().map(decode).collect()
    };
    let mut decoded = decoded.into_iter();
    let mut data = HashMap::new();
    let mut total = 0usize;
    for (key, _, _, series) in &fetched {
        let mut out = Vec::with_capacity(series.len());
        for _ in 0..series.len() {
            let s = decoded
                .next()
                .ok_or_else(|| Error::Execution("series decoding lost a series".into()))??;
            total += s.points.len() + s.stale.len();
            if total > max_samples {
                return Err(Error::TooManySamples("query execution".into()));
            }
            out.push(s);
        }
        data.insert(*key, out);
    }
    Ok(data)
}

/// Queries whose chunks hold fewer samples decode on one thread: below it
/// starting threads costs more than it saves.
const PARALLEL_DECODE_SAMPLES: usize = 200_000;

/// Threads for a large decode: the machine's cores, up to 8 (asked once:
/// the answer reads cgroup files).
fn decode_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}
