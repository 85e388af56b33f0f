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

/// `promql-parser` refuses an info selector whose matchers all match the
/// empty string (`info(m, {data=~".*"})`), which Prometheus accepts. This
/// gives each brace-only second argument of `info(` a metric name matcher
/// with the same meaning: the default info metric, or any name when the
/// selector already constrains `__name__`. `None` when nothing changed.
pub(crate) fn rewrite_info_selectors(q: &str) -> Option<String> {
    let b = q.as_bytes();
    let mut inserts: Vec<(usize, &'static str)> = Vec::new();
    let mut from = 0;
    while let Some(found) = q[from..].find("info(") {
        let at = from + found;
        from = at + 5;
        if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
            continue;
        }
        // Find the first top-level comma of the call.
        let mut depth = 0i32;
        let mut i = at + 5;
        let mut quote: Option<u8> = None;
        while i < b.len() {
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
                    b')' | b']' | b'}' if depth == 0 => break,
                    b')' | b']' | b'}' => depth -= 1,
                    b',' if depth == 0 => {
                        let mut j = i + 1;
                        while j < b.len() && b[j].is_ascii_whitespace() {
                            j += 1;
                        }
                        if j < b.len() && b[j] == b'{' {
                            let close = q[j..].find('}').map_or(q.len(), |k| j + k);
                            let name = if q[j..close].contains("__name__") {
                                "__name__=~\".+\", "
                            } else {
                                "__name__=\"target_info\", "
                            };
                            inserts.push((j + 1, name));
                        }
                        break;
                    }
                    _ => {}
                },
            }
            i += 1;
        }
    }
    if inserts.is_empty() {
        return None;
    }
    let mut out = q.to_string();
    for (pos, text) in inserts.into_iter().rev() {
        out.insert_str(pos, text);
    }
    Some(out)
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
                if let Some((_, p)) = s.lookback(ref_t, lookback) {
                    infos.push((s.metric.clone(), p.t));
                }
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
