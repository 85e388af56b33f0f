//! Runs parsed scripts against the engine and reports per-eval outcomes:
//! [`run_script`] / [`run_file`] for one script, [`Summary`] for many.
//!
//! For an instant eval the runner checks, as upstream does, (a) the query
//! at its time, (b) its @-modifier variants ([`crate::at_variants`]) and
//! (c) for each, the range-mode cross-check (a range query over
//! `[t-1m, t+1m]` must give the same vector at `t`); [`RunOptions`] turns
//! (b) and (c) off.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_promql::{Engine, EngineOptions, QueryResult, Sample, Value};

use crate::at_variants::{pinned_query, variant_times};
use crate::compare::{
    check_annotations, compare_value, matrix_sorted, render_expected, render_value, Grid,
};
use crate::script::{parse_script, Command, Eval, EvalKind, Expected};
use crate::storage::ScriptStorage;
use crate::Error;

/// What happened to one eval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOutcome {
    /// 1-based line of the `eval` command (0 for a file-level problem).
    pub line: usize,
    pub expr: String,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
    /// The eval involves native histograms: histogram data loaded since
    /// the last `clear` (`{{…}}` or `load_with_nhcb`), or a histogram in
    /// the expected result.
    pub native_histograms: bool,
}

impl EvalOutcome {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// The outcomes of one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub name: String,
    pub evals: Vec<EvalOutcome>,
}

/// Pass/fail counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
}

impl FileReport {
    fn count(&self, native: Option<bool>) -> Counts {
        let mut c = Counts::default();
        for e in &self.evals {
            if native.is_some_and(|n| n != e.native_histograms) {
                continue;
            }
            if e.passed() {
                c.passed += 1;
            } else {
                c.failed += 1;
            }
        }
        c
    }

    /// Every eval.
    pub fn counts(&self) -> Counts {
        self.count(None)
    }

    /// Evals involving native histograms.
    pub fn native_histogram_counts(&self) -> Counts {
        self.count(Some(true))
    }

    /// Evals not involving native histograms.
    pub fn float_counts(&self) -> Counts {
        self.count(Some(false))
    }

    /// Writes `FILE: P passed, F failed (native histograms: P passed, F failed)`.
    pub fn write_line(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let c = self.counts();
        let n = self.native_histogram_counts();
        writeln!(
            f,
            "{}: {} passed, {} failed (native histograms: {} passed, {} failed)",
            self.name, c.passed, c.failed, n.passed, n.failed
        )
    }
}

/// Reports of several scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: Vec<FileReport>,
}

impl Summary {
    fn sum(&self, f: impl Fn(&FileReport) -> Counts) -> Counts {
        self.files
            .iter()
            .map(f)
            .fold(Counts::default(), |a, c| Counts {
                passed: a.passed + c.passed,
                failed: a.failed + c.failed,
            })
    }

    pub fn counts(&self) -> Counts {
        self.sum(FileReport::counts)
    }

    pub fn native_histogram_counts(&self) -> Counts {
        self.sum(FileReport::native_histogram_counts)
    }

    pub fn float_counts(&self) -> Counts {
        self.sum(FileReport::float_counts)
    }
}

/// Per file its counts, then every failure as `FILE:LINE: …`, then
/// `N passed, M failed`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in &self.files {
            file.write_line(f)?;
        }
        for file in &self.files {
            for e in &file.evals {
                if let Some(why) = &e.failure {
                    // One line per failure, whatever the messages hold.
                    let why = why.replace('\n', "\\n");
                    writeln!(f, "{}:{}: {why}", file.name, e.line)?;
                }
            }
        }
        let c = self.counts();
        write!(f, "{} passed, {} failed", c.passed, c.failed)
    }
}

/// Engine options as upstream's test engine sets them.
pub fn test_engine_options() -> EngineOptions {
    EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        timeout: Duration::from_secs(100),
        enable_experimental_functions: true,
        enable_delayed_name_removal: true,
        use_start_timestamps: true,
        ..EngineOptions::default()
    }
}

