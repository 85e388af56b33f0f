//! The @-modifier step-invariance variants of an instant eval (upstream's
//! second layer of checks): every selector outside subqueries, and every
//! subquery, is pinned with `@ T`; the rewritten query is printed back and
//! must give the same result at other evaluation times.

use std::time::{Duration, SystemTime};

use promql_parser::parser::{self, AtModifier, Expr};

/// Functions whose result depends on the evaluation time: a query calling
/// one (outside a subquery) has no variants.
const TIME_DEPENDENT: [&str; 15] = [
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
    "start",
    "end",
    "range",
    "step",
];

/// The pinned query text, or `None` when the query has no variants (it
/// calls a time-dependent function, or `promql-parser` does not parse it).
pub fn pinned_query(query: &str, t_ms: i64) -> Option<String> {
    let mut expr = parser::parse(query).ok()?;
    if calls_time_dependent(&expr) {
        return None;
    }
    let at = AtModifier::At(at_time(t_ms)?);
    pin(&mut expr, &at);
    Some(expr.to_string())
}

/// The times a pinned query is evaluated at.
pub fn variant_times(t_ms: i64) -> Vec<i64> {
    if t_ms == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * t_ms, 0, t_ms / 5, t_ms, 10 * t_ms]
    }
}

fn at_time(t_ms: i64) -> Option<SystemTime> {
    let ms = u64::try_from(t_ms).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

fn children(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Aggregate(a) => {
            let mut v: Vec<&Expr> = vec![&a.expr];
            if let Some(p) = &a.param {
                v.push(p);
            }
            v
        }
        Expr::Unary(u) => vec![&u.expr],
        Expr::Binary(b) => vec![&b.lhs, &b.rhs],
        Expr::Paren(p) => vec![&p.expr],
        Expr::Call(c) => c.args.args.iter().map(|a| a.as_ref()).collect(),
        _ => Vec::new(),
    }
}

fn calls_time_dependent(expr: &Expr) -> bool {
    if let Expr::Call(c) = expr {
        if TIME_DEPENDENT.contains(&c.func.name) {
            return true;
        }
    }
    // Subqueries are pinned whole: what is inside does not count.
    children(expr).into_iter().any(calls_time_dependent)
}

fn pin_at(slot: &mut Option<AtModifier>, at: &AtModifier) {
    if !matches!(slot, Some(AtModifier::At(_))) {
        *slot = Some(at.clone());
    }
}

fn pin(expr: &mut Expr, at: &AtModifier) {
    match expr {
        Expr::Subquery(s) => pin_at(&mut s.at, at),
        Expr::VectorSelector(vs) => pin_at(&mut vs.at, at),
        Expr::MatrixSelector(ms) => pin_at(&mut ms.vs.at, at),
        Expr::Aggregate(a) => {
            pin(&mut a.expr, at);
            if let Some(p) = &mut a.param {
                pin(p, at);
            }
        }
        Expr::Unary(u) => pin(&mut u.expr, at),
        Expr::Binary(b) => {
            pin(&mut b.lhs, at);
            pin(&mut b.rhs, at);
        }
        Expr::Paren(p) => pin(&mut p.expr, at),
        Expr::Call(c) => {
            for a in &mut c.args.args {
                pin(a, at);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_selectors_and_subqueries() {
        let q = pinned_query(
            "sum(rate(a[5m])) + b @ 10 + max_over_time(c[5m:1m])",
            20_000,
        )
        .expect("has variants");
        assert!(q.contains("a[5m] @ 20.000"), "{q}");
        assert!(q.contains("b @ 10.000"), "{q}");
        assert!(q.contains("[5m:1m] @ 20.000"), "{q}");
        assert!(!q.contains("c @"), "{q}");
        assert!(pinned_query("a @ start()", 1000).is_some_and(|q| q.contains("@ 1.000")));
    }

    #[test]
    fn time_dependent_queries_have_no_variants() {
        assert!(pinned_query("time() - a", 1000).is_none());
        assert!(pinned_query("sum(timestamp(a))", 1000).is_none());
        assert!(pinned_query("max_over_time(timestamp(a)[5m:1m])", 1000).is_some());
        assert_eq!(variant_times(0), vec![-1000, 0, 1000]);
        assert_eq!(variant_times(100), vec![-1000, 0, 20, 100, 1000]);
    }
}
