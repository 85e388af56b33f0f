//! The experimental `info(v, selector)` function: enriches series with the
//! data labels of info series (`target_info` by default) that share their
//! identifying labels (`instance`, `job`), as of each sample's reference
//! time (the evaluation time shifted by the argument's `@` and `offset`).

use std::collections::HashMap;

use hearth_model::{Labels, LabelsBuilder, METRIC_NAME};
use promql_parser::parser::{Expr, VectorSelector};

use crate::eval::{at_ms, offset_ms, selector_key, unwrap_parens, Evaluator};
use crate::{Error, Result, Value};

/// Labels that tie a series to its info series.
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

/// The default info metric.
pub(crate) const DEFAULT_INFO_METRIC: &str = "target_info";

/// Gives every `info()` call an explicit info selector naming its metric,
/// so that its series are fetched like any other selector's.
pub(crate) fn add_default_info_selectors(e: &mut Expr) {
    match e {
        Expr::Call(c) => {
            if c.func.name == "info" {
                if c.args.args.len() == 1 {
                    c.args
                        .args
                        .push(Box::new(Expr::VectorSelector(VectorSelector::new(
                            Some(DEFAULT_INFO_METRIC.to_string()),
                            promql_parser::label::Matchers::empty(),
                        ))));
                } else if let Some(Expr::VectorSelector(vs)) =
                    c.args.args.get_mut(1).map(|b| b.as_mut())
                {
                    let has_name = vs.name.is_some()
                        || vs.matchers.matchers.iter().any(|m| m.name == METRIC_NAME);
                    if !has_name {
                        vs.name = Some(DEFAULT_INFO_METRIC.to_string());
                    }
                }
            }
            for a in &mut c.args.args {
                add_default_info_selectors(a);
            }
        }
        Expr::Paren(p) => add_default_info_selectors(&mut p.expr),
        Expr::Unary(u) => add_default_info_selectors(&mut u.expr),
        Expr::Subquery(s) => add_default_info_selectors(&mut s.expr),
        Expr::Aggregate(a) => {
            add_default_info_selectors(&mut a.expr);
            if let Some(p) = &mut a.param {
                add_default_info_selectors(p);
            }
        }
        Expr::Binary(b) => {
            add_default_info_selectors(&mut b.lhs);
            add_default_info_selectors(&mut b.rhs);
        }
        _ => {}
    }
}

/// The time as of which an expression evaluated at `t` read its samples.
pub(crate) fn reference_time(e: &Expr, t: i64, start: i64, end: i64) -> i64 {
    match unwrap_parens(e) {
        Expr::VectorSelector(vs) => at_ms(&vs.at, start, end).unwrap_or(t) - offset_ms(&vs.offset),
        Expr::MatrixSelector(ms) => {
            at_ms(&ms.vs.at, start, end).unwrap_or(t) - offset_ms(&ms.vs.offset)
        }
        Expr::Subquery(sq) => {
            let inner = at_ms(&sq.at, start, end).unwrap_or(t) - offset_ms(&sq.offset);
            reference_time(&sq.expr, inner, start, end)
        }
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .find(|a| {
                !matches!(
                    unwrap_parens(a),
                    Expr::NumberLiteral(_) | Expr::StringLiteral(_)
                )
            })
            .map_or(t, |a| reference_time(a, t, start, end)),
        Expr::Aggregate(a) => reference_time(&a.expr, t, start, end),
        Expr::Unary(u) => reference_time(&u.expr, t, start, end),
        Expr::Binary(b) => reference_time(&b.lhs, t, start, end),
        _ => t,
    }
}

/// Whether a metric name satisfies every `__name__` matcher of the selector.
fn name_matches(vs: &VectorSelector, name: &str) -> bool {
    if let Some(n) = &vs.name {
        if n != name {
            return false;
        }
    }
    vs.matchers
        .matchers
        .iter()
        .filter(|m| m.name == METRIC_NAME)
        .all(|m| m.is_match(name))
}