/// What the runner needs from an engine; [`PromqlEngine`] is the real one,
/// tests plug in fakes. Errors are the engine's messages.
pub trait QueryEngine {
    fn instant_query(
        &self,
        storage: &ScriptStorage,
        query: &str,
        t_ms: i64,
    ) -> Result<QueryResult, String>;

    fn range_query(
        &self,
        storage: &ScriptStorage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, String>;
}

/// How long the runner waits for one query before giving up on it (the
/// query's thread is left behind): a hanging engine fails the eval
/// instead of hanging the run.
pub const QUERY_GUARD: Duration = Duration::from_secs(20);

/// Hearth's engine, configured as upstream's test engine. Each query runs
/// on its own thread with a fresh single-threaded runtime, bounded by
/// [`QUERY_GUARD`].
pub struct PromqlEngine {
    engine: Arc<Engine>,
}

impl Default for PromqlEngine {
    fn default() -> Self {
        Self {
            engine: Arc::new(Engine::new(test_engine_options())),
        }
    }
}

impl PromqlEngine {
    fn run(
        &self,
        storage: &ScriptStorage,
        query: &str,
        range: Option<(i64, i64, i64)>,
        t_ms: i64,
    ) -> Result<QueryResult, String> {
        let engine = self.engine.clone();
        let storage = storage.clone();
        let query = query.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("promqltest-query".into())
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("start a runtime: {e}"))?;
                    rt.block_on(async {
                        match range {
                            Some((start, end, step)) => {
                                engine.range_query(&storage, &query, start, end, step).await
                            }
                            None => engine.instant_query(&storage, &query, t_ms).await,
                        }
                    })
                    .map_err(|e| e.to_string())
                }));
                // The receiver is gone only after a timeout.
                let _ = tx.send(result);
            })
            .map_err(|e| format!("start a query thread: {e}"))?;
        match rx.recv_timeout(QUERY_GUARD) {
            Ok(Ok(result)) => result,
            // Re-raised here for `run_query`: a panic is not a query error.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => std::panic::resume_unwind(Box::new(format!(
                "query did not finish within {}s",
                QUERY_GUARD.as_secs()
            ))),
        }
    }
}

impl QueryEngine for PromqlEngine {
    fn instant_query(
        &self,
        storage: &ScriptStorage,
        query: &str,
        t_ms: i64,
    ) -> Result<QueryResult, String> {
        self.run(storage, query, None, t_ms)
    }

    fn range_query(
        &self,
        storage: &ScriptStorage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, String> {
        self.run(storage, query, Some((start_ms, end_ms, step_ms)), 0)
    }
}

/// Runs one query, turning a panic of the engine (or a query that did not
/// finish) into a failure of the eval, the outer error, so that it neither
/// stops the run nor passes as an expected query error.
fn run_query(
    engine: &dyn QueryEngine,
    storage: &ScriptStorage,
    query: &str,
    range: Option<(i64, i64, i64)>,
    t: i64,
) -> Result<Result<QueryResult, String>, String> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match range {
        Some((start, end, step)) => engine.range_query(storage, query, start, end, step),
        None => engine.instant_query(storage, query, t),
    }));
    result.map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("query aborted: {msg}")
    })
}

/// Checks one query's outcome against failure, annotation and value
/// expectations.
fn check_result(
    eval: &Eval,
    grid: Option<Grid>,
    result: Result<QueryResult, String>,
) -> Result<Option<QueryResult>, String> {
    match (result, eval.expect.failure()) {
        (Err(e), Some(m)) => {
            if m.matches(&e) {
                Ok(None)
            } else {
                Err(format!("expected error matching {m} got error {e:?}"))
            }
        }
        (Err(e), None) => Err(format!(
            "expected {}, got error {e:?}",
            render_expected(eval)
        )),
        (Ok(r), Some(m)) => Err(format!(
            "expected error matching {m} got {}",
            render_value(&r.value)
        )),
        (Ok(r), None) => {
            check_annotations(&eval.expect, &r.warnings, &r.infos)?;
            compare_value(eval, grid, &r.value).map_err(|why| {
                format!(
                    "expected {} got {} ({why})",
                    render_expected(eval),
                    render_value(&r.value)
                )
            })?;
            Ok(Some(r))
        }
    }
}

/// Which of upstream's checks the runner does beyond the query itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// (c) An instant query must give the same vector in range mode
    /// (`[t-1m, t+1m]` step 1m, the point at `t`). On by default.
    pub range_cross_check: bool,
    /// (b) The @-modifier variants: selectors and subqueries pinned with
    /// `@ T`, evaluated at `-10T, 0, T/5, T, 10T`. On by default.
    pub at_modifier_variants: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            range_cross_check: true,
            at_modifier_variants: true,
        }
    }
}

fn run_eval(
    engine: &dyn QueryEngine,
    storage: &ScriptStorage,
    eval: &Eval,
    opts: RunOptions,
) -> Result<(), String> {
    if let Some(e) = &eval.error {
        return Err(format!("parse: {e}"));
    }
    match eval.kind {
        EvalKind::Range {
            start_ms,
            end_ms,
            step_ms,
        } => {
            if eval.expect.ordered {
                return Err("expect ordered on a range eval".into());
            }
            let r = run_query(
                engine,
                storage,
                &eval.expr,
                Some((start_ms, end_ms, step_ms)),
                0,
            )?;
            check_result(eval, Some(Grid { start_ms, step_ms }), r).map(|_| ())
        }
        EvalKind::Instant { at_ms } => {
            let (t, grid) = match eval.range_vector {
                Some(rv) => (
                    rv.to_ms,
                    Some(Grid {
                        start_ms: rv.from_ms,
                        step_ms: rv.step_ms,
                    }),
                ),
                None => (at_ms, None),
            };
            check_instant(engine, storage, eval, &eval.expr, t, grid, opts)?;
            if opts.at_modifier_variants {
                if let Some(pinned) = pinned_query(&eval.expr, t) {
                    for vt in variant_times(t) {
                        check_instant(engine, storage, eval, &pinned, vt, grid, opts)
                            .map_err(|e| format!("@ variant {pinned:?} at {vt}: {e}"))?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// Checks an instant query (the eval's own text or a variant) at `t`,
/// then its range-mode cross-check.
fn check_instant(
    engine: &dyn QueryEngine,
    storage: &ScriptStorage,
    eval: &Eval,
    query: &str,
    t: i64,
    grid: Option<Grid>,
    opts: RunOptions,
) -> Result<(), String> {
    let r = run_query(engine, storage, query, None, t)?;
    let Some(instant) = check_result(eval, grid, r)? else {
        return Ok(());
    };
    let skip_range_check = !opts.range_cross_check
        || eval.range_vector.is_some()
        || matches!(eval.expected, Expected::String(_))
        || ["start()", "end()", "range()", "step()"]
            .iter()
            .any(|f| query.contains(f));
    if skip_range_check {
        return Ok(());
    }
    range_cross_check(engine, storage, eval, query, t, &instant.value)
        .map_err(|e| format!("range mode: {e}"))
}

/// Upstream's check that the query gives the same result in range mode,
/// at the middle step of `[t-1m, t+1m]`.
fn range_cross_check(
    engine: &dyn QueryEngine,
    storage: &ScriptStorage,
    eval: &Eval,
    query: &str,
    t: i64,
    instant: &Value,
) -> Result<(), String> {
    let r = run_query(
        engine,
        storage,
        query,
        Some((t - 60_000, t + 60_000, 60_000)),
        t,
    )?
    .map_err(|e| format!("error {e:?}"))?;
    if eval.expect.ordered {
        return Ok(());
    }
    let Value::Matrix(series) = &r.value else {
        return Err(format!("range query returned a {}", r.value.type_name()));
    };
    matrix_sorted(series)?;
    let mut vector = Vec::new();
    for s in series {
        if let Some(p) = s.floats.iter().find(|p| p.t == t) {
            vector.push(Sample {
                metric: s.metric.clone(),
                t,
                f: p.f,
                h: None,
                drop_name: s.drop_name,
            });
        }
        if let Some(p) = s.histograms.iter().find(|p| p.t == t) {
            vector.push(Sample {
                metric: s.metric.clone(),
                t,
                f: 0.0,
                h: Some(p.h.clone()),
                drop_name: s.drop_name,
            });
        }
    }
    let value = if matches!(instant, Value::Scalar { .. }) {
        let first = vector
            .first()
            .ok_or("no point at the instant for a scalar result")?;
        Value::Scalar { t, v: first.f }
    } else {
        Value::Vector(vector)
    };
    compare_value(eval, None, &value).map_err(|why| {
        format!(
            "expected {} got {} ({why})",
            render_expected(eval),
            render_value(&value)
        )
    })
}

/// Runs a script given as text against Hearth's engine; `name` labels
/// the report.
pub fn run_script(name: &str, text: &str) -> FileReport {
    run_script_with(&PromqlEngine::default(), RunOptions::default(), name, text)
}

/// Runs a script given as text against `engine`.
pub fn run_script_with(
    engine: &dyn QueryEngine,
    opts: RunOptions,
    name: &str,
    text: &str,
) -> FileReport {
    let script = parse_script(text);
    let mut storage = ScriptStorage::new();
    let mut histograms_loaded = false;
    let mut evals = Vec::new();
    // A command that does not parse fails the whole file, as upstream.
    let fatal_parse = script.commands.iter().find_map(|c| match c {
        Command::Invalid { line, msg } => Some(Error::Parse {
            line: *line,
            msg: msg.clone(),
        }),
        _ => None,
    });
    let mut fatal: Option<Error> = None;
    for cmd in &script.commands {
        match cmd {
            Command::Invalid { .. } => {}
            Command::Clear { .. } => {
                storage.clear();
                histograms_loaded = false;
            }
            Command::Load(load) => {
                histograms_loaded |= load.has_histograms();
                if fatal.is_none() && fatal_parse.is_none() {
                    if let Err(msg) =
                        storage.load(load.step_ms, &load.series, &load.start_timestamps)
                    {
                        fatal = Some(Error::Load {
                            line: load.line,
                            msg,
                        });
                    }
                }
            }
            Command::Eval(eval) => {
                let failure = match fatal_parse.as_ref().or(fatal.as_ref()) {
                    Some(e) => Some(format!("not run: {e}")),
                    None => run_eval(engine, &storage, eval, opts).err(),
                };
                evals.push(EvalOutcome {
                    line: eval.line,
                    expr: eval.expr.clone(),
                    failure,
                    native_histograms: histograms_loaded || eval.has_histograms(),
                });
            }
        }
    }
    if evals.is_empty() {
        if let Some(e) = fatal_parse.or(fatal) {
            evals.push(EvalOutcome {
                line: 0,
                expr: String::new(),
                failure: Some(e.to_string()),
                native_histograms: false,
            });
        }
    }
    FileReport {
        name: name.to_string(),
        evals,
    }
}

/// Reads and runs one script file. An unreadable file is reported as one
/// failed eval at line 0.
pub fn run_file(path: &Path) -> FileReport {
    run_file_with(&PromqlEngine::default(), RunOptions::default(), path)
}

/// [`run_file`] against `engine` with `opts`.
pub fn run_file_with(engine: &dyn QueryEngine, opts: RunOptions, path: &Path) -> FileReport {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => run_script_with(engine, opts, &name, &text),
        Err(source) => FileReport {
            name,
            evals: vec![EvalOutcome {
                line: 0,
                expr: String::new(),
                failure: Some(
                    Error::Io {
                        path: path.to_path_buf(),
                        source,
                    }
                    .to_string(),
                ),
                native_histograms: false,
            }],
        },
    }
}

/// Runs every file against Hearth's engine and collects the summary.
pub fn run_files(files: &[PathBuf]) -> Summary {
    run_files_with(files, RunOptions::default())
}

/// [`run_files`] with `opts`.
pub fn run_files_with(files: &[PathBuf], opts: RunOptions) -> Summary {
    let engine = PromqlEngine::default();
    Summary {
        files: files
            .iter()
            .map(|p| run_file_with(&engine, opts, p))
            .collect(),
    }
}

/// `hearth tools promqltest FILE...`: runs the scripts, prints the
/// summary and returns the exit code (0 when every eval passed).
pub fn main_with_args(files: &[PathBuf]) -> i32 {
    main_with_options(files, RunOptions::default())
}

/// [`main_with_args`] with `opts` (e.g. only the query itself checked).
pub fn main_with_options(files: &[PathBuf], opts: RunOptions) -> i32 {
    if files.is_empty() {
        eprintln!("usage: hearth tools promqltest FILE...");
        return 2;
    }
    let summary = run_files_with(files, opts);
    println!("{summary}");
    i32::from(summary.counts().failed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_model::{is_stale_nan, Matcher};
    use hearth_promql::{FPoint, Series};
    use hearth_storage_api::{Queryable, SelectHints};

    /// The fake engine knows no `@`.
    const FAKE: RunOptions = RunOptions {
        range_cross_check: true,
        at_modifier_variants: false,
    };

    /// Knows bare metric names, numbers, strings, `error` and `warn_me`.
    struct FakeEngine;

    impl FakeEngine {
        fn vector(&self, storage: &ScriptStorage, name: &str, t: i64) -> Vec<Sample> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let set = rt
                .block_on(storage.select(
                    &[Matcher::equal("__name__", name)],
                    SelectHints::new(t - 300_000 + 1, t),
                ))
                .expect("select");
            set.series
                .iter()
                .filter_map(|s| {
                    let last = s.samples(t - 300_000 + 1, t).ok()?.pop()?;
                    (!is_stale_nan(last.v)).then(|| Sample {
                        metric: s.labels.clone(),
                        t,
                        f: last.v,
                        h: None,
                        drop_name: false,
                    })
                })
                .collect()
        }
    }

    impl QueryEngine for FakeEngine {
        fn instant_query(
            &self,
            storage: &ScriptStorage,
            query: &str,
            t: i64,
        ) -> Result<QueryResult, String> {
            let mut warnings = Vec::new();
            let value = match query {
                "error" => return Err("boom".into()),
                "only_instant" => Value::Vector(Vec::new()),
                "panic" => panic!("fake engine panic"),
                "warn_me" => {
                    warnings.push("PromQL warning: w (1:1)".into());
                    Value::Vector(Vec::new())
                }
                q if q.starts_with('"') => Value::String {
                    t,
                    v: q.trim_matches('"').into(),
                },
                q => match q.parse::<f64>() {
                    Ok(v) => Value::Scalar { t, v },
                    Err(_) => Value::Vector(self.vector(storage, q, t)),
                },
            };
            Ok(QueryResult {
                value,
                warnings,
                infos: Vec::new(),
            })
        }

        fn range_query(
            &self,
            storage: &ScriptStorage,
            query: &str,
            start: i64,
            end: i64,
            step: i64,
        ) -> Result<QueryResult, String> {
            if query == "only_instant" {
                return Err("not in range mode".into());
            }
            let mut out: Vec<Series> = Vec::new();
            let mut t = start;
            while t <= end {
                let r = self.instant_query(storage, query, t)?;
                let samples = match r.value {
                    Value::Vector(v) => v,
                    Value::Scalar { v, .. } => vec![Sample {
                        metric: hearth_model::Labels::empty(),
                        t,
                        f: v,
                        h: None,
                        drop_name: false,
                    }],
                    other => return Err(format!("range over {}", other.type_name())),
                };
                for s in samples {
                    match out.iter_mut().find(|o| o.metric == s.metric) {
                        Some(o) => o.floats.push(FPoint { t, f: s.f }),
                        None => out.push(Series {
                            metric: s.metric,
                            floats: vec![FPoint { t, f: s.f }],
                            ..Default::default()
                        }),
                    }
                }
                t += step;
            }
            out.sort_by(|a, b| a.metric.cmp(&b.metric));
            Ok(QueryResult {
                value: Value::Matrix(out),
                warnings: Vec::new(),
                infos: Vec::new(),
            })
        }
    }

    const SCRIPT: &str = r#"
load 1m
  m{a="1"} 1 2 3 stale
  m{a="2"} 10+10x3

eval instant at 1m m
  m{a="1"} 2
  m{a="2"} 20

eval instant at 1m m
  m{a="1"} 5
  m{a="2"} 20

eval range from 0 to 3m step 1m m
  m{a="1"} 1 2 3 _
  m{a="2"} 10 20 30 40

eval instant at 0 error
  expect fail

eval instant at 0 42
  42

eval instant at 0 "s"
  expect string "s"

eval instant at 0 warn_me
  expect warn msg: PromQL warning: w (1:1)

eval instant at 0 warn_me
  expect no_warn

eval instant at 0 panic

eval instant at 0 m
  {} {{schema:0 sum:1 count:1}}

clear

eval instant at 1m m
"#;

    #[test]
    fn runs_a_script() {
        let r = run_script_with(&FakeEngine, FAKE, "t.test", SCRIPT);
        let passed: Vec<(usize, bool)> = r.evals.iter().map(|e| (e.line, e.passed())).collect();
        assert_eq!(
            passed,
            vec![
                (6, true),
                (10, false),
                (14, true),
                (18, true),
                (21, true),
                (24, true),
                (27, true),
                (30, false),
                (33, false),
                (35, false),
                (40, true),
            ],
            "{r:#?}"
        );
        assert!(r.evals[8]
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("aborted: fake engine panic")));
        assert!(r.evals[9].native_histograms);
        assert!(!r.evals[0].native_histograms);
        let summary = Summary { files: vec![r] };
        let text = summary.to_string();
        assert!(text
            .starts_with("t.test: 7 passed, 4 failed (native histograms: 0 passed, 1 failed)\n"));
        assert!(text.contains("\nt.test:10: expected ["), "{text}");
        assert!(text.ends_with("\n7 passed, 4 failed"), "{text}");
    }

    #[test]
    fn bad_commands_fail_the_file() {
        let r = run_script_with(
            &FakeEngine,
            FAKE,
            "t.test",
            "load 1m\n  m 1\n\nbogus\n\neval instant at 0 m\n  m 1\n",
        );
        assert_eq!(r.evals.len(), 1);
        assert!(r.evals[0]
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("invalid command")));
        let r = run_script_with(&FakeEngine, FAKE, "t.test", "bogus\n");
        assert_eq!(
            r.counts(),
            Counts {
                passed: 0,
                failed: 1
            }
        );
        let r = run_script_with(
            &FakeEngine,
            FAKE,
            "t.test",
            "load 1m\n  m 1 2\n\nload 1m\n  m 5\n\neval instant at 0 m\n  m 1\n",
        );
        assert!(
            r.evals[0]
                .failure
                .as_deref()
                .is_some_and(|f| f.contains("load")),
            "{r:?}"
        );
    }

    #[test]
    fn variants_and_range_mode_are_checked() {
        let script = "load 1m\n  m 1 2\n\neval instant at 1m m\n  m 2\n";
        let r = run_script_with(&FakeEngine, FAKE, "t.test", script);
        assert!(r.evals[0].passed(), "{r:?}");
        // The fake engine knows no `@`: the pinned query finds nothing.
        let r = run_script_with(&FakeEngine, RunOptions::default(), "t.test", script);
        let failure = r.evals[0].failure.as_deref().unwrap_or_default();
        assert!(
            failure.starts_with("@ variant \"m @ 60.000\" at -600000"),
            "{failure}"
        );
        // A range query that errors fails the range-mode check.
        let script = "eval instant at 0 only_instant\n";
        let r = run_script_with(&FakeEngine, FAKE, "t.test", script);
        let failure = r.evals[0].failure.as_deref().unwrap_or_default();
        assert!(failure.starts_with("range mode: "), "{failure}");
    }

    #[test]
    fn unreadable_file_is_a_failure() {
        let r = run_file(Path::new("/nonexistent/x.test"));
        assert_eq!(
            r.counts(),
            Counts {
                passed: 0,
                failed: 1
            }
        );
    }
}