impl Evaluator<'_> {
    pub(crate) fn eval_info(&mut self, args: &[&Expr], t: i64) -> Result<Value> {
        let Some(base_expr) = args.first() else {
            return Err(Error::Execution("info() needs an argument".into()));
        };
        let Some(Expr::VectorSelector(sel)) = args.get(1).map(|e| unwrap_parens(e)) else {
            return Err(Error::Execution(
                "info(): the second argument must be a vector selector".into(),
            ));
        };
        let base = self.eval_vector(base_expr, t)?;
        let ref_t = reference_time(base_expr, t, self.start, self.end);
        let data_matchers: Vec<&promql_parser::label::Matcher> = sel
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name != METRIC_NAME)
            .collect();
        let requires_match = data_matchers.iter().any(|m| !m.is_match(""));
        // Info series current at the reference time, with their sample times.
        let lookback = self.opts.lookback_delta_ms;
        let mut infos: Vec<(Labels, i64)> = Vec::new();
        if let Some(data) = self.data.get(&selector_key(sel)) {
            for s in data {
                let idx = s.points.partition_point(|p| p.t <= ref_t);
                if idx == 0 {
                    continue;
                }
                let p = s.points[idx - 1];
                if p.t <= ref_t - lookback || hearth_model::is_stale_nan(p.f) {
                    continue;
                }
                infos.push((s.metric.clone(), p.t));
            }
        }
        let mut out = Vec::with_capacity(base.len());
        for mut s in base {
            let name = s.metric.metric_name().unwrap_or("").to_string();
            if !name.is_empty() && name_matches(sel, &name) {
                out.push(s);
                continue;
            }
            let ids: Vec<(&str, &str)> = IDENTIFYING_LABELS
                .iter()
                .filter_map(|n| s.metric.get(n).map(|v| (*n, v)))
                .collect();
            if ids.is_empty() {
                if !requires_match {
                    out.push(s);
                }
                continue;
            }
            // Per info metric name, the matching series with the latest sample.
            let mut best: HashMap<&str, (&Labels, i64)> = HashMap::new();
            for (l, ts) in &infos {
                if !ids.iter().all(|(n, v)| l.get(n) == Some(v)) {
                    continue;
                }
                let n = l.metric_name().unwrap_or("");
                match best.get(n) {
                    Some((_, bt)) if *bt >= *ts => {}
                    _ => {
                        best.insert(n, (l, *ts));
                    }
                }
            }
            if best.is_empty() {
                if !requires_match {
                    out.push(s);
                }
                continue;
            }
            let mut added: HashMap<String, String> = HashMap::new();
            let mut names: Vec<&&str> = best.keys().collect();
            names.sort();
            for n in names {
                let (l, _) = best[*n];
                for lbl in l.iter() {
                    if lbl.name == METRIC_NAME || IDENTIFYING_LABELS.contains(&lbl.name) {
                        continue;
                    }
                    if !data_matchers.is_empty()
                        && !data_matchers.iter().any(|m| m.name == lbl.name)
                    {
                        continue;
                    }
                    if s.metric.get(lbl.name).is_some() {
                        continue;
                    }
                    if let Some(prev) = added.get(lbl.name) {
                        if prev != lbl.value {
                            return Err(Error::Execution(format!(
                                "conflicting label: {} has values {prev:?} and {:?} in info metrics",
                                lbl.name, lbl.value
                            )));
                        }
                    }
                    added.insert(lbl.name.to_string(), lbl.value.to_string());
                }
            }
            let mut b = LabelsBuilder::new();
            for l in s.metric.iter() {
                b.set(l.name, l.value);
            }
            for (n, v) in &added {
                b.set(n, v);
            }
            s.metric = b.build();
            out.push(s);
        }
        Ok(Value::Vector(out))
    }
}
